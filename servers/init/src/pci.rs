//! The PCI bus as init sees it: the functions found once, through ECAM (the kernel reports
//! the window from the ACPI MCFG), and what a driver of one is granted.
//!
//! init enumerates because it already holds the SYSTEM right and the manifest: a separate
//! PCI server would be one more process trusted with all configuration space, for no
//! isolation gained (docs/decisions/009-pci-and-device-grants.md).

use alloc::vec::Vec;

use keel_abi::{Error, SysInfo};
use keel_manifest::PciMatch;
use keel_rt::driver::DeviceMemory;
use keel_rt::driver::pci::{self, Bar, ConfigSpace, FUNCTION_SIZE};
use keel_rt::{println, sys};

/// Configuration space per bus: 32 devices of 8 functions.
const BUS_SIZE: usize = 32 * 8 * FUNCTION_SIZE;
/// The first I/O APIC input of PIRQE, where QEMU q35 (ICH9) routes INTx of devices in
/// slots 0..=24 of bus 0: slot `s`, pin `p` (1..=4) arrives at input
/// `20 + (s + p - 1) % 4`, as its ACPI `_PRT` says (reading `_PRT` itself takes an AML
/// interpreter).
const PIRQE_INPUT: u8 = 20;

/// A function found on the bus, and what it decodes.
#[derive(Clone, Debug)]
pub struct Function {
    pub bus: u8,
    pub slot: u8,
    pub function: u8,
    pub vendor: u16,
    pub device: u16,
    pub class: (u8, u8),
    /// Its configuration page.
    pub config: u64,
    /// Its BARs with their sizes.
    pub bars: Vec<(Bar, u64)>,
    /// The interrupt line its INTx pin arrives at, if it has one init can route.
    pub line: Option<u8>,
}

static FUNCTIONS: spin::Once<Vec<Function>> = spin::Once::new();

/// The first function `wanted` matches, enumerating the bus the first time.
pub fn find(wanted: &PciMatch) -> Option<&'static Function> {
    FUNCTIONS
        .call_once(|| {
            let found = enumerate().unwrap_or_else(|error| {
                println!("init: pci: no enumeration: {error}");
                Vec::new()
            });
            for f in &found {
                println!(
                    "init: pci {:02x}:{:02x}.{} {:04x}:{:04x} class {:02x}:{:02x}{}",
                    f.bus,
                    f.slot,
                    f.function,
                    f.vendor,
                    f.device,
                    f.class.0,
                    f.class.1,
                    f.line
                        .map_or(alloc::string::String::new(), |l| alloc::format!(" irq {l}"))
                );
            }
            found
        })
        .iter()
        .find(|f| wanted.matches(f.vendor, f.device, f.class))
}

/// A driver of `wanted` ended: turn off its function's bus mastering, so the device
/// stops reaching memory. The kernel holds the driver's DMA memory until init then
/// releases it (`dma_release`), so a request the device finishes meanwhile lands in
/// frames nobody else has yet. The next driver resets the device.
pub fn stop_dma(wanted: &PciMatch) {
    let Some(function) = find(wanted) else { return };
    if let Ok(page) = DeviceMemory::create(function.config, FUNCTION_SIZE) {
        let config = ConfigSpace::new(&page, 0);
        if let Ok(command) = config.command() {
            let _ = config.set_command(command & !pci::COMMAND_BUS_MASTER);
        }
    }
}

/// Every function on every bus reachable from bus 0.
fn enumerate() -> Result<Vec<Function>, Error> {
    let base = sys::sys_info(SysInfo::PciEcam)? as u64;
    let buses = sys::sys_info(SysInfo::PciBuses)?;
    if base == 0 {
        return Err(Error::NotFound);
    }
    let mut found = Vec::new();
    // (bus, the bus-0 slot it hangs from and the pin swizzle so far), for INTx routing.
    let mut pending: Vec<(u8, Option<(u8, u8)>)> = alloc::vec![(0, None)];
    while let Some((bus, upstream)) = pending.pop() {
        if usize::from(bus) >= buses {
            continue;
        }
        let registers = DeviceMemory::create(base + (u64::from(bus) << 20), BUS_SIZE)?;
        for slot in 0..32u8 {
            for function in 0..8u8 {
                let offset = (usize::from(slot) << 15) | (usize::from(function) << 12);
                let config = ConfigSpace::new(&registers, offset);
                if !config.present() {
                    if function == 0 {
                        break;
                    }
                    continue;
                }
                let route = upstream.map_or((slot, 0), |(root, swizzle)| (root, swizzle + slot));
                if let Some(secondary) = config.secondary_bus()? {
                    pending.push((secondary, Some(route)));
                }
                found.push(Function {
                    bus,
                    slot,
                    function,
                    vendor: config.vendor_id()?,
                    device: config.device_id()?,
                    class: config.class()?,
                    config: registers.phys() + offset as u64,
                    bars: bars(&config)?,
                    line: line(config.interrupt_pin()?, route),
                });
                if function == 0 && !config.multifunction()? {
                    break;
                }
            }
        }
    }
    Ok(found)
}

/// The line INTx pin `pin` arrives at, for a function behind bus-0 slot `root` with the
/// bridges' swizzle `swizzle` (a bridge passes device `d`'s pin `p` up as `p + d`).
fn line(pin: u8, (root, swizzle): (u8, u8)) -> Option<u8> {
    (1..=4).contains(&pin).then_some(())?;
    (root <= 24).then(|| PIRQE_INPUT + (root.wrapping_add(swizzle).wrapping_add(pin - 1)) % 4)
}

/// The function's BARs and their sizes, read with decoding off.
fn bars(config: &ConfigSpace<'_>) -> Result<Vec<(Bar, u64)>, Error> {
    let command = config.command()?;
    config.set_command(command & !(pci::COMMAND_IO | pci::COMMAND_MEMORY))?;
    let mut bars = Vec::new();
    let mut index = 0;
    while index < 6 {
        let bar = config.bar(index)?;
        index += 1;
        if let Some(bar) = bar {
            index += usize::from(bar.wide);
            bars.push((bar, config.bar_size(&bar)?));
        }
    }
    config.set_command(command)?;
    Ok(bars)
}
