//! `Ping`, the service the service benchmarks call, and its server, `kbench service`.
//!
//! `ping` is the smallest call a `#[service]` can make, one integer each way, so what is
//! measured is the transport (rings, notifications, executors) and not the service. The
//! byte methods answer with what shows the server saw the bytes (length, first word, last
//! byte) and do no other work with them.

use alloc::vec::Vec;

use keel_abi::Error;
use keel_rt::service::Bulk;
use keel_rt::{bootstrap, executor};

use crate::roles::first_word;

/// What the server saw of a byte argument: its length, its first little-endian word
/// (zero-padded) and its last byte (0 when empty).
pub type Seen = (u64, u64, u8);

#[keel_rt::service]
pub trait Ping {
    /// `x + 1`: an answer that shows the server saw the argument.
    async fn ping(&self, x: u64) -> u64;
    /// A `Vec<u8>` argument: inline in the request up to a page, through the arena above.
    async fn vec_seen(&self, data: Vec<u8>) -> Seen;
    /// A `Bulk` argument, read in place in the arena.
    async fn bulk_seen(&self, data: Bulk) -> Seen;
}

/// The client's side of [`Seen`]: what the server should answer for `bytes`.
pub fn seen(bytes: &[u8]) -> Seen {
    (
        bytes.len() as u64,
        first_word(bytes),
        bytes.last().copied().unwrap_or(0),
    )
}

struct Server;

impl Ping for Server {
    async fn ping(&self, x: u64) -> u64 {
        x.wrapping_add(1)
    }

    async fn vec_seen(&self, data: Vec<u8>) -> Seen {
        seen(&data)
    }

    async fn bulk_seen(&self, data: Bulk) -> Seen {
        let mut first = [0; 8];
        data.read_at(0, &mut first);
        let mut last = [0];
        data.read_at(data.len().saturating_sub(1), &mut last);
        (data.len() as u64, u64::from_le_bytes(first), last[0])
    }
}

/// Announces the server's port on the bootstrap port (handle 1), then serves `Ping` until
/// killed. Returns only if the announcement fails.
pub fn serve() -> Result<(), Error> {
    executor::block_on(async {
        bootstrap::announce()?;
        serve_ping(Server).await
    })
}
