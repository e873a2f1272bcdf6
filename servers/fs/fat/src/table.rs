//! The file allocation table, held whole in memory: chains, allocation, and the sectors
//! to write back at sync. Clusters freed since the last sync are held back from
//! allocation until the sync that frees them on disk.

use alloc::vec;
use alloc::vec::Vec;

use crate::boot::Geometry;
use crate::{BlockDevice, Error, SECTOR};

/// Entries in one FAT sector.
const PER_SECTOR: usize = SECTOR / 4;
/// The end-of-chain mark this crate writes; anything from 0x0fff_fff8 up ends a chain.
const END: u32 = 0x0fff_ffff;
const MASK: u32 = 0x0fff_ffff;
/// Sectors read or written in one device request.
const BATCH: usize = 128;

pub struct Fat {
    /// Every entry as on disk, top four bits included (they are kept as found).
    entries: Vec<u32>,
    /// Sectors of the FAT changed since the last sync.
    dirty: Vec<bool>,
    /// Clusters freed since the last sync, not to be handed out before it.
    held: Vec<bool>,
    /// How many are held.
    held_count: u32,
    /// Free clusters on disk after the next sync, held ones included.
    free: u32,
    /// Where the search for a free cluster starts.
    next: u32,
    clusters: u32,
}

impl Fat {
    /// Read the first FAT of the volume.
    pub async fn load(device: &impl BlockDevice, geometry: &Geometry) -> Result<Fat, Error> {
        let sectors = geometry.fat_sectors as usize;
        let mut bytes = vec![0u8; sectors * SECTOR];
        for (index, chunk) in bytes.chunks_mut(BATCH * SECTOR).enumerate() {
            let sector = geometry.fat_start + (index * BATCH) as u64;
            device.read(sector, chunk).await?;
        }
        let entries: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|e| u32::from_le_bytes([e[0], e[1], e[2], e[3]]))
            .collect();
        let clusters = geometry.clusters;
        let free = (2..clusters + 2)
            .filter(|&c| entries[c as usize] & MASK == 0)
            .count() as u32;
        Ok(Fat {
            entries,
            dirty: vec![false; sectors],
            held: vec![false; clusters as usize + 2],
            held_count: 0,
            free,
            next: 2,
            clusters,
        })
    }

    fn is_data(&self, cluster: u32) -> bool {
        (2..self.clusters + 2).contains(&cluster)
    }

    /// The cluster after `cluster` in its chain, `None` at the end.
    pub fn next(&self, cluster: u32) -> Result<Option<u32>, Error> {
        if !self.is_data(cluster) {
            return Err(Error::Corrupt("a chain names a cluster out of range"));
        }
        match self.entries[cluster as usize] & MASK {
            0x0fff_fff8.. => Ok(None),
            next if self.is_data(next) => Ok(Some(next)),
            0 => Err(Error::Corrupt("a chain runs into a free cluster")),
            _ => Err(Error::Corrupt("a chain names a cluster out of range")),
        }
    }

    /// The `index`th cluster of the chain that `from` is the `at`th of.
    pub fn walk(&self, mut from: u32, mut at: u32, index: u32) -> Result<u32, Error> {
        while at < index {
            from = self
                .next(from)?
                .ok_or(Error::Corrupt("a chain is shorter than its file"))?;
            at += 1;
        }
        Ok(from)
    }

    /// How many clusters follow `cluster` contiguously in its chain, up to `limit`.
    pub fn run(&self, cluster: u32, limit: u32) -> Result<u32, Error> {
        if !self.is_data(cluster) {
            return Err(Error::Corrupt("a chain names a cluster out of range"));
        }
        // An entry naming the next cluster up is a link to a data cluster while that one
        // is below the end: nothing more to check on the way.
        let end = self.clusters + 2;
        let (mut at, mut length) = (cluster, 1);
        while length < limit && at + 1 < end && self.entries[at as usize] & MASK == at + 1 {
            at += 1;
            length += 1;
        }
        Ok(length)
    }

    /// How many clusters a chain from `first` has, and its last; an error for one that
    /// leaves the data clusters or loops (it would be longer than the volume).
    pub fn length(&self, first: u32) -> Result<(u32, u32), Error> {
        if !self.is_data(first) {
            return Err(Error::Corrupt("a chain names a cluster out of range"));
        }
        let (mut at, mut length) = (first, 1);
        loop {
            match self.entries[at as usize] & MASK {
                0x0fff_fff8.. => return Ok((length, at)),
                next if self.is_data(next) => at = next,
                _ => return Err(Error::Corrupt("a chain runs into a free or bad cluster")),
            }
            length += 1;
            if length > self.clusters {
                return Err(Error::Corrupt("a chain loops"));
            }
        }
    }

    fn set(&mut self, cluster: u32, value: u32) {
        let slot = &mut self.entries[cluster as usize];
        *slot = (*slot & !MASK) | value;
        self.dirty[cluster as usize / PER_SECTOR] = true;
    }

    /// Clusters free for allocation now.
    pub fn free(&self) -> u32 {
        self.free - self.held_count
    }

    /// Take `count` (at least one) free clusters and chain them after `last` (or as a new
    /// chain); returns the first and the last of them. Fails without taking any when too
    /// few are free.
    pub fn allocate(&mut self, last: Option<u32>, count: u32) -> Result<(u32, u32), Error> {
        if count == 0 || count > self.free() {
            return Err(Error::NoSpace);
        }
        let end = self.clusters + 2;
        let mut at = self.next.clamp(2, end - 1);
        let (mut first, mut previous) = (None, last);
        // `free()` counted them, so a lap finds them all; the bound only guards that count.
        let mut steps = 0;
        for _ in 0..count {
            while self.entries[at as usize] & MASK != 0 || self.held[at as usize] {
                at = if at + 1 == end { 2 } else { at + 1 };
                steps += 1;
                if steps > 2 * self.clusters {
                    return Err(Error::Corrupt("the free count does not match the FAT"));
                }
            }
            self.set(at, END);
            if let Some(previous) = previous {
                self.set(previous, at);
            }
            first.get_or_insert(at);
            previous = Some(at);
            at = if at + 1 == end { 2 } else { at + 1 };
        }
        self.free -= count;
        self.next = at;
        Ok((first.unwrap_or(at), previous.unwrap_or(at)))
    }

    /// Free the chain from `first` on, and end the chain at `last` if given. The chain is
    /// checked whole first, so a damaged one is freed not at all.
    pub fn release(&mut self, last: Option<u32>, first: u32) -> Result<(), Error> {
        let (length, _) = self.length(first)?;
        let mut at = first;
        for _ in 0..length {
            let next = self.entries[at as usize] & MASK;
            self.set(at, 0);
            self.held[at as usize] = true;
            at = next;
        }
        self.held_count += length;
        self.free += length;
        if let Some(last) = last {
            self.set(last, END);
        }
        Ok(())
    }

    /// Write the changed sectors to every FAT copy, then let the held clusters go.
    pub async fn write_back(
        &mut self,
        device: &impl BlockDevice,
        geometry: &Geometry,
    ) -> Result<(), Error> {
        let mut sector = 0;
        while sector < self.dirty.len() {
            if !self.dirty[sector] {
                sector += 1;
                continue;
            }
            let end = (sector..self.dirty.len().min(sector + BATCH))
                .take_while(|&s| self.dirty[s])
                .last()
                .map_or(sector + 1, |s| s + 1);
            let bytes: Vec<u8> = self.entries[sector * PER_SECTOR..end * PER_SECTOR]
                .iter()
                .flat_map(|entry| entry.to_le_bytes())
                .collect();
            for copy in 0..geometry.fats {
                let at = geometry.fat_start + u64::from(copy * geometry.fat_sectors);
                device.write(at + sector as u64, &bytes).await?;
            }
            self.dirty[sector..end].fill(false);
            sector = end;
        }
        Ok(())
    }

    /// After a sync: the clusters freed before it may be reused.
    pub fn release_held(&mut self) {
        self.held.fill(false);
        self.held_count = 0;
    }

    /// Where the next search for a free cluster starts (for FSInfo).
    pub fn hint(&self) -> u32 {
        self.next
    }
}
