//! The boot sector: where the FATs, the data area and the root directory are, checked
//! against each other and against the device before anything else is read.

use crate::{Error, SECTOR};

/// A FAT32 volume's layout, in sectors and clusters.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    pub sectors_per_cluster: u32,
    /// First sector of the first FAT.
    pub fat_start: u64,
    /// Sectors in one FAT.
    pub fat_sectors: u32,
    /// How many copies of the FAT (1 or 2): all are written alike.
    pub fats: u32,
    /// First sector of cluster 2.
    pub data_start: u64,
    /// Data clusters: valid cluster numbers are `2..clusters + 2`.
    pub clusters: u32,
    /// The root directory's first cluster.
    pub root: u32,
    /// The FSInfo sector, if the volume has a usable one.
    pub info_sector: Option<u64>,
}

/// Fewest clusters a FAT32 volume may have; fewer make it FAT16 by definition.
const MIN_CLUSTERS: u32 = 65_525;
/// A FAT larger than this is not loaded into memory (16 MiB: a 2 TiB volume).
const MAX_FAT_SECTORS: u32 = 32_768;

fn u16_at(sector: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([sector[at], sector[at + 1]]))
}

fn u32_at(sector: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([sector[at], sector[at + 1], sector[at + 2], sector[at + 3]])
}

impl Geometry {
    /// Read the boot sector of a device of `device_sectors` sectors.
    pub fn parse(sector: &[u8; SECTOR], device_sectors: u64) -> Result<Geometry, Error> {
        let corrupt = |why| Err(Error::Corrupt(why));
        if sector[510..512] != [0x55, 0xaa] {
            return corrupt("no boot sector signature");
        }
        if u16_at(sector, 11) != SECTOR as u32 {
            return Err(Error::Unsupported("a sector size other than 512"));
        }
        let sectors_per_cluster = u32::from(sector[13]);
        if !sectors_per_cluster.is_power_of_two() || sectors_per_cluster > 128 {
            return corrupt("sectors per cluster is not a power of two up to 128");
        }
        let reserved = u16_at(sector, 14);
        let fats = u32::from(sector[16]);
        if reserved == 0 || !(1..=2).contains(&fats) {
            return corrupt("no reserved sectors, or not 1 or 2 FATs");
        }
        if u16_at(sector, 17) != 0 || u16_at(sector, 22) != 0 {
            return Err(Error::Unsupported("FAT12 or FAT16"));
        }
        let total = match u16_at(sector, 19) {
            0 => u32_at(sector, 32),
            small => small,
        };
        let fat_sectors = u32_at(sector, 36);
        if u16_at(sector, 40) & 0x80 != 0 {
            return Err(Error::Unsupported("FAT mirroring turned off"));
        }
        let root = u32_at(sector, 44) & 0x0fff_ffff;
        let info = u16_at(sector, 48);
        if u64::from(total) > device_sectors {
            return corrupt("the volume is larger than the device");
        }
        let data_start = u64::from(reserved) + u64::from(fats) * u64::from(fat_sectors);
        if fat_sectors == 0 || fat_sectors > MAX_FAT_SECTORS || data_start >= u64::from(total) {
            return corrupt("the FATs do not fit the volume");
        }
        let clusters = ((u64::from(total) - data_start) / u64::from(sectors_per_cluster)) as u32;
        if clusters < MIN_CLUSTERS {
            return Err(Error::Unsupported("FAT12 or FAT16"));
        }
        // The FAT must have an entry for every cluster (and the two reserved ones).
        if u64::from(fat_sectors) * (SECTOR as u64 / 4) < u64::from(clusters) + 2 {
            return corrupt("the FAT is too small for the data area");
        }
        if root < 2 || root >= clusters + 2 {
            return corrupt("the root directory's cluster is out of range");
        }
        let info_sector =
            (info != 0 && info != 0xffff && info < reserved).then_some(u64::from(info));
        Ok(Geometry {
            sectors_per_cluster,
            fat_start: u64::from(reserved),
            fat_sectors,
            fats,
            data_start,
            clusters,
            root,
            info_sector,
        })
    }

    /// Bytes in a cluster.
    pub fn cluster_bytes(&self) -> u32 {
        self.sectors_per_cluster * SECTOR as u32
    }

    /// The first sector of `cluster`, which must be in range.
    pub fn cluster_sector(&self, cluster: u32) -> u64 {
        self.data_start + u64::from(cluster - 2) * u64::from(self.sectors_per_cluster)
    }

    /// Whether `cluster` names a data cluster.
    pub fn is_data(&self, cluster: u32) -> bool {
        (2..self.clusters + 2).contains(&cluster)
    }
}

/// The FSInfo sector for `free` clusters, the next search starting at `next`.
pub fn info_sector(free: u32, next: u32) -> [u8; SECTOR] {
    let mut sector = [0u8; SECTOR];
    sector[0..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
    sector[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
    sector[488..492].copy_from_slice(&free.to_le_bytes());
    sector[492..496].copy_from_slice(&next.to_le_bytes());
    sector[508..512].copy_from_slice(&0xaa55_0000u32.to_le_bytes());
    sector
}
