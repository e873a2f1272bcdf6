//! Directories: their 32-byte slots read through the sector cache, long names put back
//! together, entries added (growing the directory by a cluster when it is full) and erased.

use alloc::string::String;
use alloc::vec::Vec;

use crate::volume::Volume;
use crate::{BlockDevice, Error, SECTOR, name};

pub const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_VOLUME: u8 = 0x08;
const ATTR_LONG: u8 = 0x0f;
pub const ATTR_ARCHIVE: u8 = 0x20;
const SLOTS_PER_SECTOR: usize = SECTOR / 32;
/// FAT's limit on a directory's slots.
const MAX_SLOTS: usize = 65_536;
const ERASED: u8 = 0xe5;
/// 1980-01-01, FAT's epoch: Keel has no calendar clock to date entries with.
const EPOCH_DATE: u16 = 0x0021;

/// Where a 32-byte directory slot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub sector: u64,
    pub index: usize,
}

/// A short (8.3) directory entry's 32 bytes.
pub type Raw = [u8; 32];

/// A named entry of a directory.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub raw: Raw,
    /// Its long-name slots, then its short slot.
    pub slots: Vec<Slot>,
}

impl Entry {
    pub fn short_slot(&self) -> Slot {
        *self.slots.last().expect("an entry has its short slot")
    }
    pub fn is_dir(&self) -> bool {
        self.raw[11] & ATTR_DIRECTORY != 0
    }
    pub fn first_cluster(&self) -> u32 {
        first_cluster(&self.raw)
    }
    pub fn size(&self) -> u32 {
        u32::from_le_bytes([self.raw[28], self.raw[29], self.raw[30], self.raw[31]])
    }
}

pub fn first_cluster(raw: &Raw) -> u32 {
    u32::from(u16::from_le_bytes([raw[20], raw[21]])) << 16
        | u32::from(u16::from_le_bytes([raw[26], raw[27]]))
}

