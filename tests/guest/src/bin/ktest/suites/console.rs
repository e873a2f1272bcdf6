//! The driver framework, the console and the shell.
//!
//! - The framework's lifecycle on the CMOS clock ([`rtc`]): probe, interrupts, suspend,
//!   resume, remove.
//! - The console on COM1, started as init starts it but registered with a name service of
//!   this suite's ([`names`]): text goes out through the Console service and typed lines
//!   come back. The typing is the host's: a line `KEEL TYPE <hex>` on the serial line has
//!   the test harness type those bytes (bootimage's `qemu::TYPE_REQUEST`), and the suite
//!   sends that line through the console itself, so each round trip crosses the whole path.
//! - The shell on a Console of ktest's own ([`scripted`]), its figures against the
//!   kernel's; and the shell's tour on the real console under init's supervisor, which
//!   restarts the console the tour kills.

mod names;
mod rtc;
mod scripted;

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use console::{ConsoleClient, ReadError};
use core::pin::pin;

use futures_util::future::{Either, join, select};
use keel_abi::cap::FIRST_PROCESS_LOG;
use keel_abi::{SysInfo, process_state};
use keel_guest_tests::Role;
use keel_init::{State, System};
use keel_rt::driver::{
    Driver, DriverError, Interrupt, IoPorts, IrqLine, Runner, State as Lifecycle,
};
use keel_rt::executor::{self, sleep, spawn, timeout};
use keel_rt::process::{self, Exit, Pid, Spawn};
use keel_rt::service::TransportError;
use keel_rt::{println, sys};

use crate::check::{Context, all, ensure, expect_eq, wait_until};
use crate::child;
use crate::runner::{Suite, suite};
use names::names;
use rtc::Rtc;
use scripted::{PS_HEADER, Transcript, run_shell};

pub const SUITE: Suite = suite!(console:
    a_failed_probe_starts_nothing,
    the_framework_runs_a_driver_through_its_lifecycle,
    text_written_goes_out_and_typed_lines_come_back,
    backspace_erases_a_character_and_ctrl_u_the_line,
    ctrl_c_interrupts_the_pending_read,
    a_reader_that_died_takes_no_line,
    a_read_given_up_takes_no_line,
    a_ring_fuzzer_leaves_the_console_serving,
    a_log_line_leaves_the_line_being_typed_intact,
    a_killed_console_fails_its_calls_and_a_new_one_takes_over,
    the_shells_figures_are_the_kernels,
    the_shell_says_what_it_cannot_do,
    the_shells_tour_passes_with_the_console_restarted_by_init,
);

/// The most one step may take under TCG before we call it hung.
const HUNG: Duration = Duration::from_secs(20);
/// How soon a call must fail once the console is killed (the client checks every 20 ms).
const GONE_BOUND: Duration = Duration::from_secs(1);
/// How the guest asks the host to type: `bootimage::qemu::TYPE_REQUEST`.
const TYPE_REQUEST: &str = "KEEL TYPE ";
/// COM1, as the manifest grants it.
const COM1: (u16, u16) = (0x3f8, 8);
const COM1_LINE: u8 = 4;

/// `future`'s output, or a failure saying `what` hung.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> Result<T, String> {
    timeout(HUNG, future)
        .await
        .map_err(|_| format!("{what}: nothing within {HUNG:?}"))
}

/// A console driver on COM1, started with what the manifest grants it and registered with
/// the suite's name service, and a client of it. Killed when dropped, so that the kernel
/// writes its log to the serial line itself again.
struct Driven {
    pid: Pid,
    client: ConsoleClient,
}

impl Driven {
    fn start() -> Result<Driven, String> {
        let names = names()?;
        names.forget(console::NAME);
        let image = keel_rt::boot_module("console").context("the `console` boot module")?;
        let ports = IoPorts::create(COM1.0, COM1.1).context("minting COM1's ports")?;
        let line = IrqLine::create(COM1_LINE).context("minting IRQ 4")?;
        let init = names.for_child()?;
        let caps = [
            init.handle(),
            ports.handle(),
            line.handle(),
            FIRST_PROCESS_LOG,
        ];
        let pid = Spawn::new("console", image).caps(&caps).spawn();
        // The console holds the only copies now: COM1 is its alone.
        let _ = init.delete();
        drop((ports, line));
        let pid = pid.context("starting the console")?;
        let registered = wait_until("the console registers", || {
            Ok(names.registered(console::NAME).is_some())
        });
        let port = registered.and_then(|()| names.registered(console::NAME).context("its port"));
        let client = port.and_then(|port| {
            ConsoleClient::connect(port).map_err(|error| format!("connecting: {error}"))
        });
        match client {
            Ok(client) => Ok(Driven { pid, client }),
            Err(why) => {
                let _ = process::kill(pid);
                let _ = process::wait(pid);
                Err(why)
            }
        }
    }

