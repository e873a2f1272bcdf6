//! Faults: each CPU exception a program can cause ends only that program, reported with
//! the right vector, error code and address, while a spinning sibling and `ktest` carry on.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use keel_abi::{process_state, vector};
use keel_guest_tests::{KERNEL_ADDR, Role, SCRATCH_ADDR, UNMAPPED_ADDR};
use keel_rt::process::{self, Pid};
use keel_rt::time;

use crate::check::{Context, ensure, expect_eq};
use crate::child::{self, expect_exception, expect_page_fault, page_fault};
use crate::elf;
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(faults:
    reading_an_unmapped_address_is_a_page_fault,
    reading_a_kernel_address_is_a_page_fault,
    writing_a_kernel_address_is_a_page_fault,
    hlt_is_a_protection_fault,
    cli_is_a_protection_fault,
    writing_cr3_is_a_protection_fault,
    port_output_is_a_protection_fault,
    ud2_is_an_invalid_opcode,
    int3_is_a_breakpoint,
    dividing_by_zero_is_a_divide_error,
    executing_a_data_page_is_a_page_fault,
    writing_own_code_is_a_page_fault,
    the_spinning_sibling_survives_every_fault,
);

fn reading_an_unmapped_address_is_a_page_fault() -> Result<(), String> {
    beside_sibling(|| expect_page_fault(Role::ReadUnmapped, UNMAPPED_ADDR, page_fault::USER))
}

fn reading_a_kernel_address_is_a_page_fault() -> Result<(), String> {
    beside_sibling(|| expect_kernel_page_fault(Role::ReadKernel, 0))
}

fn writing_a_kernel_address_is_a_page_fault() -> Result<(), String> {
    beside_sibling(|| expect_kernel_page_fault(Role::WriteKernel, page_fault::WRITE))
}

fn hlt_is_a_protection_fault() -> Result<(), String> {
    beside_sibling(|| expect_exception(Role::Halt, vector::GENERAL_PROTECTION, 0))
}

fn cli_is_a_protection_fault() -> Result<(), String> {
    beside_sibling(|| expect_exception(Role::DisableInterrupts, vector::GENERAL_PROTECTION, 0))
}

fn writing_cr3_is_a_protection_fault() -> Result<(), String> {
    beside_sibling(|| expect_exception(Role::WriteCr3, vector::GENERAL_PROTECTION, 0))
}

fn port_output_is_a_protection_fault() -> Result<(), String> {
    beside_sibling(|| expect_exception(Role::PortOut, vector::GENERAL_PROTECTION, 0))
}

fn ud2_is_an_invalid_opcode() -> Result<(), String> {
    beside_sibling(|| expect_exception(Role::Ud2, vector::INVALID_OPCODE, 0))
}

/// The ABI lists the breakpoint among the exceptions user code can cause, so `int3` must
/// reach its handler from ring 3 (a DPL 3 gate), not turn into a protection fault.
fn int3_is_a_breakpoint() -> Result<(), String> {
    beside_sibling(|| expect_exception(Role::Int3, vector::BREAKPOINT, 0))
}

fn dividing_by_zero_is_a_divide_error() -> Result<(), String> {
    beside_sibling(|| expect_exception(Role::DivideByZero, vector::DIVIDE_ERROR, 0))
}

/// The page is mapped read-write, so it must be no-execute: the fetch faults on a present
/// page, from user mode, as an instruction fetch.
fn executing_a_data_page_is_a_page_fault() -> Result<(), String> {
    let error_code = page_fault::PRESENT | page_fault::USER | page_fault::FETCH;
    beside_sibling(|| expect_page_fault(Role::ExecuteData, SCRATCH_ADDR, error_code))
}

/// `kchild` writes at its own `_start`, which is the entry point in its ELF header.
fn writing_own_code_is_a_page_fault() -> Result<(), String> {
    let entry = elf::entry(child::image()?);
    let error_code = page_fault::PRESENT | page_fault::WRITE | page_fault::USER;
    beside_sibling(|| expect_page_fault(Role::WriteCode, entry, error_code))
}

fn the_spinning_sibling_survives_every_fault() -> Result<(), String> {
    let pid = sibling()?;
    let before = cpu_ticks(pid)?;
    time::sleep(Duration::from_millis(100));
    let after = cpu_ticks(pid)?;
    ensure(after > before, || {
        format!(
            "the spinning sibling (pid {pid}) stopped running: \
             {before} CPU ticks, then {after} 100 ms later"
        )
    })?;
    child::kill_and_reap(pid)
}

/// The `kchild spin` process that runs through the whole suite; started on first use.
fn sibling() -> Result<Pid, String> {
    static SIBLING: AtomicU32 = AtomicU32::new(0);
    match SIBLING.load(Ordering::Relaxed) {
        0 => {
            let pid = child::spawn(Role::Spin, "")?;
            SIBLING.store(pid, Ordering::Relaxed);
            Ok(pid)
        }
        pid => Ok(pid),
    }
}

/// Runs a fault check while the sibling spins, then checks the sibling is still running.
fn beside_sibling(check: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let pid = sibling()?;
    check()?;
    let info = process::info(pid).context("process_info of the spinning sibling")?;
    expect_eq(
        "the spinning sibling's state",
        info.state,
        process_state::RUNNING,
    )
}

/// A user access to the kernel's image: CR2 is the address and the error code says user
/// mode and the access kind. Whether the page counts as present depends on whether the
/// kernel keeps itself mapped (supervisor-only) in user page tables, so that bit is free.
fn expect_kernel_page_fault(role: Role, write: i64) -> Result<(), String> {
    let fault = child::expect_fault(role)?;
    let checked = page_fault::WRITE | page_fault::USER | page_fault::FETCH;
    expect_eq(
        &format!(
            "kchild {}: page fault (vector, CR2, error code without the present bit)",
            role.name()
        ),
        (fault.vector, fault.address, fault.error_code & checked),
        (vector::PAGE_FAULT, KERNEL_ADDR, page_fault::USER | write),
    )
}

fn cpu_ticks(pid: Pid) -> Result<u64, String> {
    process::info(pid)
        .map(|info| info.cpu_ticks)
        .context("process_info of the spinning sibling")
}
