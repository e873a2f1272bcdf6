//! The shell, driven by a Console of ktest's own: ktest serves the Console interface on its
//! wake port, hands the shell a script of lines to read, keeps everything it writes, and
//! takes the kernel's process table at the moment `ps` output arrives, to compare.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::pin::pin;
use core::time::Duration;

use console::{Console, ReadError, serve_console};
use futures_util::future::select;
use keel_abi::cap::rights;
use keel_abi::{ProcessInfo, process_state};
use keel_rt::executor::{self, sleep, timeout, wake};
use keel_rt::process::{self, Exit, Spawn};

use super::names::names;
use crate::check::{Context, expect_eq};

/// How `ps` starts its output.
pub const PS_HEADER: &str = "  pid  name";
/// How long the shell may take over its script.
const SCRIPT_LIMIT: Duration = Duration::from_secs(20);

/// What the shell printed, and the kernel's process table when its `ps` output came.
#[derive(Default)]
pub struct Transcript {
    pub output: String,
    pub kernel_ps: Vec<ProcessInfo>,
}

#[derive(Default)]
struct Script {
    lines: RefCell<VecDeque<String>>,
    transcript: RefCell<Transcript>,
}

struct ScriptedConsole(Rc<Script>);

impl Console for ScriptedConsole {
    async fn write(&self, text: &str) {
        let mut transcript = self.0.transcript.borrow_mut();
        if text.starts_with(PS_HEADER) {
            // The shell waits for this call's answer: nothing it shows can change now.
            let pids = process::list().unwrap_or_default();
            transcript.kernel_ps = pids
                .into_iter()
                .filter_map(|pid| process::info(pid).ok())
                .collect();
        }
        transcript.output.push_str(text);
    }

    async fn read_line(&self) -> Result<String, ReadError> {
        // Past the script, the shell is told to leave.
        let line = self.0.lines.borrow_mut().pop_front();
        let line = line.unwrap_or_else(|| "exit".into());
        // Echoed, as a terminal would: the transcript reads like a session.
        let mut transcript = self.0.transcript.borrow_mut();
        transcript.output.push_str(&line);
        transcript.output.push('\n');
        Ok(line)
    }
}

/// Start the shell on a console serving `lines`, and return what it printed once it has
/// exited (with code 0, or the test fails). `listing` is what `services` will show.
pub fn run_shell(lines: &[&str], listing: String) -> Result<Transcript, String> {
    let names = names()?;
    let own_port = wake::port()
        .derive(rights::SEND | rights::GRANT, 0)
        .context("deriving a capability to ktest's port")?;
    names.provide(console::NAME, own_port);
    names.set_listing(listing);
    let script = Rc::new(Script {
        lines: RefCell::new(lines.iter().map(|&line| line.into()).collect()),
        transcript: RefCell::default(),
    });
    let shell = keel_rt::boot_module("shell").context("the `shell` boot module")?;
    let for_shell = names.for_child()?;
    let pid = Spawn::new("shell", shell)
        .caps(&[for_shell.handle()])
        .spawn();
    let _ = for_shell.delete();
    let pid = pid.context("starting the shell")?;
    // The shell's end is the end: the served console never returns.
    let finished = executor::block_on(async {
        let serving = pin!(serve_console(ScriptedConsole(script.clone())));
        let shell_ended = pin!(ended(pid));
        timeout(SCRIPT_LIMIT, select(serving, shell_ended))
            .await
            .is_ok()
    });
    names.forget(console::NAME);
    if !finished {
        let _ = process::kill(pid);
        let _ = process::wait(pid);
        return Err(format!(
            "the shell did not finish its script within {SCRIPT_LIMIT:?}"
        ));
    }
    expect_eq(
        "how the shell ended",
        process::wait(pid),
        Ok(Exit::Exited(0)),
    )?;
    Ok(script.transcript.take())
}

/// Completes when process `pid` has ended (and waits to be reaped).
async fn ended(pid: process::Pid) {
    while process::info(pid).is_ok_and(|info| info.state != process_state::ZOMBIE) {
        sleep(Duration::from_millis(5)).await;
    }
}
