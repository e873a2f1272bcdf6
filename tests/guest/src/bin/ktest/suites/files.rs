//! The file service on the virtio-blk driver, on the suite's own FAT32 disk (made new by the
//! host at each run, and checked with `fsck.vfat -n` after it): `ktest` runs init's
//! supervisor with the driver and `fs`, and is the file service's client itself.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use core::time::Duration;

use fs::{Files, FsClient, FsError, Kind, Whence};
use futures_util::future::{join, join_all};
use keel_init::{State, System};
use keel_rt::executor::sleep;
use keel_rt::{process, sys};

use super::system::{status, supervise};
use crate::check::{Context, all, ensure, expect_eq};
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(files:
    every_operation_works_and_what_was_written_reads_back,
    many_sessions_at_once_each_get_their_own_answers,
    bad_input_is_refused_and_the_service_goes_on,
    a_sessions_files_close_when_its_lease_goes_or_it_ends,
    a_clients_files_close_when_its_process_dies,
    sessions_that_come_and_go_leave_nothing_in_the_server,
    a_killed_file_service_comes_back_with_what_was_synced,
    the_block_driver_killed_100_times_loses_no_acknowledged_write,
);

const SCENARIO_LIMIT: Duration = Duration::from_secs(60);
/// Driver kills in the campaign.
const KILLS: u32 = 100;

/// The driver (restarted after every kill the campaign makes) and the file service.
const SYSTEM: &str = "\
keel-manifest 1
server block
program virtio-blk
pci 1af4:1042
frames 3072
restart always 200 10 0
server fs
program fs
connect block
frames 6144
restart always 5 20 60000
";

/// [`SYSTEM`] and a client that dies holding `/held.txt` open.
const WITH_HOLDER: &str = "\
server holder
program kchild
args files-holder /held.txt
connect fs
restart never 0 0 0
";

/// Run `scenario` with a session on the file service, once it serves.
fn with_files<F>(scenario: impl FnOnce(System, Files) -> F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>>,
{
    with_system(SYSTEM, scenario)
}

/// [`with_files`], on the system `manifest` describes.
fn with_system<F>(manifest: &str, scenario: impl FnOnce(System, Files) -> F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>>,
{
    let servers = keel_manifest::parse(manifest).context("parsing the test's manifest")?;
    supervise(servers, SCENARIO_LIMIT, async |system: System| {
        let files = begin(&system).await?;
        scenario(system, files).await
    })
}

async fn begin(system: &System) -> Result<Files, String> {
    system.until(|system| system.service("fs").is_some()).await;
    let port = system.service("fs").context("the fs service")?;
    let client = FsClient::connect(port).context("connecting to fs")?;
    Files::begin_on(client).await.context("beginning a session")
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 9) as u8)
        .collect()
}

fn every_operation_works_and_what_was_written_reads_back() -> Result<(), String> {
    with_files(async |system: System, files: Files| {
        files.mkdir("/ops").await.context("mkdir /ops")?;
        files.mkdir("/ops/sub dir").await.context("mkdir")?;
        // Larger than the 1 MiB region: the client's write goes in pieces.
        let big = pattern(1, (2 << 20) + 777);
        files
            .write_file("/ops/big file.bin", &big)
            .await
            .context("writing")?;
        let file = files
            .open("/ops/big file.bin", false)
            .await
            .context("open")?;
        let end = files.seek(file, Whence::End, -10).await.context("seek")?;
        let mut tail = [0u8; 32];
        let got = files.read(file, &mut tail).await.context("read")?;
        files.truncate(file, 1000).await.context("truncate")?;
        files
            .seek(file, Whence::Start, 1500)
            .await
            .context("seek")?;
        files.write(file, b"past the end").await.context("write")?;
        files.close(file).await.context("close")?;
        files.sync().await.context("sync")?;
        files
            .rename("/ops/big file.bin", "/ops/sub dir/moved.bin")
            .await
            .context("rename")?;
        // A second session sees what the first wrote.
        let other = begin(&system).await?;
        let moved = other
            .read_file("/ops/sub dir/moved.bin")
            .await
            .context("read_file")?;
        let mut expected = big[..1000].to_vec();
        expected.resize(1500, 0);
        expected.extend_from_slice(b"past the end");
        let listing = other.list("/ops").await.context("list")?;
        let stat = other.stat("/ops/sub dir").await.context("stat")?;
        files
            .remove("/ops/sub dir/moved.bin")
            .await
            .context("remove")?;
        let gone = files.stat("/ops/sub dir/moved.bin").await;
        let usage = files.usage().await.context("usage")?;
        all([
            expect_eq(
                "the position after seeking to 10 before the end",
                end,
                big.len() as u64 - 10,
            ),
            expect_eq("the last ten bytes", &tail[..got], &big[big.len() - 10..]),
            ensure(moved == expected, || {
                format!(
                    "the renamed file holds {} bytes, not the {} expected",
                    moved.len(),
                    expected.len()
                )
            }),
            expect_eq(
                "/ops lists",
                listing
                    .iter()
                    .map(|e| (e.name.as_str(), e.stat.kind))
                    .collect::<Vec<_>>(),
                alloc::vec![("sub dir", Kind::Directory)],
            ),
            expect_eq("the directory's kind", stat.kind, Kind::Directory),
            expect_eq(
                "a removed file",
                gone,
                Err(fs::Error::Fs(FsError::NotFound)),
            ),
            ensure(usage.free > 0 && usage.free < usage.total, || {
                format!("usage {usage:?}")
            }),
        ])
    })
}

