//! `syscall` entry and exit, and the kernel-stack switch between threads.
//!
//! The kernel runs with interrupts off (SFMASK clears IF on `syscall`), on one CPU, so the
//! entry can park the user stack pointer in a static while it loads the thread's kernel
//! stack. It saves the user context in a [`TrapFrame`] of the same shape an interrupt
//! builds, but only the registers a syscall can observe or clobber: the arguments and
//! results, `rip`, `rflags` and `rsp`. The callee-saved registers are preserved by the Rust
//! code itself, and every caller-saved one is reloaded before `sysret`, so no kernel value
//! reaches user space.

use super::gdt::KERNEL_CODE;
use super::trap::TrapFrame;
use core::arch::global_asm;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use x86_64::registers::model_specific::Msr;

/// Top of the running thread's kernel stack, loaded by `syscall_entry`.
#[unsafe(no_mangle)]
static SYSCALL_KERNEL_RSP: AtomicU64 = AtomicU64::new(0);
/// Scratch slot for the user stack pointer during entry.
#[unsafe(no_mangle)]
static SYSCALL_USER_RSP: AtomicU64 = AtomicU64::new(0);

global_asm!(
    r#"
    .section .text
    .balign 16
    .global syscall_entry
syscall_entry:
    movq %rsp, SYSCALL_USER_RSP(%rip)
    movq SYSCALL_KERNEL_RSP(%rip), %rsp
    subq ${frame_size}, %rsp
    movq %rcx, {rip}(%rsp)
    movq %r11, {rflags}(%rsp)
    movq SYSCALL_USER_RSP(%rip), %rcx
    movq %rcx, {rsp}(%rsp)
    movq %rax, {rax}(%rsp)
    movq %rdi, {rdi}(%rsp)
    movq %rsi, {rsi}(%rsp)
    movq %rdx, {rdx}(%rsp)
    movq %r10, {r10}(%rsp)
    movq %r8, {r8}(%rsp)
    movq %r9, {r9}(%rsp)
    movq %rsp, %rdi
    call syscall_dispatch
    movq {rax}(%rsp), %rax
    movq {rdi}(%rsp), %rdi
    movq {rsi}(%rsp), %rsi
    movq {rdx}(%rsp), %rdx
    movq {r10}(%rsp), %r10
    movq {r8}(%rsp), %r8
    movq {r9}(%rsp), %r9
    movq {rip}(%rsp), %rcx
    movq {rflags}(%rsp), %r11
    movq {rsp}(%rsp), %rsp
    sysretq

    /* switch_context(save_rsp: *mut u64, next_rsp: u64): park callee-saved registers on
       this stack, save its pointer, and resume the other stack where it parked. */
    .balign 16
    .global switch_context
switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret

    /* A new thread's first return from switch_context lands here, on its trap frame. */
    .balign 16
    .global thread_trampoline
thread_trampoline:
    call thread_first_run
    jmp trap_return
"#,
    frame_size = const size_of::<TrapFrame>(),
    rip = const offset_of!(TrapFrame, rip),
    rflags = const offset_of!(TrapFrame, rflags),
    rsp = const offset_of!(TrapFrame, rsp),
    rax = const offset_of!(TrapFrame, rax),
    rdi = const offset_of!(TrapFrame, rdi),
    rsi = const offset_of!(TrapFrame, rsi),
    rdx = const offset_of!(TrapFrame, rdx),
    r10 = const offset_of!(TrapFrame, r10),
    r8 = const offset_of!(TrapFrame, r8),
    r9 = const offset_of!(TrapFrame, r9),
    options(att_syntax)
);

unsafe extern "C" {
    fn syscall_entry();
    fn thread_trampoline();
    fn switch_context(save_rsp: *mut u64, next_rsp: u64);
}

const EFER: u32 = 0xc000_0080;
const STAR: u32 = 0xc000_0081;
const LSTAR: u32 = 0xc000_0082;
const SFMASK: u32 = 0xc000_0084;
const EFER_SCE: u64 = 1;
/// Cleared on entry: IF (interrupts), TF (single step), DF (direction), AC (user access).
const SFMASK_BITS: u64 = (1 << 9) | (1 << 8) | (1 << 10) | (1 << 18);

pub fn init() {
    let star = ((KERNEL_DATA_SYSRET_BASE as u64) << 48) | ((KERNEL_CODE as u64) << 32);
    // SAFETY: these MSRs configure `syscall` to enter `syscall_entry` with kernel segments
    // and interrupts masked, as the entry code expects.
    unsafe {
        Msr::new(STAR).write(star);
        Msr::new(LSTAR).write(syscall_entry as *const () as u64);
        Msr::new(SFMASK).write(SFMASK_BITS);
        let mut efer = Msr::new(EFER);
        let value = efer.read();
        efer.write(value | EFER_SCE);
    }
}

/// `sysret` takes CS = base + 16 and SS = base + 8 (with RPL 3): base is the kernel data
/// selector so that SS = user data (0x18) and CS = user code (0x20).
const KERNEL_DATA_SYSRET_BASE: u16 = 0x10 | 3;

pub fn set_syscall_stack(top: usize) {
    SYSCALL_KERNEL_RSP.store(top as u64, Relaxed);
}

/// Save the current kernel context in `*save_rsp` and resume the one parked at `next_rsp`.
///
/// # Safety
/// `next_rsp` must be a stack parked by `switch_context` or prepared by
/// [`prepare_new_stack`], and the kernel must hold no lock the other side will take.
pub unsafe fn switch(save_rsp: *mut u64, next_rsp: u64) {
    // SAFETY: per the caller.
    unsafe { switch_context(save_rsp, next_rsp) }
}

/// Lay out a new thread's kernel stack so that the first switch to it enters ring 3 with
/// `frame`. Returns the stack pointer to switch to.
///
/// # Safety
/// `top` is the 16-byte-aligned end of a stack owned by the new thread with room for a
/// trap frame and the switch frame.
pub unsafe fn prepare_new_stack(top: usize, frame: &TrapFrame) -> u64 {
    let frame_at = top - core::mem::size_of::<TrapFrame>();
    let switch_at = frame_at - 7 * 8;
    // SAFETY: per the caller, both areas lie inside the new thread's stack.
    unsafe {
        core::ptr::write(frame_at as *mut TrapFrame, *frame);
        let words = switch_at as *mut u64;
        for i in 0..6 {
            words.add(i).write(0);
        }
        words.add(6).write(thread_trampoline as *const () as u64);
    }
    switch_at as u64
}
