//! Threads as capability objects: `thread_create` hands back a capability to the new
//! thread, through which it is looked into (READ) and controlled (MANAGE): suspended and
//! resumed, reprioritised, killed. Each right is enforced, and the capability goes stale
//! when the thread ends. (Registers at a fault: the `exception_handlers` suite.)
//!
//! The helper threads run beside the test's own thread, on its core (`beside`): they run
//! only when it gives way, as on one core, so what they did when a call returns does not
//! depend on how many cores there are.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::ControlFlow;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use keel_abi::cap::{kind, make_handle, rights};
use keel_abi::{Error, PRIORITY_LEVELS};
use keel_guest_tests::{Reported, Role, decode_result};
use keel_rt::cap;
use keel_rt::ipc::{Message, Port, Received};
use keel_rt::process::{self, Exit};
use keel_rt::sys::thread as sys;
use keel_rt::thread::{self, JoinHandle, Thread, state};
use keel_rt::time;

use crate::check::{Context, all, expect_eq, wait_until};
use crate::child;
use crate::receive::{self, WAIT};
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(threads:
    thread_create_hands_back_a_capability_to_the_thread,
    a_thread_runs_only_on_the_cores_it_is_given,
    a_suspended_thread_does_not_run_until_resumed,
    a_suspended_receiver_takes_no_messages_until_resumed,
    a_server_suspended_in_reply_and_receive_answers_once_resumed,
    receivers_in_line_are_skipped_while_suspended_and_gone_once_killed,
    lowering_a_priority_keeps_a_thread_off_the_cpu,
    killing_a_thread_ends_it_and_not_its_process,
    thread_capabilities_enforce_their_rights,
    no_thread_is_raised_above_its_process,
);

/// The calling thread's core, as a set of cores: a thread started there runs only when
/// this one gives way.
fn beside() -> u32 {
    1 << thread::core()
}

