//! A QEMU run in the background, for tests that talk to the guest over the network while
//! it runs: its serial lines are collected, keys can be typed on its console, and it is
//! killed when dropped or when its time limit runs out, whichever comes first.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::Result;
use crate::error::Context;
use crate::qemu::{Accel, Boot, Console, Nic, PROGRAM, Qemu};
use crate::{image, manifest};

pub struct Background {
    child: Arc<Mutex<Child>>,
    keyboard: ChildStdin,
    lines: Arc<Mutex<Vec<String>>>,
    done: Arc<AtomicBool>,
}

impl Background {
    /// Start `qemu`, killed after `limit` at the latest. Its serial output is echoed with
    /// `echo`.
    pub fn start(qemu: &Qemu, limit: Duration, echo: bool) -> Result<Background> {
        let mut child = Command::new(PROGRAM)
            .args(qemu.args()?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context(format!("starting {PROGRAM}"))?;
        let keyboard = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        thread::spawn({
            let lines = lines.clone();
            move || {
                for line in BufReader::new(stdout).split(b'\n').map_while(|l| l.ok()) {
                    let text = String::from_utf8_lossy(&line)
                        .trim_end_matches('\r')
                        .to_owned();
                    if echo {
                        println!("{text}");
                    }
                    lines.lock().expect("no reader panics").push(text);
                }
            }
        });
        let child = Arc::new(Mutex::new(child));
        let done = Arc::new(AtomicBool::new(false));
        thread::spawn({
            let (child, done) = (child.clone(), done.clone());
            move || {
                let deadline = Instant::now() + limit;
                while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(100));
                }
                // Either way QEMU goes: killed when already gone fails harmlessly.
                let _ = child.lock().expect("no holder panics").kill();
            }
        });
        Ok(Background {
            child,
            keyboard,
            lines,
            done,
        })
    }

    /// The serial lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("no reader panics").clone()
    }

    /// Whether a line containing `needle` came within `patience`.
    pub fn wait_for_line(&self, needle: &str, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if self.lines().iter().any(|line| line.contains(needle)) {
                return true;
            }
            if !self.running() {
                return false;
            }
            thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Whether QEMU still runs.
    pub fn running(&self) -> bool {
        let mut child = self.child.lock().expect("no holder panics");
        matches!(child.try_wait(), Ok(None))
    }

    /// Type `text` on the guest's serial console, as a person would.
    pub fn type_text(&mut self, text: &str) -> Result<()> {
        self.keyboard
            .write_all(text.as_bytes())
            .and_then(|()| self.keyboard.flush())
            .context("typing into QEMU")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        let mut child = self.child.lock().expect("no holder panics");
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The demo without its tour (the shell waits at its prompt, so the system stays up),
/// built and started in the background with `nic`, on a new demo disk `target/DISK.img`
/// of its own (never the user's, which a `cargo boot` may hold); killed after `limit` at
/// the latest.
pub fn demo(
    accel: Accel,
    nic: Nic,
    icount: bool,
    limit: Duration,
    disk: &str,
) -> Result<Background> {
    let image = image::demo_image(&manifest::demo_path(), false)?;
    let console = Console::Scripted { timeout: limit };
    let disk = crate::workspace_root()
        .join("target")
        .join(format!("{disk}.img"));
    crate::disk::make_demo(&disk)?;
    let qemu = Qemu {
        nic: Some(nic),
        disk: Some(disk),
        icount,
        ..Qemu::new(Boot::Direct(image), accel, console)
    };
    Background::start(&qemu, limit, false)
}
