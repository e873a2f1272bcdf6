//! The kernel's lock: one ticket lock per core, so that the fast path on one core never
//! waits for another core's fast path (a "big reader" lock, as Linux's brlock).
//!
//! A core takes its own ticket lock alone for the kernel's *shared* mode, in which it
//! touches only what it locks object by object (the IPC fast path, `kernel/fastpath.rs`);
//! the *exclusive* mode, everything else, takes every core's in core order, so it waits for
//! each core's shared holder to finish and keeps them all out. Cores take each ticket lock
//! in the order they asked, so none starves.
//!
//! The kernel runs with interrupts off except in the idle loop, which holds no lock, so
//! an interrupt handler never finds its own core holding a lock: the lock need not save
//! and clear the interrupt flag (debug builds check that it is clear). A waiting core
//! answers TLB shootdowns (`tlb.rs`), which the holder may be waiting for. A core that waits
//! longer than [`WATCHDOG_MS`] panics rather than hang: the lock was taken twice on one
//! core, or held too long. Debug builds name the holding core and where it took the lock;
//! release builds keep the uncontended path to one atomic add and one store per core.

use super::percpu::{self, MAX_CORES};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// How long a core waits for a lock before it calls it stuck. Long enough that a holder
/// whose vCPU thread the host does not run for a while (QEMU's multi-threaded TCG on a
/// busy two-core host stalled one past 1 s) is not taken for a stuck one; short enough
/// that a stuck one fails its test long before the test's timeout.
pub const WATCHDOG_MS: u64 = 5000;

/// A wait's bound: [`WATCHDOG_MS`] from its start.
pub struct Watchdog {
    start: u64,
}

impl Watchdog {
    pub fn start() -> Self {
        Watchdog {
            start: super::cpu::read_tsc(),
        }
    }

    /// TSC cycles since the start.
    pub fn elapsed(&self) -> u64 {
        super::cpu::read_tsc() - self.start
    }

    /// Whether the wait has lasted past the bound: something is stuck.
    pub fn expired(&self) -> bool {
        self.elapsed() > WATCHDOG_MS * super::lapic::tsc_per_ms()
    }
}

/// The value and a ticket lock per core.
pub struct CoreLock<T> {
    tickets: [Ticket; MAX_CORES],
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached mutably only through an exclusive guard, which holds every
// core's ticket; a shared guard gives only a pointer, for code whose own per-object locks
// keep the cores apart (see `kernel::Shared`).
unsafe impl<T: Send> Sync for CoreLock<T> {}

/// The lock in exclusive mode: every running core's ticket.
pub struct Exclusive<'a, T> {
    lock: &'a CoreLock<T>,
}

/// The lock in shared mode: this core's ticket.
pub struct Shared<'a, T> {
    lock: &'a CoreLock<T>,
    core: usize,
}

impl<T> CoreLock<T> {
    pub const fn new(value: T) -> Self {
        CoreLock {
            tickets: [const { Ticket::new() }; MAX_CORES],
            value: UnsafeCell::new(value),
        }
    }

    /// Every running core's ticket, in core order.
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> Exclusive<'_, T> {
        // The boot core's first: one core's kernel pays for no loop.
        self.tickets[0].acquire();
        for ticket in self.others() {
            ticket.acquire();
        }
        Exclusive { lock: self }
    }

    /// The tickets of the running cores but the boot core's (their number changes only
    /// before the first process starts).
    #[inline(always)]
    fn others(&self) -> &[Ticket] {
        &self.tickets[1..percpu::online().clamp(1, MAX_CORES)]
    }

    /// This core's ticket.
    #[inline]
    #[track_caller]
    pub fn lock_shared(&self) -> Shared<'_, T> {
        // A core's number is below MAX_CORES, a power of two: the mask spares the bounds check.
        let core = percpu::index() % MAX_CORES;
        self.tickets[core].acquire();
        Shared { lock: self, core }
    }

    /// Every ticket if all are free now (for the panic path's report).
    #[track_caller]
    pub fn try_lock(&self) -> Option<Exclusive<'_, T>> {
        let running = &self.tickets[..percpu::online().clamp(1, MAX_CORES)];
        for (taken, ticket) in running.iter().enumerate() {
            if !ticket.try_acquire() {
                running[..taken].iter().for_each(Ticket::release);
                return None;
            }
        }
        Some(Exclusive { lock: self })
    }

    /// How often a core found a ticket lock held and waited, and for how many TSC cycles in
    /// all, since boot: how much the cores serialize on the kernel.
    pub fn contention(&self) -> (u64, u64) {
        self.tickets.iter().fold((0, 0), |(waits, waited), ticket| {
            (
                waits + ticket.waits.load(Ordering::Relaxed),
                waited + ticket.waited.load(Ordering::Relaxed),
            )
        })
    }
}

