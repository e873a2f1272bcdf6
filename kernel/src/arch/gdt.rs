//! Segments: the GDT (flat kernel and user segments, ordered as `syscall`/`sysret` need them)
//! and the TSS (the stack the CPU switches to on entry from ring 3, and emergency stacks).
//! Every core has its own set, in its per-core area (`percpu.rs`): a TSS is marked busy
//! in the GDT that loads it, and its stack pointer is the thread that core runs.

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

#[repr(C, align(16))]
pub struct Stack([u8; EMERGENCY_STACK]);

impl Stack {
    pub const fn new() -> Self {
        Stack([0; EMERGENCY_STACK])
    }

    /// The address just past its end, where a stack pointer starts.
    pub fn top(&self) -> u64 {
        self.0.as_ptr() as u64 + EMERGENCY_STACK as u64
    }
}

/// One core's segments.
#[repr(C)]
pub struct Segments {
    /// Also read by `syscall_entry`: its `rsp0` is the running thread's kernel stack.
    pub tss: TaskStateSegment,
    gdt: GlobalDescriptorTable,
    emergency: [Stack; 3],
}

impl Segments {
    pub const fn new() -> Self {
        Segments {
            tss: TaskStateSegment::new(),
            gdt: GlobalDescriptorTable::new(),
            emergency: [const { Stack::new() }; 3],
        }
    }

    /// Fill in this core's GDT and TSS and load them, with the kernel's segments.
    ///
    /// # Safety
    /// Runs once per core, on that core, before its interrupts are enabled; `self` is that
    /// core's and nothing else refers to it.
    pub unsafe fn load(&'static mut self) {
        for (slot, stack) in [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK]
            .iter()
            .zip(&self.emergency)
        {
            self.tss.interrupt_stack_table[*slot as usize - 1] = VirtAddr::new(stack.top());
        }
        let tss: &'static TaskStateSegment = &self.tss;
        let gdt = &mut self.gdt;
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        let tss_selector = gdt.append(Descriptor::tss_segment(tss));
        debug_assert_eq!(
            (code.0, data.0, user_data.0, user_code.0),
            (KERNEL_CODE, KERNEL_DATA, USER_DATA, USER_CODE)
        );
        let gdt: &'static GlobalDescriptorTable = gdt;
        gdt.load();
        // SAFETY: the selectors name the segments just loaded; the TSS descriptor is this
        // core's own, not yet busy.
        unsafe {
            CS::set_reg(code);
            SS::set_reg(data);
            DS::set_reg(SegmentSelector(0));
            ES::set_reg(SegmentSelector(0));
            load_tss(tss_selector);
        }
    }
}
