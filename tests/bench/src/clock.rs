//! The clock: serialized time-stamp-counter reads, what a read costs, and the counter's rate.
//!
//! Under QEMU with `-icount shift=0` the TSC counts executed guest instructions, so a
//! difference of two reads is an exact instruction count; otherwise it counts cycles.
//! `lfence` before each `rdtsc` keeps earlier instructions from drifting past the read.

use keel_rt::time;

/// Runs the instructions `$body` between two serialized TSC reads, inside one `asm!` block
/// so that nothing the compiler generates can land inside the window, and evaluates to the
/// difference of the reads (their own cost included: see [`overhead`]).
///
/// The reads use `rax`, `rdx` and `r12`; `$body` may not expect anything in those but must
/// declare everything else it uses, after a `;`. Expands to `asm!`, so the caller needs an
/// `unsafe` block and answers for `$body`.
macro_rules! timed {
    ($($body:literal),* ; $($operands:tt)*) => {{
        let start: u64;
        let end: u64;
        core::arch::asm!(
            "lfence",
            "rdtsc",
            "shl rdx, 32",
            "or rdx, rax",
            "mov r12, rdx",
            $($body,)*
            "lfence",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            out("r12") start,
            out("rax") end,
            out("rdx") _,
            $($operands)*
        );
        end.wrapping_sub(start)
    }};
}

/// The TSC, read after everything before it has completed.
#[inline(always)]
pub fn now() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: `lfence` and `rdtsc` only read the counter into eax:edx.
    unsafe {
        core::arch::asm!(
            "lfence",
            "rdtsc",
            out("eax") low,
            out("edx") high,
            options(nostack, nomem, preserves_flags),
        );
    }
    (u64::from(high) << 32) | u64::from(low)
}

/// What an empty [`timed!`] window reads: the cost of the reads themselves, subtracted from
/// every sample. The smallest of many tries, as interrupts only ever add to it.
pub fn overhead() -> u64 {
    const TRIES: usize = 1000;
    (0..TRIES)
        // SAFETY: an empty body; the macro's own instructions only read the TSC.
        .map(|_| unsafe { timed!(;) })
        .min()
        .unwrap_or(0)
}

/// Ticks over which [`tsc_hz`] counts.
const CALIBRATION_TICKS: u64 = 20;

/// The TSC's rate in Hz, counted against the kernel's timer tick.
pub fn tsc_hz() -> u64 {
    let first = align_to_tick();
    let start = now();
    while time::ticks() < first + CALIBRATION_TICKS {}
    let elapsed = now() - start;
    elapsed * time::tick_hz() / CALIBRATION_TICKS
}

/// Waits for the timer tick to change and returns the new count. Starting each measured run
/// right after a tick puts the run at the same place between interrupts every time, so under
/// icount the same samples contain an interrupt run after run, whatever came before.
pub fn align_to_tick() -> u64 {
    let start = time::ticks();
    loop {
        let now = time::ticks();
        if now != start {
            return now;
        }
    }
}
