//! The I/O APIC: routes the legacy (ISA) interrupt lines to vectors.
//!
//! Keel assumes the PC layout QEMU and most boards give: one I/O APIC at its standard
//! address, ISA line n wired to input n (line 0, the PIT, to input 2). Parsing the ACPI
//! MADT for other layouts is future work. Every line starts masked; a driver's binding
//! unmasks it.

use crate::mm::phys_to_virt;
use core::ptr::write_volatile;

const IOAPIC_BASE: u64 = 0xfec0_0000;
const REG_SELECT: usize = 0x00;
const REG_WINDOW: usize = 0x10;
const REDIRECTION_BASE: u32 = 0x10;
const MASKED: u32 = 1 << 16;

/// Legacy lines handed to drivers.
pub const LINES: u8 = 16;
/// Vector of legacy line 0; line n arrives at `VECTOR_BASE + n`.
pub const VECTOR_BASE: u8 = 0x30;

fn write(register: u32, value: u32) {
    let base = phys_to_virt(IOAPIC_BASE);
    // SAFETY: the I/O APIC's two registers, in the uncached top GiB of the direct map;
    // select-then-write is the device's protocol and the kernel is the only user.
    unsafe {
        write_volatile((base + REG_SELECT) as *mut u32, register);
        write_volatile((base + REG_WINDOW) as *mut u32, value);
    }
}

fn input(line: u8) -> u32 {
    if line == 0 { 2 } else { line as u32 }
}

/// Route every legacy line to its vector, masked, delivered to this CPU.
pub fn init() {
    for line in 0..LINES {
        let entry = REDIRECTION_BASE + 2 * input(line);
        write(entry + 1, 0);
        write(entry, MASKED | (VECTOR_BASE + line) as u32);
    }
}

pub fn set_masked(line: u8, masked: bool) {
    let entry = REDIRECTION_BASE + 2 * input(line);
    let vector = (VECTOR_BASE + line) as u32;
    write(entry, if masked { MASKED | vector } else { vector });
}

/// The legacy line a vector belongs to, if any.
pub fn line_of(vector: u64) -> Option<u8> {
    let base = VECTOR_BASE as u64;
    (base..base + LINES as u64)
        .contains(&vector)
        .then(|| (vector - base) as u8)
}
