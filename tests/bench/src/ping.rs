//! `Ping`, the service the service benchmarks call, and its server, `kbench service`.
//!
//! One method with one integer each way: the smallest call a `#[service]` can make, so what
//! is measured is the transport (rings, notifications, executors) and not the service.

use keel_abi::Error;
use keel_rt::{bootstrap, executor};

#[keel_rt::service]
pub trait Ping {
    /// `x + 1`: an answer that shows the server saw the argument.
    async fn ping(&self, x: u64) -> u64;
}

struct Server;

impl Ping for Server {
    async fn ping(&self, x: u64) -> u64 {
        x.wrapping_add(1)
    }
}

/// Announces the server's port on the bootstrap port (handle 1), then serves `Ping` until
/// killed. Returns only if the announcement fails.
pub fn serve() -> Result<(), Error> {
    executor::block_on(async {
        bootstrap::announce()?;
        serve_ping(Server).await
    })
}
