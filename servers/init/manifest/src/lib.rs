//! The system manifest as init reads it: the servers to start, what each may hold and reach,
//! and how to keep it running.
//!
//! A person writes `system.toml`; bootimage checks it and hands init this crate's line
//! format as the boot module `manifest`. TOML would take init a parser it does not need:
//! bootimage has already rejected every mistake a person can make, so what init reads is a
//! flat list that [`parse`] takes in one pass. Both sides use this crate, so the format has
//! one definition ([`to_text`] writes it), and docs/SYSTEM.md describes it.
//!
//! ```text
//! keel-manifest 1
//! server console
//! program console
//! priority 10
//! frames 1024
//! io_ports 0x3f8 8
//! irq 4
//! log
//! restart always 5 50 60000
//! server shell
//! program shell
//! args --verbose
//! connect console
//! may_kill
//! restart always 3 100 60000
//! ```
//!
//! One `key value` per line; `server NAME` starts a server and the lines after it describe
//! it. `irq`, `io_ports` and `connect` repeat, in order; `pci` names at most one function;
//! `cpus` lists core numbers; `log`, `may_kill`, `may_run`,
//! `may_poweroff` and `completes` are there only when granted or set; `frames`, `processes` and `threads` only
//! when set (else the kernel's defaults); `args` is the rest of its line. Blank lines
//! and `#` comments are ignored, and anything else is an [`Error`] naming its line.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// The first line of every manifest: the format and its version.
pub const HEADER: &str = "keel-manifest 1";

/// One server: a boot module to run as a process, and everything init gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// The process name, and the one service name it may register.
    pub name: String,
    /// The boot module it runs.
    pub program: String,
    /// The argument string its `main` receives.
    pub args: String,
    pub priority: usize,
    /// Interrupt lines it gets a capability to.
    pub irqs: Vec<u8>,
    /// I/O port ranges it gets a capability to.
    pub io_ports: Vec<IoPorts>,
    /// Whether it gets the kernel log capability.
    pub log: bool,
    /// The PCI function it drives: init grants its configuration page, BARs and interrupt.
    pub pci: Option<PciMatch>,
    /// The services it may look up.
    pub connects: Vec<String>,
    /// Whether it may ask init to kill a server.
    pub may_kill: bool,
    /// Whether it may ask init to run a program.
    pub may_run: bool,
    /// Whether it may ask init to power the machine off.
    pub may_poweroff: bool,
    /// Whether it runs to completion: a headless demo powers off only once it has exited,
    /// and an exit code other than 0 fails the demo.
    pub completes: bool,
    pub restart: Restart,
    /// Its frame quota, carved from init's; 0: the kernel's default
    /// ([`keel_abi::DEFAULT_CHILD_FRAMES`]).
    pub frames: usize,
    /// How many processes may descend from it; 0: the kernel's default.
    pub processes: u32,
    /// How many threads it may have; 0: the kernel's default.
    pub threads: u32,
    /// The cores its threads may run on, each below [`keel_abi::MAX_CORES`]; empty: any.
    pub cpus: Vec<u8>,
}

/// Which PCI function a driver is for: the first one init finds that matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciMatch {
    /// `1af4:1042`: vendor and device id, in hex.
    Id { vendor: u16, device: u16 },
    /// `class:01:00`: class and subclass, in hex.
    Class { class: u8, subclass: u8 },
}

impl PciMatch {
    /// `VVVV:DDDD` or `class:CC:SS` (hex digits, exactly as many as shown).
    pub fn parse(text: &str) -> Option<PciMatch> {
        fn hex<T: TryFrom<u32>>(digits: &str, len: usize) -> Option<T> {
            if digits.len() != len || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            T::try_from(u32::from_str_radix(digits, 16).ok()?).ok()
        }
        match text.split(':').collect::<Vec<_>>()[..] {
            ["class", class, subclass] => Some(PciMatch::Class {
                class: hex(class, 2)?,
                subclass: hex(subclass, 2)?,
            }),
            [vendor, device] => Some(PciMatch::Id {
                vendor: hex(vendor, 4)?,
                device: hex(device, 4)?,
            }),
            _ => None,
        }
    }

    /// Whether a function with these ids and class is the one.
    pub fn matches(&self, vendor: u16, device: u16, class: (u8, u8)) -> bool {
        match *self {
            PciMatch::Id {
                vendor: v,
                device: d,
            } => (v, d) == (vendor, device),
            PciMatch::Class {
                class: c,
                subclass: s,
            } => (c, s) == class,
        }
    }
}

impl fmt::Display for PciMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PciMatch::Id { vendor, device } => write!(f, "{vendor:04x}:{device:04x}"),
            PciMatch::Class { class, subclass } => write!(f, "class:{class:02x}:{subclass:02x}"),
        }
    }
}

