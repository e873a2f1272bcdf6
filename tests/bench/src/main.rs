//! `kbench`: Keel's benchmarks, run in the guest by `cargo boot bench`.
//!
//! Booted as the first process (with every boot module mapped, SPAWN and SYSTEM), `kbench
//! [FILTER]` runs every benchmark whose name contains FILTER (`@smp` and `@scaling`: the
//! benchmarks of several cores, [`smp`]), prints one `BENCH {json}` line
//! per result for the host to parse, and powers the machine off. Each benchmark that needs a
//! second address space starts this same image (the boot module `kbench`) again in a helper
//! role, `kbench ROLE`, handing it ports and memory as spawn capabilities. A process without
//! boot modules is such a helper.
//!
//! The timed loops make their syscalls with inline assembly ([`sys`]), so what is measured
//! is the kernel plus exactly the instructions written there.
#![no_std]
#![no_main]

extern crate alloc;

#[macro_use]
mod clock;
mod benches;
mod failure;
mod harness;
mod ipc_page;
mod ping;
mod roles;
mod scoped;
mod shared;
mod smp;
mod stats;
mod sys;

keel_rt::entry!(main);

/// The boot module holding this program's own image.
pub const IMAGE: &str = "kbench";

fn main(args: &str) -> i32 {
    if keel_rt::boot_module(IMAGE).is_some() {
        harness::main(args.trim())
    } else {
        roles::main(args)
    }
}
