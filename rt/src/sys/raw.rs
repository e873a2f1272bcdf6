//! Syscalls with unchecked arguments: any number, any pointer, any length.
//!
//! Everything in [`sys`](super) is built on [`syscall`], or on [`syscall_message`] for the
//! calls that return a message in registers. These functions exist on their own because
//! tests hand the kernel bad numbers, handles and pointers on purpose.

use core::arch::asm;

use keel_abi::ipc::MessageInfo;
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

/// What the IPC syscalls that return a message ([`Syscall::PortRecv`],
/// [`Syscall::PortCall`], [`Syscall::PortReplyRecv`]) leave in the argument registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawMessage {
    /// `rdi`: the badge of the capability the message was sent through (0 for none).
    pub badge: u64,
    /// `rsi`: label, payload length, capability count and the kernel's flags.
    pub info: MessageInfo,
    /// `rdx, r10, r8, r9`.
    pub words: [u64; 4],
}

/// Issues syscall `number` like [`syscall`], and also returns what the kernel left in `rdi`,
/// `rsi`, `rdx`, `r10`, `r8` and `r9`: a message, for the calls that deliver one. For any
/// other call (or a failed one) those registers hold the arguments again.
///
/// # Safety
///
/// As for [`syscall`]; the kernel may also read and write the calling thread's IPC buffer.
pub unsafe fn syscall_message(number: usize, args: [usize; 6]) -> (SyscallResult, RawMessage) {
    let rax: usize;
    let (badge, info, w0, w1, w2, w3): (u64, u64, u64, u64, u64, u64);
    // SAFETY: the kernel changes no register but rax, rcx, r11 and the six declared here, and
    // does not touch the user stack; the memory effects are the caller's to justify.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => rax,
            inlateout("rdi") args[0] as u64 => badge,
            inlateout("rsi") args[1] as u64 => info,
            inlateout("rdx") args[2] as u64 => w0,
            inlateout("r10") args[3] as u64 => w1,
            inlateout("r8") args[4] as u64 => w2,
            inlateout("r9") args[5] as u64 => w3,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    let message = RawMessage {
        badge,
        info: MessageInfo(info),
        words: [w0, w1, w2, w3],
    };
    (decode_result(rax), message)
}
