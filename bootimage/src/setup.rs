//! Make the machine ready: the guest target for rustc, QEMU, and GRUB for ISO images.
//!
//! Written for a fresh Debian: as root we install what is missing with apt-get; as anyone else
//! we say exactly what to run and stop.

use std::env;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::Context;
use crate::{Error, Result, workspace_root};

/// The bare-metal target every guest crate is built for.
pub const GUEST_TARGET: &str = "x86_64-unknown-none";

/// Programs (and files) a feature needs, and the Debian packages that provide them.
#[derive(Debug)]
pub struct Tools {
    pub what: &'static str,
    pub programs: &'static [&'static str],
    pub files: &'static [&'static str],
    pub packages: &'static [&'static str],
}

pub const QEMU: Tools = Tools {
    what: "QEMU",
    programs: &["qemu-system-x86_64"],
    files: &[],
    packages: &["qemu-system-x86"],
};

/// For `cargo boot gdb`'s test, which drives gdb in batch mode.
pub const GDB: Tools = Tools {
    what: "gdb",
    programs: &["gdb"],
    files: &[],
    packages: &["gdb"],
};

/// grub-mkrescue lives in grub-common, but it can only build a BIOS-bootable ISO when the
/// i386-pc modules (grub-pc-bin) are there too; it also runs xorriso and mformat.
pub const GRUB: Tools = Tools {
    what: "GRUB ISO tools",
    programs: &["grub-mkrescue", "xorriso", "mformat"],
    files: &["/usr/lib/grub/i386-pc"],
    packages: &["grub-pc-bin", "grub-common", "xorriso", "mtools"],
};

impl Tools {
    /// What is missing, by name; empty when everything is present.
    pub fn missing(&self) -> Vec<&'static str> {
        let programs = self.programs.iter().filter(|p| which(p).is_none());
        let files = self.files.iter().filter(|f| !Path::new(f).exists());
        programs.chain(files).copied().collect()
    }

    /// The command that installs these tools.
    pub fn install_command(&self) -> String {
        format!(
            "apt-get install -y --no-install-recommends {}",
            self.packages.join(" ")
        )
    }
}

/// Install `tools` if anything is missing (as root), or fail with the command to run.
pub fn ensure(tools: &Tools) -> Result<()> {
    let missing = tools.missing();
    if missing.is_empty() {
        return Ok(());
    }
    let command = tools.install_command();
    if !is_root() {
        return Err(Error::new(format!(
            "{} missing ({}); install with: sudo {command}",
            tools.what,
            missing.join(", ")
        )));
    }
    println!(
        "bootimage: {} missing; running {command}",
        missing.join(", ")
    );
    apt_get_install(tools.packages)?;
    let still = tools.missing();
    if !still.is_empty() {
        return Err(Error::new(format!(
            "still missing after `{command}`: {}",
            still.join(", ")
        )));
    }
    Ok(())
}

/// `apt-get install`, refreshing the package lists once if the first attempt fails (a fresh
/// machine often has none).
fn apt_get_install(packages: &[&str]) -> Result<()> {
    // Recommends (GUIs, firmware for other machines, os-prober ...) would triple the download.
    let install = || apt_get(&[&["install", "-y", "--no-install-recommends"], packages].concat());
    if install()? {
        return Ok(());
    }
    if !apt_get(&["update"])? || !install()? {
        return Err(Error::new(format!(
            "apt-get install -y --no-install-recommends {} failed",
            packages.join(" ")
        )));
    }
    Ok(())
}

fn apt_get(args: &[&str]) -> Result<bool> {
    // apt's progress goes to our stderr: stdout is the guest's serial log.
    let stderr = io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stderr")?;
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .status()
        .context("running apt-get")?;
    Ok(status.success())
}

/// Install the guest target with rustup if the pinned toolchain lacks it. RUSTUP_AUTO_INSTALL=0
/// means rust-toolchain.toml alone does not bring it in.
pub fn ensure_guest_target() -> Result<()> {
    let rustup = |args: &[&str]| {
        let mut command = Command::new("rustup");
        // Run in the workspace so rustup picks the toolchain rust-toolchain.toml pins.
        command.args(args).current_dir(workspace_root());
        command
    };
    let listed = match rustup(&["target", "list", "--installed"]).output() {
        Ok(output) => output,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            println!("bootimage: no rustup here; assuming {GUEST_TARGET} is installed");
            return Ok(());
        }
        Err(error) => return Err(Error::new(format!("running rustup: {error}"))),
    };
    let installed = String::from_utf8_lossy(&listed.stdout);
    if installed.lines().any(|line| line.trim() == GUEST_TARGET) {
        return Ok(());
    }
    println!("bootimage: installing the {GUEST_TARGET} target");
    let status = rustup(&["target", "add", GUEST_TARGET])
        .status()
        .context("running rustup")?;
    if !status.success() {
        return Err(Error::new(format!(
            "`rustup target add {GUEST_TARGET}` failed ({status})"
        )));
    }
    Ok(())
}

/// Whether we run as root (effective uid 0), read from /proc so we need no libc binding.
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| effective_uid(&status) == Some(0))
}

/// The effective uid from a /proc/PID/status text: `Uid:` lists real, effective, saved, fs.
fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The first executable called `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| {
            fs::metadata(path)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_uid_is_the_second_uid_field() {
        let status = "Name:\tcat\nUid:\t1000\t0\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Name:\tcat\n"), None);
    }

    #[test]
    fn install_command_names_every_package() {
        assert_eq!(
            GRUB.install_command(),
            "apt-get install -y --no-install-recommends grub-pc-bin grub-common xorriso mtools"
        );
        assert_eq!(
            QEMU.install_command(),
            "apt-get install -y --no-install-recommends qemu-system-x86"
        );
    }

    #[test]
    fn which_finds_sh_and_not_nonsense() {
        assert!(which("sh").is_some());
        assert!(which("no-such-program-keel").is_none());
    }
}
