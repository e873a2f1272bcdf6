//! Host tests that boot Keel under QEMU (`tests/in_guest.rs`). The runner and the pass rule
//! live in `bootimage::check`, shared with `cargo boot test`; this crate picks the checks and
//! reads `cargo test`'s arguments.

use bootimage::check::{self, Check, Expect};
use bootimage::image::{self, Image};
use bootimage::manifest;
use bootimage::qemu::{Accel, Boot, Qemu};
use bootimage::{Error, Result, guest, iso, setup, web, workspace_root};

/// The demo image, booted as `cargo boot </dev/null` boots it.
pub const DEMO_BOOT: &str = "demo_boot";
/// One suite from a GRUB ISO, to prove the image boots the way real hardware would.
pub const ISO_BOOT: &str = "iso_boot";
/// The suite `iso_boot` runs.
pub const ISO_SUITE: &str = "processes";
/// Every check, in the order they start: one per suite (named after it), the variants
/// (fast path off, no ECAM), every suite but `stress` on two cores and on four
/// (`SUITE_smp2`, `SUITE_smp4`; `stress` always runs on four), then the two boots.
pub fn all_checks() -> Vec<String> {
    let mut names: Vec<String> = check::SUITES.iter().map(|s| s.to_string()).collect();
    names.extend(
        check::IPC_SUITES
            .iter()
            .map(|suite| format!("{suite}{}", check::GENERAL_PATH_SUFFIX)),
    );
    names.extend(
        check::LEGACY_PCI_SUITES
            .iter()
            .map(|suite| format!("{suite}{}", check::LEGACY_PCI_SUFFIX)),
    );
    for &cores in check::SMP_CORES {
        names.extend(
            check::SUITES
                .iter()
                .filter(|&&suite| suite != check::STRESS)
                .map(|suite| check::smp_name(suite, cores)),
        );
    }
    names.extend([DEMO_BOOT.into(), ISO_BOOT.into()]);
    names
}

/// The guest packages the named checks need, for one build.
pub fn packages(names: &[&str]) -> Result<Vec<String>> {
    let mut packages: Vec<String> = guest::TEST_PACKAGES.iter().map(|p| p.to_string()).collect();
    if names.contains(&DEMO_BOOT) {
        // The demo's are whatever system.toml's programs need.
        let (_, demo) = image::demo_manifest(&manifest::demo_path())?;
        packages.extend(
            demo.into_iter()
                .filter(|p| !guest::TEST_PACKAGES.contains(&p.as_str())),
        );
    }
    Ok(packages)
}

/// Make the check called `name` ready to run; for `iso_boot` that means building its ISO.
pub fn prepare(name: &str, accel: Accel) -> Result<Check> {
    Ok(match name {
        DEMO_BOOT => {
            // A mistake in system.toml fails this check with the manifest's message.
            let (manifest, _) = image::demo_manifest(&manifest::demo_path())?;
            let image = Image::demo(&manifest, true)?;
            // A new disk of its own, never the user's, as if 41 boots had run on it: the
            // tour must read the count the host wrote and leave the next one, which mtools
            // must read back, and fsck must find the disk clean.
            let disk = workspace_root().join("target").join("demo-test-disk.img");
            bootimage::disk::make_demo(&disk)?;
            bootimage::disk::write_file(&disk, "tour/boots.txt", b"boots: 41\n")?;
            let http_port = web::free_port()
                .map_err(|error| Error::new(format!("finding a free port: {error}")))?;
            Check {
                name: name.into(),
                qemu: Qemu {
                    disk: Some(disk),
                    cores: check::DEMO_CORES,
                    ..check::demo_qemu(Boot::Direct(image), accel, http_port)
                },
                expect: Expect {
                    disk: Some(vec![("tour/boots.txt".into(), b"boots: 42\n".to_vec())]),
                    lines: Expect::demo()
                        .lines
                        .into_iter()
                        .chain([format!("smp: {} cores online", check::DEMO_CORES)])
                        .collect(),
                    ..Expect::demo()
                },
            }
        }
        ISO_BOOT => {
            // No silent skip: without GRUB this fails with the apt-get command to run.
            setup::ensure(&setup::GRUB)?;
            let path = workspace_root()
                .join("target")
                .join(format!("keel-{ISO_SUITE}.iso"));
            iso::build(&Image::suite(ISO_SUITE), &path)?;
            Check {
                name: name.into(),
                qemu: check::suite_qemu(Boot::Cdrom(path), accel),
                expect: Expect::suite(),
            }
        }
        name => {
            if let Some(suite) = name.strip_suffix(check::GENERAL_PATH_SUFFIX) {
                Check::suite_general_path(suite, accel)
            } else if let Some((suite, cores)) = check::parse_smp_name(name) {
                check::suite_check(suite, cores, accel)?
            } else if let Some(suite) = name.strip_suffix(check::LEGACY_PCI_SUFFIX) {
                Check::suite_legacy_pci(suite, accel)?
            } else {
                check::suite_check(name, 1, accel)?
            }
        }
    })
}

