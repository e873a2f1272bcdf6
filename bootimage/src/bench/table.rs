//! The tables `cargo boot bench` prints: the results, and their change against an earlier run.

use std::fmt::Write;

use super::json::number;
use super::report::Report;

/// The benchmark every other median is divided by in the table's last column.
const BASELINE: &str = "null_syscall";
/// The benchmark whose median per call the footnote also gives as a rate.
const THROUGHPUT: &str = "service_throughput";

/// `service_throughput` as calls per million units (instructions, or cycles).
fn calls_per_million(report: &Report) -> Option<f64> {
    let per_call = report.result(THROUGHPUT)?.median;
    (per_call > 0.0).then(|| 1e6 / per_call)
}

/// The results, one line each: iterations, min, median, p99 (per operation) and the median
/// as a multiple of `null_syscall`'s; nanoseconds too when the unit is cycles.
pub fn results(report: &Report) -> String {
    let mut out = String::new();
    let baseline = report.result(BASELINE).map(|r| r.median);
    let ns = report.mode == super::report::Mode::Cycles;
    let _ = write!(
        out,
        "{:<26} {:>10} {:>11} {:>11} {:>11} {:>7}",
        "benchmark", "iterations", "min", "median", "p99", "× null"
    );
    if ns {
        let _ = write!(out, " {:>11}", "median ns");
    }
    out.push('\n');
    for r in &report.results {
        let ratio = match baseline {
            Some(base) if base > 0.0 => format!("{:.1}", r.median / base),
            _ => "-".into(),
        };
        let _ = write!(
            out,
            "{:<26} {:>10} {:>11} {:>11} {:>11} {:>7}",
            r.name,
            r.iterations,
            number(r.min),
            number(r.median),
            number(r.p99),
            ratio
        );
        if let Some(median_ns) = report.nanoseconds(r.median) {
            let _ = write!(out, " {:>11}", format!("{median_ns:.1}"));
        }
        out.push('\n');
    }
    for u in &report.unavailable {
        let _ = writeln!(out, "{:<26} not yet available: needs {}", u.name, u.needs);
    }
    let _ = write!(
        out,
        "({} per operation: per round trip; per switch for yield_cross_as, per call for \
         service_call_batch64 and service_throughput, per interrupt for irq_to_server, per \
         1 MiB for bulk_*, memcpy_1mib, service_vec_1mib and service_bulk_1mib)",
        report.mode.unit()
    );
    if let Some(rate) = calls_per_million(report) {
        let _ = write!(
            out,
            "\n({THROUGHPUT}: {} calls per million {})",
            number(rate.round()),
            report.mode.unit()
        );
    }
    out
}

/// Each benchmark's median before and after, and the change in percent.
pub fn comparison(before: &Report, after: &Report) -> String {
    let mut out = String::new();
    if before.mode != after.mode {
        let _ = writeln!(
            out,
            "warning: comparing {} figures with {} figures: they measure different things",
            before.mode.name(),
            after.mode.name()
        );
    }
    let _ = writeln!(
        out,
        "{:<26} {:>11} {:>11} {:>9}",
        "benchmark (median)", "before", "after", "change"
    );
    for r in &after.results {
        let (old, change) = match before.result(&r.name) {
            Some(old) => (number(old.median), percent_change(old.median, r.median)),
            None => ("-".into(), "new".into()),
        };
        let _ = writeln!(
            out,
            "{:<26} {:>11} {:>11} {:>9}",
            r.name,
            old,
            number(r.median),
            change
        );
    }
    for old in &before.results {
        if after.result(&old.name).is_none() {
            let _ = writeln!(
                out,
                "{:<26} {:>11} {:>11} {:>9}",
                old.name,
                number(old.median),
                "-",
                "not run"
            );
        }
    }
    out.truncate(out.trim_end().len());
    out
}

fn percent_change(before: f64, after: f64) -> String {
    if before == 0.0 {
        return if after == 0.0 { "0.0%" } else { "n/a" }.into();
    }
    format!("{:+.1}%", (after - before) / before * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::Mode;
    use crate::bench::report::tests::sample_report;

    #[test]
    fn the_table_shows_each_result_and_its_multiple_of_null() {
        let table = results(&sample_report(Mode::Icount));
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("benchmark"), "{table}");
        assert!(!lines[0].contains("median ns"), "{table}");
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["yield_cross_as", "10000", "650.5", "650.5", "650.5", "9.3"]
        );
        assert!(lines[3].starts_with("service_call"), "{table}");
        assert!(
            lines[3].contains("not yet available: needs #[service]"),
            "{table}"
        );
        assert!(table.ends_with("and service_bulk_1mib)"), "{table}");
    }

    #[test]
    fn the_footnote_gives_throughput_as_a_rate() {
        let mut report = sample_report(Mode::Icount);
        report.results[1].name = THROUGHPUT.into();
        report.results[1].median = 2373.17;
        let table = results(&report);
        assert!(
            table.ends_with("(service_throughput: 421 calls per million instructions)"),
            "{table}"
        );
    }

    #[test]
    fn cycles_tables_add_nanoseconds() {
        let table = results(&sample_report(Mode::Cycles));
        assert!(
            table.lines().next().unwrap().ends_with("median ns"),
            "{table}"
        );
        // 70 cycles at 999.9361 MHz.
        assert!(table.lines().nth(1).unwrap().ends_with(" 70.0"), "{table}");
    }

    #[test]
    fn the_comparison_shows_changes_new_and_missing_benchmarks() {
        let before = sample_report(Mode::Icount);
        let mut after = before.clone();
        after.results[0].median = 77.0;
        after.results[1].name = "renamed".into();
        let text = comparison(&before, &after);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[1], ["null_syscall", "70", "77", "+10.0%"]);
        assert_eq!(rows[2], ["renamed", "-", "650.5", "new"]);
        assert_eq!(rows[3], ["yield_cross_as", "650.5", "-", "not", "run"]);
    }

    #[test]
    fn comparing_different_modes_warns() {
        let text = comparison(&sample_report(Mode::Cycles), &sample_report(Mode::Icount));
        assert!(
            text.starts_with("warning: comparing cycles figures with icount"),
            "{text}"
        );
        assert_eq!(percent_change(0.0, 0.0), "0.0%");
        assert_eq!(percent_change(200.0, 150.0), "-25.0%");
    }
}
