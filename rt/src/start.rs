//! Process start-up: `_start`, the start-up record and the boot modules it describes.

use core::arch::global_asm;
use core::sync::atomic::{AtomicPtr, Ordering};

use keel_abi::layout::{START_INFO_MAGIC, StartInfo};

use crate::{print, process};

// The kernel enters `_start` with `rdi` = the start-up record and `rsp` = a 16-byte-aligned
// stack top with nothing pushed, so a plain `call` gives `start` the frame SysV expects.
// A zero `rbp` ends frame-pointer walks here.
global_asm!(
    ".globl _start",
    ".type _start, @function",
    "_start:",
    "    xor %ebp, %ebp",
    "    call {start}",
    "    ud2",
    start = sym start,
    options(att_syntax)
);

unsafe extern "Rust" {
    /// The program's `main`, defined by [`entry!`](crate::entry).
    fn __keel_main(args: &str) -> i32;
}

/// The exit code of a process whose start-up record is not one (a kernel/runtime mismatch).
const BAD_START_INFO_EXIT_CODE: i32 = 102;

static START_INFO: AtomicPtr<StartInfo> = AtomicPtr::new(core::ptr::null_mut());

extern "C" fn start(info: *mut StartInfo) -> ! {
    START_INFO.store(info, Ordering::Relaxed);
    if start_info().magic != START_INFO_MAGIC {
        print::print_str("keel-rt: bad start-up record magic\n");
        process::exit(BAD_START_INFO_EXIT_CODE);
    }
    // SAFETY: `entry!` defines `__keel_main` with exactly this signature; a program without
    // it does not link.
    let code = unsafe { __keel_main(start_info().args()) };
    process::exit(code)
}

/// The start-up record the kernel mapped for this process: pid, arguments, boot modules.
pub fn start_info() -> &'static StartInfo {
    let info = START_INFO.load(Ordering::Relaxed);
    // SAFETY: `_start` stored the kernel's pointer before any user code ran; the kernel maps
    // the record read-only for the life of the process and never changes it.
    unsafe { &*info }
}

/// A boot module: a file the boot loader handed to the first process.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    /// The file's base name.
    pub name: &'static str,
    /// The arguments given with it on the boot command line.
    pub args: &'static str,
    /// The file's contents, mapped read-only.
    pub bytes: &'static [u8],
}

/// The boot modules mapped into this process (only the first process has any).
pub fn boot_modules() -> impl Iterator<Item = Module> {
    start_info().modules().iter().map(|module| Module {
        name: module.name(),
        args: module.args(),
        // SAFETY: the kernel maps each module read-only at `addr` for `len` bytes for the
        // life of the process.
        bytes: unsafe {
            core::slice::from_raw_parts(module.addr as *const u8, module.len as usize)
        },
    })
}

/// The contents of the boot module called `name`, if there is one.
pub fn boot_module(name: &str) -> Option<&'static [u8]> {
    boot_modules()
        .find(|module| module.name == name)
        .map(|module| module.bytes)
}
