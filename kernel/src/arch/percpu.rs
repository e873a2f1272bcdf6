//! Per-core state, reached through GS: each core's GS base points at its own [`PerCpu`],
//! so `gs:OFFSET` reads a field of this core's without knowing which core this is.
//!
//! In ring 0 GS holds the kernel's base; in ring 3 the user's (which the kernel never
//! reads). Every entry from ring 3 (`syscall_entry`, the trap stubs when the saved CS is a
//! user one) runs `swapgs` first and every exit to ring 3 runs it last, so the kernel's
//! base waits in IA32_KERNEL_GS_BASE while user code runs.
//!
//! The areas are one array, indexed by core number (the boot core is 0, the others in the
//! MADT's order): each core touches only its own, through GS, once it is running; before
//! that, only the core starting it writes it.

use super::gdt::{Segments, Stack};
use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use x86_64::registers::model_specific::Msr;
use x86_64::structures::tss::TaskStateSegment;

/// The most cores Keel runs on; further ones in the MADT stay halted.
pub const MAX_CORES: usize = keel_abi::MAX_CORES;

const IA32_GS_BASE: u32 = 0xc000_0101;
const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// One core's state. Scalar fields are read and written only through `gs:` (`read`,
/// `write`), never through references, so interrupt handlers on the same core cannot
/// alias a Rust borrow.
#[repr(C)]
pub struct PerCpu {
    /// The core's number, from 0.
    index: u64,
    /// Its local APIC's id.
    apic_id: u64,
    /// `syscall_entry`'s scratch slot for the user stack pointer.
    pub(super) user_rsp: u64,
    /// In TSC-deadline mode, the deadline last armed (`lapic`).
    pub(super) next_deadline: u64,
    /// When the current halt began (0: not halted), and the TSC cycles spent halted.
    halted_since: u64,
    idle_tsc: u64,
    /// The page-table root (with its PCID) in CR3: written by this core only, read by
    /// others deciding whom a TLB shootdown concerns.
    pub(super) loaded_root: AtomicU64,
    /// Work this core owes at its next return to user space, as bits the scheduler
    /// defines; other cores set them (then send [`super::trap::VECTOR_WAKE`]).
    due: AtomicU64,
    /// A TLB shootdown asked of this core (see `tlb.rs`); 0 once done.
    pub(super) shootdown: AtomicU64,
    /// The address of the scheduler's record for this core, so that reaching it is one load.
    scheduler: AtomicU64,
    /// The tick at which the first of this core's timers ends (`u64::MAX`: none), so that
    /// an idle core's tick takes the kernel lock only when one is due.
    next_timer: AtomicU64,
    pub(super) segments: Segments,
    /// The stack an application processor starts on, then idles on.
    pub(super) boot_stack: Stack,
}

/// Where `syscall_entry` finds the running thread's kernel stack: this core's TSS `rsp0`.
pub(super) const KERNEL_STACK: usize = offset_of!(PerCpu, segments)
    + offset_of!(Segments, tss)
    + offset_of!(TaskStateSegment, privilege_stack_table);
pub(super) const USER_RSP: usize = offset_of!(PerCpu, user_rsp);

static mut CORES: [PerCpu; MAX_CORES] = [const {
    PerCpu {
        index: 0,
        apic_id: 0,
        user_rsp: 0,
        next_deadline: 0,
        halted_since: 0,
        idle_tsc: 0,
        loaded_root: AtomicU64::new(0),
        due: AtomicU64::new(0),
        shootdown: AtomicU64::new(0),
        scheduler: AtomicU64::new(0),
        next_timer: AtomicU64::new(u64::MAX),
        segments: Segments::new(),
        boot_stack: Stack::new(),
    }
}; MAX_CORES];

/// How many cores are running (the boot core counts from the start).
static ONLINE: AtomicUsize = AtomicUsize::new(1);

/// Core `index`'s area, for the core that starts it.
///
/// # Safety
/// `index < MAX_CORES`, and core `index` is not running yet (or is the caller).
pub(super) unsafe fn area(index: usize) -> *mut PerCpu {
    // SAFETY: per the caller, the index is in bounds; no reference is made.
    unsafe { (&raw mut CORES).cast::<PerCpu>().add(index) }
}

/// Make core `index`'s area this core's: its GDT and TSS loaded, GS pointing at it.
///
/// # Safety
/// Runs once per core, on that core, before its interrupts are enabled, with an `index`
/// no other core uses.
pub(super) unsafe fn init(index: usize, apic_id: u32) {
    // SAFETY: per the caller, this area is this core's alone from now on.
    unsafe {
        let area = area(index);
        (*area).index = index as u64;
        (*area).apic_id = apic_id as u64;
        (*area).loaded_root = AtomicU64::new(super::current_root());
        (*area).segments.load();
        // After the segment loads, which reset the GS base; the user's starts as 0.
        Msr::new(IA32_GS_BASE).write(area as u64);
        Msr::new(IA32_KERNEL_GS_BASE).write(0);
    }
}

/// For a fatal exception in ring 0: make GS the kernel's if it is not. An NMI or machine
/// check can arrive between `syscall` and its `swapgs` (or `swapgs` and `sysret`), with
/// the user's GS in place though CS is the kernel's; the panic that follows reads per-core
/// state. The kernel's base is a kernel address, the user's never is.
pub fn recover_gs() {
    // SAFETY: reading IA32_GS_BASE has no side effects; SWAPGS only exchanges it with
    // IA32_KERNEL_GS_BASE, which then holds the kernel's base.
    unsafe {
        if (Msr::new(IA32_GS_BASE).read() as i64) >= 0 {
            core::arch::asm!("swapgs", options(nostack, preserves_flags));
        }
    }
}

