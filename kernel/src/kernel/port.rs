//! Ports across objects: the counters, notifying a port (the bits straight into a waiting
//! receiver's registers), and a port no thread can receive from any more closed and
//! drained, with what its messages held. The port's own rules are in `ipc/port.rs`.

use super::Kernel;
use crate::cap::{CapId, Found, Holder, Object};
use crate::ipc::path_cache::PathEntry;
use crate::ipc::{Delivery, Message, PortId};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use keel_abi::Error;
use keel_abi::cap::{Handle, kind, rights};
use keel_abi::ipc::{IpcStats, MessageInfo};

impl Kernel {
    /// The system-wide counters. Every fast-path message also found its port in the path
    /// cache.
    pub fn ipc_stats(&self) -> IpcStats {
        let fast = self.sched.fast_counts();
        let mut stats = fast.fold(self.ipc_stats);
        stats.path_cache_hits += fast.lookups();
        stats
    }

    /// Count an event on a port and in the system-wide totals.
    pub fn count(&mut self, port: PortId, bump: impl Fn(&mut IpcStats)) {
        bump(&mut self.ipc_stats);
        if let Some(port) = self.ports.get_mut(&port) {
            port.count(bump);
        }
    }

    /// OR `bits` into a port's notification word and wake a receiver with them. Zero bits
    /// wake nobody: a sender may notify 0 just to learn the port is still served.
    pub fn notify_port(&mut self, port_id: PortId, bits: u64) -> Result<(), Error> {
        let port = self.ports.get_mut(&port_id).ok_or(Error::PeerGone)?;
        if port.is_closed() {
            return Err(Error::PeerGone);
        }
        port.raise(bits);
        port.count(|s| s.notifications += 1);
        self.ipc_stats.notifications += 1;
        if bits == 0 {
            return Ok(());
        }
        let Some(receiver) = port.pop_receiver(&self.threads) else {
            return Ok(());
        };
        // The bits go straight into the waiting receiver's registers.
        let bits = port.take_notification();
        let thread = self
            .threads
            .get_mut(&receiver)
            .expect("waiting thread exists");
        thread.load_registers(0, 0, MessageInfo::NOTIFICATION, [bits, 0, 0, 0]);
        let state = thread.state();
        thread.deliver(Delivery::InRegisters(0));
        self.sched.forget(receiver, state);
        self.sched.ready(receiver, thread);
        Ok(())
    }

    /// A capability to `port` went away: close the port when no capability with RECEIVE can
    /// be used any more, and free it when no capability is left at all. A capability that
    /// travels only in queues no thread can receive from (the port's own, or those of ports
    /// in the same plight) can never come out: the ports are closed together, their queues
    /// drained, and what the messages held goes too.
    pub fn port_capability_gone(&mut self, port_id: PortId) {
        let Some(dead) = self.unreceivable_ports(port_id) else {
            return;
        };
        let mut queued = Vec::new();
        for &dead_id in &dead {
            let Some(port) = self.ports.get_mut(&dead_id) else {
                continue;
            };
            let start = queued.len();
            let waiting = port.close(&self.threads, &mut queued);
            for message in &queued[start..] {
                self.refund_kernel_bytes(message.sender, message.charge());
            }
            for tid in waiting {
                self.wake_with(tid, Delivery::Failed(Error::PeerGone));
            }
        }
        self.discard_all(queued);
        for dead_id in dead {
            if self.caps.count(crate::cap::Object::Port(dead_id)) == 0 {
                self.ports.remove(&dead_id);
            }
        }
    }

    /// `port_id` and the ports it is stuck with, if no thread can ever receive from it: every
    /// capability to it with RECEIVE sits in the queue of a port of which the same holds.
    /// `None` while one is in a capability space or on its way into one (a thread's inbox).
    fn unreceivable_ports(&self, port_id: PortId) -> Option<Vec<PortId>> {
        let receive_rights = |port| {
            self.caps
                .holders_with(crate::cap::Object::Port(port), rights::RECEIVE)
        };
        // The usual case, cheaply: a receive right in a slot.
        if receive_rights(port_id).any(|(_, holder)| holder != Holder::InFlight) {
            return None;
        }
        let mut dead = alloc::vec![port_id];
        if receive_rights(port_id).next().is_none() {
            return Some(dead);
        }
        let queued_on: BTreeMap<CapId, PortId> = self
            .ports
            .iter()
            .flat_map(|(id, port)| {
                port.queued()
                    .flat_map(move |message| message.caps.iter().map(move |&cap| (cap, id)))
            })
            .collect();
        let mut next = 0;
        while let Some(&port) = dead.get(next) {
            next += 1;
            for (cap, holder) in receive_rights(port) {
                let on = match holder {
                    Holder::InFlight => *queued_on.get(&cap)?,
                    Holder::Slot(..) => return None,
                };
                if !dead.contains(&on) {
                    dead.push(on);
                }
            }
        }
        Some(dead)
    }

    /// Discard `messages` that will never be delivered. Discarding one can kill another port
    /// (it held that port's last capability), whose messages then join the list instead of
    /// being discarded inside this call: a chain of ports, each queue holding the last
    /// capability to the next, is freed in a loop, not a recursion as deep as the chain.
    pub fn discard_all(&mut self, messages: Vec<Message>) {
        self.doomed.extend(messages);
        if core::mem::replace(&mut self.discarding, true) {
            return;
        }
        while let Some(message) = self.doomed.pop() {
            self.discard_message(message);
        }
        self.discarding = false;
    }
}

impl Kernel {
    /// Resolve a port capability of the running thread, through its path cache.
    #[inline(always)]
    pub fn port_lookup(&mut self, handle: Handle, rights: u32) -> Result<(PortId, Found), Error> {
        let Some(&entry) = self.running().path_cache().find(handle, rights) else {
            return self.port_lookup_miss(handle, rights);
        };
        self.ipc_stats.path_cache_hits += 1;
        let found = Found {
            id: entry.cap,
            object: Object::Port(entry.port),
            rights: entry.rights,
            badge: entry.badge,
        };
        Ok((entry.port, found))
    }

    /// [`Kernel::port_lookup`] past the path cache: check the capability and remember it.
    #[cold]
    #[inline(never)]
    fn port_lookup_miss(&mut self, handle: Handle, rights: u32) -> Result<(PortId, Found), Error> {
        let tid = self.sched.current();
        let pid = self.current_pid();
        self.ipc_stats.path_cache_misses += 1;
        let found = self.cap_check(pid, handle, Some(kind::PORT), rights)?;
        let Object::Port(port) = found.object else {
            return Err(Error::WrongType);
        };
        let cache = self
            .threads
            .get_mut(&tid)
            .expect("running thread")
            .path_cache_mut();
        cache.remember(PathEntry {
            handle,
            rights: found.rights,
            port,
            cap: found.id,
            badge: found.badge,
        });
        Ok((port, found))
    }
}
