//! Device capabilities: interrupt lines, MSI-X vectors, I/O ports, PCI configuration space,
//! the kernel log.

use super::{Args, Next};
use crate::arch::ioapic;
use crate::cap::Object;
use crate::device::msi;
use crate::device::pci_config::{self, Access};
use crate::kernel::Kernel;
use crate::mm::user::UserSlice;
use keel_abi::cap::{kind, rights as cap_rights};
use keel_abi::{Error, rights};
use x86_64::instructions::port::Port;

/// Mint a device capability: only for processes with the SYSTEM right.
fn mint(k: &mut Kernel, object: Object) -> Result<Next, Error> {
    if !k.current_process().has_right(rights::SYSTEM) {
        return Err(Error::PermissionDenied);
    }
    let pid = k.current_pid();
    let handle = k.cap_create(pid, object, cap_rights::GRANT | cap_rights::READ)?;
    if let Object::IoPorts(..) = object {
        k.update_console_owner();
    }
    Ok(Next::Return(handle as usize))
}

pub fn irq_create(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let line = u8::try_from(args.word(0)).map_err(|_| Error::InvalidArgument)?;
    if !ioapic::has_line(line) {
        return Err(Error::InvalidArgument);
    }
    mint(k, Object::Irq(line))
}

pub fn event_bind(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (source, bits) = (args.handle(0)?, args.word(2) as u64);
    let pid = k.current_pid();
    let source = k.cap_check(pid, source, None, 0)?;
    if !matches!(source.object, Object::Irq(_) | Object::Msi(_) | Object::Log) {
        return Err(Error::WrongType);
    }
    let target = match args.optional_handle(1)? {
        None => None,
        Some(port) => {
            let port = k.cap_check(pid, port, Some(kind::PORT), cap_rights::SEND)?;
            match port.object {
                Object::Port(id) => Some((id, bits)),
                _ => return Err(Error::WrongType),
            }
        }
    };
    k.bind_event(source.object, target)?;
    Ok(Next::Return(0))
}

pub fn irq_ack(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let pid = k.current_pid();
    match k.cap_check(pid, args.handle(0)?, None, 0)?.object {
        Object::Irq(line) => {
            if k.irq_bound(line) {
                ioapic::set_masked(line, false);
            }
        }
        // Never masked by the kernel: the function's table has the mask.
        Object::Msi(_) => {}
        _ => return Err(Error::WrongType),
    }
    Ok(Next::Return(0))
}

pub fn msi_create(k: &mut Kernel, _args: &Args) -> Result<Next, Error> {
    let vector = k.free_vector().ok_or(Error::QuotaExceeded)?;
    mint(k, Object::Msi(vector))
}

pub fn msi_message(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let pid = k.current_pid();
    let cap = k.cap_check(pid, args.handle(0)?, Some(kind::MSI_VECTOR), 0)?;
    let Object::Msi(vector) = cap.object else {
        return Err(Error::WrongType);
    };
    let (address, data) = msi::message(vector);
    Ok(Next::Return((data as usize) << 32 | address as usize))
}

pub fn ioport_create(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (base, len) = (args.word(0), args.word(1));
    let end = base.checked_add(len).ok_or(Error::InvalidArgument)?;
    if len == 0 || end > 0x1_0000 {
        return Err(Error::InvalidArgument);
    }
    // The PCI configuration mechanism's ports are the kernel's: granted, they would reach
    // every function (`pci_config_*` below checks each access instead).
    let ours = pci_config::PORTS;
    if (base as u32) < ours.end && ours.start < end as u32 {
        return Err(Error::PermissionDenied);
    }
    mint(k, Object::IoPorts(base as u16, len as u16))
}

/// The port a capability lets the caller touch with `width` bytes.
fn checked_port(k: &mut Kernel, args: &Args) -> Result<(u16, u32), Error> {
    let (port, width) = (args.word(1), args.word(2));
    if !matches!(width, 1 | 2 | 4) || port > 0xffff {
        return Err(Error::InvalidArgument);
    }
    let pid = k.current_pid();
    let cap = k.cap_check(pid, args.handle(0)?, Some(kind::IO_PORTS), 0)?;
    if !crate::device::ports_cover(cap.object, port as u32, width as u32) {
        return Err(Error::MissingRight);
    }
    Ok((port as u16, width as u32))
}

pub fn ioport_read(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (port, width) = checked_port(k, args)?;
    // SAFETY: the caller holds a capability to this port, minted by a SYSTEM process for a
    // driver; reading a device register cannot touch kernel memory.
    let value = unsafe {
        match width {
            1 => Port::<u8>::new(port).read() as usize,
            2 => Port::<u16>::new(port).read() as usize,
            _ => Port::<u32>::new(port).read() as usize,
        }
    };
    Ok(Next::Return(value))
}

pub fn ioport_write(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (port, width) = checked_port(k, args)?;
    let value = args.word(3);
    // SAFETY: as for `ioport_read`; the value goes to the device the capability names.
    unsafe {
        match width {
            1 => Port::<u8>::new(port).write(value as u8),
            2 => Port::<u16>::new(port).write(value as u16),
            _ => Port::<u32>::new(port).write(value as u32),
        }
    }
    Ok(Next::Return(0))
}

pub fn pci_config_create(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let function = args.word(0);
    if !pci_config::is_valid(function) {
        return Err(Error::InvalidArgument);
    }
    mint(k, Object::PciConfig(function as u32))
}

/// The configuration access a capability lets the caller make.
fn checked_config(k: &mut Kernel, args: &Args) -> Result<Access, Error> {
    let pid = k.current_pid();
    let cap = k.cap_check(pid, args.handle(0)?, Some(kind::PCI_CONFIG), 0)?;
    let Object::PciConfig(functions) = cap.object else {
        return Err(Error::WrongType);
    };
    Access::checked(functions, args.word(1), args.word(2))
}

pub fn pci_config_read(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    Ok(Next::Return(checked_config(k, args)?.read() as usize))
}

pub fn pci_config_write(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    checked_config(k, args)?.write(args.word(3) as u32);
    Ok(Next::Return(0))
}

pub fn pci_bar_size(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    if !k.current_process().has_right(rights::SYSTEM) {
        return Err(Error::PermissionDenied);
    }
    let function = u16::try_from(args.word(0)).map_err(|_| Error::InvalidArgument)?;
    let size = crate::device::pci_bars::size(function, args.word(1)).ok_or(Error::NotFound)?;
    Ok(Next::Return(size as usize))
}

pub fn log_read(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let (addr, len) = (args.word(1), args.word(2).min(16 * 1024));
    let pid = k.current_pid();
    k.cap_check(pid, args.handle(0)?, Some(kind::LOG), cap_rights::READ)?;
    let space = k.current_space();
    space.check_access(addr, len, true)?;
    let bytes = crate::log::take(len);
    UserSlice::new(addr, bytes.len()).write(space, &bytes)?;
    Ok(Next::Return(bytes.len()))
}
