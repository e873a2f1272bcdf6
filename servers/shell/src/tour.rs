//! `shell tour`: a scripted walk through the system, each step printed as the command
//! would print it and checked, ending with an exit whose code is the verdict (init runs
//! the tour to completion, and powers off once it and the other such programs are done).
//!
//! The steps: `ps`, `services`, `ipcstat`, `mem`, `run` each example, `kill console` (a
//! call on the old connection fails with a transport error; the shell finds the restarted
//! console by name and goes on), the disk (`tour_disk`: `df`, `ls`, `cat`, `write`, `rm`,
//! `mkdir`, `sync`, and the block driver killed under a stream of writes), `bench`,
//! `uptime`, and the web server's `/api/status` fetched through the network server.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use keel_rt::executor::sleep;
use keel_rt::names::{self, Listed};
use keel_rt::process::{self, Pid};
use keel_rt::time;

use crate::bench;
use crate::system::{self, Process};
use crate::term::Term;
use crate::tour_disk;
use crate::web;

/// The programs the tour runs through init, with their arguments.
const EXAMPLES: &[&str] = &["hello from the shell's tour"];
/// How long a program the tour ran may take to finish.
const EXAMPLE_LIMIT: Duration = Duration::from_secs(5);

pub type Step = Result<(), String>;

/// Fail with `why` unless `condition` holds.
pub fn ensure(condition: bool, why: impl FnOnce() -> String) -> Step {
    if condition { Ok(()) } else { Err(why()) }
}

/// The steps so far and their failures.
struct Tour<'a> {
    term: &'a Term,
    steps: usize,
    failures: Vec<String>,
}

impl Tour<'_> {
    /// Count a step and print its verdict.
    async fn record(&mut self, name: &str, outcome: Step) {
        self.steps += 1;
        let line = match outcome {
            Ok(()) => format!("tour: {name} ... ok\n"),
            Err(why) => {
                let line = format!("tour: {name} ... FAILED: {why}\n");
                self.failures.push(format!("{name}: {why}"));
                line
            }
        };
        self.term.write(&line).await;
    }

    /// Print the verdict; whether the tour passed.
    async fn finish(self) -> bool {
        let passed = self.failures.is_empty();
        let verdict = if passed {
            format!("shell: tour passed ({} steps)\n", self.steps)
        } else {
            format!("shell: tour FAILED: {}\n", self.failures.join("; "))
        };
        self.term.write(&verdict).await;
        passed
    }
}

/// Run the tour; whether every step passed.
pub async fn run(term: &Term) -> bool {
    let mut tour = Tour {
        term,
        steps: 0,
        failures: Vec::new(),
    };
    tour.record("ps", ps(term).await).await;
    tour.record("services", services(term).await).await;
    tour.record("caps console", console_caps(term).await).await;
    tour.record("ipcstat", ipcstat(term).await).await;
    tour.record("mem", mem(term).await).await;
    for example in EXAMPLES {
        let outcome = run_example(term, example).await;
        tour.record(&format!("run {example}"), outcome).await;
    }
    tour.record("kill console", restart_console(term).await)
        .await;
    if tour_disk::present() {
        tour.record("df", tour_disk::df(term).await).await;
        tour.record("ls and cat README.TXT", tour_disk::readme(term).await)
            .await;
        tour.record("boots on the disk", tour_disk::boots(term).await)
            .await;
        tour.record("write and rm", tour_disk::write_and_remove(term).await)
            .await;
        tour.record(
            "kill block while writing",
            tour_disk::kill_block_while_writing(term).await,
        )
        .await;
    } else {
        term.write("tour: no file service in this system: the disk's steps are left out\n")
            .await;
    }
    tour.record("bench", run_bench(term).await).await;
    tour.record("uptime", uptime(term).await).await;
    // A system without the network server (a test's) has no page to fetch.
    let listed = names::list().unwrap_or_default();
    if listed.iter().any(|server| server.name == keel_net::NAME) {
        tour.record("ping", ping(term).await).await;
        tour.record("GET /api/status", status_page(term).await)
            .await;
    }
    tour.finish().await
}

