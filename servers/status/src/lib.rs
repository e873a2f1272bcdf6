//! The system's figures, gathered from the kernel and init: the shell prints them (`ps`,
//! `ipcstat`, `mem`, `uptime`) and the web server serves them (`/`, `/api/status`).
//!
//! Seeing every process needs init's `PROCESSES` (the manifest's `may_kill`); a service's
//! port counters need a lookup of it (its name among the caller's `connects`).
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use keel_rt::abi::ipc::IpcStats;
use keel_rt::abi::{Error, ProcessInfo, SysInfo, process_state};
use keel_rt::process::{self, Pid};
use keel_rt::{ipc, names, sys};

/// One process, as `ps` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: Pid,
    pub name: String,
    pub state: &'static str,
    pub threads: u32,
    pub cpu_ms: u64,
    pub frames: u64,
    pub priority: u32,
    /// The cores its threads run on, bit `n` for core `n`.
    pub cpus: u32,
    /// How many of its threads are at home on each core.
    pub homes: [u8; keel_rt::abi::MAX_CORES],
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
            cpus: info.cpus,
            homes: info.homes,
        }
    }
}

/// Where a process's threads are, as `ps` names it: `0:2 1:1` for two at home on core 0
/// and one on core 1.
pub fn homes_name(homes: &[u8]) -> String {
    let mut text = String::new();
    for (core, &count) in homes.iter().enumerate().filter(|(_, count)| **count != 0) {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&alloc::format!("{core}:{count}"));
    }
    text
}

/// Cores as `ps` names them: `0-3`, `1`, `0,2`.
pub fn cores_name(cpus: u32) -> String {
    let mut text = String::new();
    let mut core = 0;
    while core < u32::BITS {
        if cpus >> core & 1 == 0 {
            core += 1;
            continue;
        }
        let first = core;
        while core < u32::BITS && cpus >> core & 1 != 0 {
            core += 1;
        }
        if !text.is_empty() {
            text.push(',');
        }
        text.push_str(&match core - 1 - first {
            0 => alloc::format!("{first}"),
            _ => alloc::format!("{first}-{}", core - 1),
        });
    }
    text
}

pub fn state_name(state: u32) -> &'static str {
    match state {
        process_state::RUNNING => "running",
        process_state::ZOMBIE => "zombie",
        _ => "?",
    }
}

/// A kernel figure; 0 if the kernel will not say.
pub fn figure(what: SysInfo) -> u64 {
    sys::sys_info(what).unwrap_or(0) as u64
}

/// Every live process, as init shows it (the kernel shows a server only itself).
pub fn processes() -> Result<Vec<Process>, Error> {
    let hz = figure(SysInfo::TickHz);
    let infos = names::processes()?;
    Ok(infos
        .iter()
        .map(|info| Process::from_info(info, hz))
        .collect())
}

/// One service port's counters, or why they cannot be had.
pub struct PortStats {
    pub name: String,
    pub stats: Result<IpcStats, Error>,
}

/// The system's IPC counters, then each server's port's (but the caller's own). Servers
/// `asked` refuses are not looked up (init logs each refusal), and show `PermissionDenied`.
pub fn ipc_stats(asked: impl Fn(&str) -> bool) -> Result<(IpcStats, Vec<PortStats>), Error> {
    let system = ipc::system_stats()?;
    let ports = names::list()?
        .into_iter()
        .filter(|server| server.pid != process::id())
        .map(|server| {
            if !asked(&server.name) {
                return PortStats {
                    name: server.name,
                    stats: Err(Error::PermissionDenied),
                };
            }
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

/// (free, total) frames.
pub fn memory() -> (u64, u64) {
    (figure(SysInfo::FreeFrames), figure(SysInfo::TotalFrames))
}

/// (ticks since boot, ticks per second).
pub fn uptime() -> (u64, u64) {
    (figure(SysInfo::Ticks), figure(SysInfo::TickHz).max(1))
}
