//! `syscall` entry and exit, and the kernel-stack switch between threads.
//!
//! The kernel runs with interrupts off (SFMASK clears IF on `syscall`). The entry swaps in
//! the kernel's GS (`percpu.rs`), parks the user stack pointer in this core's area while it
//! loads the thread's kernel stack (this core's TSS `rsp0`), and swaps GS back at the one
//! exit, `syscall_exit`. It saves the user context in a [`TrapFrame`] of the same shape an interrupt
//! builds, but only the registers a syscall can observe or clobber: the arguments and
//! results, `rip`, `rflags` and `rsp`. The callee-saved registers are preserved by the Rust
//! code itself, and every caller-saved one is reloaded before `sysret`, so no kernel value
//! reaches user space.

use super::gdt::KERNEL_CODE;
use super::trap::TrapFrame;
use core::arch::global_asm;
use core::mem::{offset_of, size_of};
use x86_64::registers::model_specific::Msr;

global_asm!(
    r#"
    .section .text
    .balign 16
    .global syscall_entry
syscall_entry:
    swapgs
    movq %rsp, %gs:{user_rsp}
    /* The running thread's kernel stack: the one the TSS gives interrupts from ring 3. */
    movq %gs:{kernel_stack}, %rsp
    subq ${frame_size}, %rsp
    movq %rcx, {rip}(%rsp)
    movq %r11, {rflags}(%rsp)
    movq %gs:{user_rsp}, %rcx
    movq %rcx, {rsp}(%rsp)
    movq %rax, {rax}(%rsp)
    movq %rdi, {rdi}(%rsp)
    movq %rsi, {rsi}(%rsp)
    movq %rdx, {rdx}(%rsp)
    movq %r10, {r10}(%rsp)
    movq %r8, {r8}(%rsp)
    movq %r9, {r9}(%rsp)
    movq %rsp, %rdi
    /* A notification at the door (kernel/fastpath.rs): true if it was delivered and the
       frame holds the result, false for the general path. */
    cmpl ${notify}, %eax
    je 7f
    /* A yield, receive, call, reply-and-receive or signal-and-receive may leave this stack
       for good (parked, see switch_parking): its callee-saved registers go in the frame. The
       bit test takes the number modulo 64, so a few other numbers save them too, which is
       harmless. */
    movabsq ${parking}, %rcx
    btq %rax, %rcx
    jc 1f
    call syscall_dispatch
syscall_exit:
    movq {rax}(%rsp), %rax
    movq {rdi}(%rsp), %rdi
    movq {rsi}(%rsp), %rsi
    movq {rdx}(%rsp), %rdx
    movq {r10}(%rsp), %r10
    movq {r8}(%rsp), %r8
    movq {r9}(%rsp), %r9
    movq {rip}(%rsp), %rcx
    movq {rflags}(%rsp), %r11
    swapgs
    movq {rsp}(%rsp), %rsp
    sysretq
1:
    movq %rbx, {rbx}(%rsp)
    movq %rbp, {rbp}(%rsp)
    movq %r12, {r12}(%rsp)
    movq %r13, {r13}(%rsp)
    movq %r14, {r14}(%rsp)
    movq %r15, {r15}(%rsp)
    /* The IPC fast path, at the door: it returns the frame of the thread to resume, this
       one parked, or null for the general path (kernel/fastpath.rs). */
    cmpl ${call}, %eax
    je 2f
    cmpl ${reply_recv}, %eax
    je 6f
    cmpl ${signal_recv}, %eax
    jne 3f
    call fastpath_signal_recv
    jmp 4f
6:
    call fastpath_reply_recv
    jmp 4f
2:
    call fastpath_call
4:
    testq %rax, %rax
    jz 5f
    /* This stack is parked below its frame: a later switch_context to it enters
       fast_resume. */
    leaq fast_resume(%rip), %rcx
    movq %rcx, -8(%rsp)
    movq %rax, %rsp
    jmp syscall_exit_full
5:
    movq %rsp, %rdi
3:
    call syscall_dispatch
    jmp syscall_exit
7:
    call fastpath_notify
    testb %al, %al
    jnz syscall_exit
    movq %rsp, %rdi
    call syscall_dispatch
    jmp syscall_exit

    /* exit_to_user(frame, park): leave this kernel stack for good and return to user space
       with `frame`, a parked thread's; `park` is where this thread's stack is parked so
       that a later switch_context to it enters fast_resume. */
    .balign 16
    .global exit_to_user
exit_to_user:
    leaq fast_resume(%rip), %rax
    movq %rax, {switch_ret}(%rsi)
    movq %rdi, %rsp
    jmp syscall_exit_full

    /* resume_parking(next_rsp, park): leave this kernel stack for good, parking it as
       exit_to_user does, and resume the kernel context parked at `next_rsp`. */
    .balign 16
    .global resume_parking
resume_parking:
    leaq fast_resume(%rip), %rax
    movq %rax, {switch_ret}(%rsi)
    movq %rdi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret

    /* A parked thread's resumption by switch_context: finish its syscall, then return. */
fast_resume:
    movq %rsp, %rdi
    call syscall_resume
syscall_exit_full:
    movq {rbx}(%rsp), %rbx
    movq {rbp}(%rsp), %rbp
    movq {r12}(%rsp), %r12
    movq {r13}(%rsp), %r13
    movq {r14}(%rsp), %r14
    movq {r15}(%rsp), %r15
    jmp syscall_exit

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

    /* switch_to_user(save_rsp: *mut u64, frame): park callee-saved registers on this stack
       as switch_context does, and return to user space with `frame`, a parked thread's. */
    .balign 16
    .global switch_to_user
switch_to_user:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    jmp syscall_exit_full

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
    rbx = const offset_of!(TrapFrame, rbx),
    rbp = const offset_of!(TrapFrame, rbp),
    r12 = const offset_of!(TrapFrame, r12),
    r13 = const offset_of!(TrapFrame, r13),
    r14 = const offset_of!(TrapFrame, r14),
    r15 = const offset_of!(TrapFrame, r15),
    user_rsp = const super::percpu::USER_RSP,
    kernel_stack = const super::percpu::KERNEL_STACK,
    parking = const PARKING_SYSCALLS,
    call = const keel_abi::Syscall::PortCall as u32,
    reply_recv = const keel_abi::Syscall::PortReplyRecv as u32,
    signal_recv = const keel_abi::Syscall::PortSignalRecv as u32,
    notify = const keel_abi::Syscall::PortNotify as u32,
    switch_ret = const SWITCH_FRAME - 8,
    options(att_syntax)
);

