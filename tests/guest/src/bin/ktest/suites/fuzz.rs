//! The fuzz campaign (issue 16): `kchild fuzz` makes random syscalls with edge-case
//! arguments on four threads, without rights, until it has made the number asked for; the
//! kernel must take them all, and once the fuzzer has ended everything it held must be back:
//! free frames, and the system's processes, threads, ports, memory objects and capabilities,
//! and this process's own slots, kernel bytes and frames. `ktest fuzz [CALLS [SEED]]`
//! (`cargo boot fuzz --calls N --seed S`); `cargo test` makes [`CALLS`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use keel_abi::layout::PAGE_SIZE;
use keel_abi::{Error, prot};
use keel_guest_tests::Role;
use keel_rt::mem::Memory;
use keel_rt::process::{self, Exit, Spawn};
use keel_rt::{println, time};

use crate::audit::Audit;
use crate::check::{Context, all, ensure, expect_eq};
use crate::child;
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(fuzz:
    random_syscalls_leave_nothing_behind,
);

/// Calls made when none are asked for.
const CALLS: u64 = 200_000;
/// The seed when none is given.
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
/// A fuzzer that makes no call for this long has hung.
const STALL: Duration = Duration::from_secs(10);

/// The counter page's words (kchild's `fuzz::word`).
const CALLS_WORD: usize = 0;
const SUCCEEDED_WORD: usize = 1;
const REFUSED_WORD: usize = 2;

/// `CALLS SEED` from this process's arguments, after the suite's name.
fn campaign() -> Result<(u64, u64), String> {
    let info = keel_rt::start_info();
    let args = core::str::from_utf8(&info.args[..info.args_len as usize]).unwrap_or("");
    let mut words = args.split_whitespace().skip(1);
    let mut number = |default: u64| match words.next() {
        Some(word) => word
            .parse::<u64>()
            .map_err(|_| format!("`{word}` is not a number")),
        None => Ok(default),
    };
    Ok((number(CALLS)?, number(SEED)?))
}

fn random_syscalls_leave_nothing_behind() -> Result<(), String> {
    let (calls, seed) = campaign()?;
    let counter = Memory::create(PAGE_SIZE).context("mem_create")?;
    let mapping = counter.map(prot::READ).context("mapping the counter")?;
    let word = |index: usize| {
        // SAFETY: the page is mapped readable while `mapping` lives; the fuzzer writes its
        // words only with atomic adds, and a torn read cannot happen on aligned words.
        unsafe { mapping.as_ptr().cast::<u64>().add(index).read_volatile() }
    };
    let args = format!("{} {seed} {calls}", Role::Fuzz.name());
    let image = child::image()?;
    let start = time::ticks();
    let before = Audit::take()?;
    let pid = Spawn::new("kchild", image)
        .args(&args)
        .caps(&[counter.handle()])
        .spawn()
        .context("spawning kchild fuzz")?;
    let (mut seen, mut since) = (0, time::ticks());
    let stalled = loop {
        time::sleep(Duration::from_millis(100));
        if process::info(pid).is_ok_and(|info| info.state == keel_abi::process_state::ZOMBIE) {
            break None;
        }
        let made = word(CALLS_WORD);
        if made != seen {
            (seen, since) = (made, time::ticks());
        } else if time::ticks() - since > time::ticks_in(STALL) {
            let _ = process::kill(pid);
            break Some(made);
        }
    };
    let ended = process::wait(pid).context("waiting for the fuzzer")?;
    let after = Audit::settled(&before)?;
    let ms = (time::ticks() - start) * 1000 / time::ticks_in(Duration::from_secs(1)).max(1);
    let made = word(CALLS_WORD);
    // Each call is tallied just before it is counted, so the tallies may run a call ahead
    // on each of the fuzzer's threads, never behind: anything else means the counts were
    // written over.
    let tallied = (SUCCEEDED_WORD..REFUSED_WORD + 64)
        .map(word)
        .fold(0u64, u64::wrapping_add);
    let refusals: Vec<String> = (1..64)
        .filter_map(|code| {
            let count = word(REFUSED_WORD + code);
            let error = Error::from_raw(code as isize)?;
            (count > 0).then(|| format!("{error:?} {count}"))
        })
        .collect();
    println!(
        "fuzz: {made} calls (seed {seed:#x}) in {ms} ms: {} succeeded; refused: {}",
        word(SUCCEEDED_WORD),
        refusals.join(", ")
    );
    println!("fuzz: before -> after its life: {}", before.compare(&after));
    // Deleting the capability unmaps the page.
    let _ = counter.delete();
    all([
        ensure(stalled.is_none(), || {
            format!(
                "the fuzzer made no call for {STALL:?} after {}",
                stalled.unwrap_or(0)
            )
        }),
        expect_eq("how the fuzzer ended", ended, Exit::Exited(0)),
        ensure(made >= calls, || format!("{made} calls made of {calls}")),
        ensure((made..=made + 4).contains(&tallied), || {
            format!("the counts do not add up ({made} calls, {tallied} tallied): written over")
        }),
        expect_eq("what the fuzzer's life left behind", after, before),
    ])
}
