//! [`Files`]: a client's session with the file service, its data region mapped here.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use keel_abi::cap::rights;
use keel_rt::ipc::{Port, Received};
use keel_rt::mem::{Mapping, Memory};
use keel_rt::service::TransportError;

use crate::{Entry, FsClient, FsError, NAME, REGION_LABEL, Stat, Usage, Whence};

/// Why a call on a session failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The file service said no.
    Fs(FsError),
    /// The call could not be carried out.
    Transport(TransportError),
    /// The kernel refused making the lease port or mapping the region.
    Kernel(keel_abi::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Fs(error) => write!(f, "{error}"),
            Error::Transport(error) => write!(f, "the file service: {error}"),
            Error::Kernel(error) => write!(f, "{error:?}"),
        }
    }
}

impl From<FsError> for Error {
    fn from(error: FsError) -> Self {
        Error::Fs(error)
    }
}

impl From<TransportError> for Error {
    fn from(error: TransportError) -> Self {
        Error::Transport(error)
    }
}

impl From<keel_abi::Error> for Error {
    fn from(error: keel_abi::Error) -> Self {
        Error::Kernel(error)
    }
}

/// A session: the connection, its lease, and the data region.
pub struct Files {
    client: FsClient,
    session: u64,
    /// Ours to hold: the session lasts while it does.
    lease: Port,
    memory: Memory,
    region: Mapping,
}

impl Files {
    /// Connect to the file service by name and begin a session.
    pub async fn begin() -> Result<Files, Error> {
        Self::begin_on(FsClient::connect_named(NAME)?).await
    }

    /// Begin a session on a connection made otherwise.
    pub async fn begin_on(client: FsClient) -> Result<Files, Error> {
        let lease = Port::create(1)?;
        match Self::begin_with(client, lease).await {
            Ok(files) => Ok(files),
            Err(error) => {
                let _ = lease.delete();
                Err(error)
            }
        }
    }

    async fn begin_with(client: FsClient, lease: Port) -> Result<Files, Error> {
        let send = lease.derive(rights::SEND | rights::GRANT, 0)?;
        let given = client.connection().cap(send.handle());
        let _ = send.delete();
        let begun = client.begin(given?).await??;
        // The region's capability was sent before the answer.
        let Received::Message { message, .. } = lease.receive(Some(Duration::ZERO))? else {
            return Err(Error::Kernel(keel_abi::Error::WrongType));
        };
        let (Some(&handle), REGION_LABEL) = (message.caps.first(), message.label) else {
            return Err(Error::Kernel(keel_abi::Error::WrongType));
        };
        let memory = Memory::from_handle(handle);
        let region = match memory.map(keel_abi::prot::READ | keel_abi::prot::WRITE) {
            Ok(region) if region.len() as u64 >= begun.region_len => region,
            other => {
                let _ = memory.delete();
                return Err(Error::Kernel(
                    other.err().unwrap_or(keel_abi::Error::InvalidArgument),
                ));
            }
        };
        Ok(Files {
            client,
            session: begun.session,
            lease,
            memory,
            region,
        })
    }

    /// The connection, for calls that need no session (`stat`, `list`, ...).
    pub fn client(&self) -> &FsClient {
        &self.client
    }

    /// The data region: where [`read_region`](Files::read_region) puts bytes and
    /// [`write_region`](Files::write_region) takes them, for clients that fill or use it in
    /// place. The server reads and writes it only during those calls.
    pub fn region(&self) -> (*mut u8, usize) {
        (self.region.as_ptr(), self.region.len())
    }

    pub async fn open(&self, path: &str, create: bool) -> Result<u32, Error> {
        Ok(self.client.open(self.session, path, create).await??)
    }

    pub async fn close(&self, file: u32) -> Result<(), Error> {
        Ok(self.client.close(self.session, file).await??)
    }

