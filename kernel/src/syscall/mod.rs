//! The syscall table and its one dispatcher: every handler has one shape, as in Hubris's
//! `syscalls.rs`.
//!
//! A handler is `fn(&mut Kernel, &Args) -> Result<Next, Error>`: the kernel state, the
//! caller's arguments decoded here ([`Args`]), and what to do next ([`Next`]). Handlers take
//! no lock, touch no trap frame and never switch threads: the dispatcher alone
//! ([`syscall_dispatch`], and [`syscall_resume`] for a parked thread run again) takes the
//! lock, runs the handler, and acts on its [`Next`]: it writes the result registers, blocks,
//! parks, yields or leaves a thread that is gone. Every user pointer is a
//! [`UserSlice`] checked against the caller's regions; every object is reached through a
//! capability check.

mod args;
mod cap;
mod device;
mod ipc;
mod memory;
mod process;
mod system;
mod thread;

pub use args::Args;

use crate::arch::entry::PARKING_SYSCALLS;
use crate::arch::trap::TrapFrame;
use crate::ipc::{Delivered, Received};
use crate::kernel::switch::{block_parking, leave_for_good, reschedule, yield_parking};
use crate::kernel::{Kernel, KernelGuard, kernel};
use crate::sched::thread::ThreadState;
use keel_abi::{Error, Syscall, encode_result};

/// What the dispatcher does once a handler has done its part.
pub enum Next {
    /// Return this value (in rax); the other registers stay as the caller left them.
    Return(usize),
    /// Return a received message: its result in rax, badge, info and words in rdi, rsi,
    /// rdx, r10, r8 and r9.
    ReturnMessage(Received),
    /// Block the caller in `state` (sleeping, waiting for a child) with its kernel stack
    /// kept, until something makes it ready; then `then`.
    Block { state: ThreadState, then: Then },
    /// Park the caller, waiting in IPC state `state` (receiving, waiting for an answer), as
    /// seL4 does: its kernel stack is abandoned, and the syscall finishes from what its inbox
    /// holds when it runs again, as a delivery of kind `finish` ([`syscall_resume`]). Only
    /// for the syscalls whose entry saved the callee-saved registers ([`PARKING_SYSCALLS`]).
    Park {
        state: ThreadState,
        finish: Delivered,
    },
    /// Give the rest of the time slice to the threads of the same priority, then return 0:
    /// parked for `thread_yield`, with the kernel stack kept for a syscall that cannot park
    /// (`thread_sleep(0)`).
    Yield,
    /// The caller no longer exists (it exited, or killed itself or its process): run
    /// someone else, for good.
    Gone,
}

/// What a thread woken from [`Next::Block`] does.
#[derive(Clone, Copy)]
pub enum Then {
    /// Return this value.
    Return(usize),
    /// Run the syscall again from the start (`process_wait` checks again for a child).
    Restart,
}

/// Run `call`'s handler: every one is `fn(&mut Kernel, &Args) -> Result<Next, Error>`.
/// Called directly, not through a table of pointers, so that the compiler may inline the
/// smallest and keep their outcome in registers.
#[inline(always)]
fn handle(call: Syscall, k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    match call {
        Syscall::DebugWrite => system::debug_write(k, args),
        Syscall::ThreadCreate => thread::create(k, args),
        Syscall::ThreadExit => thread::exit(k, args),
        Syscall::ThreadYield => thread::yield_now(k, args),
        Syscall::ThreadSleep => thread::sleep(k, args),
        Syscall::MemMap => memory::map(k, args),
        Syscall::MemUnmap => memory::unmap(k, args),
        Syscall::MemProtect => memory::protect(k, args),
        Syscall::ProcessSpawn => process::spawn(k, args),
        Syscall::ProcessExit => process::exit(k, args),
        Syscall::ProcessWait => process::wait(k, args),
        Syscall::ProcessKill => process::kill(k, args),
        Syscall::SysInfo => system::info(k, args),
        Syscall::ProcessInfo => process::info(k, args),
        Syscall::ProcessList => process::list(k, args),
        Syscall::SystemPoweroff => system::poweroff(k, args),
        Syscall::CapDerive => cap::derive(k, args),
        Syscall::CapDelete => cap::delete(k, args),
        Syscall::CapRevoke => cap::revoke(k, args),
        Syscall::CapInfo => cap::info(k, args),
        Syscall::PortCreate => ipc::create(k, args),
        Syscall::PortSend => ipc::send(k, args),
        Syscall::PortRecv => ipc::recv(k, args),
        Syscall::PortCall => ipc::call(k, args),
        Syscall::PortReply => ipc::reply(k, args),
        Syscall::PortReplyRecv => ipc::reply_recv(k, args),
        Syscall::PortNotify => ipc::notify(k, args),
        Syscall::IpcBufferSet => ipc::buffer_set(k, args),
        Syscall::MemCreate => memory::create_object(k, args),
        Syscall::MemMapObject => memory::map_object(k, args),
        Syscall::FaultHandlerSet => process::fault_handler_set(k, args),
        Syscall::IpcStats => ipc::stats(k, args),
        Syscall::AuditRead => cap::audit_read(k, args),
        Syscall::Resources => cap::resources(k, args),
        Syscall::ReplySave => ipc::reply_save(k, args),
        Syscall::IrqCreate => device::irq_create(k, args),
        Syscall::EventBind => device::event_bind(k, args),
        Syscall::IrqAck => device::irq_ack(k, args),
        Syscall::IoPortCreate => device::ioport_create(k, args),
        Syscall::IoPortRead => device::ioport_read(k, args),
        Syscall::IoPortWrite => device::ioport_write(k, args),
        Syscall::LogRead => device::log_read(k, args),
        Syscall::CapList => cap::list(k, args),
        Syscall::MemCreateDma => memory::create_dma(k, args),
        Syscall::MemPhys => memory::phys(k, args),
        Syscall::MemCreateDevice => memory::create_device(k, args),
        Syscall::PciConfigCreate => device::pci_config_create(k, args),
        Syscall::PciConfigRead => device::pci_config_read(k, args),
        Syscall::PciConfigWrite => device::pci_config_write(k, args),
        Syscall::MsiCreate => device::msi_create(k, args),
        Syscall::MsiMessage => device::msi_message(k, args),
        Syscall::DmaRelease => memory::release_dma(k, args),
        Syscall::PciBarSize => device::pci_bar_size(k, args),
        Syscall::ThreadInfo => thread::info(k, args),
        Syscall::ThreadSuspend => thread::suspend(k, args),
        Syscall::ThreadResume => thread::resume(k, args),
        Syscall::ThreadSetPriority => thread::set_priority(k, args),
        Syscall::ThreadKill => thread::kill(k, args),
        Syscall::ThreadRegsRead => thread::regs_read(k, args),
        Syscall::ThreadRegsWrite => thread::regs_write(k, args),
        Syscall::PortSignalRecv => ipc::signal_recv(k, args),
    }
}

