//! The volume: paths to entries, open files and their data, and sync.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::boot::{self, Geometry};
use crate::cache::{DIRTY_LIMIT, Sectors};
use crate::dir::{self, ATTR_ARCHIVE, ATTR_DIRECTORY, Entry, Raw, Slot};
use crate::table::Fat;
use crate::{BlockDevice, Error, SECTOR, name};

/// The largest file FAT holds.
const MAX_SIZE: u64 = u32::MAX as u64;
/// Zeroes written at a time when a file grows past its end.
const ZEROES: usize = 64 * 1024;
/// How deep directories may nest before a walk up is taken for a loop.
const MAX_DEPTH: usize = 4096;

/// An open file of a [`Volume`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId(usize);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    pub name: String,
    pub stat: Stat,
}

/// Space on the volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub cluster_bytes: u32,
    pub clusters: u32,
    pub free_clusters: u32,
}

/// An open file: where its entry is, and its chain as far as known.
struct Open {
    entry: Slot,
    first: u32,
    size: u32,
    /// Clusters in its chain, and the last one.
    clusters: u32,
    last: u32,
    /// The last cluster looked up: (index in the chain, cluster).
    cursor: (u32, u32),
    opens: u32,
}

pub struct Volume<D> {
    pub(crate) device: D,
    pub(crate) geometry: Geometry,
    pub(crate) fat: Fat,
    pub(crate) sectors: Sectors,
    open: Vec<Option<Open>>,
}

fn components(path: &str) -> Result<Vec<&str>, Error> {
    let parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    parts.iter().try_for_each(|part| name::check(part))?;
    Ok(parts)
}

fn stat_of(entry: &Entry) -> Stat {
    match entry.is_dir() {
        true => Stat {
            kind: Kind::Directory,
            size: 0,
        },
        false => Stat {
            kind: Kind::File,
            size: u64::from(entry.size()),
        },
    }
}

impl<D: BlockDevice> Volume<D> {
    /// Mount the FAT32 volume that fills `device` from sector 0.
    pub async fn mount(device: D) -> Result<Volume<D>, Error> {
        let mut first = [0u8; SECTOR];
        device.read(0, &mut first).await?;
        let geometry = Geometry::parse(&first, device.sectors())?;
        let fat = Fat::load(&device, &geometry).await?;
        Ok(Volume {
            device,
            geometry,
            fat,
            sectors: Sectors::default(),
            open: Vec::new(),
        })
    }

    /// The device, for its owner (the file service closes it on the way out).
    pub fn device(&self) -> &D {
        &self.device
    }

    pub fn usage(&self) -> Usage {
        Usage {
            cluster_bytes: self.geometry.cluster_bytes(),
            clusters: self.geometry.clusters,
            free_clusters: self.fat.free(),
        }
    }

    /// The first cluster of the directory that `parts` names.
    async fn directory(&mut self, parts: &[&str]) -> Result<u32, Error> {
        let mut cluster = self.geometry.root;
        for part in parts {
            let scan = self.scan(cluster).await?;
            let entry = scan.find(part).ok_or(Error::NotFound)?;
            if !entry.is_dir() {
                return Err(Error::NotADirectory);
            }
            cluster = self.dir_cluster(entry.first_cluster())?;
        }
        Ok(cluster)
    }

    /// A directory entry's cluster; 0 (in `..`) means the root.
    fn dir_cluster(&self, cluster: u32) -> Result<u32, Error> {
        match cluster {
            0 => Ok(self.geometry.root),
            c if self.geometry.is_data(c) => Ok(c),
            _ => Err(Error::Corrupt("a directory's cluster is out of range")),
        }
    }

