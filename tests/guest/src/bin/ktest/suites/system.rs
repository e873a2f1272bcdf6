//! The demo system's supervisor, on manifests of the suite's own: `ktest` runs init's
//! library ([`keel_init::System`]) exactly as init does, and the manifests start `kchild`
//! roles that check, from inside, what they were granted and what init answers them.
//!
//! Each test parses its manifest in init's line format, starts the system, waits for what
//! it must see, and shuts the system down, so nothing of one test is left for the next.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::pin;
use core::time::Duration;

use futures_util::future::{Either, select};
use keel_abi::vector;
use keel_guest_tests::UNMAPPED_ADDR;
use keel_init::{Server, State, Status, System};
use keel_rt::executor;
use keel_rt::process::Exit;

use crate::check::{Context, all, expect_eq};
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(system:
    a_killed_server_fails_its_calls_comes_back_and_leaves_the_others_alone,
    a_client_connected_by_name_retries_only_idempotent_calls_after_restarts,
    a_server_without_grants_is_refused_every_service_and_device,
    a_server_holds_exactly_the_capabilities_its_manifest_grants,
    a_server_gets_the_frame_quota_and_thread_limit_its_manifest_sets,
    a_crashing_server_is_restarted_up_to_its_limit_then_given_up,
    restarts_older_than_the_window_do_not_count,
);

/// How long one scenario may take before it fails instead of hanging the suite.
const SCENARIO_LIMIT: Duration = Duration::from_secs(20);

/// A witness that comes back 20 ms after it ends; a steady one that never does; a caller
/// that kills the first while calling both.
const RESTARTS: &str = "\
keel-manifest 1
server witness
program kchild
args witness-server witness
restart always 3 20 60000
server steady
program kchild
args witness-server steady
restart never 0 0 0
server caller
program kchild
args witness-caller
connect witness
connect steady
may_kill
restart never 0 0 0
";

fn a_killed_server_fails_its_calls_comes_back_and_leaves_the_others_alone() -> Result<(), String> {
    run(RESTARTS, async |system: System| {
        let steady = status(&system, "steady")?;
        let caller = finished(&system, "caller").await?;
        let witness = status(&system, "witness")?;
        all([
            expect_eq(
                "how the caller ended",
                caller.last_exit,
                Some(Exit::Exited(0)),
            ),
            expect_eq(
                "the witness (state, restarts)",
                (witness.state, witness.restarts),
                (State::Running, 1),
            ),
            expect_eq(
                "steady (pid, restarts)",
                (
                    status(&system, "steady")?.pid,
                    status(&system, "steady")?.restarts,
                ),
                (steady.pid, 0),
            ),
            expect_eq("failures", system.failures(), alloc::vec![]),
        ])
    })
}

/// A witness that comes back 300 ms after it ends; a client of it, connected by name, that
/// kills it and calls on, then kills it twice under one call.
const RETRIES: &str = "\
keel-manifest 1
server witness
program kchild
args witness-server witness
restart always 5 300 60000
server retrier
program kchild
args witness-retrier
connect witness
may_kill
restart never 0 0 0
";

fn a_client_connected_by_name_retries_only_idempotent_calls_after_restarts() -> Result<(), String> {
    run(RETRIES, async |system: System| {
        let retrier = finished(&system, "retrier").await?;
        let witness = status(&system, "witness")?;
        all([
            expect_eq(
                "how the retrier ended",
                retrier.last_exit,
                Some(Exit::Exited(0)),
            ),
            expect_eq(
                "the witness (state, restarts)",
                (witness.state, witness.restarts),
                (State::Running, 3),
            ),
            expect_eq("failures", system.failures(), alloc::vec![]),
        ])
    })
}

const OUTSIDER: &str = "\
keel-manifest 1
server witness
program kchild
args witness-server witness
restart always 3 20 60000
server outsider
program kchild
args outsider witness
restart never 0 0 0
";

fn a_server_without_grants_is_refused_every_service_and_device() -> Result<(), String> {
    run(OUTSIDER, async |system: System| {
        let outsider = finished(&system, "outsider").await?;
        all([
            expect_eq(
                "how the outsider ended",
                outsider.last_exit,
                Some(Exit::Exited(0)),
            ),
            expect_eq("witness restarts", status(&system, "witness")?.restarts, 0),
        ])
    })
}

/// COM2's ports and line: nothing in the test boot uses them, and they are not the
/// console's, so the kernel keeps writing its log to COM1 itself.
const GRANTED: &str = "\
keel-manifest 1
server granted
program kchild
args granted
io_ports 0x2f8 8
irq 3
log
restart never 0 0 0
";

