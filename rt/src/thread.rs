//! Threads: run a closure on a stack of its own, in this process.
//!
//! Each thread gets a freshly mapped stack whose lowest page is read-only, so an overflow
//! faults instead of scribbling on a neighbouring mapping. When the closure returns, the
//! thread unmaps its own stack and exits.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use keel_abi::layout::PAGE_SIZE;
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

/// Starts `main` on a new thread at `priority` (at most the process's own).
pub fn spawn_with_priority<F: FnOnce() + Send + 'static>(
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
        )
    };
    match created {
        Ok(tid) => Ok(JoinHandle { tid, finished }),
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
    tid: Tid,
    finished: Arc<AtomicBool>,
}

impl JoinHandle {
    /// The thread's id.
    pub fn id(&self) -> Tid {
        self.tid
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
