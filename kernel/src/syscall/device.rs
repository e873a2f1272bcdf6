//! Device capabilities: interrupt lines, I/O ports, the kernel log.

use crate::arch::ioapic;
use crate::arch::trap::TrapFrame;
use crate::cap::Object;
use crate::kernel::{Kernel, kernel};
use crate::mm::user::UserSlice;
use keel_abi::cap::{Handle, kind, rights as cap_rights};
use keel_abi::{Error, SyscallResult, rights};
use x86_64::instructions::port::Port;

fn handle(frame: &TrapFrame, i: usize) -> Result<Handle, Error> {
    Handle::try_from(frame.arg(i)).map_err(|_| Error::InvalidHandle)
}

/// Mint a device capability: only for processes with the SYSTEM right.
fn mint(object: Object) -> SyscallResult {
    let mut k = kernel();
    if k.current_process().rights & rights::SYSTEM == 0 {
        return Err(Error::PermissionDenied);
    }
    let pid = k.current_pid();
    let handle = k.cap_create(pid, object, cap_rights::GRANT | cap_rights::READ)?;
    if let Object::IoPorts(..) = object {
        k.update_console_owner();
    }
    Ok(handle as usize)
}

pub fn irq_create(frame: &mut TrapFrame) -> SyscallResult {
    let line = u8::try_from(frame.arg(0)).map_err(|_| Error::InvalidArgument)?;
    if line >= ioapic::LINES {
        return Err(Error::InvalidArgument);
    }
    mint(Object::Irq(line))
}

pub fn event_bind(frame: &mut TrapFrame) -> SyscallResult {
    let (source, port, bits) = (handle(frame, 0)?, frame.arg(1), frame.arg(2) as u64);
    let mut k = kernel();
    let pid = k.current_pid();
    let source = k.cap_check(pid, source, None, 0)?;
    if !matches!(source.object, Object::Irq(_) | Object::Log) {
        return Err(Error::WrongType);
    }
    let target = if port == 0 {
        None
    } else {
        let port = Handle::try_from(port).map_err(|_| Error::InvalidHandle)?;
        let port = k.cap_check(pid, port, Some(kind::PORT), cap_rights::SEND)?;
        match port.object {
            Object::Port(id) => Some((id, bits)),
            _ => return Err(Error::WrongType),
        }
    };
    k.bind_event(source.object, target).map(|()| 0)
}

pub fn irq_ack(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let pid = k.current_pid();
    let cap = k.cap_check(pid, handle(frame, 0)?, Some(kind::IRQ), 0)?;
    let Object::Irq(line) = cap.object else {
        return Err(Error::WrongType);
    };
    if k.devices.irq[line as usize].is_some() {
        ioapic::set_masked(line, false);
    }
    Ok(0)
}

pub fn ioport_create(frame: &mut TrapFrame) -> SyscallResult {
    let (base, len) = (frame.arg(0), frame.arg(1));
    let end = base.checked_add(len).ok_or(Error::InvalidArgument)?;
    if len == 0 || end > 0x1_0000 {
        return Err(Error::InvalidArgument);
    }
    mint(Object::IoPorts(base as u16, len as u16))
}

/// The port a capability lets the caller touch with `width` bytes.
fn checked_port(frame: &TrapFrame) -> Result<(u16, u32), Error> {
    let (port, width) = (frame.arg(1), frame.arg(2));
    if !matches!(width, 1 | 2 | 4) || port > 0xffff {
        return Err(Error::InvalidArgument);
    }
    let mut k = kernel();
    let pid = k.current_pid();
    let cap = k.cap_check(pid, handle(frame, 0)?, Some(kind::IO_PORTS), 0)?;
    if !Kernel::ports_cover(cap.object, port as u32, width as u32) {
        return Err(Error::MissingRight);
    }
    Ok((port as u16, width as u32))
}

pub fn ioport_read(frame: &mut TrapFrame) -> SyscallResult {
    let (port, width) = checked_port(frame)?;
    // SAFETY: the caller holds a capability to this port, minted by a SYSTEM process for a
    // driver; reading a device register cannot touch kernel memory.
    let value = unsafe {
        match width {
            1 => Port::<u8>::new(port).read() as usize,
            2 => Port::<u16>::new(port).read() as usize,
            _ => Port::<u32>::new(port).read() as usize,
        }
    };
    Ok(value)
}

pub fn ioport_write(frame: &mut TrapFrame) -> SyscallResult {
    let (port, width) = checked_port(frame)?;
    let value = frame.arg(3);
    // SAFETY: as for `ioport_read`; the value goes to the device the capability names.
    unsafe {
        match width {
            1 => Port::<u8>::new(port).write(value as u8),
            2 => Port::<u16>::new(port).write(value as u16),
            _ => Port::<u32>::new(port).write(value as u32),
        }
    }
    Ok(0)
}

pub fn log_read(frame: &mut TrapFrame) -> SyscallResult {
    let (addr, len) = (frame.arg(1), frame.arg(2).min(16 * 1024));
    let mut k = kernel();
    let pid = k.current_pid();
    k.cap_check(pid, handle(frame, 0)?, Some(kind::LOG), cap_rights::READ)?;
    let space = k.current_space();
    space.check_access(addr, len, true)?;
    let bytes = crate::log::take(len);
    UserSlice::new(addr, bytes.len()).write(space, &bytes)?;
    Ok(bytes.len())
}
