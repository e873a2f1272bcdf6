//! Threads: create, exit, yield and sleep in the calling process; look into and control
//! any thread through a capability to it.

use super::{Args, Next, Then};
use crate::cap::Object;
use crate::kernel::Kernel;
use crate::proc::MAX_THREADS;
use crate::sched::thread::{Start, ThreadState, Tid};
use keel_abi::cap::{kind, rights};
use keel_abi::thread::{Registers, ThreadInfo, state};
use keel_abi::{Error, ExitStatus, PRIORITY_LEVELS, exit_kind, layout};

fn user_address(addr: usize) -> Result<usize, Error> {
    if (layout::USER_START..layout::USER_END).contains(&addr) {
        Ok(addr)
    } else {
        Err(Error::BadAddress)
    }
}

pub fn create(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let entry = user_address(args.word(0))?;
    let stack_top = user_address(args.word(1))?;
    let priority = args.word(3);
    if priority >= PRIORITY_LEVELS {
        return Err(Error::InvalidArgument);
    }
    let pid = k.current_pid();
    let process = k.current_process();
    if priority > process.priority() {
        return Err(Error::PermissionDenied);
    }
    if process.threads().len() >= MAX_THREADS {
        return Err(Error::QuotaExceeded);
    }
    let cpus = super::process::cpus_within(process.cpus(), args.word(4))?;
    let start = Start::User {
        entry,
        stack_top,
        arg: args.word(2),
    };
    let tid = k.spawn_thread(pid, priority, cpus, start)?;
    k.current_process().add_thread(tid);
    let rights = rights::READ | rights::MANAGE | rights::GRANT;
    match k.cap_create(pid, Object::Thread(tid), rights) {
        Ok(handle) => Ok(Next::Return(handle as usize)),
        Err(error) => {
            // Without its capability the thread could not be controlled: it does not start.
            k.current_process().remove_thread(tid);
            k.remove_thread(tid);
            Err(error)
        }
    }
}

/// The thread the capability in argument 0 names, if the capability has `rights`.
fn thread_of(k: &mut Kernel, args: &Args, rights: u32) -> Result<Tid, Error> {
    let handle = args.handle(0)?;
    let pid = k.current_pid();
    match k.cap_check(pid, handle, Some(kind::THREAD), rights)?.object {
        Object::Thread(tid) if k.threads.contains_key(&tid) => Ok(tid),
        _ => Err(Error::StaleHandle),
    }
}

pub fn info(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let tid = thread_of(k, args, rights::READ)?;
    let thread = &k.threads[&tid];
    let info = ThreadInfo {
        tid,
        pid: thread.process(),
        state: match thread.state() {
            ThreadState::Ready | ThreadState::Running => state::RUNNABLE,
            ThreadState::Faulted(_) => state::FAULTED,
            _ => state::BLOCKED,
        },
        priority: thread.priority() as u32,
        suspended: thread.is_suspended() as u32,
        core: thread.home() as u32,
        cpu_ticks: thread.cpu_ticks(),
    };
    args.user::<ThreadInfo>(1)
        .write_value(k.current_space(), &info)?;
    Ok(Next::Return(0))
}

pub fn suspend(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let tid = thread_of(k, args, rights::MANAGE)?;
    k.suspend(tid);
    Ok(Next::Return(0))
}

pub fn resume(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let tid = thread_of(k, args, rights::MANAGE)?;
    k.resume(tid);
    Ok(Next::Return(0))
}

pub fn set_priority(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let priority = args.word(1);
    if priority >= PRIORITY_LEVELS {
        return Err(Error::InvalidArgument);
    }
    let tid = thread_of(k, args, rights::MANAGE)?;
    let owner = k.processes[&k.threads[&tid].process()].priority();
    if priority > owner || priority > k.current_process().priority() {
        return Err(Error::PermissionDenied);
    }
    k.set_priority(tid, priority);
    Ok(Next::Return(0))
}

pub fn kill(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let tid = thread_of(k, args, rights::MANAGE)?;
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
    if tid == k.sched.current() {
        return Ok(Next::Gone);
    }
    Ok(Next::Return(0))
}

pub fn regs_read(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let tid = thread_of(k, args, rights::READ)?;
    let regs = k.stopped_registers(tid)?;
    args.user::<Registers>(1)
        .write_value(k.current_space(), &regs)?;
    Ok(Next::Return(0))
}

pub fn regs_write(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let tid = thread_of(k, args, rights::MANAGE)?;
    let regs: Registers = args.user::<Registers>(1).read_value(k.current_space())?;
    // `iretq` to a non-canonical rip faults in the kernel; a stack outside user space
    // would only fault the thread, but has no use.
    let user = layout::USER_START as u64..layout::USER_END as u64;
    if !user.contains(&regs.rip) || !(0..=layout::USER_END as u64).contains(&regs.rsp) {
        return Err(Error::InvalidArgument);
    }
    k.set_stopped_registers(tid, &regs)?;
    Ok(Next::Return(0))
}

pub fn exit(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    k.exit_current_thread(args.word(0) as i64);
    Ok(Next::Gone)
}

pub fn yield_now(_: &mut Kernel, _: &Args) -> Result<Next, Error> {
    Ok(Next::Yield)
}

pub fn sleep(_: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let ticks = args.ticks(0);
    if ticks == 0 {
        return Ok(Next::Yield);
    }
    let until = crate::clock::ticks().saturating_add(ticks);
    Ok(Next::Block {
        state: ThreadState::Sleeping(until),
        then: Then::Return(0),
    })
}
