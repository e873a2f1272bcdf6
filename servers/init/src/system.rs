//! The supervisor's table (the children, the services they registered, the lookups waiting
//! for one) and the one loop that drives it: requests from children, exits from the
//! watcher threads, and timers (restarts after their backoff, lookups that waited too long).
//!
//! Everything runs on the executor's thread and no borrow of the table lives across an
//! `await`, so the table is a plain `RefCell` and each event is handled to the end before
//! the next.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::poll_fn;
use core::pin::pin;
use core::task::{Poll, Waker};
use core::time::Duration;

use futures_util::future::{Either, select};
use keel_abi::Error;
use keel_abi::cap::rights;
use keel_manifest::{Policy, Restart, Server};
use keel_rt::executor::{self, wake};
use keel_rt::ipc::{Port, Reply};
use keel_rt::process::{self, Exit, Pid};
use keel_rt::{println, time};

use crate::badge::{Badge, MAX_SLOTS};
use crate::requests::answer;
use crate::start::{self, StartError};
use crate::watch::{Ended, Exits};

/// How long a lookup waits for its service to register (while its server starts or
/// restarts) before it is answered `TimedOut`.
pub const LOOKUP_WAIT: Duration = Duration::from_secs(5);

/// A supervised system. Clones share it.
#[derive(Clone)]
pub struct System(Rc<RefCell<Table>>);

/// Where a child is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    /// Ended; starts again at timer tick `at`.
    Restarting {
        at: u64,
    },
    /// Ended, and its policy says that is that.
    Stopped,
    /// Ended once more than its policy allows restarts.
    GaveUp,
}

impl State {
    /// As `LIST` shows it.
    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Restarting { .. } => "restarting",
            State::Stopped => "stopped",
            State::GaveUp => "gave-up",
        }
    }

    /// It will not run again.
    pub fn is_final(self) -> bool {
        matches!(self, State::Stopped | State::GaveUp)
    }
}

/// What can be seen of a child from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub pid: Option<Pid>,
    pub state: State,
    pub restarts: u32,
    /// Fault messages the kernel sent init about it, over all its starts.
    pub faults: u32,
    pub last_exit: Option<Exit>,
}

/// A request to power off, from a process allowed to make it.
pub struct Poweroff {
    pub success: bool,
    /// Who asked.
    pub by: String,
    /// Never answered: held so that the asker keeps waiting while the machine goes off.
    pub(crate) _held: Reply,
}

pub(crate) struct Table {
    /// Manifest servers first, in manifest order; then programs started with `RUN`.
    pub slots: Vec<Option<Child>>,
    pub services: BTreeMap<String, Service>,
    pub lookups: Vec<Lookup>,
    /// init's port: the executor's wake port, where every request and fault arrives.
    pub port: Port,
    pub exits: Exits,
    pub poweroff: Option<Poweroff>,
    /// What went wrong for good: servers given up on, one-shot servers that failed.
    pub failures: Vec<String>,
    /// Tasks waiting for the table to change ([`System::until`]).
    pub watchers: Vec<Waker>,
    /// Shutting down: nothing restarts.
    pub stopping: bool,
}

pub(crate) struct Child {
    pub server: Server,
    /// For a program started with `RUN`: who asked.
    pub run_by: Option<String>,
    pub state: State,
    /// The badge of its current (or last) start.
    pub badge: Badge,
    pub pid: Option<Pid>,
    pub restarts: u32,
    /// When its restarts that still count against its limit happened, in ticks.
    pub recent_restarts: VecDeque<u64>,
    pub faults: u32,
    /// Who had its current start killed.
    pub killed_by: Option<String>,
    pub last_exit: Option<Exit>,
}

/// A registered service: a SEND+GRANT capability to its server's port.
pub(crate) struct Service {
    pub port: Port,
    pub slot: usize,
}

/// A lookup waiting for its service to register.
pub(crate) struct Lookup {
    pub name: String,
    pub reply: Reply,
    /// Timer tick after which it is answered `TimedOut`.
    pub deadline: u64,
}

enum Event {
    Request(keel_rt::ipc::Received),
    Ended(Ended),
    Timer,
}

