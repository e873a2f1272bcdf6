//! `kchild chaos`: the chaos campaign's driver (issue 16, deliverable 6). One task kills a
//! random running victim every few milliseconds through init (`names::kill`, as the shell's
//! `kill` does); beside it, one task per victim it has a workload for calls that victim's
//! service and checks every answer. To load another service, add it to [`WORKLOADS`].
//!
//! kv keeps its store in memory, so a restart empties it by design; what "acknowledged"
//! means here, and why, is docs/decisions/006-chaos-and-acknowledged-writes.md.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::time::Duration;

use console::ConsoleClient;
use hello_service::HelloClient;
use keel_abi::Error;
use keel_guest_tests::chaos::{Plan, time_limit};
use keel_guest_tests::hostile::xorshift;
use keel_rt::executor::{self, sleep};
use keel_rt::ipc::Port;
use keel_rt::service::TransportError;
use keel_rt::{names, println, time};
use kv::{KvClient, KvError};

use crate::Failure;

/// The pause before each kill, in milliseconds: a few, drawn from the seed.
const KILL_PAUSE_MS: (u64, u64) = (2, 8);
/// How long a start of a victim must have been seen running before it may be killed:
/// enough to register and answer a few calls, so that the clients get work done between
/// kills instead of only waiting for restarts.
const MIN_UP: Duration = Duration::from_millis(20);
/// The pause after each call of a workload, so that workloads and restarts share the CPU.
const CALL_PAUSE: Duration = Duration::from_millis(1);
/// The console's pause: every write is a line on the serial port.
const CONSOLE_PAUSE: Duration = Duration::from_millis(10);
/// The most rounds one workload makes, however long the kills take.
const MAX_ROUNDS: u64 = 1_000_000;
/// Failures printed as they happen; the rest are only counted.
const SHOWN_FAILURES: usize = 20;
/// The driver stops this long before `ktest` would give up on it, to report first.
const REPORT_MARGIN: Duration = Duration::from_secs(5);

/// What the tasks share: the kills so far, whether the killing is over, what failed.
struct Campaign {
    kills: Cell<u32>,
    /// Each victim's last kill, as failures name it: `#12 kv (pid 65539)`.
    last_kills: RefCell<BTreeMap<String, String>>,
    over: Cell<bool>,
    deadline: Duration,
    failed_idempotent: Cell<u64>,
    lost_writes: Cell<u64>,
    failures: RefCell<Vec<String>>,
}

/// What went wrong, for the tally.
enum Fault {
    /// A call of an `#[idempotent]` method did not succeed.
    Idempotent,
    /// A write kv acknowledged did not read back.
    LostWrite,
    /// Anything else: a refused kill, a connect that never succeeded.
    Other,
}

impl Campaign {
    /// `what` failed in the workload of `victim` (or, for "", in the killing).
    fn fail(&self, fault: Fault, victim: &str, what: String) {
        match fault {
            Fault::Idempotent => self.failed_idempotent.set(self.failed_idempotent.get() + 1),
            Fault::LostWrite => self.lost_writes.set(self.lost_writes.get() + 1),
            Fault::Other => {}
        }
        let line = match (victim, self.last_kills.borrow().get(victim)) {
            ("", _) => format!("{what} (after {} kills)", self.kills.get()),
            (_, Some(kill)) => format!("{what} (its server's last kill: {kill})"),
            (_, None) => format!("{what} (before any kill of its server)"),
        };
        if self.failures.borrow().len() < SHOWN_FAILURES {
            println!("chaos: FAILED: {line}");
        }
        self.failures.borrow_mut().push(line);
    }

    /// Whether workloads go on: until the killing is over, within the time limit.
    fn going(&self) -> bool {
        !self.over.get() && time::uptime() < self.deadline
    }
}

/// One workload's figures.
#[derive(Default)]
struct Figures {
    /// Calls of `#[idempotent]` methods: each must succeed.
    idempotent: u64,
    /// Calls of other methods.
    other: u64,
    /// Calls of other methods that met a kill (`ServerGone`): not retried, by design.
    lost_to_kills: u64,
    /// What only this workload counts, for the report.
    notes: String,
}

type Load = fn(Rc<Campaign>) -> Pin<Box<dyn Future<Output = Figures>>>;

/// The services the campaign knows how to load, by server name. A victim without one is
/// still killed, and must still come back.
const WORKLOADS: &[(&str, Load)] = &[
    (kv::NAME, |campaign| Box::pin(kv_load(campaign))),
    (hello_service::NAME, |campaign| {
        Box::pin(hello_load(campaign))
    }),
    (console::NAME, |campaign| Box::pin(console_load(campaign))),
];

