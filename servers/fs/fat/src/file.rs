//! An open file's data: where its bytes lie on the disk, reading and writing them,
//! growing and cutting its chain.

use alloc::vec;

use crate::dir::{self, ATTR_ARCHIVE};
use crate::volume::{FileId, MAX_SIZE, Volume};
use crate::{BlockDevice, Error, SECTOR};

/// Zeroes written at a time when a file grows past its end.
const ZEROES: usize = 64 * 1024;

impl<D: BlockDevice> Volume<D> {
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
        // Writing nothing changes nothing, even past the end.
        if data.is_empty() {
            return Ok(());
        }
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
