//! Assertions for tests: each failure says what was expected and what happened. And waits
//! with deadlines, so that nothing a test waits for can hang the suite.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt::{Debug, Display};
use core::time::Duration;

use keel_rt::sync::Mutex;
use keel_rt::thread::{self, JoinHandle};
use keel_rt::time;

/// `Ok` if `actual == expected`, else "`what`: expected .., got ..".
pub fn expect_eq<T: PartialEq + Debug>(what: &str, actual: T, expected: T) -> Result<(), String> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected:?}, got {actual:?}"))
    }
}

/// `Ok` if `actual >= least`, else "`what`: expected at least .., got ..".
pub fn expect_at_least<T: PartialOrd + Debug>(
    what: &str,
    actual: T,
    least: T,
) -> Result<(), String> {
    if actual >= least {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected at least {least:?}, got {actual:?}"
        ))
    }
}

/// `Ok` if `condition` holds, else the message `why` builds.
pub fn ensure(condition: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(why()) }
}

/// Turns a setup step's error into a test failure that names the step.
pub trait Context<T> {
    fn context(self, what: &str) -> Result<T, String>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, String> {
        self.map_err(|error| format!("{what} failed: {error}"))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: &str) -> Result<T, String> {
        self.ok_or_else(|| format!("{what}: nothing there"))
    }
}

/// `Ok` if every check passed, else all the failures, one after another.
pub fn all(checks: impl IntoIterator<Item = Result<(), String>>) -> Result<(), String> {
    let failures: alloc::vec::Vec<String> = checks.into_iter().filter_map(Result::err).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// Work on a thread of its own, whose result a test waits for with a deadline: a call the
/// kernel never wakes then fails its test instead of hanging the suite.
pub struct Background<T> {
    what: String,
    worker: JoinHandle,
    result: Arc<Mutex<Option<T>>>,
}

/// Starts `f` on a thread of its own; `what` names it in failures.
pub fn background<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<Background<T>, String> {
    let result = Arc::new(Mutex::new(None));
    let slot = result.clone();
    let worker = thread::spawn(move || *slot.lock() = Some(f()))
        .context(&format!("starting a thread for {what}"))?;
    Ok(Background {
        what: String::from(what),
        worker,
        result,
    })
}

impl<T> Background<T> {
    /// Its result, if it comes within `limit`; otherwise the thread is left stuck.
    pub fn wait(self, limit: Duration) -> Result<T, String> {
        let deadline = time::ticks() + time::ticks_in(limit);
        while !self.worker.is_finished() {
            if time::ticks() > deadline {
                return Err(format!("{} did not return within {limit:?}", self.what));
            }
            time::sleep(Duration::from_millis(1));
        }
        self.result.lock().take().context(&self.what)
    }
}

/// Waits (a millisecond at a time) until `condition` holds, at most
/// [`WAIT`](crate::receive::WAIT).
pub fn wait_until(
    what: &str,
    mut condition: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = time::ticks() + time::ticks_in(crate::receive::WAIT);
    while !condition()? {
        if time::ticks() > deadline {
            return Err(format!("timed out waiting until {what}"));
        }
        time::sleep(Duration::from_millis(1));
    }
    Ok(())
}
