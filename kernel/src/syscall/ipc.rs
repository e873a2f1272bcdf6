//! Ports from the caller's side: create, send, receive, call, reply, notify, statistics.

use super::{Args, Next};
use crate::cap::Object;
use crate::ipc::{Delivered, Delivery, Port, PortId, Received};
use crate::kernel::Kernel;
use crate::mm::PAGE_SIZE;
use crate::sched::thread::ThreadState;
use keel_abi::Error;
use keel_abi::cap::{kind, rights};
use keel_abi::ipc::{IpcStats, MessageInfo};

pub fn create(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let port = Port::new(args.word(0))?;
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
    Ok(Next::Return(handle? as usize))
}

pub fn send(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (port, cap) = k.port_lookup(args.handle(0)?, rights::SEND)?;
    let message = k.message_from_caller(&args.sent(), cap.badge, cap.rights)?;
    k.deliver(port, message).map_err(|(error, message)| {
        k.discard_message(message);
        error
    })?;
    Ok(Next::Return(0))
}

/// The syscall of a parked thread, resumed by the scheduler: finish it from its inbox,
/// as the delivery it parked for.
pub(super) fn finish_parked(k: &mut Kernel) -> Result<Next, Error> {
    let tid = k.sched.current();
    let thread = k.threads.get_mut(&tid);
    let (how, delivery) = thread.map_or((None, None), |t| (t.take_parked(), t.take_inbox()));
    match delivery {
        Some(Delivery::InRegisters(result)) => Ok(Next::Return(result)),
        Some(Delivery::Message(message)) => {
            let how = how.unwrap_or(Delivered::Received);
            Ok(Next::ReturnMessage(k.complete_delivery(message, how)))
        }
        Some(Delivery::Failed(error)) => Err(error),
        None => Err(Error::PeerGone),
    }
}

pub fn recv(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (port, _) = k.port_lookup(args.handle(0)?, rights::RECEIVE)?;
    receive_on(k, port, args.timeout(1))
}

/// Take what is waiting on `port`, or wait for it (`timeout` ticks; `None` for ever).
#[inline(always)]
fn receive_on(k: &mut Kernel, port: PortId, timeout: Option<u64>) -> Result<Next, Error> {
    let tid = k.sched.current();
    let until = timeout.map(|t| crate::clock::ticks().saturating_add(t));
    let waiting = k.ports.get_mut(&port).ok_or(Error::PeerGone)?;
    if waiting.is_closed() {
        return Err(Error::PeerGone);
    }
    if waiting.notification() != 0 {
        // Nothing but registers: no message to build.
        let bits = waiting.take_notification();
        k.set_pending_reply(None);
        return Ok(Next::ReturnMessage(Received {
            result: 0,
            badge: 0,
            info: MessageInfo::NOTIFICATION,
            words: [bits, 0, 0, 0],
        }));
    }
    if waiting.has_queued() {
        let message = k.take_waiting(port).expect("a message is queued");
        let received = k.complete_delivery(message, Delivered::Received);
        return Ok(Next::ReturnMessage(received));
    }
    if timeout == Some(0) {
        return Err(Error::WouldBlock);
    }
    waiting.wait(&mut k.threads, tid);
    Ok(Next::Park {
        state: ThreadState::Receiving { port, until },
        finish: Delivered::Received,
    })
}

pub fn call(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (port, cap) = k.port_lookup(args.handle(0)?, rights::SEND)?;
    let receiving = |k: &Kernel| {
        k.ports
            .get(&port)
            .is_some_and(|p| p.first_receiver().is_some())
    };
    if args.sent().info.to_receiver() && !receiving(k) {
        return Err(Error::WouldBlock);
    }
    k.count(port, |s| {
        s.calls += 1;
        s.fast_path_misses += 1;
    });
    let tid = k.sched.current();
    let reply = k
        .threads
        .get_mut(&tid)
        .expect("running thread")
        .next_call(tid, port);
    let mut message = k.message_from_caller(&args.sent(), cap.badge, cap.rights)?;
    message.reply = Some(reply);
    if let Err((error, message)) = k.deliver(port, message) {
        k.discard_message(message);
        return Err(error);
    }
    Ok(Next::Park {
        state: ThreadState::WaitingReply(reply.seq),
        finish: Delivered::Answer,
    })
}

pub fn reply(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let pid = k.current_pid();
    let cap = k.cap_check(pid, args.handle(0)?, Some(kind::REPLY), 0)?;
    let Object::Reply(reply) = cap.object else {
        return Err(Error::WrongType);
    };
    let message = k.message_from_caller(&args.sent(), 0, rights::GRANT)?;
    // Answer before the capability goes: deleting an unused reply abandons the call.
    let answered = k.answer(reply, message);
    k.cap_delete(cap.id);
    answered.map(|()| Next::Return(0))
}

pub fn reply_recv(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (port, _) = k.port_lookup(args.handle(0)?, rights::RECEIVE)?;
    let tid = k.sched.current();
    let pending = k.threads.get_mut(&tid).and_then(|t| t.take_pending_reply());
    if let Some(reply) = pending {
        k.count(port, |s| s.fast_path_misses += 1);
        let message = match k.message_from_caller(&args.sent(), 0, rights::GRANT) {
            Ok(message) => message,
            Err(error) => {
                // A malformed answer answers nothing: the call stays this thread's to answer.
                if let Some(thread) = k.threads.get_mut(&tid) {
                    thread.replace_pending_reply(Some(reply));
                }
                return Err(error);
            }
        };
        // A caller that gave up is no reason not to serve the next one.
        let _ = k.answer(reply, message);
    }
    receive_on(k, port, None)
}

/// Signal and wait: notify one port, then receive on another. Both capabilities are checked
/// before anything is sent. (Straight to the woken thread is the fast path's business.)
pub fn signal_recv(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (signal, _) = k.port_lookup(args.handle(0)?, rights::SEND)?;
    let (port, _) = k.port_lookup(args.handle(2)?, rights::RECEIVE)?;
    k.notify_port(signal, args.word(1) as u64)?;
    receive_on(k, port, args.timeout(3))
}

/// Inlined into the dispatcher, where the kernel's address is known: the benchmarks measure it.
#[inline(always)]
pub fn notify(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (port, _) = k.port_lookup(args.handle(0)?, rights::SEND)?;
    k.notify_port(port, args.word(1) as u64)?;
    Ok(Next::Return(0))
}

pub fn buffer_set(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let addr = args.word(0);
    if addr != 0 {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Error::InvalidArgument);
        }
        let space = k.current_space();
        space.check_access(addr, PAGE_SIZE, true)?;
    }
    let tid = k.sched.current();
    let thread = k.threads.get_mut(&tid).expect("running thread");
    thread.set_ipc_buffer((addr != 0).then_some(addr));
    Ok(Next::Return(0))
}

pub fn stats(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let stats: IpcStats = match args.optional_handle(0)? {
        None => k.ipc_stats(),
        Some(handle) => {
            let (port, _) = k.port_lookup(handle, 0)?;
            k.ports.get(&port).ok_or(Error::PeerGone)?.stats()
        }
    };
    args.user::<IpcStats>(1)
        .write_value(k.current_space(), &stats)?;
    Ok(Next::Return(0))
}

pub fn reply_save(k: &mut Kernel, _: &Args) -> Result<Next, Error> {
    Ok(Next::Return(k.save_reply()? as usize))
}
