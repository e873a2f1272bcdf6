//! The user address space as the kernel lays it out, and the start-up record every process gets.

use crate::{ARGS_LEN, NAME_LEN};

pub const PAGE_SIZE: usize = 4096;

/// User addresses are `[USER_START, USER_END)`; page 0 is never mapped so null faults.
/// The last page below the canonical hole stays unmapped too: a `syscall` at its very end
/// would return to a non-canonical address, which `sysret` turns into a ring-0 fault.
pub const USER_START: usize = 0x1000;
pub const USER_END: usize = 0x0000_7fff_ffff_f000;

/// Where `mem_map(0, ..)` looks for free space first.
pub const MMAP_BASE: usize = 0x0000_1000_0000_0000;
/// Boot modules are mapped read-only into the first process from here.
pub const MODULES_BASE: usize = 0x0000_6000_0000_0000;
/// The start-up record, read-only; its address is the first argument of `_start`.
pub const START_INFO_ADDR: usize = 0x0000_7ff0_0000_0000;
/// The main thread's stack grows down from here.
pub const STACK_TOP: usize = 0x0000_7fff_ffff_0000;
pub const STACK_SIZE: usize = 128 * 1024;

pub const START_INFO_MAGIC: u64 = 0x4b45_454c_5354_4152; // "KEELSTAR"
pub const START_INFO_SIZE: usize = 2 * PAGE_SIZE;
/// The clock page ([`ClockPage`]), read-only, the same page in every process.
pub const CLOCK_ADDR: usize = START_INFO_ADDR + START_INFO_SIZE;
pub const MAX_MODULES: usize = 16;
pub const MODULE_ARGS_LEN: usize = 192;

/// What a process finds at [`START_INFO_ADDR`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StartInfo {
    pub magic: u64,
    pub pid: u32,
    /// Boot modules mapped into this process (only the first process gets any).
    pub module_count: u32,
    pub args_len: u64,
    /// Capabilities the process started with: handles `1..=cap_count`.
    pub cap_count: u64,
    pub args: [u8; ARGS_LEN],
    pub modules: [BootModule; MAX_MODULES],
    /// The process's name (its program's, as spawned), `name_len` bytes, NUL-padded: also
    /// what a debugger checks to stop in one process of several that share addresses.
    pub name_len: u64,
    pub name: [u8; NAME_LEN],
    pub _pad: [u8; START_INFO_SIZE - 40 - NAME_LEN - ARGS_LEN - MAX_MODULES * 256],
}

/// What a process finds at [`CLOCK_ADDR`]: the timer, kept up to date by the kernel, so
/// reading the time takes no syscall. Read `ticks` as an atomic (it changes under the
/// reader); `tick_hz` is fixed at boot.
#[repr(C)]
pub struct ClockPage {
    /// Timer ticks since boot, as `sys_info(Ticks)` says.
    pub ticks: u64,
    /// Timer ticks per second.
    pub tick_hz: u64,
}

/// One boot module: an image the loader placed in memory, now mapped read-only at `addr`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BootModule {
    pub addr: u64,
    pub len: u64,
    pub name_len: u32,
    pub args_len: u32,
    pub name: [u8; NAME_LEN],
    pub args: [u8; MODULE_ARGS_LEN],
    pub _reserved: u64,
}

impl BootModule {
    pub const EMPTY: BootModule = BootModule {
        addr: 0,
        len: 0,
        name_len: 0,
        args_len: 0,
        name: [0; NAME_LEN],
        args: [0; MODULE_ARGS_LEN],
        _reserved: 0,
    };

    pub fn name(&self) -> &str {
        str_prefix(&self.name, self.name_len as usize)
    }

    pub fn args(&self) -> &str {
        str_prefix(&self.args, self.args_len as usize)
    }
}

impl StartInfo {
    pub fn args(&self) -> &str {
        str_prefix(&self.args, self.args_len as usize)
    }

    pub fn modules(&self) -> &[BootModule] {
        &self.modules[..(self.module_count as usize).min(MAX_MODULES)]
    }
}

fn str_prefix(bytes: &[u8], len: usize) -> &str {
    core::str::from_utf8(&bytes[..len.min(bytes.len())]).unwrap_or("")
}
