//! Anonymous memory in the caller's own address space: map, unmap, protect.

use super::{Args, Next};
use crate::cap::Object;
use crate::kernel::Kernel;
use crate::mm::object::MemoryObject;
use crate::mm::space::check_prot;
use crate::mm::{PAGE_SIZE, align_up};
use keel_abi::cap::{kind, rights};
use keel_abi::{Error, layout, prot};

pub fn map(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (addr, len, prot) = (args.word(0), args.word(1), args.word(2));
    check_prot(prot)?;
    let space = k.current_space_to_grow();
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
    Ok(Next::Return(start))
}

pub fn unmap(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    k.current_space_to_grow()
        .unmap(args.word(0), args.word(1))?;
    Ok(Next::Return(0))
}

pub fn protect(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let space = k.current_space_to_grow();
    space.protect(args.word(0), args.word(1), args.word(2))?;
    Ok(Next::Return(0))
}

pub fn create_object(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let all = rights::MAP_READ | rights::MAP_WRITE | rights::MAP_EXEC | rights::GRANT;
    create(k, args.word(0), all, MemoryObject::new)
}

pub fn create_dma(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let device = args.handle(0)?;
    let pid = k.current_pid();
    let cap = k.cap_check(pid, device, None, 0)?;
    let is_device = match cap.object {
        Object::Irq(_) | Object::IoPorts(..) => true,
        Object::Memory(id) => k.memory.get(&id).is_some_and(MemoryObject::is_device),
        _ => false,
    };
    if !is_device {
        return Err(Error::WrongType);
    }
    let rights = rights::MAP_READ | rights::MAP_WRITE | rights::GRANT | rights::DMA;
    create(k, args.word(1), rights, MemoryObject::new_dma)
}

/// A memory object over device registers: only for the SYSTEM right, and never over RAM.
pub fn create_device(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (phys, len) = (args.word(0) as u64, args.word(1));
    if !k.current_process().has_right(keel_abi::rights::SYSTEM) {
        return Err(Error::PermissionDenied);
    }
    let end = phys.checked_add(len as u64).ok_or(Error::InvalidArgument)?;
    let aligned = phys.is_multiple_of(PAGE_SIZE as u64);
    // Physical addresses stop at 52 bits; a page-table entry holds no more.
    if !aligned || end > 1 << 52 || crate::mm::overlaps_memory(phys, end) {
        return Err(Error::InvalidArgument);
    }
    let rights = rights::MAP_READ | rights::MAP_WRITE | rights::GRANT | rights::DMA;
    let object = MemoryObject::new_device(phys, len, k.current_pid())?;
    insert(k, object, rights)
}

/// The device of ended driver `pid` is stopped: free the DMA memory held for it.
pub fn release_dma(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    if !k.current_process().has_right(keel_abi::rights::SYSTEM) {
        return Err(Error::PermissionDenied);
    }
    let pid = args.pid(0)?;
    Ok(Next::Return(k.release_dma(pid)))
}

/// A new memory object of `len` bytes, charged to the caller's frame quota.
fn create(
    k: &mut Kernel,
    len: usize,
    cap_rights: u32,
    make: fn(usize, crate::proc::Pid) -> Result<MemoryObject, Error>,
) -> Result<Next, Error> {
    let pid = k.current_pid();
    k.check_frames(pid, len / PAGE_SIZE)?;
    let object = make(len, pid)?;
    insert(k, object, cap_rights)
}

/// File `object` and give the caller a capability to it.
fn insert(k: &mut Kernel, object: MemoryObject, cap_rights: u32) -> Result<Next, Error> {
    let pid = k.current_pid();
    let id = k.memory.insert(object);
    let handle = k.cap_create(pid, Object::Memory(id), cap_rights);
    if handle.is_err() {
        k.memory.remove(&id);
    }
    Ok(Next::Return(handle? as usize))
}

pub fn phys(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let handle = args.handle(0)?;
    let offset = args.word(1);
    let pid = k.current_pid();
    let cap = k.cap_check(pid, handle, Some(kind::MEMORY), rights::DMA)?;
    let Object::Memory(id) = cap.object else {
        return Err(Error::WrongType);
    };
    let object = k.memory.get(&id).ok_or(Error::StaleHandle)?;
    let frame_phys = object
        .frames()
        .get(offset / PAGE_SIZE)
        .ok_or(Error::InvalidArgument)?;
    Ok(Next::Return(*frame_phys as usize + offset % PAGE_SIZE))
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

pub fn map_object(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let handle = args.handle(0)?;
    let (addr, prot_bits) = (args.word(1), args.word(2));
    check_prot(prot_bits)?;
    let pid = k.current_pid();
    let cap = k.cap_check(pid, handle, Some(kind::MEMORY), map_rights(prot_bits))?;
    let Object::Memory(id) = cap.object else {
        return Err(Error::WrongType);
    };
    let object = k.memory.get(&id).ok_or(Error::StaleHandle)?;
    let (frames, uncached) = (object.frames().to_vec(), object.is_device());
    let space = k.current_space_to_grow();
    let len = frames.len() * PAGE_SIZE;
    let start = if addr == 0 {
        space.find_free(len)?
    } else {
        addr
    };
    let allowed = allowed_prot(cap.rights);
    space.map_shared(start, &frames, prot_bits, allowed, cap.id, uncached)?;
    Ok(Next::Return(start))
}
