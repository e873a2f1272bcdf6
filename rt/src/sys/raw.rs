//! Syscalls with unchecked arguments: any number, any pointer, any length.
//!
//! Everything in [`sys`](super) is built on [`syscall`]. These functions exist on their own
//! because tests hand the kernel bad numbers and bad pointers on purpose.

use core::arch::asm;

use keel_abi::{Syscall, SyscallResult, decode_result};

/// Issues syscall `number` with six arguments and decodes `rax`.
///
/// # Safety
///
/// The kernel acts on the arguments as the syscall defines: memory they point to may be read
/// or written, and mappings, threads and processes may change. The caller answers for the
/// effect on its own memory, as with any raw pointer use.
pub unsafe fn syscall(number: usize, args: [usize; 6]) -> SyscallResult {
    let rax: usize;
    // SAFETY: the kernel preserves every register but rax, rcx and r11, and does not touch
    // the user stack; the memory effects are the caller's to justify.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => rax,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    decode_result(rax)
}

/// Issues `number` with up to six arguments; missing ones are zero.
///
/// # Safety
///
/// As for [`syscall`].
pub unsafe fn call<const N: usize>(number: Syscall, args: [usize; N]) -> SyscallResult {
    const { assert!(N <= 6, "a syscall takes at most six arguments") };
    let mut all = [0; 6];
    all[..N].copy_from_slice(&args);
    // SAFETY: forwarded from the caller.
    unsafe { syscall(number as usize, all) }
}
