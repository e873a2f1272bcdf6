//! Devices as capabilities: interrupt lines, I/O port ranges, PCI configuration space
//! through the kernel ([`pci_config`]), and the kernel log.
//!
//! The kernel drives no device beyond the timer; drivers are processes. An interrupt on a
//! bound line masks the line and notifies the driver's port; the driver acknowledges it to
//! unmask. I/O ports are read and written through syscalls that check the capability's
//! range. While any driver holds the console's ports, the kernel log (kernel messages and
//! debug writes) fills a buffer the console driver drains, instead of garbling its line.

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
    /// Where legacy `line`'s interrupts go, if it is bound.
    pub fn irq_target(&self, line: u8) -> Option<(PortId, u64)> {
        self.irq[line as usize]
    }

    /// Where "log bytes arrived" goes, if anywhere.
    pub fn log_target(&self) -> Option<(PortId, u64)> {
        self.log
    }

    /// The port `line` signalled is gone: unbind it, leaving it masked (it was, for the
    /// interrupt that found the port gone).
    pub fn unbind_irq(&mut self, line: u8) {
        self.irq[line as usize] = None;
    }

    /// The port the log signalled is gone.
    pub fn unbind_log(&mut self) {
        self.log = None;
    }

    /// An interrupt line lost a capability: unbind and mask it if `caps` holds none.
    pub fn irq_released(&mut self, line: u8, caps: &CapTable) {
        if caps.count(Object::Irq(line)) == 0 {
            self.irq[line as usize] = None;
            ioapic::set_masked(line, true);
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
            Object::Log => {
                self.log = target;
                crate::log::mark_pending();
            }
            _ => return Err(Error::WrongType),
        }
        Ok(())
    }
}