/// The I/O ports `base..base + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoPorts {
    pub base: u16,
    pub len: u16,
}

/// What init does when the server ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restart {
    pub policy: Policy,
    /// Restarts within `window_ms` before init gives up on it.
    pub max: u32,
    /// How long init waits before each restart.
    pub backoff_ms: u32,
    /// How far back restarts count against `max`; 0 counts them over the server's life.
    pub window_ms: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Start it again whenever it ends, however it ended.
    Always,
    /// Let it end.
    Never,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Always => "always",
            Policy::Never => "never",
        }
    }

    pub fn parse(name: &str) -> Option<Policy> {
        match name {
            "always" => Some(Policy::Always),
            "never" => Some(Policy::Never),
            _ => None,
        }
    }
}

impl Default for Restart {
    fn default() -> Self {
        Restart {
            policy: Policy::Never,
            max: 3,
            backoff_ms: 100,
            window_ms: 60_000,
        }
    }
}

impl Server {
    /// A server running `program`, granted nothing, at the default priority, never restarted.
    pub fn new(name: &str, program: &str) -> Server {
        Server {
            name: name.into(),
            program: program.into(),
            args: String::new(),
            priority: keel_abi::PRIORITY_DEFAULT,
            irqs: Vec::new(),
            io_ports: Vec::new(),
            log: false,
            pci: None,
            connects: Vec::new(),
            may_kill: false,
            may_run: false,
            may_poweroff: false,
            completes: false,
            restart: Restart::default(),
            frames: 0,
            processes: 0,
            threads: 0,
            cpus: Vec::new(),
        }
    }

    /// Its cores as the kernel takes them: bit `n` for core `n`, 0 for any.
    pub fn cpu_mask(&self) -> u32 {
        self.cpus.iter().fold(0, |mask, &core| mask | 1 << core)
    }
}

/// A line of a manifest that is not what the format allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "manifest line {}: {}", self.line, self.message)
    }
}

/// The manifest of `servers`, in the line format.
pub fn to_text(servers: &[Server]) -> String {
    let mut text = String::from(HEADER);
    text.push('\n');
    for server in servers {
        // Writing to a String cannot fail.
        let _ = write_server(&mut text, server);
    }
    text
}

fn write_server(out: &mut String, server: &Server) -> fmt::Result {
    writeln!(out, "server {}", server.name)?;
    writeln!(out, "program {}", server.program)?;
    if !server.args.is_empty() {
        writeln!(out, "args {}", server.args)?;
    }
    writeln!(out, "priority {}", server.priority)?;
    let limits = [
        ("frames", server.frames),
        ("processes", server.processes as usize),
        ("threads", server.threads as usize),
    ];
    for (key, value) in limits.iter().filter(|(_, value)| *value != 0) {
        writeln!(out, "{key} {value}")?;
    }
    if !server.cpus.is_empty() {
        write!(out, "cpus")?;
        for core in &server.cpus {
            write!(out, " {core}")?;
        }
        writeln!(out)?;
    }
    for ports in &server.io_ports {
        writeln!(out, "io_ports {:#x} {}", ports.base, ports.len)?;
    }
    for irq in &server.irqs {
        writeln!(out, "irq {irq}")?;
    }
    if let Some(pci) = &server.pci {
        writeln!(out, "pci {pci}")?;
    }
    for service in &server.connects {
        writeln!(out, "connect {service}")?;
    }
    let flags = [
        ("log", server.log),
        ("may_kill", server.may_kill),
        ("may_run", server.may_run),
        ("may_poweroff", server.may_poweroff),
        ("completes", server.completes),
    ];
    for (flag, _) in flags.iter().filter(|(_, set)| *set) {
        writeln!(out, "{flag}")?;
    }
    let Restart {
        policy,
        max,
        backoff_ms,
        window_ms,
    } = server.restart;
    writeln!(
        out,
        "restart {} {max} {backoff_ms} {window_ms}",
        policy.name()
    )
}

/// The servers a manifest describes, in order.
pub fn parse(text: &str) -> Result<Vec<Server>, Error> {
    let mut servers: Vec<Server> = Vec::new();
    let mut header_seen = false;
    for (index, line) in text.lines().enumerate() {
        let error = |message: String| Error {
            line: index + 1,
            message,
        };
        let line = line.trim_end();
        if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !header_seen {
            if line != HEADER {
                return Err(error(format!("expected `{HEADER}`, found `{line}`")));
            }
            header_seen = true;
            continue;
        }
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        if key == "server" {
            servers.push(Server::new(word(value).map_err(error)?, ""));
            continue;
        }
        let Some(server) = servers.last_mut() else {
            return Err(error(format!("`{key}` before the first `server` line")));
        };
        apply(server, key, value).map_err(error)?;
    }
    if !header_seen {
        return Err(Error {
            line: 1,
            message: format!("empty manifest: expected `{HEADER}`"),
        });
    }
    match servers.iter().find(|server| server.program.is_empty()) {
        Some(server) => Err(Error {
            line: 0,
            message: format!("server `{}` has no `program`", server.name),
        }),
        None => Ok(servers),
    }
}

