//! Where interrupts and exceptions go once `arch` has saved the frame: the fault code, the
//! scheduler's tick, a driver's interrupt line or MSI-X vector, or a kernel panic.
//!
//! The stubs and the frame are the CPU's business (`arch/trap.rs`); what each vector means
//! to the kernel's objects is decided here, above them, as `syscall/` does for syscalls, so
//! that `arch` depends on nothing else in the kernel.

use crate::arch::trap::{
    TrapFrame, VECTOR_PIC_BASE, VECTOR_SPURIOUS, VECTOR_TIMER, VECTOR_WAKE, exception_name,
};
use crate::arch::{self, ioapic, lapic};
use crate::cap::Object;
use crate::device::msi;

/// #NM: an FPU or SSE instruction with CR0.TS set (`arch::fpu`).
const DEVICE_NOT_AVAILABLE: u64 = 7;

#[unsafe(no_mangle)]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let woke_idle = frame.vector >= 32 && arch::percpu::end_halt();
    match frame.vector {
        DEVICE_NOT_AVAILABLE if frame.is_from_user() => crate::kernel::fpu::claim(),
        0..=31 if frame.is_from_user() => crate::kernel::fault::user_fault(frame),
        0..=31 => kernel_fault(frame),
        VECTOR_TIMER => {
            lapic::timer_fired();
            lapic::end_of_interrupt();
            crate::kernel::switch::timer_tick(woke_idle);
            crate::kernel::announce_log();
            crate::kernel::switch::reschedule_if_needed();
        }
        // Another core made a thread of this one's ready, killed it, or changed its tables.
        VECTOR_WAKE => {
            lapic::end_of_interrupt();
            arch::tlb::serve();
            crate::kernel::switch::reschedule_if_needed();
        }
        VECTOR_SPURIOUS => {}
        v if ioapic::line_of(v).is_some() => {
            device_interrupt(ioapic::line_of(v).expect("checked"));
            crate::kernel::switch::reschedule_if_needed();
        }
        v if msi::index(v).is_some() => {
            lapic::end_of_interrupt();
            crate::kernel::signal(Object::Msi(v as u8));
            crate::kernel::switch::reschedule_if_needed();
        }
        v if (VECTOR_PIC_BASE as u64..VECTOR_PIC_BASE as u64 + 16).contains(&v) => {}
        v => {
            lapic::end_of_interrupt();
            crate::kprintln!("unexpected interrupt vector {v}");
        }
    }
}

fn kernel_fault(frame: &TrapFrame) -> ! {
    arch::percpu::recover_gs();
    // An overflow faults on the guard below the stack; with no stack left for that fault's
    // frame, it arrives as a double fault.
    let overflow = if crate::mm::stacks::is_guard(arch::read_cr2()) {
        "kernel stack overflow: "
    } else {
        ""
    };
    panic!(
        "{overflow}{} (vector {}) in the kernel: error code {:#x}, rip {:#x}, rsp {:#x}, cr2 {:#x}, {}",
        exception_name(frame.vector),
        frame.vector,
        frame.error_code,
        frame.rip,
        frame.rsp,
        arch::read_cr2(),
        crate::kernel::switch::describe_current(),
    )
}

/// An interrupt on `line` (ISA or PCI): masked until its driver acknowledges it (`irq_ack`).
fn device_interrupt(line: u8) {
    ioapic::set_masked(line, true);
    lapic::end_of_interrupt();
    crate::kernel::signal(Object::Irq(line));
}
