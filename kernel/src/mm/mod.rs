//! Memory: physical frames, the kernel's own page tables and heap, user address spaces.
//!
//! Kernel virtual layout (shared by every address space, never user-accessible):
//! - `DIRECT_MAP_BASE + p` maps physical address `p` for the first 4 GiB (2 MiB pages, no
//!   execute; the top GiB, where the local APIC and other devices live, uncached);
//! - `-2 GiB + 1 MiB` holds the kernel image: text read-execute, rodata read-only, data and
//!   bss read-write no-execute (W^X in the kernel too);
//! - [`stacks::BASE`] (top-level entry 510) holds the threads' kernel stacks, each above an
//!   unmapped guard.

pub mod frame;
pub mod object;
pub mod paging;
pub mod space;
pub mod stacks;
pub mod user;

pub use crate::arch::direct_map::{PhysAddr, phys_to_virt};

use crate::arch::direct_map::DIRECT_MAP_GIB;
use crate::multiboot::BootInfo;
use paging::{GLOBAL, HUGE, NO_CACHE, NO_EXECUTE, PRESENT, Table, WRITABLE, WRITE_THROUGH};

pub const PAGE_SIZE: usize = 4096;
const KERNEL_VMA: usize = 0xffff_ffff_8000_0000;
/// The kernel heap: physically contiguous, carved from RAM at boot.
const HEAP_SIZE: usize = 32 << 20;
/// Page tables for the kernel image (4 KiB pages): each maps 2 MiB.
const IMAGE_TABLES: usize = 8;

pub fn align_up(value: usize, align: usize) -> Option<usize> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

#[repr(C, align(4096))]
struct KernelTables {
    root: Table,
    direct_pdpt: Table,
    direct_pds: [Table; DIRECT_MAP_GIB],
    image_pdpt: Table,
    image_pd: Table,
    image_pts: [Table; IMAGE_TABLES],
    stacks_pdpt: Table,
    stacks_pd: Table,
    stacks_pts: [Table; stacks::TABLES],
}

static mut KERNEL_TABLES: KernelTables = KernelTables {
    root: [0; 512],
    direct_pdpt: [0; 512],
    direct_pds: [[0; 512]; DIRECT_MAP_GIB],
    image_pdpt: [0; 512],
    image_pd: [0; 512],
    image_pts: [[0; 512]; IMAGE_TABLES],
    stacks_pdpt: [0; 512],
    stacks_pd: [0; 512],
    stacks_pts: [[0; 512]; stacks::TABLES],
};

unsafe extern "C" {
    static kernel_start: u8;
    static text_end: u8;
    static rodata_end: u8;
    static kernel_end: u8;
}

fn symbol(s: &u8) -> usize {
    s as *const u8 as usize
}

/// Whether `addr` lies in the kernel's code: a candidate return address in a panic's stack.
pub fn is_kernel_text(addr: usize) -> bool {
    // SAFETY: the linker script defines these symbols; only their addresses are used.
    let (start, end) = unsafe { (symbol(&kernel_start), symbol(&text_end)) };
    (start..end).contains(&addr)
}

/// Physical address of a kernel-image symbol (the image is linked at `KERNEL_VMA + phys`).
fn image_phys<T>(ptr: *const T) -> PhysAddr {
    (ptr as usize - KERNEL_VMA) as u64
}

/// The kernel's root table; every address space copies its kernel half.
pub fn kernel_root() -> PhysAddr {
    image_phys(&raw const KERNEL_TABLES)
}

/// The global bit for kernel mappings, where the CPU has global pages.
fn global_bit() -> u64 {
    if crate::arch::cpu_features().global_pages {
        GLOBAL
    } else {
        0
    }
}

/// The page tables of the kernel-stack region, edited only by [`stacks`].
fn stack_tables() -> *mut [Table; stacks::TABLES] {
    // SAFETY: only the field's address is taken; no reference is made here.
    unsafe { &raw mut KERNEL_TABLES.stacks_pts }
}

