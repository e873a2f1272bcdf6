//! `cargo boot fuzz [--calls N] [--seed S]`: the random-syscall campaign of issue 16, with
//! its leak audit (tests/guest/src/bin/ktest/suites/fuzz.rs), for as many calls as asked.
//! `cargo test` runs the same suite with its default of 200,000 calls.

use std::time::Duration;

use crate::check::{self, Check, Expect};
use crate::image::Image;
use crate::qemu::{Accel, Boot};

/// What `cargo boot fuzz` was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub calls: u64,
    pub seed: u64,
}

/// The seed when none is given.
pub const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

impl Default for Options {
    fn default() -> Self {
        Options {
            calls: 200_000,
            seed: SEED,
        }
    }
}

/// Calls the guest makes per second at the least, to size the timeout (several times as
/// many run under TCG).
const SLOWEST_CALLS_PER_SECOND: u64 = 5_000;

impl Options {
    pub fn parse(words: &[&str]) -> Result<Options, String> {
        let mut options = Options::default();
        for (flag, number) in numeric_flags(words)? {
            match flag {
                "--calls" => options.calls = number,
                "--seed" => options.seed = number,
                _ => return Err(format!("unknown fuzz option `{flag}`")),
            }
        }
        if options.calls == 0 {
            return Err("--calls wants at least 1".into());
        }
        Ok(options)
    }

    /// The boot that runs the campaign.
    pub fn check(&self, accel: Accel) -> Check {
        let image = Image::suite(&format!("fuzz {} {}", self.calls, self.seed));
        let timeout =
            check::SUITE_TIMEOUT + Duration::from_secs(self.calls / SLOWEST_CALLS_PER_SECOND);
        Check {
            name: "fuzz".into(),
            qemu: check::campaign_qemu(Boot::Direct(image), accel, timeout),
            expect: Expect::suite(),
        }
    }
}

/// `--flag NUMBER` pairs, in order: a campaign's options.
pub(crate) fn numeric_flags<'a>(words: &[&'a str]) -> Result<Vec<(&'a str, u64)>, String> {
    words
        .chunks(2)
        .map(|pair| match *pair {
            [flag, value] => parse_number(value)
                .map(|number| (flag, number))
                .ok_or_else(|| format!("{flag}: `{value}` is not a number")),
            [flag] => Err(format!("{flag} needs a value")),
            _ => unreachable!("chunks of two"),
        })
        .collect()
}

/// A decimal number, or a hexadecimal one with `0x`; `_` separators allowed.
fn parse_number(text: &str) -> Option<u64> {
    let text = text.replace('_', "");
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        assert_eq!(Options::parse(&[]), Ok(Options::default()));
        assert_eq!(
            Options::parse(&["--calls", "10_000_000", "--seed", "0x2a"]),
            Ok(Options {
                calls: 10_000_000,
                seed: 42
            })
        );
        assert!(Options::parse(&["--calls"]).is_err());
        assert!(Options::parse(&["--calls", "many"]).is_err());
        assert!(Options::parse(&["--calls", "0"]).is_err());
        assert!(Options::parse(&["--fast", "1"]).is_err());
    }
}