/// Sets what one line says about `server`.
fn apply(server: &mut Server, key: &str, value: &str) -> Result<(), String> {
    match key {
        "program" => server.program = word(value)?.into(),
        "args" => server.args = value.into(),
        "priority" => server.priority = number(value)?,
        "frames" => server.frames = number(value)?,
        "processes" => server.processes = number(value)?,
        "threads" => server.threads = number(value)?,
        "irq" => server.irqs.push(number(value)?),
        "cpus" => server.cpus = cpus(value)?,
        "io_ports" => {
            let (base, len) = value
                .split_once(' ')
                .ok_or("`io_ports` wants a base and a length")?;
            server.io_ports.push(IoPorts {
                base: number(base)?,
                len: number(len)?,
            });
        }
        "connect" => server.connects.push(word(value)?.into()),
        "pci" => {
            let pci = PciMatch::parse(value);
            server.pci = Some(pci.ok_or(format!("`{value}` is not `VVVV:DDDD` or `class:CC:SS`"))?);
        }
        "log" | "may_kill" | "may_run" | "may_poweroff" | "completes" => {
            if !value.is_empty() {
                return Err(format!("`{key}` takes no value"));
            }
            *match key {
                "log" => &mut server.log,
                "may_kill" => &mut server.may_kill,
                "may_run" => &mut server.may_run,
                "may_poweroff" => &mut server.may_poweroff,
                _ => &mut server.completes,
            } = true;
        }
        "restart" => {
            let mut words = value.split(' ');
            let (Some(policy), Some(max), Some(backoff), Some(window), None) = (
                words.next(),
                words.next(),
                words.next(),
                words.next(),
                words.next(),
            ) else {
                return Err("`restart` wants a policy, a maximum, a backoff and a window".into());
            };
            server.restart = Restart {
                policy: Policy::parse(policy).ok_or(format!("no restart policy `{policy}`"))?,
                max: number(max)?,
                backoff_ms: number(backoff)?,
                window_ms: number(window)?,
            };
        }
        _ => return Err(format!("unknown key `{key}`")),
    }
    Ok(())
}

/// Core numbers: at least one, each below [`keel_abi::MAX_CORES`].
fn cpus(value: &str) -> Result<Vec<u8>, String> {
    if value.is_empty() {
        return Err("`cpus` wants at least one core".into());
    }
    let cores = value
        .split(' ')
        .map(number::<u8>)
        .collect::<Result<Vec<_>, _>>()?;
    match cores
        .iter()
        .find(|&&core| usize::from(core) >= keel_abi::MAX_CORES)
    {
        Some(core) => Err(format!("core {core} is not below {}", keel_abi::MAX_CORES)),
        None => Ok(cores),
    }
}

/// A name: one word, not empty.
fn word(value: &str) -> Result<&str, String> {
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(format!("expected one word, found `{value}`"));
    }
    Ok(value)
}

/// A decimal number, or a hexadecimal one with `0x`.
fn number<T: TryFrom<u64>>(value: &str) -> Result<T, String> {
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    parsed
        .ok()
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("`{value}` is not a number in range"))
}

impl fmt::Display for Server {
    /// The server as log messages name it: `name (program args)`, or just the name when
    /// it runs its namesake without arguments.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match (self.program == self.name, self.args.as_str()) {
            (true, "") => Ok(()),
            (_, "") => write!(f, " ({})", self.program),
            (_, args) => write!(f, " ({} {args})", self.program),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn console() -> Server {
        Server {
            priority: 10,
            frames: 1024,
            irqs: alloc::vec![4],
            io_ports: alloc::vec![IoPorts {
                base: 0x3f8,
                len: 8
            }],
            log: true,
            restart: Restart {
                policy: Policy::Always,
                max: 5,
                backoff_ms: 50,
                window_ms: 60_000,
            },
            ..Server::new("console", "console")
        }
    }

    fn shell() -> Server {
        Server {
            args: "tour  twice".into(),
            processes: 2,
            threads: 8,
            cpus: alloc::vec![1, 3],
            connects: alloc::vec!["console".into(), "kv".into()],
            may_kill: true,
            may_poweroff: true,
            completes: true,
            ..Server::new("shell", "shell")
        }
    }

