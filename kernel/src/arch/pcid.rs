//! Process-context identifiers: TLB entries tagged with their address space, so switching
//! address spaces need not flush them. Used only where the CPU has PCID; QEMU's TCG does
//! not, so there every CR3 load flushes as before and the tags stay 0.
//!
//! Each address space takes a PCID from 1..4096 (0 is the kernel's, and any space's once
//! all are taken: PCID 0 is always loaded with a flush). Invalidation with `invlpg` only
//! reaches the loaded PCID, so a space edited while not loaded is marked stale, and its next
//! load flushes its entries; so is a PCID handed out again after its space went away.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use spin::Mutex;
use x86_64::registers::control::{Cr4, Cr4Flags};

const COUNT: usize = 4096;
const WORDS: usize = COUNT / 64;
/// CR3 bit 63: keep the new PCID's TLB entries.
const NO_FLUSH: u64 = 1 << 63;
pub const MASK: u64 = COUNT as u64 - 1;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// PCIDs in use (bit 0, the kernel's, always).
static USED: Mutex<[u64; WORDS]> = Mutex::new({
    let mut used = [0; WORDS];
    used[0] = 1;
    used
});
/// PCIDs whose cached entries may be out of date.
static STALE: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

/// Turn PCIDs on. CR3 must hold PCID 0 (it holds the kernel's root at boot).
pub fn enable() {
    // SAFETY: the CPU reports PCID, we are in long mode, and CR3's PCID bits are 0, which is
    // what setting CR4.PCIDE requires; nothing is tagged yet.
    unsafe { Cr4::update(|cr4| cr4.insert(Cr4Flags::PCID)) };
    ENABLED.store(true, Relaxed);
}

/// Turn PCIDs off again, before any is handed out: with several cores a stale mark
/// would be consumed by one core's load while another still caches the old entries.
pub fn disable() {
    if ENABLED.swap(false, Relaxed) {
        // SAFETY: CR3 holds PCID 0 (no space has been given one yet), which clearing
        // CR4.PCIDE requires.
        unsafe { Cr4::update(|cr4| cr4.remove(Cr4Flags::PCID)) };
    }
}

/// A PCID for a new address space: 0 when PCIDs are off or all taken.
pub fn alloc() -> u64 {
    if !ENABLED.load(Relaxed) {
        return 0;
    }
    let mut used = USED.lock();
    let Some((word, bits)) = used.iter_mut().enumerate().find(|(_, b)| **b != u64::MAX) else {
        return 0;
    };
    let bit = bits.trailing_ones() as usize;
    *bits |= 1 << bit;
    let pcid = (word * 64 + bit) as u64;
    // Entries of the space that had it last may still be cached.
    mark_stale(pcid);
    pcid
}

pub fn free(pcid: u64) {
    if pcid != 0 {
        USED.lock()[pcid as usize / 64] &= !(1 << (pcid % 64));
    }
}

/// The space tagged `pcid` was edited while not loaded.
pub fn mark_stale(pcid: u64) {
    STALE[pcid as usize / 64].fetch_or(1 << (pcid % 64), Relaxed);
}

/// The CR3 value that loads `tagged` (a root with its PCID in the low bits): keeping its
/// cached entries unless they may be stale (or it is PCID 0).
pub fn cr3(tagged: u64) -> u64 {
    let pcid = tagged & MASK;
    if pcid == 0 {
        return tagged;
    }
    let bit = 1 << (pcid % 64);
    let stale = STALE[pcid as usize / 64].fetch_and(!bit, Relaxed) & bit != 0;
    if stale { tagged } else { tagged | NO_FLUSH }
}
