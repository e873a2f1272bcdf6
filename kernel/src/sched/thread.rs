//! Threads: a kernel stack, the saved kernel stack pointer, a state and a priority.
//!
//! A thread's user registers live in the trap frame at the top of its kernel stack while it
//! is in the kernel; its kernel registers are parked by `switch_context` when it is not
//! running.

use crate::arch::entry::prepare_new_stack;
use crate::arch::fpu::FpuState;
use crate::arch::gdt::{KERNEL_CODE, KERNEL_DATA, USER_CODE, USER_DATA};
use crate::arch::trap::TrapFrame;
use crate::id::Pid;
use crate::ipc::path_cache::PathCache;
use crate::ipc::{Delivered, Delivery, PortId, ReplyRef};
use crate::mm::space::AddressSpace;
use crate::mm::stacks::KernelStack;
use crate::mm::{PAGE_SIZE, PhysAddr};
use keel_abi::{Error, encode_result};

pub use crate::id::Tid;

const RFLAGS_INTERRUPTS: u64 = 1 << 9;
const RFLAGS_RESERVED: u64 = 1 << 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    Ready,
    Running,
    /// Blocked until the tick count reaches the value.
    Sleeping(u64),
    /// Blocked in receive on a port, until a tick count if given.
    Receiving {
        port: PortId,
        until: Option<u64>,
    },
    /// Blocked until call number `seq` is answered.
    WaitingReply(u64),
    /// Stopped at a fault until its handler answers fault message `seq`; its full register
    /// set is in the trap frame.
    Faulted(u64),
    /// Blocked in `process_wait` until a child ends.
    WaitingChild,
    /// Ended; its stack is freed once another thread runs.
    Dead,
}

/// A thread's record. Its state changes only through the named transitions below (`run`,
/// `ready`, `block`, `park`, `die`, `suspend`, `resume`), so what a state
/// means (a parked thread's frame, a woken one's inbox) holds in one place.
pub struct Thread {
    process: Pid,
    state: ThreadState,
    priority: usize,
    /// Kept off the CPU by `thread_suspend`: it may wake, but does not run until resumed.
    suspended: bool,
    /// Where `switch_context` parked this thread's kernel stack pointer.
    saved_rsp: u64,
    cpu_ticks: u64,
    /// Ticks that were left of its slice when it was preempted (0: none): the first tick it
    /// runs again cuts its new slice down to them.
    kept_slice: u32,
    /// The page registered with `ipc_buffer_set`.
    ipc_buffer: Option<usize>,
    /// The address-space epoch at which the whole IPC buffer was last found readable and
    /// writable, and the frame that held it then (see [`Thread::ipc_buffer_frame`]).
    ipc_buffer_checked: Option<(u64, PhysAddr)>,
    /// What woke this thread from a receive, call or fault.
    inbox: Option<Delivery>,
    /// The call received last and not answered yet.
    pending_reply: Option<ReplyRef>,
    /// The thread after this one among its port's receivers (see
    /// [`Receivers`](crate::ipc::port::Receivers)).
    next_receiver: Tid,
    /// Numbers this thread's calls and faults, so a late answer to an earlier one is
    /// recognised.
    call_seq: u64,
    path_cache: PathCache,
    /// Set when the thread blocked in this IPC syscall with nothing left on its kernel stack
    /// but its trap frame: resuming it means returning to user space (see
    /// [`park`](crate::sched::park)).
    parked_in: Option<Delivered>,
    /// What CR3 loads for its process: the page-table root and PCID (`None` for the idle
    /// thread, which runs in any).
    root: Option<u64>,
    stack: KernelStack,
    /// The core it runs on, chosen when it is made (`Scheduler::place`); it never moves,
    /// so its FPU registers, held lazily, are only ever in that core's.
    home: usize,
    /// Its FPU and SSE registers while another thread's are loaded; `None` until it first
    /// uses them (see `arch::fpu`).
    fpu: Option<alloc::boxed::Box<FpuState>>,
}

/// Where a new thread starts.
pub enum Start {
    /// Ring 3 at `entry` with `rdi = arg` on `stack_top`.
    User {
        entry: usize,
        stack_top: usize,
        arg: usize,
    },
    /// Ring 0, for the idle thread.
    Kernel { entry: fn() -> ! },
}

impl Thread {
    /// Keep the registers the CPU holds, which are this thread's, in its own area.
    pub fn save_fpu(&mut self) {
        self.fpu
            .get_or_insert_with(|| alloc::boxed::Box::new(FpuState::initial()))
            .save();
    }

    /// Load this thread's registers: its own, or a fresh thread's if it never used them.
    pub fn restore_fpu(&self) {
        match &self.fpu {
            Some(state) => state.restore(),
            None => FpuState::initial().restore(),
        }
    }

