//! Checks: boots that must show certain things to pass, run a few at a time. `cargo boot test`
//! and the host test crate share this, so both judge a boot the same way.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::Duration;

use crate::image::Image;
use crate::qemu::{Accel, Boot, Console, Nic, Qemu, Run};

/// The in-guest test suites, each run by `ktest SUITE` in its own boot. To add one, add its
/// name here and implement it in tests/guest.
pub const SUITES: &[&str] = &[
    "preemption",
    "faults",
    "syscalls",
    "memory",
    "processes",
    "capabilities",
    "ipc_messages",
    "shared_pages",
    "exception_handlers",
    "threads",
    "services",
    "system",
    "console",
    "hardening",
    "fuzz",
    "chaos",
    "storage",
    "files",
    STRESS,
];

/// The suites that run IPC, booted a second time with the fast path off: the general path is
/// the reference, and every test must pass on it too (checks named `SUITE_general_path`).
pub const IPC_SUITES: &[&str] = &["ipc_messages", "exception_handlers", "threads", "services"];
/// What names a suite's boot with the fast path off.
pub const GENERAL_PATH_SUFFIX: &str = "_general_path";

/// The suites that drive PCI devices, booted a second time on QEMU's `pc` machine, which
/// has no ECAM: configuration space goes through the kernel (checks named
/// `SUITE_legacy_pci`).
pub const LEGACY_PCI_SUITES: &[&str] = &["storage"];
/// What names a suite's boot on the machine without ECAM.
pub const LEGACY_PCI_SUFFIX: &str = "_legacy_pci";

/// How the campaigns' figure lines start (`cargo boot fuzz`, `cargo boot chaos`, and the
/// stress suite's).
const CAMPAIGNS: &[&str] = &["fuzz: ", "chaos: ", "stress: "];

/// The suite that loads every core at once, and the cores it boots with at least.
pub const STRESS: &str = "stress";
pub const STRESS_CORES: u32 = 4;

/// A suite's check on `cores` cores: [`Check::suite`], or for a campaign its default run;
/// `storage` and `files` get a blank disk of their own; `stress` gets at least
/// [`STRESS_CORES`]. Named after the suite, with `_smpN` on more than one core (but
/// `stress`, whose cores are its point), and then every core must come online. More cores
/// than [`HOST_CORES`] run on one host thread ([`Qemu::one_thread`]).
pub fn suite_check(suite: &str, cores: u32, accel: Accel) -> crate::Result<Check> {
    let mut check = match suite {
        crate::chaos::SUITE => crate::chaos::Options::default().check(accel)?,
        _ => Check::suite(suite, accel),
    };
    if cores > 1 && suite != STRESS {
        check.name = smp_name(suite, cores);
    }
    check.qemu.cores = cores;
    if suite == STRESS {
        check.qemu.cores = cores.max(STRESS_CORES);
    }
    if check.qemu.cores > 1 {
        check
            .expect
            .lines
            .push(format!("smp: {} cores online", check.qemu.cores));
    }
    if check.qemu.cores > HOST_CORES {
        // More vCPUs than host cores: multi-threaded, four vCPU threads on a two-core host
        // (often busy with other QEMUs) leave a lock holder's thread descheduled while the
        // others spin on the kernel lock, past its watchdog: the stress suite took 33 s
        // where it takes 15 here and once ran past the 90 s timeout, and several suites
        // failed at `-smp 4` that way. One host thread runs the cores in turn instead
        // (still that many real cores to the kernel, interleaved, with IPIs and TLB
        // shootdowns between them), and the lock's spin (`pause`) hands it to the next.
        check.qemu.one_thread = true;
    }
    match suite {
        STORAGE => with_scratch_disk(check),
        FILES => {
            // A FAT32 disk of its own, never the user's; fsck must find it clean after.
            let disk = crate::workspace_root()
                .join("target")
                .join(format!("files-disk-{}.img", check.name));
            crate::disk::make(&disk, &[])?;
            check.qemu.disk = Some(disk);
            check.expect.disk = Some(Vec::new());
            Ok(check)
        }
        _ => Ok(check),
    }
}

/// The suite of the file service, which boots with a FAT32 disk.
pub const FILES: &str = "files";

/// `check` with a blank disk named after it (`target/test-disk-NAME.img`), so that checks
/// with disks can run side by side.
fn with_scratch_disk(mut check: Check) -> crate::Result<Check> {
    let name = format!("test-disk-{}.img", check.name);
    let disk = crate::workspace_root().join("target").join(name);
    crate::qemu::blank_disk(&disk)?;
    check.qemu.disk = Some(disk);
    Ok(check)
}

