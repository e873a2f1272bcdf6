//! Typed syscall wrappers: one function per syscall, in ABI order; those for capabilities
//! and IPC (16..=34) are in [`ipc`], those for devices (35..=41) in [`device`], those for
//! threads through capabilities (45..=51) in [`thread`].
//!
//! Each returns the kernel's verdict as `Result<_, Error>`. Those that can break the caller's
//! own memory (unmapping, changing protection, starting a thread on a given stack) are
//! `unsafe`; [`raw`] has the unchecked forms that take any number and any pointer.
//!
//! Those that can block or end the thread first send the executor's deferred signal
//! ([`flush_signal`](crate::executor::wake::flush_signal)): a peer must never wait for a
//! signal held by a thread that sleeps elsewhere.

pub mod device;
pub mod ipc;
pub mod raw;
pub mod thread;

use core::arch::asm;
use core::convert::Infallible;

pub use keel_abi::{Error, ExitStatus, ProcessInfo, SpawnRequest, SysInfo, Syscall};

use raw::call;

/// Writes `bytes` to the kernel log (the serial console); returns how many were written.
pub fn debug_write(bytes: &[u8]) -> Result<usize, Error> {
    // SAFETY: the kernel only reads `bytes`, which is valid for its length.
    unsafe { call(Syscall::DebugWrite, [bytes.as_ptr() as usize, bytes.len()]) }
}

/// Starts a thread in this process at `entry` with `rdi = arg` and `rsp = stack_top`
/// (nothing pushed), at home on one of `cpus` (bit `n` for core `n`; 0: any of the
/// process's); returns a capability to it (READ, MANAGE, GRANT).
///
/// # Safety
///
/// `entry` must be code that can start on that bare stack (see [`thread`](crate::thread),
/// which wraps this safely), and the stack must belong to the new thread alone.
pub unsafe fn thread_create(
    entry: usize,
    stack_top: usize,
    arg: usize,
    priority: usize,
    cpus: u32,
) -> Result<keel_abi::cap::Handle, Error> {
    // SAFETY: forwarded from the caller.
    unsafe {
        call(
            Syscall::ThreadCreate,
            [entry, stack_top, arg, priority, cpus as usize],
        )
    }
    .map(|handle| handle as keel_abi::cap::Handle)
}

/// Ends the calling thread; the last thread to end takes the process with it, with `code`.
pub fn thread_exit(code: i32) -> ! {
    never_returns(Syscall::ThreadExit, code)
}

/// Gives up the rest of the time slice.
pub fn thread_yield() {
    crate::executor::wake::flush_signal();
    // SAFETY: no arguments, no memory effects.
    let result = unsafe { call(Syscall::ThreadYield, []) };
    debug_assert!(result.is_ok(), "thread_yield cannot fail");
}

/// Blocks for at least `nanoseconds` (rounded up to a timer tick).
pub fn thread_sleep(nanoseconds: u64) -> Result<(), Error> {
    crate::executor::wake::flush_signal();
    // SAFETY: no memory effects.
    unsafe { call(Syscall::ThreadSleep, [nanoseconds as usize]) }.map(drop)
}

/// Maps `len` bytes of zeroed memory with protection `prot` (see [`keel_abi::prot`]) at
/// `addr`, or wherever the kernel chooses if `addr` is 0; returns the address.
///
/// Safe: a mapping never replaces another ([`Error::Exists`]).
pub fn mem_map(addr: usize, len: usize, prot: usize) -> Result<usize, Error> {
    // SAFETY: a new mapping cannot overlap memory the program already uses.
    unsafe { call(Syscall::MemMap, [addr, len, prot]) }
}

/// Unmaps every page in `[addr, addr + len)`.
///
/// # Safety
///
/// Nothing may use the memory afterwards (no live references into it).
pub unsafe fn mem_unmap(addr: usize, len: usize) -> Result<(), Error> {
    // SAFETY: forwarded from the caller.
    unsafe { call(Syscall::MemUnmap, [addr, len]) }.map(drop)
}

