//! Directory sectors, read on first use and written back at sync: the directories on
//! disk change only when the volume syncs.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::{BlockDevice, Error, SECTOR};

/// Clean sectors kept beyond this many are dropped (the dirty ones stay until sync).
const KEEP: usize = 4096;
/// Dirty sectors beyond this many make the volume sync on its own.
pub const DIRTY_LIMIT: usize = 2048;

struct Cached {
    bytes: Box<[u8; SECTOR]>,
    dirty: bool,
}

#[derive(Default)]
pub struct Sectors {
    map: BTreeMap<u64, Cached>,
    dirty: usize,
}

impl Sectors {
    /// The sector, read from the device if it is not here.
    pub async fn get(
        &mut self,
        device: &impl BlockDevice,
        sector: u64,
    ) -> Result<&[u8; SECTOR], Error> {
        Ok(&self.entry(device, sector).await?.bytes)
    }

    /// The sector to change; it will be written at the next sync.
    pub async fn get_mut(
        &mut self,
        device: &impl BlockDevice,
        sector: u64,
    ) -> Result<&mut [u8; SECTOR], Error> {
        self.entry(device, sector).await?;
        Ok(self.mark(sector))
    }

    /// A sector whose old contents do not matter (a new directory cluster): zeroes, dirty.
    pub fn zeroed(&mut self, sector: u64) -> &mut [u8; SECTOR] {
        let cached = Cached {
            bytes: Box::new([0; SECTOR]),
            dirty: false,
        };
        self.map.insert(sector, cached);
        self.mark(sector)
    }

    fn mark(&mut self, sector: u64) -> &mut [u8; SECTOR] {
        let cached = self
            .map
            .get_mut(&sector)
            .expect("the sector was just cached");
        if !cached.dirty {
            cached.dirty = true;
            self.dirty += 1;
        }
        &mut cached.bytes
    }

    async fn entry(
        &mut self,
        device: &impl BlockDevice,
        sector: u64,
    ) -> Result<&mut Cached, Error> {
        if !self.map.contains_key(&sector) {
            if self.map.len() >= KEEP {
                self.map.retain(|_, cached| cached.dirty);
            }
            let mut bytes = Box::new([0; SECTOR]);
            device.read(sector, &mut bytes[..]).await?;
            self.map.insert(
                sector,
                Cached {
                    bytes,
                    dirty: false,
                },
            );
        }
        Ok(self
            .map
            .get_mut(&sector)
            .expect("the sector was just cached"))
    }

    pub fn dirty(&self) -> usize {
        self.dirty
    }

    /// Write every dirty sector, neighbours in one request.
    pub async fn write_back(&mut self, device: &impl BlockDevice) -> Result<(), Error> {
        let dirty: Vec<u64> = self
            .map
            .iter()
            .filter(|(_, c)| c.dirty)
            .map(|(&s, _)| s)
            .collect();
        let mut at = 0;
        while at < dirty.len() {
            let mut end = at + 1;
            while end < dirty.len() && dirty[end] == dirty[end - 1] + 1 && end - at < 128 {
                end += 1;
            }
            let bytes: Vec<u8> = dirty[at..end]
                .iter()
                .flat_map(|sector| self.map[sector].bytes.iter().copied())
                .collect();
            device.write(dirty[at], &bytes).await?;
            for sector in &dirty[at..end] {
                self.map.get_mut(sector).expect("listed above").dirty = false;
            }
            self.dirty -= end - at;
            at = end;
        }
        Ok(())
    }
}
