//! Running QEMU: the machine we emulate, which accelerator, and one supervised run that
//! captures the serial log line by line.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use crate::Result;
use crate::error::Context;
use crate::image::{Image, utf8};
use crate::status::Exit;

/// How QEMU executes guest code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// QEMU's own binary translator: works everywhere.
    Tcg,
    /// Hardware virtualization through /dev/kvm.
    Kvm,
}

/// The machine QEMU emulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// PCI Express with ECAM (its ACPI MCFG) and an I/O APIC taking PCI INTx on 16..24.
    Q35,
    /// i440fx: no MCFG, so configuration space only through ports 0xcf8/0xcfc, and PCI INTx
    /// on ISA lines the firmware picks.
    Pc,
}

impl Machine {
    fn name(self) -> &'static str {
        match self {
            Machine::Q35 => "q35",
            Machine::Pc => "pc",
        }
    }
}

/// The accelerator picked for this machine, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: &'static str,
}

impl fmt::Display for AccelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.accel {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        };
        write!(f, "qemu {name} ({})", self.reason)
    }
}

/// Pick the accelerator for this machine: KVM only with real VT-x/SVM *and* a usable
/// /dev/kvm. Some hosts expose a paravirtual /dev/kvm without either, under which our kernel
/// cannot run (see docs/qemu-and-boot-facts.md), so /dev/kvm alone is not enough.
pub fn detect_accel() -> AccelChoice {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    choose_accel(&cpuinfo, || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok()
    })
}

/// [`detect_accel`] with its inputs passed in.
pub fn choose_accel(cpuinfo: &str, kvm_opens: impl FnOnce() -> bool) -> AccelChoice {
    let (accel, reason) = if !has_hardware_virtualization(cpuinfo) {
        (Accel::Tcg, "no hardware virtualization here")
    } else if !kvm_opens() {
        (
            Accel::Tcg,
            "the CPU has vmx/svm but /dev/kvm does not open read-write",
        )
    } else {
        (Accel::Kvm, "vmx/svm and /dev/kvm")
    };
    AccelChoice { accel, reason }
}

/// Whether any `flags` line of /proc/cpuinfo lists `vmx` (Intel) or `svm` (AMD).
pub fn has_hardware_virtualization(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| key.trim() == "flags")
        .any(|(_, flags)| flags.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// What the machine boots from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    /// QEMU loads the kernel and modules itself (Multiboot).
    Direct(Image),
    /// The firmware boots a GRUB ISO.
    Cdrom(PathBuf),
}

/// Who is on the other end of the serial port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// A person at a terminal: serial and QEMU monitor share stdio (Ctrl-A X quits), no timeout.
    Interactive,
    /// Nobody: no input, and QEMU is killed after `timeout`.
    Scripted { timeout: Duration },
}

/// One QEMU invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qemu {
    pub boot: Boot,
    pub accel: Accel,
    pub console: Console,
    pub machine: Machine,
    /// `-icount shift=0`: the guest's TSC counts instructions, so figures repeat exactly.
    /// Implies TCG, since QEMU refuses icount with KVM.
    pub icount: bool,
    /// Copy the serial output to our stdout (and QEMU's stderr to ours) as it arrives.
    pub echo: bool,
    /// Scripted runs only: answer each serial line carrying [`TYPE_REQUEST`] by typing
    /// the bytes it names into the serial line, as a person at the keyboard would.
    pub typist: bool,
    /// Listen for gdb on this loopback port and wait for it before the first instruction.
    pub gdb: Option<u16>,
    /// A raw disk image attached as a virtio-blk PCI device; made blank ([`DISK_LEN`]) if
    /// it does not exist yet.
    pub disk: Option<PathBuf>,
    /// A virtio-net PCI device on QEMU's user network.
    pub nic: Option<Nic>,
    /// Cores (`-smp`). Under TCG with more than one and no icount, QEMU runs one host
    /// thread per core (`thread=multi`) unless [`one_thread`](Self::one_thread).
    pub cores: u32,
    /// TCG runs every core on one host thread, in turn (`thread=single`): no guest core
    /// can be stalled by the host while another runs, whatever the host's own load.
    pub one_thread: bool,
}

/// A virtio-net device (modern only: PCI id 1af4:1041) on QEMU's user network, where the
/// guest is 10.0.2.15 and reaches the host's loopback through nothing but `forwards`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nic {
    pub forwards: Vec<Forward>,
}