/// Build the kernel's page tables and switch to them. Runs once, on the boot tables, before
/// anything else touches memory outside the image.
pub fn init_kernel_tables() {
    // SAFETY: runs once on the boot CPU before any other code uses KERNEL_TABLES.
    let tables = unsafe {
        let tables = &raw mut KERNEL_TABLES;
        &mut *tables
    };
    let global = global_bit();

    tables.root[256] = image_phys(&tables.direct_pdpt) | PRESENT | WRITABLE;
    for (gib, pd) in tables.direct_pds.iter_mut().enumerate() {
        tables.direct_pdpt[gib] = image_phys(pd) | PRESENT | WRITABLE;
        let uncached = if gib == DIRECT_MAP_GIB - 1 {
            NO_CACHE | WRITE_THROUGH
        } else {
            0
        };
        for (i, entry) in pd.iter_mut().enumerate() {
            let phys = ((gib << 30) + (i << 21)) as u64;
            *entry = phys | PRESENT | WRITABLE | HUGE | NO_EXECUTE | global | uncached;
        }
    }

    // The stack region's tables are all linked now, so every address space shares them.
    tables.root[510] = image_phys(&tables.stacks_pdpt) | PRESENT | WRITABLE;
    tables.stacks_pdpt[0] = image_phys(&tables.stacks_pd) | PRESENT | WRITABLE;
    for (i, pt) in tables.stacks_pts.iter().enumerate() {
        tables.stacks_pd[i] = image_phys(pt) | PRESENT | WRITABLE;
    }

    tables.root[511] = image_phys(&tables.image_pdpt) | PRESENT | WRITABLE;
    tables.image_pdpt[510] = image_phys(&tables.image_pd) | PRESENT | WRITABLE;
    // SAFETY: the linker script defines these symbols; only their addresses are used.
    let (start, text, rodata, end) = unsafe {
        (
            symbol(&kernel_start),
            symbol(&text_end),
            symbol(&rodata_end),
            symbol(&kernel_end),
        )
    };
    assert!(
        end - KERNEL_VMA <= IMAGE_TABLES << 21,
        "kernel image larger than its page tables"
    );
    for (i, pt) in tables.image_pts.iter_mut().enumerate() {
        tables.image_pd[i] = image_phys(pt) | PRESENT | WRITABLE;
    }
    for virt in (start..end).step_by(PAGE_SIZE) {
        let flags = if virt < text {
            PRESENT
        } else if virt < rodata {
            PRESENT | NO_EXECUTE
        } else {
            PRESENT | WRITABLE | NO_EXECUTE
        };
        let offset = virt - KERNEL_VMA;
        tables.image_pts[offset >> 21][(offset >> 12) & 511] = offset as u64 | flags | global;
    }
    // The new tables map the running image at the same addresses and the direct map the
    // loader's structures will be read through; the boot identity map is no longer used.
    crate::arch::tlb::set_kernel_root(kernel_root());
    crate::arch::load_root(kernel_root());
}

/// Give the kernel heap and every other free frame of RAM to their allocators.
/// The RAM and firmware ranges of the boot memory map, and the first MiB: what a device
/// memory object may never cover.
static MEMORY: conquer_once::spin::OnceCell<heapless::Vec<(u64, u64), 65>> =
    conquer_once::spin::OnceCell::uninit();

/// Whether `[start, end)` overlaps RAM (the kernel, its heap, every frame), firmware tables
/// or the first MiB (the BIOS areas the kernel reads), as the boot memory map tells.
pub fn overlaps_memory(start: u64, end: u64) -> bool {
    MEMORY
        .get()
        .is_none_or(|ranges| ranges.iter().any(|&(s, e)| start < e && s < end))
}

pub fn init_memory(boot: &BootInfo) {
    MEMORY.init_once(|| {
        let all = boot.usable.iter().chain(&boot.firmware);
        core::iter::once((0, 0x10_0000))
            .chain(all.map(|range| (range.start, range.end)))
            .collect()
    });
    // SAFETY: the linker script defines `kernel_end`.
    let image_end = image_phys(unsafe { &kernel_end });
    let limit = (DIRECT_MAP_GIB << 30) as u64;
    let mut reserved: heapless::Vec<(u64, u64), 24> = heapless::Vec::new();
    let _ = reserved.push((0, 0x10_0000));
    let _ = reserved.push((0x10_0000, image_end));
    for module in &boot.modules {
        let end = align_up(module.end as usize, PAGE_SIZE).unwrap_or(usize::MAX) as u64;
        let _ = reserved.push((module.start, end));
    }

    let mut heap: Option<u64> = None;
    for range in &boot.usable {
        let start = align_up(range.start as usize, PAGE_SIZE).unwrap_or(usize::MAX) as u64;
        let end = range.end.min(limit) & !(PAGE_SIZE as u64 - 1);
        for (s, e) in free_pieces(start, end, &reserved) {
            let (s, e) = match heap {
                None if e - s >= HEAP_SIZE as u64 => {
                    heap = Some(s);
                    (s + HEAP_SIZE as u64, e)
                }
                _ => (s, e),
            };
            // SAFETY: `[s, e)` is usable RAM below the direct map's limit, outside the
            // kernel image, the boot modules and the heap.
            unsafe { frame::add_range(s, e) };
        }
    }
    let heap = heap.expect("not enough contiguous RAM for the kernel heap");
    // SAFETY: the heap range was just excluded from the frame allocator and is mapped by the
    // direct map, writable.
    unsafe { crate::heap::init(phys_to_virt(heap), HEAP_SIZE) };
}

/// `[start, end)` minus the reserved ranges, as up to a few pieces.
fn free_pieces(start: u64, end: u64, reserved: &[(u64, u64)]) -> heapless::Vec<(u64, u64), 32> {
    let mut pieces: heapless::Vec<(u64, u64), 32> = heapless::Vec::new();
    if start < end {
        let _ = pieces.push((start, end));
    }
    for &(rs, re) in reserved {
        let mut next: heapless::Vec<(u64, u64), 32> = heapless::Vec::new();
        for &(s, e) in &pieces {
            if re <= s || rs >= e {
                let _ = next.push((s, e));
                continue;
            }
            if s < rs {
                let _ = next.push((s, rs));
            }
            if re < e {
                let _ = next.push((re, e));
            }
        }
        pieces = next;
    }
    pieces
}
