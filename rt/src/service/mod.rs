//! Services: typed calls over ring channels, what `#[service]` generates code against.
//!
//! A connection is one memory object shared by client and server: a header page and two
//! single-producer single-consumer rings ([`keel_ring`]), requests one way and responses the
//! other. A request is a record `[call id][method id][arguments]`, a response
//! `[call id][status][result]`; arguments and results are serde values in postcard. A side
//! signals the other's wake port only when the other side sleeps (or waits for space), so a
//! busy pair exchanges calls without a single syscall. The kernel carries only the connect
//! handshake, which also hands over the memory object and the client's wake port.
//!
//! Large arguments need not squeeze through the ring: the memory object also holds a bulk
//! arena the client writes and the server reads. A [`Bulk`] argument is filled in place
//! there (zero-copy); `&[u8]` and `Vec<u8>` arguments travel as [`Bytes`], inline up to
//! [`INLINE_LIMIT`] and through the arena above it. Results always travel inline.
//!
//! A connection made by name ([`Connection::connect_named`]) survives its server: an
//! idempotent call that finds the server gone reconnects through the name service and is
//! sent again ([`Connection::invoke`]).
//!
//! The server trusts nothing in the shared pages: a record that does not decode gets an
//! error response, a ring whose counters make no sense ends that connection only.

mod answer;
mod badge;
mod bulk;
mod bytes;
mod calls;
mod caps;
mod channel;
mod client;
mod decoding;
mod fixed;
pub mod limits;
mod server;
mod wire;

pub use answer::Answer;
pub use bulk::Bulk;
pub use bytes::{Bytes, INLINE_LIMIT};
pub use caps::Cap;
pub use channel::BULK_SIZE;
pub use client::Connection;
pub use fixed::Fixed;
pub use server::{Dispatch, Reply, serve};

use alloc::vec::Vec;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a service is: its name and a hash of its methods' signatures, checked at connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: &'static str,
    pub hash: u64,
}

/// A call failed in transport, not in the service: distinct from the service's own errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The server process is gone (or its port closed).
    ServerGone,
    /// The connection was refused or broke down (a ring went bad).
    Disconnected,
    /// The server implements another version of the interface.
    InterfaceMismatch { expected: u64, found: u64 },
    /// A response did not decode as the method's result.
    MalformedReply,
    /// The server could not decode the request (or does not know the method).
    Rejected,
    /// The arguments do not fit in one request record (or bytes of them in the bulk
    /// arena's free room), or the result in one response.
    TooLarge,
    /// The server refused more of this client: connections, or capabilities given on
    /// one connection ([`limits`]).
    LimitReached,
}

impl core::fmt::Display for TransportError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TransportError::ServerGone => f.write_str("the server is gone"),
            TransportError::Disconnected => f.write_str("disconnected"),
            TransportError::InterfaceMismatch { expected, found } => {
                write!(
                    f,
                    "interface mismatch: expected {expected:#x}, server has {found:#x}"
                )
            }
            TransportError::MalformedReply => f.write_str("malformed reply"),
            TransportError::Rejected => f.write_str("the server rejected the request as malformed"),
            TransportError::TooLarge => {
                f.write_str("the arguments or the result do not fit in a record or the arena")
            }
            TransportError::LimitReached => {
                f.write_str("the server's limit for this client is reached")
            }
        }
    }
}

/// Response status codes on the wire.
pub mod status {
    pub const OK: u32 = 0;
    /// The request did not decode, or named no method of the interface.
    pub const MALFORMED: u32 = 1;
    /// The result is too large for a response record.
    pub const TOO_LARGE: u32 = 2;
    /// The client gave the call up ([`CANCEL`](super::CANCEL)) and the server dropped it.
    pub const CANCELLED: u32 = 3;
}

/// The method id of a request that cancels call `id` (its record's id): the client gave
/// that call up. Method ids are dense from 0, so no method has this one. The server drops
/// the call if it is still under way and answers it `CANCELLED`; one already answered is
/// left alone (that answer frees the client's slot, which the id is not reused before).
pub const CANCEL: u32 = u32::MAX;

/// Labels of the kernel messages of the connect handshake.
pub mod label {
    pub const CONNECT: u32 = 0x4b43_4f4e;
    /// A capability for a later request, sent on the connection's badged capability.
    pub const GIVE: u32 = 0x4b47_4956;
}

/// Encode a value for the wire.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, TransportError> {
    postcard::to_allocvec(value).map_err(|_| TransportError::TooLarge)
}

/// Decode a value from the wire; `None` when the bytes are not exactly one `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    // Bytes left over mean the sender encoded something else: as malformed as too few.
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

/// FNV-1a, for interface hashes: stable across builds and machines.
pub const fn interface_hash(signature: &str) -> u64 {
    let bytes = signature.as_bytes();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}
