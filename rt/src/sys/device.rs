//! Typed wrappers for the device syscalls (35..=41, 43, 44, 53..=58): interrupt lines, I/O
//! ports, the kernel log, DMA memory, device registers, PCI configuration space and MSI-X
//! vectors. [`driver`](crate::driver) builds drivers on them.
//!
//! Minting ([`irq_create`], [`ioport_create`], [`mem_create_device`]) needs the SYSTEM process right: the system
//! (init, from its manifest) makes device capabilities and hands them to drivers.

use keel_abi::cap::Handle;
use keel_abi::{Error, Syscall};

use super::raw::call;

/// `irq_create`: a capability to interrupt line `line`: ISA (0..16) or PCI INTx (16..24).
pub fn irq_create(line: u8) -> Result<Handle, Error> {
    // SAFETY: no memory is read or written.
    unsafe { call(Syscall::IrqCreate, [line as usize]) }.map(to_handle)
}

/// `event_bind`: the event source `source` (an interrupt line or the kernel log) notifies
/// `port` with `bits`; port 0 unbinds. A bound line is unmasked; an unbound one masked.
pub fn event_bind(source: Handle, port: Handle, bits: u64) -> Result<(), Error> {
    let args = [source as usize, port as usize, bits as usize];
    // SAFETY: no memory is read or written.
    unsafe { call(Syscall::EventBind, args) }.map(drop)
}

/// `irq_ack`: the interrupt on `irq`'s line is handled; unmask the line.
pub fn irq_ack(irq: Handle) -> Result<(), Error> {
    // SAFETY: no memory is read or written.
    unsafe { call(Syscall::IrqAck, [irq as usize]) }.map(drop)
}

/// `ioport_create`: a capability to I/O ports `base..base + len`.
pub fn ioport_create(base: u16, len: u16) -> Result<Handle, Error> {
    // SAFETY: no memory is read or written.
    unsafe { call(Syscall::IoPortCreate, [base as usize, len as usize]) }.map(to_handle)
}

/// `ioport_read`: `width` (1, 2 or 4) bytes from I/O port `port`, which `cap` must cover.
pub fn ioport_read(cap: Handle, port: u16, width: usize) -> Result<u32, Error> {
    // SAFETY: the kernel reads a device register; this process's memory is not touched.
    unsafe { call(Syscall::IoPortRead, [cap as usize, port as usize, width]) }
        .map(|value| value as u32)
}

/// `ioport_write`: writes the low `width` (1, 2 or 4) bytes of `value` to I/O port `port`.
pub fn ioport_write(cap: Handle, port: u16, width: usize, value: u32) -> Result<(), Error> {
    let args = [cap as usize, port as usize, width, value as usize];
    // SAFETY: the kernel writes a device register; this process's memory is not touched.
    unsafe { call(Syscall::IoPortWrite, args) }.map(drop)
}

/// `pci_config_create`: a capability to PCI function `function`'s configuration space
/// (`bus << 8 | device << 3 | function`), or every function's with
/// [`keel_abi::pci::ALL_FUNCTIONS`], reached through the kernel.
pub fn pci_config_create(function: usize) -> Result<Handle, Error> {
    // SAFETY: no memory is read or written.
    unsafe { call(Syscall::PciConfigCreate, [function]) }.map(to_handle)
}

/// `pci_config_read`: `width` (1, 2 or 4) bytes at `address` ([`keel_abi::pci::address`]).
pub fn pci_config_read(cap: Handle, address: usize, width: usize) -> Result<u32, Error> {
    // SAFETY: the kernel reads a configuration register; this process's memory is not touched.
    unsafe { call(Syscall::PciConfigRead, [cap as usize, address, width]) }
        .map(|value| value as u32)
}

/// `pci_config_write`: the low `width` bytes of `value` at `address`.
pub fn pci_config_write(
    cap: Handle,
    address: usize,
    width: usize,
    value: u32,
) -> Result<(), Error> {
    let args = [cap as usize, address, width, value as usize];
    // SAFETY: the kernel writes a configuration register; this process's memory is not touched.
    unsafe { call(Syscall::PciConfigWrite, args) }.map(drop)
}

/// `msi_create`: a capability to a free MSI-X vector.
pub fn msi_create() -> Result<Handle, Error> {
    // SAFETY: no memory is read or written.
    unsafe { call(Syscall::MsiCreate, []) }.map(to_handle)
}

/// `msi_message`: the (address, data) an MSI-X table entry needs to raise `vector`.
pub fn msi_message(vector: Handle) -> Result<(u64, u32), Error> {
    // SAFETY: no memory is read or written.
    let message = unsafe { call(Syscall::MsiMessage, [vector as usize]) }? as u64;
    Ok((message & 0xffff_ffff, (message >> 32) as u32))
}

/// `log_read`: moves up to `buf.len()` bytes out of the kernel log buffer into `buf`;
/// returns how many. Needs a log capability with READ.
pub fn log_read(log: Handle, buf: &mut [u8]) -> Result<usize, Error> {
    let args = [log as usize, buf.as_mut_ptr() as usize, buf.len()];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    unsafe { call(Syscall::LogRead, args) }
}

/// Handles are 32 bits; the kernel returns them in a register.
fn to_handle(raw: usize) -> Handle {
    raw as Handle
}

/// Physically contiguous, pinned memory for a device, asked for by a driver that shows one
/// of its device capabilities.
pub fn mem_create_dma(device: Handle, len: usize) -> Result<Handle, Error> {
    // SAFETY: no pointers.
    unsafe { call(Syscall::MemCreateDma, [device as usize, len]) }.map(|h| h as Handle)
}

/// The physical address of byte `offset` of a DMA memory object.
pub fn mem_phys(memory: Handle, offset: usize) -> Result<u64, Error> {
    // SAFETY: no pointers.
    unsafe { call(Syscall::MemPhys, [memory as usize, offset]) }.map(|a| a as u64)
}

/// `mem_create_device`: a memory object over device registers `[phys, phys + len)`, mapped
/// uncached. Needs the SYSTEM process right; RAM is refused.
pub fn mem_create_device(phys: u64, len: usize) -> Result<Handle, Error> {
    // SAFETY: no memory of this process is read or written.
    unsafe { call(Syscall::MemCreateDevice, [phys as usize, len]) }.map(to_handle)
}

/// `dma_release`: the device of ended process `pid` is stopped, so the DMA memory the
/// kernel held for it may go; how many frames it freed. Needs the SYSTEM process right.
pub fn dma_release(pid: u32) -> Result<usize, Error> {
    // SAFETY: no memory of this process is read or written.
    unsafe { call(Syscall::DmaRelease, [pid as usize]) }
}

/// `pci_bar_size`: the size of BAR `bar` of PCI function `function` (`bus << 8 | device << 3
/// | function`), as the kernel measured it at boot; `NotFound` for none. Needs the SYSTEM
/// process right.
pub fn pci_bar_size(function: u16, bar: usize) -> Result<u64, Error> {
    // SAFETY: no memory of this process is read or written.
    unsafe { call(Syscall::PciBarSize, [usize::from(function), bar]) }.map(|size| size as u64)
}