    fn kill(&self) -> Result<(), String> {
        // Reaped even if it already died: a zombie console left behind would be the first
        // `console` the next tests (and the shell's `ps`) find.
        let killed = process::kill(self.pid).context("killing the console");
        let exit = process::wait(self.pid).context("reaping the console")?;
        killed?;
        expect_eq("how the console ended", exit, Exit::Killed)
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        let _ = self.kill();
        if let Ok(names) = names() {
            names.forget(console::NAME);
        }
    }
}

/// Run `test` on a console of its own.
fn with_console(
    test: impl AsyncFnOnce(&ConsoleClient) -> Result<(), String>,
) -> Result<(), String> {
    let driven = Driven::start()?;
    executor::block_on(test(&driven.client))
}

/// Have the host type `keys`; the request goes out as console output.
async fn type_keys(console: &ConsoleClient, keys: &[u8]) -> Result<(), String> {
    let hex: String = keys.iter().map(|byte| format!("{byte:02x}")).collect();
    within(
        "asking for typing",
        console.write(&format!("{TYPE_REQUEST}{hex}\n")),
    )
    .await?
    .map_err(|error| format!("writing to the console: {error}"))
}

async fn read_line(console: &ConsoleClient) -> Result<Result<String, ReadError>, String> {
    within("read_line", console.read_line())
        .await?
        .map_err(|error| format!("read_line: {error}"))
}

async fn expect_lines(console: &ConsoleClient, expected: &[&str]) -> Result<(), String> {
    for &line in expected {
        expect_eq("the line typed", read_line(console).await?, Ok(line.into()))?;
    }
    Ok(())
}

/// A driver with no device, whose probe fails.
struct Absent(keel_rt::driver::Device);

impl Driver for Absent {
    fn device(&self) -> &keel_rt::driver::Device {
        &self.0
    }
    fn probe(&self) -> Result<(), DriverError> {
        Err(DriverError::Device("nothing here"))
    }
    fn remove(&self) {
        panic!("remove after a failed probe");
    }
    fn interrupt(&self, _line: &IrqLine) -> Interrupt {
        panic!("an interrupt after a failed probe");
    }
}

fn a_failed_probe_starts_nothing() -> Result<(), String> {
    let started = Runner::start(Absent(Default::default()));
    expect_eq(
        "starting a driver whose probe fails",
        started.err(),
        Some(DriverError::Device("nothing here")),
    )
}

fn the_framework_runs_a_driver_through_its_lifecycle() -> Result<(), String> {
    let rtc = Rc::new(Rtc::mint().context("minting the clock's capabilities")?);
    let runner = Runner::start(rtc.clone()).map_err(|error| format!("probing: {error}"))?;
    let control = runner.control();
    let calls = &rtc.calls;
    let interrupts = || calls.interrupts.get();
    executor::block_on(async {
        let running = spawn(runner.run());
        within("ten interrupts", until(|| interrupts() >= 10)).await?;
        control.suspend();
        within(
            "suspending",
            until(|| control.state() == Lifecycle::Suspended),
        )
        .await?;
        let suspended_at = interrupts();
        sleep(Duration::from_millis(200)).await;
        let while_suspended = interrupts() - suspended_at;
        control.resume();
        within(
            "ten interrupts after resuming",
            until(|| interrupts() >= suspended_at + 10),
        )
        .await?;
        control.stop();
        let stopped = within("stopping", running).await?;
        all([
            expect_eq("the runner's end", stopped.map(drop).err(), None),
            expect_eq("interrupts while suspended", while_suspended, 0),
            expect_eq(
                "(probed, suspended, resumed, removed, state)",
                (
                    calls.probed.get(),
                    calls.suspended.get(),
                    calls.resumed.get(),
                ),
                (true, 1, 1),
            ),
            expect_eq(
                "removed",
                (calls.removed.get(), control.state()),
                (true, Lifecycle::Stopped),
            ),
        ])
    })
}

/// Completes once `condition` holds, looking every millisecond.
async fn until(condition: impl Fn() -> bool) {
    while !condition() {
        sleep(Duration::from_millis(1)).await;
    }
}

fn text_written_goes_out_and_typed_lines_come_back() -> Result<(), String> {
    with_console(async |console| {
        type_keys(console, b"hello keel\r").await?;
        expect_lines(console, &["hello keel"]).await
    })
}

