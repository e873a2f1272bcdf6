//! Building the guest crates (kernel and user programs) for the bare-metal target.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::error::Context;
use crate::setup::GUEST_TARGET;
use crate::{Error, Result, workspace_root};

/// The packages every demo image needs besides its programs': the kernel and `init`.
pub const DEMO_BASE: &[&str] = &["kernel", "init"];
/// The first process: a program, but never one a manifest starts.
const INIT: &str = "init";
/// What makes a binary a Keel program: it links the runtime.
const RUNTIME: &str = "keel-rt";

/// A program a manifest may name: a binary of a workspace package that links `keel-rt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The binary's name, which is the boot module's and the manifest's.
    pub name: String,
    /// The package that builds it.
    pub package: String,
    /// Built for [`HARD_FLOAT_TARGET`] (`[package.metadata.keel] float = "hard"`).
    pub hard_float: bool,
}

/// The target of programs with hardware floating point (x86_64-unknown-none is soft-float):
/// no_std, linked statically without libc by rust-lld at a fixed address, aborting on panic
/// (docs/decisions/008-hard-float-programs.md).
pub const HARD_FLOAT_TARGET: &str = "x86_64-unknown-linux-gnu";
const HARD_FLOAT_RUSTFLAGS: &str = "-C linker=rust-lld -C linker-flavor=ld.lld \
    -C relocation-model=static -C link-arg=-no-pie -C link-arg=-static -C panic=abort";

/// Every program of the workspace at `root`, read with `cargo metadata`: a new package
/// is a program as soon as it exists, with no list here to add it to.
pub fn programs_at(root: &Path) -> Result<Vec<Program>> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .current_dir(root)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        return Err(Error::new(format!(
            "cargo metadata failed: {}",
            output.status
        )));
    }
    let metadata: Metadata = serde_json::from_slice(&output.stdout)
        .map_err(|error| Error::new(format!("reading cargo metadata's output: {error}")))?;
    Ok(programs_of(metadata))
}

/// The programs of this workspace ([`programs_at`]).
pub fn programs() -> Result<Vec<Program>> {
    programs_at(workspace_root())
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    targets: Vec<Target>,
    dependencies: Vec<Dependency>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

impl Package {
    /// `[package.metadata.keel] float = "hard"`.
    fn hard_float(&self) -> bool {
        let float = self
            .metadata
            .as_ref()
            .and_then(|m| m.pointer("/keel/float"));
        float.and_then(|f| f.as_str()) == Some("hard")
    }
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

#[derive(Deserialize)]
struct Dependency {
    name: String,
    /// `None` for a normal dependency; `dev` or `build` otherwise.
    kind: Option<String>,
}

fn programs_of(metadata: Metadata) -> Vec<Program> {
    let mut programs: Vec<Program> = metadata
        .packages
        .iter()
        .filter(|package| {
            package
                .dependencies
                .iter()
                .any(|d| d.name == RUNTIME && d.kind.is_none())
        })
        .flat_map(|package| {
            let bins = package
                .targets
                .iter()
                .filter(|t| t.kind.iter().any(|k| k == "bin"));
            bins.filter(|bin| bin.name != INIT).map(|bin| Program {
                name: bin.name.clone(),
                package: package.name.clone(),
                hard_float: package.hard_float(),
            })
        })
        .collect();
    programs.sort_by(|a, b| a.name.cmp(&b.name));
    programs
}

/// The packages that build `names` (programs of `programs`), each once, after [`DEMO_BASE`].
pub fn demo_packages(names: &[String], programs: &[Program]) -> Vec<String> {
    let mut packages: Vec<String> = DEMO_BASE.iter().map(|p| p.to_string()).collect();
    let wanted = programs.iter().filter(|p| names.contains(&p.name));
    for program in wanted {
        if !packages.contains(&program.package) {
            packages.push(program.package.clone());
        }
    }
    packages
}

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
    "virtio-blk",
    "fs",
];
/// The programs a suite starts besides `kchild`, as boot modules of its image.
pub const SUITE_PROGRAMS: &[(&str, &[&str])] = &[
    ("console", &["console", "shell", "hello"]),
    // The real services the ring fuzzer attacks.
    ("services", &["hello-service", "kv"]),
    ("storage", &["virtio-blk"]),
    ("files", &["virtio-blk", "fs"]),
];
/// The packages `cargo boot bench` needs: the kernel, `keel-bench`, which provides `kbench`,
/// and the disk driver its block benchmarks start.
pub const BENCH_PACKAGES: &[&str] = &["kernel", "keel-bench", "virtio-blk", "fs"];

/// Guest builds get their own target directory: the outer `cargo run`/`cargo test` may hold
/// the lock on target/ while we build, and host and guest artifacts never mix.
pub fn target_dir() -> PathBuf {
    workspace_root().join("target").join("guest")
}

/// Where the release binary `name` of a guest build lands.
pub fn binary(name: &str) -> PathBuf {
    target_dir().join(GUEST_TARGET).join("release").join(name)
}

/// Build `packages` (in release mode): one cargo invocation for the bare-metal target, and
/// one for [`HARD_FLOAT_TARGET`] if any of them is a hard-float program, whose binaries are
/// then put beside the others (so [`binary`] finds every program in one place). Cargo's
/// own progress and errors go to stderr as usual.
pub fn build(packages: &[impl AsRef<str>]) -> Result<()> {
    let packages: Vec<&str> = packages.iter().map(AsRef::as_ref).collect();
    let hard: Vec<Program> = programs()?
        .into_iter()
        .filter(|p| p.hard_float && packages.contains(&p.package.as_str()))
        .collect();
    let soft: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| !hard.iter().any(|p| p.package == *package))
        .collect();
    if !soft.is_empty() {
        cargo_build(&soft, GUEST_TARGET, None)?;
    }
    if hard.is_empty() {
        return Ok(());
    }
    let hard_packages: Vec<&str> = hard.iter().map(|p| p.package.as_str()).collect();
    cargo_build(
        &hard_packages,
        HARD_FLOAT_TARGET,
        Some(HARD_FLOAT_RUSTFLAGS),
    )?;
    for program in &hard {
        let built = target_dir()
            .join(HARD_FLOAT_TARGET)
            .join("release")
            .join(&program.name);
        let to = binary(&program.name);
        std::fs::copy(&built, &to).context(format!("copying {}", built.display()))?;
    }
    Ok(())
}

