//! Moving 1 MiB to a helper process: copied through messages (the kernel copies each
//! payload in and out) or written into memory both map, with one call to say it is there.
//!
//! The windows hold the transport only. The data is made before the samples; the server
//! answers each timed call cheaply with proof of arrival (a first word, a length) that the
//! client checks after the window; the server's full checksum of the data is taken once,
//! after the samples, outside every window.

use alloc::vec;
use alloc::vec::Vec;

use keel_abi::cap::Handle;
use keel_abi::ipc::{MAX_PAYLOAD, MessageInfo};
use keel_abi::{Error, Syscall, decode_result, prot};

use crate::benches::Helper;
use crate::benches::call::stop_server;
use crate::clock;
use crate::failure::{Context, Failure, ensure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::roles::{self, checksum, first_word, label};
use crate::shared::Shared;
use crate::stats::Stats;
use crate::sys;

/// Bytes moved per sample.
pub const LEN: usize = 1 << 20;
/// A copying sample is about half a million instructions: fewer are enough.
pub const ITERATIONS: usize = 50;
pub const WARMUP: usize = 3;

/// `bulk_copy_1mib`: 1 MiB as 261 calls of up to 4032 payload bytes each. The window is
/// the 261 PIECE calls, each copying its piece into the IPC buffer; the server answers each
/// with the piece's first word and length, which the client checks after the window. Each
/// sample stamps every piece's first word (sample and piece number) beforehand, so an
/// answer from a stale buffer fails. A DATA pass after the samples checks the checksum.
pub fn copy(measure: &mut Measure, page: &mut IpcPage) -> Result<Stats, Failure> {
    let mut data = pattern();
    let mut answers = vec![[0; 2]; data.len().div_ceil(MAX_PAYLOAD)];
    let port = sys::port_create(1).context("creating the port")?;
    let helper = Helper::spawn(roles::SERVE, &[port])?;
    let mut sample = 0;
    let result = measure
        .run(|| {
            sample += 1;
            stamp_pieces(&mut data, sample);
            let start = clock::now();
            let sent = send_pieces(port, &data, page, &mut answers);
            let elapsed = clock::now() - start;
            sent.context("transfer")?;
            check_pieces(&data, &answers)?;
            Ok(elapsed)
        })
        .and_then(|stats| {
            verify(send_in_messages(port, &data, page), checksum(0, &data))?;
            Ok(stats)
        });
    stop_server(port)?;
    helper.finish()?;
    sys::cap_delete(port).context("deleting the port")?;
    result
}

/// `bulk_zero_copy_1mib`: the client writes 1 MiB into a memory object the server also
/// maps, once, before the samples. The window is one PEEK call, which the server answers
/// with the memory's first word; each sample first bumps that word, so the answer shows
/// the server read this sample's memory. A READY call after the samples has the server
/// checksum all of it in place.
pub fn zero_copy(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    let mut data = pattern();
    let port = sys::port_create(1).context("creating the port")?;
    let memory = sys::mem_create(LEN).context("creating the shared memory")?;
    let mut shared =
        Shared::map(memory, LEN, prot::READ | prot::WRITE).context("mapping the shared memory")?;
    // SAFETY: the mapping lives until the benchmark deletes its capability, at the end; the
    // server reads it only during calls, while this side waits in them.
    unsafe { shared.bytes_mut(LEN) }.copy_from_slice(&data);
    let helper = Helper::spawn(roles::SERVE, &[port, memory])?;
    let result = measure
        .run(|| {
            shared.bump_counter();
            let stamp = shared.read_counter();
            let (elapsed, first) = timed_peek(port).context("PEEK")?;
            ensure(first == stamp, || {
                alloc::format!("the server read {first:#x} where {stamp:#x} was written")
            })?;
            Ok(elapsed)
        })
        .and_then(|stats| {
            data[..8].copy_from_slice(&shared.read_counter().to_le_bytes());
            let info = MessageInfo::new(label::READY, 0, 0);
            let answer = sys::port_call(port, info, [LEN as u64, 0, 0, 0]);
            verify(answer.map(|m| m.words[0]), checksum(0, &data))?;
            Ok(stats)
        });
    stop_server(port)?;
    helper.finish()?;
    for handle in [memory, port] {
        sys::cap_delete(handle).context("deleting the port or the memory")?;
    }
    result
}

/// 1 MiB that is not all one value.
pub fn pattern() -> Vec<u8> {
    (0..LEN).map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8).collect()
}

