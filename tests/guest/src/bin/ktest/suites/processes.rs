//! Processes: spawn, exit codes, wait, kill, the last thread taking its process with it,
//! and no frame left behind by a process that has come and gone.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;

use keel_abi::{Error, SysInfo, process_state};
use keel_guest_tests::Role;
use keel_rt::process::{self, Exit, Pid};
use keel_rt::{sys, thread, time};

use crate::check::{Context, all, ensure, expect_eq};
use crate::child::{self, expect_exit, kill_and_reap};
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(processes:
    wait_reports_each_childs_exit_code,
    a_panicking_child_exits_with_101,
    an_ended_child_is_a_zombie_until_reaped,
    waiting_for_oneself_is_not_child,
    waiting_for_or_killing_an_unknown_pid_is_not_found,
    kill_ends_a_child_which_then_reports_killed,
    the_last_thread_to_exit_ends_the_process,
    process_info_describes_a_child,
    process_list_holds_self_and_live_children,
    sys_info_figures_are_sane,
    a_child_runs_on_the_cores_it_is_given,
    two_hundred_processes_leave_free_frames_unchanged,
);

/// A pid no process has: far above anything a test run reaches.
const UNKNOWN_PID: Pid = 0x7fff_fff0;

fn wait_reports_each_childs_exit_code() -> Result<(), String> {
    all([0, 42, -7, i32::MAX].map(|code| expect_exit(Role::Exit, &format!("{code}"), code.into())))
}

fn a_panicking_child_exits_with_101() -> Result<(), String> {
    expect_exit(Role::Panic, "", 101)
}

fn an_ended_child_is_a_zombie_until_reaped() -> Result<(), String> {
    let pid = child::spawn(Role::Exit, "5")?;
    time::sleep(Duration::from_millis(100));
    let state = process::info(pid).map(|info| info.state);
    let exit = process::wait(pid);
    all([
        expect_eq(
            "state of a child that exited, before wait",
            state,
            Ok(process_state::ZOMBIE),
        ),
        expect_eq("wait for it", exit, Ok(Exit::Exited(5))),
        expect_eq(
            "process_info after reaping",
            process::info(pid).map(drop),
            Err(Error::NotFound),
        ),
    ])
}

fn waiting_for_oneself_is_not_child() -> Result<(), String> {
    expect_eq(
        "process_wait(own pid)",
        process::wait(process::id()),
        Err(Error::NotChild),
    )
}

fn waiting_for_or_killing_an_unknown_pid_is_not_found() -> Result<(), String> {
    all([
        expect_eq(
            "process_wait(unknown pid)",
            process::wait(UNKNOWN_PID),
            Err(Error::NotFound),
        ),
        expect_eq(
            "process_kill(unknown pid)",
            process::kill(UNKNOWN_PID),
            Err(Error::NotFound),
        ),
    ])
}

fn kill_ends_a_child_which_then_reports_killed() -> Result<(), String> {
    let pid = child::spawn(Role::Spin, "")?;
    let state = process::info(pid).map(|info| info.state);
    kill_and_reap(pid)?;
    all([
        expect_eq(
            "state of the spinner before the kill",
            state,
            Ok(process_state::RUNNING),
        ),
        expect_eq(
            "waiting again after reaping",
            process::wait(pid),
            Err(Error::NotFound),
        ),
        expect_eq(
            "killing again after reaping",
            process::kill(pid),
            Err(Error::NotFound),
        ),
    ])
}

/// The main thread exits first (code 3); the process lives on until its other thread
/// exits (code 7), whose code becomes the process's.
fn the_last_thread_to_exit_ends_the_process() -> Result<(), String> {
    expect_exit(Role::LastThreadExits, "", 7)
}

fn process_info_describes_a_child() -> Result<(), String> {
    let priority = process::current_priority().saturating_sub(1);
    let pid = child::spawn_at(Role::Spin, "", priority)?;
    let info = process::info(pid);
    kill_and_reap(pid)?;
    let info = info.context("process_info of the child")?;
    all([
        expect_eq("pid", info.pid, pid),
        expect_eq("parent", info.parent, process::id()),
        expect_eq("state", info.state, process_state::RUNNING),
        expect_eq("threads", info.threads, 1),
        expect_eq("priority", info.priority as usize, priority),
        expect_eq("rights", info.rights, 0),
        expect_eq("name", info.name(), "kchild"),
        ensure(info.frames > 0, || {
            String::from("a running child maps no frames")
        }),
    ])
}