/// `KILLS SEED VICTIM...`: the campaign; exits 0 only if it passed.
pub fn chaos(arg: &str) -> Result<i32, Failure> {
    let plan = Plan::parse(arg)
        .ok_or_else(|| Failure::check(format!("`{arg}` is not `KILLS SEED VICTIM...`")))?;
    Ok(executor::block_on(campaign(plan)))
}

async fn campaign(plan: Plan) -> i32 {
    let start = time::uptime();
    let campaign = Rc::new(Campaign {
        kills: Cell::new(0),
        last_kills: RefCell::default(),
        over: Cell::new(false),
        deadline: start + time_limit(plan.kills).saturating_sub(REPORT_MARGIN),
        failed_idempotent: Cell::new(0),
        lost_writes: Cell::new(0),
        failures: RefCell::default(),
    });
    let mut loads = Vec::new();
    for victim in &plan.victims {
        match WORKLOADS.iter().find(|(name, _)| name == victim) {
            Some((_, load)) => {
                loads.push((victim, executor::spawn(load(campaign.clone()))));
            }
            None => println!("chaos: no workload for {victim}: it is only killed"),
        }
    }
    kill(&campaign, &plan).await;
    let killing = time::uptime() - start;
    campaign.over.set(true);
    let (mut calls, mut idempotent) = (0, 0);
    for (victim, load) in loads {
        let figures = load.await;
        calls += figures.idempotent + figures.other;
        idempotent += figures.idempotent;
        println!(
            "chaos: {victim}: {} idempotent calls, {} others ({} lost to kills, not retried by design){}",
            figures.idempotent, figures.other, figures.lost_to_kills, figures.notes
        );
    }
    // Every victim, loaded or not, must serve again: its service registered.
    for victim in &plan.victims {
        match names::lookup(victim) {
            Ok(port) => drop(port.delete()),
            Err(error) => {
                let what = format!("{victim} did not come back after the kills: {error}");
                campaign.fail(Fault::Other, victim, what);
            }
        }
    }
    let failures = campaign.failures.borrow();
    println!(
        "chaos: {} kills of {} in {} ms (seed {:#x}); {calls} calls, {idempotent} of them idempotent, {} of those failed; {} acknowledged writes lost; {} failures in all",
        campaign.kills.get(),
        plan.victims.join(" "),
        killing.as_millis(),
        plan.seed,
        campaign.failed_idempotent.get(),
        campaign.lost_writes.get(),
        failures.len()
    );
    match failures.len() {
        0 => 0,
        _ => crate::CHECK_FAILED,
    }
}

/// Looks every few milliseconds for a victim up for [`MIN_UP`] and kills one at random,
/// until `plan.kills` are done (each kill ends a start no earlier kill ended) or the time
/// is up.
async fn kill(campaign: &Campaign, plan: &Plan) {
    let mut state = plan.seed | 1;
    let mut ended: BTreeMap<String, u32> = BTreeMap::new();
    let mut first_seen: BTreeMap<u32, Duration> = BTreeMap::new();
    while campaign.kills.get() < plan.kills {
        if time::uptime() >= campaign.deadline {
            let what = format!(
                "only {} of {} kills in time",
                campaign.kills.get(),
                plan.kills
            );
            return campaign.fail(Fault::Other, "", what);
        }
        let (low, high) = KILL_PAUSE_MS;
        sleep(Duration::from_millis(
            low + xorshift(&mut state) % (high - low + 1),
        ))
        .await;
        // init answers both at once: no need to leave the executor's thread.
        let listed = match names::list() {
            Ok(listed) => listed,
            Err(error) => return campaign.fail(Fault::Other, "", format!("names::list: {error}")),
        };
        let now = time::uptime();
        let running: Vec<_> = listed
            .into_iter()
            .filter(|l| plan.victims.contains(&l.name) && l.state == "running")
            .filter(|l| l.pid != 0 && ended.get(&l.name) != Some(&l.pid))
            .filter(|l| {
                let seen = *first_seen.entry(l.pid).or_insert(now);
                now - seen >= MIN_UP
            })
            .collect();
        if running.is_empty() {
            continue;
        }
        let victim = &running[xorshift(&mut state) as usize % running.len()];
        match names::kill(&victim.name) {
            Ok(()) => {
                let kill = campaign.kills.get() + 1;
                campaign.kills.set(kill);
                let named = format!("#{kill} {} (pid {})", victim.name, victim.pid);
                campaign
                    .last_kills
                    .borrow_mut()
                    .insert(victim.name.clone(), named);
                ended.insert(victim.name.clone(), victim.pid);
                first_seen.remove(&victim.pid);
            }
            // It ended between the list and the kill.
            Err(Error::NotFound) => {}
            Err(error) => {
                let what = format!(
                    "kill #{} of {}: {error}",
                    campaign.kills.get() + 1,
                    victim.name
                );
                return campaign.fail(Fault::Other, "", what);
            }
        }
    }
}

