//! The name service and supervisor, as a client sees them: calls to init through handle 1.
//!
//! Every process init starts holds, as handle 1, a send capability to init's port, badged
//! so init knows which server of the manifest is calling. Through it a server registers
//! the service it provides, a client looks up a service it may use (the manifest says
//! which), and the shell lists, kills, runs and powers off. docs/SYSTEM.md is the contract;
//! the labels below are its wire values.
//!
//! ```ignore
//! // A server, once it serves on its wake port:
//! names::register("kv", executor::wake::port())?;
//! // A client:
//! let kv = KvClient::connect_named("kv")?;      // names::lookup, then the handshake
//! ```
//!
//! Every answer carries 0 or an [`Error`] code in word 0; a transport failure (init gone,
//! no handle 1) is the call's own error.

use alloc::string::String;
use alloc::vec::Vec;
use core::convert::Infallible;

use keel_abi::cap::{CapEntry, Handle, rights};
use keel_abi::ipc::MAX_PAYLOAD;
use keel_abi::{Error, ProcessInfo};

use crate::ipc::{Message, Port};
use crate::process::Pid;

/// The handle of the capability to init's port.
pub const INIT: Handle = 1;

/// Payload: a service name; `caps[0]`: a SEND+GRANT capability to the server's port.
pub const REGISTER: u32 = u32::from_be_bytes(*b"NREG");
/// Payload: a service name. Answer: `caps[0]`, a SEND+GRANT capability to the service.
pub const LOOKUP: u32 = u32::from_be_bytes(*b"NLUK");
/// Answer payload: one line per process, `name pid state restarts`.
pub const LIST: u32 = u32::from_be_bytes(*b"NLST");
/// Payload: a server name.
pub const KILL: u32 = u32::from_be_bytes(*b"NKIL");
/// Payload: a program (boot module) and its arguments. Answer: the pid in word 1.
pub const RUN: u32 = u32::from_be_bytes(*b"NRUN");
/// Word 0: 0 for success, anything else for failure. Answered only when refused.
pub const POWEROFF: u32 = u32::from_be_bytes(*b"NOFF");
/// The capabilities a process holds, as `cap_list` reports them (needs `may_kill`: it is a
/// supervisor's view).
pub const CAPS: u32 = u32::from_be_bytes(*b"NCAP");
/// Every live process as `process_info` reports it, as many as fit the payload, and how
/// many there are in word 1 (needs `may_kill`: the kernel shows a process only to itself,
/// to holders of a capability to it, and to the system).
pub const PROCESSES: u32 = u32::from_be_bytes(*b"NPRC");

/// One process as [`list`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// 0 while it is not running.
    pub pid: Pid,
    /// `running`, `restarting`, `stopped` or `gave-up`.
    pub state: String,
    pub restarts: u32,
}

impl core::fmt::Display for Listed {
    /// One line of a [`LIST`] answer, without its newline.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Listed {
            name,
            pid,
            state,
            restarts,
        } = self;
        write!(f, "{name} {pid} {state} {restarts}")
    }
}

impl Listed {
    /// One line of a [`LIST`] answer.
    pub fn parse(line: &str) -> Option<Listed> {
        let mut words = line.split(' ');
        let listed = Listed {
            name: words.next()?.into(),
            pid: words.next()?.parse().ok()?,
            state: words.next()?.into(),
            restarts: words.next()?.parse().ok()?,
        };
        words.next().is_none().then_some(listed)
    }
}

/// Makes `port` the service `name` (which must be this server's name in the manifest).
/// init keeps a SEND+GRANT copy, never more, to hand to the clients it allows.
pub fn register(name: &str, port: Port) -> Result<(), Error> {
    let copy = port.derive(rights::SEND | rights::GRANT, 0)?;
    // The message carries a copy of the copy, so ours goes either way.
    let answer = ask(Message::new(REGISTER, [0; 4])
        .with_payload(name.as_bytes())
        .with_caps(&[copy.handle()]));
    let _ = copy.delete();
    answer.map(drop)
}

/// A SEND+GRANT capability to service `name`'s port (its server's wake port), to connect
/// with: `FooClient::connect(names::lookup("foo")?)`, though `FooClient::connect_named`
/// does the same and can reconnect. Blocks the calling thread while init answers. Refused with
/// `PermissionDenied` unless the manifest lets this process connect to it; a service that
/// is (re)starting is waited for, up to init's limit (`TimedOut`); one whose server has
/// ended for good is `NotFound`.
pub fn lookup(name: &str) -> Result<Port, Error> {
    let answer = ask(Message::new(LOOKUP, [0; 4]).with_payload(name.as_bytes()))?;
    match answer.caps.as_slice() {
        &[handle] => Ok(Port::from_handle(handle)),
        caps => {
            for &handle in caps {
                let _ = crate::cap::delete(handle);
            }
            Err(Error::InvalidArgument)
        }
    }
}