pub fn set_first_cluster(raw: &mut Raw, cluster: u32) {
    raw[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    raw[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
}

pub fn set_size(raw: &mut Raw, size: u32) {
    raw[28..32].copy_from_slice(&size.to_le_bytes());
}

/// A short entry with `attributes` and first `cluster`, size 0, dated FAT's epoch.
pub fn new_raw(short: [u8; 11], attributes: u8, cluster: u32) -> Raw {
    let mut raw = [0u8; 32];
    raw[..11].copy_from_slice(&short);
    raw[11] = attributes;
    for at in [16, 18, 24] {
        raw[at..at + 2].copy_from_slice(&EPOCH_DATE.to_le_bytes());
    }
    set_first_cluster(&mut raw, cluster);
    raw
}

/// A directory read whole: its entries, and every slot with whether it is free.
pub struct Scan {
    pub entries: Vec<Entry>,
    slots: Vec<Slot>,
    free: Vec<bool>,
    /// The index of the end mark (the first slot of the never-used tail), if any.
    end: Option<usize>,
    last_cluster: u32,
}

/// Long-name slots seen so far, waiting for their short entry.
#[derive(Default)]
struct Pending {
    units: Vec<u16>,
    slots: Vec<Slot>,
    /// The next ordinal expected (counting down to 1), and the checksum they carry.
    expect: u8,
    sum: u8,
}

impl Pending {
    fn take(&mut self, raw: &Raw, slot: Slot) {
        let units = name::slot_units(raw);
        if raw[0] & 0x40 != 0 {
            *self = Pending {
                units: units.to_vec(),
                slots: alloc::vec![slot],
                expect: (raw[0] & 0x1f).wrapping_sub(1),
                sum: raw[13],
            };
        } else if self.expect != 0 && raw[0] == self.expect && raw[13] == self.sum {
            let mut all = units.to_vec();
            all.extend_from_slice(&self.units);
            self.units = all;
            self.slots.push(slot);
            self.expect -= 1;
        } else {
            *self = Pending::default();
        }
    }

    /// The long name for a short entry, if these slots spell one for it.
    fn finish(&mut self, short: &[u8; 11]) -> (Option<String>, Vec<Slot>) {
        let pending = core::mem::take(self);
        let complete = pending.expect == 0 && !pending.slots.is_empty();
        if complete && pending.sum == name::checksum(short) {
            (name::from_units(&pending.units), pending.slots)
        } else {
            (None, Vec::new())
        }
    }
}

impl<D: BlockDevice> Volume<D> {
    /// Read the directory whose first cluster is `first`.
    pub(crate) async fn scan(&mut self, first: u32) -> Result<Scan, Error> {
        let mut scan = Scan {
            entries: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            end: None,
            last_cluster: first,
        };
        let mut pending = Pending::default();
        let mut cluster = Some(first);
        while let Some(at) = cluster {
            if scan.slots.len() >= MAX_SLOTS {
                return Err(Error::Corrupt("a directory longer than FAT allows"));
            }
            if !self.geometry.is_data(at) {
                return Err(Error::Corrupt("a directory's cluster is out of range"));
            }
            scan.last_cluster = at;
            let base = self.geometry.cluster_sector(at);
            for sector in base..base + u64::from(self.geometry.sectors_per_cluster) {
                let bytes = match scan.end {
                    Some(_) => None,
                    None => Some(*self.sectors.get(&self.device, sector).await?),
                };
                for index in 0..SLOTS_PER_SECTOR {
                    let slot = Slot { sector, index };
                    let raw: Option<Raw> = bytes
                        .filter(|_| scan.end.is_none())
                        .map(|b| b[index * 32..][..32].try_into().expect("32 bytes"));
                    scan.visit(raw, slot, &mut pending);
                }
            }
            cluster = self.fat.next(at)?;
        }
        Ok(scan)
    }

    /// Add an entry named `name` to the directory at `first`, made from `raw` (its short
    /// name is chosen here). The entry at `except` (the one being renamed) is ignored when
    /// looking for a clash. Returns the new short slot.
    pub(crate) async fn insert(
        &mut self,
        first: u32,
        name: &str,
        mut raw: Raw,
        except: Option<Slot>,
    ) -> Result<Slot, Error> {
        let mut scan = self.scan(first).await?;
        let others = || {
            scan.entries
                .iter()
                .filter(|e| Some(e.short_slot()) != except)
        };
        if others().any(|e| name::same(&e.name, name)) {
            return Err(Error::AlreadyExists);
        }
        let taken = |short: &[u8; 11]| others().any(|e| e.raw[..11] == short[..]);
        let exact = name::exact_short(name).filter(|short| !taken(short));
        let (short, long) = match exact {
            Some(short) => (short, Vec::new()),
            None => {
                let short = (1..1_000_000)
                    .map(|n| name::alias(name, n))
                    .find(|short| !taken(short))
                    .ok_or(Error::TooLarge)?;
                (short, name::long_slots(name, &short))
            }
        };
        raw[..11].copy_from_slice(&short);
        raw[12] = 0;
        let needed = long.len() + 1;
        let start = match scan.free_run(needed) {
            Some(start) => start,
            None => {
                self.grow(&mut scan).await?;
                scan.free_run(needed).ok_or(Error::TooLarge)?
            }
        };
        for (offset, bytes) in long.iter().chain([&raw]).enumerate() {
            self.put_slot(scan.slots[start + offset], bytes).await?;
        }
        // Writing into the never-used tail moves the end mark past the new entry.
        let after = start + needed;
        if scan.end.is_some_and(|end| end < after) && after < scan.slots.len() {
            self.put_slot(scan.slots[after], &[0; 32]).await?;
        }
        Ok(scan.slots[start + needed - 1])
    }

    /// Add a zeroed cluster to a directory whose slots are all taken.
    async fn grow(&mut self, scan: &mut Scan) -> Result<(), Error> {
        let per_cluster = self.geometry.sectors_per_cluster as usize * SLOTS_PER_SECTOR;
        if scan.slots.len() + per_cluster > MAX_SLOTS {
            return Err(Error::TooLarge);
        }
        let (cluster, _) = self.fat.allocate(Some(scan.last_cluster), 1)?;
        let base = self.geometry.cluster_sector(cluster);
        if scan.end.is_none() {
            scan.end = Some(scan.slots.len());
        }
        for sector in base..base + u64::from(self.geometry.sectors_per_cluster) {
            self.sectors.zeroed(sector);
            for index in 0..SLOTS_PER_SECTOR {
                scan.slots.push(Slot { sector, index });
                scan.free.push(true);
            }
        }
        scan.last_cluster = cluster;
        Ok(())
    }

    /// Mark an entry's slots erased.
    pub(crate) async fn erase(&mut self, entry: &Entry) -> Result<(), Error> {
        for &slot in &entry.slots {
            let sector = self.sectors.get_mut(&self.device, slot.sector).await?;
            sector[slot.index * 32] = ERASED;
        }
        Ok(())
    }

    pub(crate) async fn put_slot(&mut self, slot: Slot, raw: &Raw) -> Result<(), Error> {
        let sector = self.sectors.get_mut(&self.device, slot.sector).await?;
        sector[slot.index * 32..][..32].copy_from_slice(raw);
        Ok(())
    }

    pub(crate) async fn get_slot(&mut self, slot: Slot) -> Result<Raw, Error> {
        let sector = self.sectors.get(&self.device, slot.sector).await?;
        Ok(sector[slot.index * 32..][..32]
            .try_into()
            .expect("32 bytes"))
    }
}

impl Scan {
    /// Take in one slot (`None`: past the end mark, not read).
    fn visit(&mut self, raw: Option<Raw>, slot: Slot, pending: &mut Pending) {
        self.slots.push(slot);
        let Some(raw) = raw.filter(|raw| raw[0] != 0) else {
            if raw.is_some() {
                self.end = Some(self.slots.len() - 1);
            }
            self.free.push(true);
            return;
        };
        let erased = raw[0] == ERASED;
        self.free.push(erased);
        if erased {
            *pending = Pending::default();
        } else if raw[11] & 0x3f == ATTR_LONG {
            pending.take(&raw, slot);
        } else {
            let short: [u8; 11] = raw[..11].try_into().expect("11 bytes");
            let (long, mut slots) = pending.finish(&short);
            let dots = &short == b".          " || &short == b"..         ";
            if raw[11] & ATTR_VOLUME == 0 && !dots {
                let name = long.unwrap_or_else(|| name::from_short(&short, raw[12]));
                slots.push(slot);
                self.entries.push(Entry { name, raw, slots });
            }
        }
    }

    /// The first index of `count` free slots in a row.
    fn free_run(&self, count: usize) -> Option<usize> {
        let mut run = 0;
        for (index, &free) in self.free.iter().enumerate() {
            run = if free { run + 1 } else { 0 };
            if run == count {
                return Some(index + 1 - count);
            }
        }
        None
    }

    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|entry| name::same(&entry.name, name))
    }
}
