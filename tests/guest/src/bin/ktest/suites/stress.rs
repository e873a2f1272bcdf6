//! Stress on every core at once (issue 15): for [`LOAD`], threads pinned across the cores
//! call echo servers on the next core, map, write and unmap memory (every unmap shot down
//! on the cores running this process), derive and revoke memory and port capabilities,
//! share a page with a child and revoke it under the child's reads, and spawn and kill
//! children. Then every call must have been answered (a caller still waiting is a lost
//! wake-up), every worker must have got on, and once the children are gone every frame and
//! kernel object must be back. A deadlock trips the kernel lock's 1 s watchdog (a panic) or
//! the wait for the workers. `cargo test` boots it on four cores (`check::STRESS_CORES`).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use core::time::Duration;

use keel_abi::cap::rights;
use keel_abi::layout::PAGE_SIZE;
use keel_abi::{SysInfo, prot};
use keel_guest_tests::{Role, SCRATCH_ADDR, SHARED_BY_PARENT, label};
use keel_rt::cap;
use keel_rt::ipc::{Message, Port};
use keel_rt::mem::Memory;
use keel_rt::process::{self, Exit, Pid};
use keel_rt::{println, sys, thread, time};

use crate::audit::Audit;
use crate::check::{Context, ensure, expect_eq, wait_until};
use crate::child::{self, expect_page_fault_of, page_fault};
use crate::receive;
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(stress:
    every_core_under_load_answers_every_call_and_leaks_nothing,
);

/// How long the load runs, in guest time.
const LOAD: Duration = Duration::from_secs(8);
const RW: usize = prot::READ | prot::WRITE;

/// What a worker did: its steps, and the first way one failed.
#[derive(Default)]
struct Outcome {
    steps: AtomicU64,
    failure: AtomicPtr<String>,
}

impl Outcome {
    fn fail(&self, why: String) {
        let why = Box::into_raw(Box::new(why));
        if self
            .failure
            .compare_exchange(ptr::null_mut(), why, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: not published: this thread still owns it.
            drop(unsafe { Box::from_raw(why) });
        }
    }

