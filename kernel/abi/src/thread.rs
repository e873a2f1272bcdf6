//! Threads as capability objects: what `thread_info` reports and the registers a fault
//! handler reads and writes through a thread capability.

/// A snapshot of one thread, written by `thread_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadInfo {
    pub tid: u32,
    /// The process it belongs to.
    pub pid: u32,
    /// One of [`state`].
    pub state: u32,
    pub priority: u32,
    /// 1 while suspended by `thread_suspend` (whatever its state).
    pub suspended: u32,
    /// Its home core, the only one it runs on.
    pub core: u32,
    /// Timer ticks it has run.
    pub cpu_ticks: u64,
}

pub mod state {
    /// Running or waiting for the CPU.
    pub const RUNNABLE: u32 = 0;
    /// Waiting: in a receive, a call, a sleep or `process_wait`.
    pub const BLOCKED: u32 = 1;
    /// Stopped at a fault until its handler answers: its registers can be read and written.
    pub const FAULTED: u32 = 2;
}

/// A thread's user registers, read and written with `thread_regs_read` and
/// `thread_regs_write` while it is stopped at a fault. Writing keeps the kernel's choice
/// of the flags user code may not change (interrupts on, I/O privilege 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Registers {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
}

/// The rflags bits user code may set: CF, PF, AF, ZF, SF, TF, DF, OF.
pub const USER_FLAGS: u64 = 0x0dd5;
