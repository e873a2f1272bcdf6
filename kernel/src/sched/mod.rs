//! The scheduler: priority run queues, round-robin within a priority, preemption by the timer.
//!
//! Highest priority first; equal priorities take turns of [`TIME_SLICE`] ticks. A woken thread
//! of higher priority than the running one preempts it at the next return to user space.
//! When nothing is ready the idle thread halts the CPU until the next interrupt. A suspended
//! thread is never on a run queue: it may wake (its state becomes `Ready`) but waits off the
//! queues until resumed.

pub mod thread;

use crate::arch;
use crate::arch::trap::TrapFrame;
use crate::ipc::Delivered;
use crate::table::Table;
use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};
use keel_abi::PRIORITY_LEVELS;
use thread::{Thread, ThreadState, Tid};

/// End-of-syscall work due, as bits, checked on every return to user space without taking
/// the kernel lock (and by the fast path in one load).
static DUE: AtomicU8 = AtomicU8::new(0);
/// The running thread should give way.
const RESCHED: u8 = 1;
/// A thread died while running and waits in `dead` to be freed.
const DEAD: u8 = 2;

pub fn request_reschedule() {
    DUE.fetch_or(RESCHED, Ordering::Relaxed);
}

pub fn reschedule_requested() -> bool {
    DUE.load(Ordering::Relaxed) & RESCHED != 0
}

pub fn clear_reschedule() {
    DUE.fetch_and(!RESCHED, Ordering::Relaxed);
}

