//! A process's life across the objects it holds: ending it (its threads, capabilities and
//! memory go), reaping it, ending one thread, and the kernel bytes charged to it.
//!
//! A process that ends (exit, kill or fault) releases its memory and threads at once and
//! stays as a zombie holding only its `ExitStatus` until its parent reaps it with
//! `process_wait`. Its descendants end with it and are reaped by the kernel (no orphans:
//! docs/decisions/001-orphans-end-with-their-parent.md). When the first process ends, the
//! machine powers off with its verdict.

use super::Kernel;
use crate::proc::{FIRST_PID, Pid, Process, describe_status, exited};
use crate::sched::thread::{ThreadState, Tid};
use alloc::vec::Vec;
use keel_abi::{ExitStatus, exit_kind, poweroff};

impl Kernel {
    /// End process `pid` with `status`: free its threads and memory, keep the status for its
    /// parent. Its descendants are killed and reaped, since nobody could wait for them. The
    /// running thread may be among the freed ones; the caller then reschedules.
    pub fn end_process(&mut self, pid: Pid, status: ExitStatus) {
        if !self.release_process(pid, status) {
            return;
        }
        let killed = ExitStatus {
            kind: exit_kind::KILLED,
            ..ExitStatus::default()
        };
        let descendants = self.descendants_of(pid);
        for &descendant in &descendants {
            self.release_process(descendant, killed);
        }
        // The deepest first, so each one's ancestors are still there to count it out.
        for &descendant in descendants.iter().rev() {
            self.reap(descendant);
        }
        let parent = self.processes.get(&pid).map_or(0, Process::parent);
        if pid == FIRST_PID {
            first_process_ended(&status);
        }
        if parent == 0 || !self.processes.contains_key(&parent) {
            self.reap(pid);
        } else {
            self.wake_waiters(parent);
        }
    }

    /// Free what a live process holds (threads, capabilities, memory) and make it a zombie
    /// with `status`; its quota goes back to its parent. False if it had already ended.
    fn release_process(&mut self, pid: Pid, status: ExitStatus) -> bool {
        let Some((threads, space)) = self.processes.get_mut(&pid).and_then(|p| p.end(status))
        else {
            return false;
        };
        for tid in threads {
            self.remove_thread(tid);
        }
        self.hold_dma_of(pid);
        self.release_dma_of_children(pid);
        self.cap_delete_all(pid);
        if let Some(space) = space {
            // No core may be left running on its tables, nor caching its entries.
            crate::arch::tlb::leave(space.tagged_root());
            drop(space);
        }
        self.return_quota(pid);
        true
    }

    /// Charge `bytes` of kernel memory to `pid`; false when its quota would be exceeded.
    pub fn charge_kernel_bytes(&mut self, pid: Pid, bytes: usize) -> bool {
        // A process that has ended (a fault message's sender) is charged nothing.
        self.processes
            .get_mut(&pid)
            .is_none_or(|p| p.charge_kernel_bytes(bytes))
    }

    pub fn refund_kernel_bytes(&mut self, pid: Pid, bytes: usize) {
        if let Some(p) = self.processes.get_mut(&pid) {
            p.refund_kernel_bytes(bytes);
        }
    }

    /// Forget an ended process: its record, and every capability to it.
    pub fn reap(&mut self, pid: Pid) {
        self.uncount_descendant(pid);
        self.processes.remove(&pid);
        self.cap_delete_object(crate::cap::Object::Process(pid));
    }

    /// Take a thread out of the scheduler and out of IPC: it stops waiting on ports, calls
    /// it had received but not answered fail, and capabilities to it go. The running thread
    /// is freed after the next switch.
    pub fn remove_thread(&mut self, tid: Tid) {
        if !self.threads.contains_key(&tid) {
            return;
        }
        self.cap_delete_object(crate::cap::Object::Thread(tid));
        let Some(thread) = self.threads.get_mut(&tid) else {
            return;
        };
        let state = thread.state();
        let pending = thread.take_pending_reply();
        let inbox = thread.take_inbox();
        if let ThreadState::Receiving { port, .. } = state
            && let Some(port) = self.ports.get_mut(&port)
        {
            port.remove_receiver(&mut self.threads, tid);
        }
        if let Some(reply) = pending {
            self.abandon_reply(reply);
        }
        if let Some(crate::ipc::Delivery::Message(message)) = inbox {
            self.discard_message(message);
        }
        if let Some(thread) = self.threads.get(&tid) {
            self.sched.unplace(thread);
        }
        // A thread running on a core, or whose stack a core may just be leaving, is freed
        // by that core once it has switched away.
        match self.sched.core_running(tid) {
            Some(core) => {
                self.sched.forget(tid, state);
                if let Some(thread) = self.threads.get_mut(&tid) {
                    thread.die();
                }
                self.sched.note_dead(tid, core);
            }
            None => {
                self.sched.forget(tid, state);
                self.threads.remove(&tid);
            }
        }
    }

    fn wake_waiters(&mut self, parent: Pid) {
        let waiting: Vec<Tid> = self.processes[&parent]
            .threads()
            .iter()
            .copied()
            .filter(|tid| {
                self.threads
                    .get(tid)
                    .is_some_and(|t| t.state() == ThreadState::WaitingChild)
            })
            .collect();
        for tid in waiting {
            self.make_ready(tid);
        }
    }

    /// End the calling thread; the last one ends its process with `code`.
    pub fn exit_current_thread(&mut self, code: i64) {
        self.end_thread(self.sched.current(), exited(code));
    }

    /// End thread `tid`; the last one of its process ends the process with `status`.
    pub fn end_thread(&mut self, tid: Tid, status: ExitStatus) {
        let Some(pid) = self.threads.get(&tid).map(|t| t.process()) else {
            return;
        };
        let Some(process) = self.processes.get_mut(&pid) else {
            return;
        };
        if process.threads().len() == 1 {
            self.end_process(pid, status);
        } else {
            process.remove_thread(tid);
            self.remove_thread(tid);
        }
    }
}

fn first_process_ended(status: &ExitStatus) -> ! {
    let success = status.kind == exit_kind::EXITED && status.code == 0;
    crate::kprintln!(
        "the first process ended ({}); powering off",
        describe_status(status)
    );
    crate::arch::poweroff(if success {
        poweroff::SUCCESS
    } else {
        poweroff::FAILURE
    })
}
