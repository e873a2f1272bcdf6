//! Ports from the caller's side: create, send, receive, call, reply, notify, statistics.

use crate::arch::trap::TrapFrame;
use crate::cap::Object;
use crate::ipc::{Delivered, Delivery, Port, PortId};
use crate::kernel::{KernelGuard, kernel};
use crate::mm::PAGE_SIZE;
use crate::mm::user::UserSlice;
use crate::sched::thread::ThreadState;
use crate::sched::{block_parking, timeout_ticks};
use keel_abi::cap::{Handle, kind, rights};
use keel_abi::ipc::{IpcStats, MessageInfo};
use keel_abi::{Error, SyscallResult};

fn port_handle(frame: &TrapFrame) -> Result<Handle, Error> {
    Handle::try_from(frame.arg(0)).map_err(|_| Error::InvalidHandle)
}

pub fn create(frame: &mut TrapFrame) -> SyscallResult {
    let port = Port::new(frame.arg(0))?;
    let mut k = kernel();
    let pid = k.current_pid();
    let id = k.ports.insert(port);
    let handle = k.cap_create(
        pid,
        Object::Port(id),
        rights::SEND | rights::RECEIVE | rights::GRANT,
    );
    if handle.is_err() {
        k.ports.remove(&id);
    }
    Ok(handle? as usize)
}

pub fn send(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let (port, cap) = k.port_lookup(port_handle(frame)?, rights::SEND)?;
    let message = k.message_from_caller(frame, cap.badge, cap.rights)?;
    k.deliver(port, message).map_err(|(error, message)| {
        k.discard_message(message);
        error
    })?;
    Ok(0)
}

/// The current thread was woken with something in its inbox: take it.
fn finish(frame: &mut TrapFrame, how: Delivered) -> SyscallResult {
    let mut k = kernel();
    let tid = k.sched.current;
    let delivery = k.threads.get_mut(&tid).and_then(|t| t.inbox.take());
    match delivery {
        Some(Delivery::InRegisters(result)) => Ok(result),
        Some(Delivery::Message(message)) => k.complete_delivery(frame, message, how),
        Some(Delivery::Failed(error)) => Err(error),
        None => Err(Error::PeerGone),
    }
}

/// The syscall of a thread parked by the fast path, resumed by the scheduler: finish it.
pub fn resume(frame: &mut TrapFrame) -> SyscallResult {
    let how = {
        let mut k = kernel();
        let tid = k.sched.current;
        k.threads.get_mut(&tid).and_then(|t| t.parked_in.take())
    };
    finish(frame, how.unwrap_or(Delivered::Received))
}

pub fn recv(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let (port, _) = k.port_lookup(port_handle(frame)?, rights::RECEIVE)?;
    receive_on(k, frame, port, timeout_ticks(frame.arg(1) as u64))
}

/// Take what is waiting on `port`, or block for it (`timeout` ticks; `None` for ever).
fn receive_on(
    mut k: KernelGuard,
    frame: &mut TrapFrame,
    port: PortId,
    timeout: Option<u64>,
) -> SyscallResult {
    let tid = k.sched.current;
    let until = timeout.map(|t| k.ticks.saturating_add(t));
    let state = &mut *k;
    let waiting = state.ports.get_mut(&port).ok_or(Error::PeerGone)?;
    if waiting.closed {
        return Err(Error::PeerGone);
    }
    if waiting.notify != 0 {
        // Nothing but registers: no message to build.
        let bits = core::mem::take(&mut waiting.notify);
        frame.rdi = 0;
        frame.rsi = MessageInfo::NOTIFICATION;
        [frame.rdx, frame.r10, frame.r8, frame.r9] = [bits, 0, 0, 0];
        k.set_pending_reply(None);
        return Ok(0);
    }
    if !waiting.queue.is_empty() {
        let message = k.take_waiting(port).expect("a message is queued");
        return k.complete_delivery(frame, message, Delivered::Received);
    }
    if timeout == Some(0) {
        return Err(Error::WouldBlock);
    }
    waiting.receivers.push(&mut state.threads, tid);
    block_parking(
        k,
        ThreadState::Receiving { port, until },
        Delivered::Received,
    )
}

