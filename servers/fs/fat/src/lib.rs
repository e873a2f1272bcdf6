//! FAT32, for the file service: a [`Volume`] over any [`BlockDevice`], async so that the
//! device can be a service call away. Directories and files with long names; open, read,
//! write, truncate, rename, remove, list, stat, sync. Why FAT32 and why written here:
//! docs/decisions/010-file-system-format.md.
//!
//! Nothing read from the disk is trusted: a cluster number out of range, a chain that
//! loops or ends early, a boot sector that does not add up are [`Error::Corrupt`], never a
//! panic. Metadata (the FAT, directories) is written back only at [`Volume::sync`], so
//! the disk holds the last synced state plus file data, and clusters freed since the last
//! sync are not reused before the next one (docs/STORAGE.md, "Files").
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod boot;
mod cache;
mod dir;
mod file;
mod name;
mod table;
mod volume;

pub use volume::{FileId, Kind, Listing, Stat, Usage, Volume};

/// Bytes in a sector: the only sector size the volume and the device may have.
pub const SECTOR: usize = 512;

/// Why an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    NotFound,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    DirectoryNotEmpty,
    /// A name FAT cannot hold (empty, too long, a reserved character, `.` or `..`).
    InvalidName,
    /// The operation makes no sense on this path (renaming a directory into itself,
    /// removing the root).
    InvalidPath,
    NoSpace,
    /// Past FAT's 4 GiB - 1 file size, or a directory's 65,536 entries.
    TooLarge,
    /// The file is open: it cannot be removed.
    Busy,
    /// No such open file.
    BadFile,
    /// The disk holds something FAT does not allow; the text says what.
    Corrupt(&'static str),
    /// A volume this crate does not handle (sector size, FAT12/16, FAT mirroring off).
    Unsupported(&'static str),
    /// The device failed the request.
    Device,
}

/// A disk of 512-byte sectors. Buffers are whole sectors: `len` a multiple of [`SECTOR`].
///
/// The futures need not be `Send`: a Keel server runs them on its one-thread executor.
#[allow(async_fn_in_trait)]
pub trait BlockDevice {
    /// How many sectors the device has.
    fn sectors(&self) -> u64;
    /// Read `buf.len() / SECTOR` sectors from `sector` on.
    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), Error>;
    /// Write `buf.len() / SECTOR` sectors from `sector` on.
    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), Error>;
    /// Return once everything written before is on stable storage.
    async fn flush(&self) -> Result<(), Error>;
}
