//! The Keel kernel ABI: everything the kernel and user space must agree on, in one place.
//!
//! Syscall convention (x86_64 `syscall`): the syscall number goes in `rax`, arguments in
//! `rdi, rsi, rdx, r10, r8, r9`. The kernel returns a [`SyscallResult`] in `rax`: a value
//! `>= 0` is success, a negative value is `-(Error as isize)`. `rcx` and `r11` are clobbered
//! (the CPU uses them); every other register is preserved.
//!
//! User pointers handed to the kernel are checked against the caller's address space; a bad
//! one gets [`Error::BadAddress`], never a kernel fault.
#![no_std]

pub mod layout;

/// Syscall numbers. One table in the kernel dispatches on these.
#[repr(usize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// `debug_write(ptr, len)`: write bytes to the kernel log (serial). Returns bytes written.
    DebugWrite = 0,
    /// `thread_create(entry, stack_top, arg, priority)`: start a thread in the caller's process.
    /// `entry(arg)` runs on `stack_top`. Returns the thread id.
    ThreadCreate = 1,
    /// `thread_exit(code)`: end the calling thread; the last thread's exit ends the process.
    ThreadExit = 2,
    /// `thread_yield()`: give up the rest of the time slice.
    ThreadYield = 3,
    /// `thread_sleep(nanoseconds)`: block for at least that long (rounded up to a tick).
    ThreadSleep = 4,
    /// `mem_map(addr, len, prot)`: map zeroed anonymous memory. `addr == 0` lets the kernel
    /// choose. Overlapping an existing mapping is [`Error::Exists`]. Returns the address.
    MemMap = 5,
    /// `mem_unmap(addr, len)`: unmap every page in the range (which may split mappings);
    /// a range with nothing mapped in it is [`Error::NotFound`].
    MemUnmap = 6,
    /// `mem_protect(addr, len, prot)`: change the protection of mapped pages; every page
    /// in the range must be mapped.
    MemProtect = 7,
    /// `process_spawn(&SpawnRequest)`: create a process from an ELF image in the caller's
    /// memory. Needs [`rights::SPAWN`]. Returns the pid.
    ProcessSpawn = 8,
    /// `process_exit(code)`: end the calling process.
    ProcessExit = 9,
    /// `process_wait(pid, &mut ExitStatus)`: wait for a child to end and reap it.
    ProcessWait = 10,
    /// `process_kill(pid)`: end a child process (or any process with [`rights::SYSTEM`]).
    ProcessKill = 11,
    /// `sys_info(SysInfo)`: one system figure.
    SysInfo = 12,
    /// `process_info(pid, &mut ProcessInfo)`: a snapshot of one process.
    ProcessInfo = 13,
    /// `process_list(&mut [u32], capacity)`: the live pids; returns how many there are.
    ProcessList = 14,
    /// `system_poweroff(code)`: power the machine off with an exit code. Needs [`rights::SYSTEM`].
    SystemPoweroff = 15,
}

impl Syscall {
    pub const COUNT: usize = 16;

    pub fn from_raw(n: usize) -> Option<Self> {
        use Syscall::*;
        const ALL: [Syscall; Syscall::COUNT] = [
            DebugWrite,
            ThreadCreate,
            ThreadExit,
            ThreadYield,
            ThreadSleep,
            MemMap,
            MemUnmap,
            MemProtect,
            ProcessSpawn,
            ProcessExit,
            ProcessWait,
            ProcessKill,
            SysInfo,
            ProcessInfo,
            ProcessList,
            SystemPoweroff,
        ];
        ALL.get(n).copied()
    }
}

