//! Time: the timer tick count, and sleeping.
//!
//! The count is read from the clock page the kernel maps into every process
//! ([`CLOCK_ADDR`]): no syscall.

use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use keel_abi::layout::{CLOCK_ADDR, ClockPage};

use crate::sys;

/// The clock page's word at `offset`.
fn clock(offset: usize) -> &'static AtomicU64 {
    // SAFETY: the kernel maps the clock page read-only at CLOCK_ADDR into every process
    // for its whole life (only a program that unmaps it itself could lose it); its words
    // are 8-byte aligned and only ever read here, atomically, while the kernel writes them.
    unsafe { AtomicU64::from_ptr((CLOCK_ADDR + offset) as *mut u64) }
}

/// Timer ticks since boot.
pub fn ticks() -> u64 {
    clock(offset_of!(ClockPage, ticks)).load(Ordering::Acquire)
}

/// Timer ticks per second.
pub fn tick_hz() -> u64 {
    clock(offset_of!(ClockPage, tick_hz)).load(Ordering::Relaxed)
}

/// How many whole ticks cover `duration` (rounded up).
pub fn ticks_in(duration: Duration) -> u64 {
    let nanos = duration.as_nanos() * u128::from(tick_hz());
    nanos.div_ceil(1_000_000_000) as u64
}

/// The duration of `ticks` timer ticks.
pub fn ticks_to_duration(ticks: u64) -> Duration {
    // Whole seconds, then the rest: 64-bit arithmetic (exact, and without overflow below
    // 18 GHz), where one 128-bit product and division would be a library call.
    let hz = tick_hz();
    let nanos = (ticks % hz) * 1_000_000_000 / hz;
    Duration::new(ticks / hz, nanos as u32)
}

/// Time since boot, at tick resolution.
pub fn uptime() -> Duration {
    ticks_to_duration(ticks())
}

/// Blocks the calling thread for at least `duration`.
pub fn sleep(duration: Duration) {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    sys::thread_sleep(nanos).expect("thread_sleep cannot fail");
}
