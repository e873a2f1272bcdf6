//! Ports and messages, safely: what servers and clients (and the executor) use.
//!
//! A [`Port`] is a handle to a port capability; like a pid, it names something and is
//! copied freely, and the capability lives until it is deleted, revoked, or the process
//! ends. A [`Message`] is a label, four words, and optionally payload bytes and
//! capabilities; the payload and capabilities travel through the thread's IPC buffer, a
//! page rt maps and registers for each thread the first time it needs one.
//!
//! A receive brings a [`Received`]: notification bits, or a message; a call comes with its
//! [`Reply`], the right to answer it once. A server loop can instead use [`Port::serve`],
//! which answers each call and waits for the next one in a single syscall.

mod buffer;
mod message;
mod reply;
mod serve;

use core::time::Duration;

use keel_abi::Error;
use keel_abi::cap::Handle;
/// The counters [`Port::stats`] and [`system_stats`] return.
pub use keel_abi::ipc::IpcStats;
use keel_abi::ipc::MessageInfo;

pub(crate) use message::Woken;
pub use message::{Message, Received};
pub use reply::Reply;
pub use serve::Request;

use crate::sys;

/// A port capability, by handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port(Handle);

impl Port {
    /// A new port queueing up to `capacity` (1..=64) messages, with every port right.
    pub fn create(capacity: usize) -> Result<Port, Error> {
        sys::ipc::port_create(capacity).map(Port)
    }

    /// The port capability this process holds as `handle`.
    pub const fn from_handle(handle: Handle) -> Port {
        Port(handle)
    }

    /// The capability's handle.
    pub fn handle(self) -> Handle {
        self.0
    }

    /// A copy of this capability with at most `rights` (and `badge`, if it has none yet).
    pub fn derive(self, rights: u32, badge: u64) -> Result<Port, Error> {
        sys::ipc::cap_derive(self.0, rights, badge).map(Port)
    }

    /// Deletes this capability (copies derived from it stay).
    pub fn delete(self) -> Result<(), Error> {
        sys::ipc::cap_delete(self.0)
    }

    /// Queues `message` without waiting; a full queue is [`Error::QueueFull`].
    pub fn send(self, message: &Message) -> Result<(), Error> {
        let info = message.stage()?;
        sys::ipc::port_send(self.0, info, message.words)
    }

    /// Sends `message` as a call and waits for the answer.
    pub fn call(self, message: &Message) -> Result<Message, Error> {
        // The answer may carry a payload: the buffer must be there to take it.
        buffer::current()?;
        let info = message.stage()?;
        let raw = sys::ipc::port_call(self.0, info, message.words)?;
        Ok(Message::collect(&raw))
    }

    /// Waits for a message or notification: for ever with `None`, else at most `timeout`
    /// ([`Error::TimedOut`]); a zero timeout polls ([`Error::WouldBlock`]).
    pub fn receive(self, timeout: Option<Duration>) -> Result<Received, Error> {
        buffer::current()?;
        let (is_call, raw) = sys::ipc::port_recv(self.0, timeout_ns(timeout))?;
        Received::from_raw(is_call, raw)
    }

    /// Signal and wait: notifies `signal` with `bits`, then waits on this port as
    /// [`receive`](Port::receive) does, in one syscall. When a thread of no lower priority
    /// waits on `signal`, the CPU passes straight to it.
    pub fn signal_receive(
        self,
        signal: Port,
        bits: u64,
        timeout: Option<Duration>,
    ) -> Result<Received, Error> {
        buffer::current()?;
        let (is_call, raw) =
            sys::ipc::port_signal_recv(signal.0, bits, self.0, timeout_ns(timeout))?;
        Received::from_raw(is_call, raw)
    }

