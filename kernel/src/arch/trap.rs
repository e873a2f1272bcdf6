//! Interrupts and exceptions: the IDT, 256 entry stubs, and the frame they build.
//!
//! Every vector has a 16-byte stub that pushes a dummy error code where the CPU pushes none,
//! then the vector number, and jumps to `trap_common`, which saves the general registers as a
//! [`TrapFrame`] and calls `trap_dispatch` (in `interrupt.rs`, above the objects it calls).
//! `syscall` entry builds the same frame, so a thread's saved user state always has one
//! shape. Entries from ring 3 swap in the kernel's GS (`percpu.rs`), and exits to it swap
//! it back; entries from ring 0 (interrupts while idle, kernel faults) find it in place.
//! NMI, double fault and machine check from ring 0 take the same test, so one arriving
//! between `syscall` and `swapgs` would find the user's GS; all three are fatal in ring 0,
//! and the kernel-fault path makes GS the kernel's before it reads anything per core
//! (`percpu::recover_gs`).

use super::gdt::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, KERNEL_CODE};
use core::arch::global_asm;

/// User registers as saved on the kernel stack by an entry stub.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    pub fn is_from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

pub const VECTOR_TIMER: u64 = 32;
/// The legacy PICs are remapped here and masked; anything arriving is spurious.
pub const VECTOR_PIC_BASE: u8 = 0xe0;
pub const VECTOR_SPURIOUS: u64 = 0xff;
/// Another core asks this one to look at its due work or to flush its TLB.
pub const VECTOR_WAKE: u64 = 0xf0;

global_asm!(
    r#"
    .section .text
    .balign 16
    .global trap_stubs
trap_stubs:
    .set vector, 0
    .rept 256
    .balign 16
    .if (vector == 8) || ((vector >= 10) && (vector <= 14)) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    pushq $0
    .endif
    pushq $vector
    jmp trap_common
    .set vector, vector + 1
    .endr

trap_common:
    /* From ring 3 (the CS the CPU saved, above the vector and error code): the kernel's GS. */
    testb $3, 24(%rsp)
    jz 1f
    swapgs
1:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld
    movq %rsp, %rdi
    call trap_dispatch
    .global trap_return
trap_return:
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    /* Back to ring 3: the user's GS. */
    testb $3, 8(%rsp)
    jz 2f
    swapgs
2:
    iretq
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static trap_stubs: u8;
}

#[repr(C, packed)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const INTERRUPT_GATE: u8 = 0x8e;
/// Reachable with `int3`/`into` from ring 3, so those raise their own exception, not #GP.
const USER_INTERRUPT_GATE: u8 = 0xee;

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static mut IDT: Idt = Idt([Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    attributes: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
}; 256]);

/// Fill in the interrupt table, shared by every core (the boot core, once).
pub fn init() {
    // SAFETY: `trap_stubs` is defined above; only its address is taken.
    let stubs = unsafe { &trap_stubs as *const u8 as u64 };
    // SAFETY: runs once on the boot CPU before interrupts are enabled.
    let idt = unsafe {
        let idt = &raw mut IDT;
        &mut *idt
    };
    for (vector, gate) in idt.0.iter_mut().enumerate() {
        let handler = stubs + 16 * vector as u64;
        let ist = match vector {
            2 => IST_NMI,
            8 => IST_DOUBLE_FAULT,
            18 => IST_MACHINE_CHECK,
            _ => 0,
        };
        *gate = Gate {
            offset_low: handler as u16,
            selector: KERNEL_CODE,
            ist,
            attributes: if matches!(vector, 3 | 4) {
                USER_INTERRUPT_GATE
            } else {
                INTERRUPT_GATE
            },
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        };
    }
}

/// Load the interrupt table on this core.
pub fn load() {
    let pointer = x86_64::structures::DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: x86_64::VirtAddr::new(&raw const IDT as u64),
    };
    // SAFETY: the IDT is static, filled in by `init` before any core loads it, and every
    // gate points at a valid stub.
    unsafe { x86_64::instructions::tables::lidt(&pointer) };
}

pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "non-maskable interrupt",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available (FPU disabled)",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point error",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point error",
        20 => "virtualization exception",
        21 => "control protection",
        _ => "reserved exception",
    }
}
