//! A client that breaks the rules: it makes the connect handshake by hand, then writes
//! whatever it likes into the channel it shares with the server.
//!
//! It knows the channel's layout from rt/src/service/channel.rs: a header page with the
//! request ring's counters at 0 (head, tail: `u32` each) and the response ring's at 64,
//! then the request ring's data and the response ring's, 64 KiB each.

use alloc::format;
use alloc::string::String;

use keel_abi::cap::rights;
use keel_abi::layout::PAGE_SIZE;
use keel_abi::prot;
use keel_rt::executor::wake;
use keel_rt::ipc::{Message, Port};
use keel_rt::mem::{Mapping, Memory};
use keel_rt::service::label;

use crate::check::Context;

const RING_SIZE: usize = 64 * 1024;
const CHANNEL_SIZE: usize = PAGE_SIZE + 2 * RING_SIZE;
const REQUEST_TAIL: usize = 4;
const REQUEST_DATA: usize = PAGE_SIZE;

/// What a hostile client writes into its channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scribble {
    /// Pseudo-random bytes over the whole channel, counters included.
    Noise,
    /// One request whose length runs past the end of the ring.
    RecordPastTheRing,
    /// A tail counter claiming more bytes than the ring holds.
    TailPastTheRing,
    /// A tail counter that is not a whole number of records (not a multiple of 8).
    UnalignedTail,
}

impl Scribble {
    pub const ALL: [Scribble; 4] = [
        Scribble::Noise,
        Scribble::RecordPastTheRing,
        Scribble::TailPastTheRing,
        Scribble::UnalignedTail,
    ];
}

/// How a connect request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Status 2: the server could not use what it was sent.
    Malformed,
    Other([u64; 2]),
}

/// A connection set up by hand.
pub struct Hostile {
    /// Held so the mapping stays.
    memory: Memory,
    channel: Mapping,
    server: Port,
    server_bit: u32,
}

impl Hostile {
    pub fn connect(server: Port, interface_hash: u64) -> Result<Hostile, String> {
        Hostile::connect_with_channel_pages(server, interface_hash, CHANNEL_SIZE / PAGE_SIZE)?
            .map_err(|refused| format!("a hostile client's connect was refused: {refused:?}"))
    }

    /// Connect with a channel of `pages` pages; `Ok(Err(..))` when the server refuses.
    pub fn connect_with_channel_pages(
        server: Port,
        interface_hash: u64,
        pages: usize,
    ) -> Result<Result<Hostile, Refused>, String> {
        let memory = Memory::create(pages * PAGE_SIZE).context("creating a channel")?;
        let channel = memory
            .map(prot::READ | prot::WRITE)
            .context("mapping the channel")?;
        let wake = wake::port()
            .derive(rights::SEND | rights::GRANT, 0)
            .context("deriving a wake port capability")?;
        // Client bit 0: the server's signals wake whatever waits on it here, harmlessly.
        let request = Message::new(label::CONNECT, [interface_hash, 0, 0, 0])
            .with_caps(&[memory.handle(), wake.handle()]);
        let answer = server.call(&request);
        let _ = wake.delete();
        let answer = answer.context("the connect call")?;
        Ok(match answer.words {
            [0, server_bit, ..] => Ok(Hostile {
                memory,
                channel,
                server,
                server_bit: server_bit as u32,
            }),
            [2, ..] => Err(Refused::Malformed),
            [status, found, ..] => Err(Refused::Other([status, found])),
        })
    }

    pub fn scribble(&self, scribble: Scribble) {
        match scribble {
            Scribble::Noise => {
                let mut state = 0x2545_f491_4f6c_dd1du64;
                for offset in 0..CHANNEL_SIZE {
                    // xorshift64: cheap bytes with no pattern the rings could mistake for sense.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    self.write(offset, &[state as u8]);
                }
            }
            Scribble::RecordPastTheRing => {
                self.write(REQUEST_DATA, &(RING_SIZE as u32).to_le_bytes());
                self.write(REQUEST_TAIL, &8u32.to_le_bytes());
            }
            Scribble::TailPastTheRing => {
                self.write(REQUEST_TAIL, &(2 * RING_SIZE as u32).to_le_bytes());
            }
            Scribble::UnalignedTail => self.write(REQUEST_TAIL, &3u32.to_le_bytes()),
        }
    }

    /// Tell the server its requests have something new.
    pub fn signal(&self) {
        // A server that dropped the connection may be gone from this bit: no matter.
        let _ = self.server.notify(1 << self.server_bit);
    }

    fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.channel.len());
        for (i, &byte) in bytes.iter().enumerate() {
            // SAFETY: in bounds of the mapping (checked above), which lives while `memory`
            // does; no Rust reference points into it. The server may access the same bytes
            // at the same time: volatile writes to shared memory, which is the point.
            unsafe { self.channel.as_ptr().add(offset + i).write_volatile(byte) };
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.memory.delete();
    }
}
