//! Segments: the GDT (flat kernel and user segments, ordered as `syscall`/`sysret` need them)
//! and the TSS (the stack the CPU switches to on entry from ring 3, and emergency stacks).

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

pub const KERNEL_CODE: u16 = 0x08;
pub const KERNEL_DATA: u16 = 0x10;
/// `sysret` loads SS from STAR + 8 and CS from STAR + 16: user data must precede user code.
pub const USER_DATA: u16 = 0x18 | 3;
pub const USER_CODE: u16 = 0x20 | 3;

/// Interrupt stack table slots for exceptions that must not trust the current stack.
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

const EMERGENCY_STACK: usize = 16 * 1024;

#[repr(align(16))]
struct Stack([u8; EMERGENCY_STACK]);

static mut EMERGENCY_STACKS: [Stack; 3] = [const { Stack([0; EMERGENCY_STACK]) }; 3];
/// Also read by `syscall_entry`: its `rsp0` is the running thread's kernel stack.
pub(super) static mut TSS: TaskStateSegment = TaskStateSegment::new();
static mut GDT: GlobalDescriptorTable = GlobalDescriptorTable::new();

pub fn init() {
    // SAFETY: runs once on the boot CPU before interrupts are enabled; nothing else refers
    // to these statics yet, and afterwards only `set_kernel_stack` writes the TSS.
    unsafe {
        let (tss_ptr, stacks_ptr, gdt_ptr) =
            (&raw mut TSS, &raw const EMERGENCY_STACKS, &raw mut GDT);
        let tss = &mut *tss_ptr;
        let stacks = &*stacks_ptr;
        for (slot, stack) in [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK]
            .iter()
            .zip(stacks)
        {
            let top = stack.0.as_ptr() as u64 + EMERGENCY_STACK as u64;
            tss.interrupt_stack_table[*slot as usize - 1] = VirtAddr::new(top);
        }
        let gdt = &mut *gdt_ptr;
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        let tss_selector = gdt.append(Descriptor::tss_segment(&*tss_ptr));
        debug_assert_eq!(
            (code.0, data.0, user_data.0, user_code.0),
            (KERNEL_CODE, KERNEL_DATA, USER_DATA, USER_CODE)
        );
        gdt.load();
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        load_tss(tss_selector);
    }
}

/// The stack the CPU loads on an interrupt or exception from ring 3, and `syscall_entry` on
/// a syscall.
pub fn set_kernel_stack(top: usize) {
    // SAFETY: single CPU, interrupts off in the kernel: no concurrent access to the TSS.
    unsafe {
        let tss = &raw mut TSS;
        (*tss).privilege_stack_table[0] = VirtAddr::new_truncate(top as u64);
    }
}
