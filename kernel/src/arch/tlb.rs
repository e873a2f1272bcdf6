//! TLB shootdown: when a page-table entry another core may have cached changes, that core
//! drops its cached entries before the change takes effect for anyone (before the frame
//! goes back, before the syscall returns).
//!
//! The asking core holds the kernel lock. It writes a request into each concerned core's
//! `shootdown` word, interrupts it ([`VECTOR_WAKE`]) and spins until each has cleared the
//! word. A core answers from the interrupt (in user space or idle) or, since the kernel
//! runs with interrupts off, from the loop where it waits for the kernel lock (the only
//! lock a core can be waiting for while another holds the kernel lock), so the asker never
//! waits on a core that waits on it. PCIDs are off when several cores run
//! (`smp::start_cores`), so a core's TLB holds entries of the root it has loaded only,
//! besides the kernel's global ones.

use super::percpu::{self, LOADED_ROOT, SHOOTDOWN};
use super::spinlock::WATCHDOG_MS;
use super::trap::VECTOR_WAKE;
use core::sync::atomic::{AtomicU64, Ordering};

/// Request bits, below a root's page-aligned address: drop every entry, global ones too
/// (a kernel stack was unmapped), on every core.
const GLOBAL: u64 = 1;
/// If the root is loaded, load the kernel's instead: the address space is going away.
const LEAVE: u64 = 2;
const BITS: u64 = GLOBAL | LEAVE;

/// The kernel's own root, which holds no user mappings.
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);

pub fn set_kernel_root(root: u64) {
    KERNEL_ROOT.store(root, Ordering::Relaxed);
}

/// Entries of `root` changed: every other core that has it loaded flushes its TLB. The
/// caller flushes its own.
pub fn shoot_root(root: u64) {
    shoot(root, |loaded| loaded == root);
}

/// `root` is going away: this core and every other that has it loaded load the kernel's
/// root instead.
pub fn leave(root: u64) {
    if super::loaded_root() == root {
        super::load_root(KERNEL_ROOT.load(Ordering::Relaxed));
    }
    shoot(root | LEAVE, |loaded| loaded == root);
}

/// Global entries changed (kernel stacks): every other core flushes its whole TLB. The
/// caller flushes its own.
pub fn shoot_global() {
    shoot(GLOBAL, |_| true);
}

/// Ask every other running core whose loaded root `concerned` accepts, and wait for all.
fn shoot(request: u64, concerned: impl Fn(u64) -> bool) {
    let here = percpu::index();
    let targets = (0..percpu::online()).filter(|&core| {
        core != here && concerned(percpu::of(core).loaded_root.load(Ordering::Acquire))
    });
    let mut asked = 0u64;
    for core in targets {
        percpu::of(core).shootdown.store(request, Ordering::Release);
        super::lapic::send_ipi(percpu::apic_id_of(core), VECTOR_WAKE as u32);
        asked |= 1 << core;
    }
    let start = super::cpu::read_tsc();
    while asked != 0 {
        let core = asked.trailing_zeros() as usize;
        if percpu::of(core).shootdown.load(Ordering::Acquire) == 0 {
            asked &= !(1 << core);
        }
        core::hint::spin_loop();
        if super::cpu::read_tsc() - start > WATCHDOG_MS * super::lapic::tsc_per_ms() {
            panic!("core {core} did not answer a TLB shootdown in {WATCHDOG_MS} ms");
        }
    }
}

/// Do what another core asked of this one, if anything.
#[inline]
pub fn serve() {
    let request = percpu::read::<SHOOTDOWN>();
    if request != 0 {
        serve_request(request);
    }
}

#[cold]
fn serve_request(request: u64) {
    let root = request & !BITS;
    let loaded = percpu::read::<LOADED_ROOT>();
    if request & LEAVE != 0 && loaded == root {
        super::load_root(KERNEL_ROOT.load(Ordering::Relaxed));
    } else if request & GLOBAL != 0 {
        x86_64::instructions::tlb::flush_all();
        // Clearing and setting CR4.PGE drops global entries too.
        // SAFETY: toggling PGE only flushes the TLB; the kernel's mappings stay valid.
        unsafe {
            use x86_64::registers::control::{Cr4, Cr4Flags};
            let cr4 = Cr4::read();
            if cr4.contains(Cr4Flags::PAGE_GLOBAL) {
                Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
                Cr4::write(cr4);
            }
        }
    } else if loaded == root {
        x86_64::instructions::tlb::flush_all();
    }
    percpu::write::<SHOOTDOWN>(0);
}
