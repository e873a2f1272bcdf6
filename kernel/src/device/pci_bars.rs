//! The size of every PCI BAR, measured once at boot, before the other cores start.
//!
//! Sizing a BAR turns its decoding off and writes all ones to it: the physical memory map
//! changes under every core. Done while other cores run, that is a hazard on real machines
//! (a core touching the BAR meanwhile) and crashes QEMU 7.2's multi-threaded TCG
//! (docs/decisions/014-pinned-pci-memory-map.md). So the kernel does it here, on the boot
//! core alone, through the legacy mechanism (which q35 has beside ECAM), and init asks for
//! the sizes (`pci_bar_size`) instead of measuring them.

use alloc::vec::Vec;
use conquer_once::spin::OnceCell;

use super::pci_config::Access;
use keel_abi::pci::ALL_FUNCTIONS;

const COMMAND: usize = 0x04;
const HEADER_TYPE: usize = 0x0c;
const BAR0: usize = 0x10;
/// Command register bits: decode I/O and memory BARs.
const DECODING: u32 = 0b11;

/// Per function that has BARs: its number (`bus << 8 | device << 3 | function`) and the
/// size of each BAR (0: none; a 64-bit BAR's size at its first index, 0 at the second).
static SIZES: OnceCell<Vec<(u16, [u64; 6])>> = OnceCell::uninit();

/// Measure every function's BARs. Only before the other cores start.
pub fn measure() -> usize {
    let mut found = Vec::new();
    for device in 0..0x2000_u16 {
        let head = device << 3;
        if absent(head) {
            continue;
        }
        let functions = if read(head, HEADER_TYPE) >> 16 & 0x80 != 0 {
            8
        } else {
            1
        };
        for function in (head..head + functions).filter(|&f| !absent(f)) {
            let bars = match read(function, HEADER_TYPE) >> 16 & 0x7f {
                0 => 6,
                1 => 2,
                _ => 0,
            };
            if bars > 0 {
                found.push((function, sizes(function, bars)));
            }
        }
    }
    let functions = found.len();
    SIZES.init_once(|| found);
    functions
}

/// The size of BAR `bar` of `function` as measured at boot; `None` for a function or BAR
/// that has none.
pub fn size(function: u16, bar: usize) -> Option<u64> {
    let (_, sizes) = SIZES.get()?.iter().find(|(f, _)| *f == function)?;
    sizes.get(bar).copied().filter(|&size| size != 0)
}

fn sizes(function: u16, bars: usize) -> [u64; 6] {
    let mut sizes = [0; 6];
    let command = read(function, COMMAND);
    write(function, COMMAND, command & 0xffff & !DECODING);
    let mut index = 0;
    while index < bars {
        let register = BAR0 + 4 * index;
        let low = read(function, register);
        let io = low & 1 != 0;
        let wide = !io && (low >> 1) & 3 == 2 && index + 1 < bars;
        write(function, register, !0);
        let mut mask = u64::from(read(function, register) & if io { !3 } else { !0xf });
        write(function, register, low);
        if wide {
            let high = read(function, register + 4);
            write(function, register + 4, !0);
            mask |= u64::from(read(function, register + 4)) << 32;
            write(function, register + 4, high);
        } else {
            mask |= if io {
                0xffff_ffff_ffff_0000
            } else {
                0xffff_ffff_0000_0000
            };
        }
        // An unimplemented BAR reads back 0: no size.
        if mask & 0xffff_ffff != 0 {
            sizes[index] = (!mask).wrapping_add(1);
        }
        index += 1 + usize::from(wide);
    }
    // The status half is write-1-to-clear: written as 0.
    write(function, COMMAND, command & 0xffff);
    sizes
}

fn absent(function: u16) -> bool {
    read(function, 0) & 0xffff == 0xffff
}

fn access(function: u16, register: usize) -> Access {
    Access::checked(
        ALL_FUNCTIONS as u32,
        usize::from(function) << 12 | register,
        4,
    )
    .expect("an aligned register below 256 of a function number")
}

fn read(function: u16, register: usize) -> u32 {
    access(function, register).read()
}

fn write(function: u16, register: usize, value: u32) {
    access(function, register).write(value);
}
