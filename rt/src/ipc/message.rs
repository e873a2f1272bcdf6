//! Messages: what a sender passes, and what a receive brings.

use alloc::vec::Vec;

use keel_abi::Error;
use keel_abi::cap::Handle;
use keel_abi::ipc::{FAULT_RESUME, LABEL_FAULT, MessageInfo};

use super::buffer;
use super::reply::Reply;
use crate::process::Fault;
use crate::sys::ipc::RawMessage;
use crate::thread::Thread;

/// A message: a label and four words, and optionally payload bytes and capabilities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// What the message means, by the convention of its receiver; [`LABEL_FAULT`] is taken.
    pub label: u32,
    /// Four words, carried in registers.
    pub words: [u64; 4],
    /// Up to [`MAX_PAYLOAD`](keel_abi::ipc::MAX_PAYLOAD) bytes, carried in IPC buffers.
    pub payload: Vec<u8>,
    /// Up to [`MESSAGE_CAPS`](keel_abi::ipc::MESSAGE_CAPS) capabilities. Sent, each is
    /// copied (it needs GRANT, and so does the capability sent through); received, they
    /// are the copies' handles in this process.
    pub caps: Vec<Handle>,
}

impl Message {
    /// A message of a label and four words.
    pub fn new(label: u32, words: [u64; 4]) -> Self {
        Message {
            label,
            words,
            ..Message::default()
        }
    }

    /// The same message carrying `payload`.
    pub fn with_payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// The same message carrying copies of `caps`.
    pub fn with_caps(mut self, caps: &[Handle]) -> Self {
        self.caps = caps.to_vec();
        self
    }

    /// The fault this message reports, if it has the kernel's fault label. Anyone may send
    /// that label: a fault handler trusts only the badge of the port it gave the kernel.
    pub fn fault(&self) -> Option<Fault> {
        let [vector, error_code, rip, address] = self.words;
        (self.label == LABEL_FAULT).then_some(Fault {
            vector: vector as u32,
            error_code: error_code as i64,
            rip,
            address,
        })
    }

    /// Takes the capability to the faulting thread out of a fault message (READ, MANAGE:
    /// to read and change its registers before answering). Received messages' capabilities
    /// are plain handles; this one becomes owned, deleted when dropped.
    pub fn take_fault_thread(&mut self) -> Option<Thread> {
        if self.label != LABEL_FAULT || self.caps.is_empty() {
            return None;
        }
        Some(Thread::from_handle(self.caps.remove(0)))
    }

    /// The answer to a fault message that resumes the faulting thread: it retries the
    /// instruction, or continues at `rip` if given.
    pub fn resume(rip: Option<u64>) -> Self {
        Message::new(0, [FAULT_RESUME, rip.unwrap_or(0), 0, 0])
    }

    /// The answer to a fault message that ends the faulting process.
    pub fn end_faulted() -> Self {
        Message::new(0, [FAULT_RESUME + 1, 0, 0, 0])
    }

    /// Puts the payload and capabilities in the IPC buffer; the info word to send with.
    pub(super) fn stage(&self) -> Result<MessageInfo, Error> {
        buffer::stage(self.label, &self.payload, &self.caps)
    }

    /// The message the kernel delivered in registers and the IPC buffer.
    pub(super) fn collect(raw: &RawMessage) -> Message {
        let (payload, caps) = buffer::take(raw.info);
        Message {
            label: raw.info.label(),
            words: raw.words,
            payload,
            caps,
        }
    }
}

/// What a receive brought.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Notification bits, OR-ed together since the port's last receive.
    Notification(u64),
    /// A message, stamped with the `badge` of the capability it was sent through (0 for
    /// none). `reply` is there when it is a call: the caller waits until it is sent or
    /// dropped (then the caller gets `PeerGone`). `info` holds the kernel's flags, such as
    /// [`MessageInfo::caps_dropped`] when this process had no room for the capabilities.
    Message {
        badge: u64,
        message: Message,
        reply: Option<Reply>,
        info: MessageInfo,
    },
}

/// What the executor's sleep brings: notification bits, an inline request (a call of
/// words alone, answered by the executor itself), or anything else as a [`Received`].
pub(crate) enum Woken {
    Bits(u64),
    Inline {
        badge: u64,
        label: u32,
        words: [u64; 4],
    },
    Message(Received),
}

impl Woken {
    pub(super) fn from_raw(is_call: bool, raw: RawMessage) -> Result<Woken, Error> {
        let info = raw.info;
        if info.is_notification() {
            return Ok(Woken::Bits(raw.words[0]));
        }
        let alone = info.caps() == 0 && info.payload_len() == 0;
        if is_call && alone && crate::executor::inline::is_request(info.label()) {
            return Ok(Woken::Inline {
                badge: raw.badge,
                label: info.label(),
                words: raw.words,
            });
        }
        Received::from_raw(is_call, raw).map(Woken::Message)
    }
}

impl Received {
    /// Collects what a receive returned; a call's reply is saved at once, so that the next
    /// receive cannot take its place.
    pub(super) fn from_raw(is_call: bool, raw: RawMessage) -> Result<Received, Error> {
        if raw.info.is_notification() {
            return Ok(Received::Notification(raw.words[0]));
        }
        let message = Message::collect(&raw);
        let reply = if is_call {
            match Reply::save() {
                Ok(reply) => Some(reply),
                Err(error) => {
                    // Without a reply the message cannot be handled: drop what it carried.
                    for &cap in &message.caps {
                        let _ = crate::sys::ipc::cap_delete(cap);
                    }
                    return Err(error);
                }
            }
        } else {
            None
        };
        Ok(Received::Message {
            badge: raw.badge,
            message,
            reply,
            info: raw.info,
        })
    }
}
