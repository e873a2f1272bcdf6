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
use keel_manifest::{IoPorts, PciMatch, Policy, Restart, Server};
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

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
/// default): half of the demo machine's 512 MiB, so that init, the programs it runs and the
/// kernel's reserve keep the rest.
const SERVER_FRAME_BUDGET: usize = 64 * 1024;

/// A checked manifest: the servers, and where each was written.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// How messages name the file.
    file: String,
    servers: Vec<Checked>,
    /// What the image carries: [`Manifest::programs`].
    programs: Vec<String>,
}

#[derive(Clone, Debug)]
struct Checked {
    server: Server,
    /// Line of the server's `program`.
    program_line: usize,
}

/// `system.toml` as written, with positions. Unknown fields are found (and reported, all of
/// them) before serde sees the file: see [`unknown_fields`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    server: Vec<Spanned<ServerEntry>>,
    /// Programs the image carries that init does not start: what a server may `run`.
    #[serde(default)]
    programs: Vec<Spanned<String>>,
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
    pci: Option<Spanned<String>>,
    #[serde(default)]
    connects: Vec<Spanned<String>>,
    #[serde(default)]
    may_kill: bool,
    #[serde(default)]
    may_run: bool,
    #[serde(default)]
    may_poweroff: bool,
    #[serde(default)]
    completes: Option<Spanned<bool>>,
    #[serde(default)]
    restart: Option<Spanned<RestartEntry>>,
    frames: Option<Spanned<usize>>,
    processes: Option<Spanned<u32>>,
    threads: Option<Spanned<u32>>,
    cpus: Option<Spanned<Vec<u32>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartEntry {
    policy: PolicyEntry,
    max: Option<u32>,
    backoff_ms: Option<u32>,
    window_ms: Option<u32>,
}

#[derive(Deserialize, PartialEq)]
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
        let report = |mut problems: Vec<Problem>| {
            problems.sort_by_key(|p| p.at.start);
            let lines: Vec<String> = problems
                .iter()
                .map(|p| format!("{file}:{}: {}", line_of(text, p.at.start), p.message))
                .collect();
            Error::new(lines.join("\n"))
        };
        // A value serde could not read leaves its server out: the checks between servers
        // would then report guesses, so they wait for the file to read whole.
        let (parsed, mut problems) = read(text);
        let Some(parsed) = parsed else {
            return Err(report(problems));
        };
        problems.extend(check(&parsed, text, programs));
        if !problems.is_empty() {
            return Err(report(problems));
        }
        let extra = parsed.programs.into_iter().map(Spanned::into_inner);
        let servers: Vec<Checked> = parsed
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
        let mut all: Vec<String> = Vec::new();
        let named = servers.iter().map(|c| c.server.program.clone());
        for program in named.chain(extra) {
            if !all.contains(&program) {
                all.push(program);
            }
        }
        Ok(Manifest {
            file: file.to_owned(),
            servers,
            programs: all,
        })
    }

    /// Every program the manifest names, servers' first, each once: what the image carries.
    pub fn programs(&self) -> &[String] {
        &self.programs
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

/// `text` read as a [`File`], with every problem met on the way: TOML errors, every unknown
/// field, and values of the wrong type (one per server or top-level field). The file is
/// `None` when it could not be read whole.
fn read(text: &str) -> (Option<File>, Vec<Problem>) {
    let (document, errors) = DeTable::parse_recoverable(text);
    let mut problems: Vec<Problem> = errors.iter().map(toml_problem).collect();
    if !problems.is_empty() {
        return (None, problems);
    }
    let mut top = document.into_inner();
    problems.extend(unknown_fields::<File>(&mut top, "the manifest"));
    let mut whole = true;
    let mut file = File {
        server: Vec::new(),
        programs: Vec::new(),
    };
    if let Some(value) = take(&mut top, "programs") {
        match Deserialize::deserialize(ValueDeserializer::from(value)) {
            Ok(programs) => file.programs = programs,
            Err(error) => {
                whole = false;
                problems.push(toml_problem(&error));
            }
        }
    }
    let servers = match take(&mut top, "server").map(|v| (v.span(), v.into_inner())) {
        Some((_, DeValue::Array(servers))) => servers.into_iter().collect(),
        Some((at, _)) => {
            whole = false;
            problems.push(problem(at, "`server` must be [[server]] tables".into()));
            Vec::new()
        }
        None => Vec::new(),
    };
    for mut entry in servers {
        if let DeValue::Table(table) = entry.get_mut() {
            problems.extend(unknown_fields::<ServerEntry>(table, "a [[server]]"));
            let restart = table.iter_mut().find(|(k, _)| k.get_ref() == "restart");
            if let Some((_, restart)) = restart
                && let DeValue::Table(restart) = restart.get_mut()
            {
                problems.extend(unknown_fields::<RestartEntry>(restart, "`restart`"));
            }
        }
        match Deserialize::deserialize(ValueDeserializer::from(entry)) {
            Ok(server) => file.server.push(server),
            Err(error) => {
                whole = false;
                problems.push(toml_problem(&error));
            }
        }
    }
    (whole.then_some(file), problems)
}

/// Removes and returns the value of `key`.
fn take<'i>(table: &mut DeTable<'i>, key: &str) -> Option<Spanned<DeValue<'i>>> {
    let key = table.keys().find(|k| k.get_ref() == key)?.clone();
    table.remove(&key)
}

