//! Issue 6's performance targets, on medians in instructions, and the verdict on each.

use std::fmt;

use super::json::number;
use super::report::Report;

/// What a benchmark's median must not exceed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// A fixed count of instructions.
    Absolute(f64),
    /// A multiple of another benchmark's median.
    Relative { factor: f64, of: &'static str },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    pub bench: &'static str,
    pub limit: Limit,
}

const fn absolute(bench: &'static str, limit: f64) -> Target {
    Target {
        bench,
        limit: Limit::Absolute(limit),
    }
}

const fn relative(bench: &'static str, factor: f64, of: &'static str) -> Target {
    Target {
        bench,
        limit: Limit::Relative { factor, of },
    }
}

/// The targets, as the issue states them (service_call_batch64 per call).
pub const TARGETS: &[Target] = &[
    absolute("port_call_cross_as", 250.0),
    absolute("null_syscall", 60.0),
    absolute("yield_cross_as", 200.0),
    absolute("notify_roundtrip", 700.0),
    relative("service_call", 2.0, "port_call_cross_as"),
    relative("service_call_batch64", 0.5, "port_call_cross_as"),
    relative("bulk_zero_copy_1mib", 0.1, "bulk_copy_1mib"),
];

/// How one target fared. Anything but `Holds` is a miss.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Holds {
        median: f64,
        limit: f64,
    },
    Exceeds {
        median: f64,
        limit: f64,
    },
    /// The benchmark cannot be written yet; the guest said what it needs.
    Unavailable {
        needs: String,
    },
    /// The benchmark (or the one the limit refers to) was not in this run.
    NotMeasured {
        missing: &'static str,
    },
}

impl Verdict {
    pub fn holds(&self) -> bool {
        matches!(self, Verdict::Holds { .. })
    }
}

/// One line of the check's report.
pub struct Line {
    pub target: &'static Target,
    pub verdict: Verdict,
}

/// The verdict on every target.
pub fn check(report: &Report) -> Vec<Line> {
    TARGETS
        .iter()
        .map(|target| Line {
            target,
            verdict: judge(target, report),
        })
        .collect()
}

fn judge(target: &Target, report: &Report) -> Verdict {
    if let Some(u) = report.unavailable.iter().find(|u| u.name == target.bench) {
        return Verdict::Unavailable {
            needs: u.needs.clone(),
        };
    }
    let Some(result) = report.result(target.bench) else {
        return Verdict::NotMeasured {
            missing: target.bench,
        };
    };
    let limit = match target.limit {
        Limit::Absolute(limit) => limit,
        Limit::Relative { factor, of } => match report.result(of) {
            Some(other) => factor * other.median,
            None => return Verdict::NotMeasured { missing: of },
        },
    };
    let median = result.median;
    if median <= limit {
        Verdict::Holds { median, limit }
    } else {
        Verdict::Exceeds { median, limit }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.verdict.holds() { "ok  " } else { "MISS" };
        let rule = match self.target.limit {
            Limit::Absolute(limit) => number(limit),
            Limit::Relative { factor, of } => format!("{} × {of}", number(factor)),
        };
        write!(f, "{mark} {:<22} ≤ {rule}: ", self.target.bench)?;
        match &self.verdict {
            Verdict::Holds { median, limit } => {
                write!(f, "median {} ≤ {}", number(*median), number(*limit))
            }
            Verdict::Exceeds { median, limit } => write!(
                f,
                "median {} > {}, over by {} ({:.1}×)",
                number(*median),
                number(*limit),
                number(median - limit),
                median / limit
            ),
            Verdict::Unavailable { needs } => write!(f, "not available yet: needs {needs}"),
            Verdict::NotMeasured { missing } => {
                write!(f, "{missing} was not measured in this run")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::tests::sample_report;
    use crate::bench::report::{BenchResult, Mode};

    fn with(results: &[(&str, f64)]) -> Report {
        let mut report = sample_report(Mode::Icount);
        report.results = results
            .iter()
            .map(|&(name, median)| BenchResult {
                name: name.into(),
                iterations: 1,
                min: median,
                median,
                p99: median,
                mean: median,
                timer_ticks_inside: 0,
            })
            .collect();
        report
    }

    fn verdict(report: &Report, bench: &str) -> Verdict {
        check(report)
            .into_iter()
            .find(|line| line.target.bench == bench)
            .unwrap()
            .verdict
    }

    #[test]
    fn absolute_targets_hold_at_the_limit_and_miss_above_it() {
        let report = with(&[("null_syscall", 60.0), ("port_call_cross_as", 2699.0)]);
        assert!(verdict(&report, "null_syscall").holds());
        let miss = check(&report)
            .into_iter()
            .find(|line| line.target.bench == "port_call_cross_as")
            .unwrap();
        assert_eq!(
            miss.to_string(),
            "MISS port_call_cross_as     ≤ 250: median 2699 > 250, over by 2449 (10.8×)"
        );
    }

    #[test]
    fn relative_targets_use_the_other_median() {
        let report = with(&[
            ("bulk_copy_1mib", 2_000_000.0),
            ("bulk_zero_copy_1mib", 300_000.0),
        ]);
        assert_eq!(
            verdict(&report, "bulk_zero_copy_1mib"),
            Verdict::Exceeds {
                median: 300_000.0,
                limit: 200_000.0
            }
        );
        let report = with(&[("bulk_zero_copy_1mib", 1.0)]);
        assert_eq!(
            verdict(&report, "bulk_zero_copy_1mib"),
            Verdict::NotMeasured {
                missing: "bulk_copy_1mib"
            }
        );
    }

    #[test]
    fn unavailable_and_unmeasured_benchmarks_are_misses() {
        // The sample report lists service_call as unavailable and has no notify result.
        let report = sample_report(Mode::Icount);
        let service = verdict(&report, "service_call");
        assert_eq!(
            service,
            Verdict::Unavailable {
                needs: "#[service]".into()
            }
        );
        assert!(!service.holds());
        assert!(!verdict(&report, "notify_roundtrip").holds());
        let line = check(&report)
            .into_iter()
            .find(|line| line.target.bench == "notify_roundtrip")
            .unwrap();
        assert!(
            line.to_string()
                .ends_with("notify_roundtrip was not measured in this run")
        );
    }
}