/// The key whose absence shows that kv restarted (and so lost its store) since it was put.
const MARKER: &str = "chaos-marker";
/// Keys the writer cycles through: each is overwritten, so values must be the latest.
const KEYS: u64 = 64;
/// How many times in a row kv may lose its store while the writer writes it again.
const MAX_REWRITES: usize = 100;

/// Every write kv acknowledged, newest value per key; and how often it was written again.
#[derive(Default)]
struct Acknowledged {
    writes: BTreeMap<String, Vec<u8>>,
    count: u64,
    rewrites: u64,
    /// Whether the marker was ever put.
    marked: bool,
}

/// Writes and reads back, then reads back every acknowledged write once the killing is over.
async fn kv_load(campaign: Rc<Campaign>) -> Figures {
    let mut figures = Figures::default();
    let kv = match KvClient::connect_named(kv::NAME) {
        Ok(kv) => kv,
        Err(error) => {
            campaign.fail(Fault::Other, kv::NAME, format!("connecting to kv: {error}"));
            return figures;
        }
    };
    let mut acked = Acknowledged::default();
    let mut round = 0;
    while campaign.going() && round < MAX_ROUNDS {
        if let Err(what) = write_and_read(&kv, &mut acked, &mut figures, round).await {
            campaign.fail(what.0, kv::NAME, what.1);
        }
        sleep(CALL_PAUSE).await;
        round += 1;
    }
    if let Err((fault, what)) = read_back(&campaign, &kv, &mut acked, &mut figures).await {
        campaign.fail(fault, kv::NAME, what);
    }
    figures.notes = format!(
        "; {} writes acknowledged, the store written again after {} restarts seen, {} keys read back at the end",
        acked.count,
        acked.rewrites,
        acked.writes.len()
    );
    figures
}

/// One round: put `k{round % KEYS}` = `v{round}`, read it back.
async fn write_and_read(
    kv: &KvClient,
    acked: &mut Acknowledged,
    figures: &mut Figures,
    round: u64,
) -> Result<(), (Fault, String)> {
    let key = format!("k{}", round % KEYS);
    let value = format!("v{round}").into_bytes();
    figures.idempotent += 2;
    match kv.put(&key, &value).await {
        Ok(Ok(())) => {}
        other => {
            return Err((
                Fault::Idempotent,
                format!("kv.put({key:?}, v{round}) -> {other:?}"),
            ));
        }
    }
    acked.writes.insert(key.clone(), value.clone());
    acked.count += 1;
    let read = kv.get(&key).await;
    let read = read.map_err(|e| (Fault::Idempotent, format!("kv.get({key:?}) -> {e:?}")))?;
    // A store written again since the put holds it anyway; one that was not must hold it.
    if !rewrite_if_lost(kv, acked, figures).await? && read != Ok(value) {
        return Err(lost(&key, &read, round));
    }
    Ok(())
}

/// Once the killing is over: every acknowledged write must read back with its value; each
/// that does not is a failure of its own.
async fn read_back(
    campaign: &Campaign,
    kv: &KvClient,
    acked: &mut Acknowledged,
    figures: &mut Figures,
) -> Result<(), (Fault, String)> {
    rewrite_if_lost(kv, acked, figures).await?;
    for (key, value) in &acked.writes {
        figures.idempotent += 1;
        let read = kv.get(key).await;
        let read = read.map_err(|e| (Fault::Idempotent, format!("kv.get({key:?}) -> {e:?}")))?;
        if read.as_ref() != Ok(value) {
            let round = String::from_utf8_lossy(value);
            let what =
                format!("read-back: kv.get({key:?}) -> {read:?}, but {round} was acknowledged");
            campaign.fail(Fault::LostWrite, kv::NAME, what);
        }
    }
    // No kill comes now, so the store read back must be the one written.
    match rewrite_if_lost(kv, acked, figures).await? {
        false => Ok(()),
        true => Err((Fault::Other, "kv restarted during the read-back".into())),
    }
}

/// An idempotent call that did not succeed.
fn failed(call: &str, outcome: &dyn core::fmt::Debug) -> (Fault, String) {
    (Fault::Idempotent, format!("{call} -> {outcome:?}"))
}

fn lost(key: &str, read: &Result<Vec<u8>, KvError>, round: u64) -> (Fault, String) {
    (
        Fault::LostWrite,
        format!("kv.get({key:?}) -> {read:?}, but v{round} was acknowledged"),
    )
}

