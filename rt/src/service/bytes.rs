//! Byte arguments that choose their own way: `&[u8]` and `Vec<u8>` arguments of a service
//! method travel as a [`Bytes`], inline in the request when small, through the
//! connection's bulk arena when large.
//!
//! The generated client builds a `Bytes` from the argument with [`Bytes::new`]: up to
//! [`INLINE_LIMIT`] bytes go in the request record; above it the client copies them once
//! into room in the arena (in user space: the kernel copies nothing) and only the room's
//! offset and length go in the record. The room is free again once the call is answered.
//! The generated server decodes a `Bytes` and lends the method the bytes, copied out of the
//! arena once, since the client can still write there: the method gets a private `&[u8]`
//! or `Vec<u8>`, never a reference into memory another process writes.
//!
//! So a large byte argument costs one user-space copy on each side and no ring or kernel
//! copy. [`Bulk`] is the truly zero-copy type: the client writes in place, the server reads
//! in place.
//!
//! On the wire a `Bytes` is a postcard enum: variant 0 with the bytes (inline: a varint
//! length and the bytes, written and read as one byte string, not byte by byte), or variant
//! 1 with the arena offset and length, as a `Bulk` is encoded. The server checks an arena
//! range as it checks a `Bulk`'s: outside the arena, or not aligned, the request does not
//! decode and is answered `MALFORMED`.

use alloc::vec::Vec;
use core::fmt;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::bulk::Bulk;
use super::{Connection, TransportError};

/// The most bytes a [`Bytes`] carries inline; larger ones go through the arena. A page:
/// below it a copy through the ring costs less than arena bookkeeping, above it the
/// argument would crowd other calls' requests out of the 64 KiB ring.
pub const INLINE_LIMIT: usize = 4096;

/// A byte-string argument on its way: small ones travel inline in the request, large ones
/// through the connection's bulk arena (docs/SERVICES.md, Byte arguments).
pub struct Bytes<'a>(Repr<'a>);

enum Repr<'a> {
    /// Client side, at most [`INLINE_LIMIT`] bytes: they go in the request.
    Inline(&'a [u8]),
    /// Client side, larger: a copy in the connection's arena, until the call is answered.
    Arena(Bulk),
    /// Server side: the bytes, copied out of the request or the arena.
    Received(Vec<u8>),
}

/// Inline bytes as one byte string (`serialize_bytes`): the same encoding postcard gives a
/// `&[u8]` (a length, then the bytes), in one copy instead of a serializer call per byte.
struct ByteStr<'a>(&'a [u8]);

impl Serialize for ByteStr<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Inline bytes decoded as one byte string, the counterpart of [`ByteStr`].
struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(ByteBufVisitor)
    }
}

struct ByteBufVisitor;

impl<'de> Visitor<'de> for ByteBufVisitor {
    type Value = ByteBuf;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E>(self, bytes: &[u8]) -> Result<ByteBuf, E> {
        Ok(ByteBuf(bytes.to_vec()))
    }

    fn visit_byte_buf<E>(self, bytes: Vec<u8>) -> Result<ByteBuf, E> {
        Ok(ByteBuf(bytes))
    }

    /// A format that spells bytes as a sequence.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
        let mut bytes = Vec::new();
        while let Some(byte) = seq.next_element()? {
            bytes.push(byte);
        }
        Ok(ByteBuf(bytes))
    }
}

/// The wire form, shared by both directions so they cannot drift apart: the client
/// encodes `Wire<&[u8], &Bulk>`, the server decodes `Wire<Vec<u8>, Bulk>`.
#[derive(Serialize, Deserialize)]
enum Wire<I, A> {
    Inline(I),
    Arena(A),
}

impl<'a> Bytes<'a> {
    /// `bytes`, to send on `connection`: inline up to [`INLINE_LIMIT`], else copied into
    /// its arena. `TooLarge` when the arena has no room that big left.
    pub fn new(connection: &Connection, bytes: &'a [u8]) -> Result<Bytes<'a>, TransportError> {
        if bytes.len() <= INLINE_LIMIT {
            return Ok(Bytes(Repr::Inline(bytes)));
        }
        let mut room = connection.bulk(bytes.len())?;
        let Some(target) = room.as_mut_slice() else {
            unreachable!("room a client makes is the client's to write");
        };
        target.copy_from_slice(bytes);
        Ok(Bytes(Repr::Arena(room)))
    }

    /// Whether the bytes travel in the request itself (client side).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline(_))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline(bytes) => bytes.len(),
            Repr::Arena(room) => room.len(),
            Repr::Received(bytes) => bytes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, owned: on the server what was received, without another copy.
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Inline(bytes) => bytes.to_vec(),
            Repr::Arena(room) => room.to_vec(),
            Repr::Received(bytes) => bytes,
        }
    }
}

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Inline(bytes) => {
                Wire::<ByteStr, &Bulk>::Inline(ByteStr(bytes)).serialize(serializer)
            }
            Repr::Arena(room) => Wire::<ByteStr, &Bulk>::Arena(room).serialize(serializer),
            Repr::Received(_) => Err(serde::ser::Error::custom(
                "a server cannot send received bytes back as an argument",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Bytes<'_> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `Bulk`'s own decoding checks the range against this connection's arena.
        let bytes = match Wire::<ByteBuf, Bulk>::deserialize(deserializer)? {
            Wire::Inline(ByteBuf(bytes)) => bytes,
            // The one copy out of memory the client can still write (`Bulk::to_vec`).
            Wire::Arena(room) => room.to_vec(),
        };
        Ok(Bytes(Repr::Received(bytes)))
    }
}
