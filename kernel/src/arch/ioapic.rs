//! The I/O APIC: routes the legacy (ISA) interrupt lines and the PCI INTx lines to vectors.
//!
//! Where it is and which of its inputs each ISA line arrives at (with what polarity and
//! trigger) come from the ACPI MADT; without one, the PC layout is assumed (see
//! [`InterruptLayout::PC`]). Lines 16..24 are inputs 16..24, where the chipset routes the
//! PCI interrupt pins (PIRQA..H): level-triggered and active-low, so several devices may
//! share one. Every line starts masked; a driver's binding unmasks it. Masking until the
//! driver acknowledges suits level-triggered lines too: the device deasserts once served,
//! and a line unmasked while still asserted simply fires again.

use super::acpi::{self, InterruptLayout, IsaRoute};
use super::direct_map::{DIRECT_MAP_END, phys_to_virt};
use conquer_once::spin::OnceCell;
use core::ptr::{read_volatile, write_volatile};

const REG_SELECT: usize = 0x00;
const REG_WINDOW: usize = 0x10;
const REG_VERSION: u32 = 0x01;
const REDIRECTION_BASE: u32 = 0x10;
/// The direct map's uncached top GiB, where device registers must be reached.
const DEVICE_WINDOW: core::ops::Range<u64> =
    (DIRECT_MAP_END as u64 - (1 << 30))..DIRECT_MAP_END as u64;
const ACTIVE_LOW: u32 = 1 << 13;
const LEVEL: u32 = 1 << 15;
const MASKED: u32 = 1 << 16;

/// ISA lines (0..16) and PCI INTx lines (16..24) handed to drivers.
pub const LINES: u8 = 24;
/// Vector of legacy line 0; line n arrives at `VECTOR_BASE + n`.
pub const VECTOR_BASE: u8 = 0x30;

static LAYOUT: OnceCell<InterruptLayout> = OnceCell::uninit();
/// How many inputs the I/O APIC has: a PCI line beyond them cannot be handed out.
static INPUTS: OnceCell<u32> = OnceCell::uninit();

fn layout() -> &'static InterruptLayout {
    LAYOUT.get().expect("the I/O APIC is set up at boot")
}

fn write(register: u32, value: u32) {
    let base = phys_to_virt(layout().ioapic);
    // SAFETY: the I/O APIC's two registers, in the uncached top GiB of the direct map;
    // select-then-write is the device's protocol and the kernel is the only user.
    unsafe {
        write_volatile((base + REG_SELECT) as *mut u32, register);
        write_volatile((base + REG_WINDOW) as *mut u32, value);
    }
}

/// How many inputs the I/O APIC at `address` (in the device window) has.
fn inputs(address: u64) -> u32 {
    let base = phys_to_virt(address);
    // SAFETY: as for `write`: select the version register, then read it.
    let version = unsafe {
        write_volatile((base + REG_SELECT) as *mut u32, REG_VERSION);
        read_volatile((base + REG_WINDOW) as *const u32)
    };
    ((version >> 16) & 0xff) + 1
}

/// Whether the I/O APIC `layout` names can be reached, and has every input it routes to.
fn usable(layout: &InterruptLayout) -> bool {
    DEVICE_WINDOW.contains(&layout.ioapic) && {
        let inputs = inputs(layout.ioapic);
        layout.isa.iter().all(|route| route.input < inputs)
    }
}

/// Where line `line` arrives and how it signals.
fn route(line: u8) -> IsaRoute {
    match layout().isa.get(line as usize) {
        Some(&route) => route,
        None => IsaRoute {
            input: line as u32,
            active_low: true,
            level: true,
        },
    }
}

/// Whether line `line` exists on this machine's I/O APIC.
pub fn has_line(line: u8) -> bool {
    line < LINES
        && INPUTS
            .get()
            .is_some_and(|&inputs| route(line).input < inputs)
}

/// Line `line`'s redirection entry (low word), masked or not.
pub fn set_masked(line: u8, masked: bool) {
    let route = route(line);
    let mut value = (VECTOR_BASE + line) as u32;
    if route.active_low {
        value |= ACTIVE_LOW;
    }
    if route.level {
        value |= LEVEL;
    }
    if masked {
        value |= MASKED;
    }
    write(REDIRECTION_BASE + 2 * route.input, value);
}

/// Read the wiring, then route every legacy line to its vector, masked, delivered to this
/// core (the boot core, whatever its APIC id). Returns what was found, for the boot log.
pub fn init() -> &'static str {
    let (layout, source) = match acpi::interrupt_layout() {
        Ok(layout) if usable(&layout) => (layout, "the ACPI MADT"),
        _ => (InterruptLayout::PC, "no usable MADT: the PC layout"),
    };
    LAYOUT.init_once(|| layout);
    INPUTS.init_once(|| inputs(layout.ioapic));
    for line in (0..LINES).filter(|&line| has_line(line)) {
        write(
            REDIRECTION_BASE + 2 * route(line).input + 1,
            super::percpu::apic_id() << 24,
        );
        set_masked(line, true);
    }
    source
}

/// The legacy line a vector belongs to, if any.
pub fn line_of(vector: u64) -> Option<u8> {
    let base = VECTOR_BASE as u64;
    (base..base + LINES as u64)
        .contains(&vector)
        .then(|| (vector - base) as u8)
}

/// The I/O APIC's physical address and the input of each ISA line whose input is not its
/// own number, for the boot log.
pub fn describe() -> alloc::string::String {
    let layout = layout();
    let inputs = INPUTS.get().copied().unwrap_or(0);
    let mut text = alloc::format!("I/O APIC at {:#x} ({inputs} inputs)", layout.ioapic);
    for (line, route) in layout.isa.iter().enumerate() {
        if route.input != line as u32 || route.active_low || route.level {
            text.push_str(&alloc::format!(
                "; ISA {line} -> input {}{}{}",
                route.input,
                if route.active_low { " active-low" } else { "" },
                if route.level { " level" } else { "" },
            ));
        }
    }
    text
}
