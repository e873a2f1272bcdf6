//! A device's capabilities, typed: I/O port ranges, interrupt lines, device registers
//! (memory-mapped: a PCI function's configuration page and BARs), PCI configuration space
//! through the kernel (machines without ECAM) and the kernel log.
//!
//! Each value owns its capability and deletes it when dropped: the kernel masks a line
//! whose last capability goes, and sends its log back to the serial line when no
//! capability covers COM1 any more, so letting go is how a driver hands a device back.

use alloc::vec::Vec;
use core::cell::Cell;

use keel_abi::Error;
use keel_abi::cap::{Handle, kind};

use super::{LOG_BIT, irq_bit};
use crate::executor::wake;
use crate::mem::{Mapping, Memory};
use crate::{cap, sys};

/// What `cap_info` says about `handle`, which must be of `expected` kind.
fn object_of(handle: Handle, expected: u32) -> Result<u64, Error> {
    let info = cap::info(handle)?;
    if info.kind != expected {
        return Err(Error::WrongType);
    }
    Ok(info.object)
}

/// A capability to I/O ports `base..base + len`. Every access is a syscall the kernel
/// checks against the range; offsets are from `base`.
#[derive(Debug)]
pub struct IoPorts {
    handle: Handle,
    base: u16,
    len: u16,
}

impl IoPorts {
    /// The I/O port capability this process holds as `handle`.
    pub fn from_handle(handle: Handle) -> Result<IoPorts, Error> {
        // The kernel reports a range as its object id: `base << 16 | len`.
        let object = object_of(handle, kind::IO_PORTS)?;
        Ok(IoPorts {
            handle,
            base: (object >> 16) as u16,
            len: object as u16,
        })
    }

    /// Mint a capability to `base..base + len` (needs the SYSTEM process right).
    pub fn create(base: u16, len: u16) -> Result<IoPorts, Error> {
        let handle = sys::device::ioport_create(base, len)?;
        Ok(IoPorts { handle, base, len })
    }

    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// The first port of the range.
    pub fn base(&self) -> u16 {
        self.base
    }

    /// How many ports the range holds.
    pub fn len(&self) -> u16 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn read8(&self, offset: u16) -> Result<u8, Error> {
        self.read(offset, 1).map(|value| value as u8)
    }

    pub fn read16(&self, offset: u16) -> Result<u16, Error> {
        self.read(offset, 2).map(|value| value as u16)
    }

    pub fn read32(&self, offset: u16) -> Result<u32, Error> {
        self.read(offset, 4)
    }

    pub fn write8(&self, offset: u16, value: u8) -> Result<(), Error> {
        self.write(offset, 1, value.into())
    }

    pub fn write16(&self, offset: u16, value: u16) -> Result<(), Error> {
        self.write(offset, 2, value.into())
    }

    pub fn write32(&self, offset: u16, value: u32) -> Result<(), Error> {
        self.write(offset, 4, value)
    }

    fn read(&self, offset: u16, width: usize) -> Result<u32, Error> {
        sys::device::ioport_read(self.handle, self.port(offset)?, width)
    }

    fn write(&self, offset: u16, width: usize, value: u32) -> Result<(), Error> {
        sys::device::ioport_write(self.handle, self.port(offset)?, width, value)
    }

    fn port(&self, offset: u16) -> Result<u16, Error> {
        self.base.checked_add(offset).ok_or(Error::InvalidArgument)
    }
}

impl Drop for IoPorts {
    fn drop(&mut self) {
        let _ = cap::delete(self.handle);
    }
}

/// A capability to a legacy interrupt line, or to an MSI-X vector. Bound, it notifies the
/// executor's wake port with [`irq_bit`]; a line masks itself until [`ack`](IrqLine::ack)
/// (for a vector, acking does nothing: the function's MSI-X table has the mask).
#[derive(Debug)]
pub struct IrqLine {
    handle: Handle,
    line: u8,
    vector: bool,
}

impl IrqLine {
    /// The interrupt line or vector capability this process holds as `handle`.
    pub fn from_handle(handle: Handle) -> Result<IrqLine, Error> {
        let info = cap::info(handle)?;
        if info.kind != kind::IRQ && info.kind != kind::MSI_VECTOR {
            return Err(Error::WrongType);
        }
        // The kernel reports a line's or vector's number as its object id.
        Ok(IrqLine {
            handle,
            line: info.object as u8,
            vector: info.kind == kind::MSI_VECTOR,
        })
    }

    /// Mint a capability to line `line` (needs the SYSTEM process right).
    pub fn create(line: u8) -> Result<IrqLine, Error> {
        let handle = sys::device::irq_create(line)?;
        Ok(IrqLine {
            handle,
            line,
            vector: false,
        })
    }

    /// Whether it is an MSI-X vector rather than a line.
    pub fn is_vector(&self) -> bool {
        self.vector
    }

