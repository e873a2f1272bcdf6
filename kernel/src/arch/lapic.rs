//! The local APIC (xAPIC, memory-mapped) and its timer, which drives preemption.
//!
//! The timer ticks at [`TICK_HZ`]: in TSC-deadline mode where the CPU has it (each tick arms
//! the next deadline, so ticks never drift), otherwise in periodic mode calibrated against the
//! PIT. The legacy PICs are remapped out of the exception range and masked. Every core
//! has its own local APIC at the same address and ticks on its own; the boot core measures
//! the rate once for all. The interrupt command register starts the other cores (`smp`).

use super::direct_map::phys_to_virt;
use super::percpu::{self, PerCpu};
use super::trap::{VECTOR_PIC_BASE, VECTOR_SPURIOUS, VECTOR_TIMER};
use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

pub const TICK_HZ: u64 = 1000;

const APIC_BASE_MSR: u32 = 0x1b;
const REG_ID: usize = 0x20;
const REG_EOI: usize = 0xb0;
const REG_SPURIOUS: usize = 0xf0;
const REG_ICR_LOW: usize = 0x300;
const REG_ICR_HIGH: usize = 0x310;
const ICR_PENDING: u32 = 1 << 12;
const REG_LVT_TIMER: usize = 0x320;
const REG_TIMER_INITIAL: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3e0;
const TIMER_PERIODIC: u32 = 1 << 17;
const TIMER_TSC_DEADLINE: u32 = 2 << 17;
const TSC_DEADLINE_MSR: u32 = 0x6e0;
const TIMER_MASKED: u32 = 1 << 16;
const DIVIDE_BY_16: u32 = 0b0011;

static APIC_BASE: AtomicUsize = AtomicUsize::new(0);
/// In TSC-deadline mode: TSC counts per tick; 0 when periodic. The deadline last armed is
/// per core.
static TSC_PER_TICK: AtomicU64 = AtomicU64::new(0);
/// TSC counts per millisecond, as measured at boot.
static TSC_PER_MS: AtomicU64 = AtomicU64::new(0);
/// In periodic mode: the timer's initial count for one tick.
static PERIODIC_COUNT: AtomicU64 = AtomicU64::new(0);
const NEXT_DEADLINE: usize = offset_of!(PerCpu, next_deadline);

fn write(reg: usize, value: u32) {
    // SAFETY: APIC_BASE maps the local APIC's registers (uncached) after `init`.
    unsafe { core::ptr::write_volatile((APIC_BASE.load(Relaxed) + reg) as *mut u32, value) }
}

fn read(reg: usize) -> u32 {
    // SAFETY: as in `write`.
    unsafe { core::ptr::read_volatile((APIC_BASE.load(Relaxed) + reg) as *const u32) }
}

pub fn end_of_interrupt() {
    write(REG_EOI, 0);
}

/// Called on every timer tick: in TSC-deadline mode, arm the next one.
pub fn timer_fired() {
    let per_tick = TSC_PER_TICK.load(Relaxed);
    if per_tick != 0 {
        let next = (percpu::read::<NEXT_DEADLINE>() + per_tick).max(super::cpu::read_tsc() + 1);
        percpu::write::<NEXT_DEADLINE>(next);
        // SAFETY: the MSR exists (TSC-deadline mode is only chosen when CPUID reports it);
        // writing it arms the next tick.
        unsafe { Msr::new(TSC_DEADLINE_MSR).write(next) };
    }
}

/// Mask the 8259 PICs after moving their vectors away from the CPU exceptions.
fn disable_legacy_pic() {
    let commands: [(u16, u8); 10] = [
        (0x20, 0x11),
        (0xa0, 0x11),
        (0x21, VECTOR_PIC_BASE),
        (0xa1, VECTOR_PIC_BASE + 8),
        (0x21, 4),
        (0xa1, 2),
        (0x21, 1),
        (0xa1, 1),
        (0x21, 0xff),
        (0xa1, 0xff),
    ];
    for (port, value) in commands {
        // SAFETY: the standard 8259 initialisation sequence, ending with every line masked.
        unsafe { Port::new(port).write(value) };
    }
}

/// Busy-wait `ms` milliseconds on PIT channel 2 (gate via port 0x61, mode 0).
fn pit_wait_ms(ms: u32) {
    let count = (1_193_182 * ms / 1000) as u16;
    let mut gate = Port::<u8>::new(0x61);
    let mut command = Port::<u8>::new(0x43);
    let mut channel2 = Port::<u8>::new(0x42);
    // SAFETY: PIT channel 2 and its gate belong to the kernel; it is used only here.
    unsafe {
        let value = gate.read();
        gate.write((value & !0x02) | 0x01);
        command.write(0b1011_0000);
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
        let value = gate.read();
        gate.write(value & !0x01);
        gate.write(value | 0x01);
        while gate.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
    }
}

/// Enable the local APIC and start the tick. Returns the TSC rate (counts per ms), as
/// measured against the PIT.
pub fn init() -> u64 {
    disable_legacy_pic();
    // SAFETY: reading IA32_APIC_BASE is side-effect free on every x86_64 CPU.
    let base = unsafe { Msr::new(APIC_BASE_MSR).read() } & 0x000f_ffff_ffff_f000;
    APIC_BASE.store(phys_to_virt(base), Relaxed);
    write(REG_SPURIOUS, 0x100 | VECTOR_SPURIOUS as u32);

    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, TIMER_MASKED);
    write(REG_TIMER_INITIAL, u32::MAX);
    let tsc_start = super::cpu::read_tsc();
    pit_wait_ms(10);
    let per_10ms = u32::MAX - read(REG_TIMER_CURRENT);
    let tsc_per_ms = ((super::cpu::read_tsc() - tsc_start) / 10).max(1);
    TSC_PER_MS.store(tsc_per_ms, Relaxed);
    PERIODIC_COUNT.store(((per_10ms as u64 * 100) / TICK_HZ).max(1), Relaxed);
    if super::cpu_features().tsc_deadline {
        TSC_PER_TICK.store(tsc_per_ms * 1000 / TICK_HZ, Relaxed);
    }
    start_timer();
    tsc_per_ms
}

/// Enable this core's local APIC and start its tick at the rate the boot core measured.
pub fn init_core() {
    write(REG_SPURIOUS, 0x100 | VECTOR_SPURIOUS as u32);
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    start_timer();
}

fn start_timer() {
    if TSC_PER_TICK.load(Relaxed) != 0 {
        write(REG_TIMER_INITIAL, 0);
        write(REG_LVT_TIMER, TIMER_TSC_DEADLINE | VECTOR_TIMER as u32);
        percpu::write::<NEXT_DEADLINE>(super::cpu::read_tsc());
        timer_fired();
    } else {
        write(REG_LVT_TIMER, TIMER_PERIODIC | VECTOR_TIMER as u32);
        write(REG_TIMER_INITIAL, PERIODIC_COUNT.load(Relaxed) as u32);
    }
}

/// TSC counts per millisecond (0 before [`init`] measured them).
pub fn tsc_per_ms() -> u64 {
    TSC_PER_MS.load(Relaxed)
}

/// This core's local APIC id.
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// Send an inter-processor interrupt: `command` is the ICR's low word (vector, delivery
/// mode, level), to the core whose APIC id is `apic_id`; returns once it is on its way.
pub fn send_ipi(apic_id: u32, command: u32) {
    write(REG_ICR_HIGH, apic_id << 24);
    write(REG_ICR_LOW, command);
    while read(REG_ICR_LOW) & ICR_PENDING != 0 {
        core::hint::spin_loop();
    }
}