/// What `switch_context` parks below a stack pointer: six callee-saved registers and the
/// return address.
pub const SWITCH_FRAME: usize = 7 * 8;

/// The syscalls that may park their thread, as bits (all numbers are below 64).
pub const PARKING_SYSCALLS: u64 = {
    use keel_abi::Syscall;
    let numbers = [
        Syscall::ThreadYield,
        Syscall::PortRecv,
        Syscall::PortCall,
        Syscall::PortReplyRecv,
        Syscall::PortSignalRecv,
    ];
    let mut bits = 0;
    let mut i = 0;
    while i < numbers.len() {
        assert!((numbers[i] as u32) < 64);
        bits |= 1 << numbers[i] as u32;
        i += 1;
    }
    bits
};

unsafe extern "C" {
    fn syscall_entry();
    fn thread_trampoline();
    fn switch_context(save_rsp: *mut u64, next_rsp: u64);
    fn switch_to_user(save_rsp: *mut u64, frame: *const TrapFrame);
    fn exit_to_user(frame: *const TrapFrame, park: u64) -> !;
    fn resume_parking(next_rsp: u64, park: u64) -> !;
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

/// Save the current kernel context in `*save_rsp` and resume the one parked at `next_rsp`.
///
/// # Safety
/// `next_rsp` must be a stack parked by `switch_context` or prepared by
/// [`prepare_new_stack`], and the kernel must hold no lock the other side will take.
pub unsafe fn switch(save_rsp: *mut u64, next_rsp: u64) {
    // SAFETY: per the caller.
    unsafe { switch_context(save_rsp, next_rsp) }
}

/// Save the current kernel context in `*save_rsp`, as [`switch`] does, and return to user
/// space with `frame`, the trap frame at the top of a parked thread's kernel stack.
///
/// # Safety
/// `frame` is a parked thread's saved syscall frame with its callee-saved registers, now
/// the running thread's (stacks and address space loaded); the kernel must hold no lock.
pub unsafe fn switch_user(save_rsp: *mut u64, frame: *const TrapFrame) {
    // SAFETY: per the caller.
    unsafe { switch_to_user(save_rsp, frame) }
}

/// Lay out a new thread's kernel stack so that the first switch to it enters ring 3 with
/// `frame`. Returns the stack pointer to switch to.
///
/// # Safety
/// `top` is the 16-byte-aligned end of a stack owned by the new thread with room for a
/// trap frame and the switch frame.
pub unsafe fn prepare_new_stack(top: usize, frame: &TrapFrame) -> u64 {
    let frame_at = top - core::mem::size_of::<TrapFrame>();
    let switch_at = frame_at - SWITCH_FRAME;
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

/// Return to user space with `frame`, the trap frame at the top of a parked thread's kernel
/// stack, abandoning the current kernel stack; `park` (its switch frame's address, just
/// below its own trap frame) is made to resume in `fast_resume`.
///
/// # Safety
/// `frame` is a parked thread's saved syscall frame with its callee-saved registers, now
/// the running thread's (stacks and address space loaded); `park` lies in the current
/// thread's stack, whose syscall saved its callee-saved registers; nothing on the current
/// stack needs dropping and the kernel lock is released.
pub unsafe fn return_to_user(frame: *const TrapFrame, park: u64) -> ! {
    // SAFETY: per the caller.
    unsafe { exit_to_user(frame, park) }
}

/// Resume the kernel context parked at `next_rsp`, abandoning the current kernel stack;
/// `park` is made to resume in `fast_resume`, as for [`return_to_user`].
///
/// # Safety
/// As for [`return_to_user`] about `park`; `next_rsp` is a stack parked by
/// `switch_context` or prepared by [`prepare_new_stack`] or a park, of the thread now
/// running (stacks and address space loaded).
pub unsafe fn switch_parking(next_rsp: u64, park: u64) -> ! {
    // SAFETY: per the caller.
    unsafe { resume_parking(next_rsp, park) }
}
