//! Capabilities of the caller: derive, delete, revoke, inspect; the audit log; quotas.

use crate::arch::trap::TrapFrame;
use crate::cap::Found;
use crate::cap::Object;
use crate::kernel::{Kernel, kernel};
use crate::mm::PAGE_SIZE;
use crate::mm::user::{UserArray, UserSlice};
use keel_abi::cap::{AuditRecord, CapEntry, CapInfo, Handle, Resources, kind, rights};
use keel_abi::{Error, SyscallResult};

fn handle(frame: &TrapFrame, i: usize) -> Result<Handle, Error> {
    Handle::try_from(frame.arg(i)).map_err(|_| Error::InvalidHandle)
}

pub fn derive(frame: &mut TrapFrame) -> SyscallResult {
    let (handle, rights, badge) = (handle(frame, 0)?, frame.arg(1) as u32, frame.arg(2) as u64);
    if frame.arg(1) & !(rights::ALL as usize) != 0 {
        return Err(Error::InvalidArgument);
    }
    let mut k = kernel();
    let pid = k.current_pid();
    let parent = k.cap_check(pid, handle, None, 0)?;
    if parent.object.kind() == kind::REPLY {
        return Err(Error::WrongType);
    }
    let copy = k.cap_derive_in_flight(&parent, rights, badge);
    match k.cap_place(pid, copy) {
        Ok(new) => Ok(new as usize),
        Err(error) => {
            k.cap_delete(copy);
            Err(error)
        }
    }
}

pub fn delete(frame: &mut TrapFrame) -> SyscallResult {
    let handle = handle(frame, 0)?;
    let mut k = kernel();
    let pid = k.current_pid();
    let cap = k.cap_check(pid, handle, None, 0)?;
    k.cap_delete(cap.id);
    Ok(0)
}

pub fn revoke(frame: &mut TrapFrame) -> SyscallResult {
    let handle = handle(frame, 0)?;
    let mut k = kernel();
    let pid = k.current_pid();
    let cap = k.cap_check(pid, handle, None, 0)?;
    Ok(k.cap_revoke(pid, handle, &cap))
}

pub fn info(frame: &mut TrapFrame) -> SyscallResult {
    let handle = handle(frame, 0)?;
    let mut k = kernel();
    let pid = k.current_pid();
    let cap = k.cap_check(pid, handle, None, 0)?;
    let info = cap_info(&k, &cap);
    let space = k.current_space();
    UserSlice::of::<CapInfo>(frame.arg(1)).write_value(space, &info)?;
    Ok(0)
}

/// What a process may learn about one of its capabilities.
fn cap_info(k: &Kernel, cap: &Found) -> CapInfo {
    let size = match cap.object {
        Object::Memory(id) => k.memory.get(&id).map_or(0, |m| m.frames.len() * PAGE_SIZE),
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

pub fn list(frame: &mut TrapFrame) -> SyscallResult {
    let (pid, addr, capacity) = (frame.arg(0), frame.arg(1), frame.arg(2));
    let k = kernel();
    let caller = k.current_pid();
    let pid = if pid == 0 {
        caller
    } else {
        crate::proc::Pid::try_from(pid).map_err(|_| Error::NotFound)?
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
                info: cap_info(&k, &cap),
            })
        })
        .collect();
    out.write(k.current_space(), &entries)?;
    Ok(handles.len())
}

pub fn audit_read(frame: &mut TrapFrame) -> SyscallResult {
    let handle = handle(frame, 0)?;
    let out = UserArray::<AuditRecord>::new(frame.arg(1), frame.arg(2));
    let mut k = kernel();
    let pid = k.current_pid();
    k.cap_check(pid, handle, Some(kind::AUDIT), rights::READ)?;
    out.check(k.current_space())?;
    let records: alloc::vec::Vec<AuditRecord> = k.audit.newest(out.capacity()).copied().collect();
    out.write(k.current_space(), &records)
}

pub fn resources(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let frames_used = k.frames_used(k.current_pid());
    let process = k.current_process();
    let space = process.space.as_ref().expect("running process has memory");
    let resources = Resources {
        cap_slots_used: process.caps.used() as u64,
        cap_slots_limit: process.caps.limit as u64,
        kernel_bytes_used: process.kernel_bytes() as u64,
        kernel_bytes_limit: process.quota.kernel_bytes as u64,
        frames_used: frames_used as u64,
        frames_limit: process.quota.frames as u64,
    };
    UserSlice::of::<Resources>(frame.arg(0)).write_value(space, &resources)?;
    Ok(0)
}
