//! The process's wake port: the one kernel object the executor sleeps on.
//!
//! Ring peers and other threads signal it with notification bits; messages sent to it (a
//! connection request, a call) queue here for the task that waits for them. Each source of
//! notifications registers wakers under its bit: one notification wakes them all, and they
//! re-check their own state, so a shared bit costs a spurious poll, never a lost wake-up.
//!
//! A ring producer that must wake a sleeping peer hands the signal to [`signal_later`]
//! instead of notifying at once: the executor sends it as it goes to sleep, in the same
//! syscall as its wait (`port_signal_recv`), and the kernel passes the CPU straight to the
//! peer. A lone call is then one kernel entry each way, and no scheduler pass.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use core::task::{Poll, Waker};
use keel_abi::cap::Handle;
use spin::Mutex;

use super::inline;
use crate::ipc::{Port, Received, Woken};

/// Bit 63: "a task was woken from another thread"; the rest are free for channels.
const TASK_WOKEN: u64 = 1 << 63;
pub const CHANNEL_BITS: u32 = 63;

static PORT: AtomicU32 = AtomicU32::new(0);
static SLEEPING: AtomicBool = AtomicBool::new(false);
static BITS: Mutex<[Bit; 64]> = Mutex::new(
    [const {
        Bit {
            once: Vec::new(),
            listeners: Vec::new(),
        }
    }; 64],
);

/// Who waits for the notifications with one bit.
struct Bit {
    /// Woken at the next one, and dropped.
    once: Vec<Waker>,
    /// The wakers of [`Listener`]s: woken at every one, until their listener goes.
    listeners: Vec<Waker>,
}
/// The one signal waiting for the executor's next sleep ([`signal_later`]).
static DEFERRED: Mutex<Option<Deferred>> = Mutex::new(None);
/// Whether `DEFERRED` holds one: the check every blocking syscall makes ([`flush_signal`]).
/// Only the executor's thread defers, so it never reads a stale `false` of its own.
static HAS_DEFERRED: AtomicBool = AtomicBool::new(false);

struct Deferred {
    port: Port,
    bits: u64,
    /// Left over from an executor round that did not sleep: sent at the next round's end.
    aged: bool,
}
static INBOX: Mutex<(VecDeque<Received>, Vec<Waker>)> = Mutex::new((VecDeque::new(), Vec::new()));

/// The wake port's handle (created on first use, with every port right).
pub fn port() -> Port {
    match PORT.load(Ordering::Acquire) {
        0 => {
            let port = Port::create(keel_abi::ipc::MAX_PORT_CAPACITY)
                .expect("the executor needs its wake port");
            PORT.store(port.handle(), Ordering::Release);
            port
        }
        handle => Port::from_handle(handle as Handle),
    }
}

/// A task was marked ready: if the executor sleeps in the kernel (woken from another thread),
/// signal its port.
pub(super) fn executor_may_sleep_on_it() {
    // Sequentially consistent with the executor's raising of the flag and its last look
    // at the ready set: one of the two sees the other.
    if SLEEPING.load(Ordering::SeqCst) {
        let _ = port().notify(TASK_WOKEN);
    }
}

/// Notify `port` with `bits` when this executor next sleeps, in the syscall it sleeps
/// with; or sooner, before this thread blocks any other way ([`flush_signal`]). For ring
/// producers on the executor's thread, whose peer sleeps: the peer gets the CPU straight
/// from that syscall. A signal for another port deferred earlier goes out now.
///
/// A peer that is gone is not reported: the signal's failure is the receive's, and the
/// executor just sleeps. Callers learn it otherwise (a client's liveness probe).
pub fn signal_later(port: Port, bits: u64) {
    let older = {
        let mut deferred = DEFERRED.lock();
        match deferred.as_mut() {
            Some(same) if same.port == port => {
                same.bits |= bits;
                return;
            }
            _ => {
                HAS_DEFERRED.store(true, Ordering::Release);
                deferred.replace(Deferred {
                    port,
                    bits,
                    aged: false,
                })
            }
        }
    };
    if let Some(older) = older {
        let _ = older.port.notify(older.bits);
    }
}

