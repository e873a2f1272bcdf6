//! A client that breaks the rules: it makes the connect handshake by hand, then writes
//! whatever it likes into the channel it shares with the server, gives capabilities on
//! badges it forges, or takes its copy of the channel away. The `services` suite and the
//! `ring-fuzz` role both use it.
//!
//! It knows the channel's layout from rt/src/service/channel.rs: a header page with the
//! request ring's counters at 0 (head, tail: `u32` each), the response ring's at 64 and
//! the closing flag at 128, then the request ring's data and the response ring's, 64 KiB
//! each, then the 2 MiB arena.

use alloc::format;
use alloc::string::String;

use keel_abi::Error;
use keel_abi::cap::{Handle, rights};
use keel_abi::layout::PAGE_SIZE;
use keel_abi::prot;
use keel_ring::{Push, Ring, RingHeader, cells};
use keel_rt::executor::wake;
use keel_rt::ipc::{Message, Port};
use keel_rt::mem::{Mapping, Memory};
use keel_rt::service::label;

pub const RING_SIZE: usize = 64 * 1024;
pub const CHANNEL_SIZE: usize = PAGE_SIZE + 2 * RING_SIZE + (2 << 20);
pub const REQUEST_HEAD: usize = 0;
pub const REQUEST_TAIL: usize = 4;
pub const RESPONSE_HEAD: usize = 64;
pub const RESPONSE_TAIL: usize = 68;
pub const CLOSED: usize = 128;
pub const REQUEST_DATA: usize = PAGE_SIZE;
pub const RESPONSE_DATA: usize = PAGE_SIZE + RING_SIZE;

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

/// The interface hash of the service behind `server`, as its refusal of a connect with a
/// hash nobody has tells it.
pub fn interface_hash(server: Port) -> Result<u64, String> {
    match handshake(server, 0, wake::port())? {
        Message {
            words: [1, found, ..],
            ..
        } => Ok(found),
        answer => Err(format!(
            "a connect with hash 0 was answered {:?}",
            answer.words
        )),
    }
}

/// The connect call by hand, with `hash`, handing over `client` as this client's wake
/// port: the server's answer.
fn handshake(server: Port, hash: u64, client: Port) -> Result<Message, String> {
    let wake = client
        .derive(rights::SEND | rights::GRANT, 0)
        .map_err(|error| format!("deriving a wake port capability: {error:?}"))?;
    // Client bit 0: the server's signals wake whatever waits on it here, harmlessly.
    let request = Message::new(label::CONNECT, [hash, 0, 0, 0]).with_caps(&[wake.handle()]);
    let answer = server.call(&request);
    let _ = wake.delete();
    answer.map_err(|error| format!("the connect call: {error:?}"))
}

/// A connection set up by hand.
pub struct Hostile {
    /// The client's copy of the channel the server made; held so the mapping stays.
    memory: Memory,
    channel: Mapping,
    server: Port,
    /// The server's send capability badged for this connection.
    giver: Port,
    /// The connection's lease: the server watches it to learn this client is gone.
    lease: Port,
    server_bit: u32,
}

impl Hostile {
    /// Connect with `hash`; `Ok(Err(words))` when the server refused (its answer's words).
    pub fn try_connect(server: Port, hash: u64) -> Result<Result<Hostile, [u64; 4]>, String> {
        Hostile::try_connect_as(server, hash, wake::port())
    }

    /// [`try_connect`](Self::try_connect), handing over `client` (any port this process
    /// may send to) as its wake port.
    pub fn try_connect_as(
        server: Port,
        hash: u64,
        client: Port,
    ) -> Result<Result<Hostile, [u64; 4]>, String> {
        let answer = handshake(server, hash, client)?;
        let ([0, server_bit, ..], &[channel, giver, lease]) =
            (answer.words, answer.caps.as_slice())
        else {
            for &cap in &answer.caps {
                let _ = keel_rt::sys::ipc::cap_delete(cap);
            }
            return Ok(Err(answer.words));
        };
        let memory = Memory::from_handle(channel);
        let (giver, lease) = (Port::from_handle(giver), Port::from_handle(lease));
        let channel = match memory.map(prot::READ | prot::WRITE) {
            Ok(channel) => channel,
            Err(error) => {
                let _ = memory.delete();
                let _ = giver.delete();
                let _ = lease.delete();
                return Err(format!("mapping the channel: {error:?}"));
            }
        };
        Ok(Ok(Hostile {
            memory,
            channel,
            server,
            giver,
            lease,
            server_bit: server_bit as u32,
        }))
    }

