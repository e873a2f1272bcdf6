//! The roles the `system` suite's manifests start under the supervisor: a witness server,
//! its callers (one with the port a lookup gave, one connected by name so that its client
//! reconnects), a process granted nothing, one granted devices. Each talks to init
//! through handle 1 ([`keel_rt::names`]) and checks what it was promised.

use alloc::format;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::Cell;
use core::time::Duration;

use keel_abi::Error;
use keel_abi::cap::{Handle, kind, rights};
use keel_guest_tests::system::{
    CALLS_FAIL_WITHIN, RESTARTED_WITHIN, Witness, WitnessClient, serve_witness,
};
use keel_rt::executor::{self, wake};
use keel_rt::service::TransportError;
use keel_rt::sys::device;
use keel_rt::{cap, names, process, start_info, time};

use crate::{Failure, OrSetup, expect_eq};

/// Serves [`Witness`] under `name` until killed.
pub fn witness_server(name: &str) -> Result<i32, Failure> {
    names::register(name, wake::port()).or_setup("registering the service")?;
    executor::block_on(serve_witness(Server::default()))
}

#[derive(Default)]
struct Server {
    calls: Cell<u64>,
    counted: Cell<u64>,
}

impl Witness for Server {
    async fn who(&self) -> (u32, u64) {
        let calls = self.calls.get();
        self.calls.set(calls + 1);
        (process::id(), calls)
    }

    async fn who_later(&self, ms: u64) -> u32 {
        executor::sleep(Duration::from_millis(ms)).await;
        process::id()
    }

    async fn hold(&self) {
        core::future::pending().await
    }

    async fn count(&self) -> u64 {
        self.counted.set(self.counted.get() + 1);
        self.counted.get()
    }
}

pub fn witness_caller() -> Result<i32, Failure> {
    executor::block_on(call_through_a_restart())
}

fn connect(name: &str) -> Result<WitnessClient, Failure> {
    let port = names::lookup(name).or_setup("looking up a witness")?;
    WitnessClient::connect(port).map_err(|error| Failure::check(format!("connecting: {error}")))
}

async fn who(client: &WitnessClient, which: &str) -> Result<(u32, u64), Failure> {
    client
        .who()
        .await
        .map_err(|error| Failure::check(format!("asking {which} who it is: {error}")))
}

async fn call_through_a_restart() -> Result<i32, Failure> {
    let witness = connect("witness")?;
    let steady = connect("steady")?;
    let (first_pid, _) = who(&witness, "witness").await?;
    let (steady_pid, steady_calls) = who(&steady, "steady").await?;

    // Calls in flight when the witness dies, and steady called all along.
    let held: Vec<_> = (0..3)
        .map(|_| {
            let witness = witness.clone();
            executor::spawn(async move { witness.hold().await })
        })
        .collect();
    let watcher = executor::spawn(watch_steady(steady.clone(), steady_pid, steady_calls + 1));
    executor::sleep(Duration::from_millis(5)).await;
    names::kill("witness").or_setup("killing the witness through init")?;

    for call in held {
        match executor::timeout(CALLS_FAIL_WITHIN, call).await {
            Ok(Err(TransportError::ServerGone | TransportError::Disconnected)) => {}
            Ok(other) => {
                let why = format!("a call in flight to the killed witness ended {other:?}");
                return Err(Failure::check(why));
            }
            Err(_) => {
                let why = format!("a call in flight hung past {CALLS_FAIL_WITHIN:?}");
                return Err(Failure::check(why));
            }
        }
    }

    let killed_at = time::ticks();
    let witness = connect("witness")?;
    let (second_pid, calls) = who(&witness, "the restarted witness").await?;
    back_in_time(killed_at, "the witness answered again")?;
    if second_pid == first_pid || calls != 0 {
        let why = format!(
            "the witness after the kill: pid {second_pid} (before {first_pid}), {calls} calls before"
        );
        return Err(Failure::check(why));
    }

    let steady_seen = watcher.await?;
    expect_eq(
        "steady: calls answered while the witness restarted",
        steady_seen > 0,
        true,
    )?;
    let listed = names::list().or_setup("listing")?;
    let line = listed.iter().find(|l| l.name == "witness");
    expect_eq(
        "the witness in LIST",
        line.map(|l| (l.pid, l.state.as_str(), l.restarts)),
        Some((second_pid, "running", 1)),
    )?;
    Ok(0)
}

