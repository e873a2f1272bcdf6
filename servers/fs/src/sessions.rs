//! Sessions: each client's open files and data region, kept while the client's lease port
//! lives. Session numbers count up and are never reused; they are not secrets, since any
//! client may open any file itself.

use alloc::vec::Vec;

use fs::{FsError, MAX_OPEN, MAX_SESSIONS, REGION_LEN};
use keel_abi::Error;
use keel_abi::cap::rights;
use keel_fat::FileId;
use keel_rt::ipc::Port;
use keel_rt::mem::{Mapping, Memory};

/// An open file: the volume's, and this session's position in it.
#[derive(Clone, Copy)]
pub struct OpenFile {
    pub id: FileId,
    pub position: u64,
}

pub struct Session {
    pub number: u64,
    /// The client's port: while a notification to it goes through, the client lives.
    lease: Port,
    memory: Memory,
    region: Mapping,
    pub files: Vec<Option<OpenFile>>,
}

impl Session {
    /// A session on `lease`, its region made and sent there. On failure nothing is left,
    /// the lease included.
    pub fn new(number: u64, lease: Port) -> Result<Session, Error> {
        let made = Self::make(number, lease);
        if made.is_err() {
            let _ = lease.delete();
        }
        made
    }

    fn make(number: u64, lease: Port) -> Result<Session, Error> {
        let memory = Memory::create(REGION_LEN as usize)?;
        // Deleting the capability unmaps what was mapped through it.
        let made = memory
            .map(keel_abi::prot::READ | keel_abi::prot::WRITE)
            .and_then(|region| Self::send_region(number, lease, memory).map(|()| region));
        match made {
            Ok(region) => Ok(Session {
                number,
                lease,
                memory,
                region,
                files: Vec::new(),
            }),
            Err(error) => {
                let _ = memory.delete();
                Err(error)
            }
        }
    }

    /// Send the client a copy of the region's capability it can map; ours stays, so the
    /// client cannot unmap it here.
    fn send_region(number: u64, lease: Port, memory: Memory) -> Result<(), Error> {
        let given = memory.derive(rights::MAP_READ | rights::MAP_WRITE | rights::GRANT)?;
        let message = keel_rt::ipc::Message::new(fs::REGION_LABEL, [number, 0, 0, 0])
            .with_caps(&[given.handle()]);
        // The message carries a copy: ours goes either way.
        let sent = lease.send(&message);
        let _ = given.delete();
        sent
    }

    /// Whether the client still holds its lease.
    pub fn alive(&self) -> bool {
        self.lease.notify(0) != Err(Error::PeerGone)
    }

    /// `len` bytes of the region from `offset`, if they are inside it.
    pub fn region(&self, offset: u64, len: u64) -> Result<(*mut u8, usize), FsError> {
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= self.region.len() as u64);
        end.ok_or(FsError::TooLarge)?;
        // `offset` is inside the mapping: the add stays in it.
        Ok((
            self.region.as_ptr().wrapping_add(offset as usize),
            len as usize,
        ))
    }

    pub fn file(&mut self, file: u32) -> Result<&mut OpenFile, FsError> {
        let slot = self.files.get_mut(file as usize).and_then(Option::as_mut);
        slot.ok_or(FsError::BadHandle)
    }

    /// File an open file; its handle.
    pub fn add(&mut self, id: FileId) -> Result<u32, FsError> {
        let open = Some(OpenFile { id, position: 0 });
        if let Some(free) = self.files.iter().position(Option::is_none) {
            self.files[free] = open;
            return Ok(free as u32);
        }
        if self.files.len() >= MAX_OPEN {
            return Err(FsError::TooMany);
        }
        self.files.push(open);
        Ok(self.files.len() as u32 - 1)
    }

    /// Its capabilities go (the region unmaps here); its files are the caller's to close.
    pub fn release(self) -> Vec<FileId> {
        let _ = self.lease.delete();
        let _ = self.memory.delete();
        self.files
            .into_iter()
            .flatten()
            .map(|open| open.id)
            .collect()
    }
}

/// Whether another session fits.
pub fn room(sessions: &[Session]) -> Result<(), FsError> {
    if sessions.len() < MAX_SESSIONS {
        Ok(())
    } else {
        Err(FsError::TooMany)
    }
}
