//! PCI configuration space: the registers every function has (identity, class, BARs, the
//! interrupt pin), read through a mapping of its 4 KiB ECAM page or, on a machine without
//! ECAM, through the kernel (a [`PciConfig`] capability; the first 256 bytes only).
//!
//! init enumerates the bus with it (mapping whole buses, or with a capability to every
//! function), and a driver reads its own function's: the first device memory capability
//! it was granted, or its configuration capability.

use core::cell::Cell;

use keel_abi::Error;
use keel_abi::cap::Handle;

use super::{Device, DeviceMemory, PciConfig};

/// Bytes of configuration space per function (ECAM).
pub const FUNCTION_SIZE: usize = 4096;
/// Command register bits: decode memory BARs, decode I/O BARs, master the bus (DMA).
pub const COMMAND_IO: u16 = 1 << 0;
pub const COMMAND_MEMORY: u16 = 1 << 1;
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Command register bit: INTx is disabled.
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// Capability ids (PCI 3.0, appendix H).
pub const CAPABILITY_VENDOR: u8 = 0x09;
pub const CAPABILITY_MSIX: u8 = 0x11;

const VENDOR: usize = 0x00;
const COMMAND: usize = 0x04;
/// In the status register (the command register's dword): the function lists capabilities.
const STATUS_CAPABILITIES: u32 = 1 << 20;
const CAPABILITIES: usize = 0x34;
/// MSI-X message control (the capability's upper half-word): on, and all vectors masked.
const MSIX_ENABLE: u32 = 1 << 31;
const MSIX_FUNCTION_MASK: u32 = 1 << 30;
/// Bytes per MSI-X table entry: address (64 bits), data, vector control (bit 0: masked).
const MSIX_ENTRY: usize = 16;
const CLASS: usize = 0x08;
const HEADER_TYPE: usize = 0x0e;
const BAR0: usize = 0x10;
const SECONDARY_BUS: usize = 0x19;
const INTERRUPT_LINE: usize = 0x3c;
const INTERRUPT_PIN: usize = 0x3d;

/// A BAR as its register says: where it is and what it decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// Its index (0..6); a 64-bit BAR takes this register and the next.
    pub index: usize,
    /// The physical address (memory) or port (I/O) of its first byte.
    pub address: u64,
    pub io: bool,
    pub wide: bool,
}

/// One function's configuration registers, however they are reached.
#[derive(Clone, Copy)]
pub struct ConfigSpace<'a> {
    access: Access<'a>,
}

#[derive(Clone, Copy)]
enum Access<'a> {
    /// Its ECAM page, `offset` bytes into `registers`.
    Ecam {
        registers: &'a DeviceMemory,
        offset: usize,
    },
    /// Through the kernel, as `function` (`bus << 8 | device << 3 | function`).
    Kernel {
        capability: &'a PciConfig,
        function: u16,
    },
}