    pub fn new(process: Pid, priority: usize, start: Start) -> Result<Self, Error> {
        let stack = KernelStack::new()?;
        let frame = match start {
            Start::User {
                entry,
                stack_top,
                arg,
            } => TrapFrame {
                rip: entry as u64,
                cs: USER_CODE as u64,
                rflags: RFLAGS_INTERRUPTS | RFLAGS_RESERVED,
                rsp: stack_top as u64,
                ss: USER_DATA as u64,
                rdi: arg as u64,
                ..TrapFrame::default()
            },
            Start::Kernel { entry } => TrapFrame {
                rip: entry as *const () as u64,
                cs: KERNEL_CODE as u64,
                rflags: RFLAGS_RESERVED,
                rsp: stack.top() as u64,
                ss: KERNEL_DATA as u64,
                ..TrapFrame::default()
            },
        };
        // SAFETY: the stack is fresh, 16-byte aligned and far larger than the two frames.
        let saved_rsp = unsafe { prepare_new_stack(stack.top(), &frame) };
        Ok(Thread {
            process,
            state: ThreadState::Ready,
            priority,
            suspended: false,
            saved_rsp,
            cpu_ticks: 0,
            kept_slice: 0,
            ipc_buffer: None,
            ipc_buffer_checked: None,
            inbox: None,
            pending_reply: None,
            next_receiver: 0,
            call_seq: 0,
            path_cache: PathCache::default(),
            parked_in: None,
            root: None,
            stack,
            home: 0,
            fpu: None,
        })
    }

    // What the thread is. The accessors the fast path and the switch use are inlined always,
    // so sealing the record costs them nothing.

    #[inline(always)]
    pub fn process(&self) -> Pid {
        self.process
    }

    #[inline(always)]
    pub fn state(&self) -> ThreadState {
        self.state
    }

    #[inline(always)]
    pub fn priority(&self) -> usize {
        self.priority
    }

    #[inline(always)]
    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// Whether it blocked in an IPC syscall with only its trap frame left (see [`park`]).
    ///
    /// [`park`]: Thread::park
    #[inline(always)]
    pub fn is_parked(&self) -> bool {
        self.parked_in.is_some()
    }

    pub fn cpu_ticks(&self) -> u64 {
        self.cpu_ticks
    }

    /// What CR3 loads for it (see the field).
    #[inline(always)]
    pub fn root(&self) -> Option<u64> {
        self.root
    }

    pub fn home(&self) -> usize {
        self.home
    }

    pub fn set_home(&mut self, core: usize) {
        self.home = core;
    }

    pub fn set_root(&mut self, root: Option<u64>) {
        self.root = root;
    }

    // Its state: the transitions.

    /// It runs on the CPU.
    #[inline(always)]
    pub fn run(&mut self) {
        self.state = ThreadState::Running;
    }

    /// It waits for the CPU (whether it stands on a run queue is the scheduler's business).
    #[inline(always)]
    pub fn ready(&mut self) {
        self.state = ThreadState::Ready;
    }

    /// It blocks in `waiting` (sleeping, receiving, waiting for an answer or a child, at a
    /// fault).
    #[inline(always)]
    pub fn block(&mut self, waiting: ThreadState) {
        self.state = waiting;
    }

    /// What wakes it, for it to find in its inbox (the scheduler then readies it).
    #[inline(always)]
    pub fn deliver(&mut self, delivery: Delivery) {
        self.inbox = Some(delivery);
    }

    /// It ended while running; its record goes once another thread runs.
    pub fn die(&mut self) {
        self.state = ThreadState::Dead;
    }

    /// Keep it off the CPU; false if it already was.
    pub fn suspend(&mut self) -> bool {
        !core::mem::replace(&mut self.suspended, true)
    }

    /// Let it back on the CPU; false if it was not suspended.
    pub fn resume(&mut self) -> bool {
        core::mem::take(&mut self.suspended)
    }

    pub fn set_priority(&mut self, priority: usize) {
        self.priority = priority;
    }

    /// Park it, just blocked (or requeued) in an IPC syscall that finishes as `how`: it
    /// resumes from its syscall's frame, below which its kernel stack pointer is left. The
    /// stack pointer parked at.
    #[inline(always)]
    pub fn park(&mut self, how: Delivered) -> u64 {
        self.parked_in = Some(how);
        self.saved_rsp = self.saved_user_frame() as u64 - crate::arch::entry::SWITCH_FRAME as u64;
        self.saved_rsp
    }

    /// It resumes from its parked syscall with the outcome already in its registers.
    #[inline(always)]
    pub fn unpark(&mut self) {
        self.parked_in = None;
    }

    /// What it parked for, taken as it finishes its syscall (`None`: it was not parked).
    pub fn take_parked(&mut self) -> Option<Delivered> {
        self.parked_in.take()
    }

    /// Where `switch_context` keeps its kernel stack pointer while it is off the CPU.
    #[inline(always)]
    pub fn saved_rsp(&self) -> u64 {
        self.saved_rsp
    }

    /// The slot `switch_context` saves its kernel stack pointer into.
    #[inline(always)]
    pub fn saved_rsp_slot(&mut self) -> *mut u64 {
        &raw mut self.saved_rsp
    }