fn backspace_erases_a_character_and_ctrl_u_the_line() -> Result<(), String> {
    with_console(async |console| {
        // DEL and BS erase one character (é is two bytes); Ctrl-U (0x15) the whole line.
        type_keys(console, "hellp\x7fo\rjunk\x15ok\rné\x08e\r".as_bytes()).await?;
        expect_lines(console, &["hello", "ok", "ne"]).await
    })
}

fn ctrl_c_interrupts_the_pending_read() -> Result<(), String> {
    with_console(async |console| {
        // The read goes first: its request is in the ring before the typing request.
        let (interrupted, typed) = join(read_line(console), type_keys(console, b"abc\x03")).await;
        typed?;
        expect_eq(
            "a read cut by Ctrl-C",
            interrupted?,
            Err(ReadError::Interrupted),
        )?;
        type_keys(console, b"after\r").await?;
        expect_lines(console, &["after"]).await
    })
}

/// The port the console registered, to hand to a child.
fn console_port() -> Result<keel_rt::ipc::Port, String> {
    names()?
        .registered(console::NAME)
        .context("the console's port")
}

/// A client dies in `read_line`; once a new client connects, the console ends the dead
/// one's connection, and its read with it: the next line goes to the living.
fn a_reader_that_died_takes_no_line() -> Result<(), String> {
    with_console(async |console| {
        let port = console_port()?;
        let pid = child::spawn_with_caps(Role::ConsoleReaderDies, "", &[port.handle()])?;
        let died = process::wait(pid).context("waiting for the reader")?;
        let fresh = ConsoleClient::connect(port).map_err(|error| format!("connecting: {error}"))?;
        type_keys(console, b"for the living\r").await?;
        all([
            expect_eq("how the reader ended", died, Exit::Exited(0)),
            expect_lines(&fresh, &["for the living"]).await,
        ])
    })
}

/// The ring fuzzer (`kchild ring-fuzz`, as the `services` suite runs it against hello and
/// kv) against the console: `write` calls are answered throughout, and once the fuzzer is
/// gone (with the reads it left waiting), a typed line comes back to a reader.
fn a_ring_fuzzer_leaves_the_console_serving() -> Result<(), String> {
    with_console(async |console| {
        let port = console_port()?;
        // From method 1 (`read_line`) on: its requests never write to the screen.
        let fuzzer = child::spawn_with_caps(Role::RingFuzz, "9 1", &[port.handle()])?;
        let mut fuzzed = Box::pin(executor::unblock(move || process::wait(fuzzer)));
        let (mut calls, mut failures) = (0, Vec::new());
        let exit = loop {
            if let Ok(exit) = timeout(Duration::from_millis(1), &mut fuzzed).await {
                break exit;
            }
            match within("write", console.write("")).await? {
                Ok(()) => calls += 1,
                Err(error) => failures.push(error),
            }
        };
        // The console's sweep ends the fuzzer's connections and their reads.
        sleep(Duration::from_millis(300)).await;
        type_keys(console, b"after the fuzz\r").await?;
        all([
            expect_eq(
                "how the fuzzer ended",
                exit.context("waiting")?.context("process_wait")?,
                Exit::Exited(0),
            ),
            ensure(failures.is_empty(), || {
                format!("writes failed meanwhile: {failures:?}")
            }),
            ensure(calls >= 10, || {
                format!("only {calls} writes were made meanwhile")
            }),
            expect_lines(console, &["after the fuzz"]).await,
        ])
    })
}

/// A read the client gave up is cancelled in the console: the next line goes to the next
/// read.
fn a_read_given_up_takes_no_line() -> Result<(), String> {
    with_console(async |console| {
        let given_up = timeout(Duration::from_millis(50), console.read_line()).await;
        type_keys(console, b"for the next read\r").await?;
        all([
            expect_eq("whether the read was given up", given_up.is_err(), true),
            expect_lines(console, &["for the next read"]).await,
        ])
    })
}

fn a_log_line_leaves_the_line_being_typed_intact() -> Result<(), String> {
    with_console(async |console| {
        type_keys(console, b"par").await?;
        sleep(Duration::from_millis(100)).await;
        println!("ktest: a kernel log line, printed above `par` being typed");
        sleep(Duration::from_millis(100)).await;
        type_keys(console, b"tial\r").await?;
        expect_lines(console, &["partial"]).await
    })
}

