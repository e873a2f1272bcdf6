//! What the boot loader tells us (Multiboot 1): the memory map, boot modules, command line.
//!
//! Everything is copied into kernel-owned values before the frame allocator starts, because
//! the loader's structures live in memory that becomes free frames.

use crate::arch::direct_map::{PhysAddr, phys_to_virt};
use heapless::{String, Vec};

pub const MAX_RANGES: usize = 32;
pub const MAX_MODULES: usize = keel_abi::layout::MAX_MODULES;

#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub start: PhysAddr,
    pub end: PhysAddr,
}

pub struct Module {
    pub start: PhysAddr,
    pub end: PhysAddr,
    /// The loader's command line for the module: "path args".
    pub cmdline: String<256>,
}

impl Module {
    /// The file name of the module's path.
    pub fn name(&self) -> &str {
        let path = self.cmdline.split_whitespace().next().unwrap_or("");
        path.rsplit('/').next().unwrap_or(path)
    }

    /// Everything after the path.
    pub fn args(&self) -> &str {
        let trimmed = self.cmdline.trim_start();
        trimmed
            .find(char::is_whitespace)
            .map_or("", |i| trimmed[i..].trim())
    }
}

pub struct BootInfo {
    pub usable: Vec<Range, MAX_RANGES>,
    /// ACPI tables and firmware storage (ACPI reclaimable, NVS): RAM nobody may map.
    pub firmware: Vec<Range, MAX_RANGES>,
    pub modules: Vec<Module, MAX_MODULES>,
    pub cmdline: String<256>,
}

const FLAG_CMDLINE: u32 = 1 << 2;
const FLAG_MODULES: u32 = 1 << 3;
const FLAG_MEMORY_MAP: u32 = 1 << 6;
const MEMORY_AVAILABLE: u32 = 1;
const MEMORY_ACPI: u32 = 3;
const MEMORY_NVS: u32 = 4;

fn read<T: Copy>(phys: u64) -> T {
    // SAFETY: the loader placed its structures in RAM, which the direct map covers; reads
    // are unaligned-safe.
    unsafe { core::ptr::read_unaligned(phys_to_virt(phys) as *const T) }
}

fn c_string<const N: usize>(phys: u64) -> String<N> {
    let mut s = String::new();
    for i in 0..N as u64 {
        let byte: u8 = read(phys + i);
        if byte == 0
            || s.push(if byte.is_ascii() { byte as char } else { '?' })
                .is_err()
        {
            break;
        }
    }
    s
}

/// Parse the Multiboot 1 information structure at physical address `info`.
pub fn parse(info: PhysAddr) -> BootInfo {
    let flags: u32 = read(info);
    let mut boot = BootInfo {
        usable: Vec::new(),
        firmware: Vec::new(),
        modules: Vec::new(),
        cmdline: String::new(),
    };
    if flags & FLAG_CMDLINE != 0 {
        boot.cmdline = c_string(read::<u32>(info + 16) as u64);
    }
    if flags & FLAG_MODULES != 0 {
        let count: u32 = read(info + 20);
        let base = read::<u32>(info + 24) as u64;
        for i in 0..count as u64 {
            let entry = base + i * 16;
            let module = Module {
                start: read::<u32>(entry) as u64,
                end: read::<u32>(entry + 4) as u64,
                cmdline: c_string(read::<u32>(entry + 8) as u64),
            };
            if boot.modules.push(module).is_err() {
                crate::kprintln!("more than {MAX_MODULES} boot modules; the rest are ignored");
                break;
            }
        }
    }
    if flags & FLAG_MEMORY_MAP != 0 {
        let length = read::<u32>(info + 44) as u64;
        let base = read::<u32>(info + 48) as u64;
        let mut offset = 0;
        while offset < length {
            let entry = base + offset;
            let size: u32 = read(entry);
            let start: u64 = read(entry + 4);
            let len: u64 = read(entry + 12);
            let kind: u32 = read(entry + 20);
            let list = match kind {
                MEMORY_AVAILABLE => Some(&mut boot.usable),
                MEMORY_ACPI | MEMORY_NVS => Some(&mut boot.firmware),
                _ => None,
            };
            let range = Range {
                start,
                end: start.saturating_add(len),
            };
            if list.is_some_and(|list| list.push(range).is_err()) {
                break;
            }
            offset += size as u64 + 4;
        }
    }
    boot
}
