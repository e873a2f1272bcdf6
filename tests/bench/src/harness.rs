//! The harness: calibrate the clock, run each selected benchmark (warm-up, then the measured
//! samples into a preallocated array), print its result line, and power off.
//!
//! Output, one line each: `KBENCH_INFO {json}` first, then per benchmark a progress line
//! and `BENCH {json}`, then `BENCH_UNAVAILABLE {json}` for each benchmark that cannot be
//! written yet, then [`DONE`]. The host parses the JSON lines.

use alloc::vec;
use alloc::vec::Vec;

use keel_abi::poweroff;
use keel_rt::{println, sys, time};

use crate::benches::{self, Benchmark};
use crate::clock;
use crate::failure::{Context, Failure};
use crate::ipc_page::IpcPage;
use crate::stats::Stats;

/// The last line of a run that completed.
pub const DONE: &str = "kbench: all benchmarks ran";

pub fn main(filter: &str) -> i32 {
    let code = match run(filter) {
        Ok(()) => {
            println!("{DONE}");
            poweroff::SUCCESS
        }
        Err(failure) => {
            println!("kbench: FAILED: {failure}");
            poweroff::FAILURE
        }
    };
    // Returns only if refused, and then exiting the first process powers off all the same.
    let _ = sys::system_poweroff(code);
    1
}

/// Whether `name` is selected by `filter`: a substring of it, or the whole name when the
/// filter ends with `$` (`port_call_cross_as$` leaves out `port_call_cross_as_64b`).
fn matches(name: &str, filter: &str) -> bool {
    match filter.strip_suffix('$') {
        Some(exact) => name == exact,
        None => name.contains(filter),
    }
}

fn run(filter: &str) -> Result<(), Failure> {
    match filter {
        "@scaling" => crate::smp::scaling(),
        "@smp" => run_list(&crate::smp::SMP, ""),
        filter => run_list(&benches::ALL, filter),
    }
}

fn run_list(list: &[Benchmark], filter: &str) -> Result<(), Failure> {
    let mut page = IpcPage::register().context("registering the IPC buffer")?;
    let overhead = clock::overhead();
    let tsc_hz = clock::tsc_hz();
    println!(
        "KBENCH_INFO {{\"tsc_hz\":{tsc_hz},\"timer_read_overhead\":{overhead},\"tick_hz\":{}}}",
        time::tick_hz()
    );
    let selected: Vec<&Benchmark> = list
        .iter()
        .filter(|bench| matches(bench.name, filter))
        .collect();
    let most = selected.iter().map(|b| b.iterations).max().unwrap_or(0);
    let mut samples = vec![0; most];
    for bench in selected {
        println!(
            "kbench: {}: {} warm-up, {} measured ...",
            bench.name, bench.warmup, bench.iterations
        );
        let mut measure = Measure {
            samples: &mut samples[..bench.iterations],
            warmup: bench.warmup,
            ops: bench.ops,
            overhead,
        };
        let stats = (bench.run)(&mut measure, &mut page)
            .map_err(|failure| Failure(alloc::format!("{}: {failure}", bench.name)))?;
        println!("{}", stats.line(bench.name));
    }
    for later in benches::LATER.iter().filter(|l| matches(l.name, filter)) {
        println!(
            "BENCH_UNAVAILABLE {{\"name\":\"{}\",\"needs\":\"{}\"}}",
            later.name, later.needs
        );
    }
    Ok(())
}

/// One benchmark's run: where its samples go and how to read them.
pub struct Measure<'a> {
    samples: &'a mut [u64],
    warmup: usize,
    ops: u64,
    overhead: u64,
}

impl Measure<'_> {
    /// Takes the warm-up samples and throws them away, then fills the sample array with
    /// measured ones. `sample` returns one raw [`timed!`] reading; it must not allocate or
    /// log, and should check its results only outside its timed window.
    pub fn run(
        &mut self,
        mut sample: impl FnMut() -> Result<u64, Failure>,
    ) -> Result<Stats, Failure> {
        for _ in 0..self.warmup {
            sample()?;
        }
        let before = clock::align_to_tick();
        for slot in self.samples.iter_mut() {
            *slot = sample()?;
        }
        Ok(self.stats(before))
    }

    /// As [`run`](Self::run), for a sample that awaits: the whole run is one future, so
    /// the caller drives every sample inside a single `block_on`.
    pub async fn run_async(
        &mut self,
        mut sample: impl AsyncFnMut() -> Result<u64, Failure>,
    ) -> Result<Stats, Failure> {
        for _ in 0..self.warmup {
            sample().await?;
        }
        let before = clock::align_to_tick();
        for slot in self.samples.iter_mut() {
            *slot = sample().await?;
        }
        Ok(self.stats(before))
    }

    /// The figures of the samples taken, the run having started at tick `before`.
    fn stats(&mut self, before: u64) -> Stats {
        let timer_ticks = time::ticks() - before;
        Stats::of(self.samples, self.overhead, self.ops, timer_ticks)
    }
}
