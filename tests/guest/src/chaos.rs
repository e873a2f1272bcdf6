//! What the chaos campaign's two ends share: `ktest chaos` runs init's supervisor on the
//! manifest bootimage derived from system.toml, and that manifest starts `kchild chaos`,
//! the driver, with a [`Plan`] for arguments.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

/// The driver's name in the chaos manifest.
pub const DRIVER: &str = "chaos";

/// How long the campaign may take at most: a fixed part for start-up and the final
/// read-back, and a share per kill (a kill waits for its victim to be back first).
pub fn time_limit(kills: u32) -> Duration {
    Duration::from_secs(20) + Duration::from_millis(60) * kills
}

/// What the driver is asked to do: `KILLS SEED VICTIM...`, as bootimage writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub kills: u32,
    pub seed: u64,
    /// The restartable services, by server name.
    pub victims: Vec<String>,
}

impl Plan {
    pub fn parse(args: &str) -> Option<Plan> {
        let mut words = args.split_whitespace();
        let kills = words.next()?.parse().ok()?;
        let seed = words.next()?.parse().ok()?;
        let victims: Vec<String> = words.map(String::from).collect();
        (!victims.is_empty()).then_some(Plan {
            kills,
            seed,
            victims,
        })
    }
}
