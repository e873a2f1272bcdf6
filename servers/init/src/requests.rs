//! The name service and supervisor protocol (docs/SYSTEM.md): who is asking (from the badge
//! on init's port), whether the manifest lets them, and the answer.
//!
//! Every answer carries 0 or an error code in word 0. A lookup whose service is not
//! registered yet, and a poweroff, keep their reply for later; everything else is answered
//! at once. A refusal is logged with the reason, so that a manifest that forgot a grant is
//! easy to spot.

use alloc::string::String;

use keel_abi::Error;
use keel_abi::cap::{Handle, kind, rights};
use keel_abi::ipc::MAX_PAYLOAD;
use keel_manifest::Server;
use keel_rt::ipc::{Message, Port, Received, Reply};
use keel_rt::names::{self, Listed};
use keel_rt::{cap, println, process, sys, time};

use crate::badge::Badge;
use crate::system::{LOOKUP_WAIT, Lookup, Poweroff, Service, State, Table};

/// Most programs started with `RUN` alive at once.
const MAX_RUNS: usize = 16;
/// Frames init keeps for itself whatever it runs: 4 MiB for its heap and threads.
const INIT_RESERVE_FRAMES: usize = 1024;

/// Sends `result`: word 0 is 0 for success, else the error's code.
pub fn answer(reply: Reply, result: Result<Message, Error>) {
    let message = match result {
        Ok(mut message) => {
            message.words[0] = 0;
            message
        }
        Err(error) => Message::new(0, [error as u64, 0, 0, 0]),
    };
    // A caller that stopped waiting is no concern of init's.
    let _ = reply.send(&message);
}

/// The answer to a lookup: a copy of the service's capability.
pub fn port_message(port: Port) -> Message {
    Message::default().with_caps(&[port.handle()])
}

fn drop_caps(caps: &[Handle]) {
    for &handle in caps {
        let _ = cap::delete(handle);
    }
}

impl Table {
    /// One message that came to init's port.
    pub fn request(&mut self, received: Received) {
        let Received::Message {
            badge,
            message,
            reply,
            ..
        } = received
        else {
            return;
        };
        let caller = Badge::decode(badge).and_then(|badge| Some((badge, self.caller(badge)?)));
        let (Some(reply), Some((badge, slot))) = (reply, caller) else {
            // Not a call, or from no current child (one that has died since, say): nothing
            // of the protocol, and no capability it carried is kept.
            drop_caps(&message.caps);
            return;
        };
        if badge.fault {
            drop_caps(&message.caps);
            return self.fault(slot, reply);
        }
        // Only a registration carries a capability init keeps.
        if message.label != names::REGISTER {
            drop_caps(&message.caps);
        }
        let text = String::from_utf8_lossy(&message.payload).into_owned();
        match message.label {
            names::LOOKUP => return self.lookup(slot, &text, reply),
            names::POWEROFF => return self.poweroff(slot, message.words[0], reply),
            _ => {}
        }
        let result = match message.label {
            names::REGISTER => self.register(slot, &text, &message.caps),
            names::LIST => Ok(self.list()),
            names::KILL => self.kill(slot, &text),
            names::RUN => self.run(slot, &text),
            names::CAPS => self.caps(slot, message.words[1]),
            names::PROCESSES => self.processes(slot),
            _ => Err(Error::InvalidArgument),
        };
        answer(reply, result);
    }

    /// The caller's name, for the log.
    fn name(&self, slot: usize) -> &str {
        &self.child(slot).server.name
    }

    /// A refusal, logged.
    fn refuse(&self, slot: usize, what: &str, why: &str) -> Error {
        println!("init: refused {}'s {what}: {why}", self.name(slot));
        Error::PermissionDenied
    }

    /// The kernel reports a fault of `slot`: init ends it. The watcher then reaps it with
    /// the same facts (vector, rip, address), which go in the log and decide the restart.
    fn fault(&mut self, slot: usize, reply: Reply) {
        self.child_mut(slot).faults += 1;
        let _ = reply.send(&Message::end_faulted());
    }

    fn register(&mut self, slot: usize, name: &str, caps: &[Handle]) -> Result<Message, Error> {
        let result = self.check_registration(slot, name, caps);
        drop_caps(caps);
        let port = result?;
        if let Some(old) = self.services.insert(name.into(), Service { port, slot }) {
            let _ = old.port.delete();
        }
        let pid = self.child(slot).pid.unwrap_or(0);
        println!("init: {name} (pid {pid}) registered its service");
        self.answer_lookups(name, Ok(port));
        Ok(Message::default())
    }

    /// init's own SEND+GRANT copy of the port a registration carries, if it may register.
    fn check_registration(&self, slot: usize, name: &str, caps: &[Handle]) -> Result<Port, Error> {
        let child = self.child(slot);
        if child.run_by.is_some() || child.server.name != name {
            let what = alloc::format!("registration of `{name}`");
            return Err(self.refuse(slot, &what, "a manifest server registers its own name only"));
        }
        let &[handle] = caps else {
            return Err(Error::InvalidArgument);
        };
        let info = cap::info(handle)?;
        let needed = rights::SEND | rights::GRANT;
        if info.kind != kind::PORT || info.rights & needed != needed {
            return Err(Error::InvalidArgument);
        }
        // What clients get is at most SEND+GRANT, whatever the server sent.
        Port::from_handle(handle).derive(needed, 0)
    }