/// A failed check, saying `what` happened when, if [`RESTARTED_WITHIN`] has passed since
/// `since` (in ticks).
fn back_in_time(since: u64, what: &str) -> Result<(), Failure> {
    let took = time::ticks_to_duration(time::ticks() - since);
    if took > RESTARTED_WITHIN {
        return Err(Failure::check(format!("{what} after {took:?}")));
    }
    Ok(())
}

pub fn witness_retrier() -> Result<i32, Failure> {
    executor::block_on(retry_through_a_restart())
}

/// What a client connected by name does by itself when its server is killed and restarted.
async fn retry_through_a_restart() -> Result<i32, Failure> {
    let witness = WitnessClient::connect_named("witness")
        .map_err(|error| Failure::check(format!("connecting by name: {error}")))?;
    let (first_pid, _) = who(&witness, "witness").await?;
    expect_eq("a count before the kill", witness.count().await, Ok(1))?;
    names::kill("witness").or_setup("killing the witness through init")?;

    // The client cannot know whether the dead server ran a call, so one that is not
    // idempotent is not sent again.
    expect_eq(
        "a count after the kill",
        witness.count().await,
        Err(TransportError::ServerGone),
    )?;

    // An idempotent one is: the client finds the new start by name. Asked of a clone, to
    // see below that all clones share what it reconnected. The lookup waits for the
    // restart (300 ms of backoff) on a thread of its own: meanwhile a ticker task runs.
    let ticks = Rc::new(Cell::new(Some(0u32)));
    let counted = ticks.clone();
    executor::spawn(async move {
        while let Some(ticked) = counted.get() {
            executor::sleep(Duration::from_millis(10)).await;
            counted.set(counted.get().map(|_| ticked + 1));
        }
    });
    let asked_at = time::ticks();
    let (second_pid, calls) = who(&witness.clone(), "the witness after the kill").await?;
    back_in_time(asked_at, "the retried call was answered")?;
    let ticked = ticks.take().unwrap_or(0);
    if ticked < 10 {
        let waited = time::ticks_to_duration(time::ticks() - asked_at);
        return Err(Failure::check(format!(
            "the ticker ticked {ticked} times in the {waited:?} the reconnect took"
        )));
    }
    expect_eq(
        "(a new pid, calls the new start answered before)",
        (second_pid != first_pid, calls),
        (true, 0),
    )?;
    expect_eq(
        "a count on the new connection",
        witness.count().await,
        Ok(1),
    )?;
    retry_through_two_restarts(&witness, second_pid).await?;
    Ok(0)
}

/// How long the witness takes to answer the call that is to meet two kills.
const SLOW_ANSWER: Duration = Duration::from_millis(600);

/// An idempotent call whose server dies, and whose new server dies too while the call is
/// sent again, reaches the third: each restart is one more to get across.
async fn retry_through_two_restarts(witness: &WitnessClient, pid: u32) -> Result<(), Failure> {
    let call = executor::spawn({
        let witness = witness.clone();
        async move { witness.who_later(SLOW_ANSWER.as_millis() as u64).await }
    });
    executor::sleep(Duration::from_millis(50)).await;
    names::kill("witness").or_setup("killing the witness through init")?;
    // The call goes again to the next start; kill that one too while it holds the call.
    let next = next_start(pid).await?;
    executor::sleep(SLOW_ANSWER / 4).await;
    names::kill("witness").or_setup("killing the witness's next start")?;
    let last = next_start(next).await?;
    expect_eq("the call's answer", call.await, Ok(last))
}