/// Whether syscall `number`'s entry saved the callee-saved registers in its frame, so that
/// it may abandon its kernel stack (park).
#[inline(always)]
fn may_park(number: u64) -> bool {
    number < 64 && PARKING_SYSCALLS & (1 << number) != 0
}

#[unsafe(no_mangle)]
extern "C" fn syscall_dispatch(frame: &mut TrapFrame) {
    if let Some(call) = Syscall::from_raw(frame.rax as usize) {
        let mut k = kernel();
        if k.running_is_gone() {
            leave_for_good(k);
        }
        let next = handle(call, &mut k, Args::of(frame));
        // The outcomes of the hot syscalls first, the rest out of line: matching all of them
        // here cost every syscall a dozen instructions.
        match next {
            Ok(Next::Return(value)) => frame.rax = value as u64,
            Ok(Next::Park { state, finish }) => {
                debug_assert!(may_park(frame.rax), "{call:?} parks without its registers");
                block_parking(k, state, finish)
            }
            Ok(Next::Yield) if may_park(frame.rax) => yield_parking(k),
            ref other => act(k, frame, other),
        }
    } else {
        frame.rax = error_code(Error::InvalidSyscall);
    }
    end_of_syscall();
}

/// Act on a handler's outcome other than [`Next::Return`]: write it into the caller's
/// registers, or give up the CPU (park, yield, block, leave for good) until the caller has
/// its outcome.
#[inline(never)]
fn act(mut k: KernelGuard, frame: &mut TrapFrame, next: &Result<Next, Error>) {
    match *next {
        Ok(Next::Return(value)) => frame.rax = value as u64,
        Ok(Next::ReturnMessage(ref received)) => return_message(frame, received),
        Err(error) => frame.rax = error_code(error),
        Ok(Next::Park { state, finish }) => block_parking(k, state, finish),
        // Only a syscall that cannot park yields here (see `syscall_dispatch`).
        Ok(Next::Yield) => {
            k.yield_current();
            drop(k);
            reschedule();
            frame.rax = 0;
        }
        Ok(Next::Block { state, then }) => block(k, frame, state, then),
        Ok(Next::Gone) => leave_for_good(k),
    }
}

/// Block the caller in `state` until it is made ready, then `then`; a restarted syscall
/// that blocks again loops here rather than recursing.
#[cold]
fn block(mut k: KernelGuard, frame: &mut TrapFrame, mut state: ThreadState, mut then: Then) {
    loop {
        k.block_current(state);
        drop(k);
        reschedule();
        if let Then::Return(value) = then {
            frame.rax = value as u64;
            return;
        }
        // Restart: the syscall runs again from the start (rax still names it).
        let call = Syscall::from_raw(frame.rax as usize).expect("dispatched syscall");
        k = kernel();
        if k.running_is_gone() {
            leave_for_good(k);
        }
        match handle(call, &mut k, Args::of(frame)) {
            Ok(Next::Block { state: s, then: t }) => (state, then) = (s, t),
            ref other => return act(k, frame, other),
        }
    }
}

/// `error` as rax holds it.
#[inline(always)]
fn error_code(error: Error) -> u64 {
    encode_result(Err(error)) as u64
}

/// A received message into the caller's registers.
#[inline(always)]
fn return_message(frame: &mut TrapFrame, received: &Received) {
    frame.rax = received.result as u64;
    frame.rdi = received.badge;
    frame.rsi = received.info;
    [frame.rdx, frame.r10, frame.r8, frame.r9] = received.words;
}

/// The work due at the end of every syscall: tell the log reader, give way if asked to.
#[inline(always)]
fn end_of_syscall() {
    crate::kernel::announce_log();
    crate::kernel::switch::reschedule_if_needed();
}

/// A thread parked by [`Next::Park`] or the IPC fast path, resumed by a scheduler switch:
/// finish the syscall it blocked in from its inbox, as `syscall_dispatch` would have.
#[unsafe(no_mangle)]
extern "C" fn syscall_resume(frame: &mut TrapFrame) {
    crate::kernel::switch::finish_switch();
    let mut k = kernel();
    if k.running_is_gone() {
        leave_for_good(k);
    }
    let next = ipc::finish_parked(&mut k);
    act(k, frame, &next);
    end_of_syscall();
}