fn verify(sum: Result<u64, Error>, expected: u64) -> Result<(), Failure> {
    let sum = sum.context("checksum call")?;
    ensure(sum == expected, || {
        alloc::format!("the server's checksum {sum:#x} is not the data's {expected:#x}")
    })
}

/// Writes `sample << 32 | piece number` into the first word of every piece.
fn stamp_pieces(data: &mut [u8], sample: u64) {
    for (index, piece) in data.chunks_mut(MAX_PAYLOAD).enumerate() {
        piece[..8].copy_from_slice(&(sample << 32 | index as u64).to_le_bytes());
    }
}

/// Each answer must be its piece's first word and length.
fn check_pieces(data: &[u8], answers: &[[u64; 2]]) -> Result<(), Failure> {
    for (index, (piece, answer)) in data.chunks(MAX_PAYLOAD).zip(answers).enumerate() {
        let expected = [first_word(piece), piece.len() as u64];
        ensure(*answer == expected, || {
            alloc::format!("piece {index}: the server saw {answer:x?}, not {expected:x?}")
        })?;
    }
    Ok(())
}

/// The copying transfer, answers kept for checking later. Not inlined, so the timed window
/// holds exactly this call.
#[inline(never)]
fn send_pieces(
    port: Handle,
    data: &[u8],
    page: &mut IpcPage,
    answers: &mut [[u64; 2]],
) -> Result<(), Error> {
    for (piece, answer) in data.chunks(MAX_PAYLOAD).zip(answers) {
        page.payload_mut(piece.len()).copy_from_slice(piece);
        let info = MessageInfo::new(label::PIECE, piece.len(), 0);
        let words = sys::port_call(port, info, [0; 4])?.words;
        *answer = [words[0], words[1]];
    }
    Ok(())
}

/// The whole of `data` through DATA calls: the server's checksum of all it received.
fn send_in_messages(port: Handle, data: &[u8], page: &mut IpcPage) -> Result<u64, Error> {
    let mut sum = 0;
    for (index, piece) in data.chunks(MAX_PAYLOAD).enumerate() {
        page.payload_mut(piece.len()).copy_from_slice(piece);
        let info = MessageInfo::new(label::DATA, piece.len(), 0);
        let offset = (index * MAX_PAYLOAD) as u64;
        sum = sys::port_call(port, info, [offset, 0, 0, 0])?.words[0];
    }
    Ok(sum)
}

/// One timed PEEK call: the raw reading and the server's answer (word 0).
#[inline(always)]
fn timed_peek(port: Handle) -> Result<(u64, u64), Error> {
    let info = MessageInfo::new(label::PEEK, 0, 0);
    let result: usize;
    let first: u64;
    // SAFETY: `port_call` without payload changes only the registers declared; the shared
    // memory the server reads is not borrowed on this side while it does.
    let elapsed = unsafe {
        timed!(
            "mov eax, {number}",
            "xor edx, edx",
            "syscall",
            "mov r13, rax",
            "mov r14, rdx";
            number = const Syscall::PortCall as usize,
            inout("rdi") u64::from(port) => _,
            inout("rsi") info.0 => _,
            inout("r10") 0u64 => _,
            inout("r8") 0u64 => _,
            inout("r9") 0u64 => _,
            out("r13") result,
            out("r14") first,
            out("rcx") _,
            out("r11") _,
        )
    };
    decode_result(result)?;
    Ok((elapsed, first))
}
