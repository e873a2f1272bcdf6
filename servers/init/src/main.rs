//! init: Keel's first process. It reads the `manifest` boot module (bootimage wrote it from
//! system.toml), starts every server with what the manifest grants it, serves the name
//! service and supervisor protocol, and keeps the servers running (the [`keel_init`]
//! library does all that). It powers the machine off when a process allowed to asks.
//!
//! With `tour` among its arguments (bootimage passes it when no person is at the console),
//! init starts the shell with `tour` as well, and the demo is scripted: the tour runs to
//! completion and exits with its verdict.
//!
//! Servers marked `completes` (the tour's shell among them) run to completion: the machine
//! goes off only once each has exited (init waits at most [`COMPLETION_WAIT`] after the tour
//! or a poweroff request), so a client still working is never cut off. Their exit codes,
//! and whether anything else failed for good, decide the poweroff code and so QEMU's exit
//! status.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::pin::pin;
use core::time::Duration;

use futures_util::future::{Either, select};
use keel_abi::poweroff;
use keel_init::{Policy, Server, System};
use keel_rt::executor::sleep;
use keel_rt::{println, process, sys};

keel_rt::async_entry!(main);

/// The server that runs the scripted tour.
const TOUR_SERVER: &str = "shell";
/// How long a poweroff waits for the servers that run to completion.
const COMPLETION_WAIT: Duration = Duration::from_secs(60);

async fn main(args: &'static str) -> i32 {
    println!("init: started (pid {})", process::id());
    let tour = args.split_whitespace().any(|word| word == "tour");
    let mut servers = match manifest() {
        Ok(servers) => servers,
        Err(why) => {
            println!("init: {why}; nothing to start");
            return 1;
        }
    };
    if tour {
        let Some(shell) = servers.iter_mut().find(|s| s.name == TOUR_SERVER) else {
            println!("init: a tour needs a `{TOUR_SERVER}` server, and the manifest has none");
            return 1;
        };
        shell.args = match shell.args.as_str() {
            "" => "tour".into(),
            args => alloc::format!("{args} tour"),
        };
        // The tour runs to completion, once: its exit code is its verdict.
        shell.completes = true;
        shell.restart.policy = Policy::Never;
    }
    println!("init: the manifest has {} servers", servers.len());
    let completing: Vec<String> = servers
        .iter()
        .filter(|server| server.completes)
        .map(|server| server.name.clone())
        .collect();
    let system = System::new(servers);
    system.start_all();
    // Headless, the demo is over once the tour has ended; a person ends it with a poweroff.
    let poweroff = if tour {
        let tour_ended = pin!(system.until(|system| {
            system
                .status(TOUR_SERVER)
                .is_some_and(|status| status.state.is_final())
        }));
        match select(pin!(system.run()), tour_ended).await {
            Either::Left((poweroff, _)) => Some(poweroff),
            Either::Right(_) => None,
        }
    } else {
        Some(system.run().await)
    };
    if let Some(poweroff) = &poweroff {
        let verdict = if poweroff.success {
            "success"
        } else {
            "failure"
        };
        println!(
            "init: {} asks for a poweroff, reporting {verdict}",
            poweroff.by
        );
    }
    let unfinished = finish(&system, &completing).await;
    // Stop everything first: once the console is gone, the kernel prints the log itself,
    // so what is still buffered, and the verdict below, reach the serial line. A
    // poweroff's reply is kept until then, so its asker does not see it refused.
    system.shutdown().await;
    let mut failures = system.failures();
    failures.extend(
        unfinished
            .iter()
            .map(|name| alloc::format!("{name} did not finish within {COMPLETION_WAIT:?}")),
    );
    for failure in &failures {
        println!("init: failed: {failure}");
    }
    let asked_success = poweroff.is_none_or(|p| p.success);
    let code = if asked_success && failures.is_empty() {
        println!("init: demo complete");
        poweroff::SUCCESS
    } else {
        println!("init: the demo failed");
        poweroff::FAILURE
    };
    let Err(error) = sys::system_poweroff(code);
    println!("init: cannot power off: {error}");
    1
}

/// Serves on until every server in `completing` has ended for good (their exit codes are
/// judged as any `never` server's), or [`COMPLETION_WAIT`] has passed; returns those
/// still running.
async fn finish(system: &System, completing: &[String]) -> Vec<String> {
    let running = |system: &System| -> Vec<String> {
        let ended = |name: &String| system.status(name).is_none_or(|s| s.state.is_final());
        completing
            .iter()
            .filter(|name| !ended(name))
            .cloned()
            .collect()
    };
    let waiting = running(system);
    if waiting.is_empty() {
        println!("init: every program that runs to completion has ended");
        return waiting;
    }
    println!("init: waiting for {} to finish", waiting.join(", "));
    let done = pin!(system.until(|system| running(system).is_empty()));
    let serve = pin!(system.run());
    // A second poweroff while waiting ends the wait too: someone insists.
    let _ = select(serve, select(done, pin!(sleep(COMPLETION_WAIT)))).await;
    running(system)
}

/// The servers of the `manifest` boot module.
fn manifest() -> Result<alloc::vec::Vec<Server>, alloc::string::String> {
    let bytes = keel_rt::boot_module("manifest").ok_or("no `manifest` boot module")?;
    let text = core::str::from_utf8(bytes).map_err(|_| "the manifest is not UTF-8")?;
    keel_manifest::parse(text).map_err(|error| alloc::format!("{error}"))
}
