//! The one place that switches: the scheduler's pass (`reschedule`, in the kernel's shared
//! mode), blocking or yielding in an IPC syscall with the thread parked (`block_parking`,
//! `yield_parking`, in the exclusive mode of the syscall that blocks), the direct switch
//! (`switch_parked`), the timer tick and the idle loop. Each takes the kernel lock, so they
//! live at the root; what they ask of the run queues is `sched::Core`'s.
//! Every core switches among its own threads only (see `sched`).

use super::shared::Shared;
use super::{Kernel, KernelGuard, kernel};
use crate::arch::entry;
use crate::arch::trap::TrapFrame;
use crate::ipc::{Delivered, Delivery};
use crate::sched::thread::{Start, Thread, ThreadState, Tid};
use crate::sched::{
    Core, Parked, clear_reschedule, park, reschedule_requested, take_dead_flag, work_pending,
};
use crate::table::EntryGuard;
use core::sync::atomic::{AtomicBool, Ordering};

/// Give the CPU to the best ready thread here (maybe the current one again). In the
/// kernel's shared mode: it touches only this core's record, the running thread's and the
/// next one's, so a core's scheduling does not stop the others.
pub fn reschedule() {
    let k = Shared::enter().expect("kernel state initialised");
    clear_reschedule();
    let current = k.core.current();
    let slice_over = k.core.slice_over();
    // The running thread's record (none for a core's boot context).
    let mut running = k.running();
    if let Some(thread) = running.as_deref_mut()
        && thread.state() == ThreadState::Running
        && !k.core.idles()
    {
        // Still runnable: back in line.
        k.core.requeue(current, thread);
    }
    let next = k.core.pick_next();
    if slice_over || next != current {
        k.core.new_slice();
    }
    if next == current {
        if let Some(thread) = running {
            thread.run();
        }
        drop(k);
        // Another core may have left a thread this one ran before for it to free.
        finish_switch();
        return;
    }
    let save = match running {
        Some(thread) => thread.saved_rsp_slot(),
        None => k.core.boot_rsp_slot(),
    };
    let thread = k.thread_waiting(next);
    let resume = install(k.core, next, thread);
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

/// Make `next`, whose record is `thread`, the running thread of `core` (this core's): its
/// state, stacks and address space. A thread parked with its syscall's result in its inbox
/// returns straight to user space, unless the end-of-syscall work is due (the scheduler,
/// the log, freeing a dead thread).
fn install(core: &mut Core, next: Tid, mut thread: EntryGuard<'_, Thread>) -> Resume {
    let nothing_due = !work_pending();
    match thread.take_parked_result(nothing_due) {
        Some(result) => {
            // SAFETY: `next` is parked: its syscall's frame is at the top of its kernel stack
            // and nothing else refers to it.
            unsafe {
                (*thread.saved_user_frame()).rax = keel_abi::encode_result(Ok(result)) as u64
            };
            Resume::User(core.resume_parked(next, thread))
        }
        None => {
            let rsp = thread.saved_rsp();
            core.load(next, thread);
            Resume::Kernel(rsp)
        }
    }
}

/// [`install`] in the exclusive mode.
fn install_exclusive(k: &mut Kernel, next: Tid) -> Resume {
    let thread = k.threads.hold(&next).expect("scheduled thread exists");
    install(k.sched.here(), next, thread)
}

/// Give the CPU to `next` (for the IPC fast path, woken with its syscall's result in its
/// inbox), leaving the current thread, which [`park`] parked. A parked `next` returns
/// straight to user space unless the scheduler or the end-of-syscall work is due.
pub fn switch_parked(mut k: KernelGuard, next: Tid, parked: Parked) -> ! {
    let park = parked.stack_pointer();
    let again = next == k.sched.current();
    let resume = install_exclusive(&mut k, next);
    if again {
        // It yielded and is still the best: `load` gave its record's lock back as the one
        // before's; it runs on, so it keeps it.
        if let Some(thread) = k.threads.hold(&next) {
            let _ = thread.keep();
        }
    }
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
    let current = state.sched.current();
    state.sched.time(current, waiting);
    let thread = state.threads.get_mut(&current).expect("running thread");
    thread.block(waiting);
    let park = park(thread, how);
    let core = state.sched.here();
    let next = core.pick_next();
    core.new_slice();
    switch_parked(k, next, park)
}

/// The running thread yields in its `thread_yield` syscall: back in line behind its
/// equals, parked with its result (0) in its inbox, while the best ready thread runs (maybe
/// itself again).
pub fn yield_parking(mut k: KernelGuard) -> ! {
    clear_reschedule();
    let current = k.sched.current();
    let state = &mut *k;
    let thread = state.threads.get_mut(&current).expect("running thread");
    thread.ready();
    thread.deliver(Delivery::InRegisters(0));
    let core = state.sched.here();
    if !thread.is_suspended() {
        core.enqueue(current, thread.priority(), false);
    }
    let park = park(thread, Delivered::Received);
    let next = core.pick_next();
    core.new_slice();
    switch_parked(k, next, park)
}

/// Runs on the new thread after every switch: free threads that died while running. The
/// new thread itself may be among them (another core ended it just now): it stays until
/// this core has left its stack.
pub fn finish_switch() {
    // Almost every switch has nobody to free: skip the lock then.
    if !take_dead_flag() {
        return;
    }
    let mut k = kernel();
    let current = k.sched.current();
    let dead = k.sched.take_dead();
    for tid in dead {
        if tid == current {
            k.sched.note_dead(tid, crate::arch::percpu::index());
        } else {
            k.threads.remove(&tid);
        }
    }
}

#[unsafe(no_mangle)]
extern "C" fn thread_first_run() {
    finish_switch();
}

/// The running thread is gone (it ended, or another core ended it while this one waited
/// for the lock): run someone else, for good.
pub fn leave_for_good(k: KernelGuard) -> ! {
    drop(k);
    reschedule();
    unreachable!("a thread that is gone is never resumed");
}

#[inline(always)]
pub fn reschedule_if_needed() {
    if reschedule_requested() {
        reschedule();
    }
}

/// The timer interrupt: keep the time, wake sleepers, end time slices; `idle` if it woke
/// this core's idle thread from its halt, which has no time or slice to count. The caller
/// then does the end-of-interrupt work (the log, rescheduling). Only waking a sleeper takes
/// the kernel's exclusive mode; the rest is this core's own (its record, its running
/// thread's), so a tick does not stop the other cores.
// Kept out of the interrupt dispatcher, as it was in `sched`: inlined there it costs every
// interrupt its registers.
#[inline(never)]
pub fn timer_tick(idle: bool) {
    // The boot core keeps the time; every core its own timers and slice.
    if crate::arch::percpu::is_boot_core() {
        crate::clock::advance();
    }
    if crate::arch::percpu::next_timer() <= crate::clock::ticks() {
        wake_sleepers(&mut kernel());
    }
    if !idle && let Some(mut k) = Shared::enter() {
        account_tick(&mut k);
    }
}

/// Count the tick against the running thread, its process and its slice.
fn account_tick(k: &mut Shared) {
    if let Some(thread) = k.running() {
        // Back after a preemption: only the rest of its slice. Applied here, not where it is
        // switched to, so that the IPC paths pay nothing for it.
        k.core.cut_slice(thread.tick());
        if let Some(process) = k.processes.get(&thread.process()) {
            process.tick();
        }
    }
    k.core.run_down_slice();
}

/// Wake this core's threads whose timeouts have come.
fn wake_sleepers(k: &mut Kernel) {
    while let Some(tid) = k.sched.pop_expired(crate::clock::ticks()) {
        match k.threads.get(&tid).map(|t| t.state()) {
            Some(ThreadState::Receiving { .. }) => {
                k.wake_with(tid, crate::ipc::Delivery::Failed(keel_abi::Error::TimedOut))
            }
            _ => k.make_ready(tid),
        }
    }
}

fn idle_loop() -> ! {
    loop {
        crate::arch::percpu::halt();
        reschedule_if_needed();
    }
}

/// Set once the boot core has made the kernel state and the first process: the other
/// cores may then schedule too.
static STARTED: AtomicBool = AtomicBool::new(false);

/// Leave the boot stack for the first ready thread, for good.
pub fn start() -> ! {
    STARTED.store(true, Ordering::Release);
    reschedule();
    unreachable!("the boot context is never resumed");
}

/// Another core, once started: it waits for the kernel state, then schedules, for good.
pub fn start_other_core() -> ! {
    while !STARTED.load(Ordering::Acquire) {
        // Shootdowns reach every running core, scheduling or not.
        crate::arch::tlb::serve();
        core::hint::spin_loop();
    }
    start()
}

pub fn idle_start() -> Start {
    Start::Kernel { entry: idle_loop }
}

/// "process N (name), thread T" for reports about the running thread.
pub fn describe_current() -> alloc::string::String {
    match crate::kernel::KERNEL.try_lock().as_deref() {
        Some(Some(k)) => k.describe_thread(k.sched.current()),
        Some(None) => alloc::string::String::from("before the scheduler started"),
        None => alloc::string::String::from("kernel lock held"),
    }
}
