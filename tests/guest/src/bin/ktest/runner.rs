//! The test runner: a suite is a named list of test functions, run in order.
//!
//! Output is the contract with the host-side harness: one line per test,
//! `test SUITE::NAME ... ok` or `test SUITE::NAME ... FAILED: why`, then
//! `KEEL TESTS PASSED n` or `KEEL TESTS FAILED n`, and a power-off with the matching code.

use alloc::string::String;

use keel_abi::poweroff;
use keel_rt::{println, process, sys};

/// A test: `Ok` if the behaviour held, else what was expected and what happened.
pub type TestFn = fn() -> Result<(), String>;

pub struct Test {
    pub name: &'static str,
    pub run: TestFn,
}

pub struct Suite {
    pub name: &'static str,
    pub tests: &'static [Test],
}

/// `suite!(name: test_a, test_b, ..)`: a [`Suite`] of the functions `test_a`, `test_b`, ..
/// in the current module, named after them.
macro_rules! suite {
    ($name:ident: $($test:ident),* $(,)?) => {
        $crate::runner::Suite {
            name: stringify!($name),
            tests: &[$($crate::runner::Test { name: stringify!($test), run: $test }),*],
        }
    };
}
pub(crate) use suite;

/// Runs every test in `suite`, reports each, and powers off with the verdict.
pub fn run(suite: &Suite) -> ! {
    println!("ktest: suite {} ({} tests)", suite.name, suite.tests.len());
    let mut failed = 0;
    for test in suite.tests {
        match (test.run)() {
            Ok(()) => println!("test {}::{} ... ok", suite.name, test.name),
            Err(why) => {
                failed += 1;
                println!("test {}::{} ... FAILED: {why}", suite.name, test.name);
            }
        }
    }
    if failed == 0 {
        finish(true, suite.tests.len())
    } else {
        finish(false, failed)
    }
}

/// Prints the closing line and powers off: success with the number of tests passed,
/// failure with the number that failed.
pub fn finish(passed: bool, count: usize) -> ! {
    let (verdict, code) = if passed {
        ("PASSED", poweroff::SUCCESS)
    } else {
        ("FAILED", poweroff::FAILURE)
    };
    println!("KEEL TESTS {verdict} {count}");
    let Err(error) = sys::system_poweroff(code);
    println!("ktest: cannot power off: {error}");
    // Without the right, the exit code still tells: the kernel powers off after init ends.
    process::exit(if passed { 0 } else { 1 })
}
