//! Badges of connections, which a client cannot guess.
//!
//! A connection's badge tells a `GIVE` which connection a capability is for. Any client
//! can badge its own copy of the server's port as it likes, so a badge that is easy to
//! guess (the next number after one's own) lets one client give capabilities in another's
//! name and fill that connection's share. Badges are therefore SipHash of a counter under
//! a key drawn once per server: from RDRAND where the CPU has it, else from the TSC.

use core::arch::x86_64::{__cpuid, _rdrand64_step, _rdtsc};
#[allow(deprecated)] // SipHash is what we want; core keeps it only under its old name.
use core::hash::{Hasher, SipHasher};
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Once;

static KEY: Once<(u64, u64)> = Once::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh badge: never 0 (no badge), and not one of `taken`.
pub(super) fn fresh(taken: impl Fn(u64) -> bool) -> u64 {
    let &(k0, k1) = KEY.call_once(|| (random(), random()));
    loop {
        #[allow(deprecated)]
        let mut hasher = SipHasher::new_with_keys(k0, k1);
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let badge = hasher.finish();
        if badge != 0 && !taken(badge) {
            return badge;
        }
    }
}

/// 64 bits from the CPU's random number generator, or the time-stamp counter without one.
fn random() -> u64 {
    let has_rdrand = __cpuid(1).ecx & (1 << 30) != 0;
    if has_rdrand {
        let mut value = 0;
        for _ in 0..10 {
            // SAFETY: CPUID says the CPU has RDRAND; it writes only `value`.
            if unsafe { _rdrand64_step(&mut value) } == 1 {
                return value;
            }
        }
    }
    // SAFETY: RDTSC only reads the counter (user mode may: the kernel leaves CR4.TSD clear).
    unsafe { _rdtsc() }
}
