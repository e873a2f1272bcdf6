//! The kernel's shared mode: what a core may reach holding only its own ticket of the
//! kernel lock (`arch/spinlock.rs`), so that cores doing it do not wait for each other: the
//! IPC fast path (`fastpath.rs`), the scheduler's pass and the timer's tick (`switch.rs`),
//! and the notifications of interrupts and the log (`Kernel`'s `signal`).
//!
//! [`Shared`] holds the ticket and everything shared mode may touch: this core's scheduler
//! record; the record of the thread running here, which the core keeps locked while it
//! runs (`sched::Core::load`); the thread and port tables, entry by entry through their own
//! locks, only tried ([`Table::try_lock`]: when one is held the caller falls back to the
//! exclusive mode); and the process table, read only. Table shapes, address spaces,
//! capabilities, the time and other cores' records change only in the exclusive mode,
//! which waits for every core's ticket, so shared mode may read them without locks.

use super::{KERNEL, Kernel};
use crate::arch::spinlock::{self, WATCHDOG_MS, Watchdog};
use crate::device::Devices;
use crate::ipc::{Delivery, Port, PortId};
use crate::proc::Process;
use crate::sched::thread::{Thread, ThreadState, Tid};
use crate::sched::{Core, request_reschedule};
use crate::table::{EntryGuard, Table};
use keel_abi::ipc::MessageInfo;

/// The kernel in shared mode. Nothing else is reachable through it, so nothing else can
/// be changed.
pub struct Shared {
    pub core: &'static mut Core,
    threads: &'static Table<Thread>,
    ports: &'static Table<Port>,
    pub processes: &'static Table<Process>,
    pub devices: &'static Devices,
    /// Dropped last: the references above are not used past it.
    _lock: spinlock::Shared<'static, Option<Kernel>>,
}

impl Shared {
    /// Take this core's ticket.
    #[inline(always)]
    pub fn enter() -> Option<Shared> {
        let lock = KERNEL.lock_shared();
        // SAFETY: this core's ticket is held, so no core is in exclusive mode, the only mode
        // that changes the state outside cells (table shapes, address spaces) or makes it:
        // it stays put while `lock` lives, which outlives these references.
        let kernel = unsafe { (*lock.as_ptr()).as_ref()? };
        Some(Shared {
            // SAFETY: in shared mode each core reaches only its own record, through here.
            core: unsafe { Core::here() },
            threads: &kernel.threads,
            ports: &kernel.ports,
            processes: &kernel.processes,
            devices: &kernel.devices,
            _lock: lock,
        })
    }

    /// The running thread's record, this core's while it runs. The fast path uses it only
    /// until it hands the CPU on (`Core::resume_parked`), the last step that touches it.
    #[inline(always)]
    pub fn running(&self) -> Option<&'static mut Thread> {
        // SAFETY: this core's ticket is held and nothing else here reaches the record; each
        // caller lets it go before handing the CPU on (see above).
        unsafe { self.core.running() }
    }

    #[inline(always)]
    pub fn thread(&self, tid: Tid) -> Option<EntryGuard<'static, Thread>> {
        // SAFETY: in shared mode the tables are reached only through `try_lock`: `Shared`
        // offers nothing else, and the exclusive mode waits for this core's ticket.
        unsafe { self.threads.try_lock(tid) }
    }

    /// Thread `tid`, which waits for this core's CPU, locked: another core may hold its
    /// record for a moment (a fast path looking at it), never for long, since nothing in
    /// shared mode waits.
    pub fn thread_waiting(&self, tid: Tid) -> EntryGuard<'static, Thread> {
        let watchdog = Watchdog::start();
        loop {
            if let Some(thread) = self.thread(tid) {
                return thread;
            }
            core::hint::spin_loop();
            if watchdog.expired() {
                panic!("thread {tid}'s record held elsewhere for {WATCHDOG_MS} ms");
            }
        }
    }

    #[inline(always)]
    pub fn port(&self, port: PortId) -> Option<EntryGuard<'static, Port>> {
        // SAFETY: as in `thread`.
        unsafe { self.ports.try_lock(port) }
    }

    /// Notify `port_id`, as `Kernel::notify_port` does: the bits wait on the port, or go
    /// into the registers of a receiver waiting there that is at home on this core, which
    /// is queued here (asking for the scheduler if it should preempt what runs: the caller
    /// then reschedules, out of shared mode). `None`, with nothing changed, for the
    /// exclusive mode: a closed port (an error), a receiver at home on another core or
    /// held elsewhere.
    #[inline(always)]
    pub fn notify_port(&mut self, port_id: PortId, bits: u64) -> Option<()> {
        let mut port = self.port(port_id)?;
        if port.is_closed() {
            return None;
        }
        match port.first_receiver() {
            Some(receiver_id) if bits != 0 => {
                let mut receiver = self.thread(receiver_id)?;
                let state = receiver.state();
                if !matches!(state, ThreadState::Receiving { .. })
                    || receiver.is_suspended()
                    || receiver.home() != crate::arch::percpu::index()
                {
                    return None;
                }
                // Nothing can fail from here on.
                self.core.forget_timer(receiver_id, state);
                port.pop_first_receiver(&*receiver);
                receiver.load_registers(0, 0, MessageInfo::NOTIFICATION, [bits, 0, 0, 0]);
                receiver.deliver(Delivery::InRegisters(0));
                receiver.ready();
                self.core.enqueue(receiver_id, receiver.priority(), false);
                if self.core.outranked_by(receiver.priority()) {
                    request_reschedule();
                }
            }
            // Nobody waits (or zero bits, which wake nobody): the bits wait on the port.
            _ => port.raise(bits),
        }
        port.count_fast_notify();
        Some(())
    }

    /// The last receiver waiting on `port`, locked, to queue behind: `Some(None)` if nobody
    /// waits, `None` if it is locked elsewhere.
    #[inline(always)]
    pub fn last_receiver(&self, port: &Port) -> Option<Option<EntryGuard<'static, Thread>>> {
        match port.last_receiver() {
            None => Some(None),
            Some(last) => self.thread(last).map(Some),
        }
    }
}
