//! The scheduler: per-core priority run queues, round-robin within a priority, preemption by
//! the timer.
//!
//! Highest priority first; equal priorities take turns of [`TIME_SLICE`] ticks. A woken thread
//! of higher priority than the running one preempts it at the next return to user space.
//! When nothing is ready a core's idle thread halts it until the next interrupt.
//!
//! Every thread has a home core, the least loaded when it was made, and runs only there:
//! making it ready queues it there, and another core that does so interrupts its home if
//! it should preempt what runs there (`percpu::request`). Each core has its own queues,
//! running thread, slice, FPU owner and timers (its threads' timeouts, which its tick
//! expires). In the kernel's shared mode a core reaches its own record alone
//! ([`Core::here`]): the fast path switches threads without the others. A suspended
//! thread is never on a run queue: it may wake (its state becomes `Ready`) but waits off the
//! queues until resumed.

pub mod thread;

use crate::arch;
use crate::arch::percpu;
use crate::arch::trap::TrapFrame;
use crate::ipc::Delivered;
use crate::ipc::port::FastCounts;
use crate::table::{EntryGuard, Held};
use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use keel_abi::PRIORITY_LEVELS;
use thread::{Thread, ThreadState, Tid};

/// End-of-syscall work due on this core, as bits of its `percpu::due` word, checked on every
/// return to user space without taking the kernel lock (and by the fast path in one load).
/// The running thread should give way.
const RESCHED: u64 = 1;
/// A thread died while running here and waits in the core's `dead` to be freed.
const DEAD: u64 = 2;

pub fn request_reschedule() {
    percpu::set_due(RESCHED);
}

pub fn reschedule_requested() -> bool {
    percpu::due() & RESCHED != 0
}

pub fn clear_reschedule() {
    percpu::take_due(RESCHED);
}

/// Whether a thread died while running here and waits to be freed; the flag is cleared.
#[inline(always)]
pub fn take_dead_flag() -> bool {
    percpu::take_due(DEAD)
}

/// Ticks a thread runs before an equal-priority thread gets the CPU.
pub const TIME_SLICE: u32 = 10;
/// Threads in the whole system: one per kernel stack slot.
pub const MAX_THREADS_TOTAL: usize = crate::mm::stacks::SLOTS;

/// Room in each run queue: every thread in the system, rounded up to a power of two so that
/// positions wrap with a mask.
const QUEUE_SLOTS: usize = MAX_THREADS_TOTAL.next_power_of_two();

/// One priority's threads waiting for the CPU, first in line at `head`: a ring with room for
/// every thread (none is ever queued twice), so it never grows and never fills up.
struct RunQueue {
    slots: Box<[Tid; QUEUE_SLOTS]>,
    head: usize,
    len: usize,
}

impl RunQueue {
    fn new() -> Self {
        RunQueue {
            slots: Box::new([0; QUEUE_SLOTS]),
            head: 0,
            len: 0,
        }
    }

    fn push_back(&mut self, tid: Tid) {
        assert!(
            self.len < QUEUE_SLOTS,
            "a run queue holds every thread once"
        );
        self.slots[(self.head + self.len) % QUEUE_SLOTS] = tid;
        self.len += 1;
    }

    fn push_front(&mut self, tid: Tid) {
        assert!(
            self.len < QUEUE_SLOTS,
            "a run queue holds every thread once"
        );
        self.head = (self.head + QUEUE_SLOTS - 1) % QUEUE_SLOTS;
        self.slots[self.head] = tid;
        self.len += 1;
    }

    fn pop_front(&mut self) -> Option<Tid> {
        if self.len == 0 {
            return None;
        }
        let tid = self.slots[self.head];
        self.head = (self.head + 1) % QUEUE_SLOTS;
        self.len -= 1;
        Some(tid)
    }

