//! `ring-fuzz`: everything a hostile client can do to a `#[service]` server, drawn at
//! random from a seed, for a bounded number of rounds. The server must go on answering
//! everyone else, and get back what this client held once it is gone: the `services`
//! suite watches both from outside.

use alloc::vec::Vec;

use keel_abi::cap::rights;
use keel_guest_tests::hostile::{
    self, CHANNEL_SIZE, Hostile, REQUEST_DATA, REQUEST_HEAD, REQUEST_TAIL, RESPONSE_HEAD,
    RESPONSE_TAIL, RING_SIZE, xorshift,
};
use keel_rt::ipc::{Message, Port};
use keel_rt::mem::Memory;
use keel_rt::service::label;

use crate::{Failure, OrSetup};

/// Rounds of mischief: each one action, a few hundred syscalls at most.
const ROUNDS: u32 = 300;
/// Hand-made connections held at once (the server refuses some of them).
const HELD: usize = 6;
/// The pause after each round.
const PAUSE: core::time::Duration = core::time::Duration::from_millis(2);

/// Caps: 1 = the service's port. The argument is the seed, then the first method id it
/// may call well-formed (0 unless given: the console's method 0 writes to the screen).
pub fn ring_fuzz(arg: &str) -> Result<i32, Failure> {
    let mut words = arg.split(' ').map(str::parse::<u64>);
    let (Some(Ok(seed)), first_method) = (words.next(), words.next().unwrap_or(Ok(0))) else {
        return Err(Failure::check("`ring-fuzz` wants a seed"));
    };
    let first_method = first_method.map_err(|_| Failure::check("a method id"))? as u32;
    let server = Port::from_handle(1);
    let hash = hostile::interface_hash(server).map_err(Failure::check)?;
    // What it gives away: copies of one page, over and over.
    let gift = Memory::create(4096).or_setup("a page to give")?;
    let mut fuzzer = Fuzzer {
        server,
        hash,
        gift: gift.handle(),
        state: seed | 1,
        first_method,
        held: Vec::new(),
        connections: 0,
    };
    let started = keel_rt::time::uptime();
    let mut actions = [0u32; 8];
    for _ in 0..ROUNDS {
        actions[fuzzer.round()] += 1;
        // The server, and the honest client, run between rounds: mischief against a
        // server that never gets the processor tests nothing.
        keel_rt::time::sleep(PAUSE);
    }
    keel_rt::println!(
        "kchild: ring-fuzz: {ROUNDS} rounds in {:?}, by action {actions:?}; {} connections made",
        keel_rt::time::uptime() - started,
        fuzzer.connections
    );
    Ok(0)
}

struct Fuzzer {
    server: Port,
    hash: u64,
    gift: keel_abi::cap::Handle,
    state: u64,
    /// The lowest method id its requests name.
    first_method: u32,
    held: Vec<Hostile>,
    /// Connections the server accepted.
    connections: u32,
}

impl Fuzzer {
    fn next(&mut self) -> u64 {
        xorshift(&mut self.state)
    }

    /// One action; which.
    fn round(&mut self) -> usize {
        let action = (self.next() % 8) as usize;
        match action {
            0 => self.connect(),
            1 => self.garbage_records(),
            2 => self.bogus_counter(),
            3 => self.huge_length(),
            4 => self.forged_gifts(),
            5 => self.answers_never_read(),
            6 => self.connect_storm(),
            _ => self.junk_messages(),
        }
        action
    }

    /// A connection of its own, kept (the oldest dropped without closing it).
    fn connect(&mut self) {
        if let Ok(Ok(connection)) = Hostile::try_connect(self.server, self.hash) {
            self.connections += 1;
            self.held.push(connection);
        }
        if self.held.len() > HELD {
            self.held.remove(0);
        }
    }

    /// One held connection, if any.
    fn pick(&mut self) -> Option<&Hostile> {
        if self.held.is_empty() {
            return None;
        }
        let i = self.next() as usize % self.held.len();
        self.held.get(i)
    }

