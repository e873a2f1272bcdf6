//! Threads of the calling process: create, exit, yield, sleep.

use crate::arch::lapic::TICK_HZ;
use crate::arch::trap::TrapFrame;
use crate::kernel::kernel;
use crate::proc::MAX_THREADS;
use crate::sched::{reschedule, reschedule_locked, thread::Start, thread::ThreadState};
use keel_abi::{Error, PRIORITY_LEVELS, SyscallResult, layout};

fn user_address(addr: usize) -> Result<usize, Error> {
    if (layout::USER_START..layout::USER_END).contains(&addr) {
        Ok(addr)
    } else {
        Err(Error::BadAddress)
    }
}

pub fn create(frame: &mut TrapFrame) -> SyscallResult {
    let entry = user_address(frame.arg(0))?;
    let stack_top = user_address(frame.arg(1))?;
    let priority = frame.arg(3);
    if priority >= PRIORITY_LEVELS {
        return Err(Error::InvalidArgument);
    }
    let mut k = kernel();
    let pid = k.current_pid();
    let process = k.current_process();
    if priority > process.priority {
        return Err(Error::PermissionDenied);
    }
    if process.threads.len() >= MAX_THREADS {
        return Err(Error::QuotaExceeded);
    }
    let start = Start::User {
        entry,
        stack_top,
        arg: frame.arg(2),
    };
    let tid = k.spawn_thread(pid, priority, start)?;
    k.current_process().threads.push(tid);
    Ok(tid as usize)
}

pub fn exit(frame: &mut TrapFrame) -> SyscallResult {
    kernel().exit_current_thread(frame.arg(0) as i64);
    reschedule();
    unreachable!("an exited thread is never resumed")
}

pub fn yield_now(_: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    k.yield_current();
    reschedule_locked(k);
    Ok(0)
}

pub fn sleep(frame: &mut TrapFrame) -> SyscallResult {
    let nanos = frame.arg(0) as u64;
    let ticks = nanos.div_ceil(1_000_000_000 / TICK_HZ);
    {
        let mut k = kernel();
        if ticks == 0 {
            k.yield_current();
        } else {
            let until = k.ticks.saturating_add(ticks);
            k.block_current(ThreadState::Sleeping(until));
        }
    }
    reschedule();
    Ok(0)
}