/// Sets the protection of the mapped pages in `[addr, addr + len)`.
///
/// # Safety
///
/// Nothing may use the memory in a way the new protection forbids.
pub unsafe fn mem_protect(addr: usize, len: usize, prot: usize) -> Result<(), Error> {
    // SAFETY: forwarded from the caller.
    unsafe { call(Syscall::MemProtect, [addr, len, prot]) }.map(drop)
}

/// Creates a process from the ELF image, name and arguments `request` points to; returns its pid.
///
/// Safe: the kernel only reads through the request's pointers and checks every one.
pub fn process_spawn(request: &mut SpawnRequest) -> Result<u32, Error> {
    // SAFETY: the kernel reads the request and the memory it names, all checked, and
    // writes only the request's `process_cap`.
    unsafe { call(Syscall::ProcessSpawn, [request as *mut _ as usize]) }.map(|pid| pid as u32)
}

/// Ends the calling process with `code`.
pub fn process_exit(code: i32) -> ! {
    never_returns(Syscall::ProcessExit, code)
}

/// Waits for child `pid` to end, reaps it and returns how it ended.
pub fn process_wait(pid: u32) -> Result<ExitStatus, Error> {
    crate::executor::wake::flush_signal();
    let mut status = ExitStatus::default();
    // SAFETY: the kernel writes one `ExitStatus` into `status`.
    unsafe {
        call(
            Syscall::ProcessWait,
            [pid as usize, &raw mut status as usize],
        )
    }?;
    Ok(status)
}

/// Ends child `pid` (any process, with [`rights::SYSTEM`](keel_abi::rights::SYSTEM)).
pub fn process_kill(pid: u32) -> Result<(), Error> {
    // SAFETY: no memory effects in the caller.
    unsafe { call(Syscall::ProcessKill, [pid as usize]) }.map(drop)
}

/// One system figure.
pub fn sys_info(what: SysInfo) -> Result<usize, Error> {
    // SAFETY: no memory effects.
    unsafe { call(Syscall::SysInfo, [what as usize]) }
}

/// A snapshot of process `pid`.
pub fn process_info(pid: u32) -> Result<ProcessInfo, Error> {
    let mut info = ProcessInfo::empty();
    // SAFETY: the kernel writes one `ProcessInfo` into `info`.
    unsafe { call(Syscall::ProcessInfo, [pid as usize, &raw mut info as usize]) }?;
    Ok(info)
}

/// Fills `pids` with live pids; returns how many processes there are, which may be more
/// than fit.
pub fn process_list(pids: &mut [u32]) -> Result<usize, Error> {
    // SAFETY: the kernel writes at most `pids.len()` entries into `pids`.
    unsafe {
        call(
            Syscall::ProcessList,
            [pids.as_mut_ptr() as usize, pids.len()],
        )
    }
}

/// Powers the machine off with `code` (see [`keel_abi::poweroff`]); returns only if refused.
pub fn system_poweroff(code: u32) -> Result<Infallible, Error> {
    // SAFETY: no memory effects in the caller.
    unsafe { call(Syscall::SystemPoweroff, [code as usize]) }?;
    unreachable!("system_poweroff returned success")
}

/// Issues an exit-type syscall, which does not come back.
fn never_returns(number: Syscall, code: i32) -> ! {
    crate::executor::wake::flush_signal();
    // Sign-extend so the kernel sees the code as the i64 that `ExitStatus` reports.
    // SAFETY: ending the thread or process has no effect on memory anyone still uses.
    let _ = unsafe { call(number, [code as i64 as usize]) };
    // SAFETY: `ud2` only raises #UD. A kernel that returns from an exit is broken; faulting
    // makes that loud instead of running on.
    unsafe { asm!("ud2", options(noreturn, nomem, nostack)) }
}