pub fn call(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let (port, cap) = k.port_lookup(port_handle(frame)?, rights::SEND)?;
    k.count(port, |s| {
        s.calls += 1;
        s.fast_path_misses += 1;
    });
    let tid = k.sched.current;
    let reply = k
        .threads
        .get_mut(&tid)
        .expect("running thread")
        .next_call(tid, port);
    let mut message = k.message_from_caller(frame, cap.badge, cap.rights)?;
    message.reply = Some(reply);
    if let Err((error, message)) = k.deliver(port, message) {
        k.discard_message(message);
        return Err(error);
    }
    block_parking(k, ThreadState::WaitingReply(reply.seq), Delivered::Answer)
}

pub fn reply(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let pid = k.current_pid();
    let cap = k.cap_check(pid, port_handle(frame)?, Some(kind::REPLY), 0)?;
    let Object::Reply(reply) = cap.object else {
        return Err(Error::WrongType);
    };
    let message = k.message_from_caller(frame, 0, rights::GRANT)?;
    // Answer before the capability goes: deleting an unused reply abandons the call.
    let answered = k.answer(reply, message);
    k.cap_delete(cap.id);
    answered.map(|()| 0)
}

pub fn reply_recv(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let (port, _) = k.port_lookup(port_handle(frame)?, rights::RECEIVE)?;
    let tid = k.sched.current;
    let pending = k.threads.get_mut(&tid).and_then(|t| t.pending_reply.take());
    if let Some(reply) = pending {
        k.count(port, |s| s.fast_path_misses += 1);
        let message = match k.message_from_caller(frame, 0, rights::GRANT) {
            Ok(message) => message,
            Err(error) => {
                // A malformed answer answers nothing: the call stays this thread's to answer.
                if let Some(thread) = k.threads.get_mut(&tid) {
                    thread.pending_reply = Some(reply);
                }
                return Err(error);
            }
        };
        // A caller that gave up is no reason not to serve the next one.
        let _ = k.answer(reply, message);
    }
    receive_on(k, frame, port, None)
}

/// Signal and wait: notify one port, then receive on another. Both capabilities are checked
/// before anything is sent. (Straight to the woken thread is the fast path's business.)
pub fn signal_recv(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let (signal, _) = k.port_lookup(port_handle(frame)?, rights::SEND)?;
    let wait = Handle::try_from(frame.arg(2)).map_err(|_| Error::InvalidHandle)?;
    let (port, _) = k.port_lookup(wait, rights::RECEIVE)?;
    k.notify_port(signal, frame.arg(1) as u64)?;
    receive_on(k, frame, port, timeout_ticks(frame.arg(3) as u64))
}

pub fn notify(frame: &mut TrapFrame) -> SyscallResult {
    let bits = frame.arg(1) as u64;
    let mut k = kernel();
    let (port, _) = k.port_lookup(port_handle(frame)?, rights::SEND)?;
    k.notify_port(port, bits).map(|()| 0)
}

pub fn buffer_set(frame: &mut TrapFrame) -> SyscallResult {
    let addr = frame.arg(0);
    let mut k = kernel();
    if addr != 0 {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Error::InvalidArgument);
        }
        let space = k.current_space();
        space.check_access(addr, PAGE_SIZE, true)?;
    }
    let tid = k.sched.current;
    let thread = k.threads.get_mut(&tid).expect("running thread");
    thread.ipc_buffer = (addr != 0).then_some(addr);
    thread.ipc_buffer_checked = None;
    Ok(0)
}

pub fn stats(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let handle = frame.arg(0);
    let stats: IpcStats = if handle == 0 {
        k.ipc_stats()
    } else {
        let (port, _) = k.port_lookup(port_handle(frame)?, 0)?;
        k.ports.get(&port).ok_or(Error::PeerGone)?.stats()
    };
    let space = k.current_space();
    UserSlice::of::<IpcStats>(frame.arg(1)).write_value(space, &stats)?;
    Ok(0)
}

pub fn reply_save(_: &mut TrapFrame) -> SyscallResult {
    Ok(kernel().save_reply()? as usize)
}
