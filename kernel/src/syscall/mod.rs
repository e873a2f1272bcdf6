//! The syscall table: one handler per [`Syscall`], all with one signature.
//!
//! A handler gets the caller's saved registers (arguments in, extra results out) and returns
//! a [`SyscallResult`] for `rax`; it takes the kernel lock itself and releases it before
//! blocking. Every user pointer is a [`UserSlice`](crate::mm::user::UserSlice) checked
//! against the caller's regions; every object is reached through a capability check.

mod cap;
mod device;
mod ipc;
mod memory;
mod process;
mod system;
mod thread;

use crate::arch::trap::TrapFrame;
use keel_abi::{Error, Syscall, SyscallResult, encode_result};

type Handler = fn(&mut TrapFrame) -> SyscallResult;

fn handler(call: Syscall) -> Handler {
    match call {
        Syscall::DebugWrite => system::debug_write,
        Syscall::ThreadCreate => thread::create,
        Syscall::ThreadExit => thread::exit,
        Syscall::ThreadYield => thread::yield_now,
        Syscall::ThreadSleep => thread::sleep,
        Syscall::MemMap => memory::map,
        Syscall::MemUnmap => memory::unmap,
        Syscall::MemProtect => memory::protect,
        Syscall::ProcessSpawn => process::spawn,
        Syscall::ProcessExit => process::exit,
        Syscall::ProcessWait => process::wait,
        Syscall::ProcessKill => process::kill,
        Syscall::SysInfo => system::info,
        Syscall::ProcessInfo => process::info,
        Syscall::ProcessList => process::list,
        Syscall::SystemPoweroff => system::poweroff,
        Syscall::CapDerive => cap::derive,
        Syscall::CapDelete => cap::delete,
        Syscall::CapRevoke => cap::revoke,
        Syscall::CapInfo => cap::info,
        Syscall::PortCreate => ipc::create,
        Syscall::PortSend => ipc::send,
        Syscall::PortRecv => ipc::recv,
        Syscall::PortCall => ipc::call,
        Syscall::PortReply => ipc::reply,
        Syscall::PortReplyRecv => ipc::reply_recv,
        Syscall::PortNotify => ipc::notify,
        Syscall::IpcBufferSet => ipc::buffer_set,
        Syscall::MemCreate => memory::create_object,
        Syscall::MemMapObject => memory::map_object,
        Syscall::FaultHandlerSet => process::fault_handler_set,
        Syscall::IpcStats => ipc::stats,
        Syscall::AuditRead => cap::audit_read,
        Syscall::Resources => cap::resources,
        Syscall::ReplySave => ipc::reply_save,
        Syscall::IrqCreate => device::irq_create,
        Syscall::EventBind => device::event_bind,
        Syscall::IrqAck => device::irq_ack,
        Syscall::IoPortCreate => device::ioport_create,
        Syscall::IoPortRead => device::ioport_read,
        Syscall::IoPortWrite => device::ioport_write,
        Syscall::LogRead => device::log_read,
        Syscall::CapList => cap::list,
        Syscall::MemCreateDma => memory::create_dma,
        Syscall::MemPhys => memory::phys,
        Syscall::ThreadInfo => thread::info,
        Syscall::ThreadSuspend => thread::suspend,
        Syscall::ThreadResume => thread::resume,
        Syscall::ThreadSetPriority => thread::set_priority,
        Syscall::ThreadKill => thread::kill,
        Syscall::ThreadRegsRead => thread::regs_read,
        Syscall::ThreadRegsWrite => thread::regs_write,
        Syscall::PortSignalRecv => ipc::signal_recv,
    }
}

#[unsafe(no_mangle)]
extern "C" fn syscall_dispatch(frame: &mut TrapFrame) {
    let result = match Syscall::from_raw(frame.rax as usize) {
        Some(call) => handler(call)(frame),
        None => Err(Error::InvalidSyscall),
    };
    frame.rax = encode_result(result) as u64;
    crate::device::announce_log();
    crate::sched::reschedule_if_needed();
}

/// A thread parked by the IPC fast path, resumed by a scheduler switch: finish the syscall
/// it blocked in, as `syscall_dispatch` would have.
#[unsafe(no_mangle)]
extern "C" fn syscall_resume(frame: &mut TrapFrame) {
    crate::sched::finish_switch();
    frame.rax = encode_result(ipc::resume(frame)) as u64;
    crate::device::announce_log();
    crate::sched::reschedule_if_needed();
}