/// Every way a syscall can fail. Values are stable: they cross the ABI negated in `rax`.
#[repr(isize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No syscall has this number.
    InvalidSyscall = 1,
    /// A pointer (or pointer + length) is not mapped user memory with the access needed.
    BadAddress = 2,
    /// An argument is out of range: unaligned address, zero or huge length, unknown flag.
    InvalidArgument = 3,
    /// No physical memory (or kernel memory) left for the request.
    OutOfMemory = 4,
    /// The range overlaps an existing mapping.
    Exists = 5,
    /// No such process, thread or mapping.
    NotFound = 6,
    /// The caller lacks the right for this operation.
    PermissionDenied = 7,
    /// The ELF image is malformed or unsupported.
    BadElf = 8,
    /// The caller has reached one of its limits (threads, mappings, children).
    QuotaExceeded = 9,
    /// The pid names a process that is not the caller's child.
    NotChild = 10,
    /// Writable and executable at once: refused (W^X).
    WriteExecute = 11,
}

impl Error {
    pub fn from_raw(code: isize) -> Option<Self> {
        use Error::*;
        Some(match code {
            1 => InvalidSyscall,
            2 => BadAddress,
            3 => InvalidArgument,
            4 => OutOfMemory,
            5 => Exists,
            6 => NotFound,
            7 => PermissionDenied,
            8 => BadElf,
            9 => QuotaExceeded,
            10 => NotChild,
            11 => WriteExecute,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use Error::*;
        match self {
            InvalidSyscall => "invalid syscall",
            BadAddress => "bad address",
            InvalidArgument => "invalid argument",
            OutOfMemory => "out of memory",
            Exists => "range overlaps an existing mapping",
            NotFound => "not found",
            PermissionDenied => "permission denied",
            BadElf => "bad ELF image",
            QuotaExceeded => "quota exceeded",
            NotChild => "not a child of the caller",
            WriteExecute => "writable and executable at once (W^X)",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a syscall returns in `rax`.
pub type SyscallResult = Result<usize, Error>;

/// Encode a result for `rax`.
pub fn encode_result(result: SyscallResult) -> usize {
    match result {
        Ok(value) => value,
        Err(error) => (-(error as isize)) as usize,
    }
}

/// Decode `rax` after a syscall.
pub fn decode_result(raw: usize) -> SyscallResult {
    let signed = raw as isize;
    if signed >= 0 {
        Ok(raw)
    } else {
        Err(Error::from_raw(-signed).unwrap_or(Error::InvalidArgument))
    }
}

/// Memory protection bits for `mem_map` and `mem_protect`.
pub mod prot {
    pub const READ: usize = 1;
    pub const WRITE: usize = 2;
    pub const EXEC: usize = 4;
    pub const ALL: usize = READ | WRITE | EXEC;
}

/// Process-wide rights, fixed at spawn: a child gets at most its parent's.
pub mod rights {
    /// May create processes.
    pub const SPAWN: u32 = 1;
    /// May kill any process, read any process's details and power the machine off.
    pub const SYSTEM: u32 = 2;
    pub const ALL: u32 = SPAWN | SYSTEM;
}

/// Values for `system_poweroff`, as QEMU's `isa-debug-exit` device sees them: QEMU exits
/// with status `(value << 1) | 1`, so success is status 33 and nothing else is.
pub mod poweroff {
    pub const SUCCESS: u32 = 0x10;
    pub const FAILURE: u32 = 0x11;
    /// Written by the kernel itself when it panics.
    pub const KERNEL_PANIC: u32 = 0x1f;
    /// QEMU's exit status for [`SUCCESS`].
    pub const SUCCESS_STATUS: i32 = ((SUCCESS << 1) | 1) as i32;
}

/// Priorities: higher runs first; equal priorities share the CPU round-robin.
pub const PRIORITY_LEVELS: usize = 32;
pub const PRIORITY_DEFAULT: usize = 8;

/// The figures `sys_info` returns.
#[repr(usize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysInfo {
    Pid = 0,
    Tid = 1,
    /// Timer ticks since boot.
    Ticks = 2,
    /// Timer ticks per second.
    TickHz = 3,
    FreeFrames = 4,
    TotalFrames = 5,
    /// Live processes.
    Processes = 6,
}

impl SysInfo {
    pub fn from_raw(n: usize) -> Option<Self> {
        use SysInfo::*;
        [Pid, Tid, Ticks, TickHz, FreeFrames, TotalFrames, Processes]
            .get(n)
            .copied()
    }
}

/// Argument of `process_spawn`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SpawnRequest {
    pub elf_ptr: usize,
    pub elf_len: usize,
    /// The child's name (shown by `ps`); at most [`NAME_LEN`] bytes.
    pub name_ptr: usize,
    pub name_len: usize,
    /// Argument string handed to the child's `main`; at most [`ARGS_LEN`] bytes.
    pub args_ptr: usize,
    pub args_len: usize,
    /// At most the caller's own priority.
    pub priority: usize,
    /// A subset of the caller's rights.
    pub rights: u32,
    pub _reserved: u32,
}

pub const NAME_LEN: usize = 32;
pub const ARGS_LEN: usize = 1024;

/// How a process ended, written by `process_wait`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitStatus {
    /// One of [`exit_kind`].
    pub kind: u32,
    /// For a fault: the CPU exception vector.
    pub vector: u32,
    /// For an exit: the exit code. For a fault: the error code.
    pub code: i64,
    /// For a fault: the faulting instruction.
    pub rip: u64,
    /// For a page fault: the address touched (CR2).
    pub address: u64,
}

pub mod exit_kind {
    pub const EXITED: u32 = 0;
    pub const FAULTED: u32 = 1;
    pub const KILLED: u32 = 2;
}

/// CPU exception vectors that user programs can cause.
pub mod vector {
    pub const DIVIDE_ERROR: u32 = 0;
    pub const BREAKPOINT: u32 = 3;
    pub const INVALID_OPCODE: u32 = 6;
    pub const GENERAL_PROTECTION: u32 = 13;
    pub const PAGE_FAULT: u32 = 14;
}

/// A snapshot of one process, written by `process_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcessInfo {
    pub pid: u32,
    pub parent: u32,
    /// One of [`process_state`].
    pub state: u32,
    pub threads: u32,
    /// Timer ticks spent running its threads.
    pub cpu_ticks: u64,
    /// Frames mapped in its address space (data and page tables).
    pub frames: u64,
    pub priority: u32,
    pub rights: u32,
    pub name_len: u32,
    pub _reserved: u32,
    pub name: [u8; NAME_LEN],
}

impl ProcessInfo {
    pub const fn empty() -> Self {
        ProcessInfo {
            pid: 0,
            parent: 0,
            state: 0,
            threads: 0,
            cpu_ticks: 0,
            frames: 0,
            priority: 0,
            rights: 0,
            name_len: 0,
            _reserved: 0,
            name: [0; NAME_LEN],
        }
    }

