//! Services end to end: `ktest` is a client of the [`Probe`] service that
//! `kchild probe-server` serves (each test starts its own, through `keel_rt::bootstrap`);
//! calls in flight, ordering, payload limits, byte arguments inline and through the bulk
//! arena, a server that dies, clients that misbehave, versions that differ.
//!
//! What a connection promises about order: the server takes requests in the order they
//! were sent and starts their methods in that order; responses come back as each method
//! finishes, in any order, each to its own call.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::future::Future;
use core::time::Duration;

use futures_util::future::join_all;
use keel_abi::Error;
use keel_abi::cap::rights;
use keel_guest_tests::Role;
use keel_guest_tests::hostile::{self, Hostile, Scribble};
use keel_guest_tests::services::{
    MAX_INLINE_RESULT, PROBE_INTERFACE, ProbeClient, changed, checksum,
};
use keel_rt::executor::{self, sleep, spawn, timeout};
use keel_rt::ipc::Message;
use keel_rt::ipc::Port;
use keel_rt::mem::Memory;
use keel_rt::process::{self, Pid, Spawn};
use keel_rt::service::limits::{CAPS_PER_CONNECTION, CONNECTIONS_PER_CLIENT};
use keel_rt::service::{
    BULK_SIZE, Bulk, Connection, INLINE_LIMIT, Interface, TransportError, encode,
};
use keel_rt::{bootstrap, println, time};

use crate::check::{Context, all, ensure, expect_eq};
use crate::child;
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(services:
    a_call_returns_the_servers_answer,
    a_lone_call_is_one_kernel_call_and_a_slow_one_finishes_through_the_ring,
    a_thousand_calls_in_flight_each_get_their_own_answer,
    calls_given_up_in_flight_leave_the_others_their_answers,
    a_call_given_up_is_cancelled_in_the_server,
    more_tasks_than_ready_bits_all_finish,
    requests_start_in_the_order_they_were_sent,
    the_largest_inline_result_arrives_intact,
    a_mebibyte_travels_zero_copy_through_the_bulk_arena,
    a_mebibyte_slice_travels_through_the_arena_intact,
    byte_arguments_up_to_the_inline_limit_need_no_arena,
    a_result_too_large_for_a_record_is_an_error_not_a_hang,
    a_killed_server_is_server_gone_within_a_second,
    a_dead_clients_connection_ends_when_the_next_client_connects,
    garbage_in_a_connections_rings_leaves_the_server_serving_others,
    malformed_requests_are_rejected_and_serving_goes_on,
    garbage_inline_calls_are_answered_and_serving_goes_on,
    an_interface_mismatch_is_refused_at_connect,
    a_capability_argument_reaches_the_server_and_only_its_own_connection,
    a_client_cannot_make_the_server_write_past_its_response_ring,
    a_client_that_never_reads_its_answers_costs_the_server_bounded_memory,
    capabilities_given_beyond_a_share_or_on_forged_badges_are_deleted_at_once,
    a_client_cannot_guess_another_connections_badge,
    a_client_process_holds_at_most_its_share_of_connections,
    connections_a_living_client_drops_are_reclaimed_at_once,
    a_dead_clients_connection_is_reclaimed_without_another_connect,
    a_dead_client_that_handed_over_a_borrowed_port_is_reclaimed_too,
    a_connect_waits_for_room_in_a_flooded_queue,
    a_bulk_given_up_or_forgotten_mid_call_is_never_reused_under_the_server,
    a_ring_fuzzer_leaves_hello_and_kv_serving_and_keeps_nothing,
);

/// How long a server may take to announce its port.
const ANNOUNCE: Duration = Duration::from_secs(5);
/// The most any one step of a test may take under TCG before we call it hung.
const HUNG: Duration = Duration::from_secs(20);
/// How soon a call must fail once its server is killed. The client checks on the server
/// after 20 ms of silence; the rest is slack for TCG.
const SERVER_GONE_BOUND: Duration = Duration::from_secs(1);

