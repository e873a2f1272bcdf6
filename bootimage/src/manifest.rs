//! `system.toml`, the demo system's manifest: read, checked, and flattened for init.
//!
//! docs/SYSTEM.md describes the fields. Everything init cannot check for itself is checked
//! here, before anything is built: unknown fields and programs, two owners for one IRQ or
//! I/O port, connections to services nobody provides. Every problem is reported at once,
//! each as `FILE:LINE: what is wrong`. What init boots with is the line format of
//! [`keel_manifest`], written as the boot module `manifest`.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use keel_abi::{NAME_LEN, PRIORITY_DEFAULT, PRIORITY_LEVELS};
use keel_manifest::{IoPorts, Policy, Restart, Server};
use serde::Deserialize;
use toml::Spanned;

use crate::error::Context;
use crate::{Error, Result, workspace_root};

/// The demo system's manifest, at the workspace root.
pub fn demo_path() -> PathBuf {
    workspace_root().join("system.toml")
}

/// The interrupt lines the kernel routes (legacy ISA IRQs).
const IRQ_LINES: u8 = 16;

/// The fewest frames a server may be given: its image, stack and heap need 1 MiB at least.
const MIN_SERVER_FRAMES: usize = 256;
/// Frames all servers may be given together (each counts its quota, or the kernel's
/// default): half of the demo machine's 256 MiB, so that init, the programs it runs and the
/// kernel's reserve keep the rest.
const SERVER_FRAME_BUDGET: usize = 32 * 1024;

/// A checked manifest: the servers, and where each was written.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// How messages name the file.
    file: String,
    servers: Vec<Checked>,
}

#[derive(Clone, Debug)]
struct Checked {
    server: Server,
    /// Line of the server's `program`.
    program_line: usize,
}

