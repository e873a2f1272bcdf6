//! `fs`: the file service. It mounts the FAT32 volume on the block service's disk and
//! serves [`fs::Fs`] to many clients at once: one operation on the volume at a time
//! (each awaits block calls), sessions and their open files kept per client and closed
//! when the client goes (docs/STORAGE.md, "Files").
#![no_std]
#![no_main]

extern crate alloc;

mod disk;
mod sessions;

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::time::Duration;

use fs::{Begun, Entry, Fs, FsError, Kind, MAX_PATH, Stat, Usage, Whence, serve_fs};
use keel_fat::Volume;
use keel_rt::executor::{self, sleep};
use keel_rt::ipc::Port;
use keel_rt::service::Cap;
use keel_rt::sync::AsyncMutex;
use keel_rt::{names, println};

use disk::Disk;
use sessions::Session;

/// How often the server looks for clients that have gone.
const SWEEP: Duration = Duration::from_millis(100);

struct State {
    volume: Volume<Disk>,
    sessions: Vec<Session>,
    next_session: u64,
}

/// The state, shared with the sweep task.
struct Server(Rc<AsyncMutex<State>>);

fn fs_error(error: keel_fat::Error) -> FsError {
    use keel_fat::Error as E;
    match error {
        E::NotFound => FsError::NotFound,
        E::AlreadyExists => FsError::AlreadyExists,
        E::NotADirectory => FsError::NotADirectory,
        E::IsADirectory => FsError::IsADirectory,
        E::DirectoryNotEmpty => FsError::DirectoryNotEmpty,
        E::InvalidName => FsError::InvalidName,
        E::InvalidPath => FsError::InvalidPath,
        E::NoSpace => FsError::NoSpace,
        E::TooLarge => FsError::TooLarge,
        E::Busy => FsError::Busy,
        E::BadFile => FsError::BadHandle,
        E::Corrupt(why) => {
            println!("fs: the disk is corrupt: {why}");
            FsError::Corrupt
        }
        E::Unsupported(_) => FsError::NoDisk,
        E::Device => FsError::Device,
    }
}

fn kind(kind: keel_fat::Kind) -> Kind {
    match kind {
        keel_fat::Kind::File => Kind::File,
        keel_fat::Kind::Directory => Kind::Directory,
    }
}

fn stat(stat: keel_fat::Stat) -> Stat {
    Stat {
        kind: kind(stat.kind),
        size: stat.size,
    }
}

fn checked(path: &str) -> Result<&str, FsError> {
    if path.len() <= MAX_PATH {
        Ok(path)
    } else {
        Err(FsError::InvalidName)
    }
}

impl State {
    fn session(&mut self, number: u64) -> Result<&mut Session, FsError> {
        let found = self.sessions.iter_mut().find(|s| s.number == number);
        found.ok_or(FsError::BadSession)
    }

    /// End the sessions whose clients have gone (or just `number`), closing their files.
    fn end_sessions(&mut self, mut ending: impl FnMut(&Session) -> bool) {
        let mut index = 0;
        while index < self.sessions.len() {
            if ending(&self.sessions[index]) {
                for id in self.sessions.swap_remove(index).release() {
                    let _ = self.volume.close(id);
                }
            } else {
                index += 1;
            }
        }
    }
}

impl Fs for Server {
    async fn begin(&self, lease: Cap) -> Result<Begun, FsError> {
        let lease = Port::from_handle(lease.into_handle().ok_or(FsError::BadSession)?);
        let mut state = self.0.lock().await;
        state.end_sessions(|session| !session.alive());
        if let Err(error) = sessions::room(&state.sessions) {
            let _ = lease.delete();
            return Err(error);
        }
        state.next_session += 1;
        let number = state.next_session;
        let session = Session::new(number, lease).map_err(|error| match error {
            keel_abi::Error::QuotaExceeded => FsError::TooMany,
            _ => FsError::BadSession,
        })?;
        state.sessions.push(session);
        Ok(Begun {
            session: number,
            region_len: fs::REGION_LEN,
        })
    }

    async fn end(&self, session: u64) -> Result<(), FsError> {
        let mut state = self.0.lock().await;
        state.session(session)?;
        state.end_sessions(|s| s.number == session);
        Ok(())
    }

    async fn open(&self, session: u64, path: &str, create: bool) -> Result<u32, FsError> {
        let mut state = self.0.lock().await;
        state.session(session)?;
        let id = state
            .volume
            .open(checked(path)?, create)
            .await
            .map_err(fs_error)?;
        let added = state.session(session)?.add(id);
        if added.is_err() {
            let _ = state.volume.close(id);
        }
        added
    }

    async fn close(&self, session: u64, file: u32) -> Result<(), FsError> {
        let mut state = self.0.lock().await;
        let id = state.session(session)?.file(file)?.id;
        state.session(session)?.files[file as usize] = None;
        state.volume.close(id).map_err(fs_error)
    }