/// Which checks to run, from the arguments `cargo test` passes through: plain words are
/// substring filters (any may match), `--exact` makes them whole names, `--skip WORD`
/// excludes, `--list` lists, `--ignored` selects nothing (no check is ignored). Other flags,
/// and the values of libtest's flags that take one, are ignored.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub patterns: Vec<String>,
    pub skip: Vec<String>,
    pub exact: bool,
    pub list: bool,
    pub ignored_only: bool,
}

/// libtest flags whose value is a separate argument.
const FLAGS_WITH_VALUE: &[&str] = &[
    "--test-threads",
    "--color",
    "--format",
    "--logfile",
    "--shuffle-seed",
    "-Z",
];

impl Filter {
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Filter {
        let mut filter = Filter::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--skip" => filter.skip.extend(args.next()),
                "--exact" => filter.exact = true,
                "--list" => filter.list = true,
                "--ignored" => filter.ignored_only = true,
                flag if FLAGS_WITH_VALUE.contains(&flag) => drop(args.next()),
                flag if flag.starts_with('-') => {}
                pattern => filter.patterns.push(pattern.into()),
            }
        }
        filter
    }

    pub fn matches(&self, name: &str) -> bool {
        let hit = |pattern: &String| {
            if self.exact {
                name == pattern
            } else {
                name.contains(pattern.as_str())
            }
        };
        !self.ignored_only
            && (self.patterns.is_empty() || self.patterns.iter().any(hit))
            && !self.skip.iter().any(|skip| name.contains(skip.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(args: &str) -> Filter {
        Filter::from_args(args.split_whitespace().map(String::from))
    }

    fn selected(args: &str) -> Vec<String> {
        let filter = filter(args);
        all_checks()
            .into_iter()
            .filter(|name| filter.matches(name))
            .collect()
    }

    #[test]
    fn no_arguments_select_everything() {
        assert_eq!(selected(""), all_checks());
        assert_eq!(selected("--nocapture --test-threads 4 -q"), all_checks());
    }

    #[test]
    fn words_are_substring_filters() {
        assert_eq!(selected("boot"), [DEMO_BOOT, ISO_BOOT]);
        assert_eq!(
            selected("mem fault"),
            [
                "faults",
                "memory",
                "faults_smp2",
                "memory_smp2",
                "faults_smp4",
                "memory_smp4"
            ]
        );
        assert_eq!(selected("--exact stress_smp4"), [] as [&str; 0]);
        assert_eq!(selected("--exact memory mem"), ["memory"]);
        assert_eq!(
            selected("--skip boot --skip s"),
            ["preemption", "memory", "hardening", "fuzz"]
        );
        assert!(selected("--ignored").is_empty());
        assert!(selected("no_such_check").is_empty());
    }

    #[test]
    fn the_demo_adds_its_packages_to_the_build() {
        assert_eq!(packages(&["memory"]).unwrap(), guest::TEST_PACKAGES);
        let with_demo = packages(&["memory", DEMO_BOOT]).unwrap();
        assert_eq!(
            with_demo[..guest::TEST_PACKAGES.len()],
            *guest::TEST_PACKAGES
        );
        assert_eq!(
            with_demo[guest::TEST_PACKAGES.len()..],
            ["init", "float", "httpd", "net"]
        );
    }
}
