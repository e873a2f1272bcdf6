//! The test suites, one module each; `ktest NAME` runs the suite called NAME.

mod capabilities;
mod chaos;
mod console;
mod exception_handlers;
mod faults;
mod files;
mod fuzz;
mod hardening;
mod ipc_messages;
mod memory;
mod preemption;
mod processes;
mod services;
mod shared_pages;
mod storage;
mod stress;
mod syscalls;
mod system;
mod threads;

use crate::runner::Suite;

pub const ALL: &[Suite] = &[
    preemption::SUITE,
    faults::SUITE,
    syscalls::SUITE,
    memory::SUITE,
    processes::SUITE,
    capabilities::SUITE,
    ipc_messages::SUITE,
    shared_pages::SUITE,
    exception_handlers::SUITE,
    threads::SUITE,
    services::SUITE,
    system::SUITE,
    console::SUITE,
    hardening::SUITE,
    fuzz::SUITE,
    chaos::SUITE,
    storage::SUITE,
    files::SUITE,
    stress::SUITE,
];