/// The guest answers ping.
async fn ping(term: &Term) -> Step {
    let ([a, b, c, d], rtt) = web::ping_self().await?;
    let text = format!(
        "echo reply from {a}.{b}.{c}.{d} in {} us\n",
        rtt.as_micros()
    );
    show(term, &format!("ping {a}.{b}.{c}.{d}"), &text).await;
    Ok(())
}

/// The web server's JSON, fetched through the network server as a browser would: every
/// server init lists must be in it.
async fn status_page(term: &Term) -> Step {
    let (status, body) = web::get("/api/status").await?;
    let services = names::list().map_err(|error| format!("listing services: {error}"))?;
    show(
        term,
        "fetch http://10.0.2.15/api/status",
        &format!("{status}, {} bytes of JSON\n", body.len()),
    )
    .await;
    ensure(status.starts_with("HTTP/1.1 200"), || {
        format!("the web server answered {status:?}")
    })?;
    let missing: Vec<&str> = services
        .iter()
        .map(|s| s.name.as_str())
        .filter(|name| !body.contains(&format!("\"name\":\"{name}\"")))
        .collect();
    ensure(missing.is_empty(), || {
        format!("the status leaves out {missing:?}")
    })
}

/// Show a command as if typed at the prompt, then its output.
pub async fn show(term: &Term, command: &str, output: &str) {
    term.write(&format!("keel> {command}\n{output}")).await;
}

async fn ps(term: &Term) -> Step {
    let rows = system::processes().map_err(|error| format!("listing processes: {error}"))?;
    show(term, "ps", &system::format_processes(&rows)).await;
    let named = |name: &str| rows.iter().find(|p| p.name == name);
    let me = rows.iter().find(|p| p.pid == process::id());
    ensure(me.is_some_and(|p| p.name == "shell"), || {
        format!(
            "pid {} (this shell) is not listed as `shell`",
            process::id()
        )
    })?;
    let first = rows.iter().find(|p| p.pid == 1);
    ensure(first.is_some_and(|p| p.state == "running"), || {
        "the first process (pid 1) is not running".into()
    })?;
    ensure(
        named("console").is_some_and(|p| p.state == "running"),
        || "no running `console` process".into(),
    )?;
    let idle: Vec<&Process> = rows
        .iter()
        .filter(|p| p.state == "running" && p.threads == 0)
        .collect();
    ensure(idle.is_empty(), || {
        format!("running processes without threads: {idle:?}")
    })?;
    // Each thread is at home on one core, within its process's cores.
    let misplaced: Vec<&Process> = rows
        .iter()
        .filter(|p| {
            let homed: u32 = p.homes.iter().map(|&n| u32::from(n)).sum();
            let outside = p
                .homes
                .iter()
                .enumerate()
                .any(|(core, &n)| n != 0 && p.cpus >> core & 1 == 0);
            homed != p.threads || outside
        })
        .collect();
    ensure(misplaced.is_empty(), || {
        format!("threads not at home on one of their process's cores: {misplaced:?}")
    })
}

/// The console as init lists it.
fn listed_console() -> Result<Listed, String> {
    let servers = names::list().map_err(|error| format!("init did not answer LIST: {error}"))?;
    servers
        .into_iter()
        .find(|server| server.name == console::NAME)
        .ok_or_else(|| "init does not list the console".into())
}

async fn services(term: &Term) -> Step {
    let servers = names::list().map_err(|error| format!("init did not answer LIST: {error}"))?;
    show(term, "services", &system::format_services(&servers)).await;
    let console = listed_console()?;
    let pid = names::process(console.pid).map(|info| String::from(info.name()));
    ensure(
        console.state == "running" && pid.as_deref() == Ok("console"),
        || format!("the console is listed as {console}, but its pid names {pid:?}"),
    )
}

