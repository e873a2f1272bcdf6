//! `bench`: two quick latency figures, timed with the time-stamp counter.
//!
//! - a null syscall: `sys_info(Pid)`, the cheapest call the kernel has (enter, look up one
//!   figure, return);
//! - a Console call: `write("")`, a full service round trip that prints nothing (request
//!   into the shared ring, the console's executor wakes and dispatches, response back).
//!
//! Each is run [`ROUNDS`] times; the figure is the mean, in TSC cycles and (through the
//! TSC's rate measured against the kernel's tick) nanoseconds. Under QEMU's TCG these are
//! emulated cycles: compare them with each other, not with hardware.

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use keel_rt::abi::SysInfo;
use keel_rt::executor::sleep;
use keel_rt::{sys, time};

use crate::term::Term;

pub const ROUNDS: u64 = 1000;
/// How long the TSC is watched against the tick to find its rate.
const CALIBRATION: Duration = Duration::from_millis(20);

/// Mean cycles of each benchmark, and the TSC's rate.
#[derive(Clone, Copy, Debug)]
pub struct Figures {
    pub syscall_cycles: u64,
    pub console_call_cycles: u64,
    pub tsc_mhz: u64,
}

fn tsc() -> u64 {
    // SAFETY: `rdtsc` only reads the time-stamp counter, which ring 3 may read on Keel.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub async fn run(term: &Term) -> Result<Figures, String> {
    let start = tsc();
    for _ in 0..ROUNDS {
        sys::sys_info(SysInfo::Pid).map_err(|error| format!("sys_info: {error}"))?;
    }
    let syscall_cycles = (tsc() - start) / ROUNDS;

    let console = term.client();
    let start = tsc();
    for _ in 0..ROUNDS {
        console
            .write("")
            .await
            .map_err(|error| format!("console write: {error}"))?;
    }
    let console_call_cycles = (tsc() - start) / ROUNDS;

    Ok(Figures {
        syscall_cycles,
        console_call_cycles,
        tsc_mhz: tsc_mhz().await,
    })
}

/// The TSC's rate: cycles over a measured stretch of kernel ticks.
async fn tsc_mhz() -> u64 {
    let (ticks, cycles) = (time::ticks(), tsc());
    sleep(CALIBRATION).await;
    let elapsed = time::ticks_to_duration(time::ticks() - ticks);
    let micros = elapsed.as_micros().max(1) as u64;
    (tsc() - cycles) / micros
}

pub fn format(figures: &Figures) -> String {
    let ns = |cycles: u64| cycles * 1000 / figures.tsc_mhz.max(1);
    format!(
        "{ROUNDS} rounds each, mean; TSC at about {} MHz\n\
         null syscall (sys_info):       {:>8} cycles  {:>7} ns\n\
         console call (write \"\"):      {:>8} cycles  {:>7} ns\n",
        figures.tsc_mhz,
        figures.syscall_cycles,
        ns(figures.syscall_cycles),
        figures.console_call_cycles,
        ns(figures.console_call_cycles),
    )
}
