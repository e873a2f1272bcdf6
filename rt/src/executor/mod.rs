//! The per-process async executor: tasks, timers, and one kernel port to sleep on.
//!
//! Single-threaded: the thread that calls [`block_on`] runs every task. When no task is
//! ready, it blocks in the kernel on the process's wake port ([`wake::port`]) until a
//! notification (a ring peer, another thread waking a task), a message, or the next timer
//! deadline; it never busy-polls. Futures-util combinators (`join_all`, `select`, streams)
//! work as in any async Rust program; [`join_all`] here is the cheaper one for a batch of
//! calls.
//!
//! ```ignore
//! keel_rt::async_entry!(main);
//!
//! async fn main(_args: &'static str) -> i32 {
//!     let a = keel_rt::executor::spawn(async { 20 });
//!     keel_rt::executor::sleep(core::time::Duration::from_millis(5)).await;
//!     a.await + 22 - 42
//! }
//! ```

mod doorbell;
pub(crate) mod inline;
mod join;
mod ready;
mod task;
mod time;
mod unblock;
pub mod wake;

use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use spin::Mutex;
use task::{BoxFuture, Header};

pub use doorbell::Doorbell;
pub use join::{JoinAll, join_all};
pub use task::JoinHandle;
pub use time::{Elapsed, Sleep, sleep, timeout};
pub use unblock::unblock;

/// A task: its future and the waker it is polled with, made once.
struct Task {
    waker: Waker,
    future: BoxFuture,
}

enum Slot {
    Free,
    Idle(Task),
    /// Out of its slot while `poll_task` polls it.
    Polling,
}

/// Tasks are `!Send` futures; only the executor's thread touches them (checked).
struct Tasks {
    slots: Vec<Slot>,
    /// Free slots, lowest first: tasks spawned one after another take rising indices, and
    /// a round polls in index order, so they first run in the order they were spawned (of
    /// up to [`ready::BITS`] tasks: beyond, indices share ready bits).
    free: BinaryHeap<Reverse<usize>>,
}

// SAFETY: `tasks()` hands the contents only to the executor's own thread, and `poll_task`
// runs only there (inside `block_on`, which claimed the executor for it).
unsafe impl Send for Tasks {}

static TASKS: Mutex<Tasks> = Mutex::new(Tasks {
    slots: Vec::new(),
    free: BinaryHeap::new(),
});
static OWNER: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Whether the calling thread runs the executor (a syscall: for rare paths only).
fn on_executor_thread() -> bool {
    OWNER.load(Ordering::Relaxed) == crate::thread::id() as usize
}

/// The tasks, for a caller that may not be on the executor's thread (asking the kernel
/// which thread it is on is a syscall: the executor's own loop skips it).
fn tasks() -> spin::MutexGuard<'static, Tasks> {
    let me = crate::thread::id() as usize;
    let owner = OWNER.load(Ordering::Relaxed);
    assert!(
        owner == me || owner == usize::MAX,
        "keel_rt::executor used from thread {me}, but it runs on thread {owner}"
    );
    TASKS.lock()
}

/// Run `future` as a new task; its output comes through the [`JoinHandle`].
pub fn spawn<F: Future + 'static>(future: F) -> JoinHandle<F::Output> {
    let (future, handle) = task::joinable(future);
    let header = {
        let mut tasks = tasks();
        let index = match tasks.free.pop() {
            Some(Reverse(index)) => index,
            None => tasks.slots.len(),
        };
        let header = Header::new(index);
        let slot = Slot::Idle(Task {
            waker: task::waker(&header),
            future,
        });
        match tasks.slots.get_mut(index) {
            Some(entry) => *entry = slot,
            None => tasks.slots.push(slot),
        }
        header
    };
    header.schedule();
    handle
}

/// Poll the tasks marked by ready bit `bit`: the one at index `bit`, and any at an index
/// [`ready::BITS`] on from another it shares the bit with.
fn poll_tasks(bit: usize) {
    let mut index = bit;
    while poll_task(index) {
        index += ready::BITS;
    }
}

/// Poll task `index` once, and free it when it finishes; whether there are tasks past
/// `index + ready::BITS`. Only `block_on`'s loop calls it, on the executor's thread, so
/// it takes the tasks without asking which thread it is on.
fn poll_task(index: usize) -> bool {
    let (taken, more) = {
        let mut tasks = TASKS.lock();
        let more = index + ready::BITS < tasks.slots.len();
        match tasks.slots.get_mut(index) {
            Some(slot @ Slot::Idle(_)) => match core::mem::replace(slot, Slot::Polling) {
                Slot::Idle(task) => (Some(task), more),
                Slot::Free | Slot::Polling => (None, more),
            },
            _ => (None, more),
        }
    };
    // A task woken after it finished: nothing to do.
    let Some(mut task) = taken else {
        return more;
    };
    let done = task
        .future
        .as_mut()
        .poll(&mut Context::from_waker(&task.waker))
        .is_ready();
    let mut tasks = TASKS.lock();
    if done {
        tasks.slots[index] = Slot::Free;
        tasks.free.push(Reverse(index));
    } else {
        tasks.slots[index] = Slot::Idle(task);
    }
    index + ready::BITS < tasks.slots.len()
}

/// Run the executor until `future` completes, serving every spawned task meanwhile.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let me = crate::thread::id() as usize;
    if OWNER
        .compare_exchange(usize::MAX, me, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        panic!("keel_rt::executor::block_on called twice or from a second thread");
    }
    let prepared = crate::ipc::prepare_receive();
    let mut future = pin!(future);
    let main_waker = task::waker(&Header::new(ready::MAIN));
    let mut main_ready = true;
    loop {
        if main_ready
            && let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&main_waker))
        {
            wake::flush_signal();
            OWNER.store(usize::MAX, Ordering::Release);
            return output;
        }
        ready::take_round(poll_tasks);
        main_ready = ready::take_main();
        if !main_ready && ready::is_empty() {
            let next_timer = time::fire_due();
            if ready::is_empty() {
                wake::wait(next_timer, prepared);
                continue;
            }
        }
        wake::busy_round();
    }
}

/// Declares an async `main`: `async fn main(args: &'static str) -> i32`, run on the
/// executor.
#[macro_export]
macro_rules! async_entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        fn __keel_main(_: &str) -> i32 {
            // The same string, with the lifetime of the start-up record it lives in.
            $crate::executor::block_on($main($crate::start_info().args()))
        }
    };
}
