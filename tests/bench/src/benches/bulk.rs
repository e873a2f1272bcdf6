//! Moving 1 MiB to a helper process, which checksums it: copied through messages (the
//! kernel copies each payload in and out) or written once into memory both map, with one
//! call to say it is ready. A sample is the whole transfer, the server's checksum included,
//! and its answer must match the checksum of what was sent.

use alloc::vec::Vec;

use keel_abi::cap::Handle;
use keel_abi::ipc::{MAX_PAYLOAD, MessageInfo};
use keel_abi::{Error, prot};

use crate::benches::Helper;
use crate::benches::call::stop_server;
use crate::clock;
use crate::failure::{Context, Failure, ensure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::roles::{self, checksum, label};
use crate::shared::Shared;
use crate::stats::Stats;
use crate::sys;

/// Bytes moved per sample.
pub const LEN: usize = 1 << 20;
/// Each sample is about a million instructions: fewer are enough.
pub const ITERATIONS: usize = 50;
pub const WARMUP: usize = 3;

/// `bulk_copy_1mib`: 1 MiB as 261 calls of up to 4032 payload bytes each. The client
/// copies each piece into its IPC buffer; the server adds it to a running checksum.
pub fn copy(measure: &mut Measure, page: &mut IpcPage) -> Result<Stats, Failure> {
    let data = pattern();
    let expected = checksum(0, &data);
    let port = sys::port_create(1).context("creating the port")?;
    let helper = Helper::spawn(roles::SERVE, &[port])?;
    let stats = measure.run(|| {
        let start = clock::now();
        let sum = send_in_messages(port, &data, page);
        let elapsed = clock::now() - start;
        verify(sum, expected)?;
        Ok(elapsed)
    });
    stop_server(port)?;
    helper.finish()?;
    sys::cap_delete(port).context("deleting the port")?;
    stats
}

/// `bulk_zero_copy_1mib`: the client writes 1 MiB into a memory object the server also
/// maps, then one call says it is ready; the server checksums it in place.
pub fn zero_copy(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    let data = pattern();
    let expected = checksum(0, &data);
    let port = sys::port_create(1).context("creating the port")?;
    let memory = sys::mem_create(LEN).context("creating the shared memory")?;
    let mut shared =
        Shared::map(memory, LEN, prot::READ | prot::WRITE).context("mapping the shared memory")?;
    let helper = Helper::spawn(roles::SERVE, &[port, memory])?;
    let stats = measure.run(|| {
        let start = clock::now();
        let sum = write_shared(port, &data, &mut shared);
        let elapsed = clock::now() - start;
        verify(sum, expected)?;
        Ok(elapsed)
    });
    stop_server(port)?;
    helper.finish()?;
    for handle in [memory, port] {
        sys::cap_delete(handle).context("deleting the port or the memory")?;
    }
    stats
}

/// 1 MiB that is not all one value.
fn pattern() -> Vec<u8> {
    (0..LEN).map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8).collect()
}

fn verify(sum: Result<u64, Error>, expected: u64) -> Result<(), Failure> {
    let sum = sum.context("transfer")?;
    ensure(sum == expected, || {
        alloc::format!("the server's checksum {sum:#x} is not the data's {expected:#x}")
    })
}

/// The copying transfer. Not inlined, so the timed window holds exactly this call.
#[inline(never)]
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

/// The zero-copy transfer. Not inlined, so the timed window holds exactly this call.
#[inline(never)]
fn write_shared(port: Handle, data: &[u8], shared: &mut Shared) -> Result<u64, Error> {
    // SAFETY: the mapping lives until the benchmark deletes its capability, after the last
    // sample; the server reads it only during the call below, while this side waits.
    unsafe { shared.bytes_mut(data.len()) }.copy_from_slice(data);
    let info = MessageInfo::new(label::READY, 0, 0);
    let answer = sys::port_call(port, info, [data.len() as u64, 0, 0, 0])?;
    Ok(answer.words[0])
}