    /// Connect with `hash`, which the server must accept.
    pub fn connect(server: Port, interface_hash: u64) -> Result<Hostile, String> {
        Hostile::try_connect(server, interface_hash)?
            .map_err(|words| format!("a hostile client's connect was refused: {words:?}"))
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
                    self.write(offset, &[xorshift(&mut state) as u8]);
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

    /// Put a request `[id][method][arguments]` in the request ring as an honest client
    /// would: false when the ring has no room (or is broken).
    pub fn request(&self, id: u32, method: u32, arguments: &[u8]) -> bool {
        let mut record = alloc::vec::Vec::with_capacity(8 + arguments.len());
        record.extend_from_slice(&id.to_le_bytes());
        record.extend_from_slice(&method.to_le_bytes());
        record.extend_from_slice(arguments);
        // SAFETY: the header and the data are inside the mapping, which lives while `self`
        // does; the ring only ever accesses them through atomics and cells.
        let requests = unsafe {
            let base = self.channel.as_ptr();
            Ring::new(
                &*(base.add(REQUEST_HEAD) as *const RingHeader),
                cells(base.add(REQUEST_DATA), RING_SIZE),
            )
            .producer()
        };
        matches!(requests.push(&record), Ok(Push::Done { .. }))
    }

    /// Give the server `cap` on this connection's badged capability: the answer's first
    /// word (0, or the error the server refused it with).
    pub fn give(&self, cap: Handle) -> Result<u64, Error> {
        give(self.giver, cap)
    }

    /// Call the server on this connection's badged capability, as an inline call is made
    /// (docs/SERVICES.md), with whatever `message` holds.
    pub fn call(&self, message: &keel_rt::ipc::Message) -> Result<keel_rt::ipc::Message, Error> {
        self.giver.call(message)
    }

    /// The badge the server gave this connection.
    pub fn badge(&self) -> Result<u64, Error> {
        keel_rt::sys::ipc::cap_info(self.giver.handle()).map(|info| info.badge)
    }

    /// Say this connection is over, as a client that drops its connection does.
    pub fn close(&self) {
        self.write(CLOSED, &1u32.to_le_bytes());
        self.signal();
    }

    /// Tell the server its requests have something new.
    pub fn signal(&self) {
        // A server that dropped the connection may be gone from this bit: no matter.
        let _ = self.server.notify(1 << self.server_bit);
    }

    /// Write `bytes` at `offset` in the channel; what falls outside it is left out.
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        let end = (offset + bytes.len()).min(self.channel.len());
        for (i, &byte) in bytes.iter().take(end.saturating_sub(offset)).enumerate() {
            // SAFETY: in bounds of the mapping (clipped above), which lives while `memory`
            // does; no Rust reference points into it. The server may access the same bytes
            // at the same time: volatile writes to shared memory, which is the point.
            unsafe { self.channel.as_ptr().add(offset + i).write_volatile(byte) };
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.memory.delete();
        let _ = self.giver.delete();
        let _ = self.lease.delete();
    }
}

/// A `GIVE` of `cap` through `to` (a connection's badged capability, or one forged from
/// the server's port): the answer's first word.
pub fn give(to: Port, cap: Handle) -> Result<u64, Error> {
    let give = Message::new(label::GIVE, [0; 4]).with_caps(&[cap]);
    to.call(&give).map(|answer| answer.words[0])
}

/// xorshift64: cheap bytes with no pattern the rings could mistake for sense.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
