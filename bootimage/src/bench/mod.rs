//! `cargo boot bench`: boot the kernel with `kbench` (tests/bench) as the first process,
//! collect its results, print them as a table and write `target/bench/latest.json`; then,
//! if asked, compare with an earlier file and check the targets of issues 10 and 11
//! (`targets`).
//!
//! By default QEMU runs with `-icount shift=0`, where the guest's TSC counts instructions:
//! every figure is exact and repeats run after run, on any host. `--cycles` drops icount and
//! reports (emulated) cycles and nanoseconds instead, which vary and, under TCG, say little
//! about real hardware.

pub mod json;
mod machine;
mod profile;
pub mod report;
pub mod smp;
pub mod table;
pub mod targets;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::check::{self, Expect};
use crate::error::Context;
use crate::image::Image;
use crate::qemu::{Accel, AccelChoice, Boot, Console, Qemu, Run, SerialLine};
use crate::{Error, Result, guest, setup, workspace_root};
use report::{Mode, Report};

/// What `cargo boot bench` was asked to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Measure cycles in real time instead of instructions under icount.
    pub cycles: bool,
    /// Run only the benchmarks whose names contain this.
    pub filter: Option<String>,
    /// An earlier report to compare with.
    pub compare: Option<PathBuf>,
    /// Check the targets and fail on any miss.
    pub check: bool,
    /// Instructions per function instead of the table (`--profile`, with `--filter`).
    pub profile: bool,
}

