//! Processes: spawn one from an ELF image, wait for it, kill it, look at it, list them all,
//! and have its faults sent to a port.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use keel_abi::{ExitStatus, ProcessInfo, SpawnRequest, exit_kind, vector};

use crate::ipc::Port;
use crate::start::start_info;
use crate::sys::{self, Error};

/// A process id.
pub type Pid = u32;

/// This process's pid.
pub fn id() -> Pid {
    start_info().pid
}

/// This process's scheduling priority.
pub fn current_priority() -> usize {
    // Reading one's own details is always allowed.
    info(id()).map_or(keel_abi::PRIORITY_DEFAULT, |info| info.priority as usize)
}

/// Ends this process with `code`.
pub fn exit(code: i32) -> ! {
    sys::process_exit(code)
}

/// A process to be created: `Spawn::new(name, elf).args("..").spawn()`.
///
/// By default the child gets no arguments, this process's priority, no rights and no
/// capabilities.
#[derive(Clone, Copy, Debug)]
#[must_use = "a Spawn does nothing until `.spawn()`"]
pub struct Spawn<'a> {
    name: &'a str,
    elf: &'a [u8],
    args: &'a str,
    priority: Option<usize>,
    rights: u32,
    caps: &'a [u32],
    frames: usize,
    max_processes: u32,
    max_threads: u32,
    cpus: u32,
    fault_handler: Option<Port>,
}

impl<'a> Spawn<'a> {
    /// A process called `name` running the ELF image `elf`.
    pub fn new(name: &'a str, elf: &'a [u8]) -> Self {
        Spawn {
            name,
            elf,
            args: "",
            priority: None,
            rights: 0,
            caps: &[],
            frames: 0,
            max_processes: 0,
            max_threads: 0,
            cpus: 0,
            fault_handler: None,
        }
    }

    /// The argument string its `main` receives.
    pub fn args(self, args: &'a str) -> Self {
        Spawn { args, ..self }
    }

    /// Its priority; at most this process's own.
    pub fn priority(self, priority: usize) -> Self {
        Spawn {
            priority: Some(priority),
            ..self
        }
    }

    /// Its rights ([`keel_abi::rights`]); a subset of this process's own.
    pub fn rights(self, rights: u32) -> Self {
        Spawn { rights, ..self }
    }

    /// Capabilities (handles in this process) the child receives copies of, as its handles
    /// `1..=caps.len()`; each needs the GRANT right.
    pub fn caps(self, caps: &'a [u32]) -> Self {
        Spawn { caps, ..self }
    }

    /// Frames of user memory it may hold, carved from this process's quota while it lives
    /// (default [`keel_abi::DEFAULT_CHILD_FRAMES`]).
    pub fn frames(self, frames: usize) -> Self {
        Spawn { frames, ..self }
    }

    /// How many processes may descend from it at once; at most this process's own limit
    /// (default [`keel_abi::DEFAULT_MAX_PROCESSES`]).
    pub fn max_processes(self, max_processes: u32) -> Self {
        Spawn {
            max_processes,
            ..self
        }
    }

    /// How many threads it may have; at most this process's own limit (default
    /// [`keel_abi::MAX_THREADS`]).
    pub fn max_threads(self, max_threads: u32) -> Self {
        Spawn {
            max_threads,
            ..self
        }
    }

    /// The cores its threads may run on, bit `n` for core `n`; a subset of this process's
    /// (default: all of this process's).
    pub fn cpus(self, cpus: u32) -> Self {
        Spawn { cpus, ..self }
    }

    /// Its faults go to `port` (a send capability; its badge comes with them) from its
    /// first instruction on, as [`set_fault_handler`] would send them.
    pub fn fault_handler(self, port: Port) -> Self {
        Spawn {
            fault_handler: Some(port),
            ..self
        }
    }

    /// The request the kernel receives, pointing into this `Spawn`'s borrowed data.
    pub fn request(&self) -> SpawnRequest {
        SpawnRequest {
            elf_ptr: self.elf.as_ptr() as usize,
            elf_len: self.elf.len(),
            name_ptr: self.name.as_ptr() as usize,
            name_len: self.name.len(),
            args_ptr: self.args.as_ptr() as usize,
            args_len: self.args.len(),
            priority: self.priority.unwrap_or_else(current_priority),
            rights: self.rights,
            process_cap: 0,
            // No capabilities is a null list, not a dangling pointer.
            caps_ptr: if self.caps.is_empty() {
                0
            } else {
                self.caps.as_ptr() as usize
            },
            caps_len: self.caps.len(),
            frames: self.frames,
            max_processes: self.max_processes,
            max_threads: self.max_threads,
            cpus: self.cpus,
            fault_handler: self.fault_handler.map_or(0, Port::handle),
        }
    }

