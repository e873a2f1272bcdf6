//! Threads: a kernel stack, the saved kernel stack pointer, a state and a priority.
//!
//! A thread's user registers live in the trap frame at the top of its kernel stack while it
//! is in the kernel; its kernel registers are parked by `switch_context` when it is not
//! running.

use crate::arch::entry::prepare_new_stack;
use crate::arch::gdt::{KERNEL_CODE, KERNEL_DATA, USER_CODE, USER_DATA};
use crate::arch::trap::TrapFrame;
use crate::id::Pid;
use crate::ipc::fastpath::PathCache;
use crate::ipc::{Delivered, Delivery, PortId, ReplyRef};
use crate::mm::space::AddressSpace;
use crate::mm::stacks::KernelStack;
use crate::mm::{PAGE_SIZE, PhysAddr};
use keel_abi::Error;

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

pub struct Thread {
    pub process: Pid,
    pub state: ThreadState,
    pub priority: usize,
    /// Kept off the CPU by `thread_suspend`: it may wake, but does not run until resumed.
    pub suspended: bool,
    /// Where `switch_context` parked this thread's kernel stack pointer.
    pub saved_rsp: u64,
    pub cpu_ticks: u64,
    /// Ticks that were left of its slice when it was preempted (0: none): the first tick it
    /// runs again cuts its new slice down to them.
    pub kept_slice: u32,
    /// The page registered with `ipc_buffer_set`.
    pub ipc_buffer: Option<usize>,
    /// The address-space epoch at which the whole IPC buffer was last found readable and
    /// writable, and the frame that held it then (see [`Thread::ipc_buffer_frame`]).
    pub ipc_buffer_checked: Option<(u64, PhysAddr)>,
    /// What woke this thread from a receive, call or fault.
    pub inbox: Option<Delivery>,
    /// The call received last and not answered yet.
    pub pending_reply: Option<ReplyRef>,
    /// The thread after this one among its port's receivers (see
    /// [`Receivers`](crate::ipc::port::Receivers)).
    pub next_receiver: Tid,
    /// Numbers this thread's calls, so a late answer to an earlier one is recognised.
    pub call_seq: u64,
    pub path_cache: PathCache,
    /// Set when the thread blocked in this IPC syscall with nothing left on its kernel stack
    /// but its trap frame: resuming it means returning to user space (see
    /// [`park`](crate::sched::park)).
    pub parked_in: Option<Delivered>,
    /// What CR3 loads for its process: the page-table root and PCID (`None` for the idle
    /// thread, which runs in any).
    pub root: Option<u64>,
    stack: KernelStack,
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
        })
    }

    /// The frame holding this thread's IPC buffer, readable and writable throughout in
    /// `space` (its process's): checked and translated again only when `space` lost a
    /// region or rights since the last time. The frame stays this page's while the epoch
    /// does: pages change only by regions going or losing rights, which moves it on.
    #[inline]
    pub fn ipc_buffer_frame(&mut self, space: &mut AddressSpace) -> Option<PhysAddr> {
        match self.ipc_buffer_checked {
            Some((epoch, frame)) if epoch == space.epoch() => Some(frame),
            _ => self.check_ipc_buffer(space),
        }
    }

    #[cold]
    fn check_ipc_buffer(&mut self, space: &mut AddressSpace) -> Option<PhysAddr> {
        let buffer = self.ipc_buffer?;
        space.check_access(buffer, PAGE_SIZE, false).ok()?;
        space.check_access(buffer, PAGE_SIZE, true).ok()?;
        let frame = space.translate(buffer)?;
        self.ipc_buffer_checked = Some((space.epoch(), frame));
        Some(frame)
    }

    /// Number a new call by this thread (`tid`) through `port`: how its answer is recognised.
    pub fn next_call(&mut self, tid: Tid, port: PortId) -> ReplyRef {
        self.call_seq += 1;
        ReplyRef {
            caller: tid,
            seq: self.call_seq,
            port,
        }
    }

    pub fn stack_top(&self) -> usize {
        self.stack.top()
    }

    /// Where this thread's user registers were saved when it entered the kernel.
    pub fn saved_user_frame(&self) -> *mut TrapFrame {
        (self.stack.top() - core::mem::size_of::<TrapFrame>()) as *mut TrapFrame
    }
}
