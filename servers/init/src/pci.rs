//! The PCI bus as init sees it: the functions found once, through ECAM (the kernel reports
//! the window from the ACPI MCFG) or, on a machine without one, through the kernel's
//! 0xcf8/0xcfc mechanism, and what a driver of one is granted.
//!
//! init enumerates because it already holds the SYSTEM right and the manifest: a separate
//! PCI server would be one more process trusted with all configuration space, for no
//! isolation gained (docs/decisions/009-pci-and-device-grants.md).

use alloc::vec::Vec;

use keel_abi::{Error, SysInfo};
use keel_manifest::PciMatch;
use keel_rt::driver::pci::{self, Bar, ConfigSpace, FUNCTION_SIZE};
use keel_rt::driver::{DeviceMemory, PciConfig};
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
    /// Its ECAM configuration page; `None` without ECAM, where the kernel reaches it.
    pub config: Option<u64>,
    /// Its BARs with their sizes.
    pub bars: Vec<(Bar, u64)>,
    /// The interrupt line its INTx pin arrives at, if it has one init can route.
    pub line: Option<u8>,
    /// Whether it has an MSI-X capability (its driver gets a vector too).
    pub msix: bool,
}

impl Function {
    /// `bus << 8 | device << 3 | function`, as `pci_config_create` names it.
    pub fn address(&self) -> u16 {
        u16::from(self.bus) << 8 | u16::from(self.slot) << 3 | u16::from(self.function)
    }

    /// Run `access` on its configuration space, through a capability minted for it.
    fn with_config<R>(
        &self,
        access: impl FnOnce(ConfigSpace<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        match self.config {
            Some(page) => access(ConfigSpace::new(
                &DeviceMemory::create(page, FUNCTION_SIZE)?,
                0,
            )),
            None => {
                let capability = PciConfig::create(Some(self.address()))?;
                access(ConfigSpace::through_kernel(&capability, self.address()))
            }
        }
    }
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
                    "init: pci {:02x}:{:02x}.{} {:04x}:{:04x} class {:02x}:{:02x}{}{}",
                    f.bus,
                    f.slot,
                    f.function,
                    f.vendor,
                    f.device,
                    f.class.0,
                    f.class.1,
                    f.line
                        .map_or(alloc::string::String::new(), |l| alloc::format!(" irq {l}")),
                    if f.msix { " msi-x" } else { "" },
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
    let _ = function
        .with_config(|config| config.set_command(config.command()? & !pci::COMMAND_BUS_MASTER));
}

/// How init reaches configuration space.
enum Mechanism {
    /// ECAM at `base`, for `buses` buses.
    Ecam { base: u64, buses: usize },
    /// Through the kernel, with a capability to every function.
    Kernel(PciConfig),
}

/// One bus's configuration space, reachable.
enum Bus<'a> {
    Ecam(DeviceMemory),
    Kernel(&'a PciConfig),
}

impl Mechanism {
    /// ECAM if the kernel found an MCFG, else the kernel's legacy mechanism.
    fn find() -> Result<Mechanism, Error> {
        let base = sys::sys_info(SysInfo::PciEcam)? as u64;
        if base == 0 {
            return Ok(Mechanism::Kernel(PciConfig::create(None)?));
        }
        let buses = sys::sys_info(SysInfo::PciBuses)?;
        Ok(Mechanism::Ecam { base, buses })
    }

    /// Bus `bus`, if it can be reached.
    fn bus(&self, bus: u8) -> Result<Option<Bus<'_>>, Error> {
        Ok(match self {
            Mechanism::Ecam { buses, .. } if usize::from(bus) >= *buses => None,
            &Mechanism::Ecam { base, .. } => {
                let phys = base + (u64::from(bus) << 20);
                Some(Bus::Ecam(DeviceMemory::create(phys, BUS_SIZE)?))
            }
            Mechanism::Kernel(capability) => Some(Bus::Kernel(capability)),
        })
    }
}

impl Bus<'_> {
    /// Function `address` of this bus, and its ECAM page if it has one.
    fn function(&self, address: u16) -> (ConfigSpace<'_>, Option<u64>) {
        match self {
            Bus::Ecam(registers) => {
                let offset = usize::from(address & 0xff) << 12;
                let page = registers.phys() + offset as u64;
                (ConfigSpace::new(registers, offset), Some(page))
            }
            Bus::Kernel(capability) => (ConfigSpace::through_kernel(capability, address), None),
        }
    }
}

/// Every function on every bus reachable from bus 0.
fn enumerate() -> Result<Vec<Function>, Error> {
    let mechanism = Mechanism::find()?;
    let mut found = Vec::new();
    // (bus, the bus-0 slot it hangs from and the pin swizzle so far), for INTx routing.
    let mut pending: Vec<(u8, Option<(u8, u8)>)> = alloc::vec![(0, None)];
    while let Some((bus, upstream)) = pending.pop() {
        let Some(registers) = mechanism.bus(bus)? else {
            continue;
        };
        for slot in 0..32u8 {
            for function in 0..8u8 {
                let address = u16::from(bus) << 8 | u16::from(slot) << 3 | u16::from(function);
                let (config, page) = registers.function(address);
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
                    config: page,
                    bars: bars(&config, address)?,
                    line: match mechanism {
                        Mechanism::Ecam { .. } => q35_line(config.interrupt_pin()?, route),
                        Mechanism::Kernel(_) => firmware_line(&config)?,
                    },
                    msix: config
                        .capabilities()?
                        .iter()
                        .any(|&(id, _)| id == pci::CAPABILITY_MSIX),
                });
                if function == 0 && !config.multifunction()? {
                    break;
                }
            }
        }
    }
    Ok(found)
}

/// The line INTx pin `pin` arrives at on q35 (the machine with ECAM), for a function
/// behind bus-0 slot `root` with the bridges' swizzle `swizzle` (a bridge passes device
/// `d`'s pin `p` up as `p + d`).
fn q35_line(pin: u8, (root, swizzle): (u8, u8)) -> Option<u8> {
    (1..=4).contains(&pin).then_some(())?;
    (root <= 24).then(|| PIRQE_INPUT + (root.wrapping_add(swizzle).wrapping_add(pin - 1)) % 4)
}

/// The ISA line firmware routed the function's pin to, as its interrupt line register
/// says: on a PC without ECAM (QEMU `pc`, PIIX3) PCI interrupts reach only ISA lines,
/// through routing registers the firmware programs (and whose choice it writes there).
fn firmware_line(config: &ConfigSpace<'_>) -> Result<Option<u8>, Error> {
    let pin = config.interrupt_pin()?;
    let line = config.interrupt_line()?;
    Ok(((1..=4).contains(&pin) && (1..16).contains(&line)).then_some(line))
}

/// The function's BARs, with the sizes the kernel measured at boot: sizing a BAR here,
/// with the other cores running, would move it under them (docs/decisions/014).
fn bars(config: &ConfigSpace<'_>, address: u16) -> Result<Vec<(Bar, u64)>, Error> {
    let mut bars = Vec::new();
    let mut index = 0;
    while index < 6 {
        let bar = config.bar(index)?;
        index += 1;
        if let Some(bar) = bar {
            index += usize::from(bar.wide);
            if let Ok(size) = keel_rt::sys::device::pci_bar_size(address, bar.index) {
                bars.push((bar, size));
            }
        }
    }
    Ok(bars)
}
