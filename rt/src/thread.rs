//! Threads: run a closure on a stack of its own, in this process, and control any thread
//! through a capability to it.
//!
//! Each thread gets a freshly mapped stack whose lowest page is read-only, so an overflow
//! faults instead of scribbling on a neighbouring mapping. When the closure returns, the
//! thread unmaps its own stack and exits.
//!
//! A [`Thread`] is a capability: the one `spawn` returns (in the [`JoinHandle`]), or the
//! one a fault message brings its handler ([`Message::take_fault_thread`]). With READ it
//! tells the thread's state and, at a fault, its registers; with MANAGE it suspends,
//! resumes, reprioritises or kills the thread and changes its registers at a fault.
//!
//! [`Message::take_fault_thread`]: crate::ipc::Message::take_fault_thread

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use keel_abi::cap::Handle;
use keel_abi::layout::PAGE_SIZE;
pub use keel_abi::thread::{Registers, ThreadInfo, state};
use keel_abi::{SysInfo, Syscall, prot};

use crate::sys::{self, Error};
use crate::{process, time};

/// A thread id.
pub type Tid = u32;

/// Usable stack per thread.
const STACK_SIZE: usize = 64 * 1024;
/// The read-only page under each stack.
const GUARD_SIZE: usize = PAGE_SIZE;

/// The calling thread's id.
pub fn id() -> Tid {
    sys::sys_info(SysInfo::Tid).expect("sys_info(Tid) cannot fail") as Tid
}

/// Gives the rest of this time slice to another thread.
pub fn yield_now() {
    sys::thread_yield();
}

/// Ends the calling thread; the last thread to end ends the process with `code`.
pub fn exit(code: i32) -> ! {
    sys::thread_exit(code)
}

/// Starts `main` on a new thread at this process's priority.
pub fn spawn<F: FnOnce() + Send + 'static>(main: F) -> Result<JoinHandle, Error> {
    spawn_with_priority(process::current_priority(), main)
}

/// The core the calling thread runs on: its home, which it never leaves.
pub fn core() -> usize {
    sys::sys_info(SysInfo::Core).expect("sys_info(Core) cannot fail")
}

/// Starts `main` on a new thread at `priority` (at most the process's own).
pub fn spawn_with_priority<F: FnOnce() + Send + 'static>(
    priority: usize,
    main: F,
) -> Result<JoinHandle, Error> {
    spawn_on(0, priority, main)
}

/// Starts `main` on a new thread at `priority`, at home on one of `cpus` (bit `n` for core
/// `n`: a subset of the process's cores, below [`keel_abi::MAX_CORES`]; 0: any of them).
/// A thread never leaves its home, so `1 << core()` keeps it beside the caller: it runs
/// only when the caller gives way.
pub fn spawn_on<F: FnOnce() + Send + 'static>(
    cpus: u32,
    priority: usize,
    main: F,
) -> Result<JoinHandle, Error> {
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let stack = Stack::map()?;
    let start = Box::into_raw(Box::new(Start {
        main: Box::new(move || {
            main();
            flag.store(true, Ordering::Release);
        }),
        stack,
    }));
    // SAFETY: `thread_entry` is built for a bare stack; the stack is a fresh mapping only
    // the new thread uses; `arg` is the `Start` it takes ownership of.
    let created = unsafe {
        sys::thread_create(
            thread_entry as *const () as usize,
            stack.top(),
            start as usize,
            priority,
            cpus,
        )
    };
    match created {
        Ok(handle) => Ok(JoinHandle {
            thread: Thread::from_handle(handle),
            finished,
        }),
        Err(error) => {
            // SAFETY: the thread was never created, so the `Start` and its stack are still ours.
            unsafe {
                drop(Box::from_raw(start));
                stack.unmap();
            }
            Err(error)
        }
    }
}

/// A running thread; [`join`](JoinHandle::join) waits for its closure to return.
#[derive(Debug)]
pub struct JoinHandle {
    thread: Thread,
    finished: Arc<AtomicBool>,
}

impl JoinHandle {
    /// The capability to the thread (it goes stale once the thread has ended).
    pub fn thread(&self) -> &Thread {
        &self.thread
    }

    /// Whether its closure has returned.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Waits (sleeping a millisecond at a time) until its closure has returned.
    pub fn join(self) {
        while !self.is_finished() {
            time::sleep(Duration::from_millis(1));
        }
    }
}

/// A capability to a thread, of this process or another. Dropping it deletes the
/// capability, not the thread; once the thread ends, every call says
/// [`Error::StaleHandle`].
#[derive(Debug)]
pub struct Thread {
    handle: Handle,
}