/// The suite of the block driver, which boots with a disk.
pub const STORAGE: &str = "storage";

/// How long a suite may run under TCG before we call it hung.
pub const SUITE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the scripted demo (`cargo boot </dev/null`) may run.
pub const DEMO_TIMEOUT: Duration = Duration::from_secs(60);
/// Guest cores running at once: one per core on our two-core machines.
pub const PARALLEL: usize = 2;
/// The cores of the machines `cargo test` runs on (ours, and CI's): a guest of more runs
/// its cores on one host thread.
pub const HOST_CORES: u32 = 2;

/// Cores the demo boots with unless `--smp` says otherwise (`cargo boot`, `image`, `iso`,
/// and `cargo test`'s demo boot).
pub const DEMO_CORES: u32 = 2;

/// The core counts besides one that `cargo test` boots every suite with (but `stress`,
/// which always runs on [`STRESS_CORES`]), as checks named `SUITE_smpN` ([`smp_name`]).
pub const SMP_CORES: &[u32] = &[2, 4];

/// The name of `suite`'s check on `cores` cores: `SUITE_smpN`.
pub fn smp_name(suite: &str, cores: u32) -> String {
    format!("{suite}_smp{cores}")
}

/// The suite and core count a `SUITE_smpN` name stands for.
pub fn parse_smp_name(name: &str) -> Option<(&str, u32)> {
    let (suite, cores) = name.rsplit_once("_smp")?;
    let cores: u32 = cores.parse().ok()?;
    (cores > 1 && smp_name(suite, cores) == name).then_some((suite, cores))
}

/// The kernel read QEMU's interrupt wiring from its ACPI MADT: its I/O APIC, and the
/// override that puts ISA line 0 on input 2.
pub const INTERRUPTS_FROM_MADT: &str = "interrupts: I/O APIC at 0xfec00000 (24 inputs); ISA 0 -> input 2; ISA 5 -> input 5 level; ISA 9 -> input 9 level; ISA 10 -> input 10 level; ISA 11 -> input 11 level, from the ACPI MADT";
/// The kernel found PCI configuration space through QEMU q35's ACPI MCFG.
pub const ECAM_FROM_MCFG: &str = "pci: ECAM at 0xb0000000 for 256 buses, from the ACPI MCFG";
/// The kernel found no MCFG (QEMU's `pc`) and reaches configuration space itself.
pub const CONFIG_THROUGH_PORTS: &str =
    "pci: no ACPI MCFG: configuration space through ports 0xcf8/0xcfc";
/// What the kernel prints when `fastpath=off` took effect.
pub const FAST_PATH_OFF: &str = "ipc: fast path off";
/// The line the demo's init prints first; `cargo boot` times the boot up to it.
pub const INIT_STARTED: &str = "init: started";
/// The line the demo's init prints when everything it runs has finished.
pub const DEMO_COMPLETE: &str = "init: demo complete";
/// How the guest test runner closes a suite that passed.
pub const TESTS_PASSED: &str = "KEEL TESTS PASSED";
const TESTS_FAILED: &str = "KEEL TESTS FAILED";

/// The demo's disk, kept across runs.
pub fn demo_disk() -> std::path::PathBuf {
    crate::workspace_root().join("target").join("keel-disk.img")
}

/// The scripted demo boot, exactly as `cargo boot` runs it without a terminal, its web
/// server forwarded from the host's `http_port`.
pub fn demo_qemu(boot: Boot, accel: Accel, http_port: u16) -> Qemu {
    let console = Console::Scripted {
        timeout: DEMO_TIMEOUT,
    };
    Qemu {
        nic: Some(Nic::http(http_port)),
        disk: Some(demo_disk()),
        ..Qemu::new(boot, accel, console)
    }
}

/// A boot of one test suite: direct with [`Image::suite`], or from an ISO of it. The guest
/// may ask for input (`qemu::TYPE_REQUEST`).
pub fn suite_qemu(boot: Boot, accel: Accel) -> Qemu {
    campaign_qemu(boot, accel, SUITE_TIMEOUT)
}

/// [`suite_qemu`] for a campaign whose length its options set: its own `timeout`.
pub fn campaign_qemu(boot: Boot, accel: Accel, timeout: Duration) -> Qemu {
    Qemu {
        typist: true,
        ..Qemu::new(boot, accel, Console::Scripted { timeout })
    }
}

/// What a boot must show to pass, besides powering off with status 33.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// Each must be part of some serial line.
    pub lines: Vec<String>,
    /// The guest runs a test suite: it must print [`TESTS_PASSED`] and no failed test.
    pub test_report: bool,
    /// After the boot, the disk must be clean (`fsck.vfat -n`) and hold these files
    /// (path, bytes) as mtools reads them.
    pub disk: Option<Vec<(String, Vec<u8>)>>,
}

