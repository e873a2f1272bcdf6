//! CPU exceptions raised in ring 3: the faulting process ends, never the kernel.
//!
//! The event is logged with everything needed to debug it, and the exit status carries the
//! vector, error code, instruction and address to the parent. (Fault handlers that receive
//! the fault as a message come with IPC.)

use crate::arch::trap::{TrapFrame, exception_name};
use crate::kernel::kernel;
use keel_abi::{ExitStatus, exit_kind, vector};

pub fn user_fault(frame: &TrapFrame) {
    let address = if frame.vector == vector::PAGE_FAULT as u64 {
        crate::arch::read_cr2()
    } else {
        0
    };
    {
        let mut k = kernel();
        let tid = k.sched.current;
        crate::kprintln!(
            "{} faulted: {} (vector {}, error {:#x}) at rip {:#x}, address {:#x}, rsp {:#x}; process ended",
            k.describe_thread(tid),
            exception_name(frame.vector),
            frame.vector,
            frame.error_code,
            frame.rip,
            address,
            frame.rsp,
        );
        let pid = k.current_pid();
        let status = ExitStatus {
            kind: exit_kind::FAULTED,
            vector: frame.vector as u32,
            code: frame.error_code as i64,
            rip: frame.rip,
            address,
        };
        k.end_process(pid, status);
    }
    crate::sched::reschedule();
    unreachable!("a faulted thread is never resumed");
}