impl<'a> ConfigSpace<'a> {
    /// The function whose ECAM page starts `offset` bytes into `registers`.
    pub fn new(registers: &'a DeviceMemory, offset: usize) -> ConfigSpace<'a> {
        ConfigSpace {
            access: Access::Ecam { registers, offset },
        }
    }

    /// Function `function` (`bus << 8 | device << 3 | function`) through the kernel, as far
    /// as `capability` reaches.
    pub fn through_kernel(capability: &'a PciConfig, function: u16) -> ConfigSpace<'a> {
        ConfigSpace {
            access: Access::Kernel {
                capability,
                function,
            },
        }
    }

    /// The 32-bit register at `register` (a multiple of 4, below 4096; through the kernel,
    /// below 256).
    pub fn read32(&self, register: usize) -> Result<u32, Error> {
        match self.access {
            Access::Ecam { registers, offset } => registers.read32(offset + in_page(register)?),
            Access::Kernel {
                capability,
                function,
            } => capability.read(function, register, 4),
        }
    }

    pub fn write32(&self, register: usize, value: u32) -> Result<(), Error> {
        match self.access {
            Access::Ecam { registers, offset } => {
                registers.write32(offset + in_page(register)?, value)
            }
            Access::Kernel {
                capability,
                function,
            } => capability.write(function, register, 4, value),
        }
    }

    fn byte(&self, register: usize) -> Result<u8, Error> {
        let word = self.read32(register & !3)?;
        Ok((word >> (8 * (register & 3))) as u8)
    }

    /// The function's capabilities, in list order: (id, offset).
    pub fn capabilities(&self) -> Result<alloc::vec::Vec<(u8, usize)>, Error> {
        let mut found = alloc::vec::Vec::new();
        if self.read32(COMMAND)? & STATUS_CAPABILITIES == 0 {
            return Ok(found);
        }
        let mut next = usize::from(self.byte(CAPABILITIES)? & !3);
        // 48 capabilities fill the 256 bytes: a longer list loops.
        while next != 0 && found.len() < 48 {
            let word = self.read32(next)?;
            found.push((word as u8, next));
            next = usize::from((word >> 8) as u8 & !3);
        }
        Ok(found)
    }

    /// Whether a function answers here (its vendor is not all ones).
    pub fn present(&self) -> bool {
        self.vendor_id().is_ok_and(|vendor| vendor != 0xffff)
    }

    pub fn vendor_id(&self) -> Result<u16, Error> {
        Ok(self.read32(VENDOR)? as u16)
    }

    pub fn device_id(&self) -> Result<u16, Error> {
        Ok((self.read32(VENDOR)? >> 16) as u16)
    }

    /// Class and subclass.
    pub fn class(&self) -> Result<(u8, u8), Error> {
        let word = self.read32(CLASS)?;
        Ok(((word >> 24) as u8, (word >> 16) as u8))
    }

    /// Whether the function is one of several in its device (header type bit 7).
    pub fn multifunction(&self) -> Result<bool, Error> {
        Ok(self.byte(HEADER_TYPE)? & 0x80 != 0)
    }

    /// A PCI-to-PCI bridge's secondary bus, if this function is one.
    pub fn secondary_bus(&self) -> Result<Option<u8>, Error> {
        let bridge = self.byte(HEADER_TYPE)? & 0x7f == 1;
        Ok(if bridge {
            Some(self.byte(SECONDARY_BUS)?)
        } else {
            None
        })
    }

    /// The interrupt line firmware routed its pin to (on a PC: an ISA line; 0xff: none).
    pub fn interrupt_line(&self) -> Result<u8, Error> {
        self.byte(INTERRUPT_LINE)
    }

    /// Which INTx pin it raises: 1..=4 for INTA..INTD, 0 for none.
    pub fn interrupt_pin(&self) -> Result<u8, Error> {
        self.byte(INTERRUPT_PIN)
    }

    pub fn command(&self) -> Result<u16, Error> {
        Ok(self.read32(COMMAND)? as u16)
    }

    /// Set the command register (the status half is write-1-to-clear: written as 0).
    pub fn set_command(&self, command: u16) -> Result<(), Error> {
        self.write32(COMMAND, command.into())
    }

    /// BAR `index` as its registers say, or `None` for an empty or out-of-range one (the
    /// upper half of a 64-bit BAR included).
    pub fn bar(&self, index: usize) -> Result<Option<Bar>, Error> {
        if index >= 6 {
            return Ok(None);
        }
        let low = self.read32(BAR0 + 4 * index)?;
        let io = low & 1 != 0;
        let wide = !io && (low >> 1) & 3 == 2;
        let high = if wide && index < 5 {
            self.read32(BAR0 + 4 * (index + 1))?
        } else {
            0
        };
        let mask = if io { !3 } else { !0xf };
        let address = (u64::from(high) << 32) | u64::from(low & mask);
        Ok((address != 0).then_some(Bar {
            index,
            address,
            io,
            wide,
        }))
    }
}

/// `register` if it lies in one function's ECAM page (not the next function's).
fn in_page(register: usize) -> Result<usize, Error> {
    (register < FUNCTION_SIZE)
        .then_some(register)
        .ok_or(Error::InvalidArgument)
}

/// A driver's PCI function: its configuration space and the BARs it was granted.
pub struct PciFunction<'a> {
    device: &'a Device,
    config: ConfigSpace<'a>,
    /// Its memory BARs.
    bars: &'a [DeviceMemory],
}

impl<'a> PciFunction<'a> {
    /// The function `device` was granted: its configuration capability if it has one (no
    /// ECAM), else its first device memory capability is the configuration page.
    pub fn new(device: &'a Device) -> Result<PciFunction<'a>, Error> {
        let (config, bars) = match &device.pci_config {
            Some(capability) => {
                let function = capability.function().ok_or(Error::InvalidArgument)?;
                let config = ConfigSpace::through_kernel(capability, function);
                (config, &device.memory[..])
            }
            None => {
                let page = device.memory.first().ok_or(Error::NotFound)?;
                (ConfigSpace::new(page, 0), &device.memory[1..])
            }
        };
        Ok(PciFunction {
            device,
            config,
            bars,
        })
    }

    pub fn config(&self) -> ConfigSpace<'a> {
        self.config
    }

    /// The memory BARs granted, in the order granted.
    pub fn bars(&self) -> &'a [DeviceMemory] {
        self.bars
    }

    /// A device capability to show for DMA memory: the configuration page or capability.
    pub fn device_capability(&self) -> Handle {
        match &self.device.pci_config {
            Some(capability) => capability.handle(),
            None => self.device.memory[0].handle(),
        }
    }