    /// The parent directory of `path`, its last name and the entry of that name if any.
    async fn locate<'p>(&mut self, path: &'p str) -> Result<(u32, &'p str, Option<Entry>), Error> {
        let parts = components(path)?;
        let (last, parents) = parts.split_last().ok_or(Error::InvalidPath)?;
        let parent = self.directory(parents).await?;
        let entry = self.scan(parent).await?.find(last).cloned();
        Ok((parent, last, entry))
    }

    pub async fn stat(&mut self, path: &str) -> Result<Stat, Error> {
        if components(path)?.is_empty() {
            return Ok(stat_of_root());
        }
        let (_, _, entry) = self.locate(path).await?;
        entry.as_ref().map(stat_of).ok_or(Error::NotFound)
    }

    pub async fn list(&mut self, path: &str) -> Result<Vec<Listing>, Error> {
        let parts = components(path)?;
        let cluster = self.directory(&parts).await?;
        let scan = self.scan(cluster).await?;
        let listing = scan.entries.iter().map(|entry| Listing {
            name: entry.name.clone(),
            stat: stat_of(entry),
        });
        Ok(listing.collect())
    }

    /// Open the file at `path`, creating it empty if `create` and it is not there.
    pub async fn open(&mut self, path: &str, create: bool) -> Result<FileId, Error> {
        let (parent, last, entry) = self.locate(path).await?;
        let (slot, raw) = match entry {
            Some(entry) if entry.is_dir() => return Err(Error::IsADirectory),
            Some(entry) => (entry.short_slot(), entry.raw),
            None if create => {
                let raw = dir::new_raw([b' '; 11], ATTR_ARCHIVE, 0);
                let slot = self.insert(parent, last, raw, None).await?;
                self.sync_if_full().await?;
                (slot, raw)
            }
            None => return Err(Error::NotFound),
        };
        if let Some(index) = self
            .open
            .iter()
            .position(|o| o.as_ref().is_some_and(|o| o.entry == slot))
        {
            self.open[index].as_mut().expect("found above").opens += 1;
            return Ok(FileId(index));
        }
        let open = self.opened(slot, &raw)?;
        let index = match self.open.iter().position(Option::is_none) {
            Some(index) => index,
            None => {
                self.open.push(None);
                self.open.len() - 1
            }
        };
        self.open[index] = Some(open);
        Ok(FileId(index))
    }

    /// A file's state from its entry, its chain checked against its size.
    fn opened(&self, entry: Slot, raw: &Raw) -> Result<Open, Error> {
        let first = dir::first_cluster(raw);
        let size = u32::from_le_bytes([raw[28], raw[29], raw[30], raw[31]]);
        let (clusters, last) = match first {
            0 => (0, 0),
            _ => self.fat.length(first)?,
        };
        if u64::from(clusters) * u64::from(self.geometry.cluster_bytes()) < u64::from(size) {
            return Err(Error::Corrupt("a file is larger than its chain"));
        }
        Ok(Open {
            entry,
            first,
            size,
            clusters,
            last,
            cursor: (0, first),
            opens: 1,
        })
    }

    fn file(&self, id: FileId) -> Result<&Open, Error> {
        self.open
            .get(id.0)
            .and_then(Option::as_ref)
            .ok_or(Error::BadFile)
    }

    fn file_mut(&mut self, id: FileId) -> Result<&mut Open, Error> {
        self.open
            .get_mut(id.0)
            .and_then(Option::as_mut)
            .ok_or(Error::BadFile)
    }

    /// Let go of one open of the file.
    pub fn close(&mut self, id: FileId) -> Result<(), Error> {
        let open = self.file_mut(id)?;
        open.opens -= 1;
        if open.opens == 0 {
            self.open[id.0] = None;
        }
        Ok(())
    }

    pub fn size(&self, id: FileId) -> Result<u64, Error> {
        Ok(u64::from(self.file(id)?.size))
    }

    /// The `index`th cluster of an open file's chain (which must have it).
    fn cluster_at(&mut self, id: FileId, index: u32) -> Result<u32, Error> {
        let open = self.file(id)?;
        let (at, from) = match open.cursor {
            (at, from) if at <= index && from != 0 => (at, from),
            _ => (0, open.first),
        };
        let cluster = self.fat.walk(from, at, index)?;
        self.file_mut(id)?.cursor = (index, cluster);
        Ok(cluster)
    }

    /// Read from `offset` into `buf`; returns how many bytes (0 at or past the end).
    pub async fn read(&mut self, id: FileId, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let size = self.size(id)?;
        let count = (buf.len() as u64).min(size.saturating_sub(offset)) as usize;
        let mut done = 0;
        while done < count {
            let (sector, skip, span) = self.extent(id, offset + done as u64, count - done)?;
            read_span(&self.device, sector, skip, &mut buf[done..done + span]).await?;
            done += span;
        }
        Ok(count)
    }

    /// Write `data` at `offset`, growing the file (with zeroes up to `offset`) as needed.
    pub async fn write(&mut self, id: FileId, offset: u64, data: &[u8]) -> Result<(), Error> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&end| end <= MAX_SIZE);
        let end = end.ok_or(Error::TooLarge)?;
        let size = self.size(id)?;
        if offset > size {
            self.fill(id, size, offset).await?;
        }
        self.put(id, offset, data).await?;
        if end > size {
            self.file_mut(id)?.size = end as u32;
            self.store(id).await?;
        }
        Ok(())
    }

    /// Write zeroes over `from..to`, growing the file to `to`.
    async fn fill(&mut self, id: FileId, from: u64, to: u64) -> Result<(), Error> {
        let zeroes = vec![0u8; ZEROES.min((to - from) as usize)];
        let mut at = from;
        while at < to {
            let span = zeroes.len().min((to - at) as usize);
            self.put(id, at, &zeroes[..span]).await?;
            at += span as u64;
        }
        Ok(())
    }

    /// Write `data` at `offset` into the file's clusters, allocating what it lacks.
    async fn put(&mut self, id: FileId, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.reserve(id, offset + data.len() as u64).await?;
        let mut done = 0;
        while done < data.len() {
            let (sector, skip, span) = self.extent(id, offset + done as u64, data.len() - done)?;
            write_span(&self.device, sector, skip, &data[done..done + span]).await?;
            done += span;
        }
        Ok(())
    }

    /// Make the file's chain long enough for `bytes` bytes.
    async fn reserve(&mut self, id: FileId, bytes: u64) -> Result<(), Error> {
        let cluster_bytes = u64::from(self.geometry.cluster_bytes());
        let needed = bytes.div_ceil(cluster_bytes) as u32;
        let open = self.file(id)?;
        if needed <= open.clusters {
            return Ok(());
        }
        let (had, last) = (open.clusters, open.last);
        let (first, last) = self.fat.allocate((had > 0).then_some(last), needed - had)?;
        let open = self.file_mut(id)?;
        if had == 0 {
            open.first = first;
            open.cursor = (0, first);
        }
        open.clusters = needed;
        open.last = last;
        self.store(id).await
    }

    /// Where the bytes at `offset` lie: (first sector, bytes to skip in it, how many of
    /// `len` lie contiguously on the disk from there).
    fn extent(
        &mut self,
        id: FileId,
        offset: u64,
        len: usize,
    ) -> Result<(u64, usize, usize), Error> {
        let cluster_bytes = u64::from(self.geometry.cluster_bytes());
        let index = (offset / cluster_bytes) as u32;
        let within = offset % cluster_bytes;
        let cluster = self.cluster_at(id, index)?;
        let wanted = (within + len as u64).div_ceil(cluster_bytes) as u32;
        let run = self.fat.run(cluster, wanted)?;
        let span = (u64::from(run) * cluster_bytes - within).min(len as u64) as usize;
        // The run is contiguous: its last cluster is `run - 1` after its first.
        self.file_mut(id)?.cursor = (index + run - 1, cluster + run - 1);
        let sector = self.geometry.cluster_sector(cluster) + within / SECTOR as u64;
        Ok((sector, (within % SECTOR as u64) as usize, span))
    }

    /// Write an open file's size and first cluster into its entry (in the cache).
    async fn store(&mut self, id: FileId) -> Result<(), Error> {
        let open = self.file(id)?;
        let (slot, first, size) = (open.entry, open.first, open.size);
        let mut raw = self.get_slot(slot).await?;
        dir::set_first_cluster(&mut raw, first);
        dir::set_size(&mut raw, size);
        raw[11] |= ATTR_ARCHIVE;
        self.put_slot(slot, &raw).await
    }

    /// Cut the file to `len` bytes, or grow it with zeroes.
    pub async fn truncate(&mut self, id: FileId, len: u64) -> Result<(), Error> {
        let size = self.size(id)?;
        if len > MAX_SIZE {
            return Err(Error::TooLarge);
        }
        if len > size {
            self.fill(id, size, len).await?;
        } else {
            let keep = len.div_ceil(u64::from(self.geometry.cluster_bytes())) as u32;
            let open = self.file(id)?;
            let (first, clusters) = (open.first, open.clusters);
            if keep < clusters {
                let last = match keep {
                    0 => None,
                    _ => Some(self.cluster_at(id, keep - 1)?),
                };
                let rest = match last {
                    Some(last) => self
                        .fat
                        .next(last)?
                        .ok_or(Error::Corrupt("a chain ended early"))?,
                    None => first,
                };
                self.fat.release(last, rest)?;
                let open = self.file_mut(id)?;
                open.clusters = keep;
                open.last = last.unwrap_or(0);
                if keep == 0 {
                    open.first = 0;
                }
                open.cursor = (0, open.first);
            }
        }
        self.file_mut(id)?.size = len as u32;
        self.store(id).await
    }

    pub async fn mkdir(&mut self, path: &str) -> Result<(), Error> {
        let (parent, last, entry) = self.locate(path).await?;
        if entry.is_some() {
            return Err(Error::AlreadyExists);
        }
        let (cluster, _) = self.fat.allocate(None, 1)?;
        let base = self.geometry.cluster_sector(cluster);
        for sector in base..base + u64::from(self.geometry.sectors_per_cluster) {
            self.sectors.zeroed(sector);
        }
        let up = if parent == self.geometry.root {
            0
        } else {
            parent
        };
        let dot = dir::new_raw(*b".          ", ATTR_DIRECTORY, cluster);
        let dotdot = dir::new_raw(*b"..         ", ATTR_DIRECTORY, up);
        self.put_slot(
            Slot {
                sector: base,
                index: 0,
            },
            &dot,
        )
        .await?;
        self.put_slot(
            Slot {
                sector: base,
                index: 1,
            },
            &dotdot,
        )
        .await?;
        let raw = dir::new_raw([b' '; 11], ATTR_DIRECTORY, cluster);
        if let Err(error) = self.insert(parent, last, raw, None).await {
            self.fat.release(None, cluster)?;
            return Err(error);
        }
        self.sync_if_full().await
    }

    /// Remove a file (not open) or an empty directory.
    pub async fn remove(&mut self, path: &str) -> Result<(), Error> {
        let (_, _, entry) = self.locate(path).await?;
        let entry = entry.ok_or(Error::NotFound)?;
        let first = entry.first_cluster();
        if entry.is_dir() {
            let cluster = self.dir_cluster(first)?;
            if !self.scan(cluster).await?.entries.is_empty() {
                return Err(Error::DirectoryNotEmpty);
            }
        } else if self
            .open
            .iter()
            .flatten()
            .any(|open| open.entry == entry.short_slot())
        {
            return Err(Error::Busy);
        }
        self.erase(&entry).await?;
        if first != 0 {
            self.fat.release(None, first)?;
        }
        self.sync_if_full().await
    }

    /// Move `from` to `to`, whose parent must exist and which must not.
    pub async fn rename(&mut self, from: &str, to: &str) -> Result<(), Error> {
        let (from_parent, _, entry) = self.locate(from).await?;
        let entry = entry.ok_or(Error::NotFound)?;
        let (to_parent, to_name, existing) = self.locate(to).await?;
        if existing.is_some_and(|e| e.short_slot() != entry.short_slot()) {
            return Err(Error::AlreadyExists);
        }
        let moved_dir = entry.is_dir().then_some(entry.first_cluster());
        if let Some(cluster) = moved_dir {
            self.refuse_into_itself(cluster, to_parent).await?;
        }
        let slot = self
            .insert(to_parent, to_name, entry.raw, Some(entry.short_slot()))
            .await?;
        self.erase(&entry).await?;
        for open in self.open.iter_mut().flatten() {
            if open.entry == entry.short_slot() {
                open.entry = slot;
            }
        }
        if let Some(cluster) = moved_dir.filter(|_| from_parent != to_parent) {
            let dotdot = Slot {
                sector: self.geometry.cluster_sector(self.dir_cluster(cluster)?),
                index: 1,
            };
            let mut raw = self.get_slot(dotdot).await?;
            let up = if to_parent == self.geometry.root {
                0
            } else {
                to_parent
            };
            dir::set_first_cluster(&mut raw, up);
            self.put_slot(dotdot, &raw).await?;
        }
        self.sync_if_full().await
    }

    /// Fail if the directory at `cluster` is `into` or one of its ancestors.
    async fn refuse_into_itself(&mut self, cluster: u32, into: u32) -> Result<(), Error> {
        let cluster = self.dir_cluster(cluster)?;
        let mut at = into;
        for _ in 0..MAX_DEPTH {
            if at == cluster {
                return Err(Error::InvalidPath);
            }
            if at == self.geometry.root {
                return Ok(());
            }
            let dotdot = Slot {
                sector: self.geometry.cluster_sector(at),
                index: 1,
            };
            let up = dir::first_cluster(&self.get_slot(dotdot).await?);
            at = self.dir_cluster(up)?;
        }
        Err(Error::Corrupt("directories nest in a loop"))
    }

    /// Make everything done so far durable: file data, then the FATs, the directories and
    /// FSInfo, each step flushed before the next refers to it.
    pub async fn sync(&mut self) -> Result<(), Error> {
        self.device.flush().await?;
        self.fat.write_back(&self.device, &self.geometry).await?;
        self.sectors.write_back(&self.device).await?;
        // What was freed is free on disk now: it may be reused, and FSInfo counts it.
        self.fat.release_held();
        if let Some(sector) = self.geometry.info_sector {
            let info = boot::info_sector(self.fat.free(), self.fat.hint());
            self.device.write(sector, &info).await?;
        }
        self.device.flush().await
    }

    /// Sync when the directory cache holds more changes than it should.
    async fn sync_if_full(&mut self) -> Result<(), Error> {
        if self.sectors.dirty() > DIRTY_LIMIT {
            self.sync().await?;
        }
        Ok(())
    }
}

