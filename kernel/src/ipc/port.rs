//! The port object: a bounded queue, the threads waiting to receive, a notification word.

use super::Message;
use crate::id::Tid;
use crate::table::Table;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use keel_abi::Error;
use keel_abi::ipc::{IpcStats, MAX_PORT_CAPACITY};

pub use crate::id::PortId;

/// What a port's line of waiting receivers is linked through: their records (threads, in
/// `sched`), so that waiting and waking allocate nothing and a port needs no thread type.
pub trait Receiver {
    fn next_receiver(&self) -> Tid;
    fn set_next_receiver(&mut self, next: Tid);
}

/// A port. Its rule: a thread waits among its receivers only while nothing (no message, no
/// notification bit) waits to be received, so a sender finding a receiver hands over
/// directly and a receiver finding something takes it at once. A closed port takes
/// nothing and has nobody waiting.
pub struct Port {
    queue: VecDeque<Message>,
    capacity: usize,
    /// Threads blocked in receive, first come first served.
    receivers: Receivers,
    /// Notification bits not yet received.
    notify: u64,
    /// No capability with RECEIVE is left: nothing sent would ever be received.
    closed: bool,
    stats: IpcStats,
    fast: FastCounts,
}

/// Calls and replies the fast path handed over, counted apart so that it bumps one word
/// per message; [`FastCounts::fold`] counts them in where they belong.
#[derive(Clone, Copy, Default)]
pub struct FastCounts {
    pub calls: u64,
    pub replies: u64,
    /// Notifications by `port_signal_recv`, handed straight to a waiting receiver.
    pub signals: u64,
    /// Notifications by `port_notify`: bits left on the port, or handed to a receiver at
    /// home on the notifier's core.
    pub notifies: u64,
    /// Notifications by interrupts and the log, the same way (no capability looked up).
    pub events: u64,
}

impl FastCounts {
    /// Both counts together.
    pub fn add(self, other: FastCounts) -> FastCounts {
        FastCounts {
            calls: self.calls + other.calls,
            replies: self.replies + other.replies,
            signals: self.signals + other.signals,
            notifies: self.notifies + other.notifies,
            events: self.events + other.events,
        }
    }

    /// `stats` with the fast path's calls (each sent, received and a call), replies and
    /// signals (each a notification).
    pub fn fold(self, mut stats: IpcStats) -> IpcStats {
        stats.calls += self.calls;
        stats.sent += self.calls;
        stats.received += self.calls;
        stats.replies += self.replies;
        let notifications = self.signals + self.notifies + self.events;
        stats.notifications += notifications;
        stats.fast_path_hits += self.calls + self.replies + notifications;
        stats
    }

    /// Port handles the fast path found in path caches: one per call, reply or notify, two
    /// per signal (the port signalled and the port waited on).
    pub fn lookups(self) -> u64 {
        self.calls + self.replies + self.notifies + 2 * self.signals
    }
}

impl Port {
    pub fn new(capacity: usize) -> Result<Self, Error> {
        if capacity == 0 || capacity > MAX_PORT_CAPACITY {
            return Err(Error::InvalidArgument);
        }
        Ok(Port {
            queue: VecDeque::new(),
            capacity,
            receivers: Receivers::default(),
            notify: 0,
            closed: false,
            stats: IpcStats::default(),
            fast: FastCounts::default(),
        })
    }

    // What waits on it. What the fast path asks is inlined always.

    #[inline(always)]
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether a message or a notification waits to be received.
    #[inline(always)]
    pub fn has_waiting(&self) -> bool {
        self.notify != 0 || !self.queue.is_empty()
    }

    #[inline(always)]
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The notification bits waiting (0: none).
    #[inline(always)]
    pub fn notification(&self) -> u64 {
        self.notify
    }

    /// The notification bits waiting, taken (0: none).
    #[inline(always)]
    pub fn take_notification(&mut self) -> u64 {
        core::mem::take(&mut self.notify)
    }

    /// OR `bits` into the notification word, for a receiver to take.
    pub fn raise(&mut self, bits: u64) {
        self.notify |= bits;
    }

    pub fn is_full(&self) -> bool {
        self.queue.len() >= self.capacity
    }

    /// Queue `message`, for a port with nobody waiting and room (see [`Port::is_full`]).
    pub fn enqueue(&mut self, message: Message) {
        debug_assert!(self.receivers.first().is_none() && !self.is_full());
        self.queue.push_back(message);
    }

    pub fn dequeue(&mut self) -> Option<Message> {
        self.queue.pop_front()
    }

    /// The messages queued, oldest first.
    pub fn queued(&self) -> impl Iterator<Item = &Message> {
        self.queue.iter()
    }

    /// Close it for good: its queue moves to the end of `drained`, and the threads that were
    /// waiting to receive come back, in order, to be woken with the news.
    pub fn close(
        &mut self,
        threads: &Table<impl Receiver>,
        drained: &mut Vec<Message>,
    ) -> Vec<Tid> {
        self.closed = true;
        drained.extend(self.queue.drain(..));
        self.receivers.take_all(threads)
    }

    // Its receivers.

    #[inline(always)]
    pub fn first_receiver(&self) -> Option<Tid> {
        self.receivers.first()
    }