/// Read this core's field at `OFFSET` (a constant, so the access is one instruction).
#[inline(always)]
pub(super) fn read<const OFFSET: usize>() -> u64 {
    let value: u64;
    // SAFETY: GS points at this core's area (set up by `init` before anything reads it) and
    // `OFFSET` is a u64 field's, from `offset_of!`.
    unsafe {
        core::arch::asm!("mov {}, gs:[{}]", out(reg) value, const OFFSET,
            options(nostack, readonly, preserves_flags))
    };
    value
}

/// Write this core's field at `OFFSET`.
#[inline(always)]
pub(super) fn write<const OFFSET: usize>(value: u64) {
    // SAFETY: as for `read`; the field belongs to this core, which runs one context at a
    // time with interrupts off in the kernel.
    unsafe {
        core::arch::asm!("mov gs:[{}], {}", const OFFSET, in(reg) value,
            options(nostack, preserves_flags))
    };
}

/// This core's number (0 is the boot core).
pub fn index() -> usize {
    read::<{ offset_of!(PerCpu, index) }>() as usize
}

pub fn apic_id() -> u32 {
    read::<{ offset_of!(PerCpu, apic_id) }>() as u32
}

pub fn is_boot_core() -> bool {
    index() == 0
}

pub(super) const LOADED_ROOT: usize = offset_of!(PerCpu, loaded_root);
pub(super) const SHOOTDOWN: usize = offset_of!(PerCpu, shootdown);

/// Core `core`'s area, once it runs: only its atomic fields are for other cores.
pub(super) fn of(core: usize) -> &'static PerCpu {
    assert!(core < online(), "core {core} is not running");
    // SAFETY: the core is running, so its area was set up; the reference is shared, and
    // the fields other cores reach through it are atomics.
    unsafe { &*area(core) }
}

/// Core `core`'s local APIC id.
pub fn apic_id_of(core: usize) -> u32 {
    of(core).apic_id as u32
}

const DUE: usize = offset_of!(PerCpu, due);

/// The work this core owes (see the field).
#[inline(always)]
pub fn due() -> u64 {
    read::<{ DUE }>()
}

/// Owe `bits` on this core.
#[inline(always)]
pub fn set_due(bits: u64) {
    // SAFETY: a locked OR on this core's `due`, an atomic other cores also OR into.
    unsafe {
        core::arch::asm!("lock or gs:[{}], {}", const DUE, in(reg) bits,
            options(nostack))
    };
}

/// Clear `bits` on this core; whether any of them was set.
#[inline(always)]
pub fn take_due(bits: u64) -> bool {
    if read::<{ DUE }>() & bits == 0 {
        return false;
    }
    // SAFETY: a locked AND on this core's `due`, as in `set_due`.
    unsafe {
        core::arch::asm!("lock and gs:[{}], {}", const DUE, in(reg) !bits,
            options(nostack))
    };
    true
}

/// Have core `core` owe `bits`, and interrupt it so that it sees them.
pub fn request(core: usize, bits: u64) {
    of(core).due.fetch_or(bits, Ordering::AcqRel);
    super::lapic::send_ipi(apic_id_of(core), super::trap::VECTOR_WAKE as u32);
}

/// The scheduler's record for this core (see the field); 0 before it is set.
#[inline(always)]
pub fn scheduler() -> u64 {
    read::<{ offset_of!(PerCpu, scheduler) }>()
}

/// Set core `core`'s scheduler record.
pub fn set_scheduler(core: usize, record: u64) {
    of(core).scheduler.store(record, Ordering::Release);
}

/// Core `core`'s first timer ends at tick `until` (`u64::MAX`: it has none).
pub fn set_next_timer(core: usize, until: u64) {
    of(core).next_timer.store(until, Ordering::Relaxed);
}

/// The tick at which this core's first timer ends (`u64::MAX`: none).
pub fn next_timer() -> u64 {
    of(index()).next_timer.load(Ordering::Relaxed)
}

/// How many cores are running.
pub fn online() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// Count the calling core as running (the last step of its start).
pub(super) fn count_online() {
    ONLINE.fetch_add(1, Ordering::AcqRel);
}

/// The stack the CPU loads on an interrupt or exception from ring 3, and `syscall_entry`
/// on a syscall: the running thread's kernel stack.
#[inline(always)]
pub fn set_kernel_stack(top: usize) {
    write::<KERNEL_STACK>(top as u64);
}

/// Halt until an interrupt, counting the time halted (see [`idle_tsc`]).
pub fn halt() {
    write::<{ offset_of!(PerCpu, halted_since) }>(super::cpu::read_tsc());
    x86_64::instructions::interrupts::enable_and_hlt();
    x86_64::instructions::interrupts::disable();
    end_halt();
}

/// An interrupt arrived: end the halt it woke, if any, before its handler's work counts.
/// Whether it woke one.
pub fn end_halt() -> bool {
    let since = read::<{ offset_of!(PerCpu, halted_since) }>();
    let halted = since != 0;
    if halted {
        write::<{ offset_of!(PerCpu, halted_since) }>(0);
        let idle = read::<{ offset_of!(PerCpu, idle_tsc) }>();
        write::<{ offset_of!(PerCpu, idle_tsc) }>(idle + super::cpu::read_tsc() - since);
    }
    halted
}

/// TSC cycles this core has spent halted since it started: what a benchmark subtracts,
/// since under icount the TSC runs on while the CPU waits for a device.
pub fn idle_tsc() -> u64 {
    read::<{ offset_of!(PerCpu, idle_tsc) }>()
}
