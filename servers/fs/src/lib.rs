//! The Files service: what the `fs` server offers, and [`Files`], a client's session with it.
//!
//! A client begins a *session*, handing the server a send capability to a port of its own:
//! the session lasts while that port does (the server looks every 100 ms), so a client that
//! goes away takes its open files with it. The server answers with a *data region*, memory
//! it made and shares with the client: file data moves through it, never through a request,
//! and the server copies it once, between the region and the block driver's DMA region
//! (docs/STORAGE.md, "Files").
//!
//! ```ignore
//! let files = Files::begin().await?;
//! let file = files.open("/notes.txt", true).await?;
//! files.write(file, b"hello").await?;
//! files.sync().await?;
//! ```
#![no_std]

extern crate alloc;

mod session;

use alloc::string::String;
use alloc::vec::Vec;
use keel_rt::serde::{Deserialize, Serialize};
use keel_rt::service::Cap;

pub use session::{Error, Files};

/// The name the server registers under.
pub const NAME: &str = "fs";
/// The data region each session gets (1 MiB): the most one read or write moves.
pub const REGION_LEN: u64 = 1 << 20;
/// The label of the message that carries a session's region to the client's port.
pub const REGION_LABEL: u32 = 0x4653_5247;
/// Files one session may hold open at once.
pub const MAX_OPEN: usize = 64;
/// Sessions the server holds at once.
pub const MAX_SESSIONS: usize = 8;
/// The longest path the server takes, in bytes.
pub const MAX_PATH: usize = 1024;

/// Why a request failed. A refused request changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "keel_rt::serde")]
pub enum FsError {
    NotFound,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    DirectoryNotEmpty,
    /// A name FAT cannot hold, or a path longer than [`MAX_PATH`].
    InvalidName,
    /// The operation makes no sense on this path (the root, a directory into itself).
    InvalidPath,
    NoSpace,
    /// Past FAT's 4 GiB file size, a directory's 65,536 entries, or the data region.
    TooLarge,
    /// The file is open: it cannot be removed.
    Busy,
    /// No such session (never begun, ended, or its client is gone).
    BadSession,
    /// No such open file in this session.
    BadHandle,
    /// More than [`MAX_OPEN`] files, or [`MAX_SESSIONS`] sessions.
    TooMany,
    /// A seek before the start of the file.
    BadSeek,
    /// The disk holds something FAT does not allow.
    Corrupt,
    /// The block device failed, and retrying did not help.
    Device,
    /// The server has no disk it can use (none, or not FAT32).
    NoDisk,
}

impl core::fmt::Display for FsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            FsError::NotFound => "no such file or directory",
            FsError::AlreadyExists => "it already exists",
            FsError::NotADirectory => "not a directory",
            FsError::IsADirectory => "is a directory",
            FsError::DirectoryNotEmpty => "the directory is not empty",
            FsError::InvalidName => "not a name FAT can hold",
            FsError::InvalidPath => "not a path this works on",
            FsError::NoSpace => "no space left on the disk",
            FsError::TooLarge => "too large",
            FsError::Busy => "the file is open",
            FsError::BadSession => "no such session",
            FsError::BadHandle => "no such open file",
            FsError::TooMany => "too many open files or sessions",
            FsError::BadSeek => "a position before the start of the file",
            FsError::Corrupt => "the disk is corrupt",
            FsError::Device => "the disk failed",
            FsError::NoDisk => "no usable disk",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "keel_rt::serde")]
pub enum Kind {
    File,
    Directory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "keel_rt::serde")]
pub struct Stat {
    pub kind: Kind,
    pub size: u64,
}

/// One entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "keel_rt::serde")]
pub struct Entry {
    pub name: String,
    pub stat: Stat,
}

/// Space on the disk, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "keel_rt::serde")]
pub struct Usage {
    pub total: u64,
    pub free: u64,
}

/// Where a seek counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "keel_rt::serde")]
pub enum Whence {
    Start,
    Current,
    End,
}

/// A session's first answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "keel_rt::serde")]
pub struct Begun {
    pub session: u64,
    pub region_len: u64,
}

/// Files and directories on the disk. Paths are absolute (`/docs/notes.txt`); names are
/// compared ignoring case, as FAT does. Changes reach the disk at [`sync`](Fs::sync).
#[keel_rt::service]
pub trait Fs {
    /// Begin a session that lasts while `lease` (a send capability to a port of the
    /// client's) does. Its data region's memory capability (MAP_READ | MAP_WRITE) comes as
    /// a message labelled [`REGION_LABEL`] on that port. [`Files::begin`] does it all.
    async fn begin(&self, lease: Cap) -> Result<Begun, FsError>;
    /// End a session: its files close.
    async fn end(&self, session: u64) -> Result<(), FsError>;

    /// Open the file at `path` (made empty if `create` and it is not there), at position 0.
    async fn open(&self, session: u64, path: &str, create: bool) -> Result<u32, FsError>;
    async fn close(&self, session: u64, file: u32) -> Result<(), FsError>;
    /// Read up to `len` bytes at the file's position into the region at `offset`, and
    /// move the position past them; how many (0 at the end).
    async fn read(&self, session: u64, file: u32, offset: u64, len: u64) -> Result<u64, FsError>;
    /// Write `len` bytes from the region at `offset` at the file's position, and move the
    /// position past them.
    async fn write(&self, session: u64, file: u32, offset: u64, len: u64) -> Result<(), FsError>;
    /// Move the file's position; the new position.
    async fn seek(&self, session: u64, file: u32, whence: Whence, by: i64) -> Result<u64, FsError>;
    /// Cut the file to `len` bytes, or grow it with zeroes.
    async fn truncate(&self, session: u64, file: u32, len: u64) -> Result<(), FsError>;

    #[idempotent]
    async fn stat(&self, path: &str) -> Result<Stat, FsError>;
    #[idempotent]
    async fn list(&self, path: &str) -> Result<Vec<Entry>, FsError>;
    async fn mkdir(&self, path: &str) -> Result<(), FsError>;
    /// Remove a file that no one has open, or an empty directory.
    async fn remove(&self, path: &str) -> Result<(), FsError>;
    /// Move `from` to `to`, which must not exist (its directory must).
    async fn rename(&self, from: &str, to: &str) -> Result<(), FsError>;
    /// Everything done so far is on the disk when this answers, and survives a power cut.
    #[idempotent]
    async fn sync(&self) -> Result<(), FsError>;
    #[idempotent]
    async fn usage(&self) -> Result<Usage, FsError>;
}