/// Every server of the manifest, and every program started with [`run`] still running.
pub fn list() -> Result<Vec<Listed>, Error> {
    let answer = ask(Message::new(LIST, [0; 4]))?;
    let text = core::str::from_utf8(&answer.payload).map_err(|_| Error::InvalidArgument)?;
    text.lines()
        .map(|line| Listed::parse(line).ok_or(Error::InvalidArgument))
        .collect()
}

/// Kills server `name`; init then restarts it as its policy says. Needs `may_kill`.
pub fn kill(name: &str) -> Result<(), Error> {
    ask(Message::new(KILL, [0; 4]).with_payload(name.as_bytes())).map(drop)
}

/// Starts `command` (a program and its arguments, as in `hello spin 200`); its pid. The
/// program may connect to what this process may, and holds nothing else. Needs `may_run`.
pub fn run(command: &str) -> Result<Pid, Error> {
    let answer = ask(Message::new(RUN, [0; 4]).with_payload(command.as_bytes()))?;
    Pid::try_from(answer.words[1]).map_err(|_| Error::InvalidArgument)
}

/// The capabilities process `pid` holds, as init (its parent) sees them with `cap_list`.
/// Needs `may_kill`.
pub fn caps(pid: Pid) -> Result<Vec<CapEntry>, Error> {
    let answer = ask(Message::new(CAPS, [0, u64::from(pid), 0, 0]))?;
    // SAFETY: CapEntry is plain integers with no padding, valid for any bytes.
    Ok(unsafe { records(&answer.payload) })
}

/// Every live process, as init (which has the system's view) sees it with `process_info`;
/// as many as one answer holds (50). Needs `may_kill`.
pub fn processes() -> Result<Vec<ProcessInfo>, Error> {
    let answer = ask(Message::new(PROCESSES, [0; 4]))?;
    // SAFETY: ProcessInfo is plain integers and bytes with no padding, valid for any bytes.
    Ok(unsafe { records(&answer.payload) })
}

/// Process `pid` as [`processes`] shows it; `NotFound` once it is gone.
pub fn process(pid: Pid) -> Result<ProcessInfo, Error> {
    processes()?
        .into_iter()
        .find(|info| info.pid == pid)
        .ok_or(Error::NotFound)
}

/// The answer to a [`CAPS`] request: `entries`, as many as fit.
pub fn caps_answer(entries: &[CapEntry]) -> Message {
    // SAFETY: CapEntry is plain integers with no padding.
    unsafe { with_records(Message::default(), entries) }
}

/// The answer to a [`PROCESSES`] request: every process this one may look into (init:
/// all of them), as many as fit.
pub fn processes_answer() -> Result<Message, Error> {
    let pids = crate::process::list()?;
    // One that ends between the list and the look-up is simply not shown.
    let infos: Vec<ProcessInfo> = pids
        .iter()
        .filter_map(|&pid| crate::process::info(pid).ok())
        .collect();
    let answer = Message::new(0, [0, pids.len() as u64, 0, 0]);
    // SAFETY: ProcessInfo is plain integers and bytes with no padding.
    Ok(unsafe { with_records(answer, &infos) })
}

/// `answer` carrying as many of `records` as fit in its payload.
///
/// # Safety
///
/// `T` must have no padding, so that all its bytes are initialised.
unsafe fn with_records<T>(answer: Message, records: &[T]) -> Message {
    let fit = &records[..records.len().min(MAX_PAYLOAD / core::mem::size_of::<T>())];
    // SAFETY: the slice's memory is `size_of_val` initialised bytes, per the caller.
    let bytes = unsafe {
        core::slice::from_raw_parts(fit.as_ptr() as *const u8, core::mem::size_of_val(fit))
    };
    answer.with_payload(bytes)
}

/// The whole `T` records in `payload`.
///
/// # Safety
///
/// Every bit pattern must be a valid `T`.
unsafe fn records<T>(payload: &[u8]) -> Vec<T> {
    payload
        .chunks_exact(core::mem::size_of::<T>())
        // SAFETY: a chunk holds one `T`'s bytes, valid per the caller; the read is
        // unaligned-safe.
        .map(|bytes| unsafe { core::ptr::read_unaligned(bytes.as_ptr() as *const T) })
        .collect()
}

/// Asks init to power the machine off, reporting `success`; returns only if refused.
/// Needs `may_poweroff`.
pub fn poweroff(success: bool) -> Result<Infallible, Error> {
    ask(Message::new(POWEROFF, [u64::from(!success), 0, 0, 0]))?;
    // init answers a poweroff it accepts by powering off.
    Err(Error::InvalidArgument)
}

/// Calls init; the answer, or the error code in its word 0.
fn ask(request: Message) -> Result<Message, Error> {
    let answer = Port::from_handle(INIT).call(&request)?;
    match answer.words[0] {
        0 => Ok(answer),
        code => {
            for &handle in &answer.caps {
                let _ = crate::cap::delete(handle);
            }
            Err(Error::from_raw(code as isize).unwrap_or(Error::InvalidArgument))
        }
    }
}
