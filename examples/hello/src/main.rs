//! A small Keel program to copy from: it prints, starts a thread, allocates and, with
//! `spin N`, keeps the CPU busy for N milliseconds so the scheduler has to preempt it.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::hint::black_box;
use core::time::Duration;

use keel_rt::{println, process, thread, time};

keel_rt::entry!(main);

fn main(args: &str) -> i32 {
    let pid = process::id();
    println!("hello: hello from pid {pid}, args {args:?}");

    if let Some(ms) = args.strip_prefix("spin ") {
        return match ms.trim().parse() {
            Ok(ms) => spin(pid, ms),
            Err(_) => {
                println!("hello: `spin` wants a number of milliseconds, not {ms:?}");
                2
            }
        };
    }

    // The heap works like std's: collect, format, box.
    let squares: Vec<u64> = (1..=8).map(|n| n * n).collect();

    // A second thread runs the closure on a stack of its own; `join` waits for it.
    let worker = thread::spawn(move || {
        let sum: u64 = squares.iter().sum();
        println!(
            "hello: pid {pid} thread {} summed {squares:?} = {sum}",
            thread::id()
        );
    });
    match worker {
        Ok(worker) => worker.join(),
        Err(error) => {
            println!("hello: could not start a thread: {error}");
            return 1;
        }
    }
    println!("hello: pid {pid} done");
    0
}

/// Busy-loops for `ms` milliseconds of timer ticks without giving up the CPU: only the
/// timer interrupt can take it away. Reads the tick count once per block of work.
fn spin(pid: u32, ms: u64) -> i32 {
    let start = time::ticks();
    let end = start + time::ticks_in(Duration::from_millis(ms));
    let mut rounds = 0u64;
    while time::ticks() < end {
        for i in 0..100_000u64 {
            black_box(i);
        }
        rounds += 1;
    }
    let cpu = process::info(pid).map_or(0, |info| info.cpu_ticks);
    println!(
        "hello: pid {pid} spun {ms} ms ({rounds} rounds, ticks {start}..{}), {cpu} CPU ticks",
        time::ticks()
    );
    0
}
