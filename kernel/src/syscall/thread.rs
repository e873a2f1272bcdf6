//! Threads: create, exit, yield and sleep in the calling process; look into and control
//! any thread through a capability to it.

use crate::arch::lapic::TICK_HZ;
use crate::arch::trap::TrapFrame;
use crate::cap::Object;
use crate::kernel::{Kernel, kernel};
use crate::mm::user::UserSlice;
use crate::proc::MAX_THREADS;
use crate::sched::thread::{Start, ThreadState, Tid};
use crate::sched::{reschedule, yield_parking};
use keel_abi::cap::{kind, rights};
use keel_abi::thread::{Registers, ThreadInfo, USER_FLAGS, state};
use keel_abi::{Error, ExitStatus, PRIORITY_LEVELS, SyscallResult, exit_kind, layout};

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
    let rights = rights::READ | rights::MANAGE | rights::GRANT;
    match k.cap_create(pid, Object::Thread(tid), rights) {
        Ok(handle) => Ok(handle as usize),
        Err(error) => {
            // Without its capability the thread could not be controlled: it does not start.
            k.current_process().threads.retain(|&t| t != tid);
            k.remove_thread(tid);
            Err(error)
        }
    }
}

/// The thread a capability of the caller names, if the capability has `rights`.
fn thread_of(k: &mut Kernel, handle: usize, rights: u32) -> Result<Tid, Error> {
    let handle = u32::try_from(handle).map_err(|_| Error::InvalidHandle)?;
    let pid = k.current_pid();
    match k.cap_check(pid, handle, Some(kind::THREAD), rights)?.object {
        Object::Thread(tid) if k.threads.contains_key(&tid) => Ok(tid),
        _ => Err(Error::StaleHandle),
    }
}

pub fn info(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let tid = thread_of(&mut k, frame.arg(0), rights::READ)?;
    let thread = &k.threads[&tid];
    let info = ThreadInfo {
        tid,
        pid: thread.process,
        state: match thread.state {
            ThreadState::Ready | ThreadState::Running => state::RUNNABLE,
            ThreadState::Faulted(_) => state::FAULTED,
            _ => state::BLOCKED,
        },
        priority: thread.priority as u32,
        suspended: thread.suspended as u32,
        cpu_ticks: thread.cpu_ticks,
        ..ThreadInfo::default()
    };
    UserSlice::of::<ThreadInfo>(frame.arg(1)).write_value(k.current_space(), &info)?;
    Ok(0)
}

pub fn suspend(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let tid = thread_of(&mut k, frame.arg(0), rights::MANAGE)?;
    k.suspend(tid);
    Ok(0)
}

pub fn resume(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let tid = thread_of(&mut k, frame.arg(0), rights::MANAGE)?;
    k.resume(tid);
    Ok(0)
}

pub fn set_priority(frame: &mut TrapFrame) -> SyscallResult {
    let priority = frame.arg(1);
    if priority >= PRIORITY_LEVELS {
        return Err(Error::InvalidArgument);
    }
    let mut k = kernel();
    let tid = thread_of(&mut k, frame.arg(0), rights::MANAGE)?;
    let owner = k.processes[&k.threads[&tid].process].priority;
    if priority > owner || priority > k.current_process().priority {
        return Err(Error::PermissionDenied);
    }
    k.set_priority(tid, priority);
    Ok(0)
}

pub fn kill(frame: &mut TrapFrame) -> SyscallResult {
    let killed_self = {
        let mut k = kernel();
        let tid = thread_of(&mut k, frame.arg(0), rights::MANAGE)?;
        crate::kprintln!(
            "{} killed by process {}",
            k.describe_thread(tid),
            k.current_pid()
        );
        let status = ExitStatus {
            kind: exit_kind::KILLED,
            ..ExitStatus::default()
        };
        k.end_thread(tid, status);
        tid == k.sched.current
    };
    if killed_self {
        reschedule();
    }
    Ok(0)
}

/// The trap frame of a thread stopped at a fault: the only time all its registers are saved.
fn stopped_frame(k: &mut Kernel, tid: Tid) -> Result<&mut TrapFrame, Error> {
    let thread = &k.threads[&tid];
    if !matches!(thread.state, ThreadState::Faulted(_)) {
        return Err(Error::NotStopped);
    }
    // SAFETY: a thread stopped at a fault is blocked in the kernel's fault path, so the top of
    // its kernel stack holds the full frame its exception entry saved; the kernel lock, held
    // through the returned borrow, keeps it from running meanwhile.
    Ok(unsafe { &mut *thread.saved_user_frame() })
}

pub fn regs_read(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let tid = thread_of(&mut k, frame.arg(0), rights::READ)?;
    let saved = stopped_frame(&mut k, tid)?;
    let regs = Registers {
        rax: saved.rax,
        rbx: saved.rbx,
        rcx: saved.rcx,
        rdx: saved.rdx,
        rsi: saved.rsi,
        rdi: saved.rdi,
        rbp: saved.rbp,
        rsp: saved.rsp,
        r8: saved.r8,
        r9: saved.r9,
        r10: saved.r10,
        r11: saved.r11,
        r12: saved.r12,
        r13: saved.r13,
        r14: saved.r14,
        r15: saved.r15,
        rip: saved.rip,
        rflags: saved.rflags,
    };
    UserSlice::of::<Registers>(frame.arg(1)).write_value(k.current_space(), &regs)?;
    Ok(0)
}

pub fn regs_write(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let tid = thread_of(&mut k, frame.arg(0), rights::MANAGE)?;
    let regs: Registers = UserSlice::of::<Registers>(frame.arg(1)).read_value(k.current_space())?;
    // `iretq` to a non-canonical rip faults in the kernel; a stack outside user space
    // would only fault the thread, but has no use.
    let user = layout::USER_START as u64..layout::USER_END as u64;
    if !user.contains(&regs.rip) || !(0..=layout::USER_END as u64).contains(&regs.rsp) {
        return Err(Error::InvalidArgument);
    }
    let saved = stopped_frame(&mut k, tid)?;
    let kernel_flags = saved.rflags & !USER_FLAGS;
    *saved = TrapFrame {
        rax: regs.rax,
        rbx: regs.rbx,
        rcx: regs.rcx,
        rdx: regs.rdx,
        rsi: regs.rsi,
        rdi: regs.rdi,
        rbp: regs.rbp,
        rsp: regs.rsp,
        r8: regs.r8,
        r9: regs.r9,
        r10: regs.r10,
        r11: regs.r11,
        r12: regs.r12,
        r13: regs.r13,
        r14: regs.r14,
        r15: regs.r15,
        rip: regs.rip,
        rflags: kernel_flags | (regs.rflags & USER_FLAGS),
        ..*saved
    };
    Ok(0)
}

pub fn exit(frame: &mut TrapFrame) -> SyscallResult {
    kernel().exit_current_thread(frame.arg(0) as i64);
    reschedule();
    unreachable!("an exited thread is never resumed")
}

pub fn yield_now(_: &mut TrapFrame) -> SyscallResult {
    yield_parking(kernel())
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