impl Thread {
    /// Takes ownership of `handle`, a thread capability of this process.
    pub fn from_handle(handle: Handle) -> Thread {
        Thread { handle }
    }

    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// Its id, process, state, priority and CPU time (needs READ).
    pub fn info(&self) -> Result<ThreadInfo, Error> {
        sys::thread::thread_info(self.handle)
    }

    /// Keeps it off the CPU until [`resume`](Thread::resume)d: it takes no messages
    /// meanwhile, and what wakes it waits until then (needs MANAGE).
    pub fn suspend(&self) -> Result<(), Error> {
        sys::thread::thread_suspend(self.handle)
    }

    pub fn resume(&self) -> Result<(), Error> {
        sys::thread::thread_resume(self.handle)
    }

    /// At most its process's priority and this one's (needs MANAGE).
    pub fn set_priority(&self, priority: usize) -> Result<(), Error> {
        sys::thread::thread_set_priority(self.handle, priority)
    }

    /// Ends it; the last thread of a process takes the process with it (needs MANAGE).
    pub fn kill(&self) -> Result<(), Error> {
        sys::thread::thread_kill(self.handle)
    }

    /// Its registers while it is stopped at a fault, else [`Error::NotStopped`] (needs READ).
    pub fn registers(&self) -> Result<Registers, Error> {
        sys::thread::thread_regs_read(self.handle)
    }

    /// Changes its registers while it is stopped at a fault, for when it resumes (needs
    /// MANAGE).
    ///
    /// # Safety
    ///
    /// A thread of this process resumes with `regs`: they must be a state its code can
    /// continue from.
    pub unsafe fn set_registers(&self, regs: &Registers) -> Result<(), Error> {
        // SAFETY: forwarded from the caller.
        unsafe { sys::thread::thread_regs_write(self.handle, regs) }
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        let _ = sys::ipc::cap_delete(self.handle);
    }
}

/// A thread's stack: `[base, base + len)`, the guard page at `base`.
#[derive(Clone, Copy)]
#[repr(C)]
struct Stack {
    base: usize,
    len: usize,
}

impl Stack {
    fn map() -> Result<Stack, Error> {
        let len = GUARD_SIZE + STACK_SIZE;
        let base = sys::mem_map(0, len, prot::READ | prot::WRITE)?;
        let stack = Stack { base, len };
        // SAFETY: nothing uses the fresh mapping yet.
        if let Err(error) = unsafe { sys::mem_protect(base, GUARD_SIZE, prot::READ) } {
            // SAFETY: as above.
            unsafe { stack.unmap() };
            return Err(error);
        }
        Ok(stack)
    }

    fn top(&self) -> usize {
        self.base + self.len
    }

    /// # Safety
    ///
    /// No thread may run on the stack any more.
    unsafe fn unmap(self) {
        // SAFETY: forwarded; the range is exactly what `map` mapped.
        let _ = unsafe { sys::mem_unmap(self.base, self.len) };
    }
}

/// What a new thread receives in `rdi`: its closure and its own stack.
struct Start {
    main: Box<dyn FnOnce() + Send>,
    stack: Stack,
}

// A new thread starts here with `rdi` = its `Start` and `rsp` = the 16-byte-aligned stack top,
// nothing pushed: `call` makes a SysV frame. `thread_main` returns the stack in rax:rdx; the
// thread then unmaps it and exits without touching it again (syscalls use no user stack).
global_asm!(
    ".globl keel_rt_thread_entry",
    ".type keel_rt_thread_entry, @function",
    "keel_rt_thread_entry:",
    "    xor %ebp, %ebp",
    "    call {thread_main}",
    "    mov %rax, %rdi",
    "    mov %rdx, %rsi",
    "    mov ${mem_unmap}, %eax",
    "    syscall",
    "    xor %edi, %edi",
    "    mov ${thread_exit}, %eax",
    "    syscall",
    "    ud2",
    thread_main = sym thread_main,
    mem_unmap = const Syscall::MemUnmap as usize,
    thread_exit = const Syscall::ThreadExit as usize,
    options(att_syntax)
);

unsafe extern "C" {
    #[link_name = "keel_rt_thread_entry"]
    safe fn thread_entry();
}

/// Runs a new thread's closure; returns its stack for the entry code to unmap.
extern "C" fn thread_main(start: *mut Start) -> Stack {
    // SAFETY: `spawn_with_priority` handed over ownership of this `Start` through `rdi`.
    let start = unsafe { Box::from_raw(start) };
    let stack = start.stack;
    (start.main)();
    // The thread's IPC buffer, if it got one, goes with it.
    crate::ipc::thread_ending();
    stack
}
