//! Boots Keel under QEMU: every in-guest test suite, the demo image, and a suite from a GRUB
//! ISO. Our own `main` (harness = false) so the guest's `test SUITE::NAME ... ok` lines show
//! as they are. Arguments work like libtest's: `cargo test -p keel-tests -- memory`.

use std::process::ExitCode;

use bootimage::check::{self, Outcome};
use bootimage::qemu::detect_accel;
use bootimage::{guest, setup};
use keel_tests::{Filter, all_checks, packages, prepare};

const LABEL: &str = "in_guest";

fn main() -> ExitCode {
    let filter = Filter::from_args(std::env::args().skip(1));
    let all = all_checks();
    let names: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|name| filter.matches(name))
        .collect();
    if filter.list {
        for name in &names {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    if names.is_empty() {
        // A filter meant for another test binary: nothing to build or boot.
        check::print_summary(LABEL, &[]);
        return ExitCode::SUCCESS;
    }

    let accel = detect_accel();
    println!("bootimage: {accel}");
    if let Err(error) = setup::ensure_guest_target()
        .and_then(|()| setup::ensure(&setup::QEMU))
        .and_then(|()| packages(&names))
        .and_then(|packages| guest::build(&packages))
    {
        eprintln!("{LABEL}: cannot run any check: {error}");
        return ExitCode::FAILURE;
    }

    // A check that cannot even be prepared (no GRUB for the ISO, say) fails on its own; the
    // others still run.
    let mut checks = Vec::new();
    let mut unprepared = Vec::new();
    for name in names {
        match prepare(name, accel.accel) {
            Ok(check) => checks.push(check),
            Err(error) => {
                println!("boot {name} ... FAILED: {error}");
                unprepared.push(Outcome {
                    name: name.into(),
                    failures: vec![error.to_string()],
                });
            }
        }
    }
    let mut outcomes = check::run_checks(&checks, check::PARALLEL);
    outcomes.extend(unprepared);
    if check::print_summary(LABEL, &outcomes) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