/// A port on the host's loopback forwarded to one of the guest's: TCP, or UDP if `udp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub host: u16,
    pub guest: u16,
    pub udp: bool,
}

impl Nic {
    /// The demo's: the host's `http_port` to the web server's port 80.
    pub fn http(http_port: u16) -> Nic {
        Nic {
            forwards: vec![Forward {
                host: http_port,
                guest: 80,
                udp: false,
            }],
        }
    }

    fn args(&self) -> Vec<String> {
        let mut netdev = "user,id=net0".to_owned();
        for forward in &self.forwards {
            let protocol = if forward.udp { "udp" } else { "tcp" };
            netdev += &format!(
                ",hostfwd={protocol}:127.0.0.1:{}-:{}",
                forward.host, forward.guest
            );
        }
        vec![
            "-netdev".into(),
            netdev,
            "-device".into(),
            "virtio-net-pci,disable-legacy=on,netdev=net0".into(),
        ]
    }
}

/// How the guest asks the host to type: this, then the bytes in hex (`KEEL TYPE 6c730d`
/// types `ls` and Enter). Tests of the console use it for input.
pub const TYPE_REQUEST: &str = "KEEL TYPE ";

/// The bytes a serial line asks to have typed, if it carries a [`TYPE_REQUEST`].
pub fn typing_request(text: &str) -> Option<Vec<u8>> {
    let (_, hex) = text.split_once(TYPE_REQUEST)?;
    let hex = hex.trim().as_bytes();
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    hex.chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// One line the guest wrote to the serial port, and when it completed (from QEMU's spawn).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialLine {
    pub at: Duration,
    pub text: String,
}

/// The record of a finished run.
#[derive(Clone, Debug)]
pub struct Run {
    pub lines: Vec<SerialLine>,
    /// QEMU's own messages (errors about its arguments, for instance).
    pub stderr: String,
    pub exit: Exit,
    pub elapsed: Duration,
}

impl Run {
    /// The first serial line containing `needle`.
    pub fn first_line(&self, needle: &str) -> Option<&SerialLine> {
        self.lines.iter().find(|line| line.text.contains(needle))
    }
}

impl Qemu {
    pub fn new(boot: Boot, accel: Accel, console: Console) -> Self {
        Qemu {
            boot,
            accel,
            console,
            machine: Machine::Q35,
            icount: false,
            echo: false,
            typist: false,
            gdb: None,
            disk: None,
            nic: None,
            cores: 1,
            one_thread: false,
        }
    }

    /// The host threads that run guest cores: one per core, but one for all under TCG with
    /// icount or [`one_thread`](Self::one_thread).
    pub fn host_threads(&self) -> usize {
        let shared = self.icount || (self.one_thread && self.accel == Accel::Tcg);
        if shared {
            1
        } else {
            self.cores.max(1) as usize
        }
    }

    /// QEMU's arguments, program name excluded.
    pub fn args(&self) -> Result<Vec<String>> {
        let accel = if self.icount { Accel::Tcg } else { self.accel };
        let mut args = Vec::new();
        let multi_threaded = self.cores > 1 && !self.icount && !self.one_thread;
        let single_threaded = self.cores > 1 && !self.icount && self.one_thread;
        args.extend(words(match accel {
            Accel::Tcg if multi_threaded => &["-accel", "tcg,thread=multi", "-cpu", "max"],
            Accel::Tcg if single_threaded => &["-accel", "tcg,thread=single", "-cpu", "max"],
            Accel::Tcg => &["-accel", "tcg", "-cpu", "max"],
            Accel::Kvm => &["-accel", "kvm", "-cpu", "host"],
        }));
        if self.icount {
            args.extend(words(&["-icount", "shift=0"]));
        }
        args.extend(words(&["-machine", self.machine.name()]));
        args.extend(words(&["-m", "512M", "-smp"]));
        args.push(self.cores.to_string());
        args.extend(words(&["-display", "none", "-nodefaults"]));
        let serial = match self.console {
            Console::Interactive => "mon:stdio",
            Console::Scripted { .. } => "stdio",
        };
        args.extend(words(&["-serial", serial, "-no-reboot"]));
        args.extend(words(&["-device", DEBUG_EXIT]));
        match &self.boot {
            Boot::Direct(image) => args.extend(image.qemu_args()?),
            Boot::Cdrom(iso) => args.extend(["-cdrom".to_owned(), utf8(iso)?.to_owned()]),
        }
        if let Some(disk) = &self.disk {
            let file = format!("file={},if=none,id=disk0,format=raw", utf8(disk)?);
            args.extend(["-drive".to_owned(), file]);
            // Modern only (device 1af4:1042): the driver speaks virtio 1.x.
            args.extend(words(&[
                "-device",
                "virtio-blk-pci,drive=disk0,disable-legacy=on",
            ]));
        }
        if let Some(nic) = &self.nic {
            args.extend(nic.args());
        }
        if let Some(port) = self.gdb {
            args.extend([
                "-gdb".to_owned(),
                format!("tcp:127.0.0.1:{port}"),
                "-S".to_owned(),
            ]);
        }
        Ok(args)
    }

