//! `ktest SUITE`: runs one suite of in-guest tests as the first process, prints a line per
//! test and a verdict, and powers the machine off with it. See [`runner`] for the output.
#![no_std]
#![no_main]

extern crate alloc;

mod check;
mod child;
mod elf;
mod receive;
mod runner;
mod suites;

use keel_rt::println;

keel_rt::entry!(main);

fn main(args: &str) -> i32 {
    // A suite's own arguments follow its name (`fuzz CALLS SEED`).
    let name = args.split_whitespace().next().unwrap_or("");
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