impl Options {
    /// Parses the words after `bench`.
    pub fn parse(words: &[&str]) -> Result<Options, String> {
        let mut options = Options::default();
        let mut words = words.iter();
        while let Some(&word) = words.next() {
            let mut value = |flag: &str| {
                words
                    .next()
                    .map(|value| value.to_string())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match word {
                "--cycles" => options.cycles = true,
                "--check" => options.check = true,
                "--profile" => options.profile = true,
                "--filter" => options.filter = Some(value(word)?),
                "--compare" => options.compare = Some(value(word)?.into()),
                _ => return Err(format!("unknown bench option `{word}`")),
            }
        }
        if options.profile
            && (options.cycles
                || options.check
                || options.compare.is_some()
                || options.filter.is_none())
        {
            return Err(
                "--profile takes --filter NAME (NAME$ for that one alone) and no other option"
                    .into(),
            );
        }
        if options.check && options.cycles {
            return Err("--check judges instruction counts: run it without --cycles".into());
        }
        if options
            .filter
            .as_deref()
            .is_some_and(|f| f.contains([',', ' ']))
        {
            return Err("--filter takes one word without commas".into());
        }
        Ok(options)
    }

    fn mode(&self) -> Mode {
        if self.cycles {
            Mode::Cycles
        } else {
            Mode::Icount
        }
    }
}

/// How long a benchmark boot may take (a full icount run takes a few seconds).
pub const TIMEOUT: Duration = Duration::from_secs(300);
/// kbench's last line when every selected benchmark ran (tests/bench/src/harness.rs).
const DONE: &str = "kbench: all benchmarks ran";
/// kbench's progress lines, shown as they arrive.
const PROGRESS: &str = "kbench:";

/// Where each run's report goes.
pub fn latest_path() -> PathBuf {
    workspace_root().join("target/bench/latest.json")
}

/// Run the benchmarks as `options` say; Ok(false) when `--check` found a miss.
pub fn run(options: &Options, accel: AccelChoice) -> Result<bool> {
    if options.profile {
        setup::ensure(&setup::QEMU)?;
        profile::run(options.filter.as_deref().unwrap_or_default())?;
        return Ok(true);
    }
    // Read the earlier report first: a bad path should not cost a whole run.
    let earlier = options.compare.as_deref().map(read_report).transpose()?;
    setup::ensure(&setup::QEMU)?;
    guest::build(guest::BENCH_PACKAGES)?;
    let mode = options.mode();
    let run = boot(options, accel.accel)?;
    let output = report::parse_guest(run.lines.iter().map(|line| line.text.as_str()))
        .map_err(|error| Error::new(format!("kbench printed a bad result line: {error}")))?;
    if output.results.is_empty() && output.unavailable.is_empty() {
        return Err(Error::new(format!(
            "no benchmark name contains `{}`",
            options.filter.as_deref().unwrap_or_default()
        )));
    }
    let accel_name = match (mode, accel.accel) {
        (Mode::Cycles, Accel::Kvm) => "kvm",
        _ => "tcg",
    };
    let report = Report::of_guest(output, accel_name, mode);
    print_header(&report);
    println!("{}", table::results(&report));
    let path = latest_path();
    write_report(&report, &path)?;
    println!("bootimage: wrote {}", path.display());
    if let Some(earlier) = earlier {
        println!("{}", table::comparison(&earlier, &report));
    }
    Ok(!options.check || check_targets(&report))
}

/// The disk benchmarks' disk, made new for each run: FAT32 for the file service's (the
/// block benchmarks read it raw).
pub fn disk() -> Result<std::path::PathBuf> {
    let path = crate::workspace_root()
        .join("target")
        .join("bench-disk.img");
    crate::disk::make(&path, &[])?;
    Ok(path)
}

/// Boot kbench and return its run, which must have completed.
fn boot(options: &Options, accel: Accel) -> Result<Run> {
    let filter = options.filter.as_deref().unwrap_or_default();
    boot_kbench(filter, !options.cycles, 1, accel)
}

/// Boot `kbench ARG` on `cores` cores, under icount or not, and return its run, which must
/// have completed.
fn boot_kbench(arg: &str, icount: bool, cores: u32, accel: Accel) -> Result<Run> {
    let console = Console::Scripted { timeout: TIMEOUT };
    let mut qemu = Qemu::new(Boot::Direct(Image::bench(arg)), accel, console);
    qemu.icount = icount;
    qemu.cores = cores;
    qemu.disk = Some(disk()?);
    println!("bootimage: {}", qemu.command_line()?);
    let run = qemu.run(&mut |line: &SerialLine| {
        if line.text.starts_with(PROGRESS) {
            println!("{}", line.text);
        }
    })?;
    let expect = Expect {
        lines: vec![DONE.into()],
        test_report: false,
        disk: None,
    };
    let failures = check::judge(&run, &expect);
    if failures.is_empty() {
        return Ok(run);
    }
    println!("---- kbench serial log ----");
    for line in &run.lines {
        println!("{}", line.text);
    }
    if !run.stderr.trim().is_empty() {
        println!("---- QEMU stderr ----\n{}", run.stderr.trim_end());
    }
    println!("---- end of log ----");
    Err(Error::new(format!(
        "the benchmark run failed: {}",
        failures.join("; ")
    )))
}

fn print_header(report: &Report) {
    let machine = &report.machine;
    let mode = match report.mode {
        Mode::Icount => "icount (-icount shift=0): figures are exact and repeatable".to_owned(),
        Mode::Cycles => format!(
            "cycles: TSC at {:.0} MHz; noisy under emulation, not real hardware figures",
            machine.tsc_hz / 1e6
        ),
    };
    println!(
        "bootimage: {} on {}, {}; {mode}",
        machine.qemu, machine.cpu, machine.accel
    );
}

fn check_targets(report: &Report) -> bool {
    println!("bootimage: targets, on medians in {}:", report.mode.unit());
    let lines = targets::check(report);
    for line in &lines {
        println!("  {line}");
    }
    let misses = lines.iter().filter(|line| !line.verdict.holds()).count();
    println!(
        "bootimage: {} of {} targets hold, {misses} missed",
        lines.len() - misses,
        lines.len()
    );
    misses == 0
}

fn read_report(path: &Path) -> Result<Report> {
    let text = fs::read_to_string(path).context(format!("reading {}", path.display()))?;
    json::parse(&text)
        .and_then(|value| Report::from_json(&value))
        .map_err(|error| Error::new(format!("{}: {error}", path.display())))
}

fn write_report(report: &Report, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).context(format!("creating {}", dir.display()))?;
    }
    let text = report.to_json().pretty() + "\n";
    fs::write(path, text).context(format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        assert_eq!(Options::parse(&[]), Ok(Options::default()));
        assert_eq!(
            Options::parse(&["--filter", "port_call", "--compare", "old.json", "--check"]),
            Ok(Options {
                cycles: false,
                filter: Some("port_call".into()),
                compare: Some("old.json".into()),
                check: true,
                profile: false,
            })
        );
        assert!(
            Options::parse(&["--profile", "--filter", "null_syscall$"])
                .unwrap()
                .profile
        );
        assert!(Options::parse(&["--profile"]).is_err());
        assert!(Options::parse(&["--profile", "--filter", "x", "--check"]).is_err());
        assert_eq!(Options::parse(&["--cycles"]).unwrap().mode(), Mode::Cycles);
        assert!(Options::parse(&["--filter"]).is_err());
        assert!(Options::parse(&["--fast"]).is_err());
        assert!(Options::parse(&["--filter", "a,b"]).is_err());
        assert!(Options::parse(&["--cycles", "--check"]).is_err());
    }

    #[test]
    fn reports_are_written_where_compare_reads_them() {
        let dir = std::env::temp_dir().join(format!("keel-bench-test-{}", std::process::id()));
        let path = dir.join("nested/latest.json");
        let report = report::tests::sample_report(Mode::Icount);
        write_report(&report, &path).unwrap();
        assert_eq!(read_report(&path).unwrap(), report);
        fs::remove_dir_all(&dir).unwrap();
        let error = read_report(&dir.join("missing.json")).unwrap_err();
        assert!(error.to_string().starts_with("reading "), "{error}");
    }
}