    /// `tid` waits to receive, last in line: only while nothing waits to be received.
    #[inline]
    pub fn wait(&mut self, threads: &mut Table<impl Receiver>, tid: Tid) {
        debug_assert!(!self.has_waiting() && !self.closed);
        self.receivers.push(threads, tid);
    }

    /// The last receiver in line, if any.
    #[inline(always)]
    pub fn last_receiver(&self) -> Option<Tid> {
        self.receivers.last()
    }

    /// `tid` waits to receive, last in line behind `last`, the record of
    /// [`last_receiver`](Self::last_receiver) (the fast path holds it): only while nothing
    /// waits to be received.
    #[inline(always)]
    pub fn wait_behind(&mut self, last: Option<&mut impl Receiver>, tid: Tid) {
        debug_assert!(!self.has_waiting() && !self.closed);
        self.receivers.push_behind(last, tid);
    }

    /// Take the first receiver in line, to hand it what arrived.
    #[inline(always)]
    pub fn pop_receiver(&mut self, threads: &Table<impl Receiver>) -> Option<Tid> {
        self.receivers.pop(threads)
    }

    /// Take the first receiver in line, whose record is `first` (the fast path holds it).
    #[inline(always)]
    pub fn pop_first_receiver(&mut self, first: &impl Receiver) {
        self.receivers.pop_first(first);
    }

    /// `tid` no longer waits here (woken, suspended or gone).
    #[inline(always)]
    pub fn remove_receiver(&mut self, threads: &mut Table<impl Receiver>, tid: Tid) {
        self.receivers.remove(threads, tid);
    }

    // Its counters.

    pub fn count(&mut self, bump: impl Fn(&mut IpcStats)) {
        bump(&mut self.stats);
    }

    #[inline(always)]
    pub fn count_fast_call(&mut self) {
        self.fast.calls += 1;
    }

    #[inline(always)]
    pub fn count_fast_reply(&mut self) {
        self.fast.replies += 1;
    }

    #[inline(always)]
    pub fn count_fast_signal(&mut self) {
        self.fast.signals += 1;
    }

    #[inline(always)]
    pub fn count_fast_notify(&mut self) {
        self.fast.notifies += 1;
    }
}

/// The threads blocked in receive on a port, first come first served: a list linked through
/// their records ([`Receiver::next_receiver`]), so waiting and waking allocate nothing and the
/// fast path, holding the records already, looks nothing up. A thread is in at most one list,
/// at most once, and leaves it before its record goes.
#[derive(Clone, Copy, Default)]
pub struct Receivers {
    /// The first and the last waiting, if any. The last one's link means nothing.
    ends: Option<(Tid, Tid)>,
}

impl Receivers {
    pub fn first(&self) -> Option<Tid> {
        self.ends.map(|(first, _)| first)
    }

    pub fn last(&self) -> Option<Tid> {
        self.ends.map(|(_, last)| last)
    }

    /// Put `tid` last in line.
    #[inline]
    pub fn push(&mut self, threads: &mut Table<impl Receiver>, tid: Tid) {
        let last = self.last().and_then(|last| threads.get_mut(&last));
        self.push_behind(last, tid);
    }

    /// Put `tid` last in line, behind `last`, the record of the last in line now (if any).
    #[inline(always)]
    pub fn push_behind(&mut self, last: Option<&mut impl Receiver>, tid: Tid) {
        match (&mut self.ends, last) {
            (Some((_, end)), Some(last)) => {
                last.set_next_receiver(tid);
                *end = tid;
            }
            _ => self.ends = Some((tid, tid)),
        }
    }

    /// Take the first in line.
    pub fn pop(&mut self, threads: &Table<impl Receiver>) -> Option<Tid> {
        let (first, last) = self.ends?;
        self.ends = match threads.get(&first) {
            Some(thread) if first != last => Some((thread.next_receiver(), last)),
            _ => None,
        };
        Some(first)
    }

    /// Take the first in line, whose record is `first`.
    pub fn pop_first(&mut self, first: &impl Receiver) {
        if let Some((head, last)) = self.ends {
            self.ends = (head != last).then_some((first.next_receiver(), last));
        }
    }

    /// Take `tid` out of the line, wherever it stands (if it does); the others keep their
    /// order.
    pub fn remove(&mut self, threads: &mut Table<impl Receiver>, tid: Tid) {
        let Some((first, last)) = self.ends else {
            return;
        };
        if first == tid {
            self.pop(threads);
            return;
        }
        // No thread stands in line twice: the walk reaches the last within this many steps.
        let mut previous = first;
        for _ in 0..crate::mm::stacks::SLOTS {
            if previous == last {
                return;
            }
            let Some(next) = threads.get(&previous).map(|t| t.next_receiver()) else {
                return;
            };
            if next == tid {
                if tid == last {
                    self.ends = Some((first, previous));
                } else if let Some(after) = threads.get(&tid).map(|t| t.next_receiver())
                    && let Some(previous) = threads.get_mut(&previous)
                {
                    previous.set_next_receiver(after);
                }
                return;
            }
            previous = next;
        }
    }

    /// Empty the line; who stood in it, in order.
    pub fn take_all(&mut self, threads: &Table<impl Receiver>) -> Vec<Tid> {
        let mut all = Vec::new();
        while let Some(tid) = self.pop(threads) {
            all.push(tid);
        }
        all
    }
}

impl Port {
    /// This port's counters.
    pub fn stats(&self) -> IpcStats {
        self.fast.fold(self.stats)
    }
}
