//! The virtio-blk driver and the Block service, on the scratch disk the suite's QEMU
//! attaches (64 MiB, blank at each run): `ktest` runs init's supervisor with the driver
//! granted its PCI function, and is the driver's client itself.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use futures_util::future::join_all;
use keel_abi::{Error, SysInfo};
use keel_block::{BLOCK_SIZE, BlockClient, BlockError, OpenError, Region};
use keel_init::{State, System};
use keel_rt::driver::DeviceMemory;
use keel_rt::driver::pci::ConfigSpace;
use keel_rt::{process, sys};

use super::system::{status, supervise};
use crate::check::{Context, all, ensure, expect_eq};
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(storage:
    written_blocks_read_back,
    many_requests_in_flight_each_land_where_they_should,
    malformed_requests_are_refused_and_change_nothing_on_disk,
    device_memory_is_never_ram,
    a_driver_reaches_its_own_function_and_nothing_else,
    a_killed_driver_is_restarted_and_serves_the_same_disk_again,
);

const SCENARIO_LIMIT: Duration = Duration::from_secs(30);
const BLOCK: usize = BLOCK_SIZE as usize;

const DRIVER: &str = "\
keel-manifest 1
server block
program virtio-blk
pci 1af4:1042
frames 3072
restart always 5 20 60000
";

/// Run `scenario` against the driver once it serves, with a connected client.
fn with_disk<F>(scenario: impl FnOnce(System, BlockClient) -> F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>>,
{
    run(DRIVER, async |system: System| {
        let block = connect(&system).await?;
        scenario(system, block).await
    })
}

fn run<F>(manifest: &str, scenario: impl FnOnce(System) -> F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>>,
{
    let servers = keel_manifest::parse(manifest).context("parsing the test's manifest")?;
    supervise(servers, SCENARIO_LIMIT, scenario)
}

/// A client of the driver's service, once it has registered.
async fn connect(system: &System) -> Result<BlockClient, String> {
    system
        .until(|system| system.service("block").is_some())
        .await;
    let port = system.service("block").context("the block service")?;
    BlockClient::connect(port).context("connecting to block")
}

async fn open(block: &BlockClient, len: u64) -> Result<Region, String> {
    Region::open(block, len)
        .await
        .map_err(|error| format!("opening a region of {len} bytes: {error:?}"))
}

/// `blocks` blocks of a pattern that names `seed` and each byte's place.
fn pattern(seed: u8, blocks: usize) -> Vec<u8> {
    (0..blocks * BLOCK)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i / BLOCK) as u8)
        .collect()
}

/// Write `data` to `lba` through the region's bytes at `offset`.
async fn write(
    block: &BlockClient,
    region: &Region,
    offset: usize,
    lba: u64,
    data: &[u8],
) -> Result<(), String> {
    region.write_at(offset, data);
    let count = (data.len() / BLOCK) as u32;
    block
        .write(region.id(), offset as u64, lba, count)
        .await
        .context("the write call")?
        .map_err(|error| format!("writing {count} blocks at {lba}: {error:?}"))
}

/// Read `blocks` blocks from `lba` through the region's bytes at `offset`.
async fn read(
    block: &BlockClient,
    region: &Region,
    offset: usize,
    lba: u64,
    blocks: usize,
) -> Result<Vec<u8>, String> {
    block
        .read(region.id(), offset as u64, lba, blocks as u32)
        .await
        .context("the read call")?
        .map_err(|error| format!("reading {blocks} blocks at {lba}: {error:?}"))?;
    let mut out = alloc::vec![0; blocks * BLOCK];
    region.read_at(offset, &mut out);
    Ok(out)
}

