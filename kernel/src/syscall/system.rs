//! Kernel log output, system figures, power.

use super::{Args, Next};
use crate::kernel::Kernel;
use crate::mm::{frame, user::UserSlice};
use keel_abi::{Error, SysInfo, poweroff as exit_value, rights};

/// Longest single debug write; longer writes are cut and the count says so.
const DEBUG_WRITE_MAX: usize = 64 * 1024;

pub fn debug_write(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let len = args.word(1).min(DEBUG_WRITE_MAX);
    let bytes = UserSlice::new(args.word(0), len).read_vec(k.current_space())?;
    crate::log::write_bytes(&bytes);
    Ok(Next::Return(len))
}

/// Inlined into the dispatcher: the cheapest syscall that takes the lock, as the benchmarks
/// measure it.
#[inline(always)]
pub fn info(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let kind = SysInfo::from_raw(args.word(0)).ok_or(Error::InvalidArgument)?;
    Ok(Next::Return(match kind {
        SysInfo::Pid => k.current_pid() as usize,
        SysInfo::Tid => k.sched.current() as usize,
        SysInfo::Ticks => crate::clock::ticks() as usize,
        SysInfo::TickHz => crate::arch::lapic::TICK_HZ as usize,
        SysInfo::FreeFrames => frame::free_count(),
        SysInfo::TotalFrames => frame::total_count(),
        SysInfo::Processes => k.processes.values().filter(|p| !p.is_zombie()).count(),
        SysInfo::IdleTsc => crate::arch::percpu::idle_tsc() as usize,
        SysInfo::PciEcam => crate::arch::acpi::ecam().map_or(0, |ecam| ecam.base as usize),
        SysInfo::PciBuses => crate::arch::acpi::ecam().map_or(0, |ecam| ecam.buses as usize),
        SysInfo::Cores => crate::arch::percpu::online(),
        SysInfo::Core => crate::arch::percpu::index(),
        SysInfo::LockWaits => crate::kernel::KERNEL.contention().0 as usize,
        SysInfo::LockWaitTsc => crate::kernel::KERNEL.contention().1 as usize,
        kind => k.object_count(kind),
    }))
}

pub fn poweroff(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let process = k.current_process();
    if !process.has_right(rights::SYSTEM) {
        return Err(Error::PermissionDenied);
    }
    let value = args.word(0) as u32;
    crate::kprintln!(
        "process {} ({}) powers the machine off ({})",
        process.id(),
        process.name(),
        if value == exit_value::SUCCESS {
            "success"
        } else {
            "failure"
        }
    );
    crate::arch::poweroff(value)
}
