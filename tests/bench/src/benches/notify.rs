//! `notify_roundtrip`: a notification to a helper process waiting in `port_recv`, which
//! answers with a notification back, while this side waits in `port_recv` for it.
//! `signal_roundtrip`: the same exchange with `port_signal_recv` on both sides, notifying
//! and waiting in one syscall, which hands the CPU straight to the waiting peer.

use keel_abi::Syscall;
use keel_abi::cap::Handle;
use keel_abi::decode_result;

use crate::benches::Helper;
use crate::failure::{Context, Failure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::roles::{self, NOTIFY_STOP};
use crate::stats::Stats;
use crate::sys;

/// A port in each direction and a helper in `role` answering on them: the helper receives on
/// `there`, this side on `back`. Runs `bench(there, back)`, then stops the helper.
fn with_echo(
    role: &'static str,
    bench: impl FnOnce(Handle, Handle) -> Result<Stats, Failure>,
) -> Result<Stats, Failure> {
    let there = sys::port_create(1).context("creating the outbound port")?;
    let back = sys::port_create(1).context("creating the return port")?;
    let helper = Helper::spawn(role, &[there, back])?;
    let stats = bench(there, back);
    sys::port_notify(there, NOTIFY_STOP).context("stopping the helper")?;
    helper.finish()?;
    for port in [there, back] {
        sys::cap_delete(port).context("deleting a port")?;
    }
    stats
}

pub fn signal_roundtrip(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_echo(roles::SIGNAL_ECHO, |there, back| {
        measure.run(|| {
            let (result, bits): (usize, u64);
            // SAFETY: `port_signal_recv` changes only the registers declared; a notification
            // carries no payload, so the IPC buffer is not written.
            let elapsed = unsafe {
                // rdx is the clock's: the port to wait on goes in through r14, the answer's
                // word 0 out through r15.
                timed!(
                    "mov eax, {signal_recv}",
                    "mov rdx, r14",
                    "syscall",
                    "mov r13, rax",
                    "mov r15, rdx";
                    signal_recv = const Syscall::PortSignalRecv as usize,
                    inout("rdi") u64::from(there) => _,
                    inout("rsi") 1u64 => _,
                    in("r14") u64::from(back),
                    inout("r10") u64::MAX => _,
                    out("r13") result,
                    out("r15") bits,
                    out("r8") _,
                    out("r9") _,
                    out("rcx") _,
                    out("r11") _,
                )
            };
            decode_result(result).context("port_signal_recv")?;
            // The answer is a notification whose word 0 (rdx) holds the helper's bit.
            crate::failure::ensure(bits == 1, || alloc::format!("answered bits {bits:#x}"))?;
            Ok(elapsed)
        })
    })
}

pub fn roundtrip(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    with_echo(roles::NOTIFY_ECHO, |there, back| {
        measure.run(|| {
            let results: usize;
            // SAFETY: `port_notify` and `port_recv` change only the registers declared; a
            // notification carries no payload, so the IPC buffer is not written.
            let elapsed = unsafe {
                timed!(
                    "mov eax, {notify}",
                    "syscall",
                    "mov r13, rax",
                    "mov eax, {recv}",
                    "mov rdi, r14",
                    "mov rsi, -1",
                    "syscall",
                    "or r13, rax";
                    notify = const Syscall::PortNotify as usize,
                    recv = const Syscall::PortRecv as usize,
                    inout("rdi") u64::from(there) => _,
                    inout("rsi") 1u64 => _,
                    in("r14") u64::from(back),
                    out("r13") results,
                    out("r10") _,
                    out("r8") _,
                    out("r9") _,
                    out("rcx") _,
                    out("r11") _,
                )
            };
            // Both results are 0 on success, and an error is negative: OR-ing keeps its sign.
            decode_result(results).context("port_notify or port_recv")?;
            Ok(elapsed)
        })
    })
}
