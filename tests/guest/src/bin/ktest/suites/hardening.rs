//! Hardening: what a hostile process found (issue 16), each fixed, each shown here to stay
//! fixed: nothing a process does leaks kernel memory or frames past its end, and one
//! process cannot take what others need.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use keel_abi::layout::PAGE_SIZE;
use keel_abi::{DEFAULT_MAX_PROCESSES, Error, SysInfo, prot, rights};
use keel_guest_tests::{Reported, Role, decode_result};
use keel_rt::ipc::Port;
use keel_rt::mem::Memory;
use keel_rt::process::{Exit, Pid, Spawn};
use keel_rt::{sys, time};

use crate::check::{Context, all, ensure, expect_eq};
use crate::runner::{Suite, suite};
use crate::{child, receive};

pub const SUITE: Suite = suite!(hardening:
    a_port_whose_last_capability_is_queued_on_itself_is_freed_with_what_it_holds,
    page_tables_count_against_the_kernel_bytes_quota,
    one_process_cannot_fill_the_process_table_and_its_descendants_end_with_it,
    a_hog_exhausting_its_frame_quota_leaves_others_room_to_map_and_spawn,
    a_child_never_gets_more_than_its_parent_has,
);

fn free_frames() -> Result<usize, String> {
    sys::sys_info(SysInfo::FreeFrames).context("sys_info(FreeFrames)")
}

/// Finding 1: 16 frames were lost per round; a chain of such ports must not overflow the
/// kernel stack either (it is freed in a loop), and two ports holding each other's last
/// capability are just as dead.
fn a_port_whose_last_capability_is_queued_on_itself_is_freed_with_what_it_holds()
-> Result<(), String> {
    // A first child warms ktest up (its heap grows once to spawn and wait).
    child::expect_exit(Role::SelfQueuedPort, "1 1 1", 0)?;
    let before = free_frames()?;
    child::expect_exit(Role::SelfQueuedPort, "50 0 0", 0)?;
    let after_rounds = free_frames()?;
    child::expect_exit(Role::SelfQueuedPort, "0 200 0", 0)?;
    let after_chain = free_frames()?;
    child::expect_exit(Role::SelfQueuedPort, "0 0 50", 0)?;
    let after_cycles = free_frames()?;
    let ports = sys::sys_info(SysInfo::Ports).context("sys_info(Ports)")?;
    ensure(
        after_rounds == before && after_chain == before && after_cycles == before && ports == 0,
        || {
            format!(
                "free frames: {before} before, {after_rounds} after 50 self-queued ports, \
                 {after_chain} after a chain of 200, {after_cycles} after 50 pairs of ports \
                 holding each other; {ports} ports left"
            )
        },
    )
}

/// Finding 3: sparse one-page maps took a process's kernel bytes to 2,596,928, over its
/// 2 MiB quota. The child checks the refusal and its figures; here, that its frames return.
fn page_tables_count_against_the_kernel_bytes_quota() -> Result<(), String> {
    let before = free_frames()?;
    child::expect_exit(Role::SparseMaps, "", 0)?;
    let after = free_frames()?;
    ensure(after == before, || {
        format!("free frames: {before} before the sparse maps, {after} after")
    })
}

/// `kchild`'s image in a memory object (and its length), for children that spawn `kchild`.
fn image_object() -> Result<(Memory, usize), String> {
    let image = child::image()?;
    let memory = Memory::create(image.len().next_multiple_of(PAGE_SIZE)).context("mem_create")?;
    let mapping = memory
        .map(prot::READ | prot::WRITE)
        .context("mapping the image object")?;
    // SAFETY: a fresh mapping at least `image.len()` long that nothing else refers to; it
    // is unmapped right after and never used again.
    unsafe {
        core::ptr::copy_nonoverlapping(image.as_ptr(), mapping.as_ptr(), image.len());
        mapping.unmap().context("unmapping the image object")?;
    }
    Ok((memory, image.len()))
}

/// Starts `kchild ARGS` with the SPAWN right, `frames` of quota and, as handles 1 and 2,
/// `image` and `report`.
fn spawn_spawner(args: &str, frames: usize, image: Memory, report: Port) -> Result<Pid, String> {
    Spawn::new("kchild", child::image()?)
        .args(args)
        .rights(rights::SPAWN)
        .caps(&[image.handle(), report.handle()])
        .frames(frames)
        .spawn()
        .context(&format!("spawning kchild {args}"))
}

fn live_processes() -> Result<usize, String> {
    sys::sys_info(SysInfo::Processes).context("sys_info(Processes)")
}