impl System {
    /// A system of `servers`, none started yet. Must be used on the executor's thread.
    pub fn new(servers: Vec<Server>) -> System {
        let own = process::current_priority();
        for server in servers.iter().filter(|server| server.priority > own) {
            println!(
                "init: {} wants priority {}, above init's own {own}; it runs at {own}",
                server.name, server.priority
            );
        }
        let cores = keel_rt::sys::sys_info(keel_abi::SysInfo::Cores).unwrap_or(1);
        let lacking = |server: &&Server| server.cpus.iter().any(|&c| usize::from(c) >= cores);
        for server in servers.iter().filter(lacking) {
            println!(
                "init: {} wants cores {:?}, but this machine runs {cores}; it runs on those \
                 of them it has, or on any if none",
                server.name, server.cpus
            );
        }
        let slots = servers
            .into_iter()
            .enumerate()
            .map(|(slot, server)| Some(Child::new(server, None, slot)))
            .collect();
        System(Rc::new(RefCell::new(Table {
            slots,
            services: BTreeMap::new(),
            lookups: Vec::new(),
            port: wake::port(),
            exits: Exits::default(),
            poweroff: None,
            failures: Vec::new(),
            watchers: Vec::new(),
            stopping: false,
        })))
    }

    /// Starts every server of the manifest, in order.
    pub fn start_all(&self) {
        let mut table = self.0.borrow_mut();
        for slot in 0..table.slots.len() {
            let _ = table.start(slot);
        }
    }

    /// Serves requests and supervises until a process allowed to asks for a poweroff.
    pub async fn run(&self) -> Poweroff {
        loop {
            if let Some(poweroff) = self.0.borrow_mut().poweroff.take() {
                return poweroff;
            }
            let (deadline, exits) = {
                let table = self.0.borrow();
                (table.next_deadline(), table.exits.clone())
            };
            let event = {
                let request = pin!(wake::next_message());
                let exit = pin!(exits.next());
                let timer = pin!(sleep_until(deadline));
                match select(request, select(exit, timer)).await {
                    Either::Left((received, _)) => Event::Request(received),
                    Either::Right((Either::Left((ended, _)), _)) => Event::Ended(ended),
                    Either::Right((Either::Right(((), _)), _)) => Event::Timer,
                }
            };
            let mut table = self.0.borrow_mut();
            match event {
                Event::Request(received) => table.request(received),
                Event::Ended(ended) => table.ended(ended),
                Event::Timer => {}
            }
            table.fire_timers();
            table.watchers.drain(..).for_each(Waker::wake);
        }
    }

    /// The child called `name` (a manifest server, or a program run on request), if any.
    pub fn status(&self, name: &str) -> Option<Status> {
        let table = self.0.borrow();
        let child = table.find(name).map(|slot| table.child(slot))?;
        Some(Status {
            pid: child.pid,
            state: child.state,
            restarts: child.restarts,
            faults: child.faults,
            last_exit: child.last_exit,
        })
    }

    /// A copy of the port of the service `name` registered, if it is registered now: how
    /// the process running the system (a test) reaches a service without a manifest entry.
    pub fn service(&self, name: &str) -> Option<Port> {
        let table = self.0.borrow();
        let service = table.services.get(name)?;
        service.port.derive(rights::SEND | rights::GRANT, 0).ok()
    }

    /// What went wrong for good so far.
    pub fn failures(&self) -> Vec<String> {
        self.0.borrow().failures.clone()
    }