impl Expect {
    pub fn suite() -> Self {
        Expect {
            lines: Vec::new(),
            test_report: true,
            disk: None,
        }
    }

    pub fn demo() -> Self {
        Expect {
            lines: vec![
                INTERRUPTS_FROM_MADT.into(),
                ECAM_FROM_MCFG.into(),
                INIT_STARTED.into(),
                DEMO_COMPLETE.into(),
            ],
            test_report: false,
            disk: None,
        }
    }
}

/// One named boot and what it must show.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub qemu: Qemu,
    pub expect: Expect,
}

impl Check {
    /// Test suite `suite`, booted directly, named after the suite.
    pub fn suite(suite: &str, accel: Accel) -> Self {
        Check {
            name: suite.into(),
            qemu: suite_qemu(Boot::Direct(Image::suite(suite)), accel),
            expect: Expect::suite(),
        }
    }

    /// Test suite `suite` with the IPC fast path off, named `SUITE_general_path`; the
    /// kernel must say it is off.
    pub fn suite_general_path(suite: &str, accel: Accel) -> Self {
        Check {
            name: format!("{suite}{GENERAL_PATH_SUFFIX}"),
            qemu: suite_qemu(Boot::Direct(Image::suite_general_path(suite)), accel),
            expect: Expect {
                lines: vec![FAST_PATH_OFF.into()],
                ..Expect::suite()
            },
        }
    }

    /// [`suite_check`] on QEMU's `pc` machine, named `SUITE_legacy_pci`: the same tests
    /// must pass with configuration space through the kernel, which must say so.
    pub fn suite_legacy_pci(suite: &str, accel: Accel) -> crate::Result<Self> {
        let mut check = Check::suite(suite, accel);
        check.name = format!("{suite}{LEGACY_PCI_SUFFIX}");
        check.qemu.machine = crate::qemu::Machine::Pc;
        check.expect.lines.push(CONFIG_THROUGH_PORTS.into());
        with_scratch_disk(check)
    }
}

/// A finished check. It passed if `failures` is empty.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub name: String,
    pub failures: Vec<String>,
}

/// Why `run` fails `expect`; empty if it passes. Passing takes everything at once: status 33,
/// every expected line, and for a suite the passed-report with no failed test. Any one alone
/// can lie (a triple fault exits 0, a hang prints nothing more, a buggy runner may still
/// power off with success).
pub fn judge(run: &Run, expect: &Expect) -> Vec<String> {
    let mut failures = Vec::new();
    let texts = || run.lines.iter().map(|line| line.text.as_str());
    let failed: Vec<_> = texts().filter_map(failed_test).collect();
    if !failed.is_empty() {
        failures.push(format!("failed tests: {}", failed.join(", ")));
    }
    if expect.test_report && !texts().any(|text| text.starts_with(TESTS_PASSED)) {
        failures.push(match texts().find(|text| text.starts_with(TESTS_FAILED)) {
            Some(report) => format!("the guest reported `{report}`"),
            None => format!("no `{TESTS_PASSED}` line"),
        });
    }
    for needed in &expect.lines {
        if run.first_line(needed).is_none() {
            failures.push(format!("no line containing `{needed}`"));
        }
    }
    if !run.exit.is_success() {
        failures.push(run.exit.to_string());
    }
    failures
}

/// Whether a serial line is one of the guest's `test SUITE::NAME ... RESULT` lines.
pub fn is_test_line(text: &str) -> bool {
    text.starts_with("test ") && text.contains(" ... ")
}

/// The test's name if `text` reports a failed test.
fn failed_test(text: &str) -> Option<&str> {
    let (name, result) = text.strip_prefix("test ")?.split_once(" ... ")?;
    result.starts_with("FAILED").then_some(name)
}

/// Run `checks`, their QEMUs' host threads at most `parallel` at a time (a QEMU of more
/// takes them all: a guest core starved by another QEMU stalls the kernel lock's holder
/// past the lock's watchdog; one whose cores share one host thread takes one), printing each guest test line as it arrives, each
/// check's result as it ends, and the whole serial log of each failure. Outcomes come back
/// in the order of `checks`.
pub fn run_checks(checks: &[Check], parallel: usize) -> Vec<Outcome> {
    let parallel = parallel.max(1);
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(vec![None; checks.len()]);
    let (free, freed) = (Mutex::new(parallel), Condvar::new());
    thread::scope(|scope| {
        for _ in 0..parallel.min(checks.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(check) = checks.get(index) else {
                        break;
                    };
                    let threads = check.qemu.host_threads().clamp(1, parallel);
                    let mut left = freed
                        .wait_while(free.lock().unwrap(), |left| *left < threads)
                        .unwrap();
                    *left -= threads;
                    drop(left);
                    let outcome = run_check(check);
                    *free.lock().unwrap() += threads;
                    freed.notify_all();
                    outcomes.lock().unwrap()[index] = Some(outcome);
                }
            });
        }
    });
    outcomes
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|outcome| outcome.expect("every check ran"))
        .collect()
}

