//! Processes: an address space, threads, rights, quotas, and how the process ended; the
//! ELF reader (`elf.rs`, untrusted input).
//!
//! What happens to a process across the objects it holds (spawning it, ending it, reaping
//! it, a fault in one of its threads) is the root's business: `kernel/spawn.rs`,
//! `kernel/process.rs` and `kernel/fault.rs`. Its descendants end with it
//! (docs/decisions/001-orphans-end-with-their-parent.md).

pub mod elf;
pub mod quota;

use crate::cap::space::CapSpace;
use crate::id::PortId;
use crate::id::Tid;
use crate::mm::PAGE_SIZE;
use crate::mm::space::AddressSpace;
use alloc::vec::Vec;
use keel_abi::{ExitStatus, exit_kind};

pub use crate::id::Pid;

/// The first process, started by the kernel from the first boot module.
pub const FIRST_PID: Pid = 1;
/// Live processes (zombies included) in the whole system.
pub const MAX_PROCESSES: usize = keel_abi::PROCESS_TABLE_SIZE;
/// Threads per process.
pub const MAX_THREADS: usize = keel_abi::MAX_THREADS as usize;

pub struct Process {
    pub id: Pid,
    pub caps: CapSpace,
    /// Where this process's faults go as messages: a port and the badge to stamp on them.
    pub fault_handler: Option<(PortId, u64)>,
    pub quota: Quota,
    /// Kernel bytes held by this process's messages waiting in queues.
    pub queued_bytes: usize,
    /// 0 once the parent is gone.
    pub parent: Pid,
    pub name: heapless::String<{ keel_abi::NAME_LEN }>,
    pub priority: usize,
    pub rights: u32,
    /// `None` once the process has ended.
    pub space: Option<AddressSpace>,
    pub threads: Vec<Tid>,
    pub exit: Option<ExitStatus>,
    pub cpu_ticks: u64,
    /// Processes descending from this one (zombies included), counted against
    /// `quota.processes`.
    pub descendants: usize,
    /// Frames carved from `quota.frames` for its living children's quotas.
    pub carved: usize,
}

impl Process {
    pub fn is_zombie(&self) -> bool {
        self.exit.is_some()
    }

    /// Kernel memory held on this process's behalf.
    pub fn kernel_bytes(&self) -> usize {
        self.caps.used() * CAP_SLOT_COST
            + self.queued_bytes
            + self
                .space
                .as_ref()
                .map_or(0, |s| s.table_frames() * PAGE_SIZE)
            + self.threads.len() * crate::mm::stacks::STACK_SIZE
    }
}

/// What a process may make the kernel hold for it.
#[derive(Clone, Copy, Debug)]
pub struct Quota {
    pub kernel_bytes: usize,
    /// Frames of user memory: its pages and page tables, the memory objects it owns, and
    /// what it carved for its children.
    pub frames: usize,
    /// Processes that may descend from it at once.
    pub processes: usize,
    /// Threads it may have at once.
    pub threads: usize,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            kernel_bytes: 2 << 20,
            frames: keel_abi::DEFAULT_CHILD_FRAMES,
            processes: keel_abi::DEFAULT_MAX_PROCESSES as usize,
            threads: MAX_THREADS,
        }
    }
}

/// Kernel bytes a capability slot costs its holder.
pub const CAP_SLOT_COST: usize = 64;

pub fn exited(code: i64) -> ExitStatus {
    ExitStatus {
        kind: exit_kind::EXITED,
        code,
        ..ExitStatus::default()
    }
}

pub fn describe_status(status: &ExitStatus) -> alloc::string::String {
    match status.kind {
        exit_kind::EXITED => alloc::format!("exit code {}", status.code),
        exit_kind::KILLED => alloc::string::String::from("killed"),
        _ => alloc::format!(
            "{} at rip {:#x}",
            crate::arch::trap::exception_name(status.vector as u64),
            status.rip
        ),
    }
}
