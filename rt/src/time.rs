//! Time: the timer tick count, and sleeping.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use keel_abi::SysInfo;

use crate::sys;

/// Timer ticks since boot.
pub fn ticks() -> u64 {
    sys::sys_info(SysInfo::Ticks).expect("sys_info(Ticks) cannot fail") as u64
}

/// Timer ticks per second.
pub fn tick_hz() -> u64 {
    // The rate is fixed at boot: ask once.
    static HZ: AtomicU64 = AtomicU64::new(0);
    match HZ.load(Ordering::Relaxed) {
        0 => {
            let hz = sys::sys_info(SysInfo::TickHz).expect("sys_info(TickHz) cannot fail") as u64;
            HZ.store(hz, Ordering::Relaxed);
            hz
        }
        hz => hz,
    }
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
