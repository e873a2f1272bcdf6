//! Kernel object tables: slabs indexed by id, so finding a thread, process or port (which
//! every syscall, switch and message does) is an array access, not a tree search.
//!
//! An id is a slot index in its low 16 bits and the slot's generation above, so the id of an
//! object that has gone never names its slot's next occupant. Slot 0 is never used: id 0
//! means "none" (a parentless process, say). Entries are boxed so they keep their address
//! while the table grows (a parked thread's saved stack pointer is written through one).

use alloc::boxed::Box;
use alloc::vec::Vec;

pub type Id = u32;

struct Slot<T> {
    generation: u16,
    entry: Option<Box<T>>,
}

pub struct Table<T> {
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

fn split(id: Id) -> (usize, u16) {
    ((id & 0xffff) as usize, (id >> 16) as u16)
}

impl<T> Table<T> {
    /// The id the next inserted entry will get.
    pub fn next_id(&self) -> Id {
        let index = self.free.last().copied().unwrap_or(self.slots.len().max(1));
        let generation = self.slots.get(index).map_or(0, |s| s.generation);
        ((generation as Id) << 16) | index as Id
    }

    /// Store `entry` under [`next_id`](Self::next_id); returns that id.
    pub fn insert(&mut self, entry: T) -> Id {
        let id = self.next_id();
        let (index, _) = split(id);
        if self.slots.is_empty() {
            self.slots.push(Slot {
                generation: 0,
                entry: None,
            });
        }
        match self.slots.get_mut(index) {
            Some(slot) => {
                self.free.pop();
                slot.entry = Some(Box::new(entry));
            }
            None => self.slots.push(Slot {
                generation: 0,
                entry: Some(Box::new(entry)),
            }),
        }
        self.len += 1;
        id
    }

    pub fn get(&self, id: &Id) -> Option<&T> {
        let (index, generation) = split(*id);
        let slot = self.slots.get(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.entry.as_deref()
    }

    pub fn get_mut(&mut self, id: &Id) -> Option<&mut T> {
        let (index, generation) = split(*id);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.entry.as_deref_mut()
    }

    pub fn contains_key(&self, id: &Id) -> bool {
        self.get(id).is_some()
    }

    pub fn remove(&mut self, id: &Id) -> Option<T> {
        let (index, generation) = split(*id);
        let slot = self
            .slots
            .get_mut(index)
            .filter(|s| s.generation == generation)?;
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        self.len -= 1;
        Some(*entry)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Every entry with its id, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Id, &T)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let id = ((slot.generation as Id) << 16) | index as Id;
            slot.entry.as_deref().map(|entry| (id, entry))
        })
    }

    pub fn keys(&self) -> impl Iterator<Item = Id> + '_ {
        self.iter().map(|(id, _)| id)
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.iter().map(|(_, entry)| entry)
    }
}

impl<T> core::ops::Index<&Id> for Table<T> {
    type Output = T;

    fn index(&self, id: &Id) -> &T {
        self.get(id).expect("table entry exists")
    }
}
