//! The cheapest trips into the kernel: a syscall number it does not know, a one-figure
//! query, and a yield to another address space.

use keel_abi::layout::PAGE_SIZE;
use keel_abi::{Error, SysInfo, Syscall, prot};

use crate::benches::Helper;
use crate::failure::{Context, Failure, ensure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::roles;
use crate::shared::Shared;
use crate::stats::Stats;
use crate::sys::{self, NO_SYSCALL};

/// `null_syscall`: `syscall` with a number that names no syscall. Entry, dispatch's refusal,
/// exit: the floor every other syscall stands on.
pub fn null_syscall(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    ensure(sys::no_syscall() == Err(Error::InvalidSyscall), || {
        alloc::format!("syscall {NO_SYSCALL:#x} is not refused as unknown")
    })?;
    measure.run(|| {
        // SAFETY: the kernel refuses the number and changes only rax, rcx and r11.
        let elapsed = unsafe {
            timed!(
                "mov rax, -1",
                "syscall";
                out("rcx") _,
                out("r11") _,
            )
        };
        Ok(elapsed)
    })
}

/// `sys_info_pid`: `sys_info(Pid)`, the smallest syscall that does something: it takes the
/// kernel lock and reads one field (Linux's `getppid` is the like).
pub fn sys_info_pid(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    measure.run(|| {
        let result: usize;
        // SAFETY: `sys_info` writes no memory and changes only rax, rcx and r11.
        let elapsed = unsafe {
            timed!(
                "mov eax, {number}",
                "syscall",
                "mov r13, rax";
                number = const Syscall::SysInfo as usize,
                in("rdi") SysInfo::Pid as usize,
                out("r13") result,
                out("rcx") _,
                out("r11") _,
            )
        };
        keel_abi::decode_result(result).context("sys_info(Pid)")?;
        Ok(elapsed)
    })
}

/// `yield_cross_as`: this process and a helper at the same priority, alone on their run
/// queue, each yielding to the other. A sample is one yield here, which runs the helper's
/// loop (count a turn, yield) and comes back: two switches, reported per switch.
pub fn yield_cross_as(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    let memory = sys::mem_create(PAGE_SIZE).context("creating the turn counter")?;
    let counter = Shared::map(memory, PAGE_SIZE, prot::READ).context("mapping the counter")?;
    let helper = Helper::spawn(roles::YIELD, &[memory])?;
    let stats = measure.run(|| {
        // SAFETY: `thread_yield` writes no memory and changes only rax, rcx and r11.
        let elapsed = unsafe {
            timed!(
                "mov eax, {number}",
                "syscall";
                number = const Syscall::ThreadYield as usize,
                out("rcx") _,
                out("r11") _,
            )
        };
        Ok(elapsed)
    });
    let turns = counter.read_counter();
    helper.kill()?;
    sys::cap_delete(memory).context("deleting the turn counter")?;
    let stats = stats?;
    // Without the helper taking its turns, a yield would come straight back.
    ensure(turns >= stats.iterations as u64, || {
        alloc::format!(
            "the helper took {turns} turns in {} yields",
            stats.iterations
        )
    })?;
    Ok(stats)
}
