//! `#[service]` calls to `Ping` in a helper process, through the ring transport: one call
//! in flight (`service_call`), 64 at once on one connection (`service_call_batch64`), 256
//! at once over four connections (`service_throughput`), and byte arguments: a 4 KiB and a
//! 1 MiB `Vec<u8>` (`service_call_4k`, `service_vec_1mib`) and a 1 MiB `Bulk`
//! (`service_bulk_1mib`). Batches are reported per call.
//!
//! The client runs on a thread of kbench's process ([`scoped`]), the whole measured run
//! inside one `block_on`; each window spans one `.await` of calls built (not yet polled)
//! before it, so the executor, the generated client, the rings, the server's executor and
//! dispatch, and the kernel's notifications and switches in between are all in it, and
//! nothing else is. Arguments are made and filled before the window; answers are checked
//! after it.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use keel_rt::executor::{self, join_all};

use crate::benches::Helper;
use crate::benches::bulk::LEN;
use crate::clock;
use crate::failure::{Context, Failure, ensure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::ping::{PingClient, seen};
use crate::roles;
use crate::scoped;
use crate::stats::Stats;

/// Calls in flight in a `service_call_batch64` sample.
pub const BATCH: u64 = 64;
/// A batch sample is 64 calls: fewer samples suffice.
pub const BATCH_ITERATIONS: usize = 1_000;
pub const BATCH_WARMUP: usize = 100;

/// Connections of `service_throughput`, and calls in flight on each.
const CONNECTIONS: usize = 4;
const PER_CONNECTION: u64 = 64;
/// Calls in flight in a `service_throughput` sample.
pub const THROUGHPUT: u64 = CONNECTIONS as u64 * PER_CONNECTION;
/// A throughput sample is 256 calls: fewer samples still.
pub const THROUGHPUT_ITERATIONS: usize = 200;
pub const THROUGHPUT_WARMUP: usize = 20;

/// Samples of the benchmarks whose samples take tens of thousands of instructions or more
/// (a 4 KiB decode, a 1 MiB fill before each `Bulk` call).
pub const FEW_ITERATIONS: usize = 1_000;
pub const FEW_WARMUP: usize = 100;

/// The argument of `service_call_4k`: a page, the most a `Vec<u8>` carries inline.
const SMALL: usize = 4096;

/// `service_call`: one `client.ping(x).await`, nothing else in flight.
pub fn call(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_clients(measure, 1, async |measure, clients| {
        one_at_a_time(measure, &clients[0]).await
    })
}

/// `service_call_batch64`: `join_all` of 64 calls on one connection, awaited together.
pub fn batch64(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_clients(measure, 1, async |measure, clients| {
        batched(measure, &clients[0]).await
    })
}

/// `service_throughput`: 256 calls in flight, 64 on each of 4 connections to one server.
pub fn throughput(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_clients(measure, CONNECTIONS, many_connections)
}

/// `service_call_4k`: one call with a 4 KiB `Vec<u8>` argument (inline in the request).
pub fn call_4k(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_clients(measure, 1, async |measure, clients| {
        vec_calls(measure, &clients[0], SMALL).await
    })
}

/// `service_vec_1mib`: one call with a 1 MiB `Vec<u8>` argument (through the arena).
pub fn vec_1mib(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_clients(measure, 1, async |measure, clients| {
        vec_calls(measure, &clients[0], LEN).await
    })
}

/// `service_bulk_1mib`: one call with a 1 MiB `Bulk` argument, filled before the window.
pub fn bulk_1mib(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_clients(measure, 1, async |measure, clients| {
        bulk_calls(measure, &clients[0]).await
    })
}

async fn one_at_a_time(measure: &mut Measure<'_>, client: &PingClient) -> Result<Stats, Failure> {
    let mut x = 0;
    measure
        .run_async(async || {
            x += 1;
            let call = client.ping(x);
            let start = clock::now();
            let answer = call.await;
            let elapsed = clock::now() - start;
            let answer = answer.context("ping")?;
            ensure(answer == x + 1, || format!("ping({x}) answered {answer}"))?;
            Ok(elapsed)
        })
        .await
}

async fn batched(measure: &mut Measure<'_>, client: &PingClient) -> Result<Stats, Failure> {
    let mut base = 0;
    measure
        .run_async(async || {
            base += BATCH;
            // Made but not yet polled: the calls start inside the window.
            let calls = join_all((base..base + BATCH).map(|x| client.ping(x)));
            let start = clock::now();
            let answers = calls.await;
            let elapsed = clock::now() - start;
            check_pings(base, answers)?;
            Ok(elapsed)
        })
        .await
}

async fn many_connections(
    measure: &mut Measure<'_>,
    clients: &[PingClient],
) -> Result<Stats, Failure> {
    let mut base = 0;
    measure
        .run_async(async || {
            base += THROUGHPUT;
            let first = |connection: usize| base + connection as u64 * PER_CONNECTION;
            // One `join_all` per connection, all made but not yet polled.
            let calls = join_all(clients.iter().enumerate().map(|(connection, client)| {
                let first = first(connection);
                join_all((first..first + PER_CONNECTION).map(|x| client.ping(x)))
            }));
            let start = clock::now();
            let answers = calls.await;
            let elapsed = clock::now() - start;
            ensure(answers.len() == CONNECTIONS, || {
                format!("{} connections answered", answers.len())
            })?;
            for (connection, answers) in answers.into_iter().enumerate() {
                ensure(answers.len() as u64 == PER_CONNECTION, || {
                    format!("connection {connection}: {} answers", answers.len())
                })?;
                check_pings(first(connection), answers)?;
            }
            Ok(elapsed)
        })
        .await
}

/// Each answer must be its `ping(x)`'s `x + 1`, `x` counting from `first`.
fn check_pings(
    first: u64,
    answers: Vec<Result<u64, keel_rt::service::TransportError>>,
) -> Result<(), Failure> {
    for (x, answer) in (first..).zip(answers) {
        let answer = answer.context("ping")?;
        ensure(answer == x + 1, || format!("ping({x}) answered {answer}"))?;
    }
    Ok(())
}

/// Calls with a `len`-byte `Vec<u8>`, made before the window, stamped with the sample's
/// number in its first word and last byte.
async fn vec_calls(
    measure: &mut Measure<'_>,
    client: &PingClient,
    len: usize,
) -> Result<Stats, Failure> {
    let mut sample: u64 = 0;
    measure
        .run_async(async || {
            sample += 1;
            let mut data = vec![sample as u8; len];
            data[..8].copy_from_slice(&sample.to_le_bytes());
            let expected = seen(&data);
            let call = client.vec_seen(data);
            let start = clock::now();
            let answer = call.await;
            let elapsed = clock::now() - start;
            let answer = answer.context("vec_seen")?;
            ensure(answer == expected, || {
                format!("sent {expected:x?}, the server saw {answer:x?}")
            })?;
            Ok(elapsed)
        })
        .await
}

/// Calls with a 1 MiB `Bulk`, its room taken and filled before the window and stamped as
/// [`vec_calls`] stamps.
async fn bulk_calls(measure: &mut Measure<'_>, client: &PingClient) -> Result<Stats, Failure> {
    let mut sample: u64 = 0;
    measure
        .run_async(async || {
            sample += 1;
            let mut data = client
                .connection()
                .bulk(LEN)
                .context("taking room in the arena")?;
            let bytes = data
                .as_mut_slice()
                .ok_or_else(|| Failure("the client's own room is not writable".into()))?;
            bytes.fill(sample as u8);
            bytes[..8].copy_from_slice(&sample.to_le_bytes());
            let expected = seen(bytes);
            let call = client.bulk_seen(data);
            let start = clock::now();
            let answer = call.await;
            let elapsed = clock::now() - start;
            let answer = answer.context("bulk_seen")?;
            ensure(answer == expected, || {
                format!("sent {expected:x?}, the server saw {answer:x?}")
            })?;
            Ok(elapsed)
        })
        .await
}

/// Starts the server, makes `connections` connections to it, runs `bench` on the
/// executor, and stops the server; all on a thread of its own, whose IPC buffer the
/// runtime may take.
fn with_clients(
    measure: &mut Measure,
    connections: usize,
    bench: impl AsyncFnOnce(&mut Measure, &[PingClient]) -> Result<Stats, Failure> + Send,
) -> Result<Stats, Failure> {
    scoped::run(|| {
        let (helper, port) = Helper::start_server(roles::SERVICE)?;
        let stats = executor::block_on(async {
            let clients = (0..connections)
                .map(|_| PingClient::connect(port))
                .collect::<Result<Vec<_>, _>>()
                .context("connecting to the server")?;
            bench(measure, &clients).await
        });
        helper.kill()?;
        port.delete().context("deleting the server's port")?;
        stats
    })?
}