fn a_killed_console_fails_its_calls_and_a_new_one_takes_over() -> Result<(), String> {
    let first = Driven::start()?;
    executor::block_on(async { within("writing", first.client.write("first console\n")).await })?
        .map_err(|error| format!("writing to the first console: {error}"))?;
    first.kill()?;
    let lost = executor::block_on(timeout(GONE_BOUND, first.client.write("lost\n")));
    ensure(
        matches!(
            lost,
            Ok(Err(
                TransportError::ServerGone | TransportError::Disconnected
            ))
        ),
        || format!("a write to the killed console, within {GONE_BOUND:?}: {lost:?}"),
    )?;
    drop(first);
    let second = Driven::start()?;
    executor::block_on(async {
        type_keys(&second.client, b"again\r").await?;
        expect_lines(&second.client, &["again"]).await
    })
}

/// What `services` shows in the shell tests: ktest as the console.
fn listing() -> String {
    format!("console {} running 0\n", process::id())
}

fn the_shells_figures_are_the_kernels() -> Result<(), String> {
    let transcript = run_shell(
        &["ps", "mem", "uptime", "services", "ipcstat", "caps 1"],
        listing(),
    )?;
    let output = &transcript.output;
    all([
        same_processes(&transcript),
        same_memory(output),
        same_uptime(output),
        contains(
            output,
            &format!("console        {:>5}  running", process::id()),
        ),
        contains(output, "(system)"),
        contains(output, "pid 1 (ktest): rights spawn+system"),
        // ktest plays init here and answers no CAPS request: the shell says so.
        contains(output, "init would not list its capabilities"),
    ])
}

fn the_shell_says_what_it_cannot_do() -> Result<(), String> {
    let lines = [
        "frobnicate",
        "kill",
        "caps x",
        "caps 999999",
        "kill console",
        "run",
    ];
    let transcript = run_shell(&lines, listing())?;
    let output = &transcript.output;
    all([
        contains(
            output,
            "frobnicate: unknown command; `help` lists the commands",
        ),
        contains(output, "kill: usage: kill NAME"),
        contains(output, "caps: `x` is not a pid"),
        contains(output, "caps: no process 999999: not found"),
        // This suite's name service refuses what it does not serve, as init refuses a
        // shell without `may_kill`.
        contains(output, "kill: init refused: permission denied"),
        contains(output, "run: usage: run PROGRAM [ARGS]"),
    ])
}

fn contains(output: &str, needle: &str) -> Result<(), String> {
    ensure(output.contains(needle), || {
        format!("the shell's output has no `{needle}`:\n{output}")
    })
}

/// One row of the shell's `ps`.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    pid: u32,
    name: String,
    state: String,
    threads: u32,
    cpu_ms: u64,
    frames: u64,
    priority: u32,
    cores: String,
    /// Threads per core, as `0:2 1:1`.
    homes: String,
}

fn parse_ps(output: &str) -> Result<Vec<Row>, String> {
    let table = output.split_once(PS_HEADER).context("`ps` output")?.1;
    let rows = table.lines().skip(1).map_while(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [
            pid,
            name,
            state,
            threads,
            cpu_ms,
            frames,
            priority,
            cores,
            ref homes @ ..,
        ] = words[..]
        else {
            return None;
        };
        Some(Row {
            pid: pid.parse().ok()?,
            name: name.into(),
            state: state.into(),
            threads: threads.parse().ok()?,
            cpu_ms: cpu_ms.parse().ok()?,
            frames: frames.parse().ok()?,
            priority: priority.parse().ok()?,
            cores: cores.into(),
            homes: homes.join(" "),
        })
    });
    Ok(rows.collect())
}

/// The shell's `ps` against the kernel's table, taken while the shell waited for its
/// output to be taken: the same processes, names, states, threads, priorities, cores and
/// threads per core; CPU time no later than the kernel's; frames the same but for ktest's
/// own, which serves the shell meanwhile.
fn same_processes(transcript: &Transcript) -> Result<(), String> {
    let rows = parse_ps(&transcript.output)?;
    let hz = sys::sys_info(SysInfo::TickHz).context("the tick rate")? as u64;
    let kernel = &transcript.kernel_ps;
    expect_eq(
        "the pids `ps` shows, and the kernel's",
        rows.iter().map(|row| row.pid).collect::<Vec<_>>(),
        kernel.iter().map(|info| info.pid).collect(),
    )?;
    all(rows.iter().zip(kernel).map(|(row, info)| {
        let cpu_ms = info.cpu_ticks * 1000 / hz;
        let state = if info.state == process_state::ZOMBIE {
            "zombie"
        } else {
            "running"
        };
        let frames_close =
            info.frames.abs_diff(row.frames) <= if info.pid == process::id() { 64 } else { 0 };
        all([
            expect_eq(
                &format!(
                    "pid {}: (name, state, threads, priority, cores, threads per core)",
                    row.pid
                ),
                (
                    row.name.as_str(),
                    row.state.as_str(),
                    row.threads,
                    row.priority,
                    row.cores.clone(),
                    row.homes.clone(),
                ),
                (
                    info.name(),
                    state,
                    info.threads,
                    info.priority,
                    keel_status::cores_name(info.cpus),
                    keel_status::homes_name(&info.homes),
                ),
            ),
            ensure(row.cpu_ms <= cpu_ms && cpu_ms - row.cpu_ms <= 100, || {
                format!(
                    "pid {}: `ps` says {} ms of CPU, the kernel {cpu_ms} ms later",
                    row.pid, row.cpu_ms
                )
            }),
            ensure(frames_close, || {
                format!(
                    "pid {}: `ps` says {} frames, the kernel {}",
                    row.pid, row.frames, info.frames
                )
            }),
        ])
    }))
}

