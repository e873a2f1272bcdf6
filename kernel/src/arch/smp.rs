//! Starting the other cores: the MADT lists the local APICs; each is sent INIT, then two
//! STARTUPs naming a page below 1 MiB, where a copy of the trampoline below takes it from
//! real mode to long mode and into the kernel, one core at a time.
//!
//! The trampoline enters long mode on the boot page tables (`boot.rs`: the first GiB at 0
//! and at -2 GiB), jumps to the kernel's half, loads the kernel's own tables and calls the
//! entry on the stack of the core's per-core area.

use super::percpu::{self, MAX_CORES};
use super::{cpu, lapic};
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, Ordering};

/// The page the trampoline is copied to: below 1 MiB, which the frame allocator never
/// hands out (`mm::init_memory`), and clear of the BIOS data area.
const TRAMPOLINE: u64 = 0x8000;

global_asm!(
    r#"
    .set KERNEL_VMA, 0xffffffff80000000
    .set AT, {at}

    .section .rodata.ap_trampoline, "a"
    .balign 16
    .code16
    .global ap_trampoline
ap_trampoline:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl (ap_gdtr - ap_trampoline)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(ap_protected - ap_trampoline + AT)

    .code32
ap_protected:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $(1 << 5), %eax             /* PAE */
    movl %eax, %cr4
    movl $(boot_pml4 - KERNEL_VMA), %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx          /* EFER: long mode enable, no-execute enable */
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16)), %eax  /* paging, write-protect in ring 0 */
    movl %eax, %cr0
    ljmpl $0x18, $(ap_long - ap_trampoline + AT)

    .code64
ap_long:
    movl $(ap_slots - ap_trampoline + AT), %esi
    movq 0(%rsi), %rsp
    movq 8(%rsi), %rax
    movq 16(%rsi), %rbx
    movq 24(%rsi), %rdi
    movabsq $ap_higher_half, %rcx
    jmp *%rcx

    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
    .quad 0x00af9a000000ffff        /* 0x18: 64-bit code */
ap_gdt_end:
ap_gdtr:
    .word ap_gdt_end - ap_gdt - 1
    .long ap_gdt - ap_trampoline + AT
    .balign 8
    /* Written by start_core: stack top, the kernel's CR3, the entry, its argument. */
    .global ap_slots
ap_slots:
    .quad 0, 0, 0, 0
    .global ap_trampoline_end
ap_trampoline_end:

    .section .text
ap_higher_half:
    movq %rax, %cr3
    xorl %ebp, %ebp
    call *%rbx
    ud2
"#,
    at = const TRAMPOLINE,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline: u8;
    static ap_slots: u8;
    static ap_trampoline_end: u8;
}

/// What the trampoline reads, in `ap_slots`' order.
#[repr(C)]
struct Slots {
    stack_top: u64,
    cr3: u64,
    entry: u64,
    index: u64,
}

/// A core the MADT lists.
#[derive(Clone, Copy, Debug)]
pub struct Core {
    pub apic_id: u32,
}

/// INIT and STARTUP (naming the trampoline's page) as the interrupt command register takes
/// them.
const INIT: u32 = 0x4500;
const STARTUP: u32 = 0x4600 | (TRAMPOLINE >> 12) as u32;

/// Set by a starting core once it has read the slots and set itself up.
static STARTED: AtomicBool = AtomicBool::new(false);

/// Start every enabled core the MADT lists besides this one, each running `entry(index)`
/// on its per-core stack; returns the APIC ids of those that did not answer.
pub fn start_cores(entry: extern "C" fn(usize) -> !) -> heapless::Vec<u32, MAX_CORES> {
    let mut silent = heapless::Vec::new();
    let Ok(cores) = super::acpi::processors() else {
        return silent;
    };
    // SAFETY: the trampoline is a blob of `ap_trampoline_end - ap_trampoline` bytes in the
    // kernel's rodata; page TRAMPOLINE is RAM below 1 MiB that nothing else uses (the frame
    // allocator skips the first MiB) and lies in the direct map.
    unsafe {
        let start = &raw const ap_trampoline;
        let len = (&raw const ap_trampoline_end).offset_from(start) as usize;
        let to = super::direct_map::phys_to_virt(TRAMPOLINE) as *mut u8;
        core::ptr::copy_nonoverlapping(start, to, len);
    }
    let boot = lapic::id();
    // Numbers stay dense: a core that did not answer is put back to sleep (INIT), and the
    // next one takes its number.
    let mut index = 1;
    for core in cores.iter().filter(|core| core.apic_id != boot) {
        if index == MAX_CORES {
            break;
        }
        if start_core(index, core.apic_id, entry) {
            index += 1;
        } else {
            lapic::send_ipi(core.apic_id, INIT);
            let _ = silent.push(core.apic_id);
        }
    }
    if percpu::online() > 1 {
        super::pcid::disable();
    }
    silent
}

/// INIT-SIPI-SIPI to one core, then wait up to 100 ms for it to say it started.
fn start_core(index: usize, apic_id: u32, entry: extern "C" fn(usize) -> !) -> bool {
    let tsc_per_ms = lapic::tsc_per_ms();
    // SAFETY: core `index` is not running, so its area is ours to read.
    let stack_top = unsafe { (*percpu::area(index)).boot_stack.top() };
    let slots = Slots {
        stack_top,
        cr3: super::current_root(),
        entry: entry as usize as u64,
        index: index as u64,
    };
    // SAFETY: the slots lie inside the copied trampoline, 8-aligned; no core runs it now.
    unsafe {
        let offset = (&raw const ap_slots).offset_from(&raw const ap_trampoline) as u64;
        let at = super::direct_map::phys_to_virt(TRAMPOLINE + offset) as *mut Slots;
        at.write_volatile(slots);
    }
    STARTED.store(false, Ordering::Release);
    lapic::send_ipi(apic_id, INIT);
    wait(tsc_per_ms * 10, || false);
    for _ in 0..2 {
        lapic::send_ipi(apic_id, STARTUP);
        if wait(tsc_per_ms / 5, || STARTED.load(Ordering::Acquire)) {
            break;
        }
    }
    wait(tsc_per_ms * 100, || STARTED.load(Ordering::Acquire))
}

/// Spin until `done` or `cycles` TSC counts pass; whether `done` came.
fn wait(cycles: u64, done: impl Fn() -> bool) -> bool {
    let start = cpu::read_tsc();
    while cpu::read_tsc() - start < cycles {
        if done() {
            return true;
        }
        core::hint::spin_loop();
    }
    done()
}

/// Called by a starting core once it is set up: the next may start.
pub fn started() {
    percpu::count_online();
    STARTED.store(true, Ordering::Release);
}