    #[test]
    fn a_manifest_reads_back_as_written() {
        let servers = [console(), shell(), Server::new("kv", "kv")];
        assert_eq!(parse(&to_text(&servers)), Ok(servers.to_vec()));
    }

    #[test]
    fn the_text_is_one_key_per_line() {
        assert_eq!(
            to_text(&[console()]),
            "keel-manifest 1\nserver console\nprogram console\npriority 10\nframes 1024\n\
             io_ports 0x3f8 8\nirq 4\nlog\nrestart always 5 50 60000\n"
        );
    }

    #[test]
    fn a_pci_device_reads_back_by_id_or_class() {
        let by_id = Server {
            pci: Some(PciMatch::Id {
                vendor: 0x1af4,
                device: 0x1042,
            }),
            ..Server::new("virtio-blk", "virtio-blk")
        };
        let by_class = Server {
            pci: Some(PciMatch::Class {
                class: 1,
                subclass: 0,
            }),
            ..Server::new("disk", "virtio-blk")
        };
        let text = to_text(&[by_id.clone(), by_class.clone()]);
        assert!(text.contains("pci 1af4:1042\n") && text.contains("pci class:01:00\n"));
        assert_eq!(parse(&text), Ok(alloc::vec![by_id, by_class]));
    }

    #[test]
    fn a_pci_match_matches_its_function_only() {
        let id = PciMatch::parse("1af4:1042").unwrap();
        assert!(id.matches(0x1af4, 0x1042, (1, 0)));
        assert!(!id.matches(0x1af4, 0x1041, (1, 0)));
        let class = PciMatch::parse("class:01:00").unwrap();
        assert!(class.matches(0x8086, 0x2922, (1, 0)));
        assert!(!class.matches(0x1af4, 0x1042, (2, 0)));
        for bad in [
            "1af4",
            "1af4:10420",
            "x1f4:1042",
            "class:1:0",
            "class:01",
            "",
        ] {
            assert_eq!(PciMatch::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn cores_are_named_below_max_cores_and_given_as_a_mask() {
        assert!(to_text(&[shell()]).contains("\ncpus 1 3\n"));
        assert_eq!(shell().cpu_mask(), 0b1010);
        assert_eq!(Server::new("kv", "kv").cpu_mask(), 0, "no cores named: any");
        let error = |cpus: &str| {
            parse(&format!(
                "keel-manifest 1\nserver a\nprogram a\ncpus{cpus}\n"
            ))
            .unwrap_err()
            .message
        };
        assert_eq!(error(""), "`cpus` wants at least one core");
        assert_eq!(error(" 8"), "core 8 is not below 8");
        assert_eq!(error(" 0 x"), "`x` is not a number in range");
        let seven = parse("keel-manifest 1\nserver a\nprogram a\ncpus 7\n").unwrap();
        assert_eq!(seven[0].cpus, alloc::vec![7]);
    }

    #[test]
    fn comments_blank_lines_and_defaults_are_allowed() {
        let text = "# written by hand\nkeel-manifest 1\n\nserver hello\nprogram hello\n";
        assert_eq!(parse(text), Ok(alloc::vec![Server::new("hello", "hello")]));
    }

    #[test]
    fn errors_name_their_line() {
        let error = |text: &str| parse(text).unwrap_err();
        assert_eq!(error("keel-manifest 2\n").line, 1);
        assert_eq!(
            error("keel-manifest 1\nserver a\nprogram a\nirq 300\n"),
            Error {
                line: 4,
                message: "`300` is not a number in range".into()
            }
        );
        assert_eq!(error("keel-manifest 1\nprogram a\n").line, 2);
        assert_eq!(
            error("keel-manifest 1\nserver a\nprogram a\nlog yes\n").line,
            4
        );
        assert_eq!(
            error("keel-manifest 1\nserver a\nprogram a\nrestart sometimes 1 1 0\n").message,
            "no restart policy `sometimes`"
        );
        assert_eq!(
            error("keel-manifest 1\nserver a\nprogram a\npci virtio\n").message,
            "`virtio` is not `VVVV:DDDD` or `class:CC:SS`"
        );
        assert_eq!(
            error("keel-manifest 1\nserver a\nprogram a\ncolour blue\n").message,
            "unknown key `colour`"
        );
        assert_eq!(error("keel-manifest 1\nserver two words\n").line, 2);
        assert!(
            error("keel-manifest 1\nserver a\n")
                .message
                .contains("no `program`")
        );
        assert_eq!(error("").line, 1);
    }

    #[test]
    fn a_server_displays_as_name_and_command() {
        assert_eq!(shell().to_string(), "shell (shell tour  twice)");
        assert_eq!(console().to_string(), "console");
        assert_eq!(Server::new("kv-client", "kv").to_string(), "kv-client (kv)");
    }
}