fn take_deferred() -> Option<Deferred> {
    if !HAS_DEFERRED.load(Ordering::Acquire) {
        return None;
    }
    // The flag changes only under the lock, with the slot: another thread's flush (any
    // blocking syscall) cannot clear it after this thread deferred a new signal.
    let mut deferred = DEFERRED.lock();
    HAS_DEFERRED.store(false, Ordering::Release);
    deferred.take()
}

/// Send the deferred signal, if any, now: before the thread blocks or ends in any way
/// other than the executor's sleep, so that no peer waits for a signal nobody sends.
/// Every blocking syscall wrapper calls it ([`crate::sys`]).
pub fn flush_signal() {
    if let Some(deferred) = take_deferred() {
        let _ = deferred.port.notify(deferred.bits);
    }
    inline::flush();
}

/// An executor round ended with work still ready: a signal deferred in an earlier round is
/// sent now, so a peer never waits for an executor that stays busy; one from this round
/// waits one round more for the executor to sleep.
pub(super) fn busy_round() {
    // An inline caller is not kept waiting for the rest of the work.
    inline::flush();
    if !HAS_DEFERRED.load(Ordering::Acquire) {
        return;
    }
    let mut deferred = DEFERRED.lock();
    if let Some(signal) = deferred.as_mut()
        && !signal.aged
    {
        signal.aged = true;
        return;
    }
    drop(deferred);
    flush_signal();
}

/// Block in the kernel until something arrives or `timeout` passes, sending the deferred
/// signal ([`signal_later`]) in the same syscall; `prepared`: this thread's IPC buffer is
/// set up ([`crate::ipc::prepare_receive`]).
pub(super) fn wait(timeout: Option<core::time::Duration>, prepared: bool) {
    SLEEPING.store(true, Ordering::SeqCst);
    // A wake between marking a task ready and this flag would be lost: look once more.
    if !super::ready::is_empty() {
        SLEEPING.store(false, Ordering::Release);
        return;
    }
    let signal = take_deferred().map(|d| (d.port, d.bits));
    let answer = inline::take_answer();
    let received = match (prepared, answer) {
        // The answer owed and the wait in one syscall: the fast path back to the caller.
        (true, Some(answer)) if timeout.is_none() => {
            flush_signal_of(signal);
            port().reply_receive_prepared(answer.label, answer.words)
        }
        (true, answer) => {
            if let Some(answer) = answer {
                inline::send_saved(answer);
            }
            port().receive_prepared(signal, timeout)
        }
        (false, answer) => {
            if let Some(answer) = answer {
                inline::send_saved(answer);
            }
            flush_signal_of(signal);
            port().receive(timeout).map(Woken::Message)
        }
    };
    SLEEPING.store(false, Ordering::Release);
    match received {
        Ok(Woken::Bits(bits) | Woken::Message(Received::Notification(bits))) => wake_bits(bits),
        Ok(Woken::Inline {
            badge,
            label,
            words,
        }) => inline::take(badge, label, words),
        Ok(Woken::Message(message)) => file_message(message),
        // Timed out: the caller fires timers and looks again.
        Err(_) => {}
    }
}

/// Wake what waits for notification bit `bit`, as a notification would, without one: for
/// news found on this thread.
pub(crate) fn raise(bit: u32) {
    wake_bits(1 << (bit % CHANNEL_BITS));
}

/// A message for the wake port: queued for [`next_message`].
#[inline(never)]
fn file_message(message: Received) {
    let mut inbox = INBOX.lock();
    inbox.0.push_back(message);
    inbox.1.drain(..).for_each(Waker::wake);
}