/// `mem`: "F of T frames free", T the kernel's total and F near its free count now.
fn same_memory(output: &str) -> Result<(), String> {
    let line = output
        .lines()
        .find(|line| line.contains("frames free"))
        .context("`mem` output")?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let (free, total): (u64, u64) = match words[..] {
        [free, "of", total, ..] => (free.parse().unwrap_or(0), total.parse().unwrap_or(0)),
        _ => return Err(format!("`mem` said {line:?}")),
    };
    let kernel = |what| sys::sys_info(what).map(|n| n as u64).context("sys_info");
    let (kernel_free, kernel_total) = (kernel(SysInfo::FreeFrames)?, kernel(SysInfo::TotalFrames)?);
    all([
        expect_eq("total frames", total, kernel_total),
        ensure(free.abs_diff(kernel_free) <= 1024, || {
            format!("`mem` says {free} frames free, the kernel {kernel_free} a little later")
        }),
    ])
}

/// `uptime`: "(N ticks at H Hz)", H the kernel's rate and N no later than its ticks now.
fn same_uptime(output: &str) -> Result<(), String> {
    let line = output
        .lines()
        .find(|line| line.starts_with("up "))
        .context("`uptime` output")?;
    let (_, figures) = line.split_once('(').context("the ticks in `uptime`")?;
    let words: Vec<&str> = figures.split_whitespace().collect();
    let (ticks, hz): (u64, u64) = match words[..] {
        [ticks, "ticks", "at", hz, "Hz)"] => (ticks.parse().unwrap_or(0), hz.parse().unwrap_or(0)),
        _ => return Err(format!("`uptime` said {line:?}")),
    };
    let now = keel_rt::time::ticks();
    all([
        expect_eq("the tick rate", hz, keel_rt::time::tick_hz()),
        ensure(0 < ticks && ticks <= now, || {
            format!("`uptime` says {ticks} ticks, the kernel {now} later")
        }),
    ])
}

/// The demo's two servers, with the tour; the console restarts quickly and often enough.
const TOUR: &str = "\
keel-manifest 1
server console
program console
io_ports 0x3f8 8
irq 4
log
restart always 3 20 60000
server shell
program shell
args tour
connect console
may_kill
may_run
may_poweroff
completes
restart never 0 0 0
";

fn the_shells_tour_passes_with_the_console_restarted_by_init() -> Result<(), String> {
    let servers = keel_manifest::parse(TOUR).context("parsing the tour's manifest")?;
    executor::block_on(async {
        let system = System::new(servers);
        system.start_all();
        // The tour runs to completion: it ends by exiting with its verdict, not by a poweroff.
        let shell_ended = system.until(|system| {
            system
                .status("shell")
                .is_some_and(|status| status.state.is_final())
        });
        let ended_by_exit = within("the tour", select(pin!(system.run()), pin!(shell_ended)))
            .await
            .map(|ended| matches!(ended, Either::Right(_)));
        let console = system.status(console::NAME).context("the console's status");
        let shell = system.status("shell").context("the shell's status");
        system.shutdown().await;
        let ended_by_exit = ended_by_exit?;
        let (console, shell) = (console?, shell?);
        all([
            ensure(ended_by_exit, || "the shell asked for a poweroff".into()),
            expect_eq("the shell's exit", shell.last_exit, Some(Exit::Exited(0))),
            expect_eq(
                "the console (state, restarts)",
                (console.state, console.restarts),
                (State::Running, 1),
            ),
            expect_eq("failures", system.failures(), Vec::<String>::new()),
        ])
    })
}