fn many_sessions_at_once_each_get_their_own_answers() -> Result<(), String> {
    with_files(async |system: System, files: Files| {
        files.mkdir("/many").await.context("mkdir /many")?;
        // Sessions are not connections: six on two connections (a client process may
        // hold four).
        let port = system.service("fs").context("the fs service")?;
        let clients = [
            files.client().clone(),
            FsClient::connect(port).context("connecting")?,
        ];
        let mut sessions = Vec::new();
        for index in 0..6 {
            let client = clients[index % 2].clone();
            sessions.push(
                Files::begin_on(client)
                    .await
                    .context("beginning a session")?,
            );
        }
        let work = sessions
            .iter()
            .enumerate()
            .map(|(index, session)| async move {
                let path = format!("/many/session {index}.bin");
                let data = pattern(index as u8, 100_000 + index * 4096);
                for _ in 0..3 {
                    session.write_file(&path, &data).await?;
                    if session.read_file(&path).await? != data {
                        return Ok::<bool, fs::Error>(false);
                    }
                }
                Ok(true)
            });
        let outcomes = join_all(work).await;
        let listed = files.list("/many").await.context("list")?.len();
        all([
            ensure(outcomes.iter().all(|o| *o == Ok(true)), || {
                format!("the sessions' outcomes: {outcomes:?}")
            }),
            expect_eq("files listed", listed, 6),
        ])
    })
}

fn bad_input_is_refused_and_the_service_goes_on() -> Result<(), String> {
    with_files(async |_, files: Files| {
        let client = files.client();
        let session = files.session();
        let file = files.open("/bad input.txt", true).await.context("open")?;
        let long = "/x".repeat(600);
        let results = [
            (
                "a bad session",
                client.open(session + 1000, "/a", true).await,
            ),
            (
                "a bad handle",
                client.close(session, 77).await.map(|r| r.map(|()| 0)),
            ),
            ("a path too long", client.open(session, &long, true).await),
            (
                "a reserved character",
                client.open(session, "/a:b", true).await,
            ),
            ("the root as a file", client.open(session, "/", true).await),
            (
                "a file under a file",
                client.open(session, "/bad input.txt/x", true).await,
            ),
        ];
        let data = [
            (
                "a read past the region",
                client.read(session, file, 1 << 20, 1).await,
            ),
            ("a huge read", client.read(session, file, 0, u64::MAX).await),
            (
                "a huge write",
                client
                    .write(session, file, u64::MAX, 2)
                    .await
                    .map(|r| r.map(|()| 0)),
            ),
            (
                "a seek before the start",
                client.seek(session, file, Whence::Start, -1).await,
            ),
            ("a write past 4 GiB", {
                files
                    .seek(file, Whence::Start, u32::MAX as i64)
                    .await
                    .context("seek")?;
                client
                    .write(session, file, 0, 16)
                    .await
                    .map(|r| r.map(|()| 0))
            }),
        ];
        let busy = files.remove("/bad input.txt").await;
        files.close(file).await.context("close")?;
        let removed = files.remove("/bad input.txt").await;
        let errors = |list: &[(&str, Result<Result<u64, FsError>, _>)]| -> Vec<String> {
            list.iter()
                .filter(|(_, result)| !matches!(result, Ok(Err(_))))
                .map(|(what, result)| format!("{what}: {result:?}"))
                .collect()
        };
        let results: Vec<_> = results
            .into_iter()
            .map(|(w, r)| (w, r.map(|r| r.map(u64::from))))
            .collect();
        let not_refused: Vec<String> = [errors(&results), errors(&data)].concat();
        all([
            ensure(not_refused.is_empty(), || {
                format!("not refused: {not_refused:?}")
            }),
            expect_eq(
                "removing an open file",
                busy,
                Err(fs::Error::Fs(FsError::Busy)),
            ),
            expect_eq("removing it once closed", removed, Ok(())),
        ])
    })
}

