//! A page unmapped on one core is gone on every other the moment the unmap returns: a
//! thread on another core writes it in a loop, this one unmaps it, and no write may land
//! after that (a stale TLB entry there would let them through to the still-live frame).

use alloc::format;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use keel_abi::cap::rights;
use keel_abi::layout::PAGE_SIZE;
use keel_abi::{SysInfo, prot, vector};
use keel_rt::ipc::{Message, Port, Received};
use keel_rt::mem::Memory;
use keel_rt::{process, sys, thread, time};

use crate::{Failure, OrSetup, expect_eq, read_word, write_word};

/// Unmaps, faults and maps again this many times.
const ROUNDS: usize = 50;
/// How long to wait for the writer to write, or to fault.
const WAIT: Duration = Duration::from_secs(5);
/// The page-fault error code of a user-mode write to a page that is not present.
const USER_WRITE_NOT_PRESENT: i64 = 6;
const RW: usize = prot::READ | prot::WRITE;
/// Where the writer's page goes, far from where the kernel chooses.
const TARGET: usize = 0x0000_4c00_0000_0000;

pub fn unmap_across() -> Result<i32, Failure> {
    let cores = sys::sys_info(SysInfo::Cores).or_setup("sys_info(Cores)")?;
    let here = thread::core();
    let there = (here + 1) % cores;
    let object = Memory::create(PAGE_SIZE).or_setup("mem_create")?;
    // The writer's mapping comes and goes; this process's view of the frame stays.
    let view = object.map(RW).or_setup("mapping the view")?.addr() as *mut u64;
    let target = object
        .derive(rights::MAP_READ | rights::MAP_WRITE)
        .or_setup("cap_derive")?;
    // A fixed address: one the kernel chooses could be handed to this process's heap
    // once unmapped, and the writer would write on there without a fault.
    let at = target
        .map_at(TARGET, RW)
        .or_setup("mapping the target")?
        .addr();
    let port = Port::create(1).or_setup("port_create")?;
    process::set_fault_handler(process::id(), port).or_setup("fault_handler_set")?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let writer = thread::spawn_on(1 << there, process::current_priority(), move || {
        let mut n = 0u64;
        while !stopped.load(Ordering::Relaxed) {
            n += 1;
            write_word(at as *mut u64, n);
        }
    })
    .or_setup("starting the writer")?;
    let home = writer.thread().info().or_setup("thread_info")?.core as usize;
    expect_eq("the writer's core", home, there)?;
    for round in 0..ROUNDS {
        let before = read_word(view);
        wait(|| read_word(view) != before, "the writer writes")?;
        // SAFETY: only the writer uses the mapping, through single instructions that fault
        // honestly once it is gone; no reference points into it.
        unsafe { sys::mem_unmap(at, PAGE_SIZE) }.or_setup("mem_unmap")?;
        let at_unmap = read_word(view);
        let received = match port.receive(Some(WAIT)) {
            Err(sys::Error::TimedOut) => {
                let late = read_word(view) - at_unmap;
                return Err(Failure::check(format!(
                    "round {round}: no fault within {WAIT:?} of the unmap, \
                     and {late} writes landed after it returned"
                )));
            }
            received => received.or_setup("receiving the fault")?,
        };
        let reply = match received {
            Received::Message {
                mut message,
                reply: Some(reply),
                ..
            } => {
                drop(message.take_fault_thread());
                let fault = message
                    .fault()
                    .ok_or_else(|| Failure::check(format!("not a fault: {message:?}")))?;
                expect_eq(
                    "the fault's (vector, error code, address)",
                    (fault.vector, fault.error_code, fault.address),
                    (vector::PAGE_FAULT, USER_WRITE_NOT_PRESENT, at as u64),
                )?;
                reply
            }
            other => return Err(Failure::check(format!("expected a fault, got {other:?}"))),
        };
        // The writer is stopped at its fault: whatever it wrote is in already.
        expect_eq(
            &format!("round {round}: the word written after the unmap returned"),
            read_word(view),
            at_unmap,
        )?;
        expect_eq(
            "mapping the target again where it was",
            target.map_at(at, RW).map(|m| m.addr()),
            Ok(at),
        )?;
        reply
            .send(&Message::resume(None))
            .or_setup("answering the fault")?;
    }
    stop.store(true, Ordering::Relaxed);
    wait(|| writer.is_finished(), "the writer stops")?;
    process::clear_fault_handler(process::id()).or_setup("fault_handler_set")?;
    Ok(0)
}

fn wait(mut done: impl FnMut() -> bool, what: &str) -> Result<(), Failure> {
    let deadline = time::ticks() + time::ticks_in(WAIT);
    while !done() {
        if time::ticks() > deadline {
            return Err(Failure::check(format!("timed out waiting until {what}")));
        }
        time::sleep(Duration::from_millis(1));
    }
    Ok(())
}