    /// For a vector: the (address, data) to write into an MSI-X table entry to raise it.
    pub fn message(&self) -> Result<(u64, u32), Error> {
        sys::device::msi_message(self.handle)
    }

    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// The line's number (4 for COM1), or the vector's (a CPU vector).
    pub fn line(&self) -> u8 {
        self.line
    }

    /// The wake-port notification bit this line signals once bound.
    pub fn bit(&self) -> u32 {
        irq_bit(self.line)
    }

    /// Route the line's interrupts to the executor's wake port, and unmask it.
    pub fn bind(&self) -> Result<(), Error> {
        let port = wake::port().handle();
        sys::device::event_bind(self.handle, port, 1 << self.bit())
    }

    /// Stop routing the line's interrupts anywhere, and mask it.
    pub fn unbind(&self) -> Result<(), Error> {
        sys::device::event_bind(self.handle, 0, 0)
    }

    /// The interrupt is handled: unmask the line (a vector needs nothing).
    pub fn ack(&self) -> Result<(), Error> {
        if self.vector {
            return Ok(());
        }
        sys::device::irq_ack(self.handle)
    }
}

impl Drop for IrqLine {
    fn drop(&mut self) {
        let _ = cap::delete(self.handle);
    }
}

/// A capability to PCI configuration space through the kernel (the legacy mechanism, for
/// machines without ECAM): one function's, or for init every function's. Each access is a
/// syscall the kernel checks; [`ConfigSpace`](super::pci::ConfigSpace) reads it.
#[derive(Debug)]
pub struct PciConfig {
    handle: Handle,
    /// `bus << 8 | device << 3 | function`, or `None` for all of them.
    function: Option<u16>,
}

impl PciConfig {
    /// The configuration capability this process holds as `handle`.
    pub fn from_handle(handle: Handle) -> Result<PciConfig, Error> {
        // The kernel reports the function as its object id.
        let object = object_of(handle, kind::PCI_CONFIG)?;
        Ok(PciConfig {
            handle,
            function: u16::try_from(object).ok(),
        })
    }

    /// Mint a capability to `function`, or to all with `None` (needs the SYSTEM right).
    pub fn create(function: Option<u16>) -> Result<PciConfig, Error> {
        let raw = function.map_or(keel_abi::pci::ALL_FUNCTIONS, usize::from);
        let handle = sys::device::pci_config_create(raw)?;
        Ok(PciConfig { handle, function })
    }

    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// The one function it names, if it names one.
    pub fn function(&self) -> Option<u16> {
        self.function
    }

    /// The `width`-byte register `register` of `function`.
    pub fn read(&self, function: u16, register: usize, width: usize) -> Result<u32, Error> {
        let address = keel_abi::pci::address(function, register);
        sys::device::pci_config_read(self.handle, address, width)
    }

    pub fn write(
        &self,
        function: u16,
        register: usize,
        width: usize,
        value: u32,
    ) -> Result<(), Error> {
        let address = keel_abi::pci::address(function, register);
        sys::device::pci_config_write(self.handle, address, width, value)
    }
}

impl Drop for PciConfig {
    fn drop(&mut self) {
        let _ = cap::delete(self.handle);
    }
}

/// A capability to the kernel log buffer, which fills instead of the serial line while a
/// driver holds COM1's ports. Only the console driver needs it.
#[derive(Debug)]
pub struct KernelLog {
    handle: Handle,
    bound: Cell<bool>,
}

impl KernelLog {
    /// The log capability this process holds as `handle`.
    pub fn from_handle(handle: Handle) -> Result<KernelLog, Error> {
        object_of(handle, kind::LOG)?;
        Ok(KernelLog {
            handle,
            bound: Cell::new(false),
        })
    }

    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// Have the kernel signal [`LOG_BIT`] on the wake port when bytes arrive. It signals
    /// once at once, for what is already there.
    pub fn bind(&self) -> Result<(), Error> {
        let port = wake::port().handle();
        sys::device::event_bind(self.handle, port, 1 << LOG_BIT)?;
        self.bound.set(true);
        Ok(())
    }

    /// Take up to `buf.len()` of the oldest bytes; 0 when the buffer is empty.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, Error> {
        sys::device::log_read(self.handle, buf)
    }

    /// Wait for the kernel's next "bytes arrived" signal (after [`bind`](KernelLog::bind)).
    /// Read until empty before waiting: the kernel signals arrivals, not contents.
    pub async fn arrival(&self) {
        wake::notification(LOG_BIT).await
    }
}

impl Drop for KernelLog {
    fn drop(&mut self) {
        if self.bound.get() {
            let _ = sys::device::event_bind(self.handle, 0, 0);
        }
        let _ = cap::delete(self.handle);
    }
}