fn a_server_holds_exactly_the_capabilities_its_manifest_grants() -> Result<(), String> {
    run(GRANTED, async |system: System| {
        let granted = finished(&system, "granted").await?;
        expect_eq("how it ended", granted.last_exit, Some(Exit::Exited(0)))
    })
}

/// Issue 16, deliverable 3: init applies the manifest's resource policy at spawn.
const LIMITED: &str = "\
keel-manifest 1
server limited
program kchild
args limited 1024 3
frames 1024
threads 3
restart never 0 0 0
";

fn a_server_gets_the_frame_quota_and_thread_limit_its_manifest_sets() -> Result<(), String> {
    run(LIMITED, async |system: System| {
        let limited = finished(&system, "limited").await?;
        expect_eq("how it ended", limited.last_exit, Some(Exit::Exited(0)))
    })
}

const CRASHER: &str = "\
keel-manifest 1
server crasher
program kchild
args read-unmapped
restart always 2 10 60000
";

fn a_crashing_server_is_restarted_up_to_its_limit_then_given_up() -> Result<(), String> {
    run(CRASHER, async |system: System| {
        let crasher = finished(&system, "crasher").await?;
        let fault = match crasher.last_exit {
            Some(Exit::Faulted(fault)) => (fault.vector, fault.address),
            other => return Err(format!("the crasher's last end: {other:?}")),
        };
        let failures = system.failures();
        all([
            expect_eq(
                "(state, restarts, fault messages)",
                (crasher.state, crasher.restarts, crasher.faults),
                (State::GaveUp, 2, 3),
            ),
            expect_eq("the fault", fault, (vector::PAGE_FAULT, UNMAPPED_ADDR)),
            expect_eq(
                "one failure, naming the crasher",
                failures.len() == 1 && failures[0].starts_with("crasher"),
                true,
            ),
        ])
    })
}

/// The same crasher, restarted after 150 ms each time, but only restarts within the last
/// 100 ms count: never two at once, so never given up.
const SLOW_CRASHER: &str = "\
keel-manifest 1
server crasher
program kchild
args read-unmapped
restart always 2 150 100
";

fn restarts_older_than_the_window_do_not_count() -> Result<(), String> {
    run(SLOW_CRASHER, async |system: System| {
        system
            .until(|system| {
                system
                    .status("crasher")
                    .is_some_and(|s| s.restarts >= 5 || s.state.is_final())
            })
            .await;
        let crasher = status(&system, "crasher")?;
        all([
            expect_eq(
                "(state is final, restarts) after five crashes",
                (crasher.state.is_final(), crasher.restarts),
                (false, 5),
            ),
            expect_eq("failures", system.failures(), alloc::vec![]),
        ])
    })
}

/// Runs the system `manifest` describes until `scenario` (given the system) finishes,
/// then shuts it down; the scenario's verdict.
fn run<F>(manifest: &str, scenario: impl FnOnce(System) -> F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>>,
{
    let servers = keel_manifest::parse(manifest).context("parsing the test's manifest")?;
    supervise(servers, SCENARIO_LIMIT, scenario)
}

/// Runs a system of `servers` until `scenario` finishes or `limit` passes, then shuts it
/// down; the scenario's verdict.
pub fn supervise<F>(
    servers: Vec<Server>,
    limit: Duration,
    scenario: impl FnOnce(System) -> F,
) -> Result<(), String>
where
    F: Future<Output = Result<(), String>>,
{
    executor::block_on(async {
        let system = System::new(servers);
        system.start_all();
        let scenario = pin!(executor::timeout(limit, scenario(system.clone())));
        let verdict = match select(pin!(system.run()), scenario).await {
            Either::Left((poweroff, _)) => Err(format!("{} asked for a poweroff", poweroff.by)),
            Either::Right((Ok(verdict), _)) => verdict,
            Either::Right((Err(_), _)) => Err(format!("not done within {limit:?}")),
        };
        system.shutdown().await;
        verdict
    })
}

pub fn status(system: &System, name: &str) -> Result<Status, String> {
    system
        .status(name)
        .context(&format!("the status of {name}"))
}

/// `name`'s status once it has ended for good.
pub async fn finished(system: &System, name: &str) -> Result<Status, String> {
    system
        .until(|system| system.status(name).is_some_and(|s| s.state.is_final()))
        .await;
    status(system, name)
}