fn stat_of_root() -> Stat {
    Stat {
        kind: Kind::Directory,
        size: 0,
    }
}

/// Read `buf.len()` bytes that start `skip` bytes into `sector`: whole sectors straight
/// into `buf`, a partial first or last one through a sector of its own.
async fn read_span(
    device: &impl BlockDevice,
    mut sector: u64,
    skip: usize,
    mut buf: &mut [u8],
) -> Result<(), Error> {
    let mut bounce = [0u8; SECTOR];
    if skip != 0 || buf.len() < SECTOR {
        let take = buf.len().min(SECTOR - skip);
        device.read(sector, &mut bounce).await?;
        buf[..take].copy_from_slice(&bounce[skip..skip + take]);
        sector += 1;
        buf = &mut buf[take..];
    }
    let whole = buf.len() / SECTOR * SECTOR;
    if whole > 0 {
        device.read(sector, &mut buf[..whole]).await?;
    }
    if whole < buf.len() {
        device
            .read(sector + (whole / SECTOR) as u64, &mut bounce)
            .await?;
        let rest = buf.len() - whole;
        buf[whole..].copy_from_slice(&bounce[..rest]);
    }
    Ok(())
}

/// Write `data` from `skip` bytes into `sector` on, keeping the bytes around it.
async fn write_span(
    device: &impl BlockDevice,
    mut sector: u64,
    skip: usize,
    mut data: &[u8],
) -> Result<(), Error> {
    if skip != 0 || data.len() < SECTOR {
        let take = data.len().min(SECTOR - skip);
        patch(device, sector, skip, &data[..take]).await?;
        sector += 1;
        data = &data[take..];
    }
    let whole = data.len() / SECTOR * SECTOR;
    if whole > 0 {
        device.write(sector, &data[..whole]).await?;
    }
    if whole < data.len() {
        patch(device, sector + (whole / SECTOR) as u64, 0, &data[whole..]).await?;
    }
    Ok(())
}

/// Change part of one sector: read it, change it, write it whole.
async fn patch(
    device: &impl BlockDevice,
    sector: u64,
    skip: usize,
    bytes: &[u8],
) -> Result<(), Error> {
    let mut whole = [0u8; SECTOR];
    device.read(sector, &mut whole).await?;
    whole[skip..skip + bytes.len()].copy_from_slice(bytes);
    device.write(sector, &whole).await
}
