//! Typed wrappers for syscalls 45..=51: threads through capabilities to them (see
//! [`Thread`](crate::thread::Thread), which wraps these), in ABI order.

use keel_abi::cap::Handle;
use keel_abi::thread::{Registers, ThreadInfo};
use keel_abi::{Error, Syscall};

use super::raw::call;

/// `thread_info`: a snapshot of the thread `thread` names (needs READ).
pub fn thread_info(thread: Handle) -> Result<ThreadInfo, Error> {
    let mut info = ThreadInfo::default();
    // SAFETY: the kernel writes one `ThreadInfo` into `info`.
    unsafe {
        call(
            Syscall::ThreadInfo,
            [thread as usize, &raw mut info as usize],
        )
    }?;
    Ok(info)
}

/// `thread_suspend`: keeps the thread off the CPU until resumed (needs MANAGE).
pub fn thread_suspend(thread: Handle) -> Result<(), Error> {
    // SAFETY: no memory effects in the caller.
    unsafe { call(Syscall::ThreadSuspend, [thread as usize]) }.map(drop)
}

/// `thread_resume`: undoes `thread_suspend` (needs MANAGE).
pub fn thread_resume(thread: Handle) -> Result<(), Error> {
    // SAFETY: no memory effects in the caller.
    unsafe { call(Syscall::ThreadResume, [thread as usize]) }.map(drop)
}

/// `thread_set_priority`: at most the thread's process's priority and the caller's (needs
/// MANAGE).
pub fn thread_set_priority(thread: Handle, priority: usize) -> Result<(), Error> {
    // SAFETY: no memory effects in the caller.
    unsafe { call(Syscall::ThreadSetPriority, [thread as usize, priority]) }.map(drop)
}

/// `thread_kill`: ends the thread, and its process with it if it is the last (needs MANAGE).
///
/// Safe as far as the caller's memory goes: a thread of this process that is killed stops
/// between instructions, and what it held stays allocated.
pub fn thread_kill(thread: Handle) -> Result<(), Error> {
    // SAFETY: see above.
    unsafe { call(Syscall::ThreadKill, [thread as usize]) }.map(drop)
}

/// `thread_regs_read`: the registers of a thread stopped at a fault (needs READ).
pub fn thread_regs_read(thread: Handle) -> Result<Registers, Error> {
    let mut regs = Registers::default();
    // SAFETY: the kernel writes one `Registers` into `regs`.
    unsafe {
        call(
            Syscall::ThreadRegsRead,
            [thread as usize, &raw mut regs as usize],
        )
    }?;
    Ok(regs)
}

/// `thread_regs_write`: changes the registers of a thread stopped at a fault, for when its
/// handler resumes it (needs MANAGE).
///
/// # Safety
///
/// The thread resumes with these registers: if it belongs to this process, they must be
/// a state its code can continue from.
pub unsafe fn thread_regs_write(thread: Handle, regs: &Registers) -> Result<(), Error> {
    // SAFETY: the kernel only reads one `Registers`; the caller vouches for the effect.
    unsafe {
        call(
            Syscall::ThreadRegsWrite,
            [thread as usize, regs as *const _ as usize],
        )
    }
    .map(drop)
}
