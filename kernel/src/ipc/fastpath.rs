//! The IPC fast path, and the path cache that feeds it.
//!
//! A call to a port whose receiver is already waiting, or a reply-and-receive answering a
//! caller that is waiting, moves the message words straight into the other thread's inbox
//! and switches to it directly: no queueing, no run-queue pass, as the seed's
//! `fast_path_ipc` does. It applies when the message is plain (no payload, no capabilities)
//! and the other thread's priority is at least the sender's, so the direct switch never
//! runs a thread ahead of a more urgent one. Everything else takes the general path.
//!
//! The path cache remembers, per thread, the last few port handles it used and what they
//! resolved to, valid until the process's capability space next loses a capability.

use super::{Message, PortId, ReplyRef};
use crate::cap::{Found, Object};
use crate::kernel::Kernel;
use crate::sched::thread::{ThreadState, Tid};
use keel_abi::Error;
use keel_abi::cap::{Handle, kind};

const PATH_CACHE_ENTRIES: usize = 4;

#[derive(Clone, Copy)]
struct PathEntry {
    handle: Handle,
    epoch: u64,
    found: Found,
}

#[derive(Default)]
pub struct PathCache {
    entries: [Option<PathEntry>; PATH_CACHE_ENTRIES],
    next: usize,
}

impl Kernel {
    /// Resolve a port capability of the running thread, through its path cache.
    pub fn port_lookup(&mut self, handle: Handle, rights: u32) -> Result<(PortId, Found), Error> {
        let tid = self.sched.current;
        let pid = self.current_pid();
        let epoch = self.processes[&pid].caps.epoch();
        let cached = self.threads[&tid]
            .path_cache
            .entries
            .iter()
            .flatten()
            .find(|e| e.handle == handle && e.epoch == epoch && e.found.rights & rights == rights)
            .map(|e| e.found);
        let found = match cached {
            Some(found) => {
                self.ipc_stats.path_cache_hits += 1;
                found
            }
            None => {
                self.ipc_stats.path_cache_misses += 1;
                let found = self.cap_check(pid, handle, Some(kind::PORT), rights)?;
                let cache = &mut self
                    .threads
                    .get_mut(&tid)
                    .expect("running thread")
                    .path_cache;
                cache.entries[cache.next] = Some(PathEntry {
                    handle,
                    epoch,
                    found,
                });
                cache.next = (cache.next + 1) % PATH_CACHE_ENTRIES;
                found
            }
        };
        match found.object {
            Object::Port(port) => Ok((port, found)),
            _ => Err(Error::WrongType),
        }
    }

    fn may_switch_directly(&self, from: Tid, to: Tid) -> bool {
        let priority = |tid| self.threads.get(&tid).map_or(0, |t| t.priority);
        priority(to) >= priority(from)
    }

    /// A call straight into a waiting receiver. On success the caller is blocked awaiting
    /// `reply` and the receiver is the thread to switch to; otherwise the message comes back.
    pub fn fast_call(&mut self, port_id: PortId, message: Message) -> Result<Tid, Message> {
        let caller = self.sched.current;
        let receiver = self
            .ports
            .get(&port_id)
            .and_then(|p| p.receivers.front().copied());
        let Some(receiver) =
            receiver.filter(|&r| message.is_plain() && self.may_switch_directly(caller, r))
        else {
            return Err(message);
        };
        let seq = message.reply.map_or(0, |r| r.seq);
        let port = self.ports.get_mut(&port_id).expect("receiver found on it");
        port.receivers.pop_front();
        self.count(port_id, |s| {
            s.sent += 1;
            s.received += 1;
            s.fast_path_hits += 1;
        });
        self.hand_over(caller, ThreadState::WaitingReply(seq), receiver, message);
        Ok(receiver)
    }

    /// Answer `reply` and wait on `port` in one step, switching straight to the caller.
    pub fn fast_reply_recv(
        &mut self,
        reply: ReplyRef,
        port_id: PortId,
        message: Message,
    ) -> Result<Tid, Message> {
        let server = self.sched.current;
        let port_idle = self
            .ports
            .get(&port_id)
            .is_some_and(|p| p.queue.is_empty() && p.notify == 0 && !p.closed);
        if !(port_idle
            && message.is_plain()
            && self.reply_is_awaited(reply)
            && self.may_switch_directly(server, reply.caller))
        {
            return Err(message);
        }
        let port = self.ports.get_mut(&port_id).expect("checked above");
        port.receivers.push_back(server);
        self.count(port_id, |s| s.fast_path_hits += 1);
        self.count(reply.port, |s| s.replies += 1);
        let state = ThreadState::Receiving {
            port: port_id,
            until: None,
        };
        self.hand_over(server, state, reply.caller, message);
        Ok(reply.caller)
    }

    /// Block `from` in `state` and give `message` to `to`, which runs next.
    fn hand_over(&mut self, from: Tid, state: ThreadState, to: Tid, message: Message) {
        if let Some(thread) = self.threads.get_mut(&from) {
            thread.state = state;
        }
        let target = self.threads.get_mut(&to).expect("waiting thread exists");
        let waiting = target.state;
        target.inbox = Some(Ok(message));
        self.sched.forget(to, waiting);
    }

    /// Count a call or reply-and-receive that could not take the fast path.
    pub fn fast_path_missed(&mut self, port_id: PortId) {
        self.count(port_id, |s| s.fast_path_misses += 1);
    }
}
