//! The text the shell prints for each of the system's figures (gathered by `keel_status`).
//! The tour checks the same values it prints.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use keel_rt::abi::ipc::IpcStats;
use keel_rt::abi::{Error, rights};
use keel_rt::names::Listed;

pub use keel_status::{
    PortStats, Process, cores_name, homes_name, ipc_stats, memory, processes, state_name, uptime,
};

pub fn format_processes(rows: &[Process]) -> String {
    let mut text = format!(
        "{:>5}  {:<14} {:<8} {:>7} {:>9} {:>7} {:>4}  {:<6} {}\n",
        "pid", "name", "state", "threads", "cpu ms", "frames", "prio", "cores", "core:threads"
    );
    for p in rows {
        let _ = writeln!(
            text,
            "{:>5}  {:<14} {:<8} {:>7} {:>9} {:>7} {:>4}  {:<6} {}",
            p.pid,
            p.name,
            p.state,
            p.threads,
            p.cpu_ms,
            p.frames,
            p.priority,
            cores_name(p.cpus),
            homes_name(&p.homes)
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

pub fn format_memory(free: u64, total: u64) -> String {
    let mib = |frames: u64| frames * 4 / 1024;
    format!(
        "{free} of {total} frames free ({} of {} MiB), {} in use\n",
        mib(free),
        mib(total),
        total.saturating_sub(free)
    )
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
