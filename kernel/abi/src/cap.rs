//! Capabilities: handles, kinds, rights, and the records the kernel reports about them.
//!
//! A handle names a slot in the caller's capability space: the low 16 bits are the slot
//! index, the high 16 bits the slot's generation, so a handle to a deleted capability is
//! recognised as stale rather than silently naming whatever reuses the slot. Handle 0 is
//! never valid.

pub type Handle = u32;

/// The slot index and generation a handle encodes.
pub fn handle_parts(handle: Handle) -> (usize, u16) {
    ((handle & 0xffff) as usize, (handle >> 16) as u16)
}

pub fn make_handle(index: usize, generation: u16) -> Handle {
    ((generation as u32) << 16) | (index as u32 & 0xffff)
}

/// At most this many capabilities travel with one spawn request.
pub const MAX_SPAWN_CAPS: usize = 16;

/// The first process's handle to the audit log.
pub const FIRST_PROCESS_AUDIT: Handle = 1;
/// The first process's handle to the kernel log buffer.
pub const FIRST_PROCESS_LOG: Handle = 2;

/// What a capability points at.
pub mod kind {
    pub const PORT: u32 = 1;
    /// A one-shot right to answer one call.
    pub const REPLY: u32 = 2;
    /// A set of frames that can be mapped into several address spaces.
    pub const MEMORY: u32 = 3;
    /// The kernel's audit log.
    pub const AUDIT: u32 = 4;
    /// A legacy interrupt line.
    pub const IRQ: u32 = 5;
    /// A range of x86 I/O ports.
    pub const IO_PORTS: u32 = 6;
    /// The kernel log buffer.
    pub const LOG: u32 = 7;
    /// A process: the right to manage it (kill, handle its faults) or look into it.
    pub const PROCESS: u32 = 8;
    /// A thread: look into it (READ) or control it (MANAGE: suspend, resume, priority,
    /// kill, registers at a fault).
    pub const THREAD: u32 = 9;
    /// Configuration space of one PCI function (or all), reached through the kernel.
    pub const PCI_CONFIG: u32 = 10;
    /// An MSI-X vector: a PCI function's message raises it.
    pub const MSI_VECTOR: u32 = 11;
}

/// Rights a capability carries. Deriving can only remove rights.
pub mod rights {
    pub const SEND: u32 = 1 << 0;
    pub const RECEIVE: u32 = 1 << 1;
    /// Pass capabilities along (in messages and spawn requests).
    pub const GRANT: u32 = 1 << 2;
    pub const MAP_READ: u32 = 1 << 3;
    pub const MAP_WRITE: u32 = 1 << 4;
    pub const MAP_EXEC: u32 = 1 << 5;
    /// Read: the audit log, the kernel log, a process's capabilities, a thread's state.
    pub const READ: u32 = 1 << 6;
    /// Learn the physical addresses of a memory object (for device DMA).
    pub const DMA: u32 = 1 << 7;
    /// Kill a process or handle its faults; control a thread.
    pub const MANAGE: u32 = 1 << 8;
    pub const ALL: u32 = (1 << 9) - 1;
}

/// Written by `cap_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapInfo {
    /// One of [`kind`].
    pub kind: u32,
    pub rights: u32,
    pub badge: u64,
    /// The object's id: equal for capabilities to the same object.
    pub object: u64,
    /// For a memory object: its size in bytes (0 for other kinds).
    pub size: u64,
}

/// One capability of a process, written by `cap_list`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapEntry {
    pub handle: Handle,
    pub _reserved: u32,
    pub info: CapInfo,
}

/// One entry of the security audit trail.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditRecord {
    /// One of [`audit`].
    pub event: u32,
    /// For a denial: the error returned.
    pub error: u32,
    /// The process that acted.
    pub pid: u32,
    /// The handle it used (0 when none).
    pub handle: u32,
    /// Rights involved: asked for (denial), given (grant), of the revoked capability.
    pub rights: u32,
    /// The process that received a grant, or how many capabilities a revoke removed.
    pub other: u32,
    /// Timer tick of the event.
    pub tick: u64,
}

pub mod audit {
    /// A capability check failed.
    pub const DENIED: u32 = 1;
    /// A capability was passed to another process.
    pub const GRANTED: u32 = 2;
    /// Capabilities derived from one were revoked.
    pub const REVOKED: u32 = 3;
}

/// Written by `resources`: a process's quotas and its use of them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub cap_slots_used: u64,
    pub cap_slots_limit: u64,
    /// Kernel memory held on the process's behalf: capability slots, queued messages,
    /// page tables, thread stacks.
    pub kernel_bytes_used: u64,
    pub kernel_bytes_limit: u64,
    /// Frames of user memory it holds: its pages and page tables, the memory objects it
    /// owns, and what it carved for its children (`frames_limit` is its frame quota).
    pub frames_used: u64,
    pub frames_limit: u64,
}