/// Finding 4: one parent held 251 idle children and nobody else could spawn; orphans
/// outlived their parent.
fn one_process_cannot_fill_the_process_table_and_its_descendants_end_with_it() -> Result<(), String>
{
    let limit = DEFAULT_MAX_PROCESSES as usize;
    let (image, len) = image_object()?;
    let report = Port::create(4).context("port_create")?;
    let before = live_processes()?;
    // Room for its children's 2 MiB each and its own.
    let frames = (limit + 4) * 512;
    let breeder = spawn_spawner(&format!("breeder {len} {limit}"), frames, image, report)?;
    let got = receive::message(report, "the breeder's report")?;
    let (results, children) = (got.message.words[0] as i64, got.message.words[1] as usize);
    let during = live_processes()?;
    let other = child::run(Role::Exit, "0");
    let killed = child::kill_and_reap(breeder);
    let after = live_processes()?;
    let _ = image.delete();
    all([
        expect_eq(
            "a child asking for more descendants than its parent may have",
            decode_result(results, 0),
            Reported::Failed(Error::PermissionDenied),
        ),
        expect_eq(
            "the spawn after the breeder's last child",
            decode_result(results, 1),
            Reported::Failed(Error::QuotaExceeded),
        ),
        expect_eq(
            "children of the breeder (the default limit)",
            children,
            limit,
        ),
        expect_eq(
            "live processes with the breeder",
            during,
            before + 1 + limit,
        ),
        expect_eq(
            "another process's spawn meanwhile",
            other,
            Ok(Exit::Exited(0)),
        ),
        killed,
        expect_eq("live processes once the breeder is killed", after, before),
    ])
}

/// Finding 5: three processes with the spawn right took free frames to 0, and then nobody
/// could map or spawn. Each hog here has 8 MiB, maps until refused, and tries to spawn a
/// hog of its own (its children's quota would come out of its own).
fn a_hog_exhausting_its_frame_quota_leaves_others_room_to_map_and_spawn() -> Result<(), String> {
    const HOGS: usize = 3;
    const HOG_FRAMES: usize = 2048;
    const MAP: usize = 4 << 20;
    let (image, len) = image_object()?;
    let report = Port::create(64).context("port_create")?;
    let args = format!("hog {len} 3");
    let mut hogs = Vec::new();
    let free_before = free_frames()?;
    for _ in 0..HOGS {
        hogs.push(spawn_spawner(&args, HOG_FRAMES, image, report)?);
    }
    let mut results = Vec::new();
    for _ in 0..HOGS {
        results.push(receive::message(report, "a hog's report")?.message.words[0] as i64);
    }
    // Whatever the hogs started has time to take what it can.
    time::sleep(Duration::from_millis(300));
    let mapped = sys::mem_map(0, MAP, prot::READ | prot::WRITE);
    if let Ok(addr) = mapped {
        // SAFETY: just mapped here; nothing refers to it.
        let _ = unsafe { sys::mem_unmap(addr, MAP) };
    }
    let spawned = child::run(Role::Exit, "0");
    let killed = all(hogs.iter().map(|&hog| child::kill_and_reap(hog)));
    let free_after = free_frames()?;
    let _ = image.delete();
    let each = results.iter().map(|&result| {
        all([
            expect_eq(
                "a hog's last map",
                decode_result(result, 0),
                Reported::Failed(Error::QuotaExceeded),
            ),
            expect_eq(
                "a hog's spawn with its quota used up",
                decode_result(result, 1),
                Reported::Failed(Error::QuotaExceeded),
            ),
        ])
    });
    all(each.chain([
        expect_eq("a 4 MiB map beside the hogs", mapped.map(drop), Ok(())),
        expect_eq("a spawn beside the hogs", spawned, Ok(Exit::Exited(0))),
        killed,
        ensure(free_after == free_before, || {
            format!("free frames: {free_before} before the hogs, {free_after} after")
        }),
    ]))
}

/// The limits a parent asks for its child, at their edges: frames beyond what it has left
/// (`usize::MAX` included, which must not wrap), processes and threads beyond its own.
fn a_child_never_gets_more_than_its_parent_has() -> Result<(), String> {
    let own = sys::ipc::resources().context("resources")?;
    let left = (own.frames_limit - own.frames_used) as usize;
    let spawn = |request: &dyn Fn(Spawn) -> Spawn| -> Result<Result<(), Error>, String> {
        let spawned = request(Spawn::new("kchild", child::image()?).args("exit 0")).spawn();
        Ok(spawned.map(|pid| {
            let _ = keel_rt::process::wait(pid);
        }))
    };
    let results: Vec<Result<Result<(), Error>, String>> = alloc::vec![
        spawn(&|s| s.frames(left + 1)),
        spawn(&|s| s.frames(usize::MAX)),
        spawn(&|s| s.frames(usize::MAX - 1000)),
        spawn(&|s| s.max_processes(keel_abi::PROCESS_TABLE_SIZE as u32)),
        spawn(&|s| s.max_threads(keel_abi::MAX_THREADS + 1)),
        spawn(&|s| s.frames(1024).max_processes(1).max_threads(1)),
    ];
    let results: Vec<Result<(), Error>> = results.into_iter().collect::<Result<_, _>>()?;
    expect_eq(
        "spawns asking for more frames than are left, usize::MAX frames, nearly as many, \
         more processes and more threads than ktest may have, and modest limits",
        results,
        alloc::vec![
            Err(Error::QuotaExceeded),
            Err(Error::QuotaExceeded),
            Err(Error::QuotaExceeded),
            Err(Error::PermissionDenied),
            Err(Error::PermissionDenied),
            Ok(()),
        ],
    )
}
