//! Kernel object tables: slabs indexed by id, so finding a thread, process or port (which
//! every syscall, switch and message does) is an array access, not a tree search.
//!
//! An id is a slot index in its low 16 bits and the slot's generation above, so the id of an
//! object that has gone never names its slot's next occupant. Slot 0 is never used: id 0
//! means "none" (a parentless process, say). Entries are boxed so they keep their address
//! while the table grows (a parked thread's saved stack pointer is written through one).
//!
//! In the kernel's shared mode (the IPC fast path, `kernel/fastpath.rs`) several cores
//! reach one table at once, each entry only through its own lock ([`Table::try_lock`]); the
//! table's shape (inserting, removing) and every other access are the exclusive mode's. A
//! core keeps the entry of the thread it runs locked while it runs ([`Held`]).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

pub type Id = u32;

struct Slot<T> {
    generation: u16,
    entry: Option<Box<Entry<T>>>,
}

/// An entry and its lock, together so that both stay put while the table grows.
pub struct Entry<T> {
    /// Held by an [`EntryGuard`] or a [`Held`].
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

impl<T> Entry<T> {
    fn new(value: T) -> Box<Self> {
        Box::new(Entry {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        })
    }
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
                slot.entry = Some(Entry::new(entry));
            }
            None => self.slots.push(Slot {
                generation: 0,
                entry: Some(Entry::new(entry)),
            }),
        }
        self.len += 1;
        id
    }

    #[inline(always)]
    fn slot(&self, id: Id) -> Option<&Slot<T>> {
        let (index, generation) = split(id);
        self.slots.get(index).filter(|s| s.generation == generation)
    }

    pub fn get(&self, id: &Id) -> Option<&T> {
        let entry = self.slot(*id)?.entry.as_deref()?;
        // SAFETY: an entry changes behind `&self` only under an `EntryGuard`, and guards
        // live only while nothing reaches the table but through them (`try_lock`).
        Some(unsafe { &*entry.value.get() })
    }

    pub fn get_mut(&mut self, id: &Id) -> Option<&mut T> {
        let (index, generation) = split(*id);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.entry.as_deref_mut().map(|entry| entry.value.get_mut())
    }

    /// Entry `id`, to be kept locked (see [`EntryGuard::keep`]); for the exclusive mode,
    /// in which no guard lives. It may be held already (the scheduler's, for a thread that
    /// runs on): it stays locked.
    pub fn hold(&mut self, id: &Id) -> Option<EntryGuard<'_, T>> {
        let entry = self.slot(*id)?.entry.as_deref()?;
        entry.locked.store(true, Ordering::Relaxed);
        // SAFETY: `&mut self`: nothing else reaches the entry.
        Some(unsafe { EntryGuard::new(entry) })
    }

    /// Entry `id`, locked, if it exists and no other core holds it: `None` rather than
    /// wait, so that cores taking several entries never wait for each other in a circle.
    ///
    /// # Safety
    /// While the guard lives, the table is reached only through `try_lock` and its guards
    /// (the kernel's shared mode, which keeps out `get`, `get_mut`, `iter`, inserting and
    /// removing).
    #[inline(always)]
    pub unsafe fn try_lock(&self, id: Id) -> Option<EntryGuard<'_, T>> {
        let entry = self.slot(id)?.entry.as_deref()?;
        entry
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // SAFETY: the entry's lock is held, and per the caller nothing else reaches it.
        Some(unsafe { EntryGuard::new(entry) })
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
        Some(entry.value.into_inner())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Every entry with its id, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Id, &T)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let id = ((slot.generation as Id) << 16) | index as Id;
            // SAFETY: as in `get`.
            let entry = slot.entry.as_deref().map(|e| unsafe { &*e.value.get() });
            entry.map(|entry| (id, entry))
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

/// An entry locked by [`Table::try_lock`] or [`Table::hold`], unlocked when dropped.
pub struct EntryGuard<'a, T> {
    entry: &'a Entry<T>,
    value: &'a mut T,
}

impl<'a, T> EntryGuard<'a, T> {
    /// # Safety
    /// `entry` is locked by the caller, and nothing else reaches its value while the guard
    /// lives.
    #[inline(always)]
    unsafe fn new(entry: &'a Entry<T>) -> Self {
        EntryGuard {
            entry,
            // SAFETY: per the caller.
            value: unsafe { &mut *entry.value.get() },
        }
    }

    /// Keep the entry locked past the guard, as a [`Held`].
    #[inline(always)]
    pub fn keep(self) -> Held<T> {
        let held = Held(NonNull::from(self.entry));
        core::mem::forget(self);
        held
    }
}

impl<T> core::ops::Deref for EntryGuard<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        self.value
    }
}

impl<T> core::ops::DerefMut for EntryGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        self.value
    }
}

impl<T> Drop for EntryGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        self.entry.locked.store(false, Ordering::Release);
    }
}

/// An entry kept locked without a borrow of its table: the scheduler keeps the running
/// thread's so that no other core's fast path locks it. Its owner must keep the entry in
/// the table until it is [`release`](Held::release)d.
pub struct Held<T>(NonNull<Entry<T>>);

impl<T> Held<T> {
    /// The value.
    ///
    /// # Safety
    /// The entry is still in its table, and the caller holds the kernel lock and no other
    /// reference to the value (in exclusive mode, none from the table either).
    #[inline(always)]
    pub unsafe fn value<'a>(&self) -> &'a mut T {
        // SAFETY: per the caller; the entry is locked, so no other core's fast path has it.
        unsafe { &mut *self.0.as_ref().value.get() }
    }

    /// Unlock the entry.
    ///
    /// # Safety
    /// The entry is still in its table, and no reference from [`value`](Self::value) is
    /// used any more.
    #[inline(always)]
    pub unsafe fn release(self) {
        // SAFETY: per the caller, the entry is still there.
        unsafe { self.0.as_ref() }
            .locked
            .store(false, Ordering::Release);
    }
}