    /// Random bytes where the next requests go, and a tail that claims them.
    fn garbage_records(&mut self) {
        let len = (self.next() % 512) as usize * 8;
        let at = (self.next() as usize % RING_SIZE) & !7;
        let mut bytes = Vec::with_capacity(len);
        for _ in 0..len {
            bytes.push(self.next() as u8);
        }
        let tail = (at + len) as u32;
        if let Some(connection) = self.pick() {
            connection.write(REQUEST_DATA + at, &bytes);
            connection.write(REQUEST_TAIL, &tail.to_le_bytes());
            connection.signal();
        }
    }

    /// Any value, often unaligned or past the ring, in one of the four counters.
    fn bogus_counter(&mut self) {
        let counters = [REQUEST_HEAD, REQUEST_TAIL, RESPONSE_HEAD, RESPONSE_TAIL];
        let which = counters[self.next() as usize % counters.len()];
        let value = match self.next() % 4 {
            0 => self.next() as u32,
            1 => 0xfffe,
            2 => (RING_SIZE as u32).wrapping_mul(self.next() as u32 % 5) + 4,
            _ => u32::MAX,
        };
        if let Some(connection) = self.pick() {
            connection.write(which, &value.to_le_bytes());
            // A valid request after it: the server must push an answer into the mess.
            connection.request(1, 0, &[]);
            connection.signal();
        }
    }

    /// A record whose length is far beyond anything the ring holds.
    fn huge_length(&mut self) {
        let len = match self.next() % 3 {
            0 => u32::MAX - 7,
            1 => RING_SIZE as u32,
            _ => CHANNEL_SIZE as u32,
        };
        if let Some(connection) = self.pick() {
            connection.write(REQUEST_HEAD, &0u32.to_le_bytes());
            connection.write(REQUEST_DATA, &len.to_le_bytes());
            connection.write(REQUEST_TAIL, &64u32.to_le_bytes());
            connection.signal();
        }
    }

    /// Capabilities given on badges it made up, and piled up on its own connection.
    fn forged_gifts(&mut self) {
        let badge = self.next() % 64;
        if let Ok(forged) = self.server.derive(rights::SEND | rights::GRANT, badge) {
            for _ in 0..8 {
                let _ = hostile::give(forged, self.gift);
            }
            let _ = forged.delete();
        }
        let gift = self.gift;
        if let Some(connection) = self.pick() {
            for _ in 0..12 {
                let _ = connection.give(gift);
            }
        }
    }

    /// Requests for any method, with any arguments, and their answers never read.
    fn answers_never_read(&mut self) {
        let count = self.next() % 2048;
        let method = self.first_method + self.next() as u32 % 6;
        let arguments = self.next().to_le_bytes();
        let len = (self.next() % 9) as usize;
        if let Some(connection) = self.pick() {
            for id in 0..count {
                if !connection.request(id as u32, method, &arguments[..len]) {
                    break;
                }
            }
            connection.signal();
        }
    }

    /// Connects as fast as it can: some with garbage, the rest dropped at once.
    fn connect_storm(&mut self) {
        for i in 0..16u64 {
            let words = [self.hash, self.next(), self.next(), i];
            let label = if i % 4 == 0 {
                self.next() as u32
            } else {
                label::CONNECT
            };
            let _ = self.server.call(&Message::new(label, words));
            // Half of them closed as they go, half just dropped.
            if let Ok(Ok(connection)) = Hostile::try_connect(self.server, self.hash) {
                self.connections += 1;
                if i % 2 == 0 {
                    connection.close();
                }
            }
        }
    }

    /// Messages of no protocol, sent until the server's queue is full.
    fn junk_messages(&mut self) {
        for _ in 0..80 {
            let words = [self.next(), self.next(), self.next(), self.next()];
            if self
                .server
                .send(&Message::new(self.next() as u32, words))
                .is_err()
            {
                break;
            }
        }
    }
}