fn process_list_holds_self_and_live_children() -> Result<(), String> {
    let children = [child::spawn(Role::Spin, "")?, child::spawn(Role::Spin, "")?];
    let listed = process::list();
    let mut one = [0];
    let count = sys::process_list(&mut one);
    let counted = sys::sys_info(SysInfo::Processes);
    let reaped = all(children.map(kill_and_reap));
    let after = process::list().context("process_list after the kill")?;
    let listed = listed.context("process_list")?;
    let me = process::id();
    all([
        ensure(listed.contains(&me), || {
            format!("ktest (pid {me}) is not in {listed:?}")
        }),
        ensure(children.iter().all(|pid| listed.contains(pid)), || {
            format!("the children {children:?} are not all in {listed:?}")
        }),
        expect_eq(
            "process_list with room for one: the count",
            count,
            Ok(listed.len()),
        ),
        expect_eq("sys_info(Processes) vs the list", counted, Ok(listed.len())),
        reaped,
        ensure(!children.iter().any(|pid| after.contains(pid)), || {
            format!("reaped children {children:?} are still listed: {after:?}")
        }),
    ])
}

fn sys_info_figures_are_sane() -> Result<(), String> {
    let figure = |what| sys::sys_info(what).context(&format!("sys_info({what:?})"));
    let hz = figure(SysInfo::TickHz)?;
    let start = figure(SysInfo::Ticks)?;
    time::sleep(Duration::from_millis(20));
    let elapsed = (figure(SysInfo::Ticks)? - start) as u64;
    let (free, total) = (figure(SysInfo::FreeFrames)?, figure(SysInfo::TotalFrames)?);
    let main_tid = figure(SysInfo::Tid)?;
    let other_tid = Arc::new(AtomicUsize::new(0));
    let seen = other_tid.clone();
    thread::spawn(move || seen.store(thread::id() as usize, Ordering::Relaxed))
        .context("thread::spawn")?
        .join();
    let other_tid = other_tid.load(Ordering::Relaxed);
    all([
        expect_eq(
            "sys_info(Pid)",
            figure(SysInfo::Pid)?,
            process::id() as usize,
        ),
        ensure((100..=10_000).contains(&hz), || {
            format!("TickHz is {hz}; expected about 1000")
        }),
        ensure(elapsed >= time::ticks_in(Duration::from_millis(20)), || {
            format!("Ticks rose by {elapsed} over a 20 ms sleep at {hz} Hz")
        }),
        ensure(0 < free && free <= total, || {
            format!("FreeFrames {free} vs TotalFrames {total}")
        }),
        ensure(other_tid != main_tid, || {
            format!("two threads both have tid {main_tid}")
        }),
        ensure(figure(SysInfo::Processes)? >= 1, || {
            String::from("no processes counted")
        }),
    ])
}

/// Each core in turn, a core the machine lacks (any instead) and one beyond every machine's.
fn a_child_runs_on_the_cores_it_is_given() -> Result<(), String> {
    let cores = sys::sys_info(SysInfo::Cores).context("sys_info(Cores)")?;
    let on = |cpus: u32| -> Result<Exit, String> {
        let pid = child::spawn_on(Role::Core, "", cpus)?;
        process::wait(pid).context("waiting for kchild core")
    };
    for core in 0..cores {
        expect_eq(
            "the core of a child given one",
            on(1 << core)?,
            Exit::Exited(core as i64),
        )?;
    }
    if cores < keel_abi::MAX_CORES {
        let last = on(1 << (keel_abi::MAX_CORES - 1))?;
        ensure(
            matches!(last, Exit::Exited(core) if (0..cores as i64).contains(&core)),
            || format!("a child given only a core this machine lacks: {last:?}"),
        )?;
    }
    let last = 1u32 << (cores - 1);
    let pinned = child::spawn_on(Role::Spin, "", last)?;
    let info = process::info(pinned);
    kill_and_reap(pinned)?;
    let all_cores = (1u32 << cores) - 1;
    expect_eq(
        "the cores process_info gives of a pinned child",
        info.map(|i| i.cpus),
        Ok(last),
    )?;
    let own = process::info(process::id()).context("process_info of ktest")?;
    expect_eq("the cores of ktest, given none", own.cpus, all_cores)?;
    let beyond = process::Spawn::new("kchild", child::image()?)
        .args("exit 0")
        .cpus(1 << keel_abi::MAX_CORES)
        .spawn();
    expect_eq("a spawn naming core 8", beyond, Err(Error::InvalidArgument))
}

/// Spawned and reaped ten at a time; the count is taken halfway too, to tell a leak per
/// process from a one-off.
fn two_hundred_processes_leave_free_frames_unchanged() -> Result<(), String> {
    let free = || sys::sys_info(SysInfo::FreeFrames).context("sys_info(FreeFrames)");
    let batches = |count: usize| -> Result<(), String> {
        for _ in 0..count {
            let mut batch = [0; 10];
            for pid in &mut batch {
                *pid = child::spawn(Role::Exit, "0")?;
            }
            for pid in batch {
                expect_eq("a child's exit", process::wait(pid), Ok(Exit::Exited(0)))?;
            }
        }
        Ok(())
    };
    let before = free()?;
    batches(10)?;
    let halfway = free()?;
    batches(10)?;
    let after = free()?;
    ensure(after == before, || {
        format!("free frames: {before} before, {halfway} after 100 processes, {after} after 200")
    })
}
