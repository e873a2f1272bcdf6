//! The port object: a bounded queue, the threads waiting to receive, a notification word.

use super::{Delivery, Message};
use crate::kernel::Kernel;
use crate::sched::thread::Tid;
use alloc::collections::VecDeque;
use keel_abi::Error;
use keel_abi::cap::rights;
use keel_abi::ipc::{IpcStats, MAX_PORT_CAPACITY, MessageInfo};

pub type PortId = crate::table::Id;

pub struct Port {
    pub queue: VecDeque<Message>,
    pub capacity: usize,
    /// Threads blocked in receive, first come first served.
    pub receivers: VecDeque<Tid>,
    /// Notification bits not yet received.
    pub notify: u64,
    /// No capability with RECEIVE is left: nothing sent would ever be received.
    pub closed: bool,
    pub stats: IpcStats,
}

impl Port {
    pub fn new(capacity: usize) -> Result<Self, Error> {
        if capacity == 0 || capacity > MAX_PORT_CAPACITY {
            return Err(Error::InvalidArgument);
        }
        Ok(Port {
            queue: VecDeque::new(),
            capacity,
            receivers: VecDeque::new(),
            notify: 0,
            closed: false,
            stats: IpcStats::default(),
        })
    }
}

impl Kernel {
    /// Count an event on a port and in the system-wide totals.
    pub fn count(&mut self, port: PortId, bump: impl Fn(&mut IpcStats)) {
        bump(&mut self.ipc_stats);
        if let Some(port) = self.ports.get_mut(&port) {
            bump(&mut port.stats);
        }
    }

    /// OR `bits` into a port's notification word and wake a receiver with them. Zero bits
    /// wake nobody: a sender may notify 0 just to learn the port is still served.
    pub fn notify_port(&mut self, port_id: PortId, bits: u64) -> Result<(), Error> {
        let port = self.ports.get_mut(&port_id).ok_or(Error::PeerGone)?;
        if port.closed {
            return Err(Error::PeerGone);
        }
        port.notify |= bits;
        port.stats.notifications += 1;
        self.ipc_stats.notifications += 1;
        if bits == 0 {
            return Ok(());
        }
        let Some(receiver) = port.receivers.pop_front() else {
            return Ok(());
        };
        // The bits go straight into the waiting receiver's registers.
        let bits = core::mem::take(&mut port.notify);
        let thread = self
            .threads
            .get_mut(&receiver)
            .expect("waiting thread exists");
        thread.load_registers(0, MessageInfo::NOTIFICATION, [bits, 0, 0, 0]);
        let state = thread.state;
        thread.inbox = Some(Delivery::InRegisters(0));
        self.sched.forget(receiver, state);
        self.sched.ready(receiver, thread);
        Ok(())
    }

    /// A capability to `port` went away: close the port when no receiver can remain, and
    /// free it when no capability does.
    pub fn port_capability_gone(&mut self, port_id: PortId) {
        let object = crate::cap::Object::Port(port_id);
        let any_left = self.caps.count(object) > 0;
        let receivers_left = self.caps.count_with(object, rights::RECEIVE) > 0;
        if receivers_left {
            return;
        }
        let Some(port) = self.ports.get_mut(&port_id) else {
            return;
        };
        port.closed = true;
        let queued: alloc::vec::Vec<Message> = port.queue.drain(..).collect();
        let waiting: alloc::vec::Vec<Tid> = port.receivers.drain(..).collect();
        for message in queued {
            self.refund_kernel_bytes(message.sender, message.charge());
            self.discard_message(message);
        }
        for tid in waiting {
            self.wake_with(tid, Delivery::Failed(Error::PeerGone));
        }
        if !any_left {
            self.ports.remove(&port_id);
        }
    }
}
