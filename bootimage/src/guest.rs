//! Building the guest crates (kernel and user programs) for the bare-metal target.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use crate::error::Context;
use crate::setup::GUEST_TARGET;
use crate::{Error, Result, workspace_root};

/// The programs a demo manifest may name (each package's binary has its name): the
/// servers, the shell, and the examples.
pub const DEMO_PROGRAMS: &[&str] = &["console", "shell", "hello", "hello-service", "kv"];
/// The packages the demo image needs: the kernel, `init` and [`DEMO_PROGRAMS`].
pub const DEMO_PACKAGES: &[&str] = &[
    "kernel",
    "init",
    "console",
    "shell",
    "hello",
    "hello-service",
    "kv",
];
/// The packages the in-guest test suites need: the kernel, `keel-guest-tests`, which
/// provides the `ktest` and `kchild` binaries, and the programs some suites drive
/// ([`SUITE_PROGRAMS`]).
pub const TEST_PACKAGES: &[&str] = &[
    "kernel",
    "keel-guest-tests",
    "console",
    "shell",
    "hello",
    "hello-service",
    "kv",
];
/// The programs a suite starts besides `kchild`, as boot modules of its image.
pub const SUITE_PROGRAMS: &[(&str, &[&str])] = &[
    ("console", &["console", "shell", "hello"]),
    // The real services the ring fuzzer attacks.
    ("services", &["hello-service", "kv"]),
];
/// The packages `cargo boot bench` needs: the kernel and `keel-bench`, which provides `kbench`.
pub const BENCH_PACKAGES: &[&str] = &["kernel", "keel-bench"];

/// Guest builds get their own target directory: the outer `cargo run`/`cargo test` may hold
/// the lock on target/ while we build, and host and guest artifacts never mix.
pub fn target_dir() -> PathBuf {
    workspace_root().join("target").join("guest")
}

/// Where the release binary `name` of a guest build lands.
pub fn binary(name: &str) -> PathBuf {
    target_dir().join(GUEST_TARGET).join("release").join(name)
}

/// Build `packages` (in release mode) with one cargo invocation. Cargo's own progress and
/// errors go to stderr as usual.
pub fn build(packages: &[&str]) -> Result<()> {
    // Under `cargo run`/`cargo test`, CARGO names the cargo that started us.
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--target",
            GUEST_TARGET,
            "--target-dir",
        ])
        .arg(target_dir());
    for package in packages {
        command.args(["-p", package]);
    }
    println!("bootimage: building {}", packages.join(" "));
    let status = command.status().context("running cargo")?;
    if !status.success() {
        return Err(Error::new(format!(
            "building the guest crates ({}) failed: cargo {status}",
            packages.join(" ")
        )));
    }
    Ok(())
}

/// The union of several package lists, in first-seen order, so one build covers them all.
pub fn union(lists: &[&[&'static str]]) -> Vec<&'static str> {
    let mut all = Vec::new();
    for package in lists.iter().flat_map(|list| list.iter()) {
        if !all.contains(package) {
            all.push(*package);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_live_under_the_guest_target_dir() {
        let kernel = binary("kernel");
        assert!(kernel.ends_with("target/guest/x86_64-unknown-none/release/kernel"));
        assert!(kernel.starts_with(workspace_root()));
    }

    #[test]
    fn union_keeps_order_and_drops_duplicates() {
        assert_eq!(
            union(&[&["a", "b"], &["b", "c", "a"], &["d"]]),
            ["a", "b", "c", "d"]
        );
    }

    #[test]
    fn the_demo_builds_the_kernel_init_and_every_program() {
        assert_eq!(DEMO_PACKAGES[..2], ["kernel", "init"]);
        assert_eq!(DEMO_PACKAGES[2..], *DEMO_PROGRAMS);
    }
}
