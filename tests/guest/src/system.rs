//! What the `system` suite shares between `ktest`, which runs the supervisor (init's
//! library) on manifests of its own, and the `kchild` roles those manifests start.

use core::time::Duration;

/// How soon calls in flight to a killed server must fail: well past the client's 20 ms
/// liveness probe, far short of a hang.
pub const CALLS_FAIL_WITHIN: Duration = Duration::from_secs(1);
/// How soon a killed server (restart backoff 20 ms) must be back: looked up again and
/// answering.
pub const RESTARTED_WITHIN: Duration = Duration::from_secs(1);

/// A service that says which start of its server answers, and how often it has answered.
#[keel_rt::service]
pub trait Witness {
    /// The server's pid, and how many calls of `who` it answered before this one.
    #[idempotent]
    async fn who(&self) -> (u32, u64);
    /// The server's pid, answered `ms` milliseconds after the call came: an idempotent
    /// call in flight for that long.
    #[idempotent]
    async fn who_later(&self, ms: u64) -> u32;
    /// Never answers: a call in flight for as long as the server lives.
    async fn hold(&self);
    /// Counts this call; how many this start of the server has counted. Running it twice
    /// counts twice, so it is not idempotent.
    async fn count(&self) -> u64;
}