    /// The registers of memory BAR `index`, if granted.
    pub fn bar(&self, index: usize) -> Result<Option<&'a DeviceMemory>, Error> {
        let Some(bar) = self.config.bar(index)?.filter(|bar| !bar.io) else {
            return Ok(None);
        };
        Ok(self.bars.iter().find(|memory| memory.phys() == bar.address))
    }

    /// Its configuration space with the memory map pinned, for a driver library that sizes
    /// BARs or turns decoding off (virtio-drivers does both).
    pub fn pinned_config(&self) -> PinnedConfig<'a> {
        PinnedConfig {
            config: self.config,
            bars: self.bars,
            sizing: Cell::new(0),
        }
    }

    /// Raise `vector` (an MSI-X vector capability) for the function's MSI-X table entry
    /// 0, unmasked, and turn MSI-X on (INTx goes quiet). `false`, leaving everything as it
    /// was, when the function has no MSI-X or its table's BAR was not granted.
    pub fn enable_msix(&self, vector: &super::IrqLine) -> Result<bool, Error> {
        let Some(offset) = self.msix()? else {
            return Ok(false);
        };
        let table = self.config.read32(offset + 4)?;
        let Some(bar) = self.bar((table & 7) as usize)? else {
            return Ok(false);
        };
        let entry = (table & !7) as usize;
        let (address, data) = vector.message()?;
        bar.write32(entry, address as u32)?;
        bar.write32(entry + 4, (address >> 32) as u32)?;
        bar.write32(entry + 8, data)?;
        bar.write32(entry + MSIX_ENTRY - 4, 0)?;
        self.set_msix(offset, true)?;
        Ok(true)
    }

    /// Turn MSI-X off again: the function interrupts through INTx.
    pub fn disable_msix(&self) -> Result<(), Error> {
        match self.msix()? {
            Some(offset) => self.set_msix(offset, false),
            None => Ok(()),
        }
    }

    /// Where its MSI-X capability is, if it has one.
    fn msix(&self) -> Result<Option<usize>, Error> {
        let capabilities = self.config.capabilities()?;
        Ok(capabilities
            .into_iter()
            .find_map(|(id, offset)| (id == CAPABILITY_MSIX).then_some(offset)))
    }

    fn set_msix(&self, offset: usize, on: bool) -> Result<(), Error> {
        let word = self.config.read32(offset)? & !(MSIX_ENABLE | MSIX_FUNCTION_MASK);
        let enable = if on { MSIX_ENABLE } else { 0 };
        self.config.write32(offset, word | enable)
    }
}

/// A function's configuration space that never moves a BAR nor turns decoding off: a BAR
/// write is not passed on (all ones starts sizing, answered from the BARs granted; anything
/// else ends it), and a command write keeps the decoding bits as they are.
///
/// The physical memory map stays as firmware left it while the system runs: no driver needs
/// it changed, and QEMU 7.2's multi-threaded TCG crashes when it changes while another core
/// touches device registers (docs/decisions/014-pinned-pci-memory-map.md).
#[derive(Clone)]
pub struct PinnedConfig<'a> {
    config: ConfigSpace<'a>,
    bars: &'a [DeviceMemory],
    /// One bit per BAR register being sized.
    sizing: Cell<u8>,
}

impl PinnedConfig<'_> {
    pub fn read32(&self, register: usize) -> Result<u32, Error> {
        let value = self.config.read32(register)?;
        match bar_register(register) {
            Some(index) if self.sizing.get() & (1 << index) != 0 => self.size_mask(index, value),
            _ => Ok(value),
        }
    }

    pub fn write32(&self, register: usize, value: u32) -> Result<(), Error> {
        if let Some(index) = bar_register(register) {
            let bit = 1 << index;
            let sizing = self.sizing.get();
            self.sizing.set(if value == !0 {
                sizing | bit
            } else {
                sizing & !bit
            });
            return Ok(());
        }
        if register == COMMAND {
            let decoding = u32::from(COMMAND_IO | COMMAND_MEMORY);
            let now = self.config.read32(COMMAND)? & decoding;
            return self.config.write32(COMMAND, (value & !decoding) | now);
        }
        self.config.write32(register, value)
    }

    /// What BAR register `index` reads as after all ones were written to it (`value` is what
    /// it holds): the granted length's mask, or 0 (nothing decoded) for a BAR not granted.
    fn size_mask(&self, index: usize, value: u32) -> Result<u32, Error> {
        let Some((bar, upper)) = self.bar_of_register(index)? else {
            return Ok(0);
        };
        let granted = self.bars.iter().find(|memory| memory.phys() == bar.address);
        let Some(len) = granted.map(|memory| memory.len() as u64) else {
            return Ok(0);
        };
        let mask = !(len.next_power_of_two() - 1);
        Ok(if upper {
            (mask >> 32) as u32
        } else {
            (mask as u32 & !0xf) | (value & 0xf)
        })
    }

    /// The BAR register `index` belongs to, and whether it is a 64-bit BAR's upper half.
    fn bar_of_register(&self, index: usize) -> Result<Option<(Bar, bool)>, Error> {
        let mut at = 0;
        while at <= index {
            let bar = self.config.bar(at)?;
            match bar {
                Some(bar) if bar.wide && at + 1 == index => return Ok(Some((bar, true))),
                _ if at == index => return Ok(bar.map(|bar| (bar, false))),
                Some(bar) if bar.wide => at += 2,
                _ => at += 1,
            }
        }
        Ok(None)
    }
}

/// Which BAR register (0..6) `register` is, if it is one.
fn bar_register(register: usize) -> Option<usize> {
    (BAR0..BAR0 + 24)
        .contains(&register)
        .then_some((register - BAR0) / 4)
}
