//! init: Keel's first process. For now it runs the demo: it starts `hello` programs at a few
//! priorities plus two CPU-bound ones, shows the process table while they run, and waits for
//! them all. Its exit code (0 only if every program succeeded) decides QEMU's exit status.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::time::Duration;

use keel_abi::{SysInfo, process_state};
use keel_rt::process::{self, Exit, Pid, Spawn};
use keel_rt::{println, sys, time};

keel_rt::entry!(main);

/// The demo programs: the arguments `hello` gets, and how many priority levels below init's
/// own it runs. The two spinners share init's priority, so the scheduler must preempt them
/// for init to print the table; the greetings from below wait until they are done.
const DEMO: [(&str, usize); 5] = [
    ("world", 0),
    ("spin 200", 0),
    ("spin 200", 0),
    ("from below", 2),
    ("from further below", 4),
];

fn main(_args: &str) -> i32 {
    println!("init: started (pid {})", process::id());
    for module in keel_rt::boot_modules() {
        println!(
            "init: boot module {} ({} bytes)",
            module.name,
            module.bytes.len()
        );
    }
    let Some(hello) = keel_rt::boot_module("hello") else {
        println!("init: no `hello` boot module, nothing to run");
        return 1;
    };

    // Allocate before counting frames, so the heap's first pages are not in the difference.
    let mut children = Vec::with_capacity(DEMO.len());
    let free_before = frames(SysInfo::FreeFrames);
    println!(
        "init: {free_before} of {} frames free",
        frames(SysInfo::TotalFrames)
    );

    let mut failures = start_all(hello, &mut children);
    time::sleep(Duration::from_millis(100));
    print_process_table();
    failures += wait_for_all(&children);

    let free_after = frames(SysInfo::FreeFrames);
    println!("init: {free_after} frames free after (before: {free_before})");
    if failures > 0 {
        println!("init: {failures} of {} programs failed", DEMO.len());
        return 1;
    }
    println!("init: demo complete");
    0
}

/// Starts every demo program from the `hello` image; returns how many failed to start.
fn start_all(hello: &[u8], children: &mut Vec<(Pid, &'static str)>) -> usize {
    let top = process::current_priority();
    let mut failures = 0;
    for (args, below) in DEMO {
        let priority = top.saturating_sub(below);
        match Spawn::new("hello", hello)
            .args(args)
            .priority(priority)
            .spawn()
        {
            Ok(pid) => {
                println!("init: started pid {pid}: hello {args} (priority {priority})");
                children.push((pid, args));
            }
            Err(error) => {
                println!("init: could not start hello {args}: {error}");
                failures += 1;
            }
        }
    }
    failures
}

/// Waits for each child and reports how it ended; returns how many did not exit with 0.
fn wait_for_all(children: &[(Pid, &str)]) -> usize {
    let mut failures = 0;
    for &(pid, args) in children {
        match process::wait(pid) {
            Ok(Exit::Exited(0)) => println!("init: pid {pid} (hello {args}) exited with code 0"),
            Ok(exit) => {
                println!("init: pid {pid} (hello {args}) failed: it {exit}");
                failures += 1;
            }
            Err(error) => {
                println!("init: waiting for pid {pid} (hello {args}) failed: {error}");
                failures += 1;
            }
        }
    }
    failures
}

fn frames(which: SysInfo) -> usize {
    sys::sys_info(which).unwrap_or(0)
}

fn print_process_table() {
    let pids = match process::list() {
        Ok(pids) => pids,
        Err(error) => {
            println!("init: cannot list processes: {error}");
            return;
        }
    };
    println!(
        "init: {:>5}  {:<12} {:<8} {:>7} {:>9} {:>6}",
        "pid", "name", "state", "threads", "cpu ticks", "frames"
    );
    for pid in pids {
        // A process may end between the list and the look-up; skip it then.
        let Ok(info) = process::info(pid) else {
            continue;
        };
        let state = match info.state {
            process_state::RUNNING => "running",
            process_state::ZOMBIE => "zombie",
            _ => "?",
        };
        println!(
            "init: {:>5}  {:<12} {:<8} {:>7} {:>9} {:>6}",
            info.pid,
            info.name(),
            state,
            info.threads,
            info.cpu_ticks,
            info.frames
        );
    }
}
