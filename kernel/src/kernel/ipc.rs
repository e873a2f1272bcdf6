//! Messages across objects: a sender's message built from its IPC buffer and capability
//! space, delivered to a port (a waiting receiver's inbox, or the queue, charged to the
//! sender), and finished in the receiver's own address space; calls answered and abandoned.
//! The message types and the port's own rules are in `ipc/`.

use super::Kernel;
use crate::cap::Object;
use crate::ipc::{Delivered, Delivery, Message, PortId, Received, ReplyRef, Sent};
use crate::mm::user::UserSlice;
use crate::sched::thread::{ThreadState, Tid};
use alloc::vec::Vec;
use keel_abi::Error;
use keel_abi::cap::{AuditRecord, audit, rights};
use keel_abi::ipc::{IpcBuffer, MESSAGE_CAPS, MessageInfo};

impl Kernel {
    /// Build a message from what the caller sent and its IPC buffer. Capabilities named in
    /// the buffer are copied in flight (each needs GRANT, and the port capability too).
    pub fn message_from_caller(
        &mut self,
        sent: &Sent,
        badge: u64,
        port_rights: u32,
    ) -> Result<Message, Error> {
        let info = sent.info;
        let pid = self.current_pid();
        let mut message = Message {
            badge,
            info: MessageInfo::new(info.label(), 0, 0).0,
            words: sent.words,
            sender: pid,
            ..Message::default()
        };
        if info.payload_len() == 0 && info.caps() == 0 {
            return Ok(message);
        }
        if info.payload_len() > keel_abi::ipc::MAX_PAYLOAD || info.caps() > MESSAGE_CAPS {
            return Err(Error::InvalidArgument);
        }
        if info.caps() > 0 && port_rights & rights::GRANT == 0 {
            return Err(Error::MissingRight);
        }
        let buffer = self.checked_ipc_buffer().ok_or(Error::BadAddress)?;
        // Only what the message uses is read: the handles, then the payload's bytes.
        let mut caps = [0u8; 4 * MESSAGE_CAPS];
        let payload = UserSlice::new(
            buffer + core::mem::offset_of!(IpcBuffer, payload),
            info.payload_len(),
        );
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(info.payload_len())
            .map_err(|_| Error::OutOfMemory)?;
        bytes.resize(info.payload_len(), 0);
        // SAFETY: both ranges lie in the IPC buffer (the payload is at most MAX_PAYLOAD),
        // checked by `checked_ipc_buffer` in this syscall.
        unsafe {
            UserSlice::new(buffer, caps.len()).read_checked(&mut caps);
            payload.read_checked(&mut bytes);
        }
        message.payload = bytes;
        let caps: [u32; MESSAGE_CAPS] = core::array::from_fn(|i| {
            u32::from_le_bytes(caps[4 * i..4 * i + 4].try_into().unwrap_or_default())
        });
        let mut granted = heapless::Vec::<_, MESSAGE_CAPS>::new();
        for &handle in &caps[..info.caps()] {
            let cap = self.cap_check(pid, handle, None, rights::GRANT)?;
            let _ = granted.push((handle, cap));
        }
        for (handle, cap) in granted {
            let copy = self.cap_derive_in_flight(&cap, rights::ALL, 0);
            let _ = message.caps.push(copy);
            self.audit.record(AuditRecord {
                event: audit::GRANTED,
                error: 0,
                pid,
                handle,
                rights: cap.rights,
                other: 0,
                tick: crate::clock::ticks(),
            });
        }
        message.info = MessageInfo::new(info.label(), message.payload.len(), message.caps.len()).0;
        Ok(message)
    }

    /// The running thread's IPC buffer, readable and writable throughout: checked against
    /// its regions only when they lost some since the last check.
    fn checked_ipc_buffer(&mut self) -> Option<usize> {
        let tid = self.sched.current();
        let thread = self.threads.get_mut(&tid)?;
        let space = self.processes.get_mut(&thread.process())?.space.as_mut()?;
        thread.ipc_buffer_frame(space)?;
        thread.ipc_buffer()
    }

    /// Drop a message that will never be delivered: its capabilities, its reply.
    pub fn discard_message(&mut self, message: Message) {
        for cap in message.caps {
            self.cap_delete(cap);
        }
        if let Some(reply) = message.reply {
            self.abandon_reply(reply);
        }
    }

    /// A call's answer will never come: wake the caller with `PeerGone`.
    pub fn abandon_reply(&mut self, reply: ReplyRef) {
        if self.reply_is_awaited(reply) {
            self.wake_with(reply.caller, Delivery::Failed(Error::PeerGone));
        }
    }

    /// Whether the caller still waits for this answer, in a call or stopped at a fault.
    pub fn reply_is_awaited(&self, reply: ReplyRef) -> bool {
        self.threads.get(&reply.caller).is_some_and(|t| {
            t.state() == ThreadState::WaitingReply(reply.seq)
                || t.state() == ThreadState::Faulted(reply.seq)
        })
    }

    /// Hand `delivery` to a blocked thread and make it ready.
    pub fn wake_with(&mut self, tid: Tid, delivery: Delivery) {
        let Some(state) = self.threads.get(&tid).map(|t| t.state()) else {
            return;
        };
        self.sched.forget(tid, state);
        if let ThreadState::Receiving { port, .. } = state
            && let Some(port) = self.ports.get_mut(&port)
        {
            port.remove_receiver(&mut self.threads, tid);
        }
        if let Some(thread) = self.threads.get_mut(&tid) {
            thread.deliver(delivery);
            self.sched.ready(tid, thread);
        }
    }