    /// The command as a person would type it into a shell.
    pub fn command_line(&self) -> Result<String> {
        let words = std::iter::once(PROGRAM.to_owned()).chain(self.args()?);
        Ok(words
            .map(|word| shell_quote(&word))
            .collect::<Vec<_>>()
            .join(" "))
    }

    /// Boot, calling `on_line` for each complete serial line as it arrives, until QEMU exits
    /// or (when scripted) the timeout kills it. Errs only if QEMU cannot be started.
    pub fn run(&self, on_line: &mut dyn FnMut(&SerialLine)) -> Result<Run> {
        let (stdin, timeout) = match self.console {
            Console::Interactive => (Stdio::inherit(), None),
            Console::Scripted { timeout } if self.typist => (Stdio::piped(), Some(timeout)),
            Console::Scripted { timeout } => (Stdio::null(), Some(timeout)),
        };
        if let Boot::Direct(image) = &self.boot {
            image.check_files()?;
        }
        if let Some(disk) = self.disk.as_deref().filter(|disk| !disk.exists()) {
            blank_disk(disk)?;
        }
        let echo = self.echo || self.console == Console::Interactive;
        let mut child = Command::new(PROGRAM)
            .args(self.args()?)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context(format!("starting {PROGRAM}"))?;
        let start = Instant::now();
        let limit = timeout.map(|timeout| (start + timeout, timeout));

        // Held until QEMU is gone: an early EOF on the serial input is nothing a guest expects.
        let mut keyboard = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, receiver) = mpsc::channel();
        let serial = thread::spawn(move || read_serial(stdout, start, echo, sender));
        let messages = thread::spawn(move || read_all(stderr, echo));

        let mut lines = Vec::new();
        loop {
            let next = match limit {
                Some((deadline, _)) => {
                    receiver.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                }
                None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match next {
                Ok(line) => {
                    if let (Some(keys), Some(bytes)) =
                        (keyboard.as_mut(), typing_request(&line.text))
                    {
                        // A QEMU that stopped reading fails the run by its own symptoms.
                        let _ = keys.write_all(&bytes).and_then(|()| keys.flush());
                    }
                    on_line(&line);
                    lines.push(line);
                }
                // Serial closed (QEMU is exiting) or time is up: either way, now reap QEMU.
                Err(_) => break,
            }
        }
        let exit = wait_until(&mut child, limit)?;
        drop(keyboard);
        let elapsed = start.elapsed();
        // QEMU is gone, so both pipes hit EOF and the readers finish.
        serial.join().expect("serial reader does not panic");
        for line in receiver.try_iter() {
            on_line(&line);
            lines.push(line);
        }
        let stderr = messages.join().expect("stderr reader does not panic");
        Ok(Run {
            lines,
            stderr,
            exit,
            elapsed,
        })
    }
}

pub(crate) const PROGRAM: &str = "qemu-system-x86_64";
/// The size of a disk image made blank: 64 MiB.
pub const DISK_LEN: u64 = 64 << 20;

/// Make `path` a blank (all zeros, sparse) disk image of [`DISK_LEN`] bytes.
pub fn blank_disk(path: &std::path::Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).context(format!("creating {}", dir.display()))?;
    }
    let file = fs::File::create(path).context(format!("creating {}", path.display()))?;
    file.set_len(DISK_LEN)
        .context(format!("sizing {}", path.display()))
}
/// The device through which the guest powers off and reports success (see `keel_abi::poweroff`).
const DEBUG_EXIT: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

fn words<'a>(list: &'a [&str]) -> impl Iterator<Item = String> + 'a {
    list.iter().map(|word| word.to_string())
}

