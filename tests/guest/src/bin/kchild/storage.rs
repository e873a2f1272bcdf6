//! The `storage` suite's confined driver: granted one PCI function, it checks it can reach
//! that function's registers and nothing else of the bus, through ECAM or, on a machine
//! without ECAM, through the kernel.

use alloc::vec::Vec;

use keel_abi::cap::kind;
use keel_abi::{Error, SysInfo};
use keel_rt::driver::pci::ConfigSpace;
use keel_rt::driver::{Device, PciConfig, PciFunction};
use keel_rt::sys::{self, device};

use crate::{Failure, OrSetup, expect_eq};

/// `VENDOR:DEVICE OWN DISK_CONFIG DISK_BAR`, the numbers in hex: the function granted,
/// then where its configuration space and the disk's are (with ECAM, their pages'
/// physical addresses; without, their function numbers) and the disk's BAR 4.
pub fn pci_confined(arg: &str) -> Result<i32, Failure> {
    let mut words = arg.split_whitespace();
    let ids: Vec<u16> = words
        .next()
        .unwrap_or_default()
        .split(':')
        .filter_map(|word| u16::from_str_radix(word, 16).ok())
        .collect();
    let addresses: Vec<u64> = words
        .filter_map(|word| u64::from_str_radix(word, 16).ok())
        .collect();
    let (&[vendor, device_id], &[own, disk_config, disk_bar]) = (&ids[..], &addresses[..]) else {
        return Err(Failure::check("want VENDOR:DEVICE and three numbers"));
    };
    let device = Device::from_start_caps().or_setup("collecting my capabilities")?;
    let function = PciFunction::new(&device).or_setup("finding my function")?;
    let config: ConfigSpace<'_> = function.config();
    expect_eq(
        "my function's ids",
        (config.vendor_id(), config.device_id()),
        (Ok(vendor), Ok(device_id)),
    )?;
    match &device.pci_config {
        None => confined_to_page(&device, &config, own, disk_config)?,
        Some(capability) => confined_to_function(capability, &config, own, disk_config)?,
    }
    expect_eq(
        "minting the disk's BAR",
        device::mem_create_device(disk_bar, 4096).map(drop),
        Err(Error::PermissionDenied),
    )?;
    expect_eq(
        "minting the disk's interrupt line",
        device::irq_create(21).map(drop),
        Err(Error::PermissionDenied),
    )?;
    // DMA memory: the function counts as a device.
    let dma = device::mem_create_dma(function.device_capability(), 4096);
    expect_eq("DMA memory with my function as proof", dma.is_ok(), true)?;
    Ok(0)
}

/// With ECAM: its own 4 KiB page and no other.
fn confined_to_page(
    device: &Device,
    config: &ConfigSpace<'_>,
    own: u64,
    disk_config: u64,
) -> Result<(), Failure> {
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
    ] {
        expect_eq(
            what,
            device::mem_create_device(phys, len).map(drop),
            Err(Error::PermissionDenied),
        )?;
    }
    Ok(())
}

/// Without ECAM: a capability to its own function's configuration space and no other.
fn confined_to_function(
    capability: &PciConfig,
    config: &ConfigSpace<'_>,
    own: u64,
    disk: u64,
) -> Result<(), Failure> {
    let disk = u16::try_from(disk).map_err(|_| Failure::check("a function number"))?;
    expect_eq(
        "my function",
        capability.function().map(u64::from),
        Some(own),
    )?;
    expect_eq(
        "a register past the mechanism's 256 bytes",
        config.read32(256).map(drop),
        Err(Error::InvalidArgument),
    )?;
    expect_eq(
        "the disk's ids through my capability",
        capability.read(disk, 0, 4).map(drop),
        Err(Error::MissingRight),
    )?;
    expect_eq(
        "the disk's command register through my capability",
        capability.write(disk, 4, 2, 0),
        Err(Error::MissingRight),
    )?;
    for (what, function) in [
        (
            "minting every function's configuration space",
            keel_abi::pci::ALL_FUNCTIONS,
        ),
        ("minting the disk's configuration space", disk.into()),
    ] {
        expect_eq(
            what,
            device::pci_config_create(function).map(drop),
            Err(Error::PermissionDenied),
        )?;
    }
    expect_eq(
        "the configuration ports themselves",
        device::ioport_create(0xcf8, 8).map(drop),
        Err(Error::PermissionDenied),
    )
}
