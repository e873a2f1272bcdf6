//! `ktest SUITE`: runs one suite of in-guest tests as the first process, prints a line per
//! test and a verdict, and powers the machine off with it. See [`runner`] for the output.
#![no_std]
#![no_main]

extern crate alloc;

mod audit;
mod check;
mod child;
mod elf;
mod receive;
mod runner;
mod suites;

use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use keel_rt::println;

keel_rt::entry!(main);

/// Set by the `fastpath=off` argument: the kernel was booted with its IPC fast path off.
pub static GENERAL_PATH: AtomicBool = AtomicBool::new(false);

fn main(args: &str) -> i32 {
    // A suite's own arguments follow its name (`fuzz CALLS SEED`); `fastpath=off` may be
    // among them.
    let mut words = args.split_whitespace();
    let name = words.next().unwrap_or_default();
    if words.any(|word| word == "fastpath=off") {
        GENERAL_PATH.store(true, Relaxed);
    }
    match suites::ALL.iter().find(|suite| suite.name == name) {
        Some(suite) => runner::run(suite),
        None => {
            println!("ktest: no suite called {name:?}; the suites are:");
            for suite in suites::ALL {
                println!("ktest:   {}", suite.name);
            }
            runner::finish(false, 0)
        }
    }
}