/// If kv lost its store (the marker is gone: it restarted), put the marker, then every
/// acknowledged write, again, until a check finds the marker; true if it had to. The
/// marker goes first, so a restart in the middle shows at the next check.
async fn rewrite_if_lost(
    kv: &KvClient,
    acked: &mut Acknowledged,
    figures: &mut Figures,
) -> Result<bool, (Fault, String)> {
    for rewrites in 0..MAX_REWRITES {
        figures.idempotent += 1;
        match kv.get(MARKER).await {
            Ok(Ok(_)) => return Ok(rewrites > 0),
            Ok(Err(KvError::NotFound)) => {}
            other => return Err(failed(&format!("kv.get({MARKER:?})"), &other)),
        }
        // The first check finds no marker: that is the store kv started with.
        if acked.marked {
            acked.rewrites += 1;
        }
        acked.marked = true;
        for (key, value) in core::iter::once((MARKER, &Vec::new())).chain(
            acked
                .writes
                .iter()
                .map(|(key, value)| (key.as_str(), value)),
        ) {
            figures.idempotent += 1;
            match kv.put(key, value).await {
                Ok(Ok(())) => {}
                other => return Err(failed(&format!("kv.put({key:?}) writing again"), &other)),
            }
        }
    }
    Err((
        Fault::Other,
        format!("kv lost its store {MAX_REWRITES} times in a row"),
    ))
}

/// Greets and checks each greeting is the answer to its own call.
async fn hello_load(campaign: Rc<Campaign>) -> Figures {
    let mut figures = Figures::default();
    let hello = match HelloClient::connect_named(hello_service::NAME) {
        Ok(hello) => hello,
        Err(error) => {
            campaign.fail(
                Fault::Other,
                hello_service::NAME,
                format!("connecting to hello: {error}"),
            );
            return figures;
        }
    };
    let mut round = 0;
    while campaign.going() && round < MAX_ROUNDS {
        let name = format!("chaos {round}");
        figures.idempotent += 1;
        match hello.greet(&name).await {
            Ok(greeting) if greeting.starts_with(&format!("hello, {name}, ")) => {}
            other => campaign.fail(
                Fault::Idempotent,
                hello_service::NAME,
                format!("hello.greet({name:?}) -> {other:?}"),
            ),
        }
        sleep(CALL_PAUSE).await;
        round += 1;
    }
    figures
}

/// Writes a line every few milliseconds. `write` is not idempotent (a second run prints
/// twice), so one that meets a kill is lost, and the workload connects again itself.
async fn console_load(campaign: Rc<Campaign>) -> Figures {
    let mut figures = Figures::default();
    let mut console = match connect_console(&campaign).await {
        Some(console) => console,
        None => return figures,
    };
    let mut round = 0;
    while campaign.going() && round < MAX_ROUNDS {
        figures.other += 1;
        match console
            .0
            .write(&format!("chaos console write {round}\n"))
            .await
        {
            Ok(()) => {}
            Err(TransportError::ServerGone) => {
                figures.lost_to_kills += 1;
                let _ = console.1.delete();
                console = match connect_console(&campaign).await {
                    Some(console) => console,
                    None => return figures,
                };
            }
            Err(error) => campaign.fail(
                Fault::Other,
                console::NAME,
                format!("console.write #{round} -> {error:?}"),
            ),
        }
        sleep(CONSOLE_PAUSE).await;
        round += 1;
    }
    let _ = console.1.delete();
    figures
}

/// How many times a console connect may find the server it looked up already gone.
const CONSOLE_CONNECTS: usize = 100;

/// A client of the console and the port it was made from (the caller's to delete). The
/// lookup waits for a restarting console on a thread of its own, so the other tasks go on.
async fn connect_console(campaign: &Campaign) -> Option<(ConsoleClient, Port)> {
    for _ in 0..CONSOLE_CONNECTS {
        let port = match executor::unblock(|| names::lookup(console::NAME)).await {
            Ok(Ok(port)) => port,
            other => {
                campaign.fail(
                    Fault::Other,
                    console::NAME,
                    format!("looking up the console: {other:?}"),
                );
                return None;
            }
        };
        match ConsoleClient::connect(port) {
            Ok(console) => return Some((console, port)),
            // Looked up before init reaped the old start: look again.
            Err(TransportError::ServerGone) => {
                let _ = port.delete();
                sleep(CALL_PAUSE * 5).await;
            }
            Err(error) => {
                let _ = port.delete();
                campaign.fail(
                    Fault::Other,
                    console::NAME,
                    format!("connecting to the console: {error}"),
                );
                return None;
            }
        }
    }
    campaign.fail(
        Fault::Other,
        console::NAME,
        "the console could not be reached".into(),
    );
    None
}
