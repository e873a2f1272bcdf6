//! Keel: a small x86_64 microkernel. Threads in isolated address spaces, preempted by the
//! LAPIC timer; everything else is policy in user space.
//!
//! Boot order: serial log, CPU tables and protections, kernel page tables, physical memory
//! and heap, timer, kernel state, then the first boot module as the first process.
#![no_std]
#![no_main]
// Messages move by value and come back in `Err` when they cannot be delivered, so the
// sender can clean them up; boxing them would put an allocation on the IPC fast path.
#![allow(clippy::result_large_err)]

extern crate alloc;

mod arch;
mod cap;
mod clock;
mod device;
mod heap;
mod id;
mod interrupt;
mod ipc;
mod kernel;
mod log;
mod mm;
mod multiboot;
mod proc;
mod sched;
mod syscall;
mod table;

use arch::boot::MULTIBOOT_BOOTLOADER_MAGIC;
use keel_abi::{PRIORITY_LEVELS, rights};
use kernel::spawn::{SharedModule, SpawnSpec};

#[unsafe(no_mangle)]
extern "C" fn kernel_main(magic: u32, info: u32) -> ! {
    log::init();
    let boot_tsc = arch::cpu::read_tsc();
    kprintln!("Keel microkernel {}", env!("CARGO_PKG_VERSION"));
    if magic != MULTIBOOT_BOOTLOADER_MAGIC {
        panic!("not loaded by a Multiboot loader (magic {magic:#x})");
    }
    let features = arch::init_cpu();
    kprintln!("fpu: {} for user threads", arch::fpu::describe());
    kprintln!(
        "cpu: smep {} smap {} pcid {} tsc-deadline {}",
        features.smep,
        features.smap,
        features.pcid,
        features.tsc_deadline
    );
    mm::init_kernel_tables();
    let boot = multiboot::parse(info as u64);
    mm::init_memory(&boot);
    kprintln!(
        "memory: {} MiB free in {} frames; {} boot modules; cmdline '{}'",
        (mm::frame::free_count() * mm::PAGE_SIZE) >> 20,
        mm::frame::free_count(),
        boot.modules.len(),
        boot.cmdline
    );
    let tsc_per_ms = arch::lapic::init();
    let wiring = arch::ioapic::init();
    kprintln!("interrupts: {}, from {wiring}", arch::ioapic::describe());
    match arch::acpi::init_ecam() {
        Some(ecam) => kprintln!(
            "pci: ECAM at {:#x} for {} buses, from the ACPI MCFG",
            ecam.base,
            ecam.buses
        ),
        None => kprintln!("pci: no ACPI MCFG: configuration space through ports 0xcf8/0xcfc"),
    }
    // Before the other cores start: sizing moves BARs (device/pci_bars.rs).
    let functions = device::pci_bars::measure();
    kprintln!("pci: BARs of {functions} functions sized");
    kprintln!(
        "timer: local APIC {} at {} Hz; TSC {} MHz",
        if features.tsc_deadline {
            "in TSC-deadline mode"
        } else {
            "periodic"
        },
        arch::lapic::TICK_HZ,
        tsc_per_ms / 1000
    );
    start_other_cores();
    clock::init(arch::lapic::TICK_HZ);
    kernel::fastpath::configure(&boot.cmdline);
    if boot
        .cmdline
        .split_whitespace()
        .any(|word| word == "selftest=panic")
    {
        // For the test that a panic's backtrace is symbolized (tests/tests/backtraces.rs).
        panic!("selftest=panic on the command line");
    }
    if !kernel::fastpath::is_enabled() {
        kprintln!("ipc: fast path off (fastpath=off): every call takes the general path");
    }
    kernel::init();
    start_first_process(&boot);
    kprintln!(
        "first process ready {} ms after kernel entry",
        (arch::cpu::read_tsc() - boot_tsc) / tsc_per_ms
    );
    kernel::switch::start()
}

/// Start the other cores the firmware lists; the boot log names each.
fn start_other_cores() {
    kprintln!(
        "smp: core 0 is the boot core (apic {})",
        arch::percpu::apic_id()
    );
    for apic_id in arch::smp::start_cores(other_core_main) {
        kprintln!("smp: the core with apic {apic_id} did not start");
    }
    match arch::percpu::online() {
        1 => kprintln!("smp: 1 core online"),
        n => kprintln!("smp: {n} cores online"),
    }
}

/// Where another core enters the kernel, on its own stack, interrupts off.
extern "C" fn other_core_main(index: usize) -> ! {
    // SAFETY: `start_cores` runs this once per core, with the index it started it as.
    unsafe { arch::init_other_core(index) };
    kprintln!(
        "smp: core {index} online (apic {})",
        arch::percpu::apic_id()
    );
    arch::smp::started();
    kernel::switch::start_other_core()
}

/// The first boot module runs as the first process, with every right and every module.
fn start_first_process(boot: &multiboot::BootInfo) {
    let Some(first) = boot.modules.first() else {
        panic!("no boot modules: nothing to run (pass the first program with -initrd)");
    };
    let modules: heapless::Vec<SharedModule, { multiboot::MAX_MODULES }> = boot
        .modules
        .iter()
        .map(|m| SharedModule {
            phys: m.start,
            len: (m.end - m.start) as usize,
            name: m.name(),
            args: m.args(),
        })
        .collect();
    // SAFETY: the loader placed the module in RAM the frame allocator excluded; it stays.
    let image = unsafe {
        core::slice::from_raw_parts(
            mm::phys_to_virt(first.start) as *const u8,
            (first.end - first.start) as usize,
        )
    };
    let spec = SpawnSpec {
        parent: 0,
        name: first.name(),
        args: first.args().as_bytes(),
        image,
        // The first process hands out priorities, so it may give any of them.
        priority: PRIORITY_LEVELS - 1,
        rights: rights::ALL,
        modules: &modules,
        caps: &[],
        system_caps: true,
        limits: Default::default(),
        cpus: crate::proc::ALL_CORES,
    };
    match kernel::kernel().spawn_process(&spec) {
        Ok(pid) => kprintln!(
            "started process {pid} ({}) from the first boot module",
            first.name()
        ),
        Err(e) => panic!("cannot start the first boot module '{}': {e}", first.name()),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    log::print_emergency(format_args!("\nkeel: KERNEL PANIC: {info}\n"));
    log::print_emergency(format_args!("keel: stack scan of the kernel:"));
    for address in kernel_stack_scan() {
        log::print_emergency(format_args!(" {address:#x}"));
    }
    log::print_emergency(format_args!("\n"));
    arch::poweroff(keel_abi::poweroff::KERNEL_PANIC)
}

/// Return addresses the panicking stack may hold: words from the stack pointer to the end
/// of its page (always mapped, whichever stack this is) that point into the kernel's code.
/// `bootimage` names their functions.
fn kernel_stack_scan() -> impl Iterator<Item = usize> {
    let rsp: usize;
    // SAFETY: reads the stack pointer into a register; nothing else changes.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
    let end = (rsp | (mm::PAGE_SIZE - 1)) + 1;
    (rsp..end).step_by(8).filter_map(|at| {
        // SAFETY: `at` lies between the stack pointer and the end of its page, which is
        // mapped since the stack pointer's page is, and is 8-aligned.
        let word = unsafe { (at as *const usize).read_volatile() };
        mm::is_kernel_text(word).then_some(word)
    })
}