/// Start a probe server, run `test` on the executor with its pid and port, then stop it
/// (unless the test did).
fn with_server<F>(test: impl FnOnce(Pid, Port) -> F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>>,
{
    with_server_on(0, test)
}

/// [`with_server`] with the server held to `cpus` (0: any core).
fn with_server_on<F>(cpus: u32, test: impl FnOnce(Pid, Port) -> F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>>,
{
    let spawn = Spawn::new("kchild", child::image()?)
        .args(Role::ProbeServer.name())
        .cpus(cpus);
    let (pid, port) =
        bootstrap::start_server(spawn, ANNOUNCE).context("starting kchild probe-server")?;
    let outcome = executor::block_on(test(pid, port));
    let _ = port.delete();
    let _ = process::kill(pid);
    let _ = process::wait(pid);
    outcome
}

/// [`with_server`] for tests that need just one client.
fn with_client<F>(test: impl FnOnce(ProbeClient) -> F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>>,
{
    with_server(
        |_, port| async move { test(ProbeClient::connect(port).context("connecting")?).await },
    )
}

/// `future`'s output, or a failure saying `what` hung.
async fn within<T>(
    what: &str,
    limit: Duration,
    future: impl Future<Output = T>,
) -> Result<T, String> {
    timeout(limit, future)
        .await
        .map_err(|_| format!("{what}: no answer within {limit:?}"))
}

fn a_call_returns_the_servers_answer() -> Result<(), String> {
    with_client(|probe| async move {
        let greeting = within("greet", HUNG, probe.greet("ktest")).await?;
        expect_eq("greet(\"ktest\")", greeting, Ok("hello, ktest".into()))
    })
}

/// A call alone on its connection, from a client with nothing else to do, to a server
/// waiting for work, goes inline: one kernel call and its reply, no ring signal. One whose
/// method waits (`gather` sleeps before it answers) is answered "deferred" the same way,
/// and its result comes through the ring; so is one whose method blocks the server's
/// thread (`nap`), answered before the server blocks. No timeout here: a timer armed would
/// send them all through the ring (the suite's own limit catches a hang).
///
/// The server shares the test's core, so it is waiting whenever the test runs. On another
/// core it may still be on its way back to its receive (after signalling an answer through
/// the ring) when the next call comes, and a busy server rightly refuses an inline call:
/// that call goes by the ring (0 kernel calls; seen at `-smp 4`).
fn a_lone_call_is_one_kernel_call_and_a_slow_one_finishes_through_the_ring() -> Result<(), String> {
    let beside = 1 << keel_rt::thread::core();
    with_server_on(beside, |_, port| async move {
        let probe = ProbeClient::connect(port).context("connecting")?;
        // The connection's first call waits for the server to be up and waiting.
        let first = probe.echo(1).await;
        let calls = || keel_rt::ipc::system_stats().map(|s| (s.calls, s.replies));
        let before = calls().context("ipc_stats")?;
        let echoed = probe.echo(41).await;
        let after_echo = calls().context("ipc_stats")?;
        let gathered = probe.gather(3, 1).await;
        let after_gather = calls().context("ipc_stats")?;
        let napped = probe.nap(2).await;
        let after_nap = calls().context("ipc_stats")?;
        let one_each = |(calls, replies): (u64, u64), (calls_then, replies_then): (u64, u64)| {
            (calls - calls_then, replies - replies_then)
        };
        all([
            expect_eq("the first echo", first, Ok(1)),
            expect_eq("echo(41)", echoed, Ok(41)),
            expect_eq(
                "kernel calls and replies for echo(41)",
                one_each(after_echo, before),
                (1, 1),
            ),
            expect_eq("gather(3, 1), answered later", gathered, Ok(3)),
            expect_eq(
                "kernel calls and replies for gather(3, 1): its deferral",
                one_each(after_gather, after_echo),
                (1, 1),
            ),
            expect_eq("nap(2), answered later", napped, Ok(2)),
            expect_eq(
                "kernel calls and replies for nap(2): its deferral",
                one_each(after_nap, after_gather),
                (1, 1),
            ),
        ])
    })
}

fn a_thousand_calls_in_flight_each_get_their_own_answer() -> Result<(), String> {
    const CALLS: u64 = 1000;
    with_client(|probe| async move {
        // No `gather` answers before all of them run, so all are in flight at once.
        let calls = (0..CALLS).map(|value| probe.gather(value, CALLS));
        let answers = within("1,000 gathers", HUNG, join_all(calls)).await?;
        let wrong: Vec<_> = (0..CALLS)
            .zip(answers)
            .filter(|(value, answer)| *answer != Ok(*value))
            .collect();
        ensure(wrong.is_empty(), || {
            format!(
                "{} of {CALLS} calls got another answer than their own; the first: {:?}",
                wrong.len(),
                wrong[0]
            )
        })
    })
}

/// A call dropped after it went out still gets its answer from the server, which must
/// land nowhere: not in a later call that reuses its slot. One given up for good (`stall`)
/// keeps its slot without blocking the rest.
fn calls_given_up_in_flight_leave_the_others_their_answers() -> Result<(), String> {
    const GIVE_UP: Duration = Duration::from_millis(50);
    with_client(|probe| async move {
        // The first of a pair of gathers waits for the second: given up, it is in flight.
        let first = timeout(GIVE_UP, probe.gather(1000, 2)).await;
        let stalled = timeout(GIVE_UP, probe.stall()).await;
        // The second releases both; the first one's answer comes back to nobody.
        let second = within("the second gather", HUNG, probe.gather(7, 2)).await?;
        let echoes = (0..100).map(|value| probe.echo(value));
        let echoed = within("100 echoes", HUNG, join_all(echoes)).await?;
        let wrong: Vec<_> = (0..100)
            .zip(echoed)
            .filter(|(value, answer)| *answer != Ok(*value))
            .collect();
        all([
            expect_eq(
                "whether the first gather was given up",
                first.is_err(),
                true,
            ),
            expect_eq("whether the stall was given up", stalled.is_err(), true),
            expect_eq("the second gather", second, Ok(7)),
            ensure(wrong.is_empty(), || {
                format!("echoes with another answer than their own: {wrong:?}")
            }),
        ])
    })
}

/// A call given up after it went out is cancelled: the server drops the method's future
/// (here `stall`, which counts itself while it runs) instead of running it for nobody.
fn a_call_given_up_is_cancelled_in_the_server() -> Result<(), String> {
    with_client(|probe| async move {
        let given_up = timeout(Duration::from_millis(50), probe.stall()).await;
        let running = within("stalled", HUNG, probe.stalled()).await?;
        let echo = within("echo", HUNG, probe.echo(9)).await?;
        all([
            expect_eq("whether the stall was given up", given_up.is_err(), true),
            expect_eq("stall calls the server still runs", running, Ok(0)),
            expect_eq("a call after", echo, Ok(9)),
        ])
    })
}

/// The executor's ready set has 4,096 bits: tasks 4,096 apart share one, and a wake of
/// either polls both. With 5,000 tasks sleeping and waking at once, none is lost.
fn more_tasks_than_ready_bits_all_finish() -> Result<(), String> {
    const TASKS: u64 = 5_000;
    executor::block_on(async {
        let done = alloc::rc::Rc::new(core::cell::Cell::new(0u64));
        let tasks = (0..TASKS).map(|i| {
            let done = done.clone();
            spawn(async move {
                sleep(Duration::from_millis(1 + i % 5)).await;
                done.set(done.get() + 1);
                i
            })
        });
        let tasks: Vec<_> = tasks.collect();
        let outputs = within("5,000 tasks", HUNG, join_all(tasks)).await?;
        all([
            expect_eq("tasks that finished", done.get(), TASKS),
            ensure(outputs.iter().copied().eq(0..TASKS), || {
                String::from("the tasks' outputs are not 0..5,000 in order")
            }),
        ])
    })
}

fn requests_start_in_the_order_they_were_sent() -> Result<(), String> {
    const CALLS: u64 = 200;
    with_client(|probe| async move {
        // Tasks first run in the order they were spawned, and a call sends its request
        // when it first runs.
        let calls: Vec<_> = (0..CALLS)
            .map(|value| {
                let probe = probe.clone();
                spawn(async move { probe.note(value).await })
            })
            .collect();
        let answers = within("200 notes", HUNG, join_all(calls)).await?;
        let notes = within("notes", HUNG, probe.notes()).await?;
        all([
            ensure(answers.iter().all(Result::is_ok), || {
                format!("some notes failed: {answers:?}")
            }),
            expect_eq(
                "the order the server started the calls in",
                notes,
                Ok((0..CALLS).collect()),
            ),
        ])
    })
}

fn the_largest_inline_result_arrives_intact() -> Result<(), String> {
    with_client(|probe| async move {
        // The argument, above the inline limit, goes through the arena; the result comes
        // back inline, at the most a response record holds.
        let bytes: Vec<u8> = (0..MAX_INLINE_RESULT).map(|i| (i ^ i >> 8) as u8).collect();
        let echoed = within("echo_bytes", HUNG, probe.echo_bytes(&bytes)).await?;
        let too_large = vec![0; MAX_INLINE_RESULT + 1];
        let refused = within("echo_bytes", HUNG, probe.echo_bytes(&too_large)).await?;
        let after = within("echo", HUNG, probe.echo(1)).await?;
        all([
            ensure(echoed.as_ref() == Ok(&bytes), || {
                format!(
                    "{MAX_INLINE_RESULT} bytes came back changed: {:?}",
                    echoed.as_ref().map(Vec::len)
                )
            }),
            expect_eq(
                "one byte more",
                refused.map(drop),
                Err(TransportError::TooLarge),
            ),
            expect_eq("a call after that", after, Ok(1)),
        ])
    })
}

fn a_mebibyte_travels_zero_copy_through_the_bulk_arena() -> Result<(), String> {
    const MIB: usize = 1 << 20;
    with_client(|probe| async move {
        let mut data = probe
            .connection()
            .bulk(MIB)
            .map_err(|e| format!("bulk room: {e}"))?;
        let bytes = data
            .as_mut_slice()
            .ok_or("a client's bulk room is writable")?;
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = (i ^ i >> 11) as u8;
        }
        let expected = checksum(bytes);
        let free_before = frames();
        let sum = within("checksum", HUNG, probe.checksum(data)).await?;
        // Were the bytes copied anywhere (a ring, the kernel), pages would be spent on them.
        let spent = free_before.saturating_sub(frames());
        let too_big = probe.connection().bulk(4 * MIB).map(drop);
        all([
            expect_eq("the server's length and checksum", sum, Ok(expected)),
            ensure(spent < 16, || {
                format!("{spent} frames spent on a zero-copy call")
            }),
            expect_eq(
                "room beyond the arena",
                too_big,
                Err(TransportError::TooLarge),
            ),
        ])
    })
}

fn a_mebibyte_slice_travels_through_the_arena_intact() -> Result<(), String> {
    const MIB: usize = 1 << 20;
    with_client(|probe| async move {
        let bytes: Vec<u8> = (0..MIB).map(|i| (i ^ i >> 11) as u8).collect();
        let sum = within("checksum_bytes", HUNG, probe.checksum_bytes(&bytes)).await?;
        let beyond = vec![0; BULK_SIZE + 1];
        let refused = within("checksum_bytes", HUNG, probe.checksum_bytes(&beyond)).await?;
        // The arena room of both is free again: the whole arena can be had.
        let room = probe.connection().bulk(BULK_SIZE).map(drop);
        let after = within("echo", HUNG, probe.echo(10)).await?;
        all([
            expect_eq(
                "the server's length and checksum",
                sum,
                Ok(checksum(&bytes)),
            ),
            expect_eq(
                "a slice larger than the arena",
                refused,
                Err(TransportError::TooLarge),
            ),
            expect_eq("the whole arena, after both calls", room, Ok(())),
            expect_eq("a call after that", after, Ok(10)),
        ])
    })
}

fn byte_arguments_up_to_the_inline_limit_need_no_arena() -> Result<(), String> {
    with_client(|probe| async move {
        let at_limit: Vec<u8> = (0..INLINE_LIMIT).map(|i| i as u8).collect();
        let over_limit: Vec<u8> = (0..=INLINE_LIMIT).map(|i| (i * 3) as u8).collect();
        // With all the arena taken, only bytes that travel inline can go.
        let everything = probe
            .connection()
            .bulk(BULK_SIZE)
            .map_err(|e| format!("the whole arena: {e}"))?;
        let inline = within("checksum_bytes", HUNG, probe.checksum_bytes(&at_limit)).await?;
        let starved = within("checksum_bytes", HUNG, probe.checksum_bytes(&over_limit)).await?;
        drop(everything);
        let through_arena =
            within("checksum_bytes", HUNG, probe.checksum_bytes(&over_limit)).await?;
        all([
            expect_eq(
                &format!("{INLINE_LIMIT} bytes, the arena full"),
                inline,
                Ok(checksum(&at_limit)),
            ),
            expect_eq(
                "one byte more, the arena full",
                starved,
                Err(TransportError::TooLarge),
            ),
            expect_eq(
                "one byte more, the arena free",
                through_arena,
                Ok(checksum(&over_limit)),
            ),
        ])
    })
}

fn frames() -> usize {
    keel_rt::sys::sys_info(keel_abi::SysInfo::FreeFrames).unwrap_or(0)
}

/// A client dies with a call in flight: the server's end of its connection (task, request
/// under way, channel memory) must not outlive the next client's arrival, or a client that
/// keeps crashing and reconnecting would drain the server's memory a channel at a time.
fn a_dead_clients_connection_ends_when_the_next_client_connects() -> Result<(), String> {
    with_server(|_, port| async move {
        let before = frames();
        let pid = child::spawn_with_caps(Role::ProbeClientDies, "", &[port.handle()])?;
        let died = process::wait(pid).context("waiting for the client")?;
        // The client's own memory is back; the channel the server holds is not.
        let held = before.saturating_sub(frames());
        let probe = ProbeClient::connect(port).context("connecting again")?;
        let answer = within("echo", HUNG, probe.echo(5)).await?;
        let deadline = time::ticks() + time::ticks_in(HUNG);
        // The new channel takes what the old one gives back.
        while frames() + held / 2 < before - held && time::ticks() < deadline {
            sleep(Duration::from_millis(10)).await;
        }
        let after = before.saturating_sub(frames());
        all([
            expect_eq("how the client ended", died, process::Exit::Exited(0)),
            ensure(held >= 500, || {
                format!("the dead client's connection held only {held} frames")
            }),
            expect_eq("the new client's echo", answer, Ok(5)),
            ensure(after < held + held / 2, || {
                format!(
                    "{after} frames in use once a new client connected; one connection holds {held}"
                )
            }),
        ])
    })
}

fn a_result_too_large_for_a_record_is_an_error_not_a_hang() -> Result<(), String> {
    with_client(|probe| async move {
        let len = (MAX_INLINE_RESULT + 1) as u32;
        let filled = within("fill", HUNG, probe.fill(len)).await?;
        let after = within("echo", HUNG, probe.echo(2)).await?;
        all([
            expect_eq(
                "fill(one byte more than fits)",
                filled.map(drop),
                Err(TransportError::TooLarge),
            ),
            expect_eq("a call after that", after, Ok(2)),
        ])
    })
}

fn a_killed_server_is_server_gone_within_a_second() -> Result<(), String> {
    with_server(|pid, port| async move {
        let probe = ProbeClient::connect(port).context("connecting")?;
        within("echo", HUNG, probe.echo(3))
            .await?
            .context("a first call")?;
        let stalled = {
            let probe = probe.clone();
            spawn(async move { probe.stall().await })
        };
        // Time for the request to reach the server, which then never answers.
        sleep(Duration::from_millis(20)).await;
        process::kill(pid).context("killing the server")?;
        let killed = time::uptime();
        let outcome = within("the stalled call", HUNG, stalled).await?;
        let took = time::uptime() - killed;
        println!("ktest: services: the stalled call ended {took:?} after the kill");
        let later = within("a call after that", HUNG, probe.echo(4)).await?;
        all([
            expect_eq("the stalled call", outcome, Err(TransportError::ServerGone)),
            ensure(took <= SERVER_GONE_BOUND, || {
                format!("it took {took:?} to notice, more than {SERVER_GONE_BOUND:?}")
            }),
            expect_eq("a later call", later, Err(TransportError::ServerGone)),
        ])
    })
}

fn garbage_in_a_connections_rings_leaves_the_server_serving_others() -> Result<(), String> {
    with_server(|_, port| async move {
        let honest = ProbeClient::connect(port).context("connecting")?;
        let mut checks = Vec::new();
        for scribble in Scribble::ALL {
            let hostile = Hostile::connect(port, PROBE_INTERFACE.hash)?;
            hostile.scribble(scribble);
            hostile.signal();
            // Time for the server to read the garbage and give up on that connection.
            sleep(Duration::from_millis(20)).await;
            let echoed = within("echo", HUNG, honest.echo(5)).await?;
            checks.push(expect_eq(
                &format!("after {scribble:?}: an honest call"),
                echoed,
                Ok(5),
            ));
            let newcomer =
                ProbeClient::connect(port).map(|probe| async move { probe.echo(6).await });
            let echoed = match newcomer {
                Ok(call) => within("echo", HUNG, call).await?,
                Err(error) => Err(error),
            };
            checks.push(expect_eq(
                &format!("after {scribble:?}: a new client's call"),
                echoed,
                Ok(6),
            ));
        }
        // A client that revokes its copy of the channel cannot take the server's away.
        let hostile = Hostile::connect(port, PROBE_INTERFACE.hash)?;
        hostile.signal();
        hostile.pull_the_channel();
        sleep(Duration::from_millis(20)).await;
        checks.push(expect_eq(
            "an honest call at the end",
            honest.echo(7).await,
            Ok(7),
        ));
        all(checks)
    })
}

fn malformed_requests_are_rejected_and_serving_goes_on() -> Result<(), String> {
    with_server(|_, port| async move {
        let probe = ProbeClient::connect(port).context("connecting")?;
        let other = ProbeClient::connect(port).context("connecting a second client")?;
        let id = |name| {
            ProbeClient::METHODS
                .iter()
                .position(|&m| m == name)
                .expect("a method of Probe") as u32
        };
        // `echo(u64) -> u64` travels fixed (docs/SERVICES.md): exactly 8 bytes.
        let echo_and_more = [5u8, 0, 0, 0, 0, 0, 0, 0, 0].to_vec();
        let echo_cut_short = [5u8, 0, 0, 0, 0, 0, 0].to_vec();
        // A `Bytes` on the wire is a postcard enum (docs/SERVICES.md): variant 1 is an arena
        // range, its offset and length, each a varint as the variant index is.
        let bytes_in_arena = |offset: u64, len: u64| encode(&(1u32, offset, len));
        let arena = BULK_SIZE as u64;
        let requests: [(&str, u32, Vec<u8>); 10] = [
            (
                "a method id past the last",
                ProbeClient::METHODS.len() as u32,
                Vec::new(),
            ),
            (
                "greet with bytes that are no string",
                id("greet"),
                vec![4, 0xff, 0xfe, 0xfd, 0xfc],
            ),
            ("fill with a varint cut short", id("fill"), vec![0x80]),
            ("echo with a number cut short", id("echo"), echo_cut_short),
            ("echo with a byte left over", id("echo"), echo_and_more),
            (
                "checksum_bytes starting past the arena",
                id("checksum_bytes"),
                bytes_in_arena(arena, 64).context("encoding")?,
            ),
            (
                "checksum_bytes running past the arena",
                id("checksum_bytes"),
                bytes_in_arena(arena - 64, 128).context("encoding")?,
            ),
            (
                "checksum_bytes whose end overflows",
                id("checksum_bytes"),
                bytes_in_arena(64, u64::MAX).context("encoding")?,
            ),
            (
                "checksum_bytes at an unaligned offset",
                id("checksum_bytes"),
                bytes_in_arena(1, 64).context("encoding")?,
            ),
            (
                "checksum_bytes with a variant that is neither",
                id("checksum_bytes"),
                encode(&(2u32, 0u64)).context("encoding")?,
            ),
        ];
        let mut checks = Vec::new();
        for (what, method, arguments) in requests {
            let answer = within(what, HUNG, probe.connection().call(method, &arguments)).await?;
            checks.push(expect_eq(what, answer, Err(TransportError::Rejected)));
        }
        checks.push(expect_eq(
            "then a good call",
            within("echo", HUNG, probe.echo(8)).await?,
            Ok(8),
        ));
        checks.push(expect_eq(
            "another client's call",
            within("echo", HUNG, other.echo(9)).await?,
            Ok(9),
        ));
        all(checks)
    })
}

/// Inline calls (docs/SERVICES.md, "Signalling") as no client of rt makes them: each gets
/// an answer that says so, and the server goes on serving.
fn garbage_inline_calls_are_answered_and_serving_goes_on() -> Result<(), String> {
    // The inline wire: a request's label with its record's length in the low byte; an
    // answer's with the status in bits 8..16, or "refused", or "deferred".
    const REQUEST: u32 = 0x4b49_4e00;
    const MALFORMED: u32 = 0x4b41_0100;
    const REFUSED: u32 = 0x4b52_4546;
    with_server(|_, port| async move {
        let hash = hostile::interface_hash(port)?;
        let hostile = Hostile::connect(port, hash)?;
        let probe = ProbeClient::connect(port).context("connecting")?;
        let head = |id: u64, method: u64| id | method << 32;
        let past_methods = ProbeClient::METHODS.len() as u64;
        let forged = port.derive(rights::SEND, 0x5eed).context("cap_derive")?;
        // `None`: on the connection's own badged capability.
        type Case<'a> = (&'a str, Option<Port>, Message, Result<u32, Error>);
        let calls: [Case; 5] = [
            (
                "a record longer than four words",
                None,
                Message::new(REQUEST | 40, [head(1, 0), 0, 0, 0]),
                Ok(REFUSED),
            ),
            (
                "a record shorter than its head",
                None,
                Message::new(REQUEST | 4, [1, 0, 0, 0]),
                Ok(REFUSED),
            ),
            (
                "a method past the last",
                None,
                Message::new(REQUEST | 8, [head(2, past_methods), 0, 0, 0]),
                Ok(MALFORMED),
            ),
            (
                "a badge no connection has",
                Some(forged),
                Message::new(REQUEST | 16, [head(3, 0), 5, 0, 0]),
                Ok(REFUSED),
            ),
            (
                "a payload besides (not inline: the connect handler refuses it)",
                None,
                Message::new(REQUEST | 16, [head(4, 0), 5, 0, 0]).with_payload(b"junk"),
                Ok(0),
            ),
        ];
        let mut checks = Vec::new();
        for (what, to, message, expected) in calls {
            let answer = match to {
                Some(port) => port.call(&message),
                None => hostile.call(&message),
            };
            let answer = answer.map(|answer| answer.label);
            checks.push(expect_eq(what, answer, expected));
        }
        let _ = forged.delete();
        checks.push(expect_eq(
            "then a good call",
            within("echo", HUNG, probe.echo(8)).await?,
            Ok(8),
        ));
        all(checks)
    })
}

fn an_interface_mismatch_is_refused_at_connect() -> Result<(), String> {
    with_server(|_, port| async move {
        let mismatched = changed::ProbeClient::connect(port).map(drop);
        let matched = ProbeClient::connect(port).map(drop);
        all([
            ensure(
                changed::PROBE_INTERFACE.hash != PROBE_INTERFACE.hash,
                || "changing a signature left the interface hash as it was".into(),
            ),
            expect_eq(
                "connecting with a changed signature",
                mismatched,
                Err(TransportError::InterfaceMismatch {
                    expected: changed::PROBE_INTERFACE.hash,
                    found: PROBE_INTERFACE.hash,
                }),
            ),
            expect_eq("connecting with the same one", matched, Ok(())),
        ])
    })
}

/// A memory object passed as a `Cap`: the server maps its copy and reads what the client
/// wrote. Its token is good once, and only on the connection it was given on.
fn a_capability_argument_reaches_the_server_and_only_its_own_connection() -> Result<(), String> {
    with_server(|_, port| async move {
        let probe = ProbeClient::connect(port).context("connecting")?;
        let other = ProbeClient::connect(port).context("connecting a second client")?;
        let memory =
            keel_rt::mem::Memory::create(keel_abi::layout::PAGE_SIZE).context("a memory object")?;
        let mapping = memory
            .map(keel_abi::prot::READ | keel_abi::prot::WRITE)
            .context("mapping it")?;
        // SAFETY: the first word of a page this test maps and keeps until the end.
        unsafe { mapping.as_ptr().cast::<u64>().write_volatile(0x6b65_656c) };
        let cap = probe
            .connection()
            .cap(memory.handle())
            .context("giving it")?;
        let peeked = within("peek", HUNG, probe.peek(cap)).await?;
        // A token given on `probe`'s connection, spent on `other`'s: refused.
        let id = ProbeClient::METHODS
            .iter()
            .position(|&m| m == "peek")
            .expect("peek") as u32;
        let given = probe
            .connection()
            .cap(memory.handle())
            .context("giving it again")?;
        let token = encode(&(given,)).context("encoding")?;
        let elsewhere = within("peek elsewhere", HUNG, other.connection().call(id, &token)).await?;
        let forged = within(
            "peek forged",
            HUNG,
            probe
                .connection()
                .call(id, &encode(&(999_999u64,)).context("encoding")?),
        )
        .await?;
        let after = within("echo", HUNG, probe.echo(3)).await?;
        let _ = memory.delete();
        all([
            expect_eq("the word the server read", peeked, Ok(Some(0x6b65_656c))),
            expect_eq(
                "a token used on another connection",
                elsewhere.map(drop),
                Err(TransportError::Rejected),
            ),
            expect_eq(
                "a token never given",
                forged.map(drop),
                Err(TransportError::Rejected),
            ),
            expect_eq("a call after that", after, Ok(3)),
        ])
    })
}

/// The frames of one channel, what a connection costs its server.
const CHANNEL_FRAMES: u64 = (hostile::CHANNEL_SIZE / 4096) as u64;

/// The frames process `pid` has mapped of its own (its heap, not the channels it shares).
fn frames_of(pid: Pid) -> Result<u64, String> {
    process::info(pid)
        .map(|info| info.frames)
        .context("process_info")
}

/// Frames in use in the whole system: a channel's count here, and come back here.
fn frames_in_use() -> u64 {
    (usize::MAX - frames()) as u64
}

/// Wait (up to [`HUNG`]) until the system uses at most `limit` frames; what it uses then.
async fn frames_in_use_fall_to(limit: u64) -> u64 {
    let deadline = time::uptime() + HUNG;
    loop {
        let used = frames_in_use();
        if used <= limit || time::uptime() > deadline {
            return used;
        }
        sleep(Duration::from_millis(10)).await;
    }
}

/// Finding 6 of issue 16: the producer trusted its own counter, which the client can
/// write. Head and tail of the response ring at 0xfffe, then one valid request: the
/// server pushed its answer past the end of the ring and panicked.
fn a_client_cannot_make_the_server_write_past_its_response_ring() -> Result<(), String> {
    with_server(|_, port| async move {
        let honest = ProbeClient::connect(port).context("connecting")?;
        let hostile = Hostile::connect(port, PROBE_INTERFACE.hash)?;
        hostile.write(hostile::RESPONSE_HEAD, &0xfffeu32.to_le_bytes());
        hostile.write(hostile::RESPONSE_TAIL, &0xfffeu32.to_le_bytes());
        // `echo(1)` as a client encodes it: method 0, the tuple `(1u64,)`.
        let sent = hostile.request(1, 0, &encode(&(1u64,)).context("encoding")?);
        hostile.signal();
        sleep(Duration::from_millis(20)).await;
        let echoed = within("echo", HUNG, honest.echo(5)).await?;
        all([
            expect_eq("whether the hostile request went in", sent, true),
            expect_eq("an honest call after it", echoed, Ok(5)),
        ])
    })
}

/// Finding 7: a client that sends requests and never reads the answers made the server
/// keep every answer, until it ran out of memory. Now the server stops reading that
/// client's requests once it holds its share of calls or answers.
fn a_client_that_never_reads_its_answers_costs_the_server_bounded_memory() -> Result<(), String> {
    const REQUESTS: u32 = 30_000;
    // 1 MiB: the server's heap may grow by the answers one connection holds, no more.
    const BOUND: u64 = 256;
    with_server(|pid, port| async move {
        let honest = ProbeClient::connect(port).context("connecting")?;
        within("echo", HUNG, honest.echo(1))
            .await?
            .context("a first call")?;
        let before = frames_of(pid)?;
        let hostile = Hostile::connect(port, PROBE_INTERFACE.hash)?;
        let echo = encode(&(7u64,)).context("encoding")?;
        let mut sent = 0;
        let mut last_progress = time::uptime();
        while sent < REQUESTS && time::uptime() - last_progress < Duration::from_millis(300) {
            if hostile.request(sent, 0, &echo) {
                sent += 1;
                last_progress = time::uptime();
            } else {
                hostile.signal();
                sleep(Duration::from_millis(1)).await;
            }
        }
        hostile.signal();
        sleep(Duration::from_millis(20)).await;
        let grown = frames_of(pid)?.saturating_sub(before);
        let echoed = within("echo", HUNG, honest.echo(5)).await?;
        println!("ktest: services: {sent} requests never read took {grown} frames");
        hostile.close();
        all([
            ensure(sent < REQUESTS, || {
                format!("the server took all {sent} requests whose answers nobody read")
            }),
            ensure(grown < BOUND, || {
                format!("the server grew by {grown} frames, more than {BOUND}")
            }),
            expect_eq("an honest call meanwhile", echoed, Ok(5)),
        ])
    })
}

/// Finding 8: capabilities given on forged badges, or piled up on one connection, filled
/// the server's capability space; then every connect and call failed.
fn capabilities_given_beyond_a_share_or_on_forged_badges_are_deleted_at_once() -> Result<(), String>
{
    const GIFTS: usize = 300;
    with_server(|_, port| async move {
        let honest = ProbeClient::connect(port).context("connecting")?;
        let page = Memory::create(4096).context("a page to give")?;
        let forged = port
            .derive(rights::SEND | rights::GRANT, 0x5eed)
            .context("forging a badge")?;
        let refused = (0..GIFTS)
            .filter(|_| hostile::give(forged, page.handle()) != Ok(0))
            .count();
        let _ = forged.delete();
        let gifts: Vec<_> = (0..GIFTS)
            .map(|_| honest.connection().cap(page.handle()).map(drop))
            .collect();
        let accepted = gifts.iter().filter(|gift| gift.is_ok()).count();
        let limited = gifts
            .iter()
            .filter(|gift| **gift == Err(TransportError::LimitReached))
            .count();
        let newcomer = ProbeClient::connect(port).context("a new client connecting")?;
        let cap = newcomer
            .connection()
            .cap(page.handle())
            .context("a new client's gift")?;
        let peeked = within("peek", HUNG, newcomer.peek(cap)).await?;
        all([
            expect_eq("gifts on a forged badge refused", refused, GIFTS),
            expect_eq("gifts one connection holds", accepted, CAPS_PER_CONNECTION),
            expect_eq(
                "gifts beyond its share",
                limited,
                GIFTS - CAPS_PER_CONNECTION,
            ),
            expect_eq("a new client's capability argument", peeked, Ok(Some(0))),
        ])
    })
}

/// A client knows its own connection's badge, and may badge its copy of the server's port
/// with any other: badges near its own must not be another connection's, or it could fill
/// that connection's share of capabilities and have its gifts refused.
fn a_client_cannot_guess_another_connections_badge() -> Result<(), String> {
    const NEAR: u64 = 64;
    with_server(|_, port| async move {
        let victim = ProbeClient::connect(port).context("connecting")?;
        let hostile = Hostile::connect(port, PROBE_INTERFACE.hash)?;
        let own = hostile.badge().context("the hostile connection's badge")?;
        let page = Memory::create(4096).context("a page to give")?;
        let mut accepted = 0;
        for badge in (own.saturating_sub(NEAR)..=own.saturating_add(NEAR)).filter(|&b| b != own) {
            let forged = port
                .derive(rights::SEND | rights::GRANT, badge)
                .context("forging a badge")?;
            accepted += (0..CAPS_PER_CONNECTION)
                .filter(|_| hostile::give(forged, page.handle()) == Ok(0))
                .count();
            let _ = forged.delete();
        }
        let cap = victim.connection().cap(page.handle()).map(drop);
        all([
            expect_eq("gifts on badges near its own accepted", accepted, 0),
            expect_eq("the other connection's own gift", cap, Ok(())),
        ])
    })
}

/// A client process gets its share of connections and no more; others are not affected,
/// and a connection it drops frees its place at once.
fn a_client_process_holds_at_most_its_share_of_connections() -> Result<(), String> {
    with_server(|_, port| async move {
        let mut held = Vec::new();
        for _ in 0..CONNECTIONS_PER_CLIENT {
            held.push(ProbeClient::connect(port).context("connecting within the share")?);
        }
        let one_more = ProbeClient::connect(port).map(drop);
        let other = child::spawn_with_caps(Role::ProbeEcho, "", &[port.handle()])?;
        let other = process::wait(other).context("waiting for the other client")?;
        held.pop();
        let again = ProbeClient::connect(port).context("connecting after dropping one")?;
        let echoed = within("echo", HUNG, again.echo(4)).await?;
        all([
            expect_eq(
                "a connection beyond the share",
                one_more,
                Err(TransportError::LimitReached),
            ),
            expect_eq("another process's call", other, process::Exit::Exited(0)),
            expect_eq("a call on the place freed", echoed, Ok(4)),
        ])
    })
}

/// Finding 9: 29 rounds of connect, call, drop by one living process used up the server's
/// frames in channels, reclaimed only at a connect that then never succeeded. A dropped
/// connection is closed, and the server ends it at once.
fn connections_a_living_client_drops_are_reclaimed_at_once() -> Result<(), String> {
    const ROUNDS: u64 = 40;
    with_server(|_, port| async move {
        let before = frames_in_use();
        let mut wrong = Vec::new();
        for round in 0..ROUNDS {
            let probe = ProbeClient::connect(port)
                .map_err(|error| format!("connect {round} of {ROUNDS}: {error:?}"))?;
            let echoed = within("echo", HUNG, probe.echo(round)).await?;
            if echoed != Ok(round) {
                wrong.push((round, echoed));
            }
        }
        let after = frames_in_use_fall_to(before + CHANNEL_FRAMES / 2).await;
        all([
            ensure(wrong.is_empty(), || format!("wrong answers: {wrong:?}")),
            ensure(after <= before + CHANNEL_FRAMES / 2, || {
                format!(
                    "{} more frames in use than before {ROUNDS} connections",
                    after - before
                )
            }),
        ])
    })
}

/// Finding 9, the other half: a client that dies with its connection open gives it back
/// within the server's sweep, though nobody connects after it.
fn a_dead_clients_connection_is_reclaimed_without_another_connect() -> Result<(), String> {
    with_server(|_, port| async move {
        let before = frames_in_use();
        let client = child::spawn_with_caps(Role::ProbeClientDies, "linger", &[port.handle()])?;
        let deadline = time::uptime() + HUNG;
        while frames_in_use() < before + CHANNEL_FRAMES && time::uptime() < deadline {
            sleep(Duration::from_millis(5)).await;
        }
        let connected = frames_in_use();
        process::kill(client).context("killing the client")?;
        let died = process::wait(client).context("waiting for the client")?;
        let started = time::uptime();
        let after = frames_in_use_fall_to(before + CHANNEL_FRAMES / 2).await;
        let took = time::uptime() - started;
        println!("ktest: services: a dead client's channel came back after {took:?}");
        all([
            ensure(connected >= before + CHANNEL_FRAMES, || {
                format!(
                    "{} more frames in use with the client",
                    connected as i64 - before as i64
                )
            }),
            expect_eq("how the client ended", died, process::Exit::Killed),
            ensure(after <= before + CHANNEL_FRAMES / 2, || {
                format!(
                    "{} more frames in use than before the client came",
                    after - before
                )
            }),
            ensure(took <= SERVER_GONE_BOUND, || {
                format!("it took {took:?}, more than {SERVER_GONE_BOUND:?}")
            }),
        ])
    })
}

/// A client may hand over any port it can send to as its wake port, here the server's
/// own, which lives on after the client: the server watches the connection's lease, a
/// port only the client receives on, not that port.
fn a_dead_client_that_handed_over_a_borrowed_port_is_reclaimed_too() -> Result<(), String> {
    with_server(|_, port| async move {
        let before = frames_in_use();
        let client = child::spawn_with_caps(Role::ProbeClientBorrows, "", &[port.handle()])?;
        let exited = process::wait(client).context("waiting for the client")?;
        let after = frames_in_use_fall_to(before + CHANNEL_FRAMES / 2).await;
        let echoed = match ProbeClient::connect(port) {
            Ok(probe) => within("echo", HUNG, probe.echo(3)).await?,
            Err(error) => Err(error),
        };
        all([
            expect_eq("how the client ended", exited, process::Exit::Exited(0)),
            ensure(after <= before + CHANNEL_FRAMES / 2, || {
                format!(
                    "{} more frames in use than before the client came",
                    after - before
                )
            }),
            expect_eq("a new client's call", echoed, Ok(3)),
        ])
    })
}

/// Finding 10: a connect into a full queue failed. It waits for room, a bounded time.
fn a_connect_waits_for_room_in_a_flooded_queue() -> Result<(), String> {
    with_server(|_, port| async move {
        // The server runs at this priority and has not run since: the queue fills.
        let junk = Message::new(0x6a75_6e6b, [0; 4]);
        let flood = (0..1000)
            .map(|_| port.send(&junk))
            .find(Result::is_err)
            .unwrap_or(Ok(()));
        let echoed = match ProbeClient::connect(port) {
            Ok(probe) => within("echo", HUNG, probe.echo(8)).await?,
            Err(error) => Err(error),
        };
        all([
            expect_eq("what ended the flood", flood, Err(Error::QueueFull)),
            expect_eq("a connect into the full queue, then a call", echoed, Ok(8)),
        ])
    })
}

/// Item 7 of issue 16: a call dropped or forgotten with a `Bulk` in flight. A forgotten
/// one keeps its room for ever (nothing else is placed where the server may still read);
/// a dropped one is cancelled in the server before its room is used again; the server
/// writes into the arena never, so bytes the client reuses stay the client's.
fn a_bulk_given_up_or_forgotten_mid_call_is_never_reused_under_the_server() -> Result<(), String> {
    const LEN: usize = 4096;
    with_client(|probe| async move {
        let connection = probe.connection().clone();
        let filled = |byte: u8| -> Result<Bulk, String> {
            let mut bulk = connection.bulk(LEN).context("room in the arena")?;
            bulk.as_mut_slice()
                .context("the client's bytes")?
                .fill(byte);
            Ok(bulk)
        };
        let mut forgotten = alloc::boxed::Box::pin(probe.hold(filled(0x11)?));
        let polled = timeout(Duration::from_millis(30), &mut forgotten).await;
        core::mem::forget(forgotten);
        let held = within("holding", HUNG, probe.holding()).await?;
        let whole_arena = connection.bulk(BULK_SIZE).map(drop);
        let given_up = timeout(Duration::from_millis(30), probe.hold(filled(0x22)?)).await;
        let mut reused = filled(0x33)?;
        within("release", HUNG, probe.release())
            .await?
            .context("release")?;
        let still_holding = within("holding", HUNG, probe.holding()).await?;
        let untouched = reused
            .as_mut_slice()
            .is_some_and(|bytes| bytes.iter().all(|&b| b == 0x33));
        let summed = within("checksum", HUNG, probe.checksum(reused)).await?;
        all([
            expect_eq("whether the forgotten call went out", polled.is_err(), true),
            expect_eq("hold calls the server runs", held, Ok(1)),
            expect_eq(
                "the whole arena while the forgotten bulk holds room",
                whole_arena,
                Err(TransportError::TooLarge),
            ),
            expect_eq(
                "whether the dropped call was given up",
                given_up.is_err(),
                true,
            ),
            expect_eq("hold calls after release", still_holding, Ok(0)),
            expect_eq("whether the reused room kept its bytes", untouched, true),
            expect_eq("its checksum", summed, Ok(checksum(&[0x33; LEN]))),
        ])
    })
}

/// The ring fuzzer (`kchild ring-fuzz`) against the real `hello-service` and `kv`: an
/// honest client is answered throughout, neither server dies, and the frames the fuzzer's
/// connections held come back once it is gone.
fn a_ring_fuzzer_leaves_hello_and_kv_serving_and_keeps_nothing() -> Result<(), String> {
    // (program, an honest call: method and arguments)
    let hello = ("hello-service", 0, encode(&("keel",)).context("encoding")?);
    let kv = ("kv", 3, encode(&()).context("encoding")?);
    let mut checks = Vec::new();
    for (seed, (program, method, arguments)) in [(7u64, hello), (8, kv)] {
        let image = keel_rt::boot_module(program).context(program)?;
        let spawn = Spawn::new(program, image).args("announce");
        let (pid, port) = bootstrap::start_server(spawn, ANNOUNCE).context("starting it")?;
        let outcome = executor::block_on(fuzz_one(program, seed, port, method, &arguments));
        let _ = port.delete();
        let _ = process::kill(pid);
        let _ = process::wait(pid);
        checks.push(outcome);
    }
    all(checks)
}

/// Fuzz the server behind `port` with one `ring-fuzz` child while an honest client makes
/// `method` calls every millisecond or so.
async fn fuzz_one(
    program: &str,
    seed: u64,
    port: Port,
    method: u32,
    arguments: &[u8],
) -> Result<(), String> {
    let hash = hostile::interface_hash(port)?;
    let interface = Interface {
        name: "fuzzed",
        hash,
    };
    let honest = Connection::connect(port, interface).context("an honest connection")?;
    within("a first call", HUNG, honest.call(method, arguments))
        .await?
        .context("a first call")?;
    let before = frames_in_use();
    let fuzzer = child::spawn_with_caps(Role::RingFuzz, &format!("{seed}"), &[port.handle()])?;
    let mut fuzzed = alloc::boxed::Box::pin(executor::unblock(move || process::wait(fuzzer)));
    let (mut calls, mut failures, mut peak) = (0, Vec::new(), before);
    let exit = loop {
        if let Ok(exit) = timeout(Duration::from_millis(1), &mut fuzzed).await {
            break exit;
        }
        match within("an honest call", HUNG, honest.call(method, arguments)).await? {
            Ok(_) => calls += 1,
            Err(error) => failures.push(error),
        }
        peak = peak.max(frames_in_use());
    };
    let after = frames_in_use_fall_to(before + CHANNEL_FRAMES / 2).await;
    let last = within("a last call", HUNG, honest.call(method, arguments)).await?;
    println!(
        "ktest: services: {program} under the ring fuzzer: {calls} honest calls answered; \
         frames in use {} at most, {} after, both against before",
        peak as i64 - before as i64,
        after as i64 - before as i64,
    );
    all([
        expect_eq(
            &format!("how the fuzzer of {program} ended"),
            exit.context("waiting")?.context("process_wait")?,
            process::Exit::Exited(0),
        ),
        ensure(failures.is_empty(), || {
            format!("honest calls to {program} failed: {failures:?}")
        }),
        ensure(calls >= 10, || {
            format!("only {calls} honest calls to {program} were made meanwhile")
        }),
        ensure(peak >= before + CHANNEL_FRAMES, || {
            format!("no fuzzer's connection to {program} held a channel ({peak} frames at most)")
        }),
        expect_eq(
            &format!("whether {program} answered at the end"),
            last.is_ok(),
            true,
        ),
        ensure(after <= before + CHANNEL_FRAMES / 2, || {
            format!(
                "{} more frames in use after fuzzing {program}",
                after - before
            )
        }),
    ])
}
