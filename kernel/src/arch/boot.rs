//! The first instructions: a Multiboot 1 header and the 32-bit trampoline into long mode.
//!
//! QEMU's `-kernel` and GRUB both load the image through the Multiboot header (the a.out
//! kludge flag lets them load our ELF64 by physical addresses), then jump to `boot_entry` in
//! 32-bit protected mode with paging off. The trampoline maps the first GiB twice, at 0 (to
//! keep running) and at -2 GiB (where the kernel is linked), enters long mode and calls
//! `kernel_main(multiboot_magic, multiboot_info_phys)` on the boot stack.

use core::arch::global_asm;

/// Physical address of the multiboot information handed over by the loader.
pub const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;

global_asm!(
    r#"
    .set KERNEL_VMA, 0xffffffff80000000
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00010003

    .section .multiboot, "a"
    .balign 4
multiboot_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long multiboot_header - KERNEL_VMA
    .long kernel_start - KERNEL_VMA
    .long kernel_data_end - KERNEL_VMA
    .long kernel_end - KERNEL_VMA
    .long boot_entry - KERNEL_VMA

    .section .boot.text, "ax"
    .code32
    .global boot_entry
boot_entry:
    cli
    cld
    movl %eax, %edi
    movl %ebx, %esi
    movl $(boot_stack_top - KERNEL_VMA), %esp

    /* Long mode is required: CPUID 0x80000001 EDX bit 29. */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb no_long_mode
    movl $0x80000001, %eax
    cpuid
    btl $29, %edx
    jnc no_long_mode

    /* PML4[0] and PML4[511] -> PDPT; PDPT[0] and PDPT[510] -> PD; PD = 512 x 2 MiB. */
    movl $(boot_pdpt - KERNEL_VMA), %eax
    orl $3, %eax
    movl %eax, (boot_pml4 - KERNEL_VMA)
    movl %eax, (boot_pml4 - KERNEL_VMA + 511 * 8)
    movl $(boot_pd - KERNEL_VMA), %eax
    orl $3, %eax
    movl %eax, (boot_pdpt - KERNEL_VMA)
    movl %eax, (boot_pdpt - KERNEL_VMA + 510 * 8)
    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, (boot_pd - KERNEL_VMA)(,%ecx,8)
    incl %ecx
    cmpl $512, %ecx
    jne 1b

    movl $(boot_pml4 - KERNEL_VMA), %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $(1 << 5), %eax             /* PAE */
    movl %eax, %cr4
    movl $0xC0000080, %ecx          /* EFER: long mode enable, no-execute enable */
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16)), %eax  /* paging, write-protect in ring 0 */
    movl %eax, %cr0

    lgdt (boot_gdtr - KERNEL_VMA)
    ljmp $0x08, $(boot_long_mode - KERNEL_VMA)

no_long_mode:
    /* Say so on COM1, then stop. */
    movl $(no_long_mode_msg - KERNEL_VMA), %esi
2:
    movb (%esi), %al
    testb %al, %al
    jz 3f
    movw $0x3f8, %dx
    outb %al, %dx
    incl %esi
    jmp 2b
3:
    hlt
    jmp 3b

    .code64
boot_long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $boot_higher_half, %rax
    jmp *%rax
boot_higher_half:
    movabsq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl %edi, %edi
    movl %esi, %esi
    call kernel_main
4:
    hlt
    jmp 4b

    .section .rodata
no_long_mode_msg:
    .asciz "keel: this CPU has no long mode (x86_64); cannot boot\r\n"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: kernel code, 64-bit */
    .quad 0x00cf92000000ffff        /* 0x10: kernel data */
boot_gdt_end:
boot_gdtr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt - KERNEL_VMA

    .section .bss
    .balign 4096
    /* Also the application processors' way into long mode (smp.rs). */
    .global boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096
boot_stack:
    .skip 65536
boot_stack_top:
"#,
    options(att_syntax)
);
