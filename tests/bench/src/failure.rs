//! Why a benchmark could not produce a result, phrased for the log.

use alloc::format;
use alloc::string::String;
use core::fmt;

/// A benchmark that failed to set up, to run, or to verify what it moved.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Attach what was being done to an error (the kernel's, or a service call's).
pub trait Context<T> {
    fn context(self, what: &str) -> Result<T, Failure>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, Failure> {
        self.map_err(|error| Failure(format!("{what}: {error}")))
    }
}

/// Fails with `why` unless `condition` holds.
pub fn ensure(condition: bool, why: impl FnOnce() -> String) -> Result<(), Failure> {
    if condition {
        Ok(())
    } else {
        Err(Failure(why()))
    }
}
