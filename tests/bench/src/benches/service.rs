//! `#[service]` calls to `Ping` in a helper process, through the ring transport: one call
//! in flight (`service_call`), and 64 at once on one connection (`service_call_batch64`,
//! reported per call).
//!
//! The client runs on a thread of kbench's process ([`scoped`]), the whole measured run
//! inside one `block_on`; each window spans one `.await` of the calls, so the executor, the
//! generated client, the rings, the server's executor and dispatch, and the kernel's
//! notifications and switches in between are all in it, and nothing else is.

use alloc::format;

use futures_util::future::join_all;
use keel_rt::executor;

use crate::benches::Helper;
use crate::clock;
use crate::failure::{Context, Failure, ensure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::ping::PingClient;
use crate::roles;
use crate::scoped;
use crate::stats::Stats;

/// Calls in flight in a `service_call_batch64` sample.
pub const BATCH: u64 = 64;
/// A batch sample is 64 calls: fewer samples suffice.
pub const BATCH_ITERATIONS: usize = 1_000;
pub const BATCH_WARMUP: usize = 100;

/// `service_call`: one `client.ping(x).await`, nothing else in flight.
pub fn call(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_client(measure, one_at_a_time)
}

/// `service_call_batch64`: `join_all` of 64 calls on one connection, awaited together.
pub fn batch64(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_client(measure, batched)
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
            for (x, answer) in (base..).zip(answers) {
                let answer = answer.context("ping")?;
                ensure(answer == x + 1, || format!("ping({x}) answered {answer}"))?;
            }
            Ok(elapsed)
        })
        .await
}

/// Starts the server, connects, runs `bench` on the executor, and stops the server; all on
/// a thread of its own, whose IPC buffer the runtime may take.
fn with_client(
    measure: &mut Measure,
    bench: impl AsyncFnOnce(&mut Measure, &PingClient) -> Result<Stats, Failure> + Send,
) -> Result<Stats, Failure> {
    scoped::run(|| {
        let (helper, port) = Helper::start_server(roles::SERVICE)?;
        let stats = executor::block_on(async {
            let client = PingClient::connect(port).context("connecting to the server")?;
            bench(measure, &client).await
        });
        helper.kill()?;
        port.delete().context("deleting the server's port")?;
        stats
    })?
}