    fn lookup(&mut self, slot: usize, name: &str, reply: Reply) {
        if !self.child(slot).server.connects.iter().any(|c| c == name) {
            let what = alloc::format!("lookup of `{name}`");
            let refusal = self.refuse(slot, &what, "not among its connects");
            return answer(reply, Err(refusal));
        }
        if let Some(service) = self.services.get(name) {
            return answer(reply, Ok(port_message(service.port)));
        }
        // Its server is starting or restarting: the answer waits for the registration.
        let coming = self.children().any(|child| {
            child.run_by.is_none() && child.server.name == name && !child.state.is_final()
        });
        if !coming {
            return answer(reply, Err(Error::NotFound));
        }
        self.lookups.push(Lookup {
            name: name.into(),
            reply,
            deadline: time::ticks() + time::ticks_in(LOOKUP_WAIT),
        });
    }

    /// One `name pid state restarts` line per child, as many as fit.
    fn list(&self) -> Message {
        let mut text = String::new();
        for child in self.children() {
            let line = Listed {
                name: child.server.name.clone(),
                pid: child.pid.unwrap_or(0),
                state: child.state.name().into(),
                restarts: child.restarts,
            };
            let line = alloc::format!("{line}\n");
            if text.len() + line.len() > MAX_PAYLOAD {
                break;
            }
            text.push_str(&line);
        }
        Message::default().with_payload(text.as_bytes())
    }

    fn kill(&mut self, slot: usize, name: &str) -> Result<Message, Error> {
        if !self.child(slot).server.may_kill {
            let what = alloc::format!("kill of `{name}`");
            return Err(self.refuse(slot, &what, "it may not kill"));
        }
        let target = self.find(name).ok_or(Error::NotFound)?;
        let pid = self.child(target).pid.ok_or(Error::NotFound)?;
        process::kill(pid)?;
        let by = String::from(self.name(slot));
        println!("init: {by} killed {name} (pid {pid})");
        self.child_mut(target).killed_by = Some(by);
        Ok(Message::default())
    }

    /// What process `pid` holds, for a supervisor's eyes (`may_kill`).
    fn caps(&self, slot: usize, pid: u64) -> Result<Message, Error> {
        if !self.child(slot).server.may_kill {
            return Err(self.refuse(
                slot,
                "capability listing",
                "it may not kill, so it may not look",
            ));
        }
        let pid = u32::try_from(pid).map_err(|_| Error::NotFound)?;
        let size = core::mem::size_of::<keel_rt::abi::cap::CapEntry>();
        let mut entries = alloc::vec![keel_rt::abi::cap::CapEntry::default(); MAX_PAYLOAD / size];
        let count = keel_rt::sys::ipc::cap_list(pid, &mut entries)?.min(entries.len());
        Ok(names::caps_answer(&entries[..count]))
    }

    /// Every live process, for a supervisor's eyes (`may_kill`): init has the system's view,
    /// which the kernel gives no one else.
    fn processes(&self, slot: usize) -> Result<Message, Error> {
        if !self.child(slot).server.may_kill {
            return Err(self.refuse(
                slot,
                "process listing",
                "it may not kill, so it may not look",
            ));
        }
        names::processes_answer()
    }

    /// Starts `command` with the caller's connects and nothing else.
    fn run(&mut self, slot: usize, command: &str) -> Result<Message, Error> {
        let caller = self.child(slot);
        if !caller.server.may_run {
            let what = alloc::format!("run of `{command}`");
            return Err(self.refuse(slot, &what, "it may not run programs"));
        }
        let (program, args) = command
            .trim()
            .split_once(' ')
            .unwrap_or((command.trim(), ""));
        if program.is_empty() {
            return Err(Error::InvalidArgument);
        }
        if self
            .children()
            .filter(|child| child.run_by.is_some())
            .count()
            >= MAX_RUNS
        {
            return Err(Error::QuotaExceeded);
        }
        self.check_room_to_run()?;
        let server = Server {
            args: args.into(),
            priority: caller.server.priority,
            connects: caller.server.connects.clone(),
            ..Server::new(program, program)
        };
        let by = String::from(self.name(slot));
        let new = self.add(server, by)?;
        let pid = self.start(new).map_err(|failed| failed.error)?;
        Ok(Message::new(0, [0, pid.into(), 0, 0]))
    }

    /// A program started with `RUN` takes the kernel's default quota from init's: only if
    /// init keeps its own reserve and the quota of every server waiting to restart.
    fn check_room_to_run(&self) -> Result<(), Error> {
        let quota = |server: &Server| match server.frames {
            0 => keel_abi::DEFAULT_CHILD_FRAMES,
            frames => frames,
        };
        let restarting: usize = self
            .children()
            .filter(|child| matches!(child.state, State::Restarting { .. }))
            .map(|child| quota(&child.server))
            .sum();
        let held = sys::ipc::resources()?;
        let left = held.frames_limit.saturating_sub(held.frames_used) as usize;
        if left < keel_abi::DEFAULT_CHILD_FRAMES + INIT_RESERVE_FRAMES + restarting {
            return Err(Error::QuotaExceeded);
        }
        Ok(())
    }

    fn poweroff(&mut self, slot: usize, verdict: u64, reply: Reply) {
        if !self.child(slot).server.may_poweroff {
            let refusal = self.refuse(slot, "poweroff", "it may not power off");
            return answer(reply, Err(refusal));
        }
        self.poweroff = Some(Poweroff {
            success: verdict == 0,
            by: self.name(slot).into(),
            _held: reply,
        });
    }
}