fn written_blocks_read_back() -> Result<(), String> {
    with_disk(async |_, block: BlockClient| {
        let info = block.info().await.context("info")?;
        let region = open(&block, 1 << 20).await?;
        let data = pattern(1, 128);
        write(&block, &region, 0, 1000, &data).await?;
        region.write_at(0, &alloc::vec![0; data.len()]);
        let back = read(&block, &region, 64 << 10, 1000, 128).await?;
        block
            .flush()
            .await
            .context("flush")?
            .map_err(|e| format!("flush: {e:?}"))?;
        all([
            expect_eq("the disk's blocks", info.blocks, 64 << 11),
            expect_eq("its block size", info.block_size, BLOCK_SIZE),
            expect_eq("read-only", info.read_only, false),
            expect_eq("the region's length", region.len(), 1 << 20),
            ensure(back == data, || {
                "the blocks read back differ from those written".into()
            }),
        ])
    })
}

fn many_requests_in_flight_each_land_where_they_should() -> Result<(), String> {
    with_disk(async |_, block: BlockClient| {
        const REQUESTS: usize = 64;
        const BLOCKS: usize = 8;
        let region = open(&block, (2 * REQUESTS * BLOCKS * BLOCK) as u64).await?;
        let data: Vec<Vec<u8>> = (0..REQUESTS)
            .map(|i| pattern(i as u8 + 2, BLOCKS))
            .collect();
        for (i, data) in data.iter().enumerate() {
            region.write_at(i * BLOCKS * BLOCK, data);
        }
        // Every request at once, scattered over the disk (the executor sends them all
        // before the first answer comes).
        let lba = |i: usize| (i * 977 % 1000) as u64 * 64;
        let writes = (0..REQUESTS).map(|i| {
            block.write(
                region.id(),
                (i * BLOCKS * BLOCK) as u64,
                lba(i),
                BLOCKS as u32,
            )
        });
        let before = block.stats().await.context("stats")?;
        let written = join_all(writes).await;
        let base = REQUESTS * BLOCKS * BLOCK;
        let reads = (0..REQUESTS).map(|i| {
            block.read(
                region.id(),
                (base + i * BLOCKS * BLOCK) as u64,
                lba(i),
                BLOCKS as u32,
            )
        });
        let read = join_all(reads).await;
        let after = block.stats().await.context("stats")?;
        let mut wrong = Vec::new();
        for (i, expected) in data.iter().enumerate() {
            let mut back = alloc::vec![0; BLOCKS * BLOCK];
            region.read_at(base + i * BLOCKS * BLOCK, &mut back);
            if &back != expected {
                wrong.push(i);
            }
        }
        all([
            expect_eq(
                "failed writes",
                written.iter().filter(|r| !matches!(r, Ok(Ok(())))).count(),
                0,
            ),
            expect_eq(
                "failed reads",
                read.iter().filter(|r| !matches!(r, Ok(Ok(())))).count(),
                0,
            ),
            expect_eq("requests whose blocks read back wrong", wrong, Vec::new()),
            expect_eq(
                "requests the device was given",
                after.requests - before.requests,
                2 * REQUESTS as u64,
            ),
            ensure(after.most_in_flight >= 16, || {
                format!(
                    "at most {} requests were at the device at once",
                    after.most_in_flight
                )
            }),
        ])
    })
}