    /// Drop `tid` from the line, keeping the others' order.
    fn remove(&mut self, tid: Tid) {
        let mut kept = 0;
        for i in 0..self.len {
            let other = self.slots[(self.head + i) % QUEUE_SLOTS];
            if other != tid {
                self.slots[(self.head + kept) % QUEUE_SLOTS] = other;
                kept += 1;
            }
        }
        self.len = kept;
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One core's share of the scheduler.
pub struct Core {
    queues: [RunQueue; PRIORITY_LEVELS],
    /// Bit p set when queue p is not empty: picking the next thread is one instruction.
    ready: u32,
    current: Tid,
    /// The running thread's priority, which a woken thread must beat to preempt it: set by
    /// `load` and kept by `Kernel::set_priority` (`kernel/thread.rs`).
    current_priority: usize,
    /// The running thread's record (none before the first switch), kept locked so that no
    /// other core's fast path takes it, and found without a lookup: set by
    /// [`Core::load`]; a record stays in its table until its thread is removed, which never
    /// happens while it runs (see `dead`).
    running: Option<Held<Thread>>,
    /// The thread that ran before `current`: the core may still be on its kernel stack, just
    /// after the switch, until it switches again. Another core removing it leaves it to
    /// this one (`dead`).
    previous: Tid,
    idle: Tid,
    slice_left: u32,
    /// Threads that ended while running here; freed once another thread runs.
    dead: Vec<Tid>,
    /// The thread whose FPU and SSE registers the core holds (0: none yet), and whether
    /// CR0.TS is set, so that another thread's first use of them traps (`arch::fpu`).
    fpu_owner: Tid,
    fpu_trap: bool,
    /// Threads at home here, idle excluded: what placement balances.
    homed: usize,
    /// Where the boot context's stack pointer goes when the core first leaves it.
    boot_rsp: u64,
    /// Its threads waiting for a tick.
    sleepers: BTreeSet<(u64, Tid)>,
    /// What the fast path handed over here (see `Kernel::ipc_stats`).
    fast: FastCounts,
}

pub struct Scheduler {
    /// In cells: in the kernel's shared mode each core changes its own (see [`Core::here`]).
    cores: Vec<UnsafeCell<Core>>,
}

/// The "thread" running before the scheduler starts: the boot context, never resumed.
const BOOT_CONTEXT: Tid = Tid::MAX;

impl Scheduler {
    /// A scheduler for one core per idle thread, in core order. Each core finds its own
    /// record through its per-core area, so the records never move once made.
    pub fn new(idles: &[Tid]) -> Self {
        let cores: Vec<UnsafeCell<Core>> = idles
            .iter()
            .map(|&idle| {
                UnsafeCell::new(Core {
                    queues: core::array::from_fn(|_| RunQueue::new()),
                    ready: 0,
                    current: BOOT_CONTEXT,
                    current_priority: 0,
                    running: None,
                    previous: BOOT_CONTEXT,
                    idle,
                    slice_left: TIME_SLICE,
                    dead: Vec::new(),
                    fpu_owner: 0,
                    fpu_trap: true,
                    homed: 0,
                    boot_rsp: 0,
                    sleepers: BTreeSet::new(),
                    fast: FastCounts::default(),
                })
            })
            .collect();
        for (index, core) in cores.iter().enumerate() {
            percpu::set_scheduler(index, core.get() as u64);
        }
        Scheduler { cores }
    }

    /// This core's share.
    #[inline(always)]
    pub fn here(&mut self) -> &mut Core {
        // SAFETY: `&mut self` is the exclusive mode: no other reference to a record lives.
        unsafe { Core::here() }
    }

    #[inline(always)]
    fn here_ref(&self) -> &Core {
        // SAFETY: the per-core area holds the address of this core's cell in `cores`; a
        // record changes behind `&self` only in the shared mode, which keeps every
        // `&Scheduler` away (see `core`).
        unsafe { &*(percpu::scheduler() as *const Core) }
    }

    /// Core `index`'s share.
    #[inline(always)]
    fn core(&self, index: usize) -> &Core {
        // SAFETY: a record changes behind `&self` only in the shared mode (`Core::here`),
        // which keeps every `&Scheduler` away.
        unsafe { &*self.cores[index].get() }
    }

    fn all(&self) -> impl Iterator<Item = &Core> {
        (0..self.cores.len()).map(|index| self.core(index))
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut Core> {
        self.cores.iter_mut().map(UnsafeCell::get_mut)
    }

    /// The thread running on this core.
    #[inline(always)]
    pub fn current(&self) -> Tid {
        self.here_ref().current
    }

    /// Whether `tid` is a core's idle thread.
    pub fn is_idle(&self, tid: Tid) -> bool {
        self.all().any(|core| core.idle == tid)
    }

    /// The core `tid` runs on now, or whose kernel stack it may still be leaving (another
    /// core's `previous`): such a thread may not be freed by anyone but that core.
    pub fn core_running(&self, tid: Tid) -> Option<usize> {
        let here = percpu::index();
        self.all().enumerate().find_map(|(index, core)| {
            (core.current == tid || (index != here && core.previous == tid)).then_some(index)
        })
    }

    /// The cores of `cpus` (bit `n` for core `n`) that run, or every core if none does.
    pub fn usable(&self, cpus: u8) -> u8 {
        let running = (1u16 << self.cores.len()).wrapping_sub(1) as u8;
        match cpus & running {
            0 => running,
            usable => usable,
        }
    }

    /// Give `thread` a home: of the [`usable`](Self::usable) cores of `cpus`, the one
    /// with the fewest threads.
    pub fn place(&mut self, thread: &mut Thread, cpus: u8) {
        let cpus = self.usable(cpus);
        let (index, core) = self
            .all_mut()
            .enumerate()
            .filter(|(index, _)| cpus & (1 << index) != 0)
            .min_by_key(|(_, core)| core.homed)
            .expect("at least one core");
        core.homed += 1;
        thread.set_home(index);
    }

    /// `thread` is going: its home has one thread fewer.
    pub fn unplace(&mut self, thread: &Thread) {
        let core = self.cores[thread.home()].get_mut();
        core.homed = core.homed.saturating_sub(1);
    }

    /// Make `thread` (`tid`) ready: on its home's run queue unless suspended, preempting the
    /// thread running there if it outranks it.
    pub fn ready(&mut self, tid: Tid, thread: &mut Thread) {
        thread.ready();
        if thread.is_suspended() {
            return;
        }
        let home = thread.home();
        let core = self.cores[home].get_mut();
        core.enqueue(tid, thread.priority(), false);
        if core.outranked_by(thread.priority()) {
            self.preempt_on(home);
        }
    }

    /// Have core `index` reschedule at its next return to user space.
    fn preempt_on(&self, index: usize) {
        if index == percpu::index() {
            request_reschedule();
        } else {
            percpu::request(index, RESCHED);
        }
    }

    /// If `tid` runs on some core, have it reschedule there (it was suspended, or lowered).
    pub fn preempt(&self, tid: Tid) {
        if let Some(index) = self.all().position(|core| core.current == tid) {
            self.preempt_on(index);
        }
    }

    /// Put `tid`, the running thread, blocking in `state`, on this core's timer if `state`
    /// ends at a tick.
    #[inline(always)]
    pub fn time(&mut self, tid: Tid, state: ThreadState) {
        self.here().time(tid, state);
    }

    /// Forget `tid` in the run queues and timers (it is being removed or woken).
    /// Inlined: a thread woken from a wait without a timeout, the common case, costs one
    /// test.
    #[inline(always)]
    pub fn forget(&mut self, tid: Tid, state: ThreadState) {
        match state {
            ThreadState::Ready => self.forget_ready(tid),
            ThreadState::Sleeping(until)
            | ThreadState::Receiving {
                until: Some(until), ..
            } => self.forget_sleeper(until, tid),
            _ => {}
        }
    }

    /// Take `tid` off its home's timer (whichever core that is).
    #[cold]
    fn forget_sleeper(&mut self, until: u64, tid: Tid) {
        for (index, core) in self.all_mut().enumerate() {
            if core.sleepers.remove(&(until, tid)) {
                core.publish_next_timer(index);
            }
        }
    }

    #[cold]
    fn forget_ready(&mut self, tid: Tid) {
        for core in self.all_mut() {
            for (priority, queue) in core.queues.iter_mut().enumerate() {
                queue.remove(tid);
                if queue.is_empty() {
                    core.ready &= !(1 << priority);
                }
            }
        }
    }

    /// `tid`, running on core `index` (or just left there), ended: that core frees it once
    /// it has switched away.
    pub fn note_dead(&mut self, tid: Tid, index: usize) {
        self.cores[index].get_mut().dead.push(tid);
        if index == percpu::index() {
            percpu::set_due(DEAD | RESCHED);
        } else {
            percpu::request(index, DEAD | RESCHED);
        }
    }

    /// The running thread's record (see the field).
    #[inline(always)]
    pub fn running_record(&self) -> &Held<Thread> {
        self.here_ref().running.as_ref().expect("a thread runs")
    }

    /// Thread `tid`'s priority changed: if it runs somewhere, that core must know.
    pub fn set_running_priority(&mut self, tid: Tid, priority: usize) {
        if let Some(core) = self.all_mut().find(|core| core.current == tid) {
            core.current_priority = priority;
        }
    }

    /// The next of this core's sleepers whose time has come by tick `now`, off the timer.
    pub fn pop_expired(&mut self, now: u64) -> Option<Tid> {
        let core = self.here();
        let &(until, tid) = core.sleepers.first()?;
        if until > now {
            return None;
        }
        core.sleepers.pop_first();
        core.publish_next_timer(percpu::index());
        Some(tid)
    }

    /// What the fast path handed over, on all cores.
    pub fn fast_counts(&self) -> FastCounts {
        self.all()
            .map(|core| core.fast)
            .fold(FastCounts::default(), FastCounts::add)
    }

    /// Threads that died while running here, to be freed now another runs.
    pub fn take_dead(&mut self) -> Vec<Tid> {
        core::mem::take(&mut self.here().dead)
    }
}

impl Core {
    /// This core's record.
    ///
    /// # Safety
    /// The caller holds the kernel lock, and no other reference to this core's record lives
    /// (in the shared mode no other core reaches it: each reaches its own).
    #[inline(always)]
    pub unsafe fn here<'a>() -> &'a mut Core {
        // SAFETY: the per-core area holds the address of this core's cell in `cores`, which
        // never reallocates; per the caller, this is the only reference to it.
        unsafe { &mut *(percpu::scheduler() as *mut Core) }
    }

    /// The thread running here.
    #[inline(always)]
    pub fn current(&self) -> Tid {
        self.current
    }

    /// Whether a thread of `priority` made ready here should preempt what runs (as
    /// [`Scheduler::ready`] decides).
    #[inline(always)]
    pub fn outranked_by(&self, priority: usize) -> bool {
        self.idles() || priority > self.current_priority
    }

    /// Whether the idle thread runs here.
    #[inline(always)]
    pub fn idles(&self) -> bool {
        self.current == self.idle
    }

    /// The best ready thread here, off its queue; the idle thread if none.
    pub fn pick_next(&mut self) -> Tid {
        if self.ready == 0 {
            return self.idle;
        }
        let priority = 31 - self.ready.leading_zeros() as usize;
        let queue = &mut self.queues[priority];
        let tid = queue
            .pop_front()
            .expect("ready bit set for a non-empty queue");
        if queue.is_empty() {
            self.ready &= !(1 << priority);
        }
        tid
    }

    /// Whether the running thread used up its slice.
    #[inline(always)]
    pub fn slice_over(&self) -> bool {
        self.slice_left == 0
    }

    /// The running thread gives up the rest of its slice.
    pub fn end_slice(&mut self) {
        self.slice_left = 0;
    }

    /// A fresh slice for the thread about to run.
    #[inline(always)]
    pub fn new_slice(&mut self) {
        self.slice_left = TIME_SLICE;
    }

    /// `thread` (`current`), still runnable, goes back in line: in front if its slice is not
    /// used up, keeping only what is left of it, or a higher-priority thread waking every
    /// tick would keep it on the CPU for ever (see `timer_tick`).
    #[inline(always)]
    pub fn requeue(&mut self, current: Tid, thread: &mut Thread) {
        let slice_over = self.slice_left == 0;
        thread.ready();
        thread.keep_slice(if slice_over { 0 } else { self.slice_left });
        if !thread.is_suspended() {
            self.enqueue(current, thread.priority(), !slice_over);
        }
    }

    /// Where this core's boot context parks when the core first switches away.
    pub fn boot_rsp_slot(&mut self) -> *mut u64 {
        &raw mut self.boot_rsp
    }
    /// Put `tid`, running here, blocking in `state`, on the timer if `state` ends at a
    /// tick. Inlined: most waits have no end, and then this is one test.
    #[inline(always)]
    pub fn time(&mut self, tid: Tid, state: ThreadState) {
        if let ThreadState::Sleeping(until)
        | ThreadState::Receiving {
            until: Some(until), ..
        } = state
        {
            self.add_sleeper(until, tid);
        }
    }

    #[cold]
    fn add_sleeper(&mut self, until: u64, tid: Tid) {
        self.sleepers.insert((until, tid));
        self.publish_next_timer(percpu::index());
    }

    /// Tell core `index` (this one's record) when its first timer ends.
    fn publish_next_timer(&self, index: usize) {
        let first = self.sleepers.first().map_or(u64::MAX, |&(until, _)| until);
        percpu::set_next_timer(index, first);
    }

    /// Take `tid`, at home here and woken from `state`, off the timer if it was on it.
    #[inline(always)]
    pub fn forget_timer(&mut self, tid: Tid, state: ThreadState) {
        if let ThreadState::Receiving {
            until: Some(until), ..
        } = state
        {
            self.forget_sleeper(until, tid);
        }
    }

    #[cold]
    fn forget_sleeper(&mut self, until: u64, tid: Tid) {
        self.sleepers.remove(&(until, tid));
        self.publish_next_timer(percpu::index());
    }

    /// The running thread is back after a preemption with `kept` ticks of its slice left
    /// (0: none): only those.
    pub fn cut_slice(&mut self, kept: u32) {
        if kept != 0 {
            self.slice_left = self.slice_left.min(kept);
        }
    }

    /// Count the tick against the slice; a used-up slice asks for the scheduler.
    pub fn run_down_slice(&mut self) {
        self.slice_left = self.slice_left.saturating_sub(1);
        if self.slice_left == 0 {
            request_reschedule();
        }
    }

    /// What the fast path handed over here.
    #[inline(always)]
    pub fn fast_counts(&mut self) -> &mut FastCounts {
        &mut self.fast
    }

    /// Queue `tid` at `priority` here: at the back, or in front if it was preempted
    /// mid-slice.
    pub fn enqueue(&mut self, tid: Tid, priority: usize, front: bool) {
        let queue = &mut self.queues[priority];
        if front {
            queue.push_front(tid);
        } else {
            queue.push_back(tid);
        }
        self.ready |= 1 << priority;
    }
}

// SAFETY: the kernel state, `running` included, is only reached under the kernel lock.
unsafe impl Send for Scheduler {}

/// Nanoseconds as timer ticks, rounded up.
pub fn ticks_from_nanos(nanos: u64) -> u64 {
    nanos.div_ceil(1_000_000_000 / crate::arch::lapic::TICK_HZ)
}

/// A timeout in nanoseconds as ticks; `u64::MAX` is none (wait for ever).
pub fn timeout_ticks(nanos: u64) -> Option<u64> {
    (nanos != u64::MAX).then(|| ticks_from_nanos(nanos))
}

/// Whether end-of-syscall work is due: the scheduler, the log, freeing a dead thread. A
/// thread resumed straight to user space would leave it undone.
#[inline(always)]
pub fn work_pending() -> bool {
    percpu::due() != 0 || crate::log::is_pending()
}

impl Scheduler {
    /// The running thread used the FPU or SSE while another's registers were loaded: it owns
    /// them now. Returns the previous owner, whose registers this core still holds.
    pub fn take_fpu(&mut self) -> Tid {
        let core = self.here();
        core.fpu_trap = false;
        arch::fpu::set_trap(false);
        core::mem::replace(&mut core.fpu_owner, core.current)
    }
}

impl Core {
    /// Make `thread` (`tid`) the running thread here: its kernel stack for the next entry
    /// from user space, its address space (CR3 is loaded only when it changes), its
    /// priority; its record kept locked while it runs, and the thread that ran before gives
    /// its up. The record of the one before may not be used past this.
    #[inline(always)]
    pub fn load(&mut self, tid: Tid, mut thread: EntryGuard<'_, Thread>) {
        thread.run();
        let top = thread.stack_top();
        percpu::set_kernel_stack(top);
        if let Some(root) = thread.root()
            && root != arch::loaded_root()
        {
            arch::load_root(root);
        }
        // The FPU traps for every thread but its owner; CR0 is written only on a change.
        let trap = tid != self.fpu_owner;
        if trap != self.fpu_trap {
            self.fpu_trap = trap;
            arch::fpu::set_trap(trap);
        }
        self.previous = self.current;
        self.current = tid;
        self.current_priority = thread.priority();
        if let Some(before) = self.running.replace(thread.keep()) {
            // SAFETY: a thread's record stays in its table until it has stopped running
            // here (see `dead`), and, per the caller, it is not used past this.
            unsafe { before.release() };
        }
    }

    /// The running thread's record.
    ///
    /// # Safety
    /// The caller holds the kernel lock, and lets the reference go before the next
    /// [`load`](Self::load) and before any other reference to the record is made.
    #[inline(always)]
    pub unsafe fn running<'a>(&self) -> Option<&'a mut Thread> {
        // SAFETY: the record is in its table while its thread runs here (see the field);
        // per the caller, this is the only reference.
        self.running.as_ref().map(|held| unsafe { held.value() })
    }

    /// Make `thread` (`tid`), parked with its syscall's outcome already in its saved
    /// registers, the running one here; the frame to return to user space through.
    #[inline(always)]
    pub fn resume_parked(
        &mut self,
        tid: Tid,
        mut thread: EntryGuard<'_, Thread>,
    ) -> *mut TrapFrame {
        thread.unpark();
        let frame = thread.saved_user_frame();
        self.load(tid, thread);
        frame
    }
}

/// Where [`park`] left the running thread's kernel stack: made only by [`park`].
pub struct Parked(u64);

impl Parked {
    /// The stack pointer it was parked at.
    #[inline(always)]
    pub fn stack_pointer(self) -> u64 {
        self.0
    }
}

/// Park `thread`, the running one, just blocked (or requeued) in a receive, call,
/// reply-and-receive or yield that finishes as `how`: its kernel stack will be abandoned, not
/// saved, and it resumes from its syscall's frame. Then `switch_parked` (`kernel/switch.rs`).
#[inline(always)]
pub fn park(thread: &mut Thread, how: Delivered) -> Parked {
    Parked(thread.park(how))
}
