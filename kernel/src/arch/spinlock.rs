//! The ticket spinlock that guards the kernel state: cores take it in the order they
//! asked (a ticket each), so none starves.
//!
//! The kernel runs with interrupts off except in the idle loop, which holds no lock, so
//! an interrupt handler never finds its own core holding a lock: the lock need not save
//! and clear the interrupt flag (debug builds check that it is clear). A waiting core
//! answers TLB shootdowns (`tlb.rs`), which the holder may be waiting for. A core that waits
//! longer than [`WATCHDOG_MS`] panics rather than hang: the lock was taken twice on one
//! core, or held too long. Debug builds name the holding core and where it took the lock;
//! release builds keep the uncontended path to one atomic add and one store.

use super::percpu;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// How long a core waits for a lock before it calls it stuck. Long enough that a holder
/// whose vCPU thread the host does not run for a while (QEMU's multi-threaded TCG on a
/// busy two-core host stalled one past 1 s) is not taken for a stuck one; short enough
/// that a stuck one fails its test long before the test's timeout.
pub const WATCHDOG_MS: u64 = 5000;

pub struct TicketLock<T> {
    next: AtomicU32,
    serving: AtomicU32,
    /// Takings that found it held and waited, and the TSC cycles they waited: written
    /// only on the way out of a wait, so the uncontended path pays nothing.
    waits: AtomicU64,
    waited: AtomicU64,
    /// Who holds it, and since where (debug builds).
    #[cfg(debug_assertions)]
    holder: Holder,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a guard, and one core at a time holds one.
unsafe impl<T: Send> Sync for TicketLock<T> {}

pub struct TicketGuard<'a, T> {
    lock: &'a TicketLock<T>,
}

impl<T> TicketLock<T> {
    pub const fn new(value: T) -> Self {
        TicketLock {
            next: AtomicU32::new(0),
            serving: AtomicU32::new(0),
            waits: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            #[cfg(debug_assertions)]
            holder: Holder::new(),
            value: UnsafeCell::new(value),
        }
    }

    /// Wait for the lock, in turn.
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> TicketGuard<'_, T> {
        debug_assert!(
            !x86_64::instructions::interrupts::are_enabled(),
            "a kernel lock taken with interrupts on"
        );
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        if self.serving.load(Ordering::Acquire) != ticket {
            self.wait(ticket);
        }
        self.hold()
    }

    /// The lock if it is free now (for the panic path's report).
    #[track_caller]
    pub fn try_lock(&self) -> Option<TicketGuard<'_, T>> {
        let serving = self.serving.load(Ordering::Acquire);
        self.next
            .compare_exchange(serving, serving + 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(self.hold())
    }

    #[inline]
    #[track_caller]
    fn hold(&self) -> TicketGuard<'_, T> {
        #[cfg(debug_assertions)]
        self.holder.set(core::panic::Location::caller());
        TicketGuard { lock: self }
    }

    #[cold]
    fn wait(&self, ticket: u32) {
        #[cfg(debug_assertions)]
        self.holder.check_not_mine();
        let start = super::cpu::read_tsc();
        let bound = WATCHDOG_MS * super::lapic::tsc_per_ms();
        while self.serving.load(Ordering::Acquire) != ticket {
            // The holder may be waiting for this core to flush its TLB.
            super::tlb::serve();
            core::hint::spin_loop();
            if super::cpu::read_tsc() - start > bound {
                self.stuck(ticket);
            }
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.waited
            .fetch_add(super::cpu::read_tsc() - start, Ordering::Relaxed);
    }

    /// How often a core found the lock held and waited, and for how many TSC cycles in
    /// all, since boot: how much the cores serialize on it.
    pub fn contention(&self) -> (u64, u64) {
        (
            self.waits.load(Ordering::Relaxed),
            self.waited.load(Ordering::Relaxed),
        )
    }

    #[cold]
    fn stuck(&self, ticket: u32) -> ! {
        #[cfg(debug_assertions)]
        let holder = self.holder.describe();
        #[cfg(not(debug_assertions))]
        let holder = "taken twice on one core, or held too long";
        let serving = self.serving.load(Ordering::Relaxed);
        panic!(
            "core {} waited {WATCHDOG_MS} ms for the kernel lock with ticket {ticket} \
             (serving {serving}): {holder}",
            percpu::index()
        )
    }
}

impl<T> Drop for TicketGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        self.lock.holder.clear();
        // Only the holder moves `serving`, so a load and a store make the increment.
        let serving = self.lock.serving.load(Ordering::Relaxed);
        self.lock.serving.store(serving + 1, Ordering::Release);
    }
}

impl<T> Deref for TicketGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard is the only way to the value while it lives.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for TicketGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.value.get() }
    }
}

/// The holding core and where it took the lock, for debug builds' reports.
#[cfg(debug_assertions)]
struct Holder {
    /// The core's number plus one; 0 when free.
    core: AtomicU32,
    at: core::sync::atomic::AtomicPtr<core::panic::Location<'static>>,
}

#[cfg(debug_assertions)]
impl Holder {
    const fn new() -> Self {
        Holder {
            core: AtomicU32::new(0),
            at: core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    fn set(&self, at: &'static core::panic::Location<'static>) {
        self.core
            .store(percpu::index() as u32 + 1, Ordering::Relaxed);
        self.at.store(at as *const _ as *mut _, Ordering::Relaxed);
    }

    fn clear(&self) {
        self.core.store(0, Ordering::Relaxed);
    }

    /// Panic if this core holds the lock it is about to wait for.
    fn check_not_mine(&self) {
        if self.core.load(Ordering::Relaxed) == percpu::index() as u32 + 1 {
            panic!(
                "kernel lock taken twice on core {}: {}",
                percpu::index(),
                self.describe()
            );
        }
    }

    fn describe(&self) -> alloc::string::String {
        let at = self.at.load(Ordering::Relaxed);
        // SAFETY: `at` is null or a `Location` with a static lifetime.
        match (self.core.load(Ordering::Relaxed), unsafe { at.as_ref() }) {
            (0, _) | (_, None) => alloc::string::String::from("no holder recorded"),
            (core, Some(at)) => alloc::format!("held by core {} since {at}", core - 1),
        }
    }
}
