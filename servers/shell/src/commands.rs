//! The commands: a typed line in, text (or an error saying what went wrong) out.

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt::Write;

use keel_rt::names;

use crate::term::Term;
use crate::{bench, caps, files, system};

/// Every command: its usage and what it does.
const COMMANDS: &[(&str, &str, &str)] = &[
    ("help", "help", "this list"),
    (
        "ps",
        "ps",
        "processes: threads, state, CPU time, frames, priority, cores, threads per core",
    ),
    (
        "services",
        "services",
        "the servers init supervises, and programs it ran",
    ),
    ("caps", "caps PID", "what process PID was given"),
    (
        "ipcstat",
        "ipcstat",
        "IPC counters: the system's, and each service port's",
    ),
    ("mem", "mem", "free and total memory frames"),
    (
        "kill",
        "kill NAME",
        "kill server NAME (init restarts it per the manifest)",
    ),
    (
        "run",
        "run PROGRAM [ARGS]",
        "have init start a program (a boot module)",
    ),
    (
        "bench",
        "bench",
        "time 1000 null syscalls and 1000 Console calls",
    ),
    ("ls", "ls [DIR]", "the files in DIR (the root by default)"),
    ("cat", "cat FILE", "what FILE holds"),
    (
        "write",
        "write FILE TEXT",
        "make FILE hold TEXT, synced to the disk",
    ),
    ("rm", "rm PATH", "remove a file or an empty directory"),
    ("mkdir", "mkdir DIR", "make a directory"),
    ("df", "df", "the disk's size and free space"),
    ("sync", "sync", "put every change on the disk"),
    ("uptime", "uptime", "time since boot"),
    ("poweroff", "poweroff", "power the machine off"),
    ("exit", "exit", "leave the shell"),
];

/// What the shell does after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Prompt,
    Exit,
}

/// Run the command `line` and print what it says.
pub async fn execute(line: &str, term: &Term) -> Next {
    let line = line.trim();
    let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    let outcome = match (name, rest) {
        ("", _) => return Next::Prompt,
        ("exit", "") => return Next::Exit,
        ("help", "") => Ok(help()),
        ("ps", "") => system::processes()
            .map(|rows| system::format_processes(&rows))
            .map_err(|error| format!("listing processes: {error}")),
        ("services", "") => names::list()
            .map(|servers| system::format_services(&servers))
            .map_err(|error| format!("init did not answer: {error}")),
        ("caps", pid) if !pid.is_empty() => match pid.parse() {
            Ok(pid) => caps::describe(pid),
            Err(_) => Err(format!("`{pid}` is not a pid")),
        },
        ("ipcstat", "") => system::ipc_stats(|_| true)
            .map(|(system, ports)| system::format_ipc_stats(&system, &ports))
            .map_err(|error| format!("reading the counters: {error}")),
        ("mem", "") => {
            let (free, total) = system::memory();
            Ok(system::format_memory(free, total))
        }
        ("kill", server) if !server.is_empty() => names::kill(server)
            .map(|()| format!("killed {server}; init restarts it as the manifest says\n"))
            .map_err(|error| format!("init refused: {error}")),
        ("run", command) if !command.is_empty() => names::run(command)
            .map(|pid| format!("started pid {pid}: {command}\n"))
            .map_err(|error| format!("init refused: {error}")),
        ("bench", "") => bench::run(term)
            .await
            .map(|figures| bench::format(&figures)),
        ("ls", dir) => files::ls(dir).await,
        ("cat", file) if !file.is_empty() => files::cat(file).await,
        ("write", args) if args.contains(' ') => {
            let (file, text) = args.split_once(' ').unwrap_or((args, ""));
            files::write(file, text.trim_start()).await
        }
        ("rm", path) if !path.is_empty() => files::rm(path).await,
        ("mkdir", dir) if !dir.is_empty() => files::mkdir(dir).await,
        ("df", "") => files::df().await.map(|usage| files::format_usage(&usage)),
        ("sync", "") => files::sync().await,
        ("uptime", "") => {
            let (ticks, hz) = system::uptime();
            Ok(system::format_uptime(ticks, hz))
        }
        ("poweroff", "") => match names::poweroff(true) {
            Err(error) => Err(format!("init refused: {error}")),
        },
        (name, _) => Err(misuse(name)),
    };
    match outcome {
        Ok(text) => term.write(&text).await,
        Err(why) => term.write(&format!("{name}: {why}\n")).await,
    }
    Next::Prompt
}

/// The error for a known command used wrongly, or an unknown one.
fn misuse(name: &str) -> String {
    match COMMANDS.iter().find(|(command, ..)| *command == name) {
        Some((_, usage, _)) => format!("usage: {usage}"),
        None => "unknown command; `help` lists the commands".to_string(),
    }
}

fn help() -> String {
    let mut text = String::from("commands (Backspace, Ctrl-U and Ctrl-C edit the line):\n");
    for (_, usage, what) in COMMANDS {
        let _ = writeln!(text, "  {usage:<20} {what}");
    }
    text
}
