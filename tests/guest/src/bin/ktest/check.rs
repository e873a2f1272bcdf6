//! Assertions for tests: each failure says what was expected and what happened.

use alloc::format;
use alloc::string::String;
use core::fmt::{Debug, Display};

/// `Ok` if `actual == expected`, else "`what`: expected .., got ..".
pub fn expect_eq<T: PartialEq + Debug>(what: &str, actual: T, expected: T) -> Result<(), String> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected:?}, got {actual:?}"))
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
