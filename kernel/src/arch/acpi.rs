//! The firmware's ACPI tables, read for three things: how interrupts are wired (the MADT's
//! I/O APIC and ISA interrupt source overrides), which cores there are (the MADT's local
//! APICs), and where PCI configuration space is (the MCFG's ECAM window). Parsing is the `acpi` crate's; the tables are read through the
//! direct map.

use acpi::madt::{Madt, MadtEntry};
use acpi::mcfg::Mcfg;
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use conquer_once::spin::OnceCell;
use core::ptr::NonNull;

use super::direct_map::{DIRECT_MAP_END, phys_to_virt};
use super::percpu::MAX_CORES;
use super::smp::Core;

/// Where an ISA line arrives at the I/O APIC, and how it signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsaRoute {
    /// The I/O APIC input.
    pub input: u32,
    pub active_low: bool,
    pub level: bool,
}

/// The machine's interrupt wiring.
#[derive(Clone, Copy, Debug)]
pub struct InterruptLayout {
    /// The I/O APIC serving the ISA lines: its physical address.
    pub ioapic: u64,
    pub isa: [IsaRoute; 16],
}

impl InterruptLayout {
    /// The PC layout, for machines without a MADT: one I/O APIC at its standard address,
    /// ISA line n on input n but line 0 (the PIT) on input 2, all edge-triggered, active high.
    pub const PC: InterruptLayout = {
        let mut isa = [IsaRoute {
            input: 0,
            active_low: false,
            level: false,
        }; 16];
        let mut line = 0;
        while line < 16 {
            isa[line].input = if line == 0 { 2 } else { line as u32 };
            line += 1;
        }
        InterruptLayout {
            ioapic: 0xfec0_0000,
            isa,
        }
    };
}

fn tables() -> Result<AcpiTables<DirectMap>, acpi::AcpiError> {
    // SAFETY: the BIOS areas the search reads (the EBDA and 0xe0000..0x100000) lie in the
    // direct map, and the handler maps every table the search finds through it.
    unsafe { AcpiTables::search_for_rsdp_bios(DirectMap) }
}

/// PCI configuration space, memory-mapped (ECAM): 4 KiB per function, 1 MiB per bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecam {
    /// The physical address of bus 0's configuration space.
    pub base: u64,
    /// How many buses, from 0, the window covers.
    pub buses: u16,
}

static ECAM: OnceCell<Option<Ecam>> = OnceCell::uninit();

/// Read the MCFG once, at boot; what [`ecam`] answers from then on.
pub fn init_ecam() -> Option<Ecam> {
    *ECAM.get_or_init(|| read_ecam().ok())
}

/// The ECAM window read at boot, if there is one.
pub fn ecam() -> Option<Ecam> {
    ECAM.get().copied().flatten()
}

/// Segment 0's ECAM window, from the MCFG (a machine without one, such as QEMU's `pc`,
/// has none: its configuration space is reached through ports 0xcf8/0xcfc only).
fn read_ecam() -> Result<Ecam, acpi::AcpiError> {
    let tables = tables()?;
    let mcfg = tables.find_table::<Mcfg>()?;
    mcfg.get()
        .entries()
        .iter()
        .find(|entry| entry.pci_segment_group == 0 && entry.bus_number_start == 0)
        .map(|entry| Ecam {
            base: entry.base_address,
            buses: entry.bus_number_end as u16 + 1,
        })
        .ok_or(acpi::AcpiError::TableMissing(acpi::sdt::Signature::MCFG))
}

/// The wiring the MADT describes, or why there is none to read.
pub fn interrupt_layout() -> Result<InterruptLayout, acpi::AcpiError> {
    let tables = tables()?;
    let madt = tables.find_table::<Madt>()?;
    let mut layout = InterruptLayout::PC;
    let mut gsi_base = None;
    for entry in madt.get().entries() {
        match entry {
            // The I/O APIC whose inputs start at 0 takes the ISA lines.
            MadtEntry::IoApic(ioapic) if ioapic.global_system_interrupt_base == 0 => {
                layout.ioapic = ioapic.io_apic_address.into();
                gsi_base = Some(0);
            }
            MadtEntry::InterruptSourceOverride(iso) if iso.bus == 0 && iso.irq < 16 => {
                let flags = iso.flags;
                layout.isa[iso.irq as usize] = IsaRoute {
                    input: iso.global_system_interrupt,
                    // MPS INTI flags: polarity in bits 0-1 (3 = low), trigger in 2-3 (3 = level).
                    active_low: flags & 0b11 == 0b11,
                    level: (flags >> 2) & 0b11 == 0b11,
                };
            }
            _ => {}
        }
    }
    gsi_base
        .map(|_| layout)
        .ok_or(acpi::AcpiError::TableMissing(acpi::sdt::Signature::MADT))
}

/// The cores the MADT lists as enabled or able to come online, in its order (at most
/// [`MAX_CORES`]; x2APIC entries, for ids beyond 254, are not read).
pub fn processors() -> Result<heapless::Vec<Core, MAX_CORES>, acpi::AcpiError> {
    let tables = tables()?;
    let madt = tables.find_table::<Madt>()?;
    let mut cores = heapless::Vec::new();
    for entry in madt.get().entries() {
        if let MadtEntry::LocalApic(apic) = entry
            && apic.flags & 0b11 != 0
        {
            let _ = cores.push(Core {
                apic_id: apic.apic_id.into(),
            });
        }
    }
    Ok(cores)
}

/// Table reads through the direct map. Tables beyond it read as zeros, which fail their
/// checksums: the caller then falls back to the PC layout.
#[derive(Clone, Copy)]
struct DirectMap;

/// What a table beyond the direct map reads as.
static BEYOND: [u64; 512] = [0; 512];

impl AcpiHandler for DirectMap {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let within = phys
            .checked_add(size)
            .is_some_and(|end| end <= DIRECT_MAP_END);
        let (virt, size) = if within {
            (phys_to_virt(phys as u64), size)
        } else {
            (
                BEYOND.as_ptr() as usize,
                size.min(core::mem::size_of_val(&BEYOND)),
            )
        };
        // SAFETY: `virt` is a non-null kernel address readable for `size` bytes: the
        // direct map of `[phys, phys + size)`, or the zeros. Nothing is ever unmapped.
        unsafe {
            PhysicalMapping::new(
                phys,
                NonNull::new_unchecked(virt as *mut T),
                size,
                size,
                *self,
            )
        }
    }

    fn unmap_physical_region<T>(_: &PhysicalMapping<Self, T>) {}
}