    async fn read(&self, session: u64, file: u32, offset: u64, len: u64) -> Result<u64, FsError> {
        let mut state = self.0.lock().await;
        let (ptr, len) = state.session(session)?.region(offset, len)?;
        let open = *state.session(session)?.file(file)?;
        // SAFETY: `ptr..ptr + len` lies inside the session's region, mapped while the
        // session lives, and the session cannot end while this holds the lock. The client
        // may write the region meanwhile; the bytes are only copied into, never trusted.
        let buf = unsafe { core::slice::from_raw_parts_mut(ptr, len) };
        let read = state
            .volume
            .read(open.id, open.position, buf)
            .await
            .map_err(fs_error)?;
        state.session(session)?.file(file)?.position += read as u64;
        Ok(read as u64)
    }

    async fn write(&self, session: u64, file: u32, offset: u64, len: u64) -> Result<(), FsError> {
        let mut state = self.0.lock().await;
        let (ptr, len) = state.session(session)?.region(offset, len)?;
        let open = *state.session(session)?.file(file)?;
        // SAFETY: as in `read`; the bytes are copied once, into the driver's region.
        let data = unsafe { core::slice::from_raw_parts(ptr, len) };
        state
            .volume
            .write(open.id, open.position, data)
            .await
            .map_err(fs_error)?;
        state.session(session)?.file(file)?.position += len as u64;
        Ok(())
    }

    async fn seek(&self, session: u64, file: u32, whence: Whence, by: i64) -> Result<u64, FsError> {
        let mut state = self.0.lock().await;
        let open = *state.session(session)?.file(file)?;
        let base = match whence {
            Whence::Start => 0,
            Whence::Current => open.position,
            Whence::End => state.volume.size(open.id).map_err(fs_error)?,
        };
        let position = base.checked_add_signed(by).ok_or(FsError::BadSeek)?;
        state.session(session)?.file(file)?.position = position;
        Ok(position)
    }

    async fn truncate(&self, session: u64, file: u32, len: u64) -> Result<(), FsError> {
        let mut state = self.0.lock().await;
        let open = *state.session(session)?.file(file)?;
        state.volume.truncate(open.id, len).await.map_err(fs_error)
    }

    async fn stat(&self, path: &str) -> Result<Stat, FsError> {
        let mut state = self.0.lock().await;
        state
            .volume
            .stat(checked(path)?)
            .await
            .map(stat)
            .map_err(fs_error)
    }

    async fn list(&self, path: &str) -> Result<Vec<Entry>, FsError> {
        let mut state = self.0.lock().await;
        let listing = state.volume.list(checked(path)?).await.map_err(fs_error)?;
        let entries = listing.into_iter().map(|l| Entry {
            name: l.name,
            stat: stat(l.stat),
        });
        Ok(entries.collect())
    }

    async fn mkdir(&self, path: &str) -> Result<(), FsError> {
        let mut state = self.0.lock().await;
        state.volume.mkdir(checked(path)?).await.map_err(fs_error)
    }

    async fn remove(&self, path: &str) -> Result<(), FsError> {
        let mut state = self.0.lock().await;
        state.volume.remove(checked(path)?).await.map_err(fs_error)
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), FsError> {
        let mut state = self.0.lock().await;
        let (from, to) = (checked(from)?, checked(to)?);
        state.volume.rename(from, to).await.map_err(fs_error)
    }

    async fn sync(&self) -> Result<(), FsError> {
        let mut state = self.0.lock().await;
        state.volume.sync().await.map_err(fs_error)
    }

    async fn usage(&self) -> Result<Usage, FsError> {
        let state = self.0.lock().await;
        let usage = state.volume.usage();
        let cluster = u64::from(usage.cluster_bytes);
        Ok(Usage {
            total: u64::from(usage.clusters) * cluster,
            free: u64::from(usage.free_clusters) * cluster,
        })
    }
}

/// Every [`SWEEP`], end the sessions of clients that have gone.
async fn sweep(state: Rc<AsyncMutex<State>>) {
    loop {
        sleep(SWEEP).await;
        state.lock().await.end_sessions(|session| !session.alive());
    }
}

keel_rt::async_entry!(main);

async fn main(_args: &'static str) -> i32 {
    let disk = match Disk::open().await {
        Ok(disk) => disk,
        Err(error) => {
            println!("fs: no block device: {error:?}");
            return 1;
        }
    };
    let volume = match Volume::mount(disk).await {
        Ok(volume) => volume,
        Err(error) => {
            println!("fs: the disk holds no FAT32 volume this server can use: {error:?}");
            return 2;
        }
    };
    let usage = volume.usage();
    println!(
        "fs: mounted FAT32: {} of {} clusters of {} bytes free",
        usage.free_clusters, usage.clusters, usage.cluster_bytes
    );
    let state = Rc::new(AsyncMutex::new(State {
        volume,
        sessions: Vec::new(),
        next_session: 0,
    }));
    executor::spawn(sweep(state.clone()));
    if let Err(error) = names::register(fs::NAME, executor::wake::port()) {
        println!("fs: registering: {error:?}");
        return 3;
    }
    serve_fs(Server(state)).await
}
