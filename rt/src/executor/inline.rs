//! Calls answered inline: the kernel's call, for a request that is alone.
//!
//! A client whose call is the only one on its connection, and whose executor has nothing
//! else to do, sends the request record (up to [`MAX_RECORD`] bytes) in the words of a
//! kernel call on the connection's badged capability and blocks in it. The server's
//! executor takes it at its wake-up ([`take`]), where the service it is for runs the
//! request's first poll, and answers with its next sleep (`port_reply_recv`): the kernel's
//! fast path both ways, and neither ring touched. A request that does not finish on its
//! first poll, or whose result does not fit, is answered [`DEFERRED`] that way, and its
//! response comes through the ring like any other (docs/SERVICES.md, "Signalling").
//!
//! From the receive until the answer goes out the executor owes it. It goes with the next
//! sleep; or, as a saved reply (two syscalls more), before the thread blocks any other way
//! and when a round ends with work still ready: a caller never waits on a server that has
//! moved on to other things.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::ipc::{Message, Reply};

/// The label of an inline request: this, with the record's length in the low byte.
pub(crate) const REQUEST: u32 = 0x4b49_4e00;
/// The label of an answer: this, with the status in bits 8..16 and the result's length in
/// the low byte.
const ANSWER: u32 = 0x4b41_0000;
/// "Wait for the response in the ring": the request did not finish on its first poll.
pub(crate) const DEFERRED: u32 = 0x4b44_4546;
/// No service here took the request (no connection has the badge, or a bad length).
pub(crate) const REFUSED: u32 = 0x4b52_4546;
/// The most a record carries inline: the message's four words.
pub(crate) const MAX_RECORD: usize = 32;

/// An answer: a message's label and words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub label: u32,
    pub words: [u64; 4],
}

impl Answer {
    /// Status `status` with result `body` (at most [`MAX_RECORD`] bytes).
    pub(crate) fn with(status: u8, body: &[u8]) -> Option<Answer> {
        let words = to_words(body)?;
        let label = ANSWER | (u32::from(status) << 8) | body.len() as u32;
        Some(Answer { label, words })
    }

    pub(crate) const fn bare(label: u32) -> Answer {
        Answer {
            label,
            words: [0; 4],
        }
    }

    /// The status and result of an answer, into `room`; `None` for [`DEFERRED`], and for
    /// [`REFUSED`] or a label no server sends, `Some(Err(()))`.
    pub(crate) fn parse(self, room: &mut [u8; MAX_RECORD]) -> Option<Result<(u8, &[u8]), ()>> {
        if self.label == DEFERRED {
            return None;
        }
        if self.label & 0xffff_0000 != ANSWER {
            return Some(Err(()));
        }
        let len = (self.label & 0xff) as usize;
        let status = (self.label >> 8) as u8;
        Some(
            from_words(self.words, len, room)
                .map(|body| (status, body))
                .ok_or(()),
        )
    }
}

/// A request's label and words for `record`, if it fits.
pub(crate) fn request(record: &[u8]) -> Option<(u32, [u64; 4])> {
    Some((REQUEST | record.len() as u32, to_words(record)?))
}

/// The record of an inline request, into `room`.
pub(crate) fn record(label: u32, words: [u64; 4], room: &mut [u8; MAX_RECORD]) -> Option<&[u8]> {
    from_words(words, (label & 0xff) as usize, room)
}

fn to_words(bytes: &[u8]) -> Option<[u64; 4]> {
    if bytes.len() > MAX_RECORD {
        return None;
    }
    // Whole words as loads; the last, partial one byte by byte: no `memcpy` call for a few
    // bytes.
    let mut words = [0u64; 4];
    let (whole, rest) = bytes.as_chunks::<8>();
    for (word, chunk) in words.iter_mut().zip(whole) {
        *word = u64::from_le_bytes(*chunk);
    }
    if let Some(last) = words.get_mut(whole.len()) {
        *last = rest
            .iter()
            .rev()
            .fold(0, |word, &byte| word << 8 | u64::from(byte));
    }
    Some(words)
}

fn from_words(words: [u64; 4], len: usize, room: &mut [u8; MAX_RECORD]) -> Option<&[u8]> {
    let (whole, _) = room.as_chunks_mut::<8>();
    for (chunk, word) in whole.iter_mut().zip(words) {
        *chunk = word.to_le_bytes();
    }
    room.get(..len)
}

