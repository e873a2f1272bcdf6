//! A user thread's first FPU or SSE instruction since another thread's registers were
//! loaded traps here (#NM, CR0.TS set by the switch): the owner's registers go to its own
//! area, the running thread's come back from its own (or start fresh), and it owns them.
//! So no thread ever sees another's, and one that never uses them never pays for them.

use super::kernel;

pub fn claim() {
    let mut k = kernel();
    let k = &mut *k;
    let previous = k.sched.take_fpu();
    let current = k.sched.current();
    if previous == current {
        return;
    }
    // An owner that has ended is simply gone: its registers are overwritten below.
    if let Some(owner) = k.threads.get_mut(&previous) {
        owner.save_fpu();
    }
    if let Some(thread) = k.threads.get(&current) {
        thread.restore_fpu();
    }
}
