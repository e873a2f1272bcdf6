//! Threads across objects: readying, blocking, suspending and resuming a thread (which
//! takes it out of a port's receivers or puts it back), its priority, a new thread charged
//! to its process. The run queues and the switch's bookkeeping are the scheduler's
//! (`sched/`); switching itself is `switch.rs`.

use super::Kernel;
use crate::sched::thread::{Start, Thread, ThreadState, Tid};
use crate::sched::{MAX_THREADS_TOTAL, request_reschedule};

impl Kernel {
    /// The running thread's record, found without a lookup.
    #[inline(always)]
    pub fn running(&self) -> &Thread {
        // SAFETY: a syscall runs on a running thread, whose record `load` recorded and which
        // stays in place while it runs; `&self` keeps every `&mut` to it away meanwhile.
        unsafe { self.sched.running_record().value() }
    }

    /// Whether the running thread was ended by another core while this one was on its way
    /// to the lock: its syscall or fault must not go on.
    #[inline(always)]
    pub fn running_is_gone(&self) -> bool {
        self.running().state() == ThreadState::Dead
    }

    /// Put `tid` on its run queue (unless suspended); preempt the running thread if `tid`
    /// outranks it.
    pub fn make_ready(&mut self, tid: Tid) {
        if let Some(thread) = self.threads.get_mut(&tid) {
            self.sched.ready(tid, thread);
        }
    }

    /// Block the running thread in `state`; the caller then calls
    /// [`reschedule`](super::switch::reschedule).
    pub fn block_current(&mut self, state: ThreadState) {
        let tid = self.sched.current();
        self.sched.time(tid, state);
        if let Some(thread) = self.threads.get_mut(&tid) {
            thread.block(state);
        }
        request_reschedule();
    }

    pub fn yield_current(&mut self) {
        request_reschedule();
        self.sched.here().end_slice();
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
            ThreadState::Running => self.sched.preempt(tid),
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
        self.sched.set_running_priority(tid, priority);
        match state {
            ThreadState::Ready if queued => {
                self.sched.forget(tid, state);
                self.make_ready(tid);
            }
            // Lowered, it may no longer be the one to run.
            ThreadState::Running => self.sched.preempt(tid),
            _ => {}
        }
    }

    /// A new thread, ready to run, at home on one of `cpus` (0: any of its process's).
    pub fn spawn_thread(
        &mut self,
        process: crate::id::Pid,
        priority: usize,
        cpus: u8,
        start: Start,
    ) -> Result<Tid, keel_abi::Error> {
        if self.threads.len() >= MAX_THREADS_TOTAL {
            return Err(keel_abi::Error::QuotaExceeded);
        }
        self.check_thread_quota(process)?;
        let mut thread = Thread::new(process, priority, start)?;
        let owner = self.processes.get(&process);
        let allowed = owner.map_or(crate::proc::ALL_CORES, |p| p.cpus());
        // Named cores the machine lacks fall back to the process's, as a process's do.
        let cpus = match cpus & self.sched.usable(allowed) {
            0 => allowed,
            cpus => cpus,
        };
        self.sched.place(&mut thread, cpus);
        thread.set_root(
            owner
                .and_then(|p| p.space.as_ref())
                .map(|s| s.tagged_root()),
        );
        let id = self.threads.insert(thread);
        self.make_ready(id);
        Ok(id)
    }
}
