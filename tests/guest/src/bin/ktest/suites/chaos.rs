//! The chaos campaign (issue 16): `ktest` runs init's supervisor on the `manifest` boot
//! module, which bootimage derived from system.toml: every restartable service with its
//! grants and a restart limit raised for this boot only, and `kchild chaos`, the driver,
//! which kills a random victim every few milliseconds while it loads them all
//! (`keel_guest_tests::chaos`). The driver checks the calls; this suite checks that the
//! supervisor never gave up, counts the restarts, and, once the system has been shut down,
//! that every frame and kernel object is back. `cargo boot chaos --kills N --seed S`;
//! `cargo test` runs the kills bootimage's default asks for.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use keel_guest_tests::Role;
use keel_guest_tests::chaos::{DRIVER, Plan, time_limit};
use keel_init::{State, System};
use keel_rt::println;
use keel_rt::process::Exit;

use super::system::{finished, status, supervise};
use crate::audit::Audit;
use crate::check::{Context, all, expect_eq};
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(chaos:
    killed_servers_lose_no_idempotent_call_no_acknowledged_write_and_no_frame,
);

fn killed_servers_lose_no_idempotent_call_no_acknowledged_write_and_no_frame() -> Result<(), String>
{
    let text = keel_rt::boot_module("manifest").context("the `manifest` boot module")?;
    let text = core::str::from_utf8(text).map_err(|_| String::from("the manifest is not UTF-8"))?;
    let servers = keel_manifest::parse(text).context("parsing the chaos manifest")?;
    let driver = servers.iter().find(|server| server.name == DRIVER);
    let plan = driver
        .and_then(|driver| driver.args.strip_prefix(Role::Chaos.name()))
        .and_then(Plan::parse)
        .context("the driver's plan in the manifest")?;
    // The executor's wake port, which the supervisor makes once and keeps, is there first.
    let _ = keel_rt::executor::wake::port();
    let before = Audit::take()?;
    let mut restarts = Vec::new();
    let mut restarted = 0;
    let verdict = supervise(servers, time_limit(plan.kills), async |system: System| {
        let driver = finished(&system, DRIVER).await?;
        let mut gave_up = Vec::new();
        for victim in &plan.victims {
            let victim_status = status(&system, victim)?;
            restarts.push(format!("{victim} {}", victim_status.restarts));
            restarted += victim_status.restarts;
            if victim_status.state == State::GaveUp {
                gave_up.push(victim.clone());
            }
        }
        all([
            expect_eq(
                "how the driver ended",
                driver.last_exit,
                Some(Exit::Exited(0)),
            ),
            expect_eq("victims init gave up on", gave_up, Vec::<String>::new()),
            expect_eq("the supervisor's failures", system.failures(), Vec::new()),
        ])
    });
    let after = Audit::settled(&before)?;
    println!("chaos: restarts seen by init: {}", restarts.join(", "));
    println!(
        "chaos: frames free or held by ktest (whose heap may grow) before -> after the system's life: {} -> {}",
        before.outside_own_memory()[0],
        after.outside_own_memory()[0]
    );
    println!("chaos: before -> after: {}", before.compare(&after));
    all([
        verdict,
        // Each kill ends one start; a restart more means a server died on its own.
        expect_eq(
            "restarts init counted (one per kill)",
            restarted,
            plan.kills,
        ),
        expect_eq(
            "[frames outside ktest, processes, threads, ports, memory objects, capabilities, \
             ktest's slots] after the system's life",
            after.outside_own_memory(),
            before.outside_own_memory(),
        ),
    ])
}
