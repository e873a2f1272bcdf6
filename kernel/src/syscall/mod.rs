//! The syscall table: one handler per [`Syscall`], all with one signature.
//!
//! A handler gets the six argument registers and returns a [`SyscallResult`]; it takes the
//! kernel lock itself, and releases it before blocking. Every user pointer is a
//! [`UserSlice`](crate::mm::user::UserSlice) checked against the caller's regions.

mod memory;
mod process;
mod system;
mod thread;

use crate::arch::trap::TrapFrame;
use keel_abi::{Error, Syscall, SyscallResult, encode_result};

/// The argument registers: rdi, rsi, rdx, r10, r8, r9.
#[derive(Clone, Copy)]
pub struct Args([usize; 6]);

impl Args {
    fn from_frame(frame: &TrapFrame) -> Self {
        Args(
            [
                frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
            ]
            .map(|r| r as usize),
        )
    }

    pub fn get(&self, i: usize) -> usize {
        self.0[i]
    }
}

type Handler = fn(Args) -> SyscallResult;

fn handler(call: Syscall) -> Handler {
    match call {
        Syscall::DebugWrite => system::debug_write,
        Syscall::ThreadCreate => thread::create,
        Syscall::ThreadExit => thread::exit,
        Syscall::ThreadYield => thread::yield_now,
        Syscall::ThreadSleep => thread::sleep,
        Syscall::MemMap => memory::map,
        Syscall::MemUnmap => memory::unmap,
        Syscall::MemProtect => memory::protect,
        Syscall::ProcessSpawn => process::spawn,
        Syscall::ProcessExit => process::exit,
        Syscall::ProcessWait => process::wait,
        Syscall::ProcessKill => process::kill,
        Syscall::SysInfo => system::info,
        Syscall::ProcessInfo => process::info,
        Syscall::ProcessList => process::list,
        Syscall::SystemPoweroff => system::poweroff,
        _ => |_| Err(Error::InvalidSyscall),
    }
}

#[unsafe(no_mangle)]
extern "C" fn syscall_dispatch(frame: &mut TrapFrame) {
    let result = match Syscall::from_raw(frame.rax as usize) {
        Some(call) => handler(call)(Args::from_frame(frame)),
        None => Err(Error::InvalidSyscall),
    };
    frame.rax = encode_result(result) as u64;
    crate::sched::reschedule_if_needed();
}