/// `system.toml` as written, with positions.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    server: Vec<Spanned<ServerEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerEntry {
    name: Spanned<String>,
    program: Spanned<String>,
    args: Option<Spanned<String>>,
    #[serde(default = "default_priority")]
    priority: Spanned<usize>,
    #[serde(default)]
    irqs: Vec<Spanned<u8>>,
    #[serde(default)]
    io_ports: Vec<Spanned<(u32, u32)>>,
    #[serde(default)]
    log: bool,
    #[serde(default)]
    connects: Vec<Spanned<String>>,
    #[serde(default)]
    may_kill: bool,
    #[serde(default)]
    may_run: bool,
    #[serde(default)]
    may_poweroff: bool,
    #[serde(default)]
    restart: Option<RestartEntry>,
    frames: Option<Spanned<usize>>,
    processes: Option<Spanned<u32>>,
    threads: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartEntry {
    policy: PolicyEntry,
    max: Option<u32>,
    backoff_ms: Option<u32>,
    window_ms: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum PolicyEntry {
    Always,
    Never,
}

fn default_priority() -> Spanned<usize> {
    Spanned::new(0..0, PRIORITY_DEFAULT)
}

/// One thing wrong, at a byte range of the file.
struct Problem {
    at: Range<usize>,
    message: String,
}

fn problem(at: Range<usize>, message: String) -> Problem {
    Problem { at, message }
}

impl Manifest {
    /// Reads and checks the manifest at `path`; `programs` are those bootimage can build.
    pub fn load(path: &Path, programs: &[&str]) -> Result<Manifest> {
        let text = fs::read_to_string(path).context(format!("reading {}", path.display()))?;
        let file = path
            .strip_prefix(workspace_root())
            .unwrap_or(path)
            .display()
            .to_string();
        Manifest::parse(&file, &text, programs)
    }

    /// Checks `text`, the contents of `file`.
    pub fn parse(file: &str, text: &str, programs: &[&str]) -> Result<Manifest> {
        let report = |problems: Vec<Problem>| {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| format!("{file}:{}: {}", line_of(text, p.at.start), p.message))
                .collect();
            Error::new(lines.join("\n"))
        };
        let parsed: File = toml::from_str(text).map_err(|error| {
            let at = error.span().unwrap_or(0..0);
            report(vec![problem(at, error.message().trim().to_owned())])
        })?;
        let problems = check(&parsed, text, programs);
        if !problems.is_empty() {
            return Err(report(problems));
        }
        let servers = parsed
            .server
            .into_iter()
            .map(|entry| {
                let entry = entry.into_inner();
                Checked {
                    program_line: line_of(text, entry.program.span().start),
                    server: server(entry),
                }
            })
            .collect();
        Ok(Manifest {
            file: file.to_owned(),
            servers,
        })
    }

    pub fn servers(&self) -> impl Iterator<Item = &Server> {
        self.servers.iter().map(|checked| &checked.server)
    }

    /// Fails, naming the line, if the binary of a program (where `binary` says it is) is
    /// not there: a manifest that built would still not boot.
    pub fn check_binaries(&self, binary: impl Fn(&str) -> PathBuf) -> Result<()> {
        let missing: Vec<String> = self
            .servers
            .iter()
            .filter_map(|checked| {
                let path = binary(&checked.server.program);
                (!path.is_file()).then(|| {
                    format!(
                        "{}:{}: program `{}`: {} does not exist; build it first",
                        self.file,
                        checked.program_line,
                        checked.server.program,
                        path.display()
                    )
                })
            })
            .collect();
        match missing.is_empty() {
            true => Ok(()),
            false => Err(Error::new(missing.join("\n"))),
        }
    }

    /// The manifest in init's line format.
    pub fn flatten(&self) -> String {
        let servers: Vec<Server> = self.servers().cloned().collect();
        keel_manifest::to_text(&servers)
    }

    /// Writes the flattened manifest as `dir/manifest` (the boot module's name is the
    /// file's); returns the path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        fs::create_dir_all(dir).context(format!("creating {}", dir.display()))?;
        let path = dir.join("manifest");
        fs::write(&path, self.flatten()).context(format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// The 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// What init reads for one checked entry.
fn server(entry: ServerEntry) -> Server {
    let defaults = Restart::default();
    let restart = entry.restart.map_or(defaults, |restart| Restart {
        policy: match restart.policy {
            PolicyEntry::Always => Policy::Always,
            PolicyEntry::Never => Policy::Never,
        },
        max: restart.max.unwrap_or(defaults.max),
        backoff_ms: restart.backoff_ms.unwrap_or(defaults.backoff_ms),
        window_ms: restart.window_ms.unwrap_or(defaults.window_ms),
    });
    Server {
        name: entry.name.into_inner(),
        program: entry.program.into_inner(),
        args: entry.args.map(Spanned::into_inner).unwrap_or_default(),
        priority: entry.priority.into_inner(),
        irqs: entry.irqs.into_iter().map(Spanned::into_inner).collect(),
        // `check` made sure both fit.
        io_ports: entry
            .io_ports
            .into_iter()
            .map(|ports| {
                let (base, len) = ports.into_inner();
                IoPorts {
                    base: base as u16,
                    len: len as u16,
                }
            })
            .collect(),
        log: entry.log,
        connects: entry
            .connects
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        may_kill: entry.may_kill,
        may_run: entry.may_run,
        may_poweroff: entry.may_poweroff,
        restart,
        frames: entry.frames.map_or(0, Spanned::into_inner),
        processes: entry.processes.map_or(0, Spanned::into_inner),
        threads: entry.threads.map_or(0, Spanned::into_inner),
    }
}

/// Everything wrong with `file` (read from `text`), in the order of the file.
fn check(file: &File, text: &str, programs: &[&str]) -> Vec<Problem> {
    let line = |at: Range<usize>| line_of(text, at.start);
    let servers: Vec<&ServerEntry> = file.server.iter().map(|s| s.get_ref()).collect();
    let mut problems = Vec::new();
    if servers.is_empty() {
        problems.push(problem(
            0..0,
            "no [[server]]: init would have nothing to start".into(),
        ));
    }
    for (index, server) in servers.iter().enumerate() {
        let earlier = &servers[..index];
        check_names(server, earlier, &line, &mut problems);
        check_program(server, programs, &mut problems);
        for service in &server.connects {
            if !servers
                .iter()
                .any(|s| s.name.get_ref() == service.get_ref())
            {
                problems.push(problem(
                    service.span(),
                    format!(
                        "`{}` connects to `{}`, but no server of that name provides it",
                        server.name.get_ref(),
                        service.get_ref()
                    ),
                ));
            }
        }
    }
    check_devices(&servers, &line, &mut problems);
    check_limits(&servers, &mut problems);
    problems.sort_by_key(|p| p.at.start);
    problems
}

/// Where another entry was written, for messages that name two places.
type Lines<'a> = &'a dyn Fn(Range<usize>) -> usize;

fn check_names(
    server: &ServerEntry,
    earlier: &[&ServerEntry],
    line: Lines,
    problems: &mut Vec<Problem>,
) {
    let name = server.name.get_ref();
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || name.len() > NAME_LEN || !name.chars().all(valid) {
        problems.push(problem(
            server.name.span(),
            format!("server name `{name}`: 1 to {NAME_LEN} letters, digits, `-` or `_`, please"),
        ));
    }
    if let Some(first) = earlier.iter().find(|s| s.name.get_ref() == name) {
        problems.push(problem(
            server.name.span(),
            format!(
                "a second server called `{name}` (the first is on line {})",
                line(first.name.span())
            ),
        ));
    }
    let Some(args) = &server.args else {
        return;
    };
    if args.get_ref().contains(['\n', '\r']) || args.get_ref().len() > keel_abi::ARGS_LEN {
        problems.push(problem(
            args.span(),
            "`args` must be one line of at most 1024 bytes".into(),
        ));
    }
}

fn check_program(server: &ServerEntry, programs: &[&str], problems: &mut Vec<Problem>) {
    let program = server.program.get_ref();
    if !programs.contains(&program.as_str()) {
        problems.push(problem(
            server.program.span(),
            format!(
                "unknown program `{program}`; the programs are: {}",
                programs.join(", ")
            ),
        ));
    }
    let priority = *server.priority.get_ref();
    if priority >= PRIORITY_LEVELS {
        problems.push(problem(
            server.priority.span(),
            format!(
                "priority {priority}: the priorities are 0 to {}",
                PRIORITY_LEVELS - 1
            ),
        ));
    }
}

/// Each server's quotas are in range, and their frames fit the budget together.
fn check_limits(servers: &[&ServerEntry], problems: &mut Vec<Problem>) {
    let max_processes = keel_abi::PROCESS_TABLE_SIZE - 1;
    for server in servers {
        let name = server.name.get_ref();
        let mut range = |value: Option<(usize, Range<usize>)>, field: &str, min, max| {
            if let Some((value, at)) = value.filter(|(v, _)| !(min..=max).contains(v)) {
                problems.push(problem(
                    at,
                    format!("`{name}`: {field} = {value}: want {min} to {max}"),
                ));
            }
        };
        let spanned =
            |s: &Option<Spanned<u32>>| s.as_ref().map(|s| (*s.get_ref() as usize, s.span()));
        range(
            server.frames.as_ref().map(|s| (*s.get_ref(), s.span())),
            "frames",
            MIN_SERVER_FRAMES,
            SERVER_FRAME_BUDGET,
        );
        range(spanned(&server.processes), "processes", 1, max_processes);
        range(
            spanned(&server.threads),
            "threads",
            1,
            keel_abi::MAX_THREADS as usize,
        );
    }
    let total: usize = servers
        .iter()
        .map(|s| {
            s.frames
                .as_ref()
                .map_or(keel_abi::DEFAULT_CHILD_FRAMES, |f| *f.get_ref())
        })
        .sum();
    if total > SERVER_FRAME_BUDGET {
        let at = servers.last().map_or(0..0, |s| {
            s.frames.as_ref().map_or(s.name.span(), Spanned::span)
        });
        problems.push(problem(
            at,
            format!(
                "the servers' frames add up to {total} (a server without `frames` counts {}): \
                 at most {SERVER_FRAME_BUDGET} fit beside init",
                keel_abi::DEFAULT_CHILD_FRAMES
            ),
        ));
    }
}

/// Each IRQ and each I/O port has at most one owner: a driver must be alone with its device.
fn check_devices(servers: &[&ServerEntry], line: Lines, problems: &mut Vec<Problem>) {
    let irqs: Vec<(&str, &Spanned<u8>)> = servers
        .iter()
        .flat_map(|s| s.irqs.iter().map(|irq| (s.name.get_ref().as_str(), irq)))
        .collect();
    for (index, &(name, irq)) in irqs.iter().enumerate() {
        let number = *irq.get_ref();
        if number >= IRQ_LINES {
            problems.push(problem(
                irq.span(),
                format!("IRQ {number}: the lines are 0 to {}", IRQ_LINES - 1),
            ));
        }
        if let Some((owner, first)) = irqs[..index]
            .iter()
            .find(|(_, i)| i.get_ref() == irq.get_ref())
        {
            problems.push(problem(
                irq.span(),
                format!(
                    "IRQ {number} has two owners: `{owner}` (line {}) and `{name}`",
                    line(first.span())
                ),
            ));
        }
    }
    let ranges: Vec<(&str, &Spanned<(u32, u32)>)> = servers
        .iter()
        .flat_map(|s| {
            s.io_ports
                .iter()
                .map(|ports| (s.name.get_ref().as_str(), ports))
        })
        .collect();
    let range = |ports: &Spanned<(u32, u32)>| {
        let (base, len) = *ports.get_ref();
        base..base.saturating_add(len)
    };
    for (index, &(name, ports)) in ranges.iter().enumerate() {
        let mine = range(ports);
        if mine.is_empty() || mine.end > 0x1_0000 {
            let (base, len) = *ports.get_ref();
            problems.push(problem(
                ports.span(),
                format!("I/O ports [{base:#x}, {len}]: want 1 or more ports below 0x10000"),
            ));
            continue;
        }
        let overlaps = |(_, other): &&(&str, &Spanned<(u32, u32)>)| {
            let other = range(other);
            other.start < mine.end && mine.start < other.end
        };
        if let Some((owner, first)) = ranges[..index].iter().find(overlaps) {
            problems.push(problem(
                ports.span(),
                format!(
                    "I/O ports {mine:#x?} have two owners: `{owner}` (line {}) and `{name}`",
                    line(first.span())
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROGRAMS: &[&str] = &["console", "shell", "kv"];

    const GOOD: &str = r#"
[[server]]
name = "console"
program = "console"
priority = 10
irqs = [4]
io_ports = [[0x3f8, 8]]
log = true
restart = { policy = "always", max = 5, backoff_ms = 50, window_ms = 60000 }

[[server]]
name = "shell"
program = "shell"
args = "tour"
connects = ["console"]
may_kill = true
restart = { policy = "always" }
"#;

    /// The error `text` stops with.
    fn error(text: &str) -> String {
        Manifest::parse("system.toml", text, PROGRAMS)
            .unwrap_err()
            .to_string()
    }

    /// `GOOD` with `extra` appended.
    fn with(extra: &str) -> String {
        format!("{GOOD}{extra}")
    }

    #[test]
    fn a_good_manifest_flattens_for_init() {
        let manifest = Manifest::parse("system.toml", GOOD, PROGRAMS).unwrap();
        let servers = keel_manifest::parse(&manifest.flatten()).unwrap();
        assert_eq!(servers.len(), 2);
        let (console, shell) = (&servers[0], &servers[1]);
        assert_eq!(console.irqs, [4]);
        assert_eq!(
            console.io_ports,
            [IoPorts {
                base: 0x3f8,
                len: 8
            }]
        );
        assert!(console.log && !console.may_kill);
        assert_eq!(
            console.restart,
            Restart {
                policy: Policy::Always,
                max: 5,
                backoff_ms: 50,
                window_ms: 60_000
            }
        );
        assert_eq!(shell.priority, PRIORITY_DEFAULT);
        assert_eq!(shell.args, "tour");
        assert_eq!(shell.connects, ["console"]);
        assert!(shell.may_kill && !shell.may_run && !shell.log);
        assert_eq!(shell.restart.policy, Policy::Always);
        assert_eq!(shell.restart.max, Restart::default().max);
    }

    #[test]
    fn an_unknown_program_is_named_with_its_line() {
        let text = with("\n[[server]]\nname = \"kv\"\nprogram = \"kvv\"\n");
        assert_eq!(
            error(&text),
            "system.toml:21: unknown program `kvv`; the programs are: console, shell, kv"
        );
    }

    #[test]
    fn two_owners_for_one_irq_stop_the_build() {
        let text = with("\n[[server]]\nname = \"kv\"\nprogram = \"kv\"\nirqs = [3, 4]\n");
        assert_eq!(
            error(&text),
            "system.toml:22: IRQ 4 has two owners: `console` (line 6) and `kv`"
        );
    }

    #[test]
    fn overlapping_io_ports_stop_the_build() {
        let text = with("\n[[server]]\nname = \"kv\"\nprogram = \"kv\"\nio_ports = [[0x3fc, 2]]\n");
        assert_eq!(
            error(&text),
            "system.toml:22: I/O ports 0x3fc..0x3fe have two owners: `console` (line 7) and `kv`"
        );
    }

    #[test]
    fn a_connection_to_no_service_stops_the_build() {
        let text = GOOD.replace(r#"connects = ["console"]"#, r#"connects = ["consol"]"#);
        assert_eq!(
            error(&text),
            "system.toml:15: `shell` connects to `consol`, but no server of that name provides it"
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named_with_their_line() {
        assert_eq!(
            error(&GOOD.replace("irqs = [4]", "irq = [4]")),
            "system.toml:6: unknown field `irq`, expected one of `name`, `program`, `args`, \
             `priority`, `irqs`, `io_ports`, `log`, `connects`, `may_kill`, `may_run`, \
             `may_poweroff`, `restart`, `frames`, `processes`, `threads`"
        );
        assert!(
            error(&GOOD.replace("\"always\", max = 5", "\"sometimes\", max = 5"))
                .starts_with("system.toml:9: unknown variant `sometimes`")
        );
        assert_eq!(
            error(&GOOD.replace("priority = 10", "priority = 40")),
            "system.toml:5: priority 40: the priorities are 0 to 31"
        );
        assert_eq!(
            error(&GOOD.replace("irqs = [4]", "irqs = [16]")),
            "system.toml:6: IRQ 16: the lines are 0 to 15"
        );
        assert!(error("[[server]\n").starts_with("system.toml:1: "));
    }

    #[test]
    fn resource_limits_reach_init_and_are_checked() {
        let text = GOOD.replace(
            "priority = 10",
            "priority = 10\nframes = 1024\nprocesses = 2\nthreads = 4",
        );
        let manifest = Manifest::parse("system.toml", &text, PROGRAMS).unwrap();
        let servers = keel_manifest::parse(&manifest.flatten()).unwrap();
        assert_eq!(
            (servers[0].frames, servers[0].processes, servers[0].threads),
            (1024, 2, 4)
        );
        assert_eq!((servers[1].frames, servers[1].threads), (0, 0));
        assert_eq!(
            error(&GOOD.replace("priority = 10", "priority = 10\nframes = 16")),
            "system.toml:6: `console`: frames = 16: want 256 to 32768"
        );
        assert_eq!(
            error(&GOOD.replace("priority = 10", "priority = 10\nthreads = 65")),
            "system.toml:6: `console`: threads = 65: want 1 to 64"
        );
        assert_eq!(
            error(&GOOD.replace("priority = 10", "priority = 10\nprocesses = 0")),
            "system.toml:6: `console`: processes = 0: want 1 to 255"
        );
        assert_eq!(
            error(&GOOD.replace("args = \"tour\"", "args = \"tour\"\nframes = 30000")),
            "system.toml:15: the servers' frames add up to 34096 (a server without `frames` \
             counts 4096): at most 32768 fit beside init"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = GOOD
            .replace("program = \"shell\"", "program = \"sh\"")
            .replace("name = \"shell\"", "name = \"console\"");
        let error = error(&text);
        let lines: Vec<&str> = error.lines().collect();
        assert_eq!(lines.len(), 2, "{error}");
        assert!(lines[0].starts_with("system.toml:12: a second server called `console`"));
        assert!(lines[1].starts_with("system.toml:13: unknown program `sh`"));
    }

    #[test]
    fn an_empty_manifest_starts_nothing_and_is_refused() {
        assert_eq!(
            error(""),
            "system.toml:1: no [[server]]: init would have nothing to start"
        );
    }

    #[test]
    fn a_missing_binary_is_named_with_its_program_line() {
        let manifest = Manifest::parse("system.toml", GOOD, PROGRAMS).unwrap();
        let error = manifest
            .check_binaries(|program| PathBuf::from(format!("/nowhere/{program}")))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "system.toml:4: program `console`: /nowhere/console does not exist; build it first\n\
             system.toml:13: program `shell`: /nowhere/shell does not exist; build it first"
        );
    }

    #[test]
    fn the_demo_manifest_passes_its_checks() {
        let manifest = Manifest::load(&demo_path(), crate::guest::DEMO_PROGRAMS).unwrap();
        assert!(manifest.servers().any(|server| server.name == "console"));
    }

    #[test]
    fn a_manifest_error_stops_the_build_with_its_message() {
        let dir = std::env::temp_dir().join(format!("keel-manifest-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("system.toml");
        fs::write(
            &path,
            with("\n[[server]]\nname = \"x\"\nprogram = \"nope\"\n"),
        )
        .unwrap();
        let result = crate::image::demo_image(&path, false);
        fs::remove_dir_all(&dir).unwrap();
        let error = result.unwrap_err().to_string();
        assert!(
            error.contains("system.toml:21: unknown program `nope`"),
            "{error}"
        );
    }
}
