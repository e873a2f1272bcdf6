//! The other side of the benchmarks: `kbench ROLE`, started by the harness with its
//! capabilities as handles `1..`, and the call server that also runs as a thread. (The
//! service server is in [`ping`](crate::ping).)
//!
//! Servers do the least a real server could: no logging, no allocation, one syscall per
//! message, so that what the client measures is the kernel's work.

use keel_abi::cap::Handle;
use keel_abi::ipc::MessageInfo;
use keel_abi::{Error, prot};
use keel_rt::{println, start_info};

use crate::ipc_page::IpcPage;
use crate::shared::Shared;
use crate::sys::{self, FOREVER};

/// Serves calls on handle 1; handle 2, if given, is the memory object READY refers to.
pub const SERVE: &str = "serve";
/// Answers each notification on handle 1 with a notification on handle 2.
pub const NOTIFY_ECHO: &str = "notify-echo";
/// Answers each notification on handle 1 with one on handle 2, signalling and waiting in one
/// `port_signal_recv`, until [`NOTIFY_STOP`].
pub const SIGNAL_ECHO: &str = "signal-echo";
/// Yields for ever, counting its turns in the memory object at handle 1.
pub const YIELD: &str = "yield";
/// Announces itself on the bootstrap port at handle 1, then serves [`Ping`](crate::ping)
/// until killed.
pub const SERVICE: &str = "service";
/// Handles COM1's interrupts (handles 1..=4: their port, the line, the UART's ports, and
/// the port to answer on) until a STOP message.
pub const IRQ: &str = "irq";

/// Message labels the call server understands.
pub mod label {
    /// Answer with the payload received (0 or more bytes).
    pub const ECHO: u32 = 1;
    /// Add the payload to a running checksum (reset when word 0, its offset, is 0); answer
    /// with the sum in word 0.
    pub const DATA: u32 = 2;
    /// Checksum the first word-0 bytes of the shared memory; answer with the sum in word 0.
    pub const READY: u32 = 3;
    /// Stop serving (sent, not called).
    pub const STOP: u32 = 4;
    /// Proof of arrival, no checksum: answer with the payload's first word (zero-padded)
    /// in word 0 and its length in word 1.
    pub const PIECE: u32 = 5;
    /// Answer with the first word of the shared memory in word 0.
    pub const PEEK: u32 = 6;
    /// The server's answer to a label it does not know.
    pub const UNKNOWN: u32 = 0xffff;
}

/// The notification bit that stops `notify-echo`.
pub const NOTIFY_STOP: u64 = 1 << 63;

/// The first capability a helper receives.
const FIRST_CAP: Handle = 1;

pub fn main(args: &str) -> i32 {
    let role = args.split_whitespace().next().unwrap_or("");
    let result = match role {
        SERVE => serve_process(),
        NOTIFY_ECHO => notify_echo(FIRST_CAP, FIRST_CAP + 1),
        SIGNAL_ECHO => signal_echo(FIRST_CAP, FIRST_CAP + 1),
        YIELD => yield_forever(FIRST_CAP),
        SERVICE => crate::ping::serve(),
        IRQ => crate::benches::irq::serve(FIRST_CAP, FIRST_CAP + 1, FIRST_CAP + 2, FIRST_CAP + 3),
        _ => {
            println!("kbench: no role {role:?}");
            return 2;
        }
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            println!("kbench {role}: {error}");
            1
        }
    }
}

fn serve_process() -> Result<(), Error> {
    let shared = if start_info().cap_count >= 2 {
        let memory = FIRST_CAP + 1;
        Some(Shared::map(memory, crate::benches::bulk::LEN, prot::READ)?)
    } else {
        None
    };
    serve(FIRST_CAP, shared)
}

/// Serves calls on `port` until a STOP message (see [`label`]).
pub fn serve(port: Handle, shared: Option<Shared>) -> Result<(), Error> {
    let page = IpcPage::register()?;
    let mut message = sys::port_recv(port, FOREVER)?;
    let mut sum = 0;
    loop {
        let info = message.info;
        let (reply, words) = match info.label() {
            label::ECHO => (MessageInfo::new(0, info.payload_len(), 0), [0, 0]),
            label::DATA => {
                if message.words[0] == 0 {
                    sum = 0;
                }
                sum = checksum(sum, page.payload(info.payload_len()));
                (MessageInfo::default(), [sum, 0])
            }
            label::PIECE => {
                let len = info.payload_len();
                let first = first_word(page.payload(len));
                (MessageInfo::default(), [first, len as u64])
            }
            label::PEEK => {
                // SAFETY: the client wrote the memory before its call and waits in it now.
                let first = shared.as_ref().map(|shared| unsafe { shared.bytes(8) });
                (
                    MessageInfo::default(),
                    [first_word(first.unwrap_or(&[])), 0],
                )
            }
            label::READY => {
                let len = message.words[0] as usize;
                // SAFETY: the client wrote the memory before its call and waits in it now.
                let bytes = shared.as_ref().map(|shared| unsafe { shared.bytes(len) });
                (
                    MessageInfo::default(),
                    [checksum(0, bytes.unwrap_or(&[])), 0],
                )
            }
            label::STOP => return Ok(()),
            other => (
                MessageInfo::new(label::UNKNOWN, 0, 0),
                [u64::from(other), 0],
            ),
        };
        message = sys::port_reply_recv(port, reply, [words[0], words[1], 0, 0])?;
    }
}

/// The first little-endian word of `bytes`, zero-padded when they are shorter.
pub fn first_word(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    let n = bytes.len().min(8);
    word[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(word)
}

/// The checksum both sides compute over what was moved: a wrapping sum of little-endian
/// 64-bit words (a short tail is zero-padded). Cheap, and enough to show the bytes arrived.
pub fn checksum(sum: u64, bytes: &[u8]) -> u64 {
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    let mut sum = words.fold(sum, |sum, word| {
        sum.wrapping_add(u64::from_le_bytes(word.try_into().expect("8 bytes")))
    });
    if !tail.is_empty() {
        let mut last = [0; 8];
        last[..tail.len()].copy_from_slice(tail);
        sum = sum.wrapping_add(u64::from_le_bytes(last));
    }
    sum
}

fn notify_echo(inbox: Handle, outbox: Handle) -> Result<(), Error> {
    loop {
        let message = sys::port_recv(inbox, FOREVER)?;
        if message.words[0] & NOTIFY_STOP != 0 {
            return Ok(());
        }
        sys::port_notify(outbox, 1)?;
    }
}

fn signal_echo(inbox: Handle, outbox: Handle) -> Result<(), Error> {
    let mut message = sys::port_recv(inbox, FOREVER)?;
    while message.words[0] & NOTIFY_STOP == 0 {
        message = sys::port_signal_recv(outbox, 1, inbox)?;
    }
    Ok(())
}

fn yield_forever(counter: Handle) -> Result<(), Error> {
    let mut counter = Shared::map(
        counter,
        keel_abi::layout::PAGE_SIZE,
        prot::READ | prot::WRITE,
    )?;
    loop {
        counter.bump_counter();
        sys::thread_yield();
    }
}
