//! Kernel log output, system figures, power.

use crate::arch::trap::TrapFrame;
use crate::kernel::kernel;
use crate::mm::{frame, user::UserSlice};
use keel_abi::{Error, SysInfo, SyscallResult, poweroff as exit_value, rights};

/// Longest single debug write; longer writes are cut and the count says so.
const DEBUG_WRITE_MAX: usize = 64 * 1024;

pub fn debug_write(frame: &mut TrapFrame) -> SyscallResult {
    let len = frame.arg(1).min(DEBUG_WRITE_MAX);
    let bytes = {
        let k = kernel();
        let space = k.current_space();
        UserSlice::new(frame.arg(0), len).read_vec(space)?
    };
    crate::log::write_bytes(&bytes);
    Ok(len)
}

pub fn info(frame: &mut TrapFrame) -> SyscallResult {
    let kind = SysInfo::from_raw(frame.arg(0)).ok_or(Error::InvalidArgument)?;
    let k = kernel();
    Ok(match kind {
        SysInfo::Pid => k.current_pid() as usize,
        SysInfo::Tid => k.sched.current as usize,
        SysInfo::Ticks => k.ticks as usize,
        SysInfo::TickHz => crate::arch::lapic::TICK_HZ as usize,
        SysInfo::FreeFrames => frame::free_count(),
        SysInfo::TotalFrames => frame::total_count(),
        SysInfo::Processes => k.processes.values().filter(|p| !p.is_zombie()).count(),
        kind => k.object_count(kind),
    })
}

pub fn poweroff(frame: &mut TrapFrame) -> SyscallResult {
    let mut k = kernel();
    let process = k.current_process();
    if process.rights & rights::SYSTEM == 0 {
        return Err(Error::PermissionDenied);
    }
    let value = frame.arg(0) as u32;
    crate::kprintln!(
        "process {} ({}) powers the machine off ({})",
        process.id,
        process.name,
        if value == exit_value::SUCCESS {
            "success"
        } else {
            "failure"
        }
    );
    crate::arch::poweroff(value)
}