    /// Creates the process; returns its pid. This process's capability to the child stays
    /// in its space until the child is reaped ([`spawn_child`](Spawn::spawn_child) names it).
    pub fn spawn(&self) -> Result<Pid, Error> {
        self.spawn_child().map(|child| child.pid)
    }

    /// Creates the process; returns its pid and this process's capability to it (MANAGE,
    /// READ, GRANT: pass a copy on to let another process kill it or handle its faults).
    pub fn spawn_child(&self) -> Result<Child, Error> {
        let mut request = self.request();
        let pid = sys::process_spawn(&mut request)?;
        Ok(Child {
            pid,
            cap: request.process_cap,
        })
    }
}

/// A process this one started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Child {
    pub pid: Pid,
    /// The capability to it; the kernel deletes it when the child is reaped.
    pub cap: keel_abi::cap::Handle,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited (or its last thread did) with this code.
    Exited(i64),
    /// The CPU raised an exception in it.
    Faulted(Fault),
    /// Someone killed it.
    Killed,
    /// An exit kind this runtime does not know.
    Unknown(ExitStatus),
}

/// A CPU exception in a process: what ended it, or what a fault message reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The exception vector ([`keel_abi::vector`]).
    pub vector: u32,
    /// The CPU's error code (0 for exceptions without one).
    pub error_code: i64,
    /// The faulting instruction.
    pub rip: u64,
    /// For a page fault, the address touched (CR2).
    pub address: u64,
}

impl From<ExitStatus> for Exit {
    fn from(status: ExitStatus) -> Self {
        match status.kind {
            exit_kind::EXITED => Exit::Exited(status.code),
            exit_kind::FAULTED => Exit::Faulted(Fault {
                vector: status.vector,
                error_code: status.code,
                rip: status.rip,
                address: status.address,
            }),
            exit_kind::KILLED => Exit::Killed,
            _ => Exit::Unknown(status),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Exited(code) => write!(f, "exited with code {code}"),
            Exit::Faulted(fault) => fault.fmt(f),
            Exit::Killed => f.write_str("was killed"),
            Exit::Unknown(status) => write!(f, "ended in an unknown way: {status:?}"),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.vector {
            vector::DIVIDE_ERROR => "divide error",
            vector::BREAKPOINT => "breakpoint",
            vector::INVALID_OPCODE => "invalid opcode",
            vector::GENERAL_PROTECTION => "general protection fault",
            vector::PAGE_FAULT => "page fault",
            _ => "exception",
        };
        write!(
            f,
            "faulted: {name} (vector {}, error code {:#x}) at rip {:#x}",
            self.vector, self.error_code, self.rip
        )?;
        if self.vector == vector::PAGE_FAULT {
            write!(f, " touching {:#x}", self.address)?;
        }
        Ok(())
    }
}

/// Waits for child `pid` to end and reaps it.
pub fn wait(pid: Pid) -> Result<Exit, Error> {
    sys::process_wait(pid).map(Exit::from)
}

/// Ends child `pid` (or any process, with the SYSTEM right).
pub fn kill(pid: Pid) -> Result<(), Error> {
    sys::process_kill(pid)
}

/// A snapshot of process `pid`.
pub fn info(pid: Pid) -> Result<ProcessInfo, Error> {
    sys::process_info(pid)
}

/// The pids of all live processes.
pub fn list() -> Result<Vec<Pid>, Error> {
    let mut pids = vec![0; 16];
    loop {
        let count = sys::process_list(&mut pids)?;
        if count <= pids.len() {
            pids.truncate(count);
            return Ok(pids);
        }
        // More processes than room: grow with some slack, since more may start meanwhile.
        pids.resize(count + 8, 0);
    }
}

/// Sends the faults of process `pid` (this one or a child) to `port`, which needs SEND, as
/// calls labelled [`LABEL_FAULT`](keel_abi::ipc::LABEL_FAULT) (see
/// [`Message::fault`](crate::ipc::Message::fault)). The faulting thread waits for the
/// answer: [`Message::resume`](crate::ipc::Message::resume) lets it go on, anything else
/// ends the process.
pub fn set_fault_handler(pid: Pid, port: Port) -> Result<(), Error> {
    sys::ipc::fault_handler_set(pid, port.handle())
}

/// Lets faults of process `pid` end it again, as without a handler.
pub fn clear_fault_handler(pid: Pid) -> Result<(), Error> {
    sys::ipc::fault_handler_set(pid, 0)
}