/// Removes the fields of `table` that `T` does not have, and says where each was.
fn unknown_fields<'de, T: Deserialize<'de>>(table: &mut DeTable, what: &str) -> Vec<Problem> {
    let known = field_names::<T>();
    let unknown: Vec<_> = table
        .keys()
        .filter(|key| !known.contains(&key.get_ref().as_ref()))
        .cloned()
        .collect();
    for key in &unknown {
        table.remove(key);
    }
    unknown
        .into_iter()
        .map(|key| {
            let expected: Vec<String> = known.iter().map(|f| format!("`{f}`")).collect();
            // TOML gives a key after `[[server]]` to that server: the likely slip.
            let top = field_names::<File>().contains(&key.get_ref().as_ref());
            let hint = if top {
                " (a top-level field goes before the first [[server]])"
            } else {
                ""
            };
            problem(
                key.span(),
                format!(
                    "unknown field `{}` in {what}; the fields are {}{hint}",
                    key.get_ref(),
                    expected.join(", ")
                ),
            )
        })
        .collect()
}

/// A TOML or serde error, where it happened.
fn toml_problem(error: &toml::de::Error) -> Problem {
    problem(
        error.span().unwrap_or(0..0),
        error.message().trim().to_owned(),
    )
}

/// The fields of struct `T`, as its derived `Deserialize` names them: asked of it, so no
/// second list has to be kept in step with the struct.
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor, value::Error};

    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> std::result::Result<V::Value, Error> {
            Err(Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> std::result::Result<V::Value, Error> {
            *self.0 = fields;
            Err(Error::custom("only the field names were wanted"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// The 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// What init reads for one checked entry.
fn server(entry: ServerEntry) -> Server {
    let defaults = Restart::default();
    let restart = entry.restart.map(Spanned::into_inner);
    let restart = restart.map_or(defaults, |restart| Restart {
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
        // `check` made sure it reads.
        pci: entry.pci.and_then(|pci| PciMatch::parse(pci.get_ref())),
        connects: entry
            .connects
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        may_kill: entry.may_kill,
        may_run: entry.may_run,
        may_poweroff: entry.may_poweroff,
        completes: entry.completes.is_some_and(|c| *c.get_ref()),
        restart,
        frames: entry.frames.map_or(0, Spanned::into_inner),
        processes: entry.processes.map_or(0, Spanned::into_inner),
        threads: entry.threads.map_or(0, Spanned::into_inner),
        // `check` made sure each is below `MAX_CORES`.
        cpus: entry
            .cpus
            .map_or(Vec::new(), Spanned::into_inner)
            .into_iter()
            .map(|core| core as u8)
            .collect(),
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
        check_completes(server, &mut problems);
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
    for program in &file.programs {
        if !programs.contains(&program.get_ref().as_str()) {
            problems.push(problem(
                program.span(),
                unknown_program(program.get_ref(), programs),
            ));
        }
    }
    check_devices(&servers, &line, &mut problems);
    check_limits(&servers, &mut problems);
    problems
}

fn unknown_program(program: &str, programs: &[&str]) -> String {
    format!(
        "unknown program `{program}`: no workspace package has a binary of that name; \
         the programs are: {}",
        programs.join(", ")
    )
}

/// A program that runs to completion ends once: restarting it would never let it finish.
fn check_completes(server: &ServerEntry, problems: &mut Vec<Problem>) {
    let Some(completes) = server.completes.as_ref().filter(|c| *c.get_ref()) else {
        return;
    };
    let restart = server.restart.as_ref();
    if restart.is_some_and(|r| r.get_ref().policy == PolicyEntry::Always) {
        problems.push(problem(
            completes.span(),
            format!(
                "`{}` runs to completion (`completes = true`) but restarts always: \
                 drop one of the two",
                server.name.get_ref()
            ),
        ));
    }
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
            unknown_program(program, programs),
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
        if let Some(cpus) = &server.cpus {
            let max = keel_abi::MAX_CORES - 1;
            let wrong = match cpus.get_ref()[..] {
                [] => Some("want at least one core".into()),
                ref cores => cores
                    .iter()
                    .find(|&&core| core as usize > max)
                    .map(|core| format!("core {core}: the cores are 0 to {max}")),
            };
            if let Some(wrong) = wrong {
                problems.push(problem(cpus.span(), format!("`{name}`: cpus: {wrong}")));
            }
        }
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
            let message = if *owner == name {
                format!(
                    "IRQ {number} is listed twice for `{name}` (first on line {})",
                    line(first.span())
                )
            } else {
                format!(
                    "IRQ {number} has two owners: `{owner}` (line {}) and `{name}`",
                    line(first.span())
                )
            };
            problems.push(problem(irq.span(), message));
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
            let message = if *owner == name {
                format!(
                    "I/O ports {mine:#x?} overlap another range of `{name}` (line {})",
                    line(first.span())
                )
            } else {
                format!(
                    "I/O ports {mine:#x?} have two owners: `{owner}` (line {}) and `{name}`",
                    line(first.span())
                )
            };
            problems.push(problem(ports.span(), message));
        }
    }
    check_pci(servers, line, problems);
}

/// Each `pci` reads, and names a device no other server drives.
fn check_pci(servers: &[&ServerEntry], line: Lines, problems: &mut Vec<Problem>) {
    let mut seen: Vec<(&str, PciMatch, &Spanned<String>)> = Vec::new();
    for server in servers {
        let Some(pci) = &server.pci else { continue };
        let Some(device) = PciMatch::parse(pci.get_ref()) else {
            problems.push(problem(
                pci.span(),
                format!(
                    "pci `{}`: want `VVVV:DDDD` (vendor and device id, hex) or `class:CC:SS`",
                    pci.get_ref()
                ),
            ));
            continue;
        };
        let name = server.name.get_ref().as_str();
        if let Some((owner, _, first)) = seen.iter().find(|(_, other, _)| *other == device) {
            problems.push(problem(
                pci.span(),
                format!(
                    "PCI device {device} has two owners: `{owner}` (line {}) and `{name}`",
                    line(first.span())
                ),
            ));
        }
        seen.push((name, device, pci));
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
            "system.toml:21: unknown program `kvv`: no workspace package has a binary of that \
             name; the programs are: console, shell, kv"
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
    fn a_pci_device_reaches_init_and_has_one_owner() {
        let text = with("\n[[server]]\nname = \"disk\"\nprogram = \"kv\"\npci = \"1af4:1042\"\n");
        let manifest = Manifest::parse("system.toml", &text, PROGRAMS).unwrap();
        let servers = keel_manifest::parse(&manifest.flatten()).unwrap();
        let disk = servers.iter().find(|s| s.name == "disk").unwrap();
        assert_eq!(
            disk.pci,
            Some(PciMatch::Id {
                vendor: 0x1af4,
                device: 0x1042
            })
        );
        let twice = format!(
            "{text}\n[[server]]\nname = \"disk2\"\nprogram = \"kv\"\npci = \"1af4:1042\"\n"
        );
        assert!(
            error(&twice).contains("PCI device 1af4:1042 has two owners: `disk` (line"),
            "{}",
            error(&twice)
        );
        let bad = with("\n[[server]]\nname = \"disk\"\nprogram = \"kv\"\npci = \"virtio\"\n");
        assert!(
            error(&bad).contains("pci `virtio`: want `VVVV:DDDD`"),
            "{}",
            error(&bad)
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named_with_their_line() {
        assert_eq!(
            error(&GOOD.replace("irqs = [4]", "irq = [4]")),
            "system.toml:6: unknown field `irq` in a [[server]]; the fields are `name`, \
             `program`, `args`, `priority`, `irqs`, `io_ports`, `log`, `pci`, `connects`, \
             `may_kill`, \
             `may_run`, `may_poweroff`, `completes`, `restart`, `frames`, `processes`, `threads`, \
             `cpus`"
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
            "priority = 10\nframes = 1024\nprocesses = 2\nthreads = 4\ncpus = [1]",
        );
        let manifest = Manifest::parse("system.toml", &text, PROGRAMS).unwrap();
        let servers = keel_manifest::parse(&manifest.flatten()).unwrap();
        assert_eq!(
            (servers[0].frames, servers[0].processes, servers[0].threads),
            (1024, 2, 4)
        );
        assert_eq!(servers[0].cpus, vec![1]);
        assert_eq!((servers[1].frames, servers[1].threads), (0, 0));
        assert!(servers[1].cpus.is_empty());
        assert_eq!(
            error(&GOOD.replace("priority = 10", "priority = 10\ncpus = []")),
            "system.toml:6: `console`: cpus: want at least one core"
        );
        assert_eq!(
            error(&GOOD.replace("priority = 10", "priority = 10\ncpus = [0, 8]")),
            "system.toml:6: `console`: cpus: core 8: the cores are 0 to 7"
        );
        assert_eq!(
            error(&GOOD.replace("priority = 10", "priority = 10\nframes = 16")),
            "system.toml:6: `console`: frames = 16: want 256 to 65536"
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
            error(&GOOD.replace("args = \"tour\"", "args = \"tour\"\nframes = 62000")),
            "system.toml:15: the servers' frames add up to 66096 (a server without `frames` \
             counts 4096): at most 65536 fit beside init"
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
    fn unknown_fields_are_reported_with_every_other_problem() {
        let text = "size = 3\n".to_owned()
            + &GOOD
                .replace("log = true", "log = true\nlogs = true")
                .replace(
                    "restart = { policy = \"always\" }",
                    "restart = { policy = \"always\", maxx = 2 }",
                )
                .replace("program = \"shell\"", "program = \"sh\"");
        let error = error(&text);
        let lines: Vec<&str> = error.lines().collect();
        assert_eq!(lines.len(), 4, "{error}");
        assert!(lines[0].starts_with("system.toml:1: unknown field `size` in the manifest"));
        assert!(lines[1].starts_with("system.toml:10: unknown field `logs` in a [[server]]"));
        assert!(
            lines[2].starts_with("system.toml:15: unknown program `sh`"),
            "{error}"
        );
        assert!(lines[3].starts_with("system.toml:19: unknown field `maxx` in `restart`"));
    }

    #[test]
    fn a_top_level_field_after_a_server_says_where_it_belongs() {
        let error = error(&with("programs = [\"kv\"]\n"));
        assert!(
            error.starts_with("system.toml:18: unknown field `programs` in a [[server]]"),
            "{error}"
        );
        assert!(error.ends_with("(a top-level field goes before the first [[server]])"));
    }

    #[test]
    fn a_bad_value_in_one_server_does_not_hide_another_servers() {
        let text =
            with("\n[[server]]\nname = \"kv\"\nprogram = \"kv\"\nlog = \"yes\"\nbogus = 1\n")
                .replace("priority = 10", "priority = \"high\"");
        let error = error(&text);
        let lines: Vec<&str> = error.lines().collect();
        assert_eq!(lines.len(), 3, "{error}");
        assert!(lines[0].starts_with("system.toml:5: "), "{error}");
        assert!(lines[1].starts_with("system.toml:22: "), "{error}");
        assert!(
            lines[2].starts_with("system.toml:23: unknown field `bogus`"),
            "{error}"
        );
    }

    #[test]
    fn one_server_naming_an_irq_twice_is_not_two_owners() {
        assert_eq!(
            error(&GOOD.replace("irqs = [4]", "irqs = [4, 4]")),
            "system.toml:6: IRQ 4 is listed twice for `console` (first on line 6)"
        );
        assert_eq!(
            error(&GOOD.replace(
                "io_ports = [[0x3f8, 8]]",
                "io_ports = [[0x3f8, 8], [0x3f9, 1]]"
            )),
            "system.toml:7: I/O ports 0x3f9..0x3fa overlap another range of `console` (line 7)"
        );
    }

    #[test]
    fn programs_to_run_and_to_complete_reach_the_image_and_init() {
        let text = format!(
            "programs = [\"kv\", \"console\"]\n{GOOD}\n[[server]]\nname = \"kv\"\n\
             program = \"kv\"\ncompletes = true\n"
        );
        let manifest = Manifest::parse("system.toml", &text, PROGRAMS).unwrap();
        assert_eq!(manifest.programs(), ["console", "shell", "kv"]);
        let servers = keel_manifest::parse(&manifest.flatten()).unwrap();
        assert!(servers[2].completes && !servers[0].completes);
        assert!(
            error(&format!("programs = [\"ledger\"]\n{GOOD}")).starts_with(
                "system.toml:1: unknown program `ledger`: no workspace package has a binary"
            )
        );
        let restarting = text.replace(
            "completes = true",
            "completes = true\nrestart = { policy = \"always\" }",
        );
        assert_eq!(
            error(&restarting),
            "system.toml:23: `kv` runs to completion (`completes = true`) but restarts always: \
             drop one of the two"
        );
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
        let (manifest, packages) = crate::image::demo_manifest(&demo_path()).unwrap();
        assert!(manifest.servers().any(|server| server.name == "console"));
        for package in [
            "kernel",
            "init",
            "console",
            "shell",
            "hello",
            "hello-service",
            "kv",
        ] {
            assert!(
                packages.iter().any(|p| p == package),
                "{package} in {packages:?}"
            );
        }
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