fn flush_signal_of(signal: Option<(Port, u64)>) {
    if let Some((port, bits)) = signal {
        let _ = port.notify(bits);
    }
}

fn wake_bits(mut bits: u64) {
    // Visit only the bits that are set.
    while bits != 0 {
        let bit = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let mut once = {
            let mut table = BITS.lock();
            let waiting = &mut table[bit];
            // Woken in place, under the lock: a listener's waker is a task's, whose wake
            // only marks it ready.
            waiting.listeners.iter().for_each(Waker::wake_by_ref);
            if waiting.once.is_empty() {
                continue;
            }
            core::mem::take(&mut waiting.once)
        };
        // Wake outside the lock, then hand the list's room back for the next waiters: a
        // notification allocates nothing.
        once.drain(..).for_each(Waker::wake);
        let mut table = BITS.lock();
        if table[bit].once.capacity() == 0 {
            table[bit].once = once;
        }
    }
}

/// Complete at the next notification carrying `bit`, or at any earlier poll: callers
/// re-check their own state after it, so a spurious completion costs a look, never a
/// missed event.
pub async fn notification(bit: u32) {
    let mut registered = false;
    poll_fn(|cx| {
        if registered {
            return Poll::Ready(());
        }
        registered = true;
        on_notification(bit, cx.waker());
        Poll::Pending
    })
    .await
}

/// Wake `waker` at the next notification with `bit` (0..[`CHANNEL_BITS`]).
pub fn on_notification(bit: u32, waker: &Waker) {
    let mut table = BITS.lock();
    let list = &mut table[(bit % CHANNEL_BITS) as usize].once;
    if !list.iter().any(|w| w.will_wake(waker)) {
        list.push(waker.clone());
    }
}

/// A standing registration for the notifications with one bit, for a task that sleeps on
/// it again and again: its waker is registered once, not at every sleep, and woken at every
/// notification with the bit (the task re-checks its state, as after [`notification`]).
/// The waker must be a task's, whose wake does no more than mark it ready: it is woken
/// under the registrations' lock.
pub struct Listener {
    bit: usize,
    waker: Option<Waker>,
}

impl Listener {
    /// A listener for `bit` (0..[`CHANNEL_BITS`]), registered at its first wait.
    pub fn new(bit: u32) -> Listener {
        Listener {
            bit: (bit % CHANNEL_BITS) as usize,
            waker: None,
        }
    }

    /// Complete at the next notification with the bit, or at any earlier poll, like
    /// [`notification`].
    pub async fn wait(&mut self) {
        let mut polled = false;
        poll_fn(|cx| {
            if polled {
                return Poll::Ready(());
            }
            polled = true;
            self.register(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Wake `waker` (a task's) at every notification with the bit from now on, in place of
    /// the waker registered before: for a poll function that sleeps on the bit, such as a
    /// lone call waiting for its response.
    pub fn register(&mut self, waker: &Waker) {
        if self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return;
        }
        // First registration, or another task than before: (re)place the entry.
        let waker = waker.clone();
        let mut table = BITS.lock();
        let list = &mut table[self.bit].listeners;
        let entry = self
            .waker
            .take()
            .and_then(|old| list.iter().position(|w| w.will_wake(&old)));
        match entry {
            Some(at) => list[at] = waker.clone(),
            None => list.push(waker.clone()),
        }
        self.waker = Some(waker);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(waker) = self.waker.take() {
            let mut table = BITS.lock();
            let list = &mut table[self.bit].listeners;
            if let Some(at) = list.iter().position(|w| w.will_wake(&waker)) {
                list.swap_remove(at);
            }
        }
    }
}

/// The next message sent to this process's wake port.
pub async fn next_message() -> Received {
    poll_fn(|cx| {
        let mut inbox = INBOX.lock();
        match inbox.0.pop_front() {
            Some(message) => Poll::Ready(message),
            None => {
                inbox.1.push(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await
}