/// The console holds what the manifest grants it: COM1's ports, IRQ 4, the kernel log.
async fn console_caps(term: &Term) -> Step {
    let console = listed_console()?;
    let text = crate::caps::describe(console.pid)?;
    show(term, &format!("caps {}", console.pid), &text).await;
    let entries = names::caps(console.pid).map_err(|error| format!("init's CAPS: {error}"))?;
    let kinds: Vec<u32> = entries.iter().map(|e| e.info.kind).collect();
    use keel_rt::abi::cap::kind;
    ensure(
        [kind::PORT, kind::IO_PORTS, kind::IRQ, kind::LOG]
            .iter()
            .all(|k| kinds.contains(k)),
        || format!("the console's capabilities are of kinds {kinds:?}"),
    )
}

async fn ipcstat(term: &Term) -> Step {
    let (global, ports) =
        system::ipc_stats(|_| true).map_err(|error| format!("reading the counters: {error}"))?;
    show(term, "ipcstat", &system::format_ipc_stats(&global, &ports)).await;
    ensure(global.calls > 0 && global.replies > 0, || {
        format!("the system counts no calls or replies: {global:?}")
    })?;
    let console = ports.iter().find(|port| port.name == console::NAME);
    match console.map(|port| &port.stats) {
        // At least this shell's connect handshake was a call to it.
        Some(Ok(stats)) => ensure(stats.calls >= 1, || {
            format!("the console's port counts no calls: {stats:?}")
        }),
        Some(Err(error)) => Err(format!("the console's port counters: {error}")),
        None => Err("no counters for the console's port".into()),
    }
}

async fn mem(term: &Term) -> Step {
    let (free, total) = system::memory();
    show(term, "mem", &system::format_memory(free, total)).await;
    ensure(0 < free && free < total, || {
        format!("{free} free of {total} frames is not a running system")
    })
}

async fn run_example(term: &Term, command: &str) -> Step {
    term.write(&format!("keel> run {command}\n")).await;
    let pid = names::run(command).map_err(|error| format!("init refused: {error}"))?;
    term.write(&format!("started pid {pid}\n")).await;
    ended_within(pid, EXAMPLE_LIMIT).await
}

/// Wait until process `pid` has ended (a zombie, or reaped by init).
async fn ended_within(pid: Pid, limit: Duration) -> Step {
    let deadline = time::ticks() + time::ticks_in(limit);
    while let Ok(info) = names::process(pid) {
        if system::state_name(info.state) == "zombie" {
            return Ok(());
        }
        if time::ticks() > deadline {
            return Err(format!("pid {pid} still runs after {limit:?}"));
        }
        sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Kill the console under the shell's feet, see the transport fail, find the restarted
/// console by name, and check init's account of it.
async fn restart_console(term: &Term) -> Step {
    let before = listed_console()?;
    term.write("keel> kill console\n").await;
    names::kill(console::NAME).map_err(|error| format!("init refused: {error}"))?;
    let lost = term.client().write("this goes nowhere\n").await;
    let started = time::ticks();
    term.reconnect()
        .await
        .map_err(|why| format!("the console did not come back: {why}"))?;
    let waited = time::ticks_to_duration(time::ticks() - started);
    term.write(&format!(
        "the old connection failed: {}; reconnected by name after {} ms\n",
        lost.map_or_else(|error| format!("{error}"), |()| "no error".into()),
        waited.as_millis()
    ))
    .await;
    ensure(lost.is_err(), || {
        "a write to the killed console succeeded".into()
    })?;
    let after = listed_console()?;
    term.write(&format!("console was {before}, now {after}\n"))
        .await;
    ensure(
        after.pid != before.pid
            && after.restarts == before.restarts + 1
            && after.state == "running",
        || format!("expected a new running console with one more restart: {before} -> {after}"),
    )
}

async fn run_bench(term: &Term) -> Step {
    let figures = bench::run(term).await?;
    show(term, "bench", &bench::format(&figures)).await;
    ensure(
        figures.syscall_cycles > 0 && figures.console_call_cycles > figures.syscall_cycles,
        || format!("a console call should cost more than a null syscall: {figures:?}"),
    )
}

async fn uptime(term: &Term) -> Step {
    let (ticks, hz) = system::uptime();
    show(term, "uptime", &system::format_uptime(ticks, hz)).await;
    ensure(ticks > 0, || "no ticks since boot".into())
}