fn malformed_requests_are_refused_and_change_nothing_on_disk() -> Result<(), String> {
    with_disk(async |_, block: BlockClient| {
        let blocks = block.info().await.context("info")?.blocks;
        let region = open(&block, 64 << 10).await?;
        let (first, last) = (pattern(7, 8), pattern(8, 8));
        write(&block, &region, 0, 0, &first).await?;
        write(&block, &region, 0, blocks - 8, &last).await?;
        // Something else in the region, which a write that slipped through would store.
        region.write_at(0, &alloc::vec![0xee; 64 << 10]);
        let id = region.id();
        let len = region.len() as u64;
        let cases: [(&str, bool, u64, u64, u64, u32, BlockError); 10] = [
            (
                "a write past the end",
                true,
                id,
                0,
                blocks,
                1,
                BlockError::OutOfRange,
            ),
            (
                "a write running over the end",
                true,
                id,
                0,
                blocks - 1,
                2,
                BlockError::OutOfRange,
            ),
            (
                "a write at the largest LBA",
                true,
                id,
                0,
                u64::MAX,
                1,
                BlockError::OutOfRange,
            ),
            (
                "a write from a misaligned offset",
                true,
                id,
                100,
                0,
                1,
                BlockError::Misaligned,
            ),
            ("a huge write", true, id, 0, 0, 4096, BlockError::TooLarge),
            (
                "a write from past the region",
                true,
                id,
                len,
                0,
                1,
                BlockError::BadOffset,
            ),
            (
                "a write running past the region",
                true,
                id,
                len - 512,
                0,
                2,
                BlockError::BadOffset,
            ),
            (
                "a write from a region nobody opened",
                true,
                id ^ (1 << 40),
                0,
                0,
                1,
                BlockError::NoSuchRegion,
            ),
            (
                "a read past the end",
                false,
                id,
                0,
                blocks,
                1,
                BlockError::OutOfRange,
            ),
            (
                "a read into past the region",
                false,
                id,
                u64::MAX - 511,
                0,
                1,
                BlockError::BadOffset,
            ),
        ];
        let mut checks = Vec::new();
        for (what, is_write, region_id, offset, lba, count, expected) in cases {
            let answer = if is_write {
                block.write(region_id, offset, lba, count).await
            } else {
                block.read(region_id, offset, lba, count).await
            };
            checks.push(expect_eq(what, answer, Ok(Err(expected))));
        }
        let (zero, huge) = (block_port(&block)?, block_port(&block)?);
        checks.push(expect_eq(
            "a region of no bytes",
            block.open_region(0, zero).await,
            Ok(Err(BlockError::TooLarge)),
        ));
        checks.push(expect_eq(
            "a region of 1 TiB",
            block.open_region(1 << 40, huge).await,
            Ok(Err(BlockError::TooLarge)),
        ));
        let (first_back, last_back) = (
            read(&block, &region, 0, 0, 8).await?,
            read(&block, &region, 8 * BLOCK, blocks - 8, 8).await?,
        );
        checks.push(ensure(first_back == first, || {
            "the first blocks changed".into()
        }));
        checks.push(ensure(last_back == last, || {
            "the last blocks changed".into()
        }));
        all(checks)
    })
}

/// A capability to give as a region's port (the request is refused before it is used).
fn block_port(block: &BlockClient) -> Result<keel_rt::service::Cap, String> {
    let port = keel_rt::ipc::Port::create(1).context("a port")?;
    block
        .connection()
        .cap(port.handle())
        .context("giving the port")
}

fn device_memory_is_never_ram() -> Result<(), String> {
    let dma = keel_rt::driver::DmaBuffer::new(ecam_page()?.handle(), 4096).context("a DMA page")?;
    let free = sys::sys_info(SysInfo::FreeFrames).context("free frames")?;
    let checks = [
        ("the first MiB (BIOS areas)", 0xe_0000, 4096),
        ("the kernel image", 0x10_0000, 4096),
        ("a frame of RAM", dma.phys(), 4096),
        ("a range ending in RAM", dma.phys() - 4096, 8192),
        ("a misaligned range", 0xb000_0004, 4096),
        ("a range wrapping around", u64::MAX - 4095, 8192),
    ]
    .map(|(what, phys, len)| {
        expect_eq(
            what,
            sys::device::mem_create_device(phys, len).map(drop),
            Err(Error::InvalidArgument),
        )
    });
    let after = sys::sys_info(SysInfo::FreeFrames).context("free frames")?;
    all(checks
        .into_iter()
        .chain([expect_eq("free frames", after, free)]))
}

/// Bus 0's configuration space, mapped (ktest holds the SYSTEM right).
fn bus0() -> Result<DeviceMemory, String> {
    let ecam = sys::sys_info(SysInfo::PciEcam).context("where ECAM is")? as u64;
    DeviceMemory::create(ecam, 1 << 20).context("mapping bus 0")
}