/// Whether `label` is an inline request's.
pub(crate) fn is_request(label: u32) -> bool {
    label & !0xff == REQUEST
}

/// A service's taker of inline requests: given the badge, label and words, it takes a
/// request for one of its connections (true) and settles it before it returns.
pub(crate) type Taker = Rc<dyn Fn(u64, u32, [u64; 4]) -> bool>;

/// What only the executor's thread touches.
struct ExecutorOnly<T>(RefCell<T>);

// SAFETY: the takers are added by services' tasks and called from the executor's sleep,
// the owed answer is made and sent there too (other threads look only at `OWES`, then
// find they are not the executor's thread), and batches are joins its tasks poll: all on
// the executor's one thread.
unsafe impl<T> Sync for ExecutorOnly<T> {}

static TAKERS: ExecutorOnly<Vec<Taker>> = ExecutorOnly(RefCell::new(Vec::new()));

enum Owed {
    /// Its service is running the request's first poll.
    Running,
    Answer(Answer),
}

static OWED: ExecutorOnly<Option<Owed>> = ExecutorOnly(RefCell::new(None));
/// Whether an answer is owed: the check every blocking syscall makes.
static OWES: AtomicBool = AtomicBool::new(false);

/// Hand this executor's inline requests for a service to `taker`.
pub(crate) fn add_taker(taker: Taker) {
    TAKERS.0.borrow_mut().push(taker);
}

/// Joins under way with more than one future pending ([`Batch`]).
static BATCHES: ExecutorOnly<usize> = ExecutorOnly(RefCell::new(0));

/// While it lives, calls are made as a batch: none goes inline, where each would wait for
/// its answer before the next is sent, and all go through the ring together.
/// [`join_all`](super::join_all) holds one while it polls several futures.
pub(crate) struct Batch(());

impl Batch {
    pub(crate) fn begin() -> Batch {
        *BATCHES.0.borrow_mut() += 1;
        Batch(())
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        *BATCHES.0.borrow_mut() -= 1;
    }
}

/// Whether a call may go inline now: nothing else would run meanwhile (no task ready, no
/// timer armed, no other call of a batch to send), and this executor owes no answer (its
/// caller would wait on this one's).
pub(crate) fn may_block() -> bool {
    super::ready::is_empty()
        && super::time::none_armed()
        && !OWES.load(Ordering::Relaxed)
        && *BATCHES.0.borrow() == 0
}

/// An inline request arrived at the executor's wake-up: its service takes and settles it.
pub(super) fn take(badge: u64, label: u32, words: [u64; 4]) {
    *OWED.0.borrow_mut() = Some(Owed::Running);
    OWES.store(true, Ordering::Release);
    for index in 0.. {
        // No borrow held while a taker runs: the request's first poll may add a taker.
        let taker = TAKERS.0.borrow().get(index).cloned();
        match taker {
            Some(taker) if taker(badge, label, words) => return,
            Some(_) => {}
            None => break,
        }
    }
    settle(Answer::bare(REFUSED));
}

/// The owed answer is `answer`, unless it is settled or already sent: whether it took.
pub(crate) fn settle(answer: Answer) -> bool {
    let mut owed = OWED.0.borrow_mut();
    match *owed {
        Some(Owed::Running) => {
            *owed = Some(Owed::Answer(answer));
            true
        }
        _ => false,
    }
}

/// The owed answer, to go now: with the executor's sleep, or at a [`flush`].
pub(super) fn take_answer() -> Option<Answer> {
    if !OWES.load(Ordering::Acquire) {
        return None;
    }
    OWES.store(false, Ordering::Release);
    match OWED.0.borrow_mut().take()? {
        Owed::Answer(answer) => Some(answer),
        // Its first poll blocks the thread: the caller waits for the ring instead.
        Owed::Running => Some(Answer::bare(DEFERRED)),
    }
}

/// Send the owed answer now, as a saved reply: this thread blocks, or its executor stays
/// busy. Called from any thread's blocking syscalls; only the executor's owes.
pub(crate) fn flush() {
    if !OWES.load(Ordering::Acquire) || !super::on_executor_thread() {
        return;
    }
    if let Some(answer) = take_answer() {
        send_saved(answer);
    }
}

/// Answer the call this thread took last with `answer`, through a saved reply.
pub(super) fn send_saved(answer: Answer) {
    if let Ok(reply) = Reply::save() {
        let _ = reply.send(&Message::new(answer.label, answer.words));
    }
}
