//! Anonymous memory in the caller's own address space: map, unmap, protect.

use crate::arch::trap::TrapFrame;
use crate::cap::Object;
use crate::kernel::kernel;
use crate::mm::object::MemoryObject;
use crate::mm::space::{AddressSpace, check_prot};
use crate::mm::{PAGE_SIZE, align_up};
use keel_abi::cap::{Handle, kind, rights};
use keel_abi::{Error, SyscallResult, layout, prot};

fn with_space<R>(f: impl FnOnce(&mut AddressSpace) -> Result<R, Error>) -> Result<R, Error> {
    let mut k = kernel();
    let space = k.current_space_to_grow();
    f(space)
}

pub fn map(frame: &mut TrapFrame) -> SyscallResult {
    let (addr, len, prot) = (frame.arg(0), frame.arg(1), frame.arg(2));
    check_prot(prot)?;
    with_space(|space| {
        let start = if addr == 0 {
            let rounded = align_up(len, PAGE_SIZE).ok_or(Error::InvalidArgument)?;
            if rounded != len || len == 0 || len > layout::USER_END - layout::USER_START {
                return Err(Error::InvalidArgument);
            }
            space.find_free(len)?
        } else {
            addr
        };
        space.map_anonymous(start, len, prot)?;
        Ok(start)
    })
}

pub fn unmap(frame: &mut TrapFrame) -> SyscallResult {
    with_space(|space| space.unmap(frame.arg(0), frame.arg(1))).map(|()| 0)
}

pub fn protect(frame: &mut TrapFrame) -> SyscallResult {
    with_space(|space| space.protect(frame.arg(0), frame.arg(1), frame.arg(2))).map(|()| 0)
}

pub fn create_object(frame: &mut TrapFrame) -> SyscallResult {
    let all = rights::MAP_READ | rights::MAP_WRITE | rights::MAP_EXEC | rights::GRANT;
    create(frame.arg(0), all, MemoryObject::new)
}

pub fn create_dma(frame: &mut TrapFrame) -> SyscallResult {
    let device = Handle::try_from(frame.arg(0)).map_err(|_| Error::InvalidHandle)?;
    {
        let mut k = kernel();
        let pid = k.current_pid();
        let cap = k.cap_check(pid, device, None, 0)?;
        if !matches!(cap.object, Object::Irq(_) | Object::IoPorts(..)) {
            return Err(Error::WrongType);
        }
    }
    let rights = rights::MAP_READ | rights::MAP_WRITE | rights::GRANT | rights::DMA;
    create(frame.arg(1), rights, MemoryObject::new_contiguous)
}

/// A new memory object of `len` bytes, charged to the caller's frame quota.
fn create(
    len: usize,
    cap_rights: u32,
    make: fn(usize, crate::proc::Pid) -> Result<MemoryObject, Error>,
) -> SyscallResult {
    let mut k = kernel();
    let pid = k.current_pid();
    k.check_frames(pid, len / PAGE_SIZE)?;
    let id = k.memory.insert(make(len, pid)?);
    let handle = k.cap_create(pid, Object::Memory(id), cap_rights);
    if handle.is_err() {
        k.memory.remove(&id);
    }
    Ok(handle? as usize)
}

pub fn phys(frame: &mut TrapFrame) -> SyscallResult {
    let handle = Handle::try_from(frame.arg(0)).map_err(|_| Error::InvalidHandle)?;
    let offset = frame.arg(1);
    let mut k = kernel();
    let pid = k.current_pid();
    let cap = k.cap_check(pid, handle, Some(kind::MEMORY), rights::DMA)?;
    let Object::Memory(id) = cap.object else {
        return Err(Error::WrongType);
    };
    let object = k.memory.get(&id).ok_or(Error::StaleHandle)?;
    let frame_phys = object
        .frames
        .get(offset / PAGE_SIZE)
        .ok_or(Error::InvalidArgument)?;
    Ok(*frame_phys as usize + offset % PAGE_SIZE)
}

/// Each protection bit and the capability right that allows it.
const PROT_RIGHTS: [(usize, u32); 3] = [
    (prot::READ, rights::MAP_READ),
    (prot::WRITE, rights::MAP_WRITE),
    (prot::EXEC, rights::MAP_EXEC),
];

/// The mapping rights a protection needs.
fn map_rights(prot_bits: usize) -> u32 {
    PROT_RIGHTS
        .iter()
        .filter(|(p, _)| prot_bits & p != 0)
        .fold(0, |acc, (_, r)| acc | r)
}

/// The protections a capability's rights allow.
fn allowed_prot(cap_rights: u32) -> usize {
    PROT_RIGHTS
        .iter()
        .filter(|(_, r)| cap_rights & r != 0)
        .fold(0, |acc, (p, _)| acc | p)
}

pub fn map_object(frame: &mut TrapFrame) -> SyscallResult {
    let handle = Handle::try_from(frame.arg(0)).map_err(|_| Error::InvalidHandle)?;
    let (addr, prot_bits) = (frame.arg(1), frame.arg(2));
    check_prot(prot_bits)?;
    let mut k = kernel();
    let pid = k.current_pid();
    let cap = k.cap_check(pid, handle, Some(kind::MEMORY), map_rights(prot_bits))?;
    let Object::Memory(id) = cap.object else {
        return Err(Error::WrongType);
    };
    let frames = k.memory.get(&id).ok_or(Error::StaleHandle)?.frames.clone();
    let space = k.current_space_to_grow();
    let len = frames.len() * PAGE_SIZE;
    let start = if addr == 0 {
        space.find_free(len)?
    } else {
        addr
    };
    space.map_shared(start, &frames, prot_bits, allowed_prot(cap.rights), cap.id)?;
    Ok(start)
}
