//! PCI configuration space: the registers every function has (identity, class, BARs, the
//! interrupt pin), read through a mapping of its 4 KiB ECAM page or, on a machine without
//! ECAM, through the kernel (a [`PciConfig`] capability; the first 256 bytes only).
//!
//! init enumerates the bus with it (mapping whole buses, or with a capability to every
//! function), and a driver reads its own function's: the first device memory capability
//! it was granted, or its configuration capability.

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

    /// How many bytes BAR `bar` decodes, by writing all ones and reading back. Decoding
    /// must be off (the command register) while it runs; the BAR is restored.
    pub fn bar_size(&self, bar: &Bar) -> Result<u64, Error> {
        let register = BAR0 + 4 * bar.index;
        let low = self.read32(register)?;
        self.write32(register, !0)?;
        let mut mask = u64::from(self.read32(register)? & if bar.io { !3 } else { !0xf });
        self.write32(register, low)?;
        if bar.wide {
            let high = self.read32(register + 4)?;
            self.write32(register + 4, !0)?;
            mask |= u64::from(self.read32(register + 4)?) << 32;
            self.write32(register + 4, high)?;
        } else {
            mask |= if bar.io {
                0xffff_ffff_ffff_0000
            } else {
                0xffff_ffff_0000_0000
            };
        }
        Ok((!mask).wrapping_add(1))
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
