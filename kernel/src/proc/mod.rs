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
use core::sync::atomic::{AtomicU64, Ordering};
use keel_abi::{ExitStatus, exit_kind};

pub use crate::id::Pid;

/// The first process, started by the kernel from the first boot module.
pub const FIRST_PID: Pid = 1;
/// Live processes (zombies included) in the whole system.
pub const MAX_PROCESSES: usize = keel_abi::PROCESS_TABLE_SIZE;
/// Threads per process.
pub const MAX_THREADS: usize = keel_abi::MAX_THREADS as usize;

/// A process's record. What it is (id, parent, name, priority, rights) is fixed at spawn;
/// its quota accounting is in `quota.rs`. Its capability space and address space stay open
/// to the root, which changes them across objects; each keeps its own rules.
pub struct Process {
    id: Pid,
    /// Its capability space and address space: objects with rules of their own (`cap/space.rs`,
    /// `mm/space.rs`), reached through the process as its parts.
    pub caps: CapSpace,
    /// Where this process's faults go as messages: a port and the badge to stamp on them.
    fault_handler: Option<(PortId, u64)>,
    quota: Quota,
    /// Kernel bytes held by this process's messages waiting in queues.
    queued_bytes: usize,
    /// 0 once the parent is gone.
    parent: Pid,
    name: heapless::String<{ keel_abi::NAME_LEN }>,
    priority: usize,
    rights: u32,
    /// The cores its threads may run on, bit `n` for core `n`.
    cpus: u8,
    /// `None` once the process has ended.
    pub space: Option<AddressSpace>,
    threads: Vec<Tid>,
    exit: Option<ExitStatus>,
    /// Bumped by its threads' cores' ticks in the kernel's shared mode.
    cpu_ticks: AtomicU64,
    /// Processes descending from this one (zombies included), counted against
    /// `quota.processes`.
    descendants: usize,
    /// Frames carved from `quota.frames` for its living children's quotas.
    carved: usize,
}

/// Every core: what the first process may use.
pub const ALL_CORES: u8 = u8::MAX;

/// What a process is made of at spawn.
pub struct Birth<'a> {
    pub id: Pid,
    pub parent: Pid,
    /// Cut to `NAME_LEN` bytes.
    pub name: &'a str,
    pub priority: usize,
    pub rights: u32,
    pub cpus: u8,
    pub quota: Quota,
    pub space: AddressSpace,
    pub caps: CapSpace,
}

impl Process {
    /// Its threads, oldest first.
    pub fn threads(&self) -> &[Tid] {
        &self.threads
    }

    /// A thread joined it (its quota was checked by the caller).
    pub fn add_thread(&mut self, tid: Tid) {
        self.threads.push(tid);
    }

    /// A thread left it.
    pub fn remove_thread(&mut self, tid: Tid) {
        self.threads.retain(|&t| t != tid);
    }

    /// A live process with no threads yet.
    pub fn new(birth: Birth) -> Self {
        let mut name = heapless::String::new();
        for c in birth.name.chars() {
            if name.push(c).is_err() {
                break;
            }
        }
        Process {
            id: birth.id,
            parent: birth.parent,
            name,
            priority: birth.priority,
            rights: birth.rights,
            cpus: birth.cpus,
            space: Some(birth.space),
            threads: Vec::new(),
            exit: None,
            cpu_ticks: AtomicU64::new(0),
            caps: birth.caps,
            fault_handler: None,
            quota: birth.quota,
            queued_bytes: 0,
            descendants: 0,
            carved: 0,
        }
    }

    pub fn id(&self) -> Pid {
        self.id
    }

    /// Its parent (0 once the parent is gone).
    pub fn parent(&self) -> Pid {
        self.parent
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn priority(&self) -> usize {
        self.priority
    }

    /// The cores its threads may run on, bit `n` for core `n`.
    pub fn cpus(&self) -> u8 {
        self.cpus
    }

    /// Its process-wide rights (SPAWN, SYSTEM).
    pub fn rights(&self) -> u32 {
        self.rights
    }

    pub fn has_right(&self, right: u32) -> bool {
        self.rights & right != 0
    }

    pub fn cpu_ticks(&self) -> u64 {
        self.cpu_ticks.load(Ordering::Relaxed)
    }

    /// One timer tick of one of its threads.
    pub fn tick(&self) {
        self.cpu_ticks.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fault_handler(&self) -> Option<(PortId, u64)> {
        self.fault_handler
    }

    pub fn set_fault_handler(&mut self, handler: Option<(PortId, u64)>) {
        self.fault_handler = handler;
    }

    pub fn is_zombie(&self) -> bool {
        self.exit.is_some()
    }

    /// How it ended, once it has.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit
    }

    /// It ended with `status`: a zombie from now on. Its threads and address space come
    /// back for the caller to free; `None` if it had already ended.
    pub fn end(&mut self, status: ExitStatus) -> Option<(Vec<Tid>, Option<AddressSpace>)> {
        if self.is_zombie() {
            return None;
        }
        self.exit = Some(status);
        Some((core::mem::take(&mut self.threads), self.space.take()))
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