    /// A receiver back from suspension takes what arrived meanwhile, or waits again.
    pub fn rejoin_receivers(&mut self, tid: Tid, port_id: PortId) {
        if self.ports.get(&port_id).is_none_or(|p| p.is_closed()) {
            self.wake_with(tid, Delivery::Failed(Error::PeerGone));
        } else if let Some(message) = self.take_waiting(port_id) {
            self.wake_with(tid, Delivery::Message(message));
        } else if let Some(port) = self.ports.get_mut(&port_id) {
            port.wait(&mut self.threads, tid);
        }
    }

    /// Send `message` to `port`: to a waiting receiver, else into the queue. On failure the
    /// message comes back so the caller can discard it.
    pub fn deliver(&mut self, port_id: PortId, message: Message) -> Result<(), (Error, Message)> {
        let Some(port) = self.ports.get_mut(&port_id) else {
            return Err((Error::PeerGone, message));
        };
        if port.is_closed() {
            return Err((Error::PeerGone, message));
        }
        if let Some(receiver) = port.pop_receiver(&self.threads) {
            self.count(port_id, |s| {
                s.sent += 1;
                s.received += 1;
            });
            self.wake_with(receiver, Delivery::Message(message));
            return Ok(());
        }
        if port.is_full() {
            self.count(port_id, |s| s.queue_full += 1);
            return Err((Error::QueueFull, message));
        }
        let charge = message.charge();
        let sender = message.sender;
        if !self.charge_kernel_bytes(sender, charge) {
            return Err((Error::QuotaExceeded, message));
        }
        self.ports
            .get_mut(&port_id)
            .expect("checked above")
            .enqueue(message);
        self.count(port_id, |s| s.sent += 1);
        Ok(())
    }

    /// The next message or notification waiting on a port.
    pub fn take_waiting(&mut self, port_id: PortId) -> Option<Message> {
        let port = self.ports.get_mut(&port_id)?;
        if port.notification() != 0 {
            let bits = port.take_notification();
            return Some(Message {
                info: MessageInfo::NOTIFICATION,
                words: [bits, 0, 0, 0],
                ..Message::default()
            });
        }
        let message = port.dequeue()?;
        self.refund_kernel_bytes(message.sender, message.charge());
        self.count(port_id, |s| s.received += 1);
        Some(message)
    }

    /// Finish a delivery in the receiver's own context: capabilities into its space,
    /// payload into its IPC buffer; what goes into its registers comes back, with result 1
    /// for a call.
    pub fn complete_delivery(&mut self, message: Message, how: Delivered) -> Received {
        let pid = self.current_pid();
        let mut info =
            MessageInfo::new(MessageInfo(message.info).label(), message.payload.len(), 0).0
                | (message.info & MessageInfo::NOTIFICATION);
        let mut handles = [0u32; MESSAGE_CAPS];
        let mut placed = 0;
        for cap in message.caps {
            match self.cap_place(pid, cap) {
                Ok(handle) => {
                    handles[placed] = handle;
                    placed += 1;
                }
                // Revoked on the way: it is simply gone.
                Err(Error::StaleHandle) => {}
                Err(_) => {
                    self.cap_delete(cap);
                    info |= MessageInfo::CAPS_DROPPED;
                }
            }
        }
        info |= (placed as u64) << 16;
        if !message.payload.is_empty() || placed > 0 {
            let written = self.checked_ipc_buffer().map(|buffer| {
                let mut bytes = [0u8; 4 * MESSAGE_CAPS];
                for (chunk, handle) in bytes.chunks_exact_mut(4).zip(handles) {
                    chunk.copy_from_slice(&handle.to_le_bytes());
                }
                let payload = UserSlice::new(
                    buffer + core::mem::offset_of!(IpcBuffer, payload),
                    message.payload.len(),
                );
                // SAFETY: both ranges lie in the IPC buffer (a payload is at most
                // MAX_PAYLOAD), checked by `checked_ipc_buffer` in this syscall.
                unsafe {
                    UserSlice::new(buffer, bytes.len()).write_checked(&bytes);
                    payload.write_checked(&message.payload);
                }
            });
            if written.is_none() {
                info = (info & !0xffff) | MessageInfo::PAYLOAD_DROPPED;
            }
        }
        // The answer to this thread's own call leaves the call it is serving alone.
        let is_call = how == Delivered::Received && self.set_pending_reply(message.reply);
        Received {
            result: is_call as usize,
            badge: message.badge,
            info,
            words: message.words,
        }
    }

    /// Remember the call this thread must answer; an unanswered earlier one is abandoned.
    pub fn set_pending_reply(&mut self, reply: Option<ReplyRef>) -> bool {
        let tid = self.sched.current();
        let Some(thread) = self.threads.get_mut(&tid) else {
            return false;
        };
        let previous = thread.replace_pending_reply(reply);
        if let Some(previous) = previous {
            self.abandon_reply(previous);
        }
        reply.is_some()
    }

    /// Answer a call: wake the caller with `message`.
    pub fn answer(&mut self, reply: ReplyRef, message: Message) -> Result<(), Error> {
        if !self.reply_is_awaited(reply) {
            self.discard_message(message);
            return Err(Error::PeerGone);
        }
        self.count(reply.port, |s| s.replies += 1);
        self.wake_with(reply.caller, Delivery::Message(message));
        Ok(())
    }

    /// A reply capability for the current thread's pending call.
    pub fn save_reply(&mut self) -> Result<keel_abi::cap::Handle, Error> {
        let tid = self.sched.current();
        let pid = self.current_pid();
        let reply = self
            .threads
            .get_mut(&tid)
            .and_then(|t| t.take_pending_reply())
            .ok_or(Error::NotFound)?;
        self.cap_create(pid, Object::Reply(reply), 0)
    }
}
