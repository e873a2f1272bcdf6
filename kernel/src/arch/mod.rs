//! Everything specific to x86_64: boot, segments, interrupts, syscall entry, the APIC timer.

pub mod acpi;
pub mod boot;
pub mod cpu;
pub mod direct_map;
pub mod entry;
pub mod fpu;
pub mod gdt;
pub mod ioapic;
pub mod lapic;
pub mod pcid;
pub mod percpu;
pub mod serial;
pub mod smp;
pub mod spinlock;
pub mod tlb;
pub mod trap;

use conquer_once::spin::OnceCell;
use x86_64::instructions::port::Port;

static FEATURES: OnceCell<cpu::Features> = OnceCell::uninit();

pub fn cpu_features() -> cpu::Features {
    *FEATURES.get().expect("CPU features read at boot")
}

/// The boot core's set-up: its per-core area (segments, GS), the interrupt table, CPU
/// protections, syscall entry.
pub fn init_cpu() -> cpu::Features {
    let features = cpu::features();
    FEATURES.init_once(|| features);
    trap::init();
    init_core(0, &features);
    features
}

/// Another core's set-up, once the boot core's is done: as [`init_cpu`], plus its local
/// APIC and tick. It then calls [`smp::started`].
///
/// # Safety
/// Runs once, on the core started as `index` by [`smp::start_cores`].
pub unsafe fn init_other_core(index: usize) {
    init_core(index, &cpu_features());
    lapic::init_core();
}

fn init_core(index: usize, features: &cpu::Features) {
    // SAFETY: each core runs this once, with its own index, interrupts off.
    unsafe { percpu::init(index, cpu::initial_apic_id()) };
    trap::load();
    cpu::enable_protections(features);
    fpu::enable();
    // Only the boot core: once others start, PCIDs are off (`smp::start_cores`).
    if features.pcid && index == 0 {
        pcid::enable();
    }
    entry::init();
}

pub fn read_cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// Load `root` (with its PCID in the low bits, if any) as this core's page-table root.
#[inline]
pub fn load_root(root: u64) {
    let cr3 = pcid::cr3(root);
    percpu::write::<{ percpu::LOADED_ROOT }>(root);
    // SAFETY: every root Keel builds maps the kernel half identically, so the running code
    // and stack stay mapped across the switch.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) cr3, options(nostack)) };
}

/// The root [`load_root`] last loaded on this core.
#[inline(always)]
pub fn loaded_root() -> u64 {
    percpu::read::<{ percpu::LOADED_ROOT }>()
}

pub fn current_root() -> u64 {
    x86_64::registers::control::Cr3::read_raw()
        .0
        .start_address()
        .as_u64()
}

/// Leave QEMU through its `isa-debug-exit` device (status `(value << 1) | 1`); on other
/// machines, stop.
pub fn poweroff(value: u32) -> ! {
    // SAFETY: port 0xf4 is QEMU's exit device; elsewhere the write is ignored.
    unsafe { Port::<u32>::new(0xf4).write(value) };
    cpu::halt_forever()
}
