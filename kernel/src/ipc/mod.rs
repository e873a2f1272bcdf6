//! Ports: bounded message queues with waiting receivers, notification words, and calls
//! answered through one-shot replies.
//!
//! A message is four register words, a label, optionally a payload and capabilities (both
//! through the threads' IPC buffers) and optionally a reply. A message for a port with a
//! waiting receiver goes straight into that thread's inbox; otherwise it queues, charged to
//! the sender, until the queue is full. Notifications are bits OR-ed into the port's word:
//! they never queue and never fill up. The receiver finishes a delivery itself, in its own
//! address space ([`Kernel::complete_delivery`]), so the kernel only ever copies to and from
//! the current address space; only the fast path writes a payload straight into a waiting
//! receiver's IPC buffer, through the direct map (`kernel/fastpath.rs`). What crosses objects
//! (building, delivering and finishing a message) is the root's: `kernel/ipc.rs` and
//! `kernel/port.rs`.

pub mod path_cache;
pub mod port;

use crate::id::CapId;
use crate::id::Pid;
use crate::id::Tid;
use alloc::vec::Vec;
use keel_abi::Error;
use keel_abi::ipc::{MESSAGE_CAPS, MessageInfo};
pub use port::{Port, PortId};

/// A call awaiting its answer: the caller and which of its calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyRef {
    pub caller: Tid,
    pub seq: u64,
    /// The port the call came through (for its statistics).
    pub port: PortId,
}

/// Kernel bytes a queued message costs its sender besides its payload.
pub const MESSAGE_COST: usize = 128;

#[derive(Default)]
pub struct Message {
    pub badge: u64,
    pub info: u64,
    pub words: [u64; 4],
    pub payload: Vec<u8>,
    /// In-flight capabilities: children of the sender's.
    pub caps: heapless::Vec<CapId, MESSAGE_CAPS>,
    pub reply: Option<ReplyRef>,
    /// Charged for the message while it is queued.
    pub sender: Pid,
}

impl Message {
    pub fn charge(&self) -> usize {
        MESSAGE_COST + self.payload.len()
    }
}

/// A message as the sender's syscall gives it: the info (label, payload length, number of
/// capabilities) and four words; payload and capabilities are in its IPC buffer.
#[derive(Clone, Copy)]
pub struct Sent {
    pub info: MessageInfo,
    pub words: [u64; 4],
}

/// A message as the receiver's syscall returns it, in registers: the syscall's result (1
/// for a call to answer), the badge, the info and four words.
#[derive(Clone, Copy)]
pub struct Received {
    pub result: usize,
    pub badge: u64,
    pub info: u64,
    pub words: [u64; 4],
}

/// What a blocked thread finds when it wakes from a receive, a call or a fault.
pub enum Delivery {
    /// A message to finish delivering in the thread's own address space.
    Message(Message),
    /// Already in the thread's saved registers, and any payload in its IPC buffer (the fast
    /// path): the syscall's result.
    InRegisters(usize),
    Failed(Error),
}

/// How a message reached the thread completing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Received from a port: it may be a call this thread must now answer.
    Received,
    /// The answer to this thread's own call.
    Answer,
}
