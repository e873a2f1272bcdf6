//! Hardware floating point in a Keel program: f64 arithmetic and `core::arch` SSE2
//! intrinsics, compiled to SSE instructions because this package is built for a hard-float
//! target (`[package.metadata.keel] float = "hard"` in its Cargo.toml). Each result is
//! checked against its exact IEEE value; the exit code says whether all held.
#![no_std]
#![no_main]

use core::arch::x86_64::{_mm_add_pd, _mm_cvtsd_f64, _mm_mul_pd, _mm_set_pd, _mm_sqrt_pd};

keel_rt::entry!(main);

fn main(_args: &str) -> i32 {
    // The sum of 0.5 * i for i in 1..=1000 is exact in f64: 250,250.
    let half_sum: f64 = (1..=1000).map(|i| f64::from(i) * 0.5).sum();
    // sqrt(2) rounded to nearest, as IEEE 754 requires of SQRTPD.
    // SAFETY: SSE2 is part of the x86-64 baseline this target assumes.
    // (Inputs through `black_box`, so the compiler computes nothing ahead of time.)
    let two = core::hint::black_box(2.0);
    let root_two = unsafe { _mm_cvtsd_f64(_mm_sqrt_pd(_mm_set_pd(0.0, two))) };
    // (1.5 + 2.25) * 4 = 15, in both lanes of a vector.
    // SAFETY: as above.
    let lanes = unsafe {
        let (a, b) = core::hint::black_box((1.5, 2.25));
        let sum = _mm_add_pd(_mm_set_pd(a, a), _mm_set_pd(b, b));
        _mm_cvtsd_f64(_mm_mul_pd(sum, _mm_set_pd(4.0, 4.0)))
    };
    // f32 too: 0.1 + 0.2 in single precision is 0.3 rounded the f32 way.
    let single = core::hint::black_box(0.1f32) + core::hint::black_box(0.2f32);
    let checks = [
        ("sum of 0.5 * i", half_sum.to_bits(), 250_250.0f64.to_bits()),
        ("sqrt(2)", root_two.to_bits(), 0x3ff6_a09e_667f_3bcd),
        ("(1.5 + 2.25) * 4", lanes.to_bits(), 15.0f64.to_bits()),
        ("0.1f32 + 0.2f32", u64::from(single.to_bits()), 0x3e99_999a),
    ];
    let mut failed = 0;
    for (what, got, want) in checks {
        if got != want {
            keel_rt::println!("float: {what}: got {got:#x}, want {want:#x}");
            failed += 1;
        }
    }
    keel_rt::println!(
        "float: {half_sum} {root_two} {lanes} {single}: {} of {} exact, with SSE",
        checks.len() - failed,
        checks.len()
    );
    i32::from(failed != 0)
}
