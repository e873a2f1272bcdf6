//! The scheduler: priority run queues, round-robin within a priority, preemption by the timer.
//!
//! Highest priority first; equal priorities take turns of [`TIME_SLICE`] ticks. A woken thread
//! of higher priority than the running one preempts it at the next return to user space.
//! When nothing is ready the idle thread halts the CPU until the next interrupt. A suspended
//! thread is never on a run queue: it may wake (its state becomes `Ready`) but waits off the
//! queues until resumed.

pub mod thread;

use crate::arch::trap::TrapFrame;
use crate::arch::{self, entry, gdt};
use crate::ipc::{Delivered, Delivery};
use crate::kernel::{Kernel, KernelGuard, kernel};
use crate::table::Table;
use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};
use keel_abi::PRIORITY_LEVELS;
use thread::{Start, Thread, ThreadState, Tid};

/// End-of-syscall work due, as bits, checked on every return to user space without taking
/// the kernel lock (and by the fast path in one load).
static DUE: AtomicU8 = AtomicU8::new(0);
/// The running thread should give way.
const RESCHED: u8 = 1;
/// A thread died while running and waits in `dead` to be freed.
const DEAD: u8 = 2;

fn request_reschedule() {
    DUE.fetch_or(RESCHED, Ordering::Relaxed);
}

fn reschedule_requested() -> bool {
    DUE.load(Ordering::Relaxed) & RESCHED != 0
}

