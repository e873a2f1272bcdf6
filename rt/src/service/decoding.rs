//! What decoding a request needs besides its bytes: the connection it came on, whose arena
//! a [`Bulk`](super::Bulk) or arena [`Bytes`](super::Bytes) names a range of, and whose
//! file a [`Cap`](super::Cap)'s token is looked up in.
//!
//! The server hands it over explicitly: the generated dispatcher decodes with
//! [`Reply::decode`](super::Reply::decode), and the reply knows its connection. Serde's
//! `Deserialize` takes no context, so for the length of that one decode (and no longer)
//! the connection is put where those types' decoders look ([`current`]); decoded at any
//! other time, they find none and refuse.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The request's connection, as decoding sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Decoding {
    /// Where the connection's bulk arena is mapped in this process.
    pub arena: usize,
    /// The badge its capabilities were filed under.
    pub badge: u64,
}

/// The arena of the decode under way, 0 when none is (an arena is never at address 0).
/// Only the executor's thread decodes, one request at a time: relaxed suffices.
static ARENA: AtomicUsize = AtomicUsize::new(0);
static BADGE: AtomicU64 = AtomicU64::new(0);

impl Decoding {
    /// Run `decode` with this connection as the one being decoded for.
    pub fn scope<T>(self, decode: impl FnOnce() -> T) -> T {
        /// Takes the context away however the decode ends.
        struct Ended;
        impl Drop for Ended {
            fn drop(&mut self) {
                ARENA.store(0, Ordering::Relaxed);
            }
        }
        BADGE.store(self.badge, Ordering::Relaxed);
        ARENA.store(self.arena, Ordering::Relaxed);
        let _ended = Ended;
        decode()
    }
}

/// The connection of the decode under way, if one is.
pub(super) fn current() -> Option<Decoding> {
    match ARENA.load(Ordering::Relaxed) {
        0 => None,
        arena => Some(Decoding {
            arena,
            badge: BADGE.load(Ordering::Relaxed),
        }),
    }
}
