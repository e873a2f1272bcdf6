//! The test suites, one module each; `ktest NAME` runs the suite called NAME.

mod faults;
mod memory;
mod preemption;
mod processes;
mod syscalls;

use crate::runner::Suite;

pub const ALL: &[Suite] = &[
    preemption::SUITE,
    faults::SUITE,
    syscalls::SUITE,
    memory::SUITE,
    processes::SUITE,
];
