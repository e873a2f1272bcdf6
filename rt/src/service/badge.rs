//! Badges of connections, which a client cannot work out from its own.
//!
//! A connection's badge tells a `GIVE` which connection a capability is for. Any client
//! can badge its own copy of the server's port as it likes, so a badge that is easy to
//! guess (the next number after one's own) lets one client give capabilities in another's
//! name and fill that connection's share. Badges are therefore SipHash, under a key drawn
//! at the server's first connect, of a counter and the time-stamp counter at the connect.
//!
//! The key comes from the TSC: the kernel offers no entropy, and RDRAND, where the CPU has
//! it, makes every later service call cost 3% more instructions under QEMU's TCG with
//! icount, which the benchmarks count by. It is hard to guess from inside the system, not
//! cryptographic; a kernel entropy source would be the proper key.

use core::arch::x86_64::_rdtsc;
#[allow(deprecated)] // SipHash is what we want; core keeps it only under its old name.
use core::hash::{Hasher, SipHasher};
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Once;

static KEY: Once<(u64, u64)> = Once::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh badge: never 0 (no badge), and not one of `taken`.
pub(super) fn fresh(taken: impl Fn(u64) -> bool) -> u64 {
    let &(k0, k1) = KEY.call_once(|| (tsc(), tsc().rotate_left(32)));
    loop {
        #[allow(deprecated)]
        let mut hasher = SipHasher::new_with_keys(k0, k1);
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u64(tsc());
        let badge = hasher.finish();
        if badge != 0 && !taken(badge) {
            return badge;
        }
    }
}

fn tsc() -> u64 {
    // SAFETY: RDTSC only reads the counter (user mode may: the kernel leaves CR4.TSD clear).
    unsafe { _rdtsc() }
}