fn run_check(check: &Check) -> Outcome {
    let on_line = &mut |line: &crate::qemu::SerialLine| {
        // The campaigns' figures too: they are what they report.
        if is_test_line(&line.text) || CAMPAIGNS.iter().any(|c| line.text.starts_with(c)) {
            println!("{}", line.text);
        }
    };
    let failures = match check.qemu.run(on_line) {
        Ok(run) => {
            let mut failures = judge(&run, &check.expect);
            failures.extend(disk_failures(check));
            report(check, &run, &failures);
            failures
        }
        Err(error) => {
            println!("boot {} ... FAILED: {error}", check.name);
            vec![error.to_string()]
        }
    };
    Outcome {
        name: check.name.clone(),
        failures,
    }
}

/// What is wrong with the disk a check booted with, if it has expectations of it.
fn disk_failures(check: &Check) -> Vec<String> {
    let (Some(files), Some(path)) = (&check.expect.disk, &check.qemu.disk) else {
        return Vec::new();
    };
    let mut failures = Vec::new();
    match crate::disk::fsck(path) {
        Ok(Ok(())) => {}
        Ok(Err(said)) => failures.push(format!("fsck.vfat -n finds the disk unclean: {said}")),
        Err(error) => failures.push(error.to_string()),
    }
    for (name, bytes) in files {
        match crate::disk::read_file(path, name) {
            Ok(read) if read == *bytes => {}
            Ok(read) => failures.push(format!(
                "the disk's {name} holds {:?}, not {:?}",
                String::from_utf8_lossy(&read),
                String::from_utf8_lossy(bytes)
            )),
            Err(error) => failures.push(format!("reading {name} from the disk: {error}")),
        }
    }
    failures
}

/// One check's result line; for a failure, the whole serial log under a header saying why.
fn report(check: &Check, run: &Run, failures: &[String]) {
    // Hold stdout for the whole block (println! re-enters the same lock), so the other
    // worker's lines do not land inside a log.
    let _stdout = std::io::stdout().lock();
    let seconds = run.elapsed.as_secs_f64();
    if failures.is_empty() {
        println!("boot {} ... ok ({seconds:.1} s)", check.name);
        return;
    }
    println!("boot {} ... FAILED ({seconds:.1} s)", check.name);
    println!(
        "---- {} serial log; failed: {} ----",
        check.name,
        failures.join("; ")
    );
    for line in &run.lines {
        println!("{}", line.text);
        if let Some(named) = crate::symbols::annotate(&line.text) {
            println!("{}", named.join("\n"));
        }
    }
    if !run.stderr.trim().is_empty() {
        println!(
            "---- {} QEMU stderr ----\n{}",
            check.name,
            run.stderr.trim_end()
        );
    }
    println!("---- end of {} ----", check.name);
}