fn a_sessions_files_close_when_its_lease_goes_or_it_ends() -> Result<(), String> {
    with_files(async |system: System, files: Files| {
        let other = begin(&system).await?;
        other
            .write_file("/leased.txt", b"held")
            .await
            .context("write")?;
        let file = other.open("/leased.txt", false).await.context("open")?;
        let session = other.session();
        let busy = files.remove("/leased.txt").await;
        drop(other);
        // The server looks at leases every 100 ms.
        sleep(Duration::from_millis(300)).await;
        let after = files.client().close(session, file).await.context("close")?;
        let removed = files.remove("/leased.txt").await;
        // A session its client ends is as gone.
        let ended = begin(&system).await?;
        let end = files.client().end(ended.session()).await.context("end")?;
        let after_end = ended.open("/x", true).await;
        all([
            expect_eq("ending a session", end, Ok(())),
            expect_eq(
                "a call on the ended session",
                after_end,
                Err(fs::Error::Fs(FsError::BadSession)),
            ),
            expect_eq(
                "removing it while open",
                busy,
                Err(fs::Error::Fs(FsError::Busy)),
            ),
            expect_eq("the gone session's close", after, Err(FsError::BadSession)),
            expect_eq("removing it once its session went", removed, Ok(())),
        ])
    })
}

/// A client process holds a file open (removing it is `Busy`) and is killed: within the
/// file service's look at leases, the file is free to remove.
fn a_clients_files_close_when_its_process_dies() -> Result<(), String> {
    let manifest = format!("{SYSTEM}{WITH_HOLDER}");
    with_system(&manifest, async |system: System, files: Files| {
        let busy = async {
            for _ in 0..200 {
                if files.remove("/held.txt").await == Err(fs::Error::Fs(FsError::Busy)) {
                    return true;
                }
                sleep(Duration::from_millis(10)).await;
            }
            false
        };
        ensure(busy.await, || "the holder never held /held.txt open".into())?;
        let pid = status(&system, "holder")?.pid.context("the holder's pid")?;
        process::kill(pid).context("killing the holder")?;
        let mut removed = files.remove("/held.txt").await;
        for _ in 0..100 {
            if removed.is_ok() {
                break;
            }
            sleep(Duration::from_millis(10)).await;
            removed = files.remove("/held.txt").await;
        }
        expect_eq("removing it after its holder died", removed, Ok(()))
    })
}

/// Twenty sessions begun, used and dropped: once the server has looked at their leases,
/// it holds as many capabilities and frames as before.
fn sessions_that_come_and_go_leave_nothing_in_the_server() -> Result<(), String> {
    with_files(async |system: System, files: Files| {
        let pid = status(&system, "fs")?
            .pid
            .context("the file service's pid")?;
        let held = || -> Result<(usize, u64), String> {
            let mut entries = [keel_abi::cap::CapEntry::default(); 256];
            let caps = sys::ipc::cap_list(pid, &mut entries).context("listing its caps")?;
            let frames = process::info(pid).context("its process info")?.frames;
            Ok((caps, frames))
        };
        files
            .write_file("/come and go.txt", b"x")
            .await
            .context("write")?;
        sleep(Duration::from_millis(300)).await;
        let before = held()?;
        for _ in 0..20 {
            let session = begin(&system).await?;
            let file = session
                .open("/come and go.txt", false)
                .await
                .context("open")?;
            let mut byte = [0u8; 1];
            session.read(file, &mut byte).await.context("read")?;
        }
        // Its look at leases comes every 100 ms; a busy host may run the guest slowly, so
        // give it up to 5 s to be back where it was.
        let mut after = held()?;
        for _ in 0..50 {
            if after == before {
                break;
            }
            sleep(Duration::from_millis(100)).await;
            after = held()?;
        }
        expect_eq("the server's (capabilities, frames)", after, before)
    })
}