fn clear_reschedule() {
    DUE.fetch_and(!RESCHED, Ordering::Relaxed);
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
    /// `install` and kept by [`Kernel::set_priority`].
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
        }
    }

    pub fn is_idle(&self, tid: Tid) -> bool {
        tid == self.idle
    }

    fn pick_next(&mut self) -> Tid {
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
    fn enqueue(&mut self, tid: Tid, priority: usize, front: bool) {
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

    /// Put `tid`, blocking in `state`, on the timer if `state` ends at a tick.
    pub fn time(&mut self, tid: Tid, state: ThreadState) {
        if let ThreadState::Sleeping(until)
        | ThreadState::Receiving {
            until: Some(until), ..
        } = state
        {
            self.sleepers.insert((until, tid));
        }
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
    pub fn forget(&mut self, tid: Tid, state: ThreadState) {
        match state {
            ThreadState::Ready => {
                for (priority, queue) in self.queues.iter_mut().enumerate() {
                    queue.remove(tid);
                    if queue.is_empty() {
                        self.ready &= !(1 << priority);
                    }
                }
            }
            ThreadState::Sleeping(until)
            | ThreadState::Receiving {
                until: Some(until), ..
            } => {
                self.sleepers.remove(&(until, tid));
            }
            _ => {}
        }
    }

    pub fn note_dead_current(&mut self) {
        self.dead.push(self.current);
        DUE.fetch_or(DEAD, Ordering::Relaxed);
        request_reschedule();
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

impl Kernel {
    /// The running thread's record, found without a lookup (for the fast path).
    #[inline(always)]
    pub fn running(&self) -> &Thread {
        // SAFETY: a syscall runs on a running thread, whose record `load` recorded and which
        // stays in place while it runs; `&self` keeps every `&mut` to it away meanwhile.
        unsafe { &*self.sched.running }
    }

    /// Put `tid` on its run queue (unless suspended); preempt the running thread if `tid`
    /// outranks it.
    pub fn make_ready(&mut self, tid: Tid) {
        if let Some(thread) = self.threads.get_mut(&tid) {
            self.sched.ready(tid, thread);
        }
    }

    /// Block the running thread in `state`; the caller then calls [`reschedule`].
    pub fn block_current(&mut self, state: ThreadState) {
        let tid = self.sched.current;
        self.sched.time(tid, state);
        if let Some(thread) = self.threads.get_mut(&tid) {
            thread.block(state);
        }
        request_reschedule();
    }

    pub fn yield_current(&mut self) {
        request_reschedule();
        self.sched.slice_left = 0;
    }

    /// Keep `tid` off the CPU: off its run queue, out of its port's receivers (a suspended
    /// thread takes no messages), and, if it is running, off the CPU at the next return to
    /// user space.
    pub fn suspend(&mut self, tid: Tid) {
        let Some(thread) = self.threads.get_mut(&tid) else {
            return;
        };
        if !thread.suspend() {
            return;
        }
        match thread.state() {
            ThreadState::Ready => self.sched.forget(tid, ThreadState::Ready),
            ThreadState::Running => request_reschedule(),
            ThreadState::Receiving { port, .. } => {
                if let Some(port) = self.ports.get_mut(&port) {
                    port.remove_receiver(&mut self.threads, tid);
                }
            }
            _ => {}
        }
    }

    /// Undo [`Kernel::suspend`]: a thread that woke meanwhile runs, one still receiving
    /// waits on its port again.
    pub fn resume(&mut self, tid: Tid) {
        let Some(thread) = self.threads.get_mut(&tid) else {
            return;
        };
        if !thread.resume() {
            return;
        }
        match thread.state() {
            ThreadState::Ready => self.make_ready(tid),
            ThreadState::Receiving { port, .. } => self.rejoin_receivers(tid, port),
            _ => {}
        }
    }

    /// Move `tid` to `priority`, requeueing it if it waits for the CPU.
    pub fn set_priority(&mut self, tid: Tid, priority: usize) {
        let Some(thread) = self.threads.get_mut(&tid) else {
            return;
        };
        let (state, queued) = (thread.state(), !thread.is_suspended());
        thread.set_priority(priority);
        if tid == self.sched.current {
            self.sched.current_priority = priority;
        }
        match state {
            ThreadState::Ready if queued => {
                self.sched.forget(tid, state);
                self.make_ready(tid);
            }
            // Lowered, it may no longer be the one to run.
            ThreadState::Running => request_reschedule(),
            _ => {}
        }
    }

    /// A new thread, ready to run.
    pub fn spawn_thread(
        &mut self,
        process: crate::id::Pid,
        priority: usize,
        start: Start,
    ) -> Result<Tid, keel_abi::Error> {
        if self.threads.len() >= MAX_THREADS_TOTAL {
            return Err(keel_abi::Error::QuotaExceeded);
        }
        self.check_thread_quota(process)?;
        let mut thread = Thread::new(process, priority, start)?;
        thread.set_root(
            self.processes
                .get(&process)
                .and_then(|p| p.space.as_ref())
                .map(|s| s.tagged_root()),
        );
        let id = self.threads.insert(thread);
        self.make_ready(id);
        Ok(id)
    }
}

/// Give the CPU to the best ready thread (maybe the current one again).
pub fn reschedule() {
    let mut k = kernel();
    clear_reschedule();
    let current = k.sched.current;
    let slice_over = k.sched.slice_left == 0;
    let idle = k.sched.is_idle(current);
    let state = &mut *k;
    if let Some(thread) = state.threads.get_mut(&current)
        && thread.state() == ThreadState::Running
        && !idle
    {
        // Still runnable: it goes back in line, in front if its slice is not used up. In
        // front it keeps only what is left of its slice, or a higher-priority thread waking
        // every tick would keep it on the CPU for ever (see `timer_tick`).
        thread.ready();
        thread.keep_slice(if slice_over {
            0
        } else {
            state.sched.slice_left
        });
        if !thread.is_suspended() {
            state.sched.enqueue(current, thread.priority(), !slice_over);
        }
    }
    let next = k.sched.pick_next();
    if slice_over || next != current {
        k.sched.slice_left = TIME_SLICE;
    }
    switch_to(k, next);
}

/// Run `next` now, saving the current thread's kernel context (the scheduler's switch;
/// the fast paths park instead, see [`switch_parked`]). The current thread must already
/// be blocked (or requeued) by the caller.
fn switch_to(mut k: KernelGuard, next: Tid) {
    let current = k.sched.current;
    if next == current {
        k.threads
            .get_mut(&next)
            .expect("scheduled thread exists")
            .run();
        return;
    }
    let resume = install(&mut k, next);
    let save = match k.threads.get_mut(&current) {
        Some(thread) => thread.saved_rsp_slot(),
        None => &raw mut k.boot_rsp,
    };
    drop(k);
    // SAFETY: the lock is released; `save` points into a boxed thread record (or the boot
    // slot) that stays put until this thread is reaped, which happens only after the switch;
    // `install` made `next` the running thread and says how it resumes.
    unsafe {
        match resume {
            Resume::User(frame) => entry::switch_user(save, frame),
            Resume::Kernel(next_rsp) => entry::switch(save, next_rsp),
        }
    }
    finish_switch();
}

/// How a thread being switched to continues.
enum Resume {
    /// Straight to user space with its parked syscall's frame, its result in `rax`.
    User(*mut TrapFrame),
    /// Its kernel context, parked at this stack pointer.
    Kernel(u64),
}

/// Make `next` the running thread: its state, stacks and address space. A thread parked
/// with its syscall's result in its inbox returns straight to user space, unless the
/// end-of-syscall work is due (the scheduler, the log, freeing a dead thread).
fn install(k: &mut Kernel, next: Tid) -> Resume {
    let nothing_due = !work_pending();
    let thread = k.threads.get_mut(&next).expect("scheduled thread exists");
    match thread.take_parked_result(nothing_due) {
        Some(result) => {
            // SAFETY: `next` is parked: its syscall's frame is at the top of its kernel stack
            // and nothing else refers to it.
            unsafe {
                (*thread.saved_user_frame()).rax = keel_abi::encode_result(Ok(result)) as u64
            };
            Resume::User(k.sched.resume_parked(next, thread))
        }
        None => {
            k.sched.load(next, thread);
            Resume::Kernel(thread.saved_rsp())
        }
    }
}

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
    fn load(&mut self, tid: Tid, thread: &mut Thread) {
        thread.run();
        let top = thread.stack_top();
        gdt::set_kernel_stack(top);
        if let Some(root) = thread.root()
            && root != self.loaded_root
        {
            self.loaded_root = root;
            arch::load_root(root);
        }
        self.current = tid;
        self.current_priority = thread.priority();
        self.running = thread;
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

/// Park `thread`, the running one, just blocked (or requeued) in a receive, call,
/// reply-and-receive or yield that finishes as `how`: its kernel stack will be abandoned, not
/// saved, and it resumes from its syscall's frame. Then [`switch_parked`].
#[inline(always)]
pub fn park(thread: &mut Thread, how: Delivered) -> Parked {
    Parked(thread.park(how))
}

/// Give the CPU to `next` (for the IPC fast path, woken with its syscall's result in its
/// inbox), leaving the current thread, which [`park`] parked. A parked `next` returns
/// straight to user space unless the scheduler or the end-of-syscall work is due.
pub fn switch_parked(mut k: KernelGuard, next: Tid, Parked(park): Parked) -> ! {
    let resume = install(&mut k, next);
    drop(k);
    // SAFETY: the current thread entered through a receive, call, reply-and-receive or
    // yield, so its callee-saved registers are in its own frame, and `park` (from `park`) is
    // free stack below it; the lock is released and the frames abandoned here own nothing.
    // `install` made `next` the running thread and says how it resumes.
    unsafe {
        match resume {
            Resume::User(frame) => entry::return_to_user(frame, park),
            Resume::Kernel(next_rsp) => entry::switch_parking(next_rsp, park),
        }
    }
}

/// Block the running thread `waiting` in an IPC syscall that finishes as `how`: park it and
/// run the best ready thread.
pub fn block_parking(mut k: KernelGuard, waiting: ThreadState, how: Delivered) -> ! {
    clear_reschedule();
    let state = &mut *k;
    let current = state.sched.current;
    state.sched.time(current, waiting);
    let thread = state.threads.get_mut(&current).expect("running thread");
    thread.block(waiting);
    let park = park(thread, how);
    let next = state.sched.pick_next();
    state.sched.slice_left = TIME_SLICE;
    switch_parked(k, next, park)
}

/// The running thread yields in its `thread_yield` syscall: back in line behind its
/// equals, parked with its result (0) in its inbox, while the best ready thread runs (maybe
/// itself again).
pub fn yield_parking(mut k: KernelGuard) -> ! {
    clear_reschedule();
    let current = k.sched.current;
    let state = &mut *k;
    let thread = state.threads.get_mut(&current).expect("running thread");
    thread.ready();
    thread.deliver(Delivery::InRegisters(0));
    if !thread.is_suspended() {
        state.sched.enqueue(current, thread.priority(), false);
    }
    let park = park(thread, Delivered::Received);
    let next = state.sched.pick_next();
    state.sched.slice_left = TIME_SLICE;
    switch_parked(k, next, park)
}

/// Runs on the new thread after every switch: free threads that died while running.
pub fn finish_switch() {
    // Almost every switch has nobody to free: skip the lock then.
    if DUE.fetch_and(!DEAD, Ordering::Relaxed) & DEAD == 0 {
        return;
    }
    let mut k = kernel();
    let dead = core::mem::take(&mut k.sched.dead);
    for tid in dead {
        k.threads.remove(&tid);
    }
}

#[unsafe(no_mangle)]
extern "C" fn thread_first_run() {
    finish_switch();
}

pub fn reschedule_if_needed() {
    if reschedule_requested() {
        reschedule();
    }
}

/// The timer interrupt: account the tick, wake sleepers, end time slices. The caller then
/// does the end-of-interrupt work (the log, rescheduling).
pub fn timer_tick() {
    {
        let mut k = kernel();
        let k = &mut *k;
        k.ticks += 1;
        let now = k.ticks;
        crate::clock::publish(now);
        let current = k.sched.current;
        if let Some(thread) = k.threads.get_mut(&current) {
            // Back after a preemption: only the rest of its slice. Applied here, not where
            // it is switched to, so that the IPC paths pay nothing for it.
            let kept = thread.tick();
            if kept != 0 {
                k.sched.slice_left = k.sched.slice_left.min(kept);
            }
            let pid = thread.process();
            if let Some(process) = k.processes.get_mut(&pid) {
                process.tick();
            }
        }
        while let Some(&(until, tid)) = k.sched.sleepers.first() {
            if until > now {
                break;
            }
            k.sched.sleepers.pop_first();
            match k.threads.get(&tid).map(|t| t.state()) {
                Some(ThreadState::Receiving { .. }) => {
                    k.wake_with(tid, crate::ipc::Delivery::Failed(keel_abi::Error::TimedOut))
                }
                _ => k.make_ready(tid),
            }
        }
        k.sched.slice_left = k.sched.slice_left.saturating_sub(1);
        if k.sched.slice_left == 0 {
            request_reschedule();
        }
    }
}

fn idle_loop() -> ! {
    loop {
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
        reschedule_if_needed();
    }
}

/// Leave the boot stack for the first ready thread, for good.
pub fn start() -> ! {
    reschedule();
    unreachable!("the boot context is never resumed");
}

pub fn idle_start() -> Start {
    Start::Kernel { entry: idle_loop }
}

/// "process N (name), thread T" for reports about the running thread.
pub fn describe_current() -> alloc::string::String {
    match crate::kernel::KERNEL.try_lock().as_deref() {
        Some(Some(k)) => k.describe_thread(k.sched.current),
        Some(None) => alloc::string::String::from("before the scheduler started"),
        None => alloc::string::String::from("kernel lock held"),
    }
}