    /// [`receive`](Port::receive) on a thread whose IPC buffer [`prepare_receive`] has set
    /// up: the executor's, which receives on every wait and need not look it up each time;
    /// with `signal`, notifying that port first in the same syscall, as
    /// [`signal_receive`](Port::signal_receive). Notification bits and inline requests come
    /// as they are, without the making and moving of a [`Received`] that the executor's
    /// every wake-up would pay for. With `signal`, an error other than a timeout means the
    /// signal failed and nothing was received.
    pub(crate) fn receive_prepared(
        self,
        signal: Option<(Port, u64)>,
        timeout: Option<Duration>,
    ) -> Result<Woken, Error> {
        let (is_call, raw) = match signal {
            Some((to, bits)) => {
                sys::ipc::port_signal_recv(to.0, bits, self.0, timeout_ns(timeout))?
            }
            None => sys::ipc::port_recv_unflushed(self.0, timeout_ns(timeout))?,
        };
        Woken::from_raw(is_call, raw)
    }

    /// Answer the call this thread took last with `label` and `words`, then wait for ever
    /// as [`receive_prepared`](Port::receive_prepared) does, in one syscall
    /// (`port_reply_recv`: the kernel's fast path to a caller still waiting).
    pub(crate) fn reply_receive_prepared(
        self,
        label: u32,
        words: [u64; 4],
    ) -> Result<Woken, Error> {
        let info = MessageInfo::new(label, 0, 0);
        let (is_call, raw) = sys::ipc::port_reply_recv_unflushed(self.0, info, words)?;
        Woken::from_raw(is_call, raw)
    }

    /// A call of `label` and `words` alone, made only if a receiver waits on the port now
    /// (`WouldBlock` otherwise, nothing sent), answered with a label and words alone: an
    /// answer with capabilities or a payload is not one (its capabilities are deleted) and
    /// fails with `InvalidArgument`.
    pub(crate) fn call_receiver(
        self,
        label: u32,
        words: [u64; 4],
    ) -> Result<(u32, [u64; 4]), Error> {
        let info = MessageInfo(MessageInfo::new(label, 0, 0).0 | MessageInfo::TO_RECEIVER);
        let raw = sys::ipc::port_call(self.0, info, words)?;
        if raw.info.caps() != 0 || raw.info.payload_len() != 0 {
            for cap in Message::collect(&raw).caps {
                let _ = sys::ipc::cap_delete(cap);
            }
            return Err(Error::InvalidArgument);
        }
        Ok((raw.info.label(), raw.words))
    }

    /// ORs `bits` into the port's notification word and wakes a receiver; never blocks.
    pub fn notify(self, bits: u64) -> Result<(), Error> {
        sys::ipc::port_notify(self.0, bits)
    }

    /// This port's counters ([`IpcStats`]): messages sent to it and received from it,
    /// calls, replies, notifications, fast-path hits, queue-full refusals. The shell's
    /// `ipcstat` prints them.
    ///
    /// ```ignore
    /// let stats = keel_rt::executor::wake::port().stats()?;
    /// println!("{} received, {} refused for a full queue", stats.received, stats.queue_full);
    /// ```
    pub fn stats(self) -> Result<IpcStats, Error> {
        sys::ipc::ipc_stats(self.0)
    }
}

/// The whole system's IPC counters since boot: [`Port::stats`] summed over every port.
pub fn system_stats() -> Result<IpcStats, Error> {
    sys::ipc::ipc_stats(0)
}

/// Set up the calling thread's IPC buffer now, for [`Port::receive_prepared`]: whether it
/// is there.
pub(crate) fn prepare_receive() -> bool {
    buffer::current().is_ok()
}

/// Ends the calling thread's use of IPC: its buffer is unregistered and unmapped.
pub(crate) fn thread_ending() {
    buffer::release();
}

fn timeout_ns(timeout: Option<Duration>) -> u64 {
    // A finite timeout must not turn into `u64::MAX`, which means "for ever".
    timeout.map_or(u64::MAX, |t| {
        u64::try_from(t.as_nanos()).map_or(u64::MAX - 1, |ns| ns.min(u64::MAX - 1))
    })
}