/// Wait for QEMU, killing it if it still runs at the deadline of `limit` (deadline, timeout).
fn wait_until(child: &mut Child, limit: Option<(Instant, Duration)>) -> Result<Exit> {
    let Some((deadline, timeout)) = limit else {
        return Ok(Exit::from_status(child.wait().context("waiting for QEMU")?));
    };
    loop {
        if let Some(status) = child.try_wait().context("waiting for QEMU")? {
            return Ok(Exit::from_status(status));
        }
        if Instant::now() >= deadline {
            // If QEMU exited just now, kill fails harmlessly; the wait reaps it either way.
            let _ = child.kill();
            child.wait().context("waiting for QEMU")?;
            return Ok(Exit::TimedOut(timeout));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Pump QEMU's stdout: echo raw chunks at once (an interactive prompt has no newline yet) and
/// send each complete line, stamped with when its newline arrived.
fn read_serial(mut from: impl Read, start: Instant, echo: bool, lines: Sender<SerialLine>) {
    let mut buffer = [0; 4096];
    let mut pending = Vec::new();
    let line = |bytes: &[u8]| SerialLine {
        at: start.elapsed(),
        text: String::from_utf8_lossy(bytes)
            .trim_end_matches('\r')
            .to_owned(),
    };
    while let Some(chunk) = read_chunk(&mut from, &mut buffer) {
        if echo {
            let mut stdout = io::stdout().lock();
            // A closed stdout must not stop the capture, so write errors are ignored.
            let _ = stdout.write_all(chunk).and_then(|()| stdout.flush());
        }
        for &byte in chunk {
            if byte == b'\n' {
                let complete = line(&pending);
                if echo && let Some(named) = crate::symbols::annotate(&complete.text) {
                    println!("{}", named.join("\n"));
                }
                let _ = lines.send(complete);
                pending.clear();
            } else {
                pending.push(byte);
            }
        }
    }
    if !pending.is_empty() {
        let _ = lines.send(line(&pending));
    }
}

/// Collect QEMU's stderr, echoing it if asked.
fn read_all(mut from: impl Read, echo: bool) -> String {
    let mut buffer = [0; 4096];
    let mut all = Vec::new();
    while let Some(chunk) = read_chunk(&mut from, &mut buffer) {
        if echo {
            let _ = io::stderr().write_all(chunk);
        }
        all.extend_from_slice(chunk);
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// The next chunk from a pipe, or None at EOF (or on an error, which ends a pipe just the same).
fn read_chunk<'a>(from: &mut impl Read, buffer: &'a mut [u8]) -> Option<&'a [u8]> {
    loop {
        match from.read(buffer) {
            Ok(0) => return None,
            Ok(n) => return Some(&buffer[..n]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./=:,@%+".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Module;

    const INTEL: &str = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae vmx smx est\n";
    const AMD: &str = "processor\t: 0\nflags\t\t: fpu svm lahf_lm\n";
    const NEITHER: &str = "processor\t: 0\nflags\t\t: fpu vme vmxx svmx hypervisor\n\
                           vmx flags\t: vnmi preemption_timer\n";

    #[test]
    fn cpuinfo_flags_are_matched_as_whole_words() {
        assert!(has_hardware_virtualization(INTEL));
        assert!(has_hardware_virtualization(AMD));
        // "vmx flags" is a separate line, not a flag, and "vmxx" is not "vmx".
        assert!(!has_hardware_virtualization(NEITHER));
        assert!(!has_hardware_virtualization(""));
    }

    #[test]
    fn kvm_needs_both_the_cpu_flag_and_dev_kvm() {
        assert_eq!(choose_accel(INTEL, || true).accel, Accel::Kvm);
        assert_eq!(choose_accel(INTEL, || false).accel, Accel::Tcg);
        let choice = choose_accel(NEITHER, || panic!("/dev/kvm is not even tried"));
        assert_eq!(
            choice.to_string(),
            "qemu tcg (no hardware virtualization here)"
        );
    }

    fn suite_qemu() -> Qemu {
        let image = Image {
            kernel: "/g/kernel".into(),
            modules: vec![
                Module::new("/g/ktest", "memory"),
                Module::new("/g/kchild", ""),
            ],
            cmdline: String::new(),
        };
        let console = Console::Scripted {
            timeout: Duration::from_secs(90),
        };
        Qemu::new(Boot::Direct(image), Accel::Tcg, console)
    }

    #[test]
    fn scripted_direct_boot_arguments() {
        assert_eq!(
            suite_qemu().args().unwrap().join(" "),
            "-accel tcg -cpu max -machine q35 -m 512M -smp 1 -display none -nodefaults -serial stdio \
             -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -kernel /g/kernel -initrd /g/ktest memory,/g/kchild"
        );
    }

    #[test]
    fn interactive_kvm_cdrom_arguments() {
        let qemu = Qemu::new(
            Boot::Cdrom("/t/keel.iso".into()),
            Accel::Kvm,
            Console::Interactive,
        );
        let args = qemu.args().unwrap().join(" ");
        assert!(
            args.starts_with("-accel kvm -cpu host -machine q35 -m 512M"),
            "{args}"
        );
        assert!(args.contains("-serial mon:stdio"), "{args}");
        assert!(args.ends_with("-cdrom /t/keel.iso"), "{args}");
    }

    #[test]
    fn a_disk_is_a_virtio_blk_pci_device() {
        let mut qemu = suite_qemu();
        qemu.disk = Some("/t/disk.img".into());
        let args = qemu.args().unwrap().join(" ");
        assert!(
            args.contains(
                "-drive file=/t/disk.img,if=none,id=disk0,format=raw \
                 -device virtio-blk-pci,drive=disk0,disable-legacy=on"
            ),
            "{args}"
        );
    }

    #[test]
    fn a_nic_is_modern_virtio_net_on_the_user_network_with_its_forwards() {
        let mut qemu = suite_qemu();
        qemu.nic = Some(Nic::http(8080));
        let args = qemu.args().unwrap().join(" ");
        assert!(
            args.contains(
                "-netdev user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80 \
                 -device virtio-net-pci,disable-legacy=on,netdev=net0"
            ),
            "{args}"
        );
    }

    #[test]
    fn several_cores_run_multi_threaded_but_not_under_icount() {
        let mut qemu = suite_qemu();
        qemu.cores = 4;
        let args = qemu.args().unwrap().join(" ");
        assert!(
            args.starts_with("-accel tcg,thread=multi -cpu max -machine q35 -m 512M -smp 4"),
            "{args}"
        );
        qemu.icount = true;
        let args = qemu.args().unwrap().join(" ");
        assert!(
            args.starts_with("-accel tcg -cpu max -icount shift=0 -machine q35 -m 512M -smp 4"),
            "{args}"
        );
        assert_eq!(qemu.host_threads(), 1);
        qemu.icount = false;
        assert_eq!(qemu.host_threads(), 4);
        qemu.one_thread = true;
        let args = qemu.args().unwrap().join(" ");
        assert!(
            args.starts_with("-accel tcg,thread=single -cpu max -machine q35 -m 512M -smp 4"),
            "{args}"
        );
        assert_eq!(qemu.host_threads(), 1);
        qemu.accel = Accel::Kvm;
        assert_eq!(
            qemu.host_threads(),
            4,
            "KVM runs a thread per core whatever we ask"
        );
    }

    #[test]
    fn icount_forces_tcg() {
        let mut qemu = suite_qemu();
        qemu.accel = Accel::Kvm;
        qemu.icount = true;
        let args = qemu.args().unwrap().join(" ");
        assert!(
            args.starts_with("-accel tcg -cpu max -icount shift=0 -machine q35 -m 512M"),
            "{args}"
        );
    }

    #[test]
    fn command_line_quotes_words_with_spaces() {
        let line = suite_qemu().command_line().unwrap();
        assert!(line.starts_with("qemu-system-x86_64 -accel tcg"), "{line}");
        assert!(
            line.ends_with("-initrd '/g/ktest memory,/g/kchild'"),
            "{line}"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn typing_requests_are_hex_after_the_marker_anywhere_in_a_line() {
        assert_eq!(typing_request("KEEL TYPE 6c730d"), Some(b"ls\r".to_vec()));
        // A console may redraw its prompt line around it.
        assert_eq!(typing_request("\r\x1b[KKEEL TYPE 03 "), Some(vec![0x03]));
        assert_eq!(typing_request("KEEL TYPE 6c7"), None);
        assert_eq!(typing_request("KEEL TYPE zz"), None);
        assert_eq!(typing_request("KEEL TYPE "), None);
        assert_eq!(typing_request("test a ... ok"), None);
    }

    #[test]
    fn serial_lines_are_split_stamped_and_stripped_of_cr() {
        let (sender, receiver) = mpsc::channel();
        read_serial(&b"one\r\ntwo\nthree"[..], Instant::now(), false, sender);
        let texts: Vec<_> = receiver.iter().map(|line| line.text).collect();
        assert_eq!(texts, ["one", "two", "three"]);
    }
}
