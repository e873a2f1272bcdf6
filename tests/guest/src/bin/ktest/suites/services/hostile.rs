//! A client that breaks the rules: it makes the connect handshake by hand, then writes
//! whatever it likes into the channel it shares with the server, or takes its copy of the
//! channel away.
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
const CHANNEL_SIZE: usize = PAGE_SIZE + 2 * RING_SIZE + (2 << 20);
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

/// A connection set up by hand.
pub struct Hostile {
    /// The client's copy of the channel the server made; held so the mapping stays.
    memory: Memory,
    channel: Mapping,
    server: Port,
    server_bit: u32,
}

impl Hostile {
    pub fn connect(server: Port, interface_hash: u64) -> Result<Hostile, String> {
        let wake = wake::port()
            .derive(rights::SEND | rights::GRANT, 0)
            .context("deriving a wake port capability")?;
        // Client bit 0: the server's signals wake whatever waits on it here, harmlessly.
        let request =
            Message::new(label::CONNECT, [interface_hash, 0, 0, 0]).with_caps(&[wake.handle()]);
        let answer = server.call(&request);
        let _ = wake.delete();
        let answer = answer.context("the connect call")?;
        let ([0, server_bit, ..], [channel, giver]) = (answer.words, answer.caps.as_slice()) else {
            return Err(format!(
                "a hostile client's connect was refused: {:?}",
                answer.words
            ));
        };
        // This client gives no capabilities: the badged one for that goes.
        let _ = Port::from_handle(*giver).delete();
        let memory = Memory::from_handle(*channel);
        let channel = memory
            .map(prot::READ | prot::WRITE)
            .context("mapping the channel")?;
        Ok(Hostile {
            memory,
            channel,
            server,
            server_bit: server_bit as u32,
        })
    }

    /// Revoke and delete this client's copy of the channel: the server's mapping is its
    /// own and must stay.
    pub fn pull_the_channel(self) {
        let _ = keel_rt::sys::ipc::cap_revoke(self.memory.handle());
        // Drop deletes the capability.
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