/// The pid of the witness's start after the one of `pid`, once it runs.
async fn next_start(pid: u32) -> Result<u32, Failure> {
    let deadline = time::uptime() + RESTARTED_WITHIN * 2;
    while time::uptime() < deadline {
        let listed = names::list().or_setup("listing")?;
        if let Some(now) = listed
            .iter()
            .find(|l| l.name == "witness" && l.state == "running")
            && now.pid != pid
        {
            return Ok(now.pid);
        }
        executor::sleep(Duration::from_millis(5)).await;
    }
    Err(Failure::check("the witness did not come back"))
}

/// Calls `steady` until its start of `pid` has answered a while, checking each answer
/// comes from the same start and counts on by one from `next`; how many it made.
async fn watch_steady(steady: WitnessClient, pid: u32, mut next: u64) -> Result<u64, Failure> {
    let mut made = 0;
    while made < 20 {
        let seen = who(&steady, "steady").await?;
        expect_eq("steady's (pid, calls answered before)", seen, (pid, next))?;
        next += 1;
        made += 1;
        executor::sleep(Duration::from_millis(2)).await;
    }
    Ok(made)
}

/// Granted nothing: every request but `LIST` is refused, and no device can be minted.
pub fn outsider(service: &str) -> Result<i32, Failure> {
    let denied = Err(Error::PermissionDenied);
    expect_eq(
        "lookup of a service not in connects",
        names::lookup(service).map(drop),
        denied,
    )?;
    expect_eq(
        "lookup of a service nobody has",
        names::lookup("nobody").map(drop),
        denied,
    )?;
    expect_eq("kill", names::kill(service), denied)?;
    expect_eq("run", names::run("kchild spin").map(drop), denied)?;
    expect_eq(
        "registering another's name",
        names::register(service, wake::port()),
        denied,
    )?;
    expect_eq("poweroff", names::poweroff(false).map(drop), denied)?;
    expect_eq("process listing", names::processes().map(drop), denied)?;
    expect_eq(
        "capability listing",
        names::caps(process::id()).map(drop),
        denied,
    )?;
    expect_eq(
        "listing",
        names::list().map(|list| !list.is_empty()),
        Ok(true),
    )?;
    expect_eq("minting an IRQ", device::irq_create(3).map(drop), denied)?;
    expect_eq(
        "minting I/O ports",
        device::ioport_create(0x2f8, 8).map(drop),
        denied,
    )?;
    expect_eq("capabilities held", start_info().cap_count, 1)?;
    let init = cap::info(names::INIT).or_setup("cap_info of handle 1")?;
    expect_eq(
        "handle 1",
        (init.kind, init.rights),
        (kind::PORT, rights::SEND | rights::GRANT),
    )?;
    Ok(0)
}

/// Granted I/O ports 0x2f8+8, IRQ 3 and the kernel log: exactly those, in that order.
pub fn granted() -> Result<i32, Failure> {
    let kinds: Vec<u32> = (1..=4 as Handle)
        .map(|handle| cap::info(handle).map_or(0, |info| info.kind))
        .collect();
    expect_eq("capabilities held", start_info().cap_count, 4)?;
    expect_eq(
        "the kinds of handles 1..=4",
        kinds.as_slice(),
        &[kind::PORT, kind::IO_PORTS, kind::IRQ, kind::LOG][..],
    )?;
    expect_eq(
        "handle 5",
        cap::info(5).map(drop),
        Err(Error::InvalidHandle),
    )?;
    // COM2's scratch register: inside the grant. COM1's: outside it.
    expect_eq(
        "reading a granted port",
        device::ioport_read(2, 0x2ff, 1).is_ok(),
        true,
    )?;
    expect_eq(
        "reading a port outside the grant",
        device::ioport_read(2, 0x3ff, 1).map(drop),
        Err(Error::MissingRight),
    )?;
    expect_eq(
        "minting another IRQ",
        device::irq_create(5).map(drop),
        Err(Error::PermissionDenied),
    )?;
    Ok(0)
}