    /// Completes once `condition` holds; it is checked after each event [`run`](Self::run)
    /// handles, so `run` must be running meanwhile.
    pub async fn until(&self, mut condition: impl FnMut(&System) -> bool) {
        poll_fn(|cx| {
            if condition(self) {
                return Poll::Ready(());
            }
            self.0.borrow_mut().watchers.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Kills every child, reaps them all, and forgets every service: nothing of the system
    /// is left (and a console driver's ports are the kernel's again, so what is still in
    /// the log buffer goes out on the serial line). [`run`](Self::run) must not be running.
    pub async fn shutdown(&self) {
        let exits = {
            let mut table = self.0.borrow_mut();
            table.stopping = true;
            for child in table.slots.iter_mut().flatten() {
                if let State::Restarting { .. } = child.state {
                    child.state = State::Stopped;
                }
                if let Some(pid) = child.pid
                    && process::kill(pid).is_ok()
                {
                    child.killed_by = Some("init".into());
                }
            }
            table.exits.clone()
        };
        while self.0.borrow().children().any(|child| child.pid.is_some()) {
            let ended = exits.next().await;
            self.0.borrow_mut().ended(ended);
        }
        let mut table = self.0.borrow_mut();
        for lookup in core::mem::take(&mut table.lookups) {
            answer(lookup.reply, Err(Error::NotFound));
        }
        for (_, service) in core::mem::take(&mut table.services) {
            let _ = service.port.delete();
        }
    }
}

async fn sleep_until(deadline: Option<u64>) {
    match deadline {
        Some(tick) => {
            let ticks = tick.saturating_sub(time::ticks());
            executor::sleep(time::ticks_to_duration(ticks)).await
        }
        None => core::future::pending().await,
    }
}

/// `restart`'s window as the log says it: "" when restarts count over the server's life.
fn window(restart: &Restart) -> String {
    match restart.window_ms {
        0 => String::new(),
        ms => format!(" within {ms} ms"),
    }
}

impl Child {
    /// Its restarts that count against `restart.max` at `now`: those within the window.
    fn restarts_counting(&mut self, now: u64, restart: &Restart) -> usize {
        if restart.window_ms != 0 {
            let window = time::ticks_in(Duration::from_millis(restart.window_ms.into()));
            let since = now.saturating_sub(window);
            while self.recent_restarts.front().is_some_and(|&at| at < since) {
                self.recent_restarts.pop_front();
            }
        }
        self.recent_restarts.len()
    }

    fn new(server: Server, run_by: Option<String>, slot: usize) -> Child {
        Child {
            server,
            run_by,
            state: State::Stopped,
            badge: Badge::fresh(slot),
            pid: None,
            restarts: 0,
            recent_restarts: VecDeque::new(),
            faults: 0,
            killed_by: None,
            last_exit: None,
        }
    }

    /// How its start that just ended ended, for the log.
    fn ending(&self, exit: &Result<Exit, Error>) -> String {
        match (exit, &self.killed_by) {
            (Ok(Exit::Killed), Some(by)) => format!("was killed by {by}"),
            (Ok(exit), _) => format!("{exit}"),
            (Err(error), _) => format!("could not be waited for: {error}"),
        }
    }
}

impl Table {
    pub fn child(&self, slot: usize) -> &Child {
        self.slots[slot].as_ref().expect("a live slot")
    }

    pub fn child_mut(&mut self, slot: usize) -> &mut Child {
        self.slots[slot].as_mut().expect("a live slot")
    }

    pub fn children(&self) -> impl Iterator<Item = &Child> {
        self.slots.iter().flatten()
    }

    /// The slot of the child called `name`; manifest servers come first.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|child| child.as_ref().is_some_and(|c| c.server.name == name))
    }

    /// The slot a badge names, if it is the current start of a live child.
    pub fn caller(&self, badge: Badge) -> Option<usize> {
        let child = self.slots.get(badge.slot)?.as_ref()?;
        (child.badge.generation == badge.generation && child.pid.is_some()).then_some(badge.slot)
    }

    /// A slot for a new child: a free one, or a new one.
    pub fn add(&mut self, server: Server, run_by: String) -> Result<usize, Error> {
        let slot = match self.slots.iter().position(Option::is_none) {
            Some(free) => free,
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return Err(Error::QuotaExceeded),
        };
        self.slots[slot] = Some(Child::new(server, Some(run_by), slot));
        Ok(slot)
    }

    /// Starts the child in `slot`; a start that fails counts as an end.
    pub fn start(&mut self, slot: usize) -> Result<Pid, StartError> {
        let badge = Badge::fresh(slot);
        let port = self.port;
        let started = start::start(&self.child(slot).server, badge, port).and_then(|pid| {
            self.exits.watch(pid).map(|()| pid).map_err(|error| {
                // Unwatched, its end would go unnoticed: it does not run at all.
                let _ = process::kill(pid);
                let _ = process::wait(pid);
                StartError {
                    doing: "starting its watcher thread",
                    error,
                }
            })
        });
        let child = self.child_mut(slot);
        child.badge = badge;
        match started {
            Ok(pid) => {
                child.pid = Some(pid);
                child.state = State::Running;
                child.killed_by = None;
                println!(
                    "init: started {} as pid {pid}{}",
                    child.server,
                    grants(&child.server)
                );
            }
            Err(error) => {
                let why = format!("could not start: {error}");
                self.after_end(slot, why, false);
            }
        }
        started
    }

    /// A child ended (its watcher reaped it).
    pub fn ended(&mut self, (pid, exit): Ended) {
        let Some(slot) = self
            .slots
            .iter()
            .position(|child| child.as_ref().is_some_and(|c| c.pid == Some(pid)))
        else {
            return;
        };
        let services: Vec<String> = self
            .services
            .iter()
            .filter(|(_, service)| service.slot == slot)
            .map(|(name, _)| name.clone())
            .collect();
        for name in services {
            if let Some(service) = self.services.remove(&name) {
                let _ = service.port.delete();
            }
        }
        let child = self.child_mut(slot);
        if let Some(device) = &child.server.pci {
            crate::pci::stop_dma(device);
        }
        // Its device stopped (if it had one), the DMA memory the kernel held since the
        // child ended may go back (docs/ARCHITECTURE.md, "DMA").
        let _ = keel_rt::sys::device::dma_release(pid);
        child.pid = None;
        child.last_exit = exit.ok();
        let why = format!("(pid {pid}) {}", child.ending(&exit));
        self.after_end(slot, why, matches!(exit, Ok(Exit::Exited(0))));
    }

    /// What the policy says once a start of `slot` is over; `why` says how it ended.
    fn after_end(&mut self, slot: usize, why: String, clean: bool) {
        let now = time::ticks();
        let stopping = self.stopping;
        let child = self.child_mut(slot);
        let (name, restart) = (child.server.name.clone(), child.server.restart);
        let one_shot = child.run_by.is_some();
        let failure = match restart.policy {
            _ if stopping => {
                child.state = State::Stopped;
                println!("init: {name} {why}");
                None
            }
            Policy::Always if child.restarts_counting(now, &restart) < restart.max as usize => {
                child.restarts += 1;
                child.recent_restarts.push_back(now);
                let backoff = Duration::from_millis(restart.backoff_ms.into());
                child.state = State::Restarting {
                    at: now + time::ticks_in(backoff),
                };
                println!(
                    "init: {name} {why}; restart {} of {}{} in {} ms",
                    child.recent_restarts.len(),
                    restart.max,
                    window(&restart),
                    restart.backoff_ms
                );
                None
            }
            Policy::Always => {
                child.state = State::GaveUp;
                let limit = format!("{} restarts{}", restart.max, window(&restart));
                println!("init: {name} {why}; giving up after {limit}");
                Some(format!("{name} {why}, and init gave up after {limit}"))
            }
            Policy::Never => {
                child.state = State::Stopped;
                println!("init: {name} {why}");
                (!clean && !one_shot).then(|| format!("{name} {why}"))
            }
        };
        self.failures.extend(failure);
        if one_shot {
            // A program run on request provides no service, and leaves no trace.
            self.slots[slot] = None;
        } else if self.child(slot).state.is_final() {
            self.answer_lookups(&name, Err(Error::NotFound));
        }
    }

    /// Starts what is due to restart; answers lookups that waited too long.
    pub fn fire_timers(&mut self) {
        let now = time::ticks();
        for slot in 0..self.slots.len() {
            let due = self.slots[slot]
                .as_ref()
                .is_some_and(|child| matches!(child.state, State::Restarting { at } if at <= now));
            if due {
                let _ = self.start(slot);
            }
        }
        let (expired, waiting) = core::mem::take(&mut self.lookups)
            .into_iter()
            .partition(|lookup| lookup.deadline <= now);
        self.lookups = waiting;
        for lookup in expired {
            println!("init: a lookup of `{}` timed out", lookup.name);
            answer(lookup.reply, Err(Error::TimedOut));
        }
    }

    /// The next tick at which [`fire_timers`](Self::fire_timers) has something to do.
    fn next_deadline(&self) -> Option<u64> {
        let restarts = self.children().filter_map(|child| match child.state {
            State::Restarting { at } => Some(at),
            _ => None,
        });
        let lookups = self.lookups.iter().map(|lookup| lookup.deadline);
        restarts.chain(lookups).min()
    }

    /// Answers every lookup waiting for `name`: with its port, or with `Err`.
    pub fn answer_lookups(&mut self, name: &str, result: Result<Port, Error>) {
        let (done, waiting) = core::mem::take(&mut self.lookups)
            .into_iter()
            .partition(|lookup| lookup.name == name);
        self.lookups = waiting;
        for lookup in done {
            answer(lookup.reply, result.map(crate::requests::port_message));
        }
    }
}

/// What a server was granted besides handle 1, for the log.
fn grants(server: &Server) -> String {
    let mut grants: Vec<String> = Vec::new();
    for ports in &server.io_ports {
        grants.push(format!("I/O ports {:#x}+{}", ports.base, ports.len));
    }
    for irq in &server.irqs {
        grants.push(format!("IRQ {irq}"));
    }
    if server.log {
        grants.push("the kernel log".into());
    }
    match grants.is_empty() {
        true => String::new(),
        false => format!(" with {}", grants.join(", ")),
    }
}
