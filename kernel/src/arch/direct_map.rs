//! The direct map: every physical address below [`DIRECT_MAP_END`] is also mapped at
//! [`DIRECT_MAP_BASE`] plus itself in every address space. A fact of the kernel's x86_64
//! layout, kept here so that the device code beside it (APICs, ACPI tables) reaches physical
//! memory without depending on the memory manager, which builds the map (`mm`).

pub type PhysAddr = u64;

pub const DIRECT_MAP_BASE: usize = 0xffff_8000_0000_0000;
/// Gibibytes of physical memory the direct map reaches.
pub const DIRECT_MAP_GIB: usize = 4;
/// The first physical address the direct map does not reach.
pub const DIRECT_MAP_END: usize = DIRECT_MAP_GIB << 30;

pub fn phys_to_virt(phys: PhysAddr) -> usize {
    DIRECT_MAP_BASE + phys as usize
}
