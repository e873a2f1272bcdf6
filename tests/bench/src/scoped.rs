//! Work that borrows from the caller, run on a thread of its own while the caller waits.
//!
//! The service benchmarks need this: the runtime's IPC (the executor's wake port, connect,
//! bootstrap) registers the runtime's own IPC buffer for the thread using it, which would
//! replace the one kbench's main thread registered. On a thread of their own, each keeps its
//! own, and the runtime's goes when the thread ends.

use alloc::boxed::Box;

use keel_abi::cap::Handle;
use keel_rt::thread;

use crate::failure::{Context, Failure};
use crate::sys::{self, FOREVER};

/// Runs `work` on a new thread of this process and returns its result. The calling thread
/// waits blocked in the kernel, so it takes no turns from the threads being measured.
pub fn run<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, Failure> {
    let done = sys::port_create(1).context("creating the thread's done port")?;
    let mut output = None;
    let result = spawn_and_wait(done, || output = Some(work()));
    sys::cap_delete(done).context("deleting the thread's done port")?;
    result?;
    output.ok_or_else(|| Failure("the thread ended without a result".into()))
}

/// Runs `job` on a new thread, which notifies `done` once `job` is over; returns when the
/// thread has finished with `job`.
fn spawn_and_wait(done: Handle, job: impl FnOnce() + Send) -> Result<(), Failure> {
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(job);
    // SAFETY: only the lifetime changes. The thread calls `job`, which consumes and frees
    // it, and only then is it counted finished; this function does not return before that
    // (see below), so nothing `job` borrows goes away while it can be used. If the thread
    // cannot be created, `job` is dropped unrun before `spawn` returns.
    let job = unsafe {
        core::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Box<dyn FnOnce() + Send + 'static>>(
            job,
        )
    };
    let thread = thread::spawn(move || {
        job();
        // A live port takes a notification; should it fail, the caller yields until the end.
        let _ = sys::port_notify(done, 1);
    })
    .context("starting a thread")?;
    // Blocked, this thread takes no turns while `job` runs. Then it yields (not sleeps: an
    // idle CPU would let virtual time jump ahead) until the thread is past `job`, which also
    // covers a failed wait: returning earlier would leave `job` running on borrowed data.
    let _ = sys::port_recv(done, FOREVER);
    while !thread.is_finished() {
        sys::thread_yield();
    }
    Ok(())
}
