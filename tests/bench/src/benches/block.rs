//! The Block service on the virtio-blk driver: one 4 KiB read round trip (`blk_read_4k`)
//! and 16 MiB read in 1 MiB requests, one after another (`blk_seq_read_16mib`, per KiB).
//!
//! kbench runs init's supervisor (`keel_init`) with the driver granted its PCI function, on
//! the scratch disk `cargo boot bench` attaches, and calls it from a thread of its own
//! ([`scoped`]). While a request is at the device the CPU halts, and under icount the TSC
//! runs on by host time then: each sample is the TSC delta less the kernel's idle time in
//! it (`SysInfo::IdleTsc`, read just outside the window), the busy instructions. The data
//! moves by DMA straight into the client's region: no copy in the driver or the kernel.

use core::pin::pin;
use core::time::Duration;

use futures_util::future::{Either, select};
use keel_abi::SysInfo;
use keel_block::{BLOCK_SIZE, BlockClient, Region};
use keel_init::System;
use keel_rt::{executor, sys};

use crate::clock;
use crate::failure::{Context, Failure, ensure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::scoped;
use crate::stats::Stats;

/// KiB a `blk_seq_read_16mib` sample reads: its figures are per KiB.
pub const SEQ_KIB: u64 = 16 << 10;
/// A sequential sample is 16 MiB: few samples suffice.
pub const SEQ_ITERATIONS: usize = 20;
pub const SEQ_WARMUP: usize = 2;
/// One request of the sequential read: 1 MiB.
const SEQ_REQUEST: u32 = (1 << 20) / BLOCK_SIZE;

const DRIVER: &str = "\
keel-manifest 1
server block
program virtio-blk
pci 1af4:1042
frames 3072
";

/// `blk_read_4k`: read 8 blocks (4 KiB) into the region, and wait for the answer.
pub fn read_4k(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_disk(measure, async |measure, block, region| {
        let mut lba = 0;
        measure
            .run_async(async || {
                // Different blocks each time, none in a cache of the driver's (it has none).
                lba = (lba + 8) % (1 << 16);
                let call = block.read(region.id(), 0, lba, 8);
                let busy = busy(call).await;
                busy.0
                    .context("read")?
                    .map_err(|e| Failure(alloc::format!("read: {e}")))?;
                Ok(busy.1)
            })
            .await
    })
}

/// `blk_seq_read_16mib`: 16 reads of 1 MiB, from block 0 on, one after another.
pub fn seq_read_16mib(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_disk(measure, async |measure, block, region| {
        measure
            .run_async(async || {
                let reads = async {
                    for request in 0..16 {
                        let lba = u64::from(request * SEQ_REQUEST);
                        block
                            .read(region.id(), 0, lba, SEQ_REQUEST)
                            .await
                            .context("read")?
                            .map_err(|e| Failure(alloc::format!("read: {e}")))?;
                    }
                    Ok::<(), Failure>(())
                };
                let (done, busy) = busy(reads).await;
                done?;
                Ok(busy)
            })
            .await
    })
}

/// Run `work`; its outcome and the busy TSC it took (the delta less the idle time in it).
pub(crate) async fn busy<T>(work: impl Future<Output = T>) -> (T, u64) {
    let idle = || sys::sys_info(SysInfo::IdleTsc).unwrap_or(0) as u64;
    let idle_before = idle();
    let start = clock::now();
    let outcome = work.await;
    let elapsed = clock::now() - start;
    let idle_during = idle() - idle_before;
    (outcome, elapsed.saturating_sub(idle_during))
}

/// Start the driver under the supervisor, open a 1 MiB region, and run `bench` with a
/// client; stop the driver after.
fn with_disk(
    measure: &mut Measure,
    bench: impl AsyncFnOnce(&mut Measure, &BlockClient, &Region) -> Result<Stats, Failure> + Send,
) -> Result<Stats, Failure> {
    supervised(DRIVER, "the disk benchmark", async |system| {
        let port = system
            .service("block")
            .ok_or_else(|| Failure("no block service".into()))?;
        let block = BlockClient::connect(port).context("connecting to block")?;
        let region = Region::open(&block, 1 << 20)
            .await
            .map_err(|e| Failure(alloc::format!("opening a region: {e:?}")))?;
        let info = block.info().await.context("info")?;
        ensure(info.blocks >= 1 << 16, || {
            alloc::format!("a disk of {} blocks", info.blocks)
        })?;
        bench(measure, &block, &region).await
    })
}

/// Run the servers of `manifest` under init's supervisor on a thread of this process,
/// `work` once the last of them has registered its service, within 10 minutes; stop them
/// after. `what` names the work in a timeout's failure.
pub(crate) fn supervised(
    manifest: &str,
    what: &str,
    work: impl AsyncFnOnce(&System) -> Result<Stats, Failure> + Send,
) -> Result<Stats, Failure> {
    let servers = keel_manifest::parse(manifest).context("the manifest")?;
    let last = servers.last().map(|server| server.name.clone());
    scoped::run(move || {
        executor::block_on(async {
            let system = System::new(servers);
            system.start_all();
            let work = pin!(async {
                if let Some(last) = &last {
                    system.until(|system| system.service(last).is_some()).await;
                }
                work(&system).await
            });
            let timeout = pin!(executor::timeout(Duration::from_secs(600), work));
            let outcome = match select(pin!(system.run()), timeout).await {
                Either::Left((poweroff, _)) => Err(Failure(alloc::format!(
                    "{} asked for a poweroff",
                    poweroff.by
                ))),
                Either::Right((Ok(outcome), _)) => outcome,
                Either::Right((Err(_), _)) => Err(Failure(alloc::format!("{what} timed out"))),
            };
            system.shutdown().await;
            outcome
        })
    })?
}
