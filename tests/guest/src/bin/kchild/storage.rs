//! The `storage` suite's confined driver: granted one PCI function, it checks it can reach
//! that function's registers and nothing else of the bus.

use alloc::vec::Vec;

use keel_abi::cap::kind;
use keel_abi::{Error, SysInfo};
use keel_rt::driver::pci::ConfigSpace;
use keel_rt::driver::{Device, PciFunction};
use keel_rt::sys::{self, device};

use crate::{Failure, OrSetup, expect_eq};

/// `own`, `disk_config`, `disk_bar`: physical addresses, in hex, space-separated.
pub fn pci_confined(arg: &str) -> Result<i32, Failure> {
    let addresses: Vec<u64> = arg
        .split_whitespace()
        .filter_map(|word| u64::from_str_radix(word, 16).ok())
        .collect();
    let [own, disk_config, disk_bar] = addresses[..] else {
        return Err(Failure::check("want three addresses"));
    };
    let device = Device::from_start_caps().or_setup("collecting my capabilities")?;
    let function = PciFunction::new(&device).or_setup("finding my function")?;
    let config: ConfigSpace<'_> = function.config();
    expect_eq(
        "my function's ids",
        (config.vendor_id(), config.device_id()),
        (Ok(0x8086), Ok(0x2922)),
    )?;
    expect_eq("my page", device.memory[0].phys(), own)?;
    expect_eq("my page's size", device.memory[0].len(), 4096)?;
    expect_eq(
        "a register past my page",
        config.read32(4096).map(drop),
        Err(Error::InvalidArgument),
    )?;
    let info = keel_rt::cap::info(device.memory[0].handle()).or_setup("cap_info")?;
    expect_eq("the page's kind", info.kind, kind::MEMORY)?;
    let ecam = sys::sys_info(SysInfo::PciEcam).or_setup("asking where ECAM is")? as u64;
    for (what, phys, len) in [
        ("minting all of bus 0's configuration space", ecam, 1 << 20),
        ("minting the disk's configuration page", disk_config, 4096),
        ("minting the disk's BAR", disk_bar, 4096),
    ] {
        expect_eq(
            what,
            device::mem_create_device(phys, len).map(drop),
            Err(Error::PermissionDenied),
        )?;
    }
    expect_eq(
        "minting the disk's interrupt line",
        device::irq_create(21).map(drop),
        Err(Error::PermissionDenied),
    )?;
    // DMA memory: the function counts as a device.
    let dma = device::mem_create_dma(device.memory[0].handle(), 4096);
    expect_eq("DMA memory with my function as proof", dma.is_ok(), true)?;
    Ok(0)
}