/// A capability to device registers (memory-mapped I/O), mapped here uncached. Accesses
/// are volatile and bounds-checked; offsets are from the first register.
#[derive(Debug)]
pub struct DeviceMemory {
    memory: Memory,
    mapping: Mapping,
    phys: u64,
}

impl DeviceMemory {
    /// The device memory capability this process holds as `handle`, mapped read-write.
    pub fn from_handle(handle: Handle) -> Result<DeviceMemory, Error> {
        object_of(handle, kind::MEMORY)?;
        let memory = Memory::from_handle(handle);
        let phys = sys::device::mem_phys(handle, 0)?;
        let mapping = memory.map(keel_abi::prot::READ | keel_abi::prot::WRITE)?;
        Ok(DeviceMemory {
            memory,
            mapping,
            phys,
        })
    }

    /// Mint a capability to registers `[phys, phys + len)` and map it (needs the SYSTEM
    /// process right).
    pub fn create(phys: u64, len: usize) -> Result<DeviceMemory, Error> {
        let handle = sys::device::mem_create_device(phys, len)?;
        DeviceMemory::from_handle(handle).inspect_err(|_| {
            let _ = cap::delete(handle);
        })
    }

    pub fn handle(&self) -> Handle {
        self.memory.handle()
    }

    /// The physical address of the first register.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the registers are mapped here.
    pub fn as_ptr(&self) -> *mut u8 {
        self.mapping.as_ptr()
    }

    /// The register of type `T` at `offset`: in bounds and aligned, or `InvalidArgument`.
    fn register<T>(&self, offset: usize) -> Result<*mut T, Error> {
        let size = core::mem::size_of::<T>();
        if !offset.is_multiple_of(size)
            || offset.checked_add(size).is_none_or(|end| end > self.len())
        {
            return Err(Error::InvalidArgument);
        }
        // SAFETY: `offset + size` is within the mapping, checked above.
        Ok(unsafe { self.as_ptr().add(offset) }.cast())
    }

    fn read<T>(&self, offset: usize) -> Result<T, Error> {
        let register = self.register::<T>(offset)?;
        // SAFETY: an aligned register inside the mapping, which lives as long as `self`.
        Ok(unsafe { register.read_volatile() })
    }

    fn write<T>(&self, offset: usize, value: T) -> Result<(), Error> {
        let register = self.register::<T>(offset)?;
        // SAFETY: as for `read`; the mapping is writable.
        unsafe { register.write_volatile(value) };
        Ok(())
    }

    pub fn read8(&self, offset: usize) -> Result<u8, Error> {
        self.read(offset)
    }

    pub fn read16(&self, offset: usize) -> Result<u16, Error> {
        self.read(offset)
    }

    pub fn read32(&self, offset: usize) -> Result<u32, Error> {
        self.read(offset)
    }

    pub fn write16(&self, offset: usize, value: u16) -> Result<(), Error> {
        self.write(offset, value)
    }

    pub fn write32(&self, offset: usize, value: u32) -> Result<(), Error> {
        self.write(offset, value)
    }
}

impl Drop for DeviceMemory {
    fn drop(&mut self) {
        // Deleting the capability unmaps the registers.
        let _ = self.memory.delete();
    }
}

/// The capabilities of one device, as the system granted them.
#[derive(Debug, Default)]
pub struct Device {
    pub io_ports: Vec<IoPorts>,
    /// Interrupt lines and MSI-X vectors.
    pub irq_lines: Vec<IrqLine>,
    pub log: Option<KernelLog>,
    /// Device registers, in the order granted: for a PCI function, its configuration page
    /// first (with ECAM), then its memory BARs ([`PciFunction`](super::PciFunction) sorts
    /// them out).
    pub memory: Vec<DeviceMemory>,
    /// A PCI function's configuration space on a machine without ECAM.
    pub pci_config: Option<PciConfig>,
}

impl Device {
    /// The device capabilities this process was started with: handles 2.. (handle 1 is
    /// init's port), in the manifest's order: I/O port ranges, interrupt lines, the log,
    /// then a PCI function's configuration page (or its configuration capability, without
    /// ECAM), BARs, interrupt line and MSI-X vector.
    pub fn from_start_caps() -> Result<Device, Error> {
        let mut device = Device::default();
        for handle in cap::initial().skip(1) {
            match cap::info(handle)?.kind {
                kind::IO_PORTS => device.io_ports.push(IoPorts::from_handle(handle)?),
                kind::IRQ | kind::MSI_VECTOR => {
                    device.irq_lines.push(IrqLine::from_handle(handle)?)
                }
                kind::LOG => device.log = Some(KernelLog::from_handle(handle)?),
                kind::MEMORY => device.memory.push(DeviceMemory::from_handle(handle)?),
                kind::PCI_CONFIG => device.pci_config = Some(PciConfig::from_handle(handle)?),
                _ => return Err(Error::WrongType),
            }
        }
        Ok(device)
    }
}
