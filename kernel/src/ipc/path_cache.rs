//! The path cache: per thread, the last few port handles it used and what they resolved
//! to, so the fast path (`kernel/fastpath.rs`) resolves a handle without the capability
//! table. Entries stay valid until the process's capability space next loses a
//! capability: that empties the caches of all its threads ([`PathCache::forget_all`]).

use crate::id::{CapId, PortId};
use keel_abi::cap::Handle;

const PATH_CACHE_ENTRIES: usize = 4;

/// A port capability as resolved: all the fast path needs, without the capability table.
/// An entry with handle 0 (never a valid handle) is empty.
#[derive(Clone, Copy, Default)]
pub struct PathEntry {
    pub handle: Handle,
    pub rights: u32,
    pub port: PortId,
    pub cap: CapId,
    pub badge: u64,
}

#[derive(Default)]
pub struct PathCache {
    entries: [PathEntry; PATH_CACHE_ENTRIES],
    next: usize,
}

impl PathCache {
    #[inline(always)]
    pub fn find(&self, handle: Handle, rights: u32) -> Option<&PathEntry> {
        self.entries
            .iter()
            .find(|e| e.handle == handle && e.rights & rights == rights && handle != 0)
    }

    /// Remember `entry`, in place of the oldest.
    pub fn remember(&mut self, entry: PathEntry) {
        self.entries[self.next] = entry;
        self.next = (self.next + 1) % PATH_CACHE_ENTRIES;
    }

    /// Drop every entry: a capability left the process's space.
    pub fn forget_all(&mut self) {
        self.entries = [PathEntry::default(); PATH_CACHE_ENTRIES];
    }
}
