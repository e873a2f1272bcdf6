//! init: Keel's first process. It reads the `manifest` boot module (bootimage wrote it from
//! system.toml), starts every server with what the manifest grants it, serves the name
//! service and supervisor protocol, and keeps the servers running (the [`keel_init`]
//! library does all that). It powers the machine off when a process allowed to asks.
//!
//! With `tour` among its arguments (bootimage passes it when no person is at the console),
//! init starts the shell with `tour` as well, and the demo is scripted: the shell's verdict,
//! and whether anything failed for good, decide the poweroff code and so QEMU's exit status.
#![no_std]
#![no_main]

extern crate alloc;

use core::pin::pin;

use futures_util::future::{Either, select};
use keel_abi::poweroff;
use keel_init::{Server, System};
use keel_rt::{println, process, sys};

keel_rt::async_entry!(main);

/// The server that runs the scripted tour.
const TOUR_SERVER: &str = "shell";

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
    }
    println!("init: the manifest has {} servers", servers.len());
    let system = System::new(servers);
    system.start_all();
    let poweroff = if tour {
        let shell_ended = pin!(system.until(|system| {
            system
                .status(TOUR_SERVER)
                .is_some_and(|status| status.state.is_final())
        }));
        match select(pin!(system.run()), shell_ended).await {
            Either::Left((poweroff, _)) => Some(poweroff),
            Either::Right(_) => {
                println!("init: the {TOUR_SERVER} ended before its tour did");
                None
            }
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
    // Stop everything first: once the console is gone the kernel prints the log itself,
    // so what is still buffered, and the verdict below, reach the serial line. The
    // poweroff's reply is kept until then, so its asker does not see it refused.
    system.shutdown().await;
    let failures = system.failures();
    for failure in &failures {
        println!("init: failed: {failure}");
    }
    let code = if poweroff.is_some_and(|p| p.success) && failures.is_empty() {
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

/// The servers of the `manifest` boot module.
fn manifest() -> Result<alloc::vec::Vec<Server>, alloc::string::String> {
    let bytes = keel_rt::boot_module("manifest").ok_or("no `manifest` boot module")?;
    let text = core::str::from_utf8(bytes).map_err(|_| "the manifest is not UTF-8")?;
    keel_manifest::parse(text).map_err(|error| alloc::format!("{error}"))
}
