//! The figures behind the commands, gathered from the kernel and init, each with the text
//! the shell prints for it. The tour checks the same values it prints.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use keel_rt::abi::ipc::IpcStats;
use keel_rt::abi::{Error, ProcessInfo, SysInfo, process_state, rights};
use keel_rt::names::{self, Listed};
use keel_rt::process::{self, Pid};
use keel_rt::{ipc, sys};

/// One row of `ps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: Pid,
    pub name: String,
    pub state: &'static str,
    pub threads: u32,
    pub cpu_ms: u64,
    pub frames: u64,
    pub priority: u32,
}

impl Process {
    pub fn from_info(info: &ProcessInfo, tick_hz: u64) -> Process {
        Process {
            pid: info.pid,
            name: info.name().into(),
            state: state_name(info.state),
            threads: info.threads,
            cpu_ms: info.cpu_ticks * 1000 / tick_hz.max(1),
            frames: info.frames,
            priority: info.priority,
        }
    }
}

pub fn state_name(state: u32) -> &'static str {
    match state {
        process_state::RUNNING => "running",
        process_state::ZOMBIE => "zombie",
        _ => "?",
    }
}

fn figure(what: SysInfo) -> u64 {
    sys::sys_info(what).unwrap_or(0) as u64
}

/// Every live process, as init shows it (the kernel shows the shell only itself).
pub fn processes() -> Result<Vec<Process>, Error> {
    let hz = figure(SysInfo::TickHz);
    let infos = names::processes()?;
    Ok(infos
        .iter()
        .map(|info| Process::from_info(info, hz))
        .collect())
}

pub fn format_processes(rows: &[Process]) -> String {
    let mut text = format!(
        "{:>5}  {:<14} {:<8} {:>7} {:>9} {:>7} {:>4}\n",
        "pid", "name", "state", "threads", "cpu ms", "frames", "prio"
    );
    for p in rows {
        let _ = writeln!(
            text,
            "{:>5}  {:<14} {:<8} {:>7} {:>9} {:>7} {:>4}",
            p.pid, p.name, p.state, p.threads, p.cpu_ms, p.frames, p.priority
        );
    }
    text
}

pub fn format_services(servers: &[Listed]) -> String {
    let mut text = format!(
        "{:<14} {:>5}  {:<10} {:>8}\n",
        "name", "pid", "state", "restarts"
    );
    for s in servers {
        let _ = writeln!(
            text,
            "{:<14} {:>5}  {:<10} {:>8}",
            s.name, s.pid, s.state, s.restarts
        );
    }
    text
}

/// One service port's counters, or why they cannot be had.
pub struct PortStats {
    pub name: String,
    pub stats: Result<IpcStats, Error>,
}

/// The system's IPC counters, then each server's port's (but the shell's own: it serves
/// nothing).
pub fn ipc_stats() -> Result<(IpcStats, Vec<PortStats>), Error> {
    let system = ipc::system_stats()?;
    let ports = names::list()?
        .into_iter()
        .filter(|server| server.pid != process::id())
        .map(|server| {
            let stats = names::lookup(&server.name).and_then(|port| {
                let stats = port.stats();
                let _ = port.delete();
                stats
            });
            PortStats {
                name: server.name,
                stats,
            }
        })
        .collect();
    Ok((system, ports))
}

pub fn format_ipc_stats(system: &IpcStats, ports: &[PortStats]) -> String {
    let mut text = format!(
        "{:<14} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}\n",
        "port", "sent", "received", "calls", "replies", "notifies", "fast hits", "fast miss"
    );
    let rows = core::iter::once(("(system)", Ok(system))).chain(
        ports
            .iter()
            .map(|port| (port.name.as_str(), port.stats.as_ref())),
    );
    for (name, stats) in rows {
        let _ = match stats {
            Ok(s) => writeln!(
                text,
                "{name:<14} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
                s.sent,
                s.received,
                s.calls,
                s.replies,
                s.notifications,
                s.fast_path_hits,
                s.fast_path_misses
            ),
            Err(Error::PermissionDenied) => writeln!(
                text,
                "{name:<14} (the manifest does not let the shell connect to it)"
            ),
            Err(error) => writeln!(text, "{name:<14} ({error})"),
        };
    }
    text
}

/// (free, total) frames.
pub fn memory() -> (u64, u64) {
    (figure(SysInfo::FreeFrames), figure(SysInfo::TotalFrames))
}

pub fn format_memory(free: u64, total: u64) -> String {
    let mib = |frames: u64| frames * 4 / 1024;
    format!(
        "{free} of {total} frames free ({} of {} MiB), {} in use\n",
        mib(free),
        mib(total),
        total.saturating_sub(free)
    )
}

/// (ticks since boot, ticks per second).
pub fn uptime() -> (u64, u64) {
    (figure(SysInfo::Ticks), figure(SysInfo::TickHz).max(1))
}

pub fn format_uptime(ticks: u64, hz: u64) -> String {
    let ms = ticks * 1000 / hz;
    format!(
        "up {}.{:03} s ({ticks} ticks at {hz} Hz)\n",
        ms / 1000,
        ms % 1000
    )
}

/// The process-wide rights, by name.
pub fn rights_names(bits: u32) -> String {
    let names: Vec<&str> = [(rights::SPAWN, "spawn"), (rights::SYSTEM, "system")]
        .into_iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| name)
        .collect();
    match names.as_slice() {
        [] => "none".into(),
        names => names.join("+"),
    }
}