    pub fn name(&self) -> &str {
        let len = (self.name_len as usize).min(NAME_LEN);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

pub mod process_state {
    pub const RUNNING: u32 = 0;
    /// Ended, waiting for its parent to reap it.
    pub const ZOMBIE: u32 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip_through_rax() {
        for value in [0usize, 1, 4096, isize::MAX as usize] {
            assert_eq!(decode_result(encode_result(Ok(value))), Ok(value));
        }
        for code in 1..=11 {
            let error = Error::from_raw(code).unwrap();
            assert_eq!(decode_result(encode_result(Err(error))), Err(error));
        }
    }

    #[test]
    fn syscall_numbers_are_dense_and_stable() {
        for n in 0..Syscall::COUNT {
            assert_eq!(Syscall::from_raw(n).map(|s| s as usize), Some(n));
        }
        assert_eq!(Syscall::from_raw(Syscall::COUNT), None);
    }

    #[test]
    fn abi_structs_have_fixed_layouts() {
        assert_eq!(core::mem::size_of::<SpawnRequest>(), 64);
        assert_eq!(core::mem::size_of::<ExitStatus>(), 32);
        assert_eq!(core::mem::size_of::<ProcessInfo>(), 80);
        assert_eq!(
            core::mem::size_of::<layout::StartInfo>(),
            layout::START_INFO_SIZE
        );
    }
}
