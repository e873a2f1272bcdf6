//! Preemption: code that never makes a syscall must still share the CPU, and a sleeper must
//! get the CPU back from it.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use keel_guest_tests::Role;
use keel_rt::process::{self, Pid};
use keel_rt::{thread, time};

use crate::check::{Context, all, ensure, expect_eq};
use crate::child;
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(preemption:
    spinning_processes_at_equal_priority_share_the_cpu,
    a_sleeper_wakes_on_time_beside_equal_priority_spinners,
    a_lower_priority_spinner_runs_but_never_delays_a_sleeper,
    busy_threads_in_one_process_all_progress,
    equal_priority_spinners_share_the_cpu_while_a_higher_one_wakes_every_tick,
    vector_registers_stay_with_their_process_across_switches,
);

/// How long the test process watches the spinners.
const WATCH: Duration = Duration::from_millis(300);
/// How late a sleeper may wake beside equal-priority spinners: two time slices of 100 ms.
const EQUAL_PRIORITY_LATENESS: Duration = Duration::from_millis(200);
/// How late a sleeper may wake beside lower-priority spinners: it should preempt them on
/// the tick it becomes ready, give or take the tick the sleep is rounded to.
const LOWER_PRIORITY_LATENESS_TICKS: u64 = 3;

fn spinning_processes_at_equal_priority_share_the_cpu() -> Result<(), String> {
    with_spinners(2, process::current_priority(), |spinners| {
        let start = time::ticks();
        time::sleep(WATCH);
        let slept = time::ticks() - start;
        ensure(slept >= time::ticks_in(WATCH), || {
            format!("slept only {slept} ticks for {WATCH:?}")
        })?;
        let ticks = cpu_ticks(spinners)?;
        let total: u64 = ticks.iter().sum();
        all(spinners.iter().zip(&ticks).map(|(pid, &mine)| {
            ensure(mine > 0 && mine * 4 >= total, || {
                format!(
                    "spinner pid {pid} got {mine} of the spinners' {total} CPU ticks \
                     over {WATCH:?}, less than a quarter"
                )
            })
        }))
    })
}

fn a_sleeper_wakes_on_time_beside_equal_priority_spinners() -> Result<(), String> {
    let limit = time::ticks_in(EQUAL_PRIORITY_LATENESS);
    with_spinners(2, process::current_priority(), |_| {
        check_sleeps(limit, "two spinners at the same priority")
    })
}

fn a_lower_priority_spinner_runs_but_never_delays_a_sleeper() -> Result<(), String> {
    let priority = process::current_priority();
    let lower = priority
        .checked_sub(1)
        .context("a priority below ktest's")?;
    with_spinners(1, lower, |spinner| {
        check_sleeps(
            LOWER_PRIORITY_LATENESS_TICKS,
            "a spinner at a lower priority",
        )?;
        let ticks = cpu_ticks(spinner)?;
        ensure(ticks[0] > 0, || {
            String::from("the lower-priority spinner never ran while ktest slept")
        })
    })
}

