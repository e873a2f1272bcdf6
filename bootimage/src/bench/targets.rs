//! The performance targets of issues 10 (kernel), 11 (services) and 13 (the disk), on medians in
//! instructions, and the verdict on each. A benchmark may carry more than one target.

use std::fmt;

use super::json::number;
use super::report::Report;

/// The figure a benchmark's median is held to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// A fixed count of instructions.
    Absolute(f64),
    /// A multiple of another benchmark's median.
    Relative { factor: f64, of: &'static str },
}

/// How the median must stand to the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// `median ≤ limit`.
    AtMost,
    /// `median < limit`.
    Below,
}

impl Bound {
    fn holds(self, median: f64, limit: f64) -> bool {
        match self {
            Bound::AtMost => median <= limit,
            Bound::Below => median < limit,
        }
    }

    /// The sign of a target that holds, and of one that misses.
    fn signs(self) -> (&'static str, &'static str) {
        match self {
            Bound::AtMost => ("≤", ">"),
            Bound::Below => ("<", "≥"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    pub bench: &'static str,
    pub bound: Bound,
    pub limit: Limit,
}

const fn at_most(bench: &'static str, limit: f64) -> Target {
    Target {
        bench,
        bound: Bound::AtMost,
        limit: Limit::Absolute(limit),
    }
}

const fn relative(bench: &'static str, bound: Bound, factor: f64, of: &'static str) -> Target {
    Target {
        bench,
        bound,
        limit: Limit::Relative { factor, of },
    }
}

/// The targets, as the issues state them (batches per call). Those relative to
/// `port_call_cross_as` follow it as the kernel gets faster; the absolute ones hold
/// regardless.
pub const TARGETS: &[Target] = &[
    // Issue 10: the kernel.
    at_most("port_call_cross_as", 250.0),
    at_most("port_call_cross_as_64b", 400.0),
    at_most("port_call_same_as", 220.0),
    at_most("yield_cross_as", 200.0),
    at_most("notify_roundtrip", 700.0),
    at_most("irq_to_server", 500.0),
    at_most("null_syscall", 60.0),
    at_most("sys_info_pid", 70.0),
    // Issue 11: services.
    at_most("service_call", 1200.0),
    relative("service_call", Bound::AtMost, 1.5, "port_call_cross_as"),
    at_most("service_call_batch64", 300.0),
    relative(
        "service_call_batch64",
        Bound::Below,
        0.5,
        "port_call_cross_as",
    ),
    at_most("service_bulk_1mib", 5000.0),
    relative("service_vec_1mib", Bound::AtMost, 1.2, "memcpy_1mib"),
    // Issue 13: the disk, in busy instructions (the sequential read per KiB).
    at_most("blk_read_4k", 10_000.0),
    at_most("blk_seq_read_16mib", 120.0),
    // Issue 13: files, per KiB (the write synced).
    at_most("fs_write_16mib", 600.0),
    at_most("fs_read_16mib", 400.0),
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
    if target.bound.holds(median, limit) {
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
        let (holds, misses) = self.target.bound.signs();
        write!(f, "{mark} {:<22} {holds} {rule}: ", self.target.bench)?;
        match &self.verdict {
            Verdict::Holds { median, limit } => {
                write!(f, "median {} {holds} {}", number(*median), number(*limit))
            }
            Verdict::Exceeds { median, limit } => write!(
                f,
                "median {} {misses} {}, over by {} ({:.1}×)",
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
        report.unavailable.clear();
        report
    }

    /// The verdicts on `bench`'s targets, in table order.
    fn verdicts(report: &Report, bench: &str) -> Vec<Verdict> {
        check(report)
            .into_iter()
            .filter(|line| line.target.bench == bench)
            .map(|line| line.verdict)
            .collect()
    }

    fn verdict(report: &Report, bench: &str) -> Verdict {
        verdicts(report, bench).remove(0)
    }

    fn line(report: &Report, bench: &str, index: usize) -> String {
        check(report)
            .into_iter()
            .filter(|line| line.target.bench == bench)
            .nth(index)
            .unwrap()
            .to_string()
    }

    #[test]
    fn absolute_targets_hold_at_the_limit_and_miss_above_it() {
        let report = with(&[("null_syscall", 60.0), ("port_call_cross_as", 778.0)]);
        assert!(verdict(&report, "null_syscall").holds());
        assert_eq!(
            line(&report, "port_call_cross_as", 0),
            "MISS port_call_cross_as     ≤ 250: median 778 > 250, over by 528 (3.1×)"
        );
    }

    #[test]
    fn relative_targets_use_the_other_median() {
        let report = with(&[
            ("memcpy_1mib", 131_072.0),
            ("service_vec_1mib", 3_000_000.0),
        ]);
        assert_eq!(
            verdict(&report, "service_vec_1mib"),
            Verdict::Exceeds {
                median: 3_000_000.0,
                limit: 1.2 * 131_072.0
            }
        );
        let report = with(&[("service_vec_1mib", 1.0)]);
        assert_eq!(
            verdict(&report, "service_vec_1mib"),
            Verdict::NotMeasured {
                missing: "memcpy_1mib"
            }
        );
    }

    #[test]
    fn a_benchmark_carries_each_of_its_targets() {
        // 1,000 is under the absolute 1,200 but over 1.5 × 500.
        let report = with(&[("service_call", 1000.0), ("port_call_cross_as", 500.0)]);
        let [absolute, relative] = verdicts(&report, "service_call").try_into().unwrap();
        assert!(absolute.holds());
        assert_eq!(
            relative,
            Verdict::Exceeds {
                median: 1000.0,
                limit: 750.0
            }
        );
        assert_eq!(
            line(&report, "service_call", 1),
            "MISS service_call           ≤ 1.5 × port_call_cross_as: \
             median 1000 > 750, over by 250 (1.3×)"
        );
    }

    #[test]
    fn a_strict_target_misses_at_the_limit() {
        let report = with(&[
            ("service_call_batch64", 250.0),
            ("port_call_cross_as", 500.0),
        ]);
        let [absolute, relative] = verdicts(&report, "service_call_batch64")
            .try_into()
            .unwrap();
        assert!(absolute.holds());
        assert!(!relative.holds());
        assert_eq!(
            line(&report, "service_call_batch64", 1),
            "MISS service_call_batch64   < 0.5 × port_call_cross_as: \
             median 250 ≥ 250, over by 0 (1.0×)"
        );
        let report = with(&[
            ("service_call_batch64", 249.5),
            ("port_call_cross_as", 500.0),
        ]);
        assert!(
            verdicts(&report, "service_call_batch64")
                .iter()
                .all(Verdict::holds)
        );
        assert!(line(&report, "service_call_batch64", 1).ends_with("median 249.5 < 250"));
    }

    #[test]
    fn every_issue_target_is_in_the_table() {
        let benches: Vec<&str> = TARGETS.iter().map(|t| t.bench).collect();
        for bench in [
            "port_call_cross_as",
            "port_call_cross_as_64b",
            "port_call_same_as",
            "yield_cross_as",
            "notify_roundtrip",
            "irq_to_server",
            "null_syscall",
            "sys_info_pid",
            "service_bulk_1mib",
            "service_vec_1mib",
            "blk_read_4k",
            "blk_seq_read_16mib",
            "fs_write_16mib",
            "fs_read_16mib",
        ] {
            assert_eq!(
                benches.iter().filter(|&&b| b == bench).count(),
                1,
                "{bench}"
            );
        }
        for bench in ["service_call", "service_call_batch64"] {
            assert_eq!(
                benches.iter().filter(|&&b| b == bench).count(),
                2,
                "{bench}"
            );
        }
        assert_eq!(TARGETS.len(), 18);
    }

    #[test]
    fn unavailable_and_unmeasured_benchmarks_are_misses() {
        // The sample report lists service_call as unavailable and has no notify result.
        let report = sample_report(Mode::Icount);
        let service = verdicts(&report, "service_call");
        assert_eq!(service.len(), 2);
        for verdict in &service {
            assert_eq!(
                *verdict,
                Verdict::Unavailable {
                    needs: "#[service]".into()
                }
            );
            assert!(!verdict.holds());
        }
        assert!(!verdict(&report, "notify_roundtrip").holds());
        assert!(
            line(&report, "notify_roundtrip", 0)
                .ends_with("notify_roundtrip was not measured in this run")
        );
    }
}
