//! MSI-X vectors as capabilities: a PCI function writes a message to the local APIC, which
//! raises one of these CPU vectors. The kernel hands them out one per capability and says
//! what message to program; the function's MSI-X table (in a BAR the driver holds), with
//! its per-vector mask, is the driver's. An interrupt only notifies: nothing to mask.

use core::ops::Range;

/// The CPU vectors handed out: above the I/O APIC's lines, below the legacy PIC's.
pub const VECTORS: Range<u8> = 0x50..0x70;
/// Where a message goes: the local APIC's window, destination in bits 12..20.
const MESSAGE_ADDRESS: u32 = 0xfee0_0000;
/// The APIC id that takes every vector: the boot core's (QEMU numbers it 0). With more
/// cores, this is the one place that picks a destination.
const DESTINATION: u32 = 0;

/// Index of `vector` into per-vector tables, if it is one of ours.
pub fn index(vector: u64) -> Option<usize> {
    let vector = u8::try_from(vector).ok()?;
    VECTORS
        .contains(&vector)
        .then(|| usize::from(vector - VECTORS.start))
}

/// The (address, data) a function writes to raise `vector`: fixed delivery, edge, to
/// [`DESTINATION`] in physical mode.
pub fn message(vector: u8) -> (u32, u32) {
    (MESSAGE_ADDRESS | DESTINATION << 12, vector.into())
}