/// One page of configuration space: a device capability to show for DMA memory.
fn ecam_page() -> Result<DeviceMemory, String> {
    let ecam = sys::sys_info(SysInfo::PciEcam).context("where ECAM is")? as u64;
    DeviceMemory::create(ecam, 4096).context("mapping a configuration page")
}

/// The configuration page of the first function with `vendor:device` on bus 0.
fn find(bus: &DeviceMemory, vendor: u16, device: u16) -> Result<ConfigSpace<'_>, String> {
    (0..256)
        .map(|function| ConfigSpace::new(bus, function << 12))
        .find(|config| config.vendor_id() == Ok(vendor) && config.device_id() == Ok(device))
        .context(&format!("PCI function {vendor:04x}:{device:04x}"))
}

fn a_driver_reaches_its_own_function_and_nothing_else() -> Result<(), String> {
    let bus = bus0()?;
    let (sata, disk) = (find(&bus, 0x8086, 0x2922)?, find(&bus, 0x1af4, 0x1042)?);
    let page = |config: &ConfigSpace<'_>| -> Result<u64, String> {
        let offset = (0..256usize)
            .map(|f| f << 12)
            .find(|&offset| {
                ConfigSpace::new(&bus, offset).read32(0) == config.read32(0)
                    && ConfigSpace::new(&bus, offset).read32(8) == config.read32(8)
            })
            .context("the function's page")?;
        Ok(bus.phys() + offset as u64)
    };
    let disk_bar = disk
        .bar(4)
        .context("the disk's BAR 4")?
        .context("BAR 4")?
        .address;
    let manifest = format!(
        "keel-manifest 1\nserver confined\nprogram kchild\nargs pci-confined {:x} {:x} {disk_bar:x}\npci 8086:2922\n",
        page(&sata)?,
        page(&disk)?,
    );
    run(&manifest, async |system: System| {
        let confined = super::system::finished(&system, "confined").await?;
        expect_eq(
            "how the confined driver ended",
            confined.last_exit,
            Some(process::Exit::Exited(0)),
        )
    })
}

fn a_killed_driver_is_restarted_and_serves_the_same_disk_again() -> Result<(), String> {
    with_disk(async |system: System, block: BlockClient| {
        let region = open(&block, 64 << 10).await?;
        let data = pattern(9, 16);
        write(&block, &region, 0, 4096, &data).await?;
        block
            .flush()
            .await
            .context("flush")?
            .map_err(|e| format!("flush: {e:?}"))?;
        let first = status(&system, "block")?;
        let pid = first.pid.context("the driver's pid")?;
        process::kill(pid).context("killing the driver")?;
        system
            .until(|system| {
                system
                    .status("block")
                    .is_some_and(|s| s.restarts == 1 && s.state == State::Running)
                    && system.service("block").is_some()
            })
            .await;
        let again = connect(&system).await?;
        let stale = again.read(region.id(), 0, 4096, 16).await;
        let region = match Region::open(&again, 64 << 10).await {
            Ok(region) => region,
            Err(OpenError::Block(error)) => {
                return Err(format!("a region after the restart: {error:?}"));
            }
            Err(error) => return Err(format!("a region after the restart: {error:?}")),
        };
        let back = read(&again, &region, 0, 4096, 16).await?;
        let more = pattern(10, 16);
        write(&again, &region, 0, 8192, &more).await?;
        let more_back = read(&again, &region, 16 * BLOCK, 8192, 16).await?;
        all([
            expect_eq(
                "the old region, on the new driver",
                stale,
                Ok(Err(BlockError::NoSuchRegion)),
            ),
            ensure(back == data, || {
                "what was written before the kill reads back differently".into()
            }),
            ensure(more_back == more, || {
                "a write after the restart reads back differently".into()
            }),
            expect_eq("failures", system.failures(), Vec::<String>::new()),
        ])
    })
}
