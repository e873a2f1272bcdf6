//! What every virtio driver on Keel shares: `virtio-drivers`' [`Hal`](virtio_drivers::Hal)
//! over the driver framework's DMA memory and granted BARs ([`hal`]), the function's
//! configuration space as the crate's PCI layer wants it ([`Config`]), and virtio's side of
//! MSI-X ([`msix`]).

#![no_std]

extern crate alloc;

pub mod hal;
pub mod msix;

use keel_rt::driver::pci::PinnedConfig;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};

pub use hal::{Allocation, KeelHal};

/// The driver's one function as `virtio-drivers` reaches it (`PciRoot::new(Config(..))`,
/// device function 0.0.0): BAR sizing is answered without moving the BAR.
#[derive(Clone)]
pub struct Config<'a>(pub PinnedConfig<'a>);

/// The address the driver's function has in its own [`Config`].
pub const FUNCTION: DeviceFunction = DeviceFunction {
    bus: 0,
    device: 0,
    function: 0,
};

impl ConfigurationAccess for Config<'_> {
    fn read_word(&self, _: DeviceFunction, register: u8) -> u32 {
        // A refused read looks like an absent register, as on real hardware.
        self.0.read32(register.into()).unwrap_or(!0)
    }

    fn write_word(&mut self, _: DeviceFunction, register: u8, value: u32) {
        let _ = self.0.write32(register.into(), value);
    }

    unsafe fn unsafe_clone(&self) -> Self {
        self.clone()
    }
}