/// Print the failures and the closing `LABEL: N passed, M failed` line; true if all passed.
pub fn print_summary(label: &str, outcomes: &[Outcome]) -> bool {
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.failures.is_empty()).collect();
    for outcome in &failed {
        println!(
            "{label}: {} FAILED: {}",
            outcome.name,
            outcome.failures.join("; ")
        );
    }
    println!(
        "{label}: {} passed, {} failed",
        outcomes.len() - failed.len(),
        failed.len()
    );
    failed.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::SerialLine;
    use crate::status::Exit;

    fn run(lines: &[&str], exit: Exit) -> Run {
        Run {
            lines: lines
                .iter()
                .map(|text| SerialLine {
                    at: Duration::ZERO,
                    text: (*text).into(),
                })
                .collect(),
            stderr: String::new(),
            exit,
            elapsed: Duration::from_secs(1),
        }
    }

    const PASSED: &[&str] = &[
        "keel: booting",
        "test memory::map_zeroed ... ok",
        "test memory::unmap_splits ... ok",
        "KEEL TESTS PASSED 2",
    ];

    #[test]
    fn a_suite_passes_with_its_report_and_status_33() {
        assert!(judge(&run(PASSED, Exit::Status(33)), &Expect::suite()).is_empty());
    }

    #[test]
    fn a_passed_report_does_not_excuse_a_bad_status() {
        let failures = judge(&run(PASSED, Exit::Status(63)), &Expect::suite());
        assert_eq!(failures, ["status 63: kernel panic"]);
    }

    #[test]
    fn failed_tests_are_named_even_if_the_guest_claims_success() {
        let lines = [
            "test faults::divide ... ok",
            "test faults::page ... FAILED: no fault reported",
            "KEEL TESTS PASSED 2",
        ];
        let failures = judge(&run(&lines, Exit::Status(33)), &Expect::suite());
        assert_eq!(failures, ["failed tests: faults::page"]);
    }

    #[test]
    fn a_failed_report_and_a_missing_report_are_told_apart() {
        let lines = ["test a::b ... FAILED: x", "KEEL TESTS FAILED 1"];
        let failures = judge(&run(&lines, Exit::Status(35)), &Expect::suite());
        assert_eq!(
            failures,
            [
                "failed tests: a::b",
                "the guest reported `KEEL TESTS FAILED 1`",
                "status 35: the guest reported failure (poweroff FAILURE)",
            ]
        );
        let timeout = Exit::TimedOut(SUITE_TIMEOUT);
        let failures = judge(&run(&["test a::b ... ok"], timeout), &Expect::suite());
        assert_eq!(
            failures,
            [
                "no `KEEL TESTS PASSED` line",
                "timeout after 90 s (QEMU killed)"
            ]
        );
    }

    #[test]
    fn the_demo_needs_the_wiring_and_both_init_lines() {
        let done = [
            INTERRUPTS_FROM_MADT,
            ECAM_FROM_MCFG,
            "init: started",
            "hello from hello",
            "init: demo complete",
        ];
        assert!(judge(&run(&done, Exit::Status(33)), &Expect::demo()).is_empty());
        let failures = judge(&run(&done[..4], Exit::Status(33)), &Expect::demo());
        assert_eq!(failures, ["no line containing `init: demo complete`"]);
        let failures = judge(&run(&done[1..], Exit::Status(33)), &Expect::demo());
        assert_eq!(
            failures,
            [format!("no line containing `{INTERRUPTS_FROM_MADT}`")]
        );
        let failures = judge(
            &run(&[&done[..1], &done[2..]].concat(), Exit::Status(33)),
            &Expect::demo(),
        );
        assert_eq!(failures, [format!("no line containing `{ECAM_FROM_MCFG}`")]);
    }

    #[test]
    fn test_lines_are_recognised() {
        assert!(is_test_line("test processes::spawn ... ok"));
        assert!(!is_test_line("testing the timer"));
        assert_eq!(failed_test("test a::b ... FAILED: why"), Some("a::b"));
        assert_eq!(failed_test("test a::b ... ok"), None);
    }

    #[test]
    fn smp_names_round_trip() {
        assert_eq!(smp_name("memory", 4), "memory_smp4");
        assert_eq!(parse_smp_name("memory_smp4"), Some(("memory", 4)));
        assert_eq!(
            parse_smp_name("shared_pages_smp2"),
            Some(("shared_pages", 2))
        );
        assert_eq!(parse_smp_name("memory"), None);
        assert_eq!(parse_smp_name("memory_smp1"), None);
        assert_eq!(parse_smp_name("memory_smp04"), None);
        assert_eq!(parse_smp_name("memory_smpx"), None);
    }

    #[test]
    fn more_cores_than_the_host_run_on_one_thread_and_must_all_come_online() {
        let one = suite_check("memory", 1, Accel::Tcg).unwrap();
        assert_eq!((one.name.as_str(), one.qemu.one_thread), ("memory", false));
        assert!(one.expect.lines.is_empty());
        let two = suite_check("memory", 2, Accel::Tcg).unwrap();
        assert_eq!(
            (two.name.as_str(), two.qemu.one_thread),
            ("memory_smp2", false)
        );
        assert_eq!(two.expect.lines, ["smp: 2 cores online"]);
        let four = suite_check("memory", 4, Accel::Tcg).unwrap();
        assert_eq!(
            (four.name.as_str(), four.qemu.one_thread),
            ("memory_smp4", true)
        );
        assert_eq!(four.expect.lines, ["smp: 4 cores online"]);
        assert_eq!(four.qemu.host_threads(), 1);
        let stress = suite_check(STRESS, 1, Accel::Tcg).unwrap();
        assert_eq!(
            (stress.name.as_str(), stress.qemu.cores),
            (STRESS, STRESS_CORES)
        );
        assert!(stress.qemu.one_thread);
    }
}
