//! The service the `services` suite runs: `ktest` is the client of [`Probe`], and
//! `kchild probe-server` its server. Each method makes one behaviour of the transport
//! observable.

use alloc::string::String;
use alloc::vec::Vec;

/// The largest `Vec<u8>` result one response record carries. A record is at most half of
/// its 64 KiB ring less its 4-byte length: 32,764 bytes. A response spends 8 of them on the
/// call id and status, and the vector's length takes 3 (a varint, from 16 KiB up).
pub const MAX_INLINE_RESULT: usize = 64 * 1024 / 2 - 4 - 8 - 3;

#[keel_rt::service]
pub trait Probe {
    /// `value`, at once.
    async fn echo(&self, value: u64) -> u64;
    /// `bytes`, back.
    async fn echo_bytes(&self, bytes: &[u8]) -> Vec<u8>;
    /// `value`, once `group` calls of `gather` run at the same time (so they were all in
    /// flight together), and after a delay that depends on `value`, so that the answers
    /// come back in another order than the calls went out.
    async fn gather(&self, value: u64, group: u64) -> u64;
    /// Note `value` as the call starts.
    async fn note(&self, value: u64);
    /// The values noted, in the order their calls started.
    async fn notes(&self) -> Vec<u64>;
    /// Never answers.
    async fn stall(&self);
    /// How many `stall` calls the server is running now.
    async fn stalled(&self) -> u64;
    /// `len` bytes, however many that is.
    async fn fill(&self, len: u32) -> Vec<u8>;
    /// A greeting: a method with a string argument to garble.
    async fn greet(&self, name: &str) -> String;
    /// The length of `data` and the wrapping sum of its little-endian words, read in place.
    async fn checksum(&self, data: keel_rt::service::Bulk) -> (u64, u64);
    /// The same as `checksum`, of bytes that travel inline or through the arena by size.
    #[idempotent]
    async fn checksum_bytes(&self, data: &[u8]) -> (u64, u64);
    /// The first word of the memory object `memory` is a capability to, mapped read-only.
    async fn peek(&self, memory: keel_rt::service::Cap) -> Option<u64>;
    /// What `checksum` answers, once `release` has been called: `data` is held, unread,
    /// until then.
    async fn hold(&self, data: keel_rt::service::Bulk) -> (u64, u64);
    /// Let the `hold` calls under way read their bytes and answer.
    async fn release(&self);
    /// How many `hold` calls the server is running now.
    async fn holding(&self) -> u64;
    /// `ms`, after blocking the server's thread that long (`time::sleep`, a syscall).
    async fn nap(&self, ms: u64) -> u64;
}

/// The length of `bytes` and the wrapping sum of their little-endian 64-bit words, the
/// last one zero-padded: what `checksum` and `checksum_bytes` answer.
pub fn checksum(bytes: &[u8]) -> (u64, u64) {
    let sum = bytes
        .chunks(8)
        .map(|chunk| {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            u64::from_le_bytes(word)
        })
        .fold(0, u64::wrapping_add);
    (bytes.len() as u64, sum)
}

/// `Probe` as another version has it: `echo` takes a `u32`. Its interface hash differs.
pub mod changed {
    #[keel_rt::service]
    pub trait Probe {
        async fn echo(&self, value: u32) -> u32;
    }
}
