//! Watching children end: one thread per child, blocked in `process_wait`.
//!
//! `process_wait` blocks its thread, and the supervisor's thread runs the executor, which
//! must keep serving requests. Polling with a timer would add its period to every restart
//! and wake init for nothing; a thread per child costs a 64 KiB stack and no CPU, and the
//! kernel wakes it the moment the child ends. The thread hands the exit to the executor's
//! thread through [`Exits`] and wakes the task waiting there.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use keel_abi::Error;
use keel_rt::process::{self, Exit, Pid};
use keel_rt::sync::Mutex;
use keel_rt::thread;

/// How a watched child ended, or why waiting for it failed.
pub type Ended = (Pid, Result<Exit, Error>);

/// Exits reported by watcher threads, in the order they happened.
#[derive(Clone, Default)]
pub struct Exits(Arc<Mutex<Queue>>);

#[derive(Default)]
struct Queue {
    ended: VecDeque<Ended>,
    waiter: Option<Waker>,
}

impl Exits {
    /// Starts a thread that reaps child `pid` and reports how it ended.
    pub fn watch(&self, pid: Pid) -> Result<(), Error> {
        let exits = self.clone();
        thread::spawn(move || {
            let exit = process::wait(pid);
            let waiter = {
                let mut queue = exits.0.lock();
                queue.ended.push_back((pid, exit));
                queue.waiter.take()
            };
            // Wakers from the executor may be woken from any thread.
            waiter.into_iter().for_each(Waker::wake);
        })
        .map(drop)
    }

    /// The next exit (for the one task that waits here).
    pub async fn next(&self) -> Ended {
        poll_fn(|cx| {
            let mut queue = self.0.lock();
            match queue.ended.pop_front() {
                Some(ended) => Poll::Ready(ended),
                None => {
                    queue.waiter = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}