/// `cargo build --release --target TARGET` of `packages` into the guest target directory,
/// with `rustflags` (for the target's crates only: cargo keeps RUSTFLAGS from host crates,
/// the proc macros, when --target is given).
fn cargo_build(packages: &[&str], target: &str, rustflags: Option<&str>) -> Result<()> {
    // Under `cargo run`/`cargo test`, CARGO names the cargo that started us.
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(workspace_root())
        .args(["build", "--release", "--target", target, "--target-dir"])
        .arg(target_dir());
    if let Some(flags) = rustflags {
        command.env(
            "RUSTFLAGS",
            flags.split_whitespace().collect::<Vec<_>>().join(" "),
        );
    }
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
    fn the_workspace_programs_are_its_runtime_linked_binaries_but_init() {
        let names: Vec<String> = programs().unwrap().into_iter().map(|p| p.name).collect();
        for program in ["console", "shell", "hello", "hello-service", "kv", "kchild"] {
            assert!(names.iter().any(|n| n == program), "{program} in {names:?}");
        }
        for not in ["init", "kernel", "bootimage"] {
            assert!(!names.iter().any(|n| n == not), "{not} in {names:?}");
        }
    }

    /// A newcomer's package is a program by existing: a throwaway workspace with a package
    /// nobody told bootimage about.
    #[test]
    fn a_new_package_is_a_program_without_being_listed() {
        let root = env::temp_dir().join(format!("keel-new-program-{}", std::process::id()));
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "Cargo.toml",
            "[workspace]\nresolver = \"2\"\nmembers = [\"rt\", \"ledger\", \"tool\"]\n",
        );
        write(
            "rt/Cargo.toml",
            "[package]\nname = \"keel-rt\"\nversion = \"0.1.0\"\n",
        );
        write("rt/src/lib.rs", "");
        write(
            "ledger/Cargo.toml",
            "[package]\nname = \"ledger\"\nversion = \"0.1.0\"\n\
             [dependencies]\nkeel-rt = { path = \"../rt\" }\n",
        );
        write("ledger/src/main.rs", "fn main() {}\n");
        // A binary without the runtime is a host tool, not a program.
        write(
            "tool/Cargo.toml",
            "[package]\nname = \"tool\"\nversion = \"0.1.0\"\n",
        );
        write("tool/src/main.rs", "fn main() {}\n");
        let found = programs_at(&root);
        std::fs::remove_dir_all(&root).unwrap();
        let ledger = Program {
            name: "ledger".into(),
            package: "ledger".into(),
            hard_float: false,
        };
        assert_eq!(found.unwrap(), std::slice::from_ref(&ledger));
        assert_eq!(
            demo_packages(&["ledger".into()], &[ledger]),
            ["kernel", "init", "ledger"]
        );
    }
}