    /// Read up to `len` bytes (at most the region's length) at the file's position into
    /// the region at `offset`; how many.
    pub async fn read_region(&self, file: u32, offset: u64, len: u64) -> Result<u64, Error> {
        Ok(self.client.read(self.session, file, offset, len).await??)
    }

    /// Write `len` bytes from the region at `offset` at the file's position.
    pub async fn write_region(&self, file: u32, offset: u64, len: u64) -> Result<(), Error> {
        Ok(self.client.write(self.session, file, offset, len).await??)
    }

    /// Read into `buf` from the file's position; how many bytes (fewer at the end).
    pub async fn read(&self, file: u32, buf: &mut [u8]) -> Result<usize, Error> {
        let mut done = 0;
        while done < buf.len() {
            let want = (buf.len() - done).min(self.region.len());
            // The server's count is not trusted past what was asked.
            let got = (self.read_region(file, 0, want as u64).await? as usize).min(want);
            // SAFETY: `got <= want`, which fits both the region and `buf[done..]`; the
            // mapping lives as long as `self` (its capability is ours), and the server
            // writes it only during a read call.
            unsafe {
                core::ptr::copy_nonoverlapping(self.region.as_ptr(), buf[done..].as_mut_ptr(), got)
            };
            done += got;
            if got < want {
                break;
            }
        }
        Ok(done)
    }

    /// Write `data` at the file's position.
    pub async fn write(&self, file: u32, data: &[u8]) -> Result<(), Error> {
        for chunk in data.chunks(self.region.len()) {
            // SAFETY: the chunk fits the region, mapped writable for as long as `self`.
            unsafe {
                core::ptr::copy_nonoverlapping(chunk.as_ptr(), self.region.as_ptr(), chunk.len())
            };
            self.write_region(file, 0, chunk.len() as u64).await?;
        }
        Ok(())
    }

    pub async fn seek(&self, file: u32, whence: Whence, by: i64) -> Result<u64, Error> {
        Ok(self.client.seek(self.session, file, whence, by).await??)
    }

    pub async fn truncate(&self, file: u32, len: u64) -> Result<(), Error> {
        Ok(self.client.truncate(self.session, file, len).await??)
    }

    /// The whole file at `path`.
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>, Error> {
        let size = self.stat(path).await?.size;
        let file = self.open(path, false).await?;
        let mut data = vec![0; size as usize];
        let read = self.read(file, &mut data).await;
        self.close(file).await?;
        data.truncate(read?);
        Ok(data)
    }

    /// Make the file at `path` hold `data` (created if need be); not synced.
    pub async fn write_file(&self, path: &str, data: &[u8]) -> Result<(), Error> {
        let file = self.open(path, true).await?;
        let written = match self.truncate(file, 0).await {
            Ok(()) => self.write(file, data).await,
            Err(error) => Err(error),
        };
        self.close(file).await?;
        written
    }

    pub async fn stat(&self, path: &str) -> Result<Stat, Error> {
        Ok(self.client.stat(path).await??)
    }

    pub async fn list(&self, path: &str) -> Result<Vec<Entry>, Error> {
        Ok(self.client.list(path).await??)
    }

    pub async fn mkdir(&self, path: &str) -> Result<(), Error> {
        Ok(self.client.mkdir(path).await??)
    }

    pub async fn remove(&self, path: &str) -> Result<(), Error> {
        Ok(self.client.remove(path).await??)
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<(), Error> {
        Ok(self.client.rename(from, to).await??)
    }

    pub async fn sync(&self) -> Result<(), Error> {
        Ok(self.client.sync().await??)
    }

    pub async fn usage(&self) -> Result<Usage, Error> {
        Ok(self.client.usage().await??)
    }

    /// The session's number (tests use it to try another session's files).
    pub fn session(&self) -> u64 {
        self.session
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        // The server ends the session when it finds the lease gone; the region unmaps
        // with our capability.
        let _ = self.lease.delete();
        let _ = self.memory.delete();
    }
}