    fn failure(&self) -> Option<String> {
        let why = self.failure.swap(ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: taken out of the slot, so owned here alone.
        (!why.is_null()).then(|| *unsafe { Box::from_raw(why) })
    }
}

/// A thread on one core repeating `step` until stopped or it fails.
struct Worker {
    what: String,
    thread: thread::JoinHandle,
    outcome: Arc<Outcome>,
}

fn start(
    what: String,
    core: usize,
    stop: &Arc<AtomicBool>,
    mut step: impl FnMut(u64) -> Result<(), String> + Send + 'static,
) -> Result<Worker, String> {
    let outcome = Arc::new(Outcome::default());
    let (stopped, done) = (stop.clone(), outcome.clone());
    let thread = thread::spawn_on(1 << core, process::current_priority(), move || {
        let mut i = 0;
        while !stopped.load(Ordering::Relaxed) {
            if let Err(why) = step(i) {
                done.fail(why);
                return;
            }
            i += 1;
            done.steps.store(i, Ordering::Relaxed);
        }
    })
    .context(&format!("starting the {what}"))?;
    Ok(Worker {
        what,
        thread,
        outcome,
    })
}

fn every_core_under_load_answers_every_call_and_leaks_nothing() -> Result<(), String> {
    let cores = sys::sys_info(SysInfo::Cores).context("sys_info(Cores)")?;
    let before = Audit::take()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    let mut workers = Vec::new();
    for core in 0..cores {
        let port = Port::create(4).context("port_create")?;
        ports.push(port);
        let server = (core + 1) % cores;
        servers.push(child::spawn_with_caps_on(
            Role::Echo,
            "",
            &[port.handle()],
            1 << server,
        )?);
        let what = format!("caller on core {core} (echo server on core {server})");
        workers.push(start(what, core, &stop, move |i| call(port, i))?);
    }
    for core in (0..cores).step_by(2) {
        workers.push(start(format!("mapper on core {core}"), core, &stop, map)?);
    }
    let sharer = format!("sharer on core {}", 1 % cores);
    workers.push(start(sharer, 1 % cores, &stop, move |i| {
        share_and_revoke(i as usize % cores)
    })?);
    let spawner = format!("spawner on core {}", (cores - 1) % cores);
    workers.push(start(spawner, cores - 1, &stop, move |i| {
        spawn_and_kill(i as usize % cores)
    })?);
    time::sleep(LOAD);
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    let mut steps = Vec::new();
    for worker in &workers {
        // A caller still waiting for its answer after WAIT lost its wake-up.
        if let Err(why) = wait_until(&format!("the {} stops", worker.what), || {
            Ok(worker.thread.is_finished())
        }) {
            failures.push(why);
        }
        if let Some(why) = worker.outcome.failure() {
            failures.push(format!("{}: {why}", worker.what));
        }
        let made = worker.outcome.steps.load(Ordering::Relaxed);
        if made == 0 {
            failures.push(format!("the {} made no step in {LOAD:?}", worker.what));
        }
        steps.push(format!("{} {made}", worker.what));
    }
    println!("stress: {} cores, {LOAD:?}: {}", cores, steps.join(", "));
    for pid in servers {
        child::kill_and_reap(pid)?;
    }
    for port in ports {
        port.delete().context("deleting a caller's port")?;
    }
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    // A finished worker's flag is its last store; its exit, and a reaped child's memory,
    // may come a moment later on another core.
    let after = Audit::settled(&before)?;
    ensure(
        after.outside_own_memory() == before.outside_own_memory(),
        || {
            format!(
                "not every frame and object is back: {}",
                before.compare(&after)
            )
        },
    )
}

/// One call to the echo server on `port`, which answers with the words plus one.
fn call(port: Port, i: u64) -> Result<(), String> {
    let answer = port
        .call(&Message::new(1, [i, !i, 0, 0]))
        .context("port_call")?;
    expect_eq(
        "the echo's words",
        [answer.words[0], answer.words[1]],
        [i.wrapping_add(1), (!i).wrapping_add(1)],
    )
}

/// Anonymous memory mapped, written, read back and unmapped; a memory object and a port
/// with derived copies revoked.
fn map(i: u64) -> Result<(), String> {
    const PAGES: usize = 4;
    let addr = sys::mem_map(0, PAGES * PAGE_SIZE, RW).context("mem_map")?;
    let word = |page: usize| (addr + page * PAGE_SIZE) as *mut u64;
    for page in 0..PAGES {
        // SAFETY: the mapping is this thread's alone until it unmaps it below.
        unsafe { word(page).write_volatile(i + page as u64) };
    }
    for page in 0..PAGES {
        // SAFETY: as above.
        let read = unsafe { word(page).read_volatile() };
        expect_eq("a word read back", read, i + page as u64)?;
    }
    // SAFETY: nothing refers to the mapping any more.
    unsafe { sys::mem_unmap(addr, PAGES * PAGE_SIZE) }.context("mem_unmap")?;

    let object = Memory::create(PAGE_SIZE).context("mem_create")?;
    let mapping = object.map(RW).context("mapping the object")?;
    // SAFETY: the object's capability lives until the end of this step.
    unsafe { mapping.as_ptr().cast::<u64>().write_volatile(i) };
    let copy = object.derive(rights::MAP_READ).context("cap_derive")?;
    let view = copy.map(prot::READ).context("mapping the copy")?;
    // SAFETY: the copy lives until the revoke below, which is after this read.
    let seen = unsafe { view.as_ptr().cast::<u64>().read_volatile() };
    expect_eq("the word through the copy", seen, i)?;
    expect_eq(
        "capabilities the memory revoke removed",
        cap::revoke(object.handle()),
        Ok(1),
    )?;
    object.delete().context("cap_delete")?;

    let port = Port::create(2).context("port_create")?;
    let sender = port.derive(rights::SEND, 0).context("cap_derive")?;
    sender
        .send(&Message::new(1, [i, 0, 0, 0]))
        .context("port_send")?;
    expect_eq(
        "capabilities the port revoke removed",
        cap::revoke(port.handle()),
        Ok(1),
    )?;
    let stale = sender.send(&Message::new(1, [0; 4]));
    ensure(stale.is_err(), || "a revoked copy could still send".into())?;
    let got = receive::waiting(port, "the message sent before the revoke")?;
    expect_eq("its word", got.message.words[0], i)?;
    port.delete().context("deleting the port")
}

/// A page shared with kchild share-page on `core`, which reads it every millisecond;
/// revoked, the child's next read faults.
fn share_and_revoke(core: usize) -> Result<(), String> {
    let memory = Memory::create(PAGE_SIZE).context("mem_create")?;
    let mapping = memory.map(RW).context("mapping the page")?;
    // SAFETY: the capability lives until the end of this step.
    unsafe {
        mapping
            .as_ptr()
            .cast::<u64>()
            .write_volatile(SHARED_BY_PARENT)
    };
    let report = Port::create(1).context("port_create")?;
    let child = child::spawn_with_caps_on(
        Role::SharePage,
        "",
        &[memory.handle(), report.handle()],
        1 << core,
    )?;
    let reported = receive::message(report, "kchild share-page's report")
        .and_then(|got| expect_eq("its label", got.message.label, label::SHARED));
    let revoked = cap::revoke(memory.handle()).context("cap_revoke");
    let faulted = expect_page_fault_of(child, Role::SharePage, SCRATCH_ADDR, page_fault::USER);
    memory.delete().context("cap_delete")?;
    report.delete().context("deleting the port")?;
    reported?;
    expect_eq("capabilities the revoke removed", revoked, Ok(1))?;
    faulted
}

/// A spinning child on `core`, killed; then one that exits by itself.
fn spawn_and_kill(core: usize) -> Result<(), String> {
    let spinner: Pid = child::spawn_on(Role::Spin, "", 1 << core)?;
    time::sleep(Duration::from_millis(1));
    child::kill_and_reap(spinner)?;
    let exits = child::spawn_on(Role::Exit, "7", 1 << core)?;
    expect_eq(
        "how kchild exit 7 ended",
        process::wait(exits).context("process_wait"),
        Ok(Exit::Exited(7)),
    )
}
