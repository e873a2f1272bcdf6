//! A boot image: the kernel, its boot modules and its command line.

use std::path::{Path, PathBuf};

use crate::guest::{self, binary};
use crate::manifest::Manifest;
use crate::{Error, Result, workspace_root};

/// One boot module. The kernel names it after the basename of its path and hands it `args`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub path: PathBuf,
    pub args: String,
}

/// The kernel and its modules. The first module becomes the first process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub kernel: PathBuf,
    pub modules: Vec<Module>,
    pub cmdline: String,
}

impl Module {
    pub fn new(path: impl Into<PathBuf>, args: impl Into<String>) -> Self {
        Module {
            path: path.into(),
            args: args.into(),
        }
    }

    /// The module's name: the basename of its path, as the kernel derives it.
    pub fn name(&self) -> Result<&str> {
        self.path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| Error::new(format!("module path {} has no name", self.path.display())))
    }

    /// The module command line as the boot loader passes it: `"path args"`, or just the path.
    pub fn cmdline(&self, path: &str) -> String {
        if self.args.is_empty() {
            path.to_owned()
        } else {
            format!("{path} {}", self.args)
        }
    }
}

/// The kernel command line (and `ktest` flag) that turns the IPC fast path off.
pub const GENERAL_PATH: &str = "fastpath=off";

impl Image {
    /// The demo: `init` (the first process), the `manifest` it reads, and every program the
    /// manifest names (its servers' and its `programs`, which the shell may run). With `tour`, init has the shell run its
    /// scripted tour instead of waiting for a person.
    pub fn demo(manifest: &Manifest, tour: bool) -> Result<Image> {
        manifest.check_binaries(binary)?;
        let flat = manifest.write(&workspace_root().join("target").join("demo"))?;
        let init_args = if tour { "init tour" } else { "init" };
        let mut modules = vec![
            Module::new(binary("init"), init_args),
            Module::new(flat, ""),
        ];
        modules.extend(
            manifest
                .programs()
                .iter()
                .map(|program| Module::new(binary(program), "")),
        );
        Ok(Image {
            kernel: binary("kernel"),
            modules,
            cmdline: String::new(),
        })
    }

    /// One in-guest test suite: `ktest SUITE` runs it, spawning `kchild` where a test needs a
    /// second program, and the suite's own programs ([`guest::SUITE_PROGRAMS`]).
    pub fn suite(name: &str) -> Image {
        Image::suite_with(name, "")
    }

    /// [`Image::suite`] with the IPC fast path off (`fastpath=off` to the kernel and to
    /// `ktest`): every call takes the general path, which must give the same results.
    pub fn suite_general_path(name: &str) -> Image {
        Image::suite_with(name, GENERAL_PATH)
    }

    fn suite_with(name: &str, cmdline: &str) -> Image {
        let programs = guest::SUITE_PROGRAMS
            .iter()
            .filter(|(suite, _)| *suite == name)
            .flat_map(|(_, programs)| programs.iter());
        let ktest_args = format!("{name} {cmdline}");
        let mut modules = vec![
            Module::new(binary("ktest"), ktest_args.trim_end()),
            Module::new(binary("kchild"), ""),
        ];
        modules.extend(programs.map(|program| Module::new(binary(program), "")));
        Image {
            kernel: binary("kernel"),
            modules,
            cmdline: cmdline.into(),
        }
    }

    /// The benchmarks: `kbench FILTER` first; it starts its own image again for whatever
    /// must run in another process, and the disk driver for the block benchmarks.
    pub fn bench(filter: &str) -> Image {
        Image {
            kernel: binary("kernel"),
            modules: vec![
                Module::new(binary("kbench"), filter),
                Module::new(binary("virtio-blk"), ""),
                Module::new(binary("fs"), ""),
            ],
            cmdline: String::new(),
        }
    }

