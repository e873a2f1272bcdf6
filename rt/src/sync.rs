//! Locks for user programs: a spin lock that yields the CPU while it waits.

use spin::RelaxStrategy;

/// Waits for a lock by giving the time slice away, so that on one CPU the holder gets to run.
pub struct Yield;

impl RelaxStrategy for Yield {
    fn relax() {
        crate::sys::thread_yield();
    }
}

/// A mutual-exclusion lock whose waiters yield instead of spinning out their time slice.
///
/// Waiters yield only to threads of their own priority or higher: do not share one lock
/// between threads of different priorities.
pub type Mutex<T> = spin::mutex::SpinMutex<T, Yield>;