/// Whether a thread died while running and waits to be freed; the flag is cleared.
#[inline(always)]
pub fn take_dead_flag() -> bool {
    DUE.fetch_and(!DEAD, Ordering::Relaxed) & DEAD != 0
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

pub struct Scheduler {
    queues: [RunQueue; PRIORITY_LEVELS],
    /// Bit p set when queue p is not empty: picking the next thread is one instruction.
    ready: u32,
    pub current: Tid,
    /// The running thread's priority, which a woken thread must beat to preempt it: set by
    /// `install` and kept by `Kernel::set_priority` (`kernel/thread.rs`).
    current_priority: usize,
    /// The running thread's record (null before the first switch), so the fast path finds it
    /// without a lookup: set by [`Scheduler::load`]; a record stays in place until its thread
    /// is removed, which never happens while it runs (see `dead`).
    running: *mut Thread,
    idle: Tid,
    sleepers: BTreeSet<(u64, Tid)>,
    slice_left: u32,
    /// Threads that ended while running; freed once another thread runs.
    dead: Vec<Tid>,
    /// The page-table root (and PCID) in CR3.
    loaded_root: u64,
    /// The thread whose FPU and SSE registers the CPU holds (0: none yet), and whether
    /// CR0.TS is set, so that another thread's first use of them traps (`arch::fpu`).
    fpu_owner: Tid,
    fpu_trap: bool,
}

/// The "thread" running before the scheduler starts: the boot context, never resumed.
const BOOT_CONTEXT: Tid = Tid::MAX;

impl Scheduler {
    pub fn new(idle: Tid) -> Self {
        Scheduler {
            queues: core::array::from_fn(|_| RunQueue::new()),
            ready: 0,
            current: BOOT_CONTEXT,
            current_priority: 0,
            running: core::ptr::null_mut(),
            idle,
            sleepers: BTreeSet::new(),
            slice_left: TIME_SLICE,
            dead: Vec::new(),
            loaded_root: arch::current_root(),
            fpu_owner: 0,
            fpu_trap: true,
        }
    }

    pub fn is_idle(&self, tid: Tid) -> bool {
        tid == self.idle
    }

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

    /// Queue `tid` at `priority`: at the back, or in front if it was preempted mid-slice.
    pub fn enqueue(&mut self, tid: Tid, priority: usize, front: bool) {
        let queue = &mut self.queues[priority];
        if front {
            queue.push_front(tid);
        } else {
            queue.push_back(tid);
        }
        self.ready |= 1 << priority;
    }

    /// Make `thread` (`tid`) ready: on its run queue unless suspended, preempting the running
    /// thread if it outranks it.
    pub fn ready(&mut self, tid: Tid, thread: &mut Thread) {
        thread.ready();
        if thread.is_suspended() {
            return;
        }
        self.enqueue(tid, thread.priority(), false);
        if self.is_idle(self.current) || thread.priority() > self.current_priority {
            request_reschedule();
        }
    }

    /// Put `tid`, blocking in `state`, on the timer if `state` ends at a tick. Inlined: most
    /// waits have no end, and then this is one test.
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
    }

    /// Take `tid`, woken from `state`, off the timer if it was on it.
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

    #[cold]
    fn forget_ready(&mut self, tid: Tid) {
        for (priority, queue) in self.queues.iter_mut().enumerate() {
            queue.remove(tid);
            if queue.is_empty() {
                self.ready &= !(1 << priority);
            }
        }
    }

    pub fn note_dead_current(&mut self) {
        self.dead.push(self.current);
        DUE.fetch_or(DEAD, Ordering::Relaxed);
        request_reschedule();
    }

    /// The running thread's record (see the field).
    #[inline(always)]
    pub fn running_record(&self) -> *mut Thread {
        self.running
    }

    /// The running thread's priority changed.
    pub fn set_current_priority(&mut self, priority: usize) {
        self.current_priority = priority;
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
        let slice_over = self.slice_over();
        thread.ready();
        thread.keep_slice(if slice_over { 0 } else { self.slice_left });
        if !thread.is_suspended() {
            self.enqueue(current, thread.priority(), !slice_over);
        }
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

    /// The next sleeper whose time has come by tick `now`, off the timer.
    pub fn pop_expired(&mut self, now: u64) -> Option<Tid> {
        let &(until, tid) = self.sleepers.first()?;
        if until > now {
            return None;
        }
        self.sleepers.pop_first();
        Some(tid)
    }

    /// Threads that died while running, to be freed now another runs.
    pub fn take_dead(&mut self) -> Vec<Tid> {
        core::mem::take(&mut self.dead)
    }

    /// Load the kernel's own root if `root` is in CR3 (its address space is going away).
    pub fn unload_root(&mut self, root: u64) {
        if self.loaded_root == root {
            self.loaded_root = crate::mm::kernel_root();
            arch::load_root(self.loaded_root);
        }
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
    DUE.load(Ordering::Relaxed) != 0 || crate::log::is_pending()
}

impl Scheduler {
    /// Make `thread` (`tid`) the running one: its kernel stack for the next entry from user
    /// space, its address space (CR3 is loaded only when it changes), its priority.
    #[inline(always)]
    pub fn load(&mut self, tid: Tid, thread: &mut Thread) {
        thread.run();
        let top = thread.stack_top();
        arch::percpu::set_kernel_stack(top);
        if let Some(root) = thread.root()
            && root != self.loaded_root
        {
            self.loaded_root = root;
            arch::load_root(root);
        }
        // The FPU traps for every thread but its owner; CR0 is written only on a change.
        let trap = tid != self.fpu_owner;
        if trap != self.fpu_trap {
            self.fpu_trap = trap;
            arch::fpu::set_trap(trap);
        }
        self.current = tid;
        self.current_priority = thread.priority();
        self.running = thread;
    }

    /// The running thread used the FPU or SSE while another's registers were loaded: it owns
    /// them now. Returns the previous owner, whose registers the CPU still holds.
    pub fn take_fpu(&mut self) -> Tid {
        self.fpu_trap = false;
        arch::fpu::set_trap(false);
        core::mem::replace(&mut self.fpu_owner, self.current)
    }

    /// The running thread's record and `other`'s (from `threads`), at once; `None` if `other`
    /// is missing or is the running thread.
    #[inline(always)]
    pub fn running_and<'a>(
        &self,
        threads: &'a mut Table<Thread>,
        other: Tid,
    ) -> Option<(&'a mut Thread, &'a mut Thread)> {
        if other == self.current {
            return None;
        }
        let other = threads.get_mut(&other)?;
        // SAFETY: `running` is the running thread's record (see the field), which lives in
        // `threads`, borrowed mutably here: this is the only reference to it. It is not
        // `other`: a live record is found under one id only, and the ids differ.
        let running = unsafe { &mut *self.running };
        Some((running, other))
    }

    /// Make `thread` (`tid`), parked with its syscall's outcome already in its saved
    /// registers, the running one; the frame to return to user space through.
    #[inline(always)]
    pub fn resume_parked(&mut self, tid: Tid, thread: &mut Thread) -> *mut TrapFrame {
        thread.unpark();
        self.load(tid, thread);
        thread.saved_user_frame()
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
