//! Faults for a handler: a process that handles its own (one thread faults, another mends
//! and resumes it), and one whose registers its handler reads and changes.

use alloc::format;
use alloc::sync::Arc;
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use keel_abi::vector;
use keel_guest_tests::{FAULT_R12, FAULT_RAX, SCRATCH_ADDR, SHARED_BY_PARENT};
use keel_rt::ipc::{Message, Port, Received};
use keel_rt::{process, thread, time};

use crate::{Failure, OrSetup, expect_eq, map_scratch, read_word, write_word};

/// How long the handler waits for the fault, and then for the resumed thread.
const WAIT: Duration = Duration::from_secs(5);
/// The page-fault error code of a user-mode read of a page that is not present.
const USER_READ_NOT_PRESENT: i64 = 4;

pub fn resume_after_mapping() -> Result<i32, Failure> {
    let port = Port::create(1).or_setup("port_create")?;
    process::set_fault_handler(process::id(), port).or_setup("fault_handler_set")?;
    let read = Arc::new(AtomicU64::new(0));
    let seen = read.clone();
    let reader = thread::spawn(move || {
        seen.store(read_word(SCRATCH_ADDR as *const u64), Ordering::Release);
    })
    .or_setup("thread::spawn")?;
    let (mut message, reply) = match port.receive(Some(WAIT)).or_setup("receiving the fault")? {
        Received::Message {
            message,
            reply: Some(reply),
            ..
        } => (message, reply),
        other => return Err(Failure::check(format!("expected a call, got {other:?}"))),
    };
    let fault = message
        .fault()
        .ok_or_else(|| Failure::check(format!("not a fault message: {message:?}")))?;
    expect_eq(
        "the fault's (vector, error code, address)",
        (fault.vector, fault.error_code, fault.address),
        (vector::PAGE_FAULT, USER_READ_NOT_PRESENT, SCRATCH_ADDR),
    )?;
    // The faulting thread's capability goes with this message.
    drop(message.take_fault_thread());
    let page = map_scratch(1)?;
    write_word(page.cast(), SHARED_BY_PARENT);
    reply
        .send(&Message::resume(None))
        .or_setup("answering the fault")?;
    let deadline = time::ticks() + time::ticks_in(WAIT);
    while !reader.is_finished() {
        if time::ticks() > deadline {
            return Err(Failure::check("the resumed thread did not finish"));
        }
        time::sleep(Duration::from_millis(1));
    }
    expect_eq(
        "what the resumed thread read",
        read.load(Ordering::Acquire),
        SHARED_BY_PARENT,
    )?;
    Ok(0)
}

/// Faults on `ud2` with known values in rax and r12, for a handler to read; its handler
/// resumes it past the instruction with a new rax, which becomes the exit code.
pub fn registers() -> Result<i32, Failure> {
    let rax: u64;
    // SAFETY: `ud2` only raises #UD; the handler changes nothing but rip, rax and flags,
    // which this block declares as outputs (flags are clobbered by default).
    unsafe { asm!("ud2", inout("rax") FAULT_RAX => rax, in("r12") FAULT_R12) };
    Ok(rax as i32)
}
