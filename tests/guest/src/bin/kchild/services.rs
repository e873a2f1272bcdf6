//! `probe-server`: serves [`Probe`] for the `services` suite, after announcing its port
//! through the bootstrap port it was started with.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};
use core::cell::{Cell, RefCell};
use core::future::poll_fn;
use core::task::{Poll, Waker};
use core::time::Duration;

use keel_guest_tests::services::{Probe, ProbeClient, checksum, serve_probe};
use keel_rt::ipc::Port;
use keel_rt::{bootstrap, executor};

use crate::{Failure, OrSetup};

pub fn probe_server() -> Result<i32, Failure> {
    bootstrap::announce().or_setup("announcing the server")?;
    executor::block_on(serve_probe(Prober::default()))
}

/// With the argument `linger`, it waits to be killed instead of exiting.
pub fn probe_client_dies(arg: &str) -> Result<i32, Failure> {
    let probe = ProbeClient::connect(Port::from_handle(1))
        .map_err(|error| Failure::check(format!("connecting: {error:?}")))?;
    // Polled once, the call goes out; it never comes back.
    let stalled = executor::block_on(executor::timeout(Duration::from_millis(20), probe.stall()));
    // As a killed client would: nothing closes the connection.
    core::mem::forget(probe);
    if arg == "linger" {
        loop {
            keel_rt::time::sleep(Duration::from_secs(1));
        }
    }
    match stalled {
        Err(_) => Ok(0),
        Ok(answer) => Err(Failure::check(format!("`stall` came back: {answer:?}"))),
    }
}

pub fn console_reader_dies() -> Result<i32, Failure> {
    let console = console::ConsoleClient::connect(Port::from_handle(1))
        .map_err(|error| Failure::check(format!("connecting: {error:?}")))?;
    // Given time to reach the console, the read waits there for a line that never comes.
    let read = executor::block_on(executor::timeout(
        Duration::from_millis(50),
        console.read_line(),
    ));
    match read {
        Err(_) => Ok(0),
        Ok(answer) => Err(Failure::check(format!("`read_line` came back: {answer:?}"))),
    }
}

#[derive(Default)]
struct Prober {
    notes: RefCell<Vec<u64>>,
    gathering: RefCell<Gathering>,
    stalled: Rc<Cell<u64>>,
    holding: Rc<Cell<u64>>,
    /// Bumped by `release`; `hold` calls wait for it to change.
    releases: Cell<u64>,
    released: RefCell<Vec<Waker>>,
}

/// Counts a `stall` call while it runs: until its future is dropped.
struct Stalling(Rc<Cell<u64>>);

impl Stalling {
    fn new(count: &Rc<Cell<u64>>) -> Stalling {
        count.set(count.get() + 1);
        Stalling(count.clone())
    }
}

impl Drop for Stalling {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// The `gather` calls that have arrived in the current round, waiting for the rest.
#[derive(Default)]
struct Gathering {
    arrived: u64,
    round: u64,
    waiting: Vec<Waker>,
}

impl Probe for Prober {
    async fn checksum(&self, data: keel_rt::service::Bulk) -> (u64, u64) {
        (data.len() as u64, data.words().fold(0, u64::wrapping_add))
    }

    async fn checksum_bytes(&self, data: &[u8]) -> (u64, u64) {
        checksum(data)
    }

    async fn peek(&self, memory: keel_rt::service::Cap) -> Option<u64> {
        let memory = keel_rt::mem::Memory::from_handle(memory.into_handle()?);
        let word = memory.map(keel_abi::prot::READ).ok().map(|mapping| {
            // SAFETY: the mapping is a whole page, alive until `memory` is deleted below; a
            // volatile read, since the client may write it meanwhile.
            unsafe { mapping.as_ptr().cast::<u64>().read_volatile() }
        });
        // Deleting the capability unmaps the page.
        let _ = memory.delete();
        word
    }

    async fn hold(&self, data: keel_rt::service::Bulk) -> (u64, u64) {
        let _running = Stalling::new(&self.holding);
        let started = self.releases.get();
        poll_fn(|cx| {
            if self.releases.get() != started {
                return Poll::Ready(());
            }
            self.released.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await;
        self.checksum(data).await
    }

    async fn release(&self) {
        self.releases.set(self.releases.get() + 1);
        self.released.borrow_mut().drain(..).for_each(Waker::wake);
    }

    async fn holding(&self) -> u64 {
        self.holding.get()
    }

    async fn nap(&self, ms: u64) -> u64 {
        keel_rt::time::sleep(Duration::from_millis(ms));
        ms
    }

    async fn echo(&self, value: u64) -> u64 {
        value
    }

    async fn echo_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        bytes.to_vec()
    }

    async fn gather(&self, value: u64, group: u64) -> u64 {
        let round = {
            let mut gathering = self.gathering.borrow_mut();
            let round = gathering.round;
            gathering.arrived += 1;
            if gathering.arrived >= group {
                gathering.arrived = 0;
                gathering.round += 1;
                gathering.waiting.drain(..).for_each(Waker::wake);
            }
            round
        };
        poll_fn(|cx| {
            let mut gathering = self.gathering.borrow_mut();
            if gathering.round != round {
                return Poll::Ready(());
            }
            gathering.waiting.push(cx.waker().clone());
            Poll::Pending
        })
        .await;
        // 0 to 12 ms, in an order unlike the calls'.
        executor::sleep(Duration::from_millis(value * 7 % 13)).await;
        value
    }

    async fn note(&self, value: u64) {
        self.notes.borrow_mut().push(value);
    }

    async fn notes(&self) -> Vec<u64> {
        self.notes.borrow().clone()
    }

    async fn stall(&self) {
        let _running = Stalling::new(&self.stalled);
        core::future::pending().await
    }

    async fn stalled(&self) -> u64 {
        self.stalled.get()
    }

    async fn fill(&self, len: u32) -> Vec<u8> {
        vec![0x5a; len as usize]
    }

    async fn greet(&self, name: &str) -> String {
        format!("hello, {name}")
    }
}

/// `probe-echo`: one call on a connection of its own, exit 0 when it is answered.
pub fn probe_echo() -> Result<i32, Failure> {
    let probe = ProbeClient::connect(Port::from_handle(1))
        .map_err(|error| Failure::check(format!("connecting: {error:?}")))?;
    match executor::block_on(probe.echo(11)) {
        Ok(11) => Ok(0),
        other => Err(Failure::check(format!("echo(11) -> {other:?}"))),
    }
}

/// `probe-client-borrows`: a connection whose wake port is the server's own, a port that
/// outlives this process; left open at exit.
pub fn probe_client_borrows() -> Result<i32, Failure> {
    let server = Port::from_handle(1);
    let hash = keel_guest_tests::services::PROBE_INTERFACE.hash;
    match keel_guest_tests::hostile::Hostile::try_connect_as(server, hash, server) {
        Ok(Ok(connection)) => {
            // As a killed client would: nothing closes the connection.
            core::mem::forget(connection);
            Ok(0)
        }
        other => Err(Failure::check(format!(
            "connecting: {:?}",
            other.map(|answer| answer.map(drop))
        ))),
    }
}