/// A thread counting as fast as it can, until stopped.
struct Spinner {
    thread: JoinHandle,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Spinner {
    fn start(priority: usize) -> Result<Spinner, String> {
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counter, stopped) = (count.clone(), stop.clone());
        let thread = thread::spawn_on(beside(), priority, move || {
            while !stopped.load(Ordering::Relaxed) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
        .context("starting the spinner")?;
        Ok(Spinner {
            thread,
            count,
            stop,
        })
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn thread(&self) -> &Thread {
        self.thread.thread()
    }

    /// Runs it again if suspended, and waits until it has stopped.
    fn stop(self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread().resume();
        wait_until("the spinner stops", || Ok(self.thread.is_finished()))
    }
}

/// A thread waiting on `port` for one message; its first word lands in `got`.
fn receiver(port: Port, got: Arc<AtomicU64>) -> Result<JoinHandle, String> {
    let thread = thread::spawn_on(beside(), process::current_priority(), move || {
        if let Ok(Received::Message { message, .. }) = port.receive(Some(WAIT)) {
            got.store(message.words[0], Ordering::Release);
        }
    })
    .context("starting the receiver")?;
    wait_until("the receiver waits on its port", || {
        let info = thread.thread().info().context("thread_info")?;
        Ok(info.state == state::BLOCKED)
    })?;
    Ok(thread)
}

fn send(port: Port, word: u64) -> Result<(), String> {
    port.send(&Message::new(1, [word, 0, 0, 0]))
        .context("port_send")
}

fn thread_create_hands_back_a_capability_to_the_thread() -> Result<(), String> {
    let port = Port::create(1).context("port_create")?;
    let got = Arc::new(AtomicU64::new(0));
    let waiting = receiver(port, got.clone())?;
    let handle = waiting.thread().handle();
    let capability = cap::info(handle).map(|i| (i.kind, i.rights));
    let info = waiting.thread().info().context("thread_info")?;
    send(port, 7)?;
    let finished = wait_until("the receiver finishes", || Ok(waiting.is_finished()));
    all([
        expect_eq(
            "(kind, rights) of the capability",
            capability,
            Ok((kind::THREAD, rights::READ | rights::MANAGE | rights::GRANT)),
        ),
        expect_eq(
            "(pid, priority, suspended) of the thread",
            (info.pid, info.priority as usize, info.suspended),
            (process::id(), process::current_priority(), 0),
        ),
        expect_eq(
            "whether its tid differs from this thread's",
            info.tid != thread::id(),
            true,
        ),
        finished,
        // Finished is its last store; on another core its exit may come a moment later.
        wait_until(
            "the capability to go stale once the thread has ended",
            || Ok(waiting.thread().info().map(drop) == Err(Error::StaleHandle)),
        ),
    ])
}

/// Each core in turn, a core the machine lacks (one of the process's instead), one beyond
/// every machine's, and (from a process on core 0 alone) a core outside the process's.
fn a_thread_runs_only_on_the_cores_it_is_given() -> Result<(), String> {
    let cores = keel_rt::sys::sys_info(keel_abi::SysInfo::Cores).context("sys_info(Cores)")?;
    let priority = process::current_priority();
    // (the core it said it ran on, the core thread_info gives), once it ended. It waits for
    // word that its home was read: on another core it could otherwise end, and its
    // capability go, first.
    let run_on = |cpus: u32| -> Result<(usize, u32), String> {
        let seen = Arc::new(AtomicU64::new(u64::MAX));
        let at = seen.clone();
        let go = Port::create(1).context("port_create")?;
        let started = thread::spawn_on(cpus, priority, move || {
            at.store(thread::core() as u64, Ordering::Release);
            let _ = go.receive(None);
        })
        .context("thread::spawn_on")?;
        let home = started.thread().info().context("thread_info");
        send(go, 0)?;
        wait_until("the thread runs", || Ok(started.is_finished()))?;
        let _ = go.delete();
        Ok((seen.load(Ordering::Acquire) as usize, home?.core))
    };
    for core in 0..cores {
        expect_eq(
            "(core run on, home core) of a thread given one",
            run_on(1 << core)?,
            (core, core as u32),
        )?;
    }
    if cores < keel_abi::MAX_CORES {
        let (ran, home) = run_on(1 << (keel_abi::MAX_CORES - 1))?;
        if ran >= cores || ran != home as usize {
            return Err(format!(
                "a thread given only a core this machine lacks ran on {ran}, home {home}"
            ));
        }
    }
    let beyond = thread::spawn_on(1 << keel_abi::MAX_CORES, priority, || {}).map(drop);
    let pid = child::spawn_on(Role::ThreadCores, "", 1 << 0)?;
    let code = match process::wait(pid).context("waiting for kchild")? {
        Exit::Exited(code) => code,
        other => return Err(format!("kchild thread-cores {other}")),
    };
    all([
        expect_eq(
            "a thread on a core beyond MAX_CORES",
            beyond,
            Err(Error::InvalidArgument),
        ),
        expect_eq(
            "a thread on a core its process may not use",
            decode_result(code, 0),
            Reported::Failed(Error::PermissionDenied),
        ),
        expect_eq(
            "a thread on its process's core",
            decode_result(code, 1),
            Reported::Succeeded,
        ),
    ])
}

fn a_suspended_thread_does_not_run_until_resumed() -> Result<(), String> {
    // Below this thread's priority, beside it, it runs only while this one sleeps.
    let spinner = Spinner::start(process::current_priority() - 1)?;
    wait_until("the spinner runs", || Ok(spinner.count() > 0))?;
    spinner.thread().suspend().context("thread_suspend")?;
    let at_suspend = spinner.count();
    time::sleep(Duration::from_millis(30));
    let after_sleep = spinner.count();
    let info = spinner.thread().info().map(|i| (i.state, i.suspended));
    spinner.thread().resume().context("thread_resume")?;
    let runs_again = wait_until("the resumed spinner counts again", || {
        Ok(spinner.count() > after_sleep)
    });
    let stopped = spinner.stop();
    all([
        expect_eq("the count over 30 ms suspended", after_sleep, at_suspend),
        expect_eq(
            "(state, suspended) while suspended",
            info,
            Ok((state::RUNNABLE, 1)),
        ),
        runs_again,
        stopped,
    ])
}

fn a_suspended_receiver_takes_no_messages_until_resumed() -> Result<(), String> {
    const FIRST: u64 = 0xf1;
    const SECOND: u64 = 0x5e;
    let port = Port::create(4).context("port_create")?;
    let got = Arc::new(AtomicU64::new(0));
    let waiting = receiver(port, got.clone())?;
    waiting.thread().suspend().context("thread_suspend")?;
    send(port, FIRST)?;
    time::sleep(Duration::from_millis(10));
    // Still queued: this thread can take it.
    let taken = receive::waiting(port, "the message sent while the receiver is suspended")
        .map(|got| got.message.words[0]);
    let untouched = got.load(Ordering::Acquire);
    waiting.thread().resume().context("thread_resume")?;
    send(port, SECOND)?;
    let delivered = wait_until("the resumed receiver has the second message", || {
        Ok(got.load(Ordering::Acquire) == SECOND)
    });
    all([
        expect_eq("the queued message", taken, Ok(FIRST)),
        expect_eq("what the suspended receiver got", untouched, 0),
        delivered,
    ])
}

/// A server loop between calls waits in reply-and-receive, parked by the fast path (its
/// kernel stack given up). Suspended there, it leaves a call queued; resumed, it takes the
/// call through the slow path and its parked syscall finishes from its inbox.
fn a_server_suspended_in_reply_and_receive_answers_once_resumed() -> Result<(), String> {
    let port = Port::create(4).context("port_create")?;
    let priority = process::current_priority();
    let server = thread::spawn_on(beside(), priority, move || {
        let _ = port.serve(|request| {
            let answer = Message::new(0, [request.message.words[0] + 1, 0, 0, 0]);
            ControlFlow::Continue(Some(answer))
        });
    })
    .context("starting the server")?;
    let call = |word: u64| {
        port.call(&Message::new(1, [word, 0, 0, 0]))
            .map(|m| m.words[0])
    };
    let warm = call(1);
    server.thread().suspend().context("thread_suspend")?;
    let answered = Arc::new(AtomicU64::new(0));
    let answer = answered.clone();
    thread::spawn_on(beside(), priority, move || {
        if let Ok(word) = port
            .call(&Message::new(1, [10, 0, 0, 0]))
            .map(|m| m.words[0])
        {
            answer.store(word, Ordering::Release);
        }
    })
    .context("starting the caller")?;
    time::sleep(Duration::from_millis(30));
    let while_suspended = answered.load(Ordering::Acquire);
    server.thread().resume().context("thread_resume")?;
    let after = wait_until("the resumed server answers", || {
        Ok(answered.load(Ordering::Acquire) == 11)
    });
    let again = call(20);
    all([
        expect_eq("a call before the suspension", warm, Ok(2)),
        expect_eq("the answer while suspended", while_suspended, 0),
        after,
        expect_eq("a call after", again, Ok(21)),
    ])
}

/// Five threads wait on one port in line. Suspending the first, middle and last and
/// killing the second leaves only the fourth to take a message; resumed, the three join the
/// back of the line in the order they were resumed.
fn receivers_in_line_are_skipped_while_suspended_and_gone_once_killed() -> Result<(), String> {
    let port = Port::create(8).context("port_create")?;
    let got: Vec<Arc<AtomicU64>> = (0..5).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let mut waiting = Vec::new();
    for slot in &got {
        waiting.push(receiver(port, slot.clone())?);
    }
    for i in [0, 2, 4] {
        waiting[i].thread().suspend().context("thread_suspend")?;
    }
    waiting[1].thread().kill().context("thread_kill")?;
    let words = || {
        got.iter()
            .map(|w| w.load(Ordering::Acquire))
            .collect::<Vec<_>>()
    };
    send(port, 10)?;
    let first = wait_until("the fourth receiver has the message", || {
        Ok(words()[3] == 10)
    });
    let after_first = words();
    for i in [4, 0, 2] {
        waiting[i].thread().resume().context("thread_resume")?;
    }
    for word in [11, 12, 13] {
        send(port, word)?;
    }
    let rest = wait_until("the resumed receivers have their messages", || {
        Ok(words().iter().filter(|&&w| w != 0).count() == 4)
    });
    all([
        first,
        expect_eq(
            "the words after one message",
            after_first,
            vec![0, 0, 0, 10, 0],
        ),
        rest,
        expect_eq(
            "the words after three more",
            words(),
            vec![12, 0, 13, 10, 11],
        ),
    ])
}

fn lowering_a_priority_keeps_a_thread_off_the_cpu() -> Result<(), String> {
    let priority = process::current_priority();
    let spinner = Spinner::start(priority)?;
    // Each yield lets an equal-priority spinner run out its time slice.
    let moves_over_yields = |spinner: &Spinner| {
        let before = spinner.count();
        for _ in 0..3 {
            thread::yield_now();
        }
        spinner.count() != before
    };
    let shared = moves_over_yields(&spinner);
    let home = spinner.thread().info().map(|i| i.core as usize);
    let lowered = spinner.thread().set_priority(priority - 1);
    let after_lowering = moves_over_yields(&spinner);
    let info = spinner.thread().info().map(|i| i.priority as usize);
    let stopped = spinner.stop();
    all([
        expect_eq("the spinner's core", home, Ok(thread::core())),
        expect_eq("whether it ran at equal priority", shared, true),
        expect_eq("lowering its priority", lowered, Ok(())),
        expect_eq("whether it ran once lower", after_lowering, false),
        expect_eq("its priority", info, Ok(priority - 1)),
        stopped,
    ])
}

fn killing_a_thread_ends_it_and_not_its_process() -> Result<(), String> {
    let port = Port::create(1).context("port_create")?;
    let waiting = receiver(port, Arc::new(AtomicU64::new(0)))?;
    let threads = || process::info(process::id()).map(|i| i.threads);
    let before = threads().context("process_info")?;
    let killed = waiting.thread().kill();
    all([
        expect_eq("killing it", killed, Ok(())),
        expect_eq("this process's threads", threads(), Ok(before - 1)),
        expect_eq(
            "the capability once it is killed",
            waiting.thread().info().map(drop),
            Err(Error::StaleHandle),
        ),
        expect_eq(
            "whether it finished its closure",
            waiting.is_finished(),
            false,
        ),
    ])
}

fn thread_capabilities_enforce_their_rights() -> Result<(), String> {
    let port = Port::create(1).context("port_create")?;
    let waiting = receiver(port, Arc::new(AtomicU64::new(0)))?;
    let full = waiting.thread().handle();
    let read_only = cap::derive(full, rights::READ, 0).context("cap_derive")?;
    let manage_only = cap::derive(full, rights::MANAGE, 0).context("cap_derive")?;
    let tid = waiting.thread().info().context("thread_info")?.tid;
    let results = [
        (
            "thread_info with READ",
            sys::thread_info(read_only).map(|i| i.tid),
            Ok(tid),
        ),
        (
            "thread_info without READ",
            sys::thread_info(manage_only).map(|i| i.tid),
            Err(Error::MissingRight),
        ),
        (
            "thread_info through a port capability",
            sys::thread_info(port.handle()).map(|i| i.tid),
            Err(Error::WrongType),
        ),
        (
            "thread_info through a forged handle",
            sys::thread_info(make_handle(4000, 0)).map(|i| i.tid),
            Err(Error::InvalidHandle),
        ),
    ];
    let controls = [
        ("thread_suspend", sys::thread_suspend(read_only)),
        ("thread_resume", sys::thread_resume(read_only)),
        (
            "thread_set_priority",
            sys::thread_set_priority(read_only, 1),
        ),
        ("thread_kill", sys::thread_kill(read_only)),
    ];
    let bounds = [
        (
            "a priority that does not exist",
            sys::thread_set_priority(manage_only, PRIORITY_LEVELS),
            Err(Error::InvalidArgument),
        ),
        (
            "reading the registers of a thread not stopped at a fault",
            sys::thread_regs_read(full).map(drop),
            Err(Error::NotStopped),
        ),
    ];
    send(port, 1)?;
    wait_until("the receiver finishes", || Ok(waiting.is_finished()))?;
    // Finished is its last store; on another core its exit may come a moment later.
    let gone = wait_until(
        "a derived copy to go stale once the thread has ended",
        || Ok(sys::thread_info(read_only).map(drop) == Err(Error::StaleHandle)),
    );
    all(results
        .into_iter()
        .map(|(what, result, expected)| expect_eq(what, result, expected))
        .chain(controls.into_iter().map(|(what, result)| {
            expect_eq(
                &format!("{what} without MANAGE"),
                result,
                Err(Error::MissingRight),
            )
        }))
        .chain(
            bounds
                .into_iter()
                .map(|(what, result, expected)| expect_eq(what, result, expected)),
        )
        .chain([gone]))
}

/// kchild below this process's priority tries to raise a thread of its own above it.
fn no_thread_is_raised_above_its_process() -> Result<(), String> {
    let pid = child::spawn_at(Role::RaisePriority, "", process::current_priority() - 1)?;
    let code = match process::wait(pid).context("waiting for kchild")? {
        Exit::Exited(code) => code,
        other => return Err(format!("kchild raise-priority {other}")),
    };
    all([
        expect_eq(
            "raising a thread above its process",
            decode_result(code, 0),
            Reported::Failed(Error::PermissionDenied),
        ),
        expect_eq(
            "setting it to its process's priority",
            decode_result(code, 1),
            Reported::Succeeded,
        ),
    ])
}
