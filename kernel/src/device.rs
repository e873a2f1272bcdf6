//! Devices as capabilities: interrupt lines, MSI-X vectors ([`msi`]), I/O port ranges, PCI
//! configuration space through the kernel ([`pci_config`]), BAR sizes measured at boot
//! ([`pci_bars`]), and the kernel log.
//!
//! The kernel drives no device beyond the timer; drivers are processes. An interrupt on a
//! bound line masks the line and notifies the driver's port; the driver acknowledges it to
//! unmask. An MSI-X vector only notifies. I/O ports are read and written through syscalls that check the capability's
//! range. While any driver holds the console's ports, the kernel log (kernel messages and
//! debug writes) fills a buffer the console driver drains, instead of garbling its line.

pub mod msi;
pub mod pci_bars;
pub mod pci_config;

use crate::arch::ioapic;
use crate::cap::{CapTable, Object};
use crate::ipc::PortId;
use keel_abi::Error;

/// COM1's I/O ports: whoever holds a capability to them owns the console.
const CONSOLE_PORTS: core::ops::Range<u32> = 0x3f8..0x400;

#[derive(Default)]
pub struct Devices {
    /// Where each legacy line's interrupts go: a port and the bits to signal.
    irq: [Option<(PortId, u64)>; ioapic::LINES as usize],
    /// Where each MSI-X vector's interrupts go.
    msi: [Option<(PortId, u64)>; msi::VECTORS.end as usize - msi::VECTORS.start as usize],
    /// Where "log bytes arrived" goes.
    log: Option<(PortId, u64)>,
}

/// Whether an I/O port capability's range covers `[port, port + width)`.
pub fn ports_cover(object: Object, port: u32, width: u32) -> bool {
    match object {
        Object::IoPorts(base, len) => {
            port >= base as u32 && port + width <= base as u32 + len as u32
        }
        _ => false,
    }
}

/// Route the log to the buffer while any capability in `caps` covers the console's ports.
pub fn update_console_owner(caps: &CapTable) {
    let owned = caps.any(|object| match object {
        Object::IoPorts(base, len) => {
            let range = base as u32..base as u32 + len as u32;
            range.start < CONSOLE_PORTS.end && CONSOLE_PORTS.start < range.end
        }
        _ => false,
    });
    crate::log::set_buffered(owned);
}

impl Devices {
    /// Where an event source's events go: its binding.
    fn binding(&mut self, source: Object) -> Option<&mut Option<(PortId, u64)>> {
        match source {
            Object::Irq(line) => self.irq.get_mut(usize::from(line)),
            Object::Msi(vector) => self.msi.get_mut(msi::index(vector.into())?),
            Object::Log => Some(&mut self.log),
            _ => None,
        }
    }

    /// Where `source`'s events go, if it is bound.
    pub fn target(&self, source: Object) -> Option<(PortId, u64)> {
        match source {
            Object::Irq(line) => *self.irq.get(usize::from(line))?,
            Object::Msi(vector) => *self.msi.get(msi::index(vector.into())?)?,
            Object::Log => self.log,
            _ => None,
        }
    }

    /// The port `source` signalled is gone: unbind it (a line stays masked: it was, for
    /// the interrupt that found the port gone).
    pub fn unbind(&mut self, source: Object) {
        if let Some(binding) = self.binding(source) {
            *binding = None;
        }
    }

    /// A free MSI-X vector: one no capability in `caps` names.
    pub fn free_vector(caps: &CapTable) -> Option<u8> {
        msi::VECTORS
            .clone()
            .find(|&vector| caps.count(Object::Msi(vector)) == 0)
    }

    /// An interrupt line or vector lost a capability: if `caps` holds none, unbind it
    /// (and mask a line), so the next holder starts unbound.
    pub fn interrupt_released(&mut self, source: Object, caps: &CapTable) {
        if caps.count(source) == 0 {
            self.unbind(source);
            if let Object::Irq(line) = source {
                ioapic::set_masked(line, true);
            }
        }
    }

    /// Bind an event source to a port.
    pub fn bind_event(
        &mut self,
        source: Object,
        target: Option<(PortId, u64)>,
    ) -> Result<(), Error> {
        match source {
            Object::Irq(line) => {
                self.irq[line as usize] = target;
                ioapic::set_masked(line, target.is_none());
            }
            Object::Msi(vector) => {
                *self
                    .binding(Object::Msi(vector))
                    .ok_or(Error::InvalidArgument)? = target;
            }
            Object::Log => {
                self.log = target;
                crate::log::mark_pending();
            }
            _ => return Err(Error::WrongType),
        }
        Ok(())
    }
}