    /// Every file the image consists of, kernel first.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.kernel.as_path()).chain(self.modules.iter().map(|m| m.path.as_path()))
    }

    /// Fail early, with the path, if a binary has not been built.
    pub fn check_files(&self) -> Result<()> {
        match self.files().find(|path| !path.is_file()) {
            Some(path) => Err(Error::new(format!(
                "{} does not exist; build it first",
                path.display()
            ))),
            None => Ok(()),
        }
    }

    /// QEMU's direct-boot (Multiboot) arguments: `-kernel`, `-initrd "path args,..."` and
    /// `-append`. QEMU splits -initrd at commas and takes a module's file name up to the first
    /// space, so neither may appear where it would be misread.
    pub fn qemu_args(&self) -> Result<Vec<String>> {
        let mut args = vec!["-kernel".to_owned(), utf8(&self.kernel)?.to_owned()];
        if !self.modules.is_empty() {
            let mut initrd = Vec::new();
            for module in &self.modules {
                let path = utf8(&module.path)?;
                if path.contains([' ', ',']) || module.args.contains(',') {
                    return Err(Error::new(format!(
                        "module `{}` cannot be passed to QEMU: no commas anywhere, no spaces in the path",
                        module.cmdline(path)
                    )));
                }
                initrd.push(module.cmdline(path));
            }
            args.extend(["-initrd".to_owned(), initrd.join(",")]);
        }
        if !self.cmdline.is_empty() {
            args.extend(["-append".to_owned(), self.cmdline.clone()]);
        }
        Ok(args)
    }
}

/// Everything before the demo boots: check the manifest at `path` (a mistake stops here,
/// before anything is built), build the demo's packages, assemble the image.
pub fn demo_image(path: &Path, tour: bool) -> Result<Image> {
    let (manifest, packages) = demo_manifest(path)?;
    guest::build(&packages)?;
    Image::demo(&manifest, tour)
}

/// The manifest at `path`, checked against the workspace's programs ([`guest::programs`]),
/// and the packages its image needs.
pub fn demo_manifest(path: &Path) -> Result<(Manifest, Vec<String>)> {
    let programs = guest::programs()?;
    let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
    let manifest = Manifest::load(path, &names)?;
    let packages = guest::demo_packages(manifest.programs(), &programs);
    Ok((manifest, packages))
}

pub(crate) fn utf8(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| Error::new(format!("path {} is not UTF-8", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(modules: &[(&str, &str)], cmdline: &str) -> Image {
        Image {
            kernel: "/k/kernel".into(),
            modules: modules
                .iter()
                .map(|(path, args)| Module::new(*path, *args))
                .collect(),
            cmdline: cmdline.into(),
        }
    }

    #[test]
    fn initrd_joins_modules_with_commas() {
        let args = image(&[("/b/ktest", "memory"), ("/b/kchild", "")], "log=debug")
            .qemu_args()
            .unwrap();
        assert_eq!(
            args,
            [
                "-kernel",
                "/k/kernel",
                "-initrd",
                "/b/ktest memory,/b/kchild",
                "-append",
                "log=debug"
            ]
        );
    }

    #[test]
    fn no_modules_and_no_cmdline_means_just_the_kernel() {
        assert_eq!(
            image(&[], "").qemu_args().unwrap(),
            ["-kernel", "/k/kernel"]
        );
    }

    #[test]
    fn commas_and_spaces_that_qemu_would_misread_are_refused() {
        assert!(image(&[("/b/ktest", "a,b")], "").qemu_args().is_err());
        assert!(image(&[("/my dir/ktest", "")], "").qemu_args().is_err());
    }

    #[test]
    fn module_name_is_the_basename() {
        assert_eq!(Module::new("/x/y/init", "init").name().unwrap(), "init");
    }

    #[test]
    fn bench_image_passes_the_filter_to_kbench_and_carries_the_disk_servers() {
        let image = Image::bench("port_call");
        let names: Vec<&str> = image.modules.iter().map(|m| m.name().unwrap()).collect();
        // The disk benchmarks start the driver and the file service.
        assert_eq!(names, ["kbench", "virtio-blk", "fs"]);
        assert_eq!(image.modules[0].args, "port_call");
    }

    #[test]
    fn the_console_suite_brings_the_console_and_the_shell() {
        let names = |suite| {
            let image = Image::suite(suite);
            let names: Vec<String> = image
                .modules
                .iter()
                .map(|m| m.name().unwrap().to_owned())
                .collect();
            names
        };
        assert_eq!(
            names("console"),
            ["ktest", "kchild", "console", "shell", "hello"]
        );
        assert_eq!(names("memory"), ["ktest", "kchild"]);
    }

    #[test]
    fn suite_image_runs_ktest_with_the_suite_name_first() {
        let image = Image::suite("faults");
        assert_eq!(image.modules[0].name().unwrap(), "ktest");
        assert_eq!(image.modules[0].args, "faults");
        assert_eq!(image.modules[1].name().unwrap(), "kchild");
    }
}