    /// One timer tick on the CPU; what was left of its slice when it was preempted, if it
    /// is back after a preemption (0: none).
    pub fn tick(&mut self) -> u32 {
        self.cpu_ticks += 1;
        core::mem::take(&mut self.kept_slice)
    }

    /// Preempted with `left` ticks of its slice (0: none).
    pub fn keep_slice(&mut self, left: u32) {
        self.kept_slice = left;
    }

    // IPC: what it received, what it must answer, where it stands in line.

    /// The result its parked syscall returns, taken from its inbox if that is all there is
    /// to finish it and `resumable` (nothing else due first): it may go straight back to
    /// user space.
    #[inline(always)]
    pub fn take_parked_result(&mut self, resumable: bool) -> Option<usize> {
        match self.inbox {
            Some(Delivery::InRegisters(result)) if resumable && self.parked_in.is_some() => {
                self.inbox = None;
                Some(result)
            }
            _ => None,
        }
    }

    #[inline(always)]
    pub fn take_inbox(&mut self) -> Option<Delivery> {
        self.inbox.take()
    }

    #[inline(always)]
    pub fn pending_reply(&self) -> Option<ReplyRef> {
        self.pending_reply
    }

    /// The call it must answer now `reply`; the one it had, if any.
    #[inline(always)]
    pub fn replace_pending_reply(&mut self, reply: Option<ReplyRef>) -> Option<ReplyRef> {
        core::mem::replace(&mut self.pending_reply, reply)
    }

    #[inline(always)]
    pub fn take_pending_reply(&mut self) -> Option<ReplyRef> {
        self.pending_reply.take()
    }

    #[inline(always)]
    pub fn path_cache(&self) -> &PathCache {
        &self.path_cache
    }

    pub fn path_cache_mut(&mut self) -> &mut PathCache {
        &mut self.path_cache
    }

    /// The page registered as its IPC buffer.
    pub fn ipc_buffer(&self) -> Option<usize> {
        self.ipc_buffer
    }

    /// Register `page` as its IPC buffer (`None`: none); it is checked again at next use.
    pub fn set_ipc_buffer(&mut self, page: Option<usize>) {
        self.ipc_buffer = page;
        self.ipc_buffer_checked = None;
    }

    /// The frame holding this thread's IPC buffer, readable and writable throughout in
    /// `space` (its process's): checked and translated again only when `space` lost a
    /// region or rights since the last time. The frame stays this page's while the epoch
    /// does: pages change only by regions going or losing rights, which moves it on.
    #[inline]
    pub fn ipc_buffer_frame(&mut self, space: &AddressSpace) -> Option<PhysAddr> {
        match self.ipc_buffer_checked {
            Some((epoch, frame)) if epoch == space.epoch() => Some(frame),
            _ => self.check_ipc_buffer(space),
        }
    }

    #[cold]
    fn check_ipc_buffer(&mut self, space: &AddressSpace) -> Option<PhysAddr> {
        let buffer = self.ipc_buffer?;
        space.check_access(buffer, PAGE_SIZE, false).ok()?;
        space.check_access(buffer, PAGE_SIZE, true).ok()?;
        let frame = space.translate(buffer)?;
        self.ipc_buffer_checked = Some((space.epoch(), frame));
        Some(frame)
    }

    /// Number a new call by this thread (`tid`) through `port`: how its answer is recognised.
    pub fn next_call(&mut self, tid: Tid, port: PortId) -> ReplyRef {
        ReplyRef {
            caller: tid,
            seq: self.next_seq(),
            port,
        }
    }

    /// Number a new call or fault message by this thread.
    pub fn next_seq(&mut self) -> u64 {
        self.call_seq += 1;
        self.call_seq
    }

    /// Write a message's result, badge, info and words into the saved registers of this
    /// thread, parked in a receiving syscall, as its syscall's outcome: it may now return
    /// to user space straight from them.
    #[inline(always)]
    pub fn load_registers(&mut self, result: usize, badge: u64, info: u64, words: [u64; 4]) {
        // SAFETY: the thread is blocked inside a syscall, so the top of its kernel stack holds
        // the frame its syscall entry saved, and nothing else refers to it until it runs.
        let saved = unsafe { &mut *self.saved_user_frame() };
        saved.rax = encode_result(Ok(result)) as u64;
        saved.rdi = badge;
        saved.rsi = info;
        [saved.rdx, saved.r10, saved.r8, saved.r9] = words;
    }

    pub fn stack_top(&self) -> usize {
        self.stack.top()
    }

    /// Where this thread's user registers were saved when it entered the kernel.
    pub fn saved_user_frame(&self) -> *mut TrapFrame {
        (self.stack.top() - core::mem::size_of::<TrapFrame>()) as *mut TrapFrame
    }
}

/// A port's line of receivers is linked through the thread records themselves.
impl crate::ipc::port::Receiver for Thread {
    /// The thread after it among its port's receivers.
    #[inline(always)]
    fn next_receiver(&self) -> Tid {
        self.next_receiver
    }

    #[inline(always)]
    fn set_next_receiver(&mut self, next: Tid) {
        self.next_receiver = next;
    }
}
