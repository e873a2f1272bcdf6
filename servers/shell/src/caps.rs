//! `caps PID`: what a process holds.
//!
//! The shell's own capabilities it reads itself (`cap_info`); another process's it asks
//! init for (its parent, which lists them with `cap_list`), with the server's state.

use alloc::format;
use alloc::string::String;
use core::fmt::Write;

use keel_rt::abi::cap::{CapInfo, kind, rights};
use keel_rt::names;
use keel_rt::process::{self, Pid};
use keel_rt::{cap, start_info};

use crate::system::rights_names;

pub fn describe(pid: Pid) -> Result<String, String> {
    let info = names::process(pid).map_err(|error| format!("no process {pid}: {error}"))?;
    let mut text = format!(
        "pid {pid} ({}): rights {}\n",
        info.name(),
        rights_names(info.rights)
    );
    if pid == process::id() {
        own_caps(&mut text);
        return Ok(text);
    }
    match names::list() {
        Ok(servers) => match servers.iter().find(|server| server.pid == pid) {
            Some(server) => {
                let _ = writeln!(
                    text,
                    "a server of the manifest: {} ({}, restarted {} times)",
                    server.name, server.state, server.restarts
                );
            }
            None => text.push_str("not a server of the manifest\n"),
        },
        Err(error) => {
            let _ = writeln!(text, "init did not answer LIST: {error}");
        }
    }
    match names::caps(pid) {
        Ok(entries) => {
            let _ = writeln!(text, "{} capabilities:", entries.len());
            for entry in entries {
                let _ = writeln!(
                    text,
                    "  handle {}: {}",
                    entry.handle,
                    describe_cap(&entry.info)
                );
            }
        }
        Err(error) => {
            let _ = writeln!(text, "init would not list its capabilities: {error}");
        }
    }
    Ok(text)
}

/// This process's start-up capabilities, as `cap_info` describes them.
fn own_caps(text: &mut String) {
    let count = start_info().cap_count;
    let _ = writeln!(text, "{count} capabilities at start:");
    for handle in cap::initial() {
        let line = match cap::info(handle) {
            Ok(info) => describe_cap(&info),
            Err(error) => format!("gone ({error})"),
        };
        let _ = writeln!(text, "  handle {handle}: {line}");
    }
}

fn describe_cap(info: &CapInfo) -> String {
    let what = match info.kind {
        kind::PORT => format!("port {}", info.object),
        kind::REPLY => "reply".into(),
        kind::MEMORY => format!("memory object of {} bytes", info.size),
        kind::AUDIT => "the audit log".into(),
        kind::IRQ => format!("interrupt line {}", info.object),
        kind::IO_PORTS => {
            let (base, len) = (info.object >> 16, info.object & 0xffff);
            format!("I/O ports {base:#x}..{:#x}", base + len)
        }
        kind::LOG => "the kernel log".into(),
        other => format!("kind {other}"),
    };
    let mut text = format!("{what}, rights {}", cap_rights(info.rights));
    if info.badge != 0 {
        let _ = write!(text, ", badge {}", info.badge);
    }
    text
}

fn cap_rights(bits: u32) -> String {
    let names = [
        (rights::SEND, "send"),
        (rights::RECEIVE, "receive"),
        (rights::GRANT, "grant"),
        (rights::MAP_READ, "map-read"),
        (rights::MAP_WRITE, "map-write"),
        (rights::MAP_EXEC, "map-exec"),
        (rights::READ, "read"),
    ];
    let held: alloc::vec::Vec<&str> = names
        .into_iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| name)
        .collect();
    if held.is_empty() {
        "none".into()
    } else {
        held.join("+")
    }
}
