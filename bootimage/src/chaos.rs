//! `cargo boot chaos [--kills N] [--seed S]`: the kill campaign of issue 16. The `chaos`
//! suite (tests/guest/src/bin/ktest/suites/chaos.rs) runs init's supervisor on a manifest
//! derived here from system.toml: every restartable service (restart policy `always`, and
//! some server connects to it) with its grants, its restart limit raised for this boot
//! only, and `kchild chaos`, the driver, which may kill them all. `cargo test` runs the
//! default of [`KILLS`].

use std::fs;
use std::time::Duration;

use keel_manifest::{Policy, Server};

use crate::check::{self, Check, Expect};
use crate::error::Context;
use crate::fuzz::{SEED, numeric_flags};
use crate::guest::binary;
use crate::image::{Image, Module};
use crate::manifest::{self, Manifest};
use crate::qemu::{Accel, Boot};
use crate::{Result, workspace_root};

/// The suite that runs the campaign.
pub const SUITE: &str = "chaos";
/// Kills when none are asked for: `cargo test`'s run.
pub const KILLS: u32 = 50;
/// The driver's name and program (`keel_guest_tests::chaos::DRIVER`, `Role::Chaos`).
const DRIVER: &str = "chaos";
const DRIVER_PROGRAM: &str = "kchild";
/// How long a kill may take at the most, to size the timeout (under TCG, kills come every
/// 20 to 30 ms, each victim's restart included); the guest gives up well before.
const SLOWEST_KILL: Duration = Duration::from_millis(100);

/// What `cargo boot chaos` was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub kills: u32,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kills: KILLS,
            seed: SEED,
        }
    }
}

impl Options {
    pub fn parse(words: &[&str]) -> Result<Options, String> {
        let mut options = Options::default();
        for (flag, number) in numeric_flags(words)? {
            match flag {
                "--kills" => {
                    options.kills = u32::try_from(number)
                        .map_err(|_| format!("--kills: {number} is too many"))?
                }
                "--seed" => options.seed = number,
                _ => return Err(format!("unknown chaos option `{flag}`")),
            }
        }
        if options.kills == 0 {
            return Err("--kills wants at least 1".into());
        }
        Ok(options)
    }

    /// The boot that runs the campaign, on the manifest derived from system.toml.
    pub fn check(&self, accel: Accel) -> Result<Check> {
        let (system, _) = crate::image::demo_manifest(&manifest::demo_path())?;
        let servers = self.manifest(&system);
        let dir = workspace_root().join("target").join(SUITE);
        fs::create_dir_all(&dir).context(format!("creating {}", dir.display()))?;
        let path = dir.join("manifest");
        fs::write(&path, keel_manifest::to_text(&servers))
            .context(format!("writing {}", path.display()))?;
        let mut image = Image::suite(SUITE);
        let mut programs: Vec<&str> = Vec::new();
        for server in servers.iter().filter(|s| s.program != DRIVER_PROGRAM) {
            if !programs.contains(&server.program.as_str()) {
                programs.push(&server.program);
            }
        }
        image.modules.extend(
            programs
                .iter()
                .map(|program| Module::new(binary(program), "")),
        );
        image.modules.push(Module::new(path, ""));
        let timeout = check::SUITE_TIMEOUT + SLOWEST_KILL * self.kills;
        let mut qemu = check::campaign_qemu(Boot::Direct(image), accel, timeout);
        // A victim may be the disk driver: a scratch disk of its own, blank each run.
        let disk = dir.join("disk.img");
        crate::qemu::blank_disk(&disk)?;
        qemu.disk = Some(disk);
        Ok(Check {
            name: SUITE.into(),
            qemu,
            expect: Expect::suite(),
        })
    }

    /// The chaos boot's servers: the victims as system.toml has them, but restarted after
    /// every kill the campaign can make (never given up on, as the demo's limits would),
    /// then the driver, allowed to reach and kill each.
    fn manifest(&self, system: &Manifest) -> Vec<Server> {
        let mut servers: Vec<Server> = victims(system).cloned().collect();
        for server in &mut servers {
            server.restart.max = self.kills;
            server.restart.window_ms = 0;
        }
        let names: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
        let mut driver = Server::new(DRIVER, DRIVER_PROGRAM);
        driver.args = format!("chaos {} {} {}", self.kills, self.seed, names.join(" "));
        driver.connects = names;
        driver.may_kill = true;
        servers.push(driver);
        servers
    }
}

/// The restartable services of `system`: servers restarted `always` that some server
/// connects to. The shell is restarted too, but provides nothing to load. Left out: a
/// driver of a PCI device and the servers that connect to one (the block driver and the
/// file service), since the chaos boot has no such device; the `files` suite kills the
/// block driver on a disk of its own. A client of theirs that is a victim (kv) does
/// without them.
pub fn victims(system: &Manifest) -> impl Iterator<Item = &Server> {
    let on_devices = |server: &Server| {
        server.pci.is_some()
            || system
                .servers()
                .any(|other| other.pci.is_some() && server.connects.contains(&other.name))
    };
    system.servers().filter(move |server| {
        server.restart.policy == Policy::Always
            && !on_devices(server)
            && system
                .servers()
                .any(|client| client.connects.contains(&server.name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_are_one_to_u32_max() {
        let kills = |words: &[&str]| Options::parse(words).map(|options| options.kills);
        assert_eq!(kills(&[]), Ok(KILLS));
        assert_eq!(kills(&["--kills", "1_000"]), Ok(1000));
        assert!(kills(&["--kills", "0"]).is_err());
        assert!(kills(&["--kills", "5000000000"]).is_err());
        assert!(
            kills(&["--calls", "1"]).is_err(),
            "fuzz's option is not chaos's"
        );
    }

    const SYSTEM: &str = r#"
[[server]]
name = "console"
program = "console"
irqs = [4]
restart = { policy = "always", max = 5, backoff_ms = 50 }
[[server]]
name = "shell"
program = "shell"
connects = ["console", "kv"]
restart = { policy = "always" }
[[server]]
name = "kv"
program = "kv"
args = "server"
restart = { policy = "always", max = 3, backoff_ms = 50 }
[[server]]
name = "lonely"
program = "hello"
restart = { policy = "always" }
"#;

    #[test]
    fn the_victims_are_the_restartable_services_with_their_limits_raised() {
        let programs = ["console", "shell", "kv", "hello"];
        let system = Manifest::parse("system.toml", SYSTEM, &programs).unwrap();
        let options = Options {
            kills: 1000,
            seed: 7,
        };
        let servers = options.manifest(&system);
        let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["console", "kv", DRIVER]);
        assert_eq!(servers[0].irqs, [4], "grants are kept");
        assert_eq!(servers[1].args, "server");
        for victim in &servers[..2] {
            assert_eq!(
                (
                    victim.restart.policy,
                    victim.restart.max,
                    victim.restart.window_ms
                ),
                (Policy::Always, 1000, 0)
            );
            assert_eq!(victim.restart.backoff_ms, 50, "the backoff is the system's");
        }
        let driver = &servers[2];
        assert_eq!(driver.args, "chaos 1000 7 console kv");
        assert_eq!(driver.connects, ["console", "kv"]);
        assert!(driver.may_kill && !driver.may_poweroff);
    }

    #[test]
    fn the_demo_system_has_victims() {
        let (system, _) = crate::image::demo_manifest(&manifest::demo_path()).unwrap();
        let victims: Vec<&str> = victims(&system).map(|s| s.name.as_str()).collect();
        assert_eq!(victims, ["console", "hello", "kv"]);
    }
}
