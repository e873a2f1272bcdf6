//! The ready set: the tasks to poll next, marked by wakers on any thread.
//!
//! A task's index is its bit in a bitmap of atomic words, with a summary word saying which
//! words have bits set: waking is two `fetch_or`s and allocates nothing, and the executor
//! takes a whole word of ready tasks with one `swap`. A bit set already means the task is
//! marked, so a task is never in the set twice. The `block_on` future has a flag of its
//! own. A process with more tasks than bits shares each bit between the tasks whose
//! indices are [`BITS`] apart: a marked bit has all of them polled, and a future polled
//! without cause looks at its state and waits on, so sharing costs polls, never wake-ups.
//!
//! The executor takes the set a round at a time ([`take_round`]): the tasks ready when the
//! round starts are polled in index order, and those woken meanwhile wait for the next
//! round, so every ready task gets its turn.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The index of the `block_on` future, which is no task.
pub const MAIN: usize = usize::MAX;
const WORDS: usize = 64;
/// Bits in the set: tasks whose indices are this far apart share one.
pub const BITS: usize = WORDS * 64;

static MAIN_READY: AtomicBool = AtomicBool::new(false);
static SUMMARY: AtomicU64 = AtomicU64::new(0);
static WORD: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

/// Mark task `index` ready: false when it was already (then whoever marked it takes care
/// of telling the executor).
///
/// Sequentially consistent, like the executor's check before it sleeps ([`is_empty`] after
/// it raised its sleeping flag): either the executor sees the task, or the caller sees
/// that it sleeps, and signals it.
pub fn insert(index: usize) -> bool {
    if index == MAIN {
        return !MAIN_READY.swap(true, Ordering::SeqCst);
    }
    let index = index % BITS;
    let (word, bit) = (index / 64, 1u64 << (index % 64));
    if WORD[word].fetch_or(bit, Ordering::SeqCst) & bit != 0 {
        return false;
    }
    // After the task's bit: the executor, which clears the summary before it reads the
    // words, finds the bit in this round or the next.
    SUMMARY.fetch_or(1 << word, Ordering::SeqCst);
    true
}

/// Whether nothing is ready. Only the executor's thread, which takes from the set, asks.
pub fn is_empty() -> bool {
    SUMMARY.load(Ordering::SeqCst) == 0 && !MAIN_READY.load(Ordering::SeqCst)
}

/// Take the `block_on` future's mark: whether it was ready.
pub fn take_main() -> bool {
    MAIN_READY.load(Ordering::Relaxed) && MAIN_READY.swap(false, Ordering::AcqRel)
}

/// Take the bits marked now and call `poll` with each (`0..BITS`); each mark is cleared
/// before its poll, so a wake from then on marks the task for the next round.
pub fn take_round(mut poll: impl FnMut(usize)) {
    let mut summary = SUMMARY.swap(0, Ordering::AcqRel);
    while summary != 0 {
        let word = summary.trailing_zeros() as usize;
        summary &= summary - 1;
        let mut bits = WORD[word].swap(0, Ordering::AcqRel);
        while bits != 0 {
            poll(word * 64 + bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
    }
}
