//! A GRUB-bootable ISO of an image, for booting the way real hardware would.
//!
//! Command lines match QEMU's direct boot: QEMU hands the kernel `"kernel-path cmdline"` and
//! each module `"module-path args"`, while GRUB hands over only what follows the file name. So
//! every `multiboot`/`module` line repeats the path as the first word: the kernel sees the same
//! shape either way and names each module after the basename of that first word.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Context;
use crate::image::Image;
use crate::{Error, Result, workspace_root};

/// Where `cargo boot image --iso` writes the demo ISO.
pub fn demo_iso_path() -> PathBuf {
    workspace_root().join("target").join("keel.iso")
}

/// The grub.cfg that boots `image` at once: the kernel as /boot/kernel.elf, each module as
/// /boot/NAME.
pub fn grub_cfg(image: &Image) -> Result<String> {
    let mut entry = String::new();
    let kernel = "/boot/kernel.elf";
    writeln!(
        entry,
        "    multiboot {kernel} {}",
        join(kernel, &image.cmdline)?
    )
    .unwrap();
    let mut names = Vec::new();
    for module in &image.modules {
        let name = module.name()?;
        if names.contains(&name) {
            return Err(Error::new(format!("two modules named `{name}` in one ISO")));
        }
        names.push(name);
        let path = format!("/boot/{name}");
        writeln!(entry, "    module {path} {}", join(&path, &module.args)?).unwrap();
    }
    Ok(format!(
        "set timeout=0\nset default=0\n\nmenuentry \"Keel\" {{\n{entry}    boot\n}}\n"
    ))
}

/// `path` followed by `args`, refusing anything GRUB's shell-like parser would change.
fn join(path: &str, args: &str) -> Result<String> {
    let safe = |c: char| c.is_ascii_alphanumeric() || " _-./=:+@%".contains(c);
    for word in [path, args] {
        if !word.chars().all(safe) {
            return Err(Error::new(format!(
                "`{word}` has characters grub.cfg would reinterpret"
            )));
        }
    }
    Ok(if args.is_empty() {
        path.to_owned()
    } else {
        format!("{path} {args}")
    })
}

/// Build a bootable ISO of `image` at `iso` with grub-mkrescue. The staging directory sits
/// next to it (`<iso>.dir`) and is rebuilt from scratch each time.
pub fn build(image: &Image, iso: &Path) -> Result<()> {
    image.check_files()?;
    let staging = iso.with_extension("iso.dir");
    if staging.exists() {
        fs::remove_dir_all(&staging).context(format!("removing {}", staging.display()))?;
    }
    let boot = staging.join("boot");
    fs::create_dir_all(boot.join("grub")).context(format!("creating {}", boot.display()))?;
    fs::write(boot.join("grub").join("grub.cfg"), grub_cfg(image)?).context("writing grub.cfg")?;
    copy(&image.kernel, &boot.join("kernel.elf"))?;
    for module in &image.modules {
        copy(&module.path, &boot.join(module.name()?))?;
    }
    // grub-mkrescue is chatty on stderr even when all is well: show its output only on failure.
    let output = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(iso)
        .arg(&staging)
        .output()
        .context("running grub-mkrescue")?;
    if !output.status.success() {
        return Err(Error::new(format!(
            "grub-mkrescue failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .map(drop)
        .context(format!("copying {} to {}", from.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Module;

    #[test]
    fn grub_cfg_repeats_each_path_so_command_lines_match_qemu() {
        let image = Image {
            kernel: "/anywhere/kernel".into(),
            modules: vec![
                Module::new("/t/ktest", "processes"),
                Module::new("/t/kchild", ""),
            ],
            cmdline: "log=debug".into(),
        };
        assert_eq!(
            grub_cfg(&image).unwrap(),
            "set timeout=0\n\
             set default=0\n\
             \n\
             menuentry \"Keel\" {\n    \
             multiboot /boot/kernel.elf /boot/kernel.elf log=debug\n    \
             module /boot/ktest /boot/ktest processes\n    \
             module /boot/kchild /boot/kchild\n    \
             boot\n\
             }\n"
        );
    }

    #[test]
    fn grub_cfg_refuses_duplicate_names_and_shell_characters() {
        let mut image = Image::suite("faults");
        image.modules.push(Module::new("/other/ktest", ""));
        assert!(grub_cfg(&image).is_err());

        let mut image = Image::suite("faults");
        image.modules[0].args = "x; reboot".into();
        assert!(grub_cfg(&image).is_err());
    }
}