impl<T> Drop for Exclusive<'_, T> {
    #[inline]
    fn drop(&mut self) {
        for ticket in self.lock.others().iter().rev() {
            ticket.release();
        }
        self.lock.tickets[0].release();
    }
}

impl<T> Deref for Exclusive<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: every core's ticket is held: no other guard lives.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Exclusive<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Shared<'_, T> {
    /// The value, which other cores' shared guards reach at the same time: what may be
    /// done through it is the caller's to argue.
    #[inline(always)]
    pub fn as_ptr(&self) -> *mut T {
        self.lock.value.get()
    }
}

impl<T> Drop for Shared<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.tickets[self.core].release();
    }
}

/// One ticket lock, on a cache line of its own so that cores taking their own do not
/// share one.
#[repr(align(64))]
struct Ticket {
    next: AtomicU32,
    serving: AtomicU32,
    /// Takings that found it held and waited, and the TSC cycles they waited: written
    /// only on the way out of a wait, so the uncontended path pays nothing.
    waits: AtomicU64,
    waited: AtomicU64,
    /// Who holds it, and since where (debug builds).
    #[cfg(debug_assertions)]
    holder: Holder,
}

impl Ticket {
    const fn new() -> Self {
        Ticket {
            next: AtomicU32::new(0),
            serving: AtomicU32::new(0),
            waits: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            #[cfg(debug_assertions)]
            holder: Holder::new(),
        }
    }

    /// Wait for the lock, in turn, without a guard: [`release`](Self::release) gives it back.
    #[inline]
    #[track_caller]
    fn acquire(&self) {
        debug_assert!(
            !x86_64::instructions::interrupts::are_enabled(),
            "a kernel lock taken with interrupts on"
        );
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        if self.serving.load(Ordering::Acquire) != ticket {
            self.wait(ticket);
        }
        #[cfg(debug_assertions)]
        self.holder.set(core::panic::Location::caller());
    }

    /// Give back a lock taken by [`acquire`](Self::acquire) or [`try_acquire`](Self::try_acquire).
    #[inline]
    fn release(&self) {
        #[cfg(debug_assertions)]
        self.holder.clear();
        // Only the holder moves `serving`, so a load and a store make the increment.
        let serving = self.serving.load(Ordering::Relaxed);
        self.serving.store(serving + 1, Ordering::Release);
    }

    #[track_caller]
    fn try_acquire(&self) -> bool {
        let serving = self.serving.load(Ordering::Acquire);
        let taken = self
            .next
            .compare_exchange(serving, serving + 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        #[cfg(debug_assertions)]
        if taken {
            self.holder.set(core::panic::Location::caller());
        }
        taken
    }

    #[cold]
    fn wait(&self, ticket: u32) {
        #[cfg(debug_assertions)]
        self.holder.check_not_mine();
        let watchdog = Watchdog::start();
        while self.serving.load(Ordering::Acquire) != ticket {
            // The holder may be waiting for this core to flush its TLB.
            super::tlb::serve();
            core::hint::spin_loop();
            if watchdog.expired() {
                self.stuck(ticket);
            }
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.waited.fetch_add(watchdog.elapsed(), Ordering::Relaxed);
    }

    #[cold]
    fn stuck(&self, ticket: u32) -> ! {
        #[cfg(debug_assertions)]
        let holder = self.holder.describe();
        #[cfg(not(debug_assertions))]
        let holder = "taken twice on one core, or held too long";
        let serving = self.serving.load(Ordering::Relaxed);
        panic!(
            "core {} waited {WATCHDOG_MS} ms for a kernel lock with ticket {ticket} \
             (serving {serving}): {holder}",
            percpu::index()
        )
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
