//! Roles about capabilities: passing copies on and seeing them revoked, a page shared until
//! revoked, and reading the audit log without the right to.

use alloc::format;
use core::time::Duration;

use keel_abi::Error;
use keel_abi::cap::{AuditRecord, Handle, rights};
use keel_abi::prot;
use keel_guest_tests::{SCRATCH_ADDR, SHARED_BY_CHILD, SHARED_BY_PARENT, encode_results, label};
use keel_rt::ipc::{Message, Port, Received};
use keel_rt::mem::Memory;
use keel_rt::{sys, time};

use crate::{Failure, OrSetup, expect_eq, read_word, write_word};

/// How long a role waits for `ktest`: for a message, or for a revoke.
const WAIT: Duration = Duration::from_secs(5);

pub fn relay() -> Result<i32, Failure> {
    let (port, exchange) = (Port::from_handle(1), Port::from_handle(2));
    let grantable = rights::SEND | rights::GRANT;
    let copies = [
        port.derive(grantable, 0).or_setup("deriving a copy")?,
        port.derive(grantable, 0).or_setup("deriving a copy")?,
    ];
    for (number, copy) in (0..).zip(copies) {
        let message = Message::new(number, [0; 4]).with_caps(&[copy.handle()]);
        exchange.send(&message).or_setup("passing a copy on")?;
    }
    let ready = Message::new(label::RELAY_READY, [0; 4]);
    port.send(&ready).or_setup("reporting")?;
    wait_until_stale(port.handle())?;
    for (what, held) in [
        ("its copy", port),
        ("the first", copies[0]),
        ("the second", copies[1]),
    ] {
        let sent = held.send(&Message::default());
        expect_eq(
            &format!("sending on {what} after the revoke"),
            sent,
            Err(Error::StaleHandle),
        )?;
    }
    Ok(0)
}

pub fn holder() -> Result<i32, Failure> {
    let exchange = Port::from_handle(1);
    let copy = match exchange
        .receive(Some(WAIT))
        .or_setup("receiving the copy")?
    {
        Received::Message { message, .. } if message.caps.len() == 1 => {
            Port::from_handle(message.caps[0])
        }
        other => {
            return Err(Failure::check(format!(
                "expected one capability, got {other:?}"
            )));
        }
    };
    let ready = Message::new(label::HOLDER_READY, [0; 4]);
    copy.send(&ready).or_setup("reporting through the copy")?;
    wait_until_stale(copy.handle())?;
    let sent = copy.send(&Message::default());
    expect_eq(
        "sending on the copy after the revoke",
        sent,
        Err(Error::StaleHandle),
    )?;
    // The relay's second copy was still queued on the exchange port when it was revoked.
    let late = match exchange
        .receive(Some(Duration::ZERO))
        .or_setup("receiving the second")?
    {
        Received::Message { message, .. } => message,
        other => return Err(Failure::check(format!("expected a message, got {other:?}"))),
    };
    for cap in late.caps {
        let info = sys::ipc::cap_info(cap).map(drop);
        expect_eq(
            "a capability still queued when revoked",
            info,
            Err(Error::StaleHandle),
        )?;
    }
    Ok(0)
}

/// Waits until `handle` is stale: someone revoked it.
fn wait_until_stale(handle: Handle) -> Result<(), Failure> {
    let deadline = time::ticks() + time::ticks_in(WAIT);
    loop {
        match sys::ipc::cap_info(handle) {
            Err(Error::StaleHandle) => return Ok(()),
            Ok(_) if time::ticks() > deadline => {
                return Err(Failure::check("the capability was not revoked in time"));
            }
            Ok(_) => time::sleep(Duration::from_millis(1)),
            Err(error) => return Err(Failure::Setup("cap_info", error)),
        }
    }
}

pub fn share_page() -> Result<i32, Failure> {
    let (memory, report) = (Memory::from_handle(1), Port::from_handle(2));
    let mapping = memory
        .map_at(SCRATCH_ADDR as usize, prot::READ | prot::WRITE)
        .or_setup("mapping the shared page")?;
    let words = mapping.as_ptr().cast::<u64>();
    expect_eq(
        "word 0 of the shared page",
        read_word(words),
        SHARED_BY_PARENT,
    )?;
    write_word(words.wrapping_add(1), SHARED_BY_CHILD);
    let shared = Message::new(label::SHARED, [0; 4]);
    report.send(&shared).or_setup("reporting")?;
    // The page stays readable until the revoke unmaps it; the next read then faults.
    let deadline = time::ticks() + time::ticks_in(WAIT);
    while time::ticks() <= deadline {
        read_word(words);
        time::sleep(Duration::from_millis(1));
    }
    Err(Failure::NoFault)
}

pub fn read_audit() -> Result<i32, Failure> {
    let mut records = [AuditRecord::default(); 4];
    Ok(encode_results(&[sys::ipc::audit_read(1, &mut records)]))
}