/// The file service killed (a crash, as far as the disk knows): the restarted one mounts
/// the disk as the last sync left it; what was written since is gone, cleanly (the host
/// runs fsck on the image after the suite).
fn a_killed_file_service_comes_back_with_what_was_synced() -> Result<(), String> {
    with_files(async |system: System, files: Files| {
        files
            .write_file("/synced.txt", b"kept")
            .await
            .context("write")?;
        files.sync().await.context("sync")?;
        files
            .write_file("/unsynced.txt", b"lost")
            .await
            .context("write")?;
        let before = status(&system, "fs")?;
        process::kill(before.pid.context("the file service's pid")?).context("killing fs")?;
        system
            .until(|s| {
                s.status("fs")
                    .is_some_and(|fs| fs.restarts == before.restarts + 1)
                    && s.service("fs").is_some()
            })
            .await;
        let old = files.stat("/synced.txt").await;
        let again = begin(&system).await?;
        let kept = again.read_file("/synced.txt").await;
        let lost = again.stat("/unsynced.txt").await;
        all([
            ensure(matches!(old, Err(fs::Error::Transport(_))), || {
                format!("a call on the dead server's session: {old:?}")
            }),
            expect_eq("the synced file", kept.as_deref(), Ok(&b"kept"[..])),
            expect_eq(
                "the unsynced file",
                lost,
                Err(fs::Error::Fs(FsError::NotFound)),
            ),
        ])
    })
}

/// One writer writes and syncs a stream of files while the driver is killed at any moment
/// (requests in flight at the device included), each time as soon as it is back; every
/// write acknowledged must read back once it is over, and (the host checks) fsck must find
/// the disk clean. The device may finish a dead driver's requests into its DMA memory:
/// the kernel holds that memory until init has stopped the device.
fn the_block_driver_killed_100_times_loses_no_acknowledged_write() -> Result<(), String> {
    with_files(async |system: System, files: Files| {
        files.mkdir("/campaign").await.context("mkdir /campaign")?;
        let done = Rc::new(Cell::new(false));
        let acked = Rc::new(Cell::new(0u32));
        let killer = async {
            let mut kills = 0;
            while kills < KILLS {
                // Each kill lands among writes: one more must have been acknowledged since
                // the last, and the next is under way.
                let seen = acked.get();
                while acked.get() <= seen {
                    sleep(Duration::from_millis(1)).await;
                }
                sleep(Duration::from_millis(u64::from(kills % 5) * 2)).await;
                let restarts = status(&system, "block")?.restarts;
                let pid = status(&system, "block")?.pid.context("the driver's pid")?;
                process::kill(pid).context("killing the driver")?;
                kills += 1;
                system
                    .until(|s| {
                        s.status("block")
                            .is_some_and(|b| b.restarts > restarts && b.state == State::Running)
                    })
                    .await;
            }
            done.set(true);
            Ok::<u32, String>(kills)
        };
        let writer = async {
            let mut acknowledged: Vec<(String, Vec<u8>)> = Vec::new();
            let mut round = 0u32;
            while !done.get() || round < 8 {
                let path = format!("/campaign/f{}.bin", round % 16);
                let data = pattern(round as u8, 8192 + (round as usize % 5) * 1000);
                files
                    .write_file(&path, &data)
                    .await
                    .map_err(|e| format!("writing {path}: {e}"))?;
                if round % 4 == 3 {
                    files.sync().await.map_err(|e| format!("sync: {e}"))?;
                }
                acknowledged.retain(|(p, _)| *p != path);
                acknowledged.push((path, data));
                round += 1;
                acked.set(round);
            }
            files
                .sync()
                .await
                .map_err(|e| format!("the last sync: {e}"))?;
            Ok::<_, String>((round, acknowledged))
        };
        let (kills, written) = join(killer, writer).await;
        let (kills, (rounds, acknowledged)) = (kills?, written?);
        let mut lost = Vec::new();
        for (path, data) in &acknowledged {
            if files.read_file(path).await.as_deref() != Ok(&data[..]) {
                lost.push(path.clone());
            }
        }
        let restarts = status(&system, "block")?.restarts;
        keel_rt::println!(
            "files: {kills} driver kills during {rounds} writes, {restarts} restarts; {} lost",
            lost.len()
        );
        all([
            expect_eq("kills", kills, KILLS),
            ensure(lost.is_empty(), || {
                format!("acknowledged writes lost: {lost:?}")
            }),
        ])
    })
}
