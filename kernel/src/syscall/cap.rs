//! Capabilities of the caller: derive, delete, revoke, inspect; the audit log; quotas.

use super::{Args, Next};
use crate::cap::Found;
use crate::cap::Object;
use crate::kernel::Kernel;
use crate::mm::PAGE_SIZE;
use crate::mm::user::UserArray;
use keel_abi::Error;
use keel_abi::cap::{AuditRecord, CapEntry, CapInfo, Resources, kind, rights};

pub fn derive(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (handle, rights, badge) = (args.handle(0)?, args.word(1) as u32, args.word(2) as u64);
    if args.word(1) & !(rights::ALL as usize) != 0 {
        return Err(Error::InvalidArgument);
    }
    let pid = k.current_pid();
    let parent = k.cap_check(pid, handle, None, 0)?;
    if parent.object.kind() == kind::REPLY {
        return Err(Error::WrongType);
    }
    let copy = k.cap_derive_in_flight(&parent, rights, badge);
    match k.cap_place(pid, copy) {
        Ok(new) => Ok(Next::Return(new as usize)),
        Err(error) => {
            k.cap_delete(copy);
            Err(error)
        }
    }
}

pub fn delete(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let handle = args.handle(0)?;
    let pid = k.current_pid();
    let cap = k.cap_check(pid, handle, None, 0)?;
    k.cap_delete(cap.id);
    Ok(Next::Return(0))
}

pub fn revoke(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let handle = args.handle(0)?;
    let pid = k.current_pid();
    let cap = k.cap_check(pid, handle, None, 0)?;
    Ok(Next::Return(k.cap_revoke(pid, handle, &cap)))
}

pub fn info(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let handle = args.handle(0)?;
    let pid = k.current_pid();
    let cap = k.cap_check(pid, handle, None, 0)?;
    let info = cap_info(k, &cap);
    let space = k.current_space();
    args.user::<CapInfo>(1).write_value(space, &info)?;
    Ok(Next::Return(0))
}

/// What a process may learn about one of its capabilities.
fn cap_info(k: &Kernel, cap: &Found) -> CapInfo {
    let size = match cap.object {
        Object::Memory(id) => k
            .memory
            .get(&id)
            .map_or(0, |m| m.frames().len() * PAGE_SIZE),
        _ => 0,
    };
    CapInfo {
        kind: cap.object.kind(),
        rights: cap.rights,
        badge: cap.badge,
        object: cap.object.id(),
        size: size as u64,
    }
}

pub fn list(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (addr, capacity) = (args.word(1), args.word(2));
    let caller = k.current_pid();
    let pid = if args.word(0) == 0 {
        caller
    } else {
        args.pid(0)?
    };
    k.check_reach(caller, pid, rights::READ)?;
    let out = UserArray::<CapEntry>::new(addr, capacity);
    out.check(k.current_space())?;
    let handles = k.processes[&pid].caps.handles();
    let entries: alloc::vec::Vec<CapEntry> = handles
        .iter()
        .take(capacity)
        .filter_map(|&handle| {
            let cap = k.cap_resolve(pid, handle).ok()?;
            Some(CapEntry {
                handle,
                _reserved: 0,
                info: cap_info(k, &cap),
            })
        })
        .collect();
    out.write(k.current_space(), &entries)?;
    Ok(Next::Return(handles.len()))
}

pub fn audit_read(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let handle = args.handle(0)?;
    let out = UserArray::<AuditRecord>::new(args.word(1), args.word(2));
    let pid = k.current_pid();
    k.cap_check(pid, handle, Some(kind::AUDIT), rights::READ)?;
    out.check(k.current_space())?;
    let records: alloc::vec::Vec<AuditRecord> =
        k.audit_log().newest(out.capacity()).copied().collect();
    out.write(k.current_space(), &records).map(Next::Return)
}

pub fn resources(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let frames_used = k.frames_used(k.current_pid());
    let process = k.current_process();
    let space = process.space.as_ref().expect("running process has memory");
    let resources = Resources {
        cap_slots_used: process.caps.used() as u64,
        cap_slots_limit: process.caps.limit() as u64,
        kernel_bytes_used: process.kernel_bytes() as u64,
        kernel_bytes_limit: process.quota().kernel_bytes as u64,
        frames_used: frames_used as u64,
        frames_limit: process.quota().frames as u64,
    };
    args.user::<Resources>(0).write_value(space, &resources)?;
    Ok(Next::Return(0))
}
