//! The file service on the virtio-blk driver: 16 MiB written then synced
//! (`fs_write_16mib`), and 16 MiB read (`fs_read_16mib`), in 1 MiB calls through the
//! session's data region, per KiB.
//!
//! kbench runs init's supervisor with the driver and `fs`, on the FAT32 scratch disk
//! `cargo boot bench` attaches. Figures are busy instructions ([`block::busy`]: the TSC
//! delta less the kernel's idle time). The data region is filled once and read in place:
//! the one copy of file data is the file service's, between its client's region and the
//! driver's; the device DMAs to and from the driver's region.

use fs::{Files, FsClient, REGION_LEN};

use super::block::{busy, supervised};
use crate::failure::{Context, Failure, ensure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::stats::Stats;

/// KiB a sample moves: its figures are per KiB.
pub const KIB: u64 = 16 << 10;
/// A sample is 16 MiB: few suffice.
pub const ITERATIONS: usize = 10;
pub const WARMUP: usize = 1;
/// The calls of a sample, each one region's worth.
const CALLS: u64 = (16 << 20) / REGION_LEN;
const FILE: &str = "/bench.bin";

const SYSTEM: &str = "\
keel-manifest 1
server block
program virtio-blk
pci 1af4:1042
frames 3072
server fs
program fs
connect block
frames 6144
";

/// `fs_write_16mib`: the file cut to nothing, 16 MiB written, then synced.
pub fn write_16mib(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_files(measure, async |measure, files| {
        measure
            .run_async(async || {
                let (done, busy) = busy(async {
                    let file = files.open(FILE, true).await?;
                    files.truncate(file, 0).await?;
                    for _ in 0..CALLS {
                        files.write_region(file, 0, REGION_LEN).await?;
                    }
                    files.close(file).await?;
                    files.sync().await
                })
                .await;
                done.context("writing 16 MiB")?;
                Ok(busy)
            })
            .await
    })
}

/// `fs_read_16mib`: a 16 MiB file read from the start, to the end.
pub fn read_16mib(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_files(measure, async |measure, files| {
        let file = files.open(FILE, true).await.context("open")?;
        for _ in 0..CALLS {
            files
                .write_region(file, 0, REGION_LEN)
                .await
                .context("write")?;
        }
        files.close(file).await.context("close")?;
        files.sync().await.context("sync")?;
        measure
            .run_async(async || {
                let (read, busy) = busy(async {
                    let file = files.open(FILE, false).await?;
                    let mut read = 0;
                    for _ in 0..CALLS {
                        read += files.read_region(file, 0, REGION_LEN).await?;
                    }
                    files.close(file).await?;
                    Ok::<u64, fs::Error>(read)
                })
                .await;
                let read = read.context("reading 16 MiB")?;
                ensure(read == 16 << 20, || alloc::format!("read {read} bytes"))?;
                Ok(busy)
            })
            .await
    })
}

/// Start the driver and the file service under the supervisor, begin a session with its
/// region filled, and run `bench`; stop them after.
fn with_files(
    measure: &mut Measure,
    bench: impl AsyncFnOnce(&mut Measure, &Files) -> Result<Stats, Failure> + Send,
) -> Result<Stats, Failure> {
    supervised(SYSTEM, "the file benchmark", async |system| {
        let port = system
            .service("fs")
            .ok_or_else(|| Failure("no fs".into()))?;
        let client = FsClient::connect(port).context("connecting to fs")?;
        let files = Files::begin_on(client).await.context("a session")?;
        let (region, len) = files.region();
        // SAFETY: the region is mapped writable while `files` lives; nobody else writes it
        // now.
        unsafe { core::ptr::write_bytes(region, 0x5a, len) };
        bench(measure, &files).await
    })
}
