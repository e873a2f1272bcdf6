//! A process's capability space: slots holding capability ids, named by handles.

use super::CapId;
use alloc::vec::Vec;
use keel_abi::Error;
use keel_abi::cap::{Handle, handle_parts, make_handle};

/// Slots a process may fill unless its quota says otherwise.
pub const DEFAULT_SLOTS: usize = 256;
/// Handles have 16 bits of index; slot 0 is never used.
const MAX_SLOTS: usize = 1 << 16;

struct Slot {
    cap: Option<CapId>,
    /// Bumped each time the slot is emptied, so old handles to it read as stale.
    generation: u16,
}

pub struct CapSpace {
    slots: Vec<Slot>,
    used: usize,
    limit: usize,
}

impl CapSpace {
    pub fn new(limit: usize) -> Self {
        CapSpace {
            slots: Vec::new(),
            used: 0,
            limit: limit.min(MAX_SLOTS - 1),
        }
    }

    pub fn used(&self) -> usize {
        self.used
    }

    /// Most slots it may use.
    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn lookup(&self, handle: Handle) -> Result<CapId, Error> {
        let (index, generation) = handle_parts(handle);
        let slot = index
            .checked_sub(1)
            .and_then(|i| self.slots.get(i))
            .ok_or(Error::InvalidHandle)?;
        match slot.cap {
            Some(cap) if slot.generation == generation => Ok(cap),
            _ if generation < slot.generation => Err(Error::StaleHandle),
            _ => Err(Error::InvalidHandle),
        }
    }

    /// Put `cap` in the lowest free slot; its index and handle.
    pub fn insert(&mut self, cap: CapId) -> Result<(usize, Handle), Error> {
        if self.used >= self.limit {
            return Err(Error::QuotaExceeded);
        }
        let index = match self.slots.iter().position(|s| s.cap.is_none()) {
            Some(i) => i,
            None => {
                self.slots.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
                self.slots.push(Slot {
                    cap: None,
                    generation: 0,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.cap = Some(cap);
        self.used += 1;
        Ok((index, make_handle(index + 1, slot.generation)))
    }

    /// Empty slot `index`; whether a capability left (path caches made before are stale).
    pub fn clear(&mut self, index: usize) -> bool {
        let Some(slot) = self.slots.get_mut(index) else {
            return false;
        };
        if slot.cap.take().is_none() {
            return false;
        }
        slot.generation = slot.generation.wrapping_add(1);
        self.used -= 1;
        true
    }

    /// The handle of every capability held.
    pub fn handles(&self) -> Vec<Handle> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.cap.is_some())
            .map(|(i, s)| make_handle(i + 1, s.generation))
            .collect()
    }

    /// Every capability held.
    pub fn held(&self) -> Vec<CapId> {
        self.slots.iter().filter_map(|s| s.cap).collect()
    }
}
