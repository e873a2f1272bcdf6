//! virtio's side of MSI-X (virtio 1.2, 4.1.4.3 and 4.1.5.1.3): which table entry each
//! interrupt source uses, written into the common configuration structure. The table
//! entry itself and the capability's switch are the PCI side (`PciFunction::enable_msix`).

use keel_rt::abi::Error;
use keel_rt::driver::DeviceMemory;
use keel_rt::driver::pci::{CAPABILITY_VENDOR, PciFunction};

/// `cfg_type` of the common configuration structure's capability.
const COMMON_CFG: u8 = 1;
/// Offsets in the common configuration structure.
const MSIX_CONFIG: usize = 0x10;
const QUEUE_SELECT: usize = 0x16;
const QUEUE_MSIX_VECTOR: usize = 0x1a;
/// "No vector": the source does not interrupt.
const NO_VECTOR: u16 = 0xffff;

/// The device's common configuration structure: the BAR holding it, and where in it.
#[derive(Clone, Copy)]
pub struct CommonConfig<'a> {
    registers: &'a DeviceMemory,
    offset: usize,
}

impl<'a> CommonConfig<'a> {
    /// Where the function's virtio capabilities put it, if its BAR was granted.
    pub fn find(function: &PciFunction<'a>) -> Result<Option<CommonConfig<'a>>, Error> {
        let config = function.config();
        for (id, at) in config.capabilities()? {
            // id, next, length, then cfg_type; the BAR; padding; the offset.
            if id != CAPABILITY_VENDOR || (config.read32(at)? >> 24) as u8 != COMMON_CFG {
                continue;
            }
            let bar = config.read32(at + 4)? as u8;
            let offset = config.read32(at + 8)? as usize;
            let registers = function.bar(bar.into())?;
            return Ok(registers.map(|registers| CommonConfig { registers, offset }));
        }
        Ok(None)
    }

    /// Send queue `queue`'s interrupts to table entry 0 and configuration changes nowhere
    /// (this driver does not wait for any). Before the queue is enabled, as the spec
    /// says; whether the device took the entry (it reads back "no vector" when not).
    pub fn route_queue(&self, queue: u16) -> bool {
        let write = |at, value| self.registers.write16(self.offset + at, value);
        let written = write(MSIX_CONFIG, NO_VECTOR)
            .and(write(QUEUE_SELECT, queue))
            .and(write(QUEUE_MSIX_VECTOR, 0));
        written.is_ok() && self.registers.read16(self.offset + QUEUE_MSIX_VECTOR) == Ok(0)
    }
}
