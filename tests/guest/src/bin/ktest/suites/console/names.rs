//! A stand-in for init's name service, for the programs this suite starts (ktest, not init,
//! is the first process here): a thread answering `REGISTER`, `LOOKUP`, `LIST` and
//! `PROCESSES` on a port of its own as docs/SYSTEM.md says init does, and refusing the rest.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use core::ops::ControlFlow;

use keel_abi::Error;
use keel_abi::cap::{Handle, rights};
use keel_rt::ipc::{Message, Port, Request};
use keel_rt::names::{self, LIST, LOOKUP, PROCESSES, REGISTER};
use keel_rt::sync::Mutex;
use keel_rt::{cap, thread};

use crate::check::Context;

#[derive(Default)]
struct Table {
    /// Each service's port, as registered (SEND+GRANT).
    services: BTreeMap<String, Handle>,
    /// The `LIST` answer.
    listing: String,
}

pub struct Names {
    port: Port,
    table: Arc<Mutex<Table>>,
}

static NAMES: Mutex<Option<&'static Names>> = Mutex::new(None);

/// The suite's name service, started on first use.
pub fn names() -> Result<&'static Names, String> {
    let mut names = NAMES.lock();
    if let Some(names) = *names {
        return Ok(names);
    }
    let started: &'static Names = Box::leak(Box::new(Names::start()?));
    *names = Some(started);
    Ok(started)
}

impl Names {
    fn start() -> Result<Names, String> {
        let port = Port::create(8).context("creating the name service's port")?;
        let table = Arc::new(Mutex::new(Table::default()));
        let served = table.clone();
        thread::spawn(move || {
            let _ = port.serve(|request| ControlFlow::Continue(Some(answer(&served, request))));
        })
        .context("starting the name service's thread")?;
        Ok(Names { port, table })
    }

    /// What a child gets as handle 1: SEND to call, GRANT to pass its port along.
    pub fn for_child(&self) -> Result<Port, String> {
        self.port
            .derive(rights::SEND | rights::GRANT, 0)
            .context("deriving a name service capability")
    }

    /// The port service `name` registered, if it has: a copy, with GRANT so that the
    /// connect handshake can carry capabilities through it.
    pub fn registered(&self, name: &str) -> Option<Port> {
        let handle = *self.table.lock().services.get(name)?;
        let port = Port::from_handle(handle);
        port.derive(rights::SEND | rights::GRANT, 0).ok()
    }

    /// Answer lookups of `name` with `port` (which needs GRANT).
    pub fn provide(&self, name: &str, port: Port) {
        let old = self
            .table
            .lock()
            .services
            .insert(name.into(), port.handle());
        if let Some(old) = old {
            let _ = cap::delete(old);
        }
    }

    /// Forget service `name`, so that the next registration is seen afresh.
    pub fn forget(&self, name: &str) {
        let old = self.table.lock().services.remove(name);
        if let Some(old) = old {
            let _ = cap::delete(old);
        }
    }

    pub fn set_listing(&self, listing: String) {
        self.table.lock().listing = listing;
    }
}

/// The answer to one request, as init would give it.
fn answer(table: &Mutex<Table>, request: Request) -> Message {
    let message = request.message;
    let name = String::from_utf8_lossy(&message.payload).into_owned();
    let refuse = |error: Error| {
        for &handle in &message.caps {
            let _ = cap::delete(handle);
        }
        Message::new(0, [error as u64, 0, 0, 0])
    };
    let mut table = table.lock();
    match (message.label, message.caps.as_slice()) {
        (REGISTER, &[port]) => {
            if let Some(old) = table.services.insert(name, port) {
                let _ = cap::delete(old);
            }
            Message::new(0, [0; 4])
        }
        (LOOKUP, []) => match table.services.get(&name) {
            Some(&port) => Message::new(0, [0; 4]).with_caps(&[port]),
            None => refuse(Error::NotFound),
        },
        (LIST, []) => Message::new(0, [0; 4]).with_payload(table.listing.as_bytes()),
        (PROCESSES, []) => names::processes_answer().unwrap_or_else(refuse),
        _ => refuse(Error::PermissionDenied),
    }
}
