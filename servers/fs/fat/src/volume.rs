//! The volume: paths to entries, directories, open files, and sync (their data: `file`).

use alloc::string::String;
use alloc::vec::Vec;

use crate::boot::{self, Geometry};
use crate::cache::{DIRTY_LIMIT, Sectors};
use crate::dir::{self, ATTR_ARCHIVE, ATTR_DIRECTORY, Entry, Raw, Slot};
use crate::table::Fat;
use crate::{BlockDevice, Error, SECTOR, name};

/// The largest file FAT holds.
pub(crate) const MAX_SIZE: u64 = u32::MAX as u64;
/// How deep directories may nest before a walk up is taken for a loop.
const MAX_DEPTH: usize = 4096;

/// An open file of a [`Volume`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId(pub(crate) usize);

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
pub(crate) struct Open {
    pub(crate) entry: Slot,
    pub(crate) first: u32,
    pub(crate) size: u32,
    /// Clusters in its chain, and the last one.
    pub(crate) clusters: u32,
    pub(crate) last: u32,
    /// The last cluster looked up: (index in the chain, cluster).
    pub(crate) cursor: (u32, u32),
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

    pub(crate) fn file(&self, id: FileId) -> Result<&Open, Error> {
        self.open
            .get(id.0)
            .and_then(Option::as_ref)
            .ok_or(Error::BadFile)
    }

    pub(crate) fn file_mut(&mut self, id: FileId) -> Result<&mut Open, Error> {
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