fn busy_threads_in_one_process_all_progress() -> Result<(), String> {
    struct Shared {
        counts: [AtomicU64; 2],
        stop: AtomicBool,
    }
    let shared = Arc::new(Shared {
        counts: [AtomicU64::new(0), AtomicU64::new(0)],
        stop: AtomicBool::new(false),
    });
    // Both on this core, so that its scheduler shares it: on two cores each would have
    // one, and the host, not the kernel, would decide how fast each runs.
    let here = 1 << thread::core();
    let workers = (0..2)
        .map(|i| {
            let shared = shared.clone();
            thread::spawn_on(here, process::current_priority(), move || {
                while !shared.stop.load(Ordering::Relaxed) {
                    shared.counts[i].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .context("thread::spawn")?;
    time::sleep(WATCH);
    let threads = process::info(process::id()).map(|info| info.threads);
    let counts = shared
        .counts
        .each_ref()
        .map(|count| count.load(Ordering::Relaxed));
    shared.stop.store(true, Ordering::Relaxed);
    workers.into_iter().for_each(thread::JoinHandle::join);

    expect_eq("ktest's thread count with two workers", threads, Ok(3))?;
    let total: u64 = counts.iter().sum();
    all(counts.iter().enumerate().map(|(i, &mine)| {
        ensure(mine > 0 && mine * 4 >= total, || {
            format!(
                "worker thread {i} counted {mine} of {total} over {WATCH:?}, less than a quarter"
            )
        })
    }))
}

/// Issue 16, finding 2: a preempted thread went back in front of its equals with a fresh
/// slice, so a higher-priority thread waking every tick kept one spinner on the CPU for ever.
fn equal_priority_spinners_share_the_cpu_while_a_higher_one_wakes_every_tick() -> Result<(), String>
{
    let priority = process::current_priority();
    let lower = priority
        .checked_sub(1)
        .context("a priority below ktest's")?;
    with_spinners(2, lower, |spinners| {
        let before = cpu_ticks(spinners)?;
        let end = time::ticks() + time::ticks_in(WATCH);
        while time::ticks() < end {
            time::sleep(Duration::from_millis(1));
        }
        let after = cpu_ticks(spinners)?;
        let ticks: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let total: u64 = ticks.iter().sum();
        all(spinners.iter().zip(&ticks).map(|(pid, &mine)| {
            ensure(mine > 0 && mine * 4 >= total, || {
                format!(
                    "spinner pid {pid} got {mine} of the spinners' {total} CPU ticks over \
                     {WATCH:?} while ktest woke every millisecond, less than a quarter"
                )
            })
        }))
    })
}

/// Runs `test` while `count` `kchild spin` processes run at `priority` on ktest's core
/// (the CPU they share), then kills them all and checks each reports being killed.
/// Three processes at once each keep their own values in all sixteen xmm registers and
/// step an f64 series in xmm15 with SSE instructions, across thousands of yields and the
/// preemptions their spinning brings: each must find its own values every time, and the
/// series bit for bit as computed in Rust (IEEE arithmetic, either way).
fn vector_registers_stay_with_their_process_across_switches() -> Result<(), String> {
    let keepers: Vec<Pid> = [1u64 << 20, 2 << 20, 3 << 20]
        .iter()
        .map(|seed| child::spawn(Role::XmmKeeper, &format!("{seed} 3000")))
        .collect::<Result<_, _>>()?;
    keepers
        .into_iter()
        .try_for_each(|pid| child::expect_success(pid, Role::XmmKeeper))
}

fn with_spinners(
    count: usize,
    priority: usize,
    test: impl FnOnce(&[Pid]) -> Result<(), String>,
) -> Result<(), String> {
    let mut spinners = Vec::new();
    let started = (0..count).try_for_each(|_| {
        spinners.push(child::spawn_beside(Role::Spin, "", priority, &[])?);
        Ok(())
    });
    let result = started.and_then(|()| test(&spinners));
    let reaped = all(spinners.iter().map(|&pid| child::kill_and_reap(pid)));
    result.and(reaped)
}

/// The CPU ticks of each process.
fn cpu_ticks(pids: &[Pid]) -> Result<Vec<u64>, String> {
    pids.iter()
        .map(|&pid| process::info(pid).map(|info| info.cpu_ticks))
        .collect::<Result<_, _>>()
        .context("process_info")
}

/// Sleeps 50 ms five times; each must last at least its length and at most `limit` ticks more.
fn check_sleeps(limit: u64, beside: &str) -> Result<(), String> {
    let nap = Duration::from_millis(50);
    let nap_ticks = time::ticks_in(nap);
    all((0..5).map(|_| {
        let start = time::ticks();
        time::sleep(nap);
        let slept = time::ticks() - start;
        ensure(slept >= nap_ticks && slept <= nap_ticks + limit, || {
            format!(
                "a {nap:?} sleep beside {beside} took {slept} ticks; expected {nap_ticks} to {}",
                nap_ticks + limit
            )
        })
    }))
}
