//! `notify_roundtrip`: a notification to a helper process waiting in `port_recv`, which
//! answers with a notification back, while this side waits in `port_recv` for it.

use keel_abi::Syscall;
use keel_abi::decode_result;

use crate::benches::Helper;
use crate::failure::{Context, Failure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::roles::{self, NOTIFY_STOP};
use crate::stats::Stats;
use crate::sys;

pub fn roundtrip(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    // A port in each direction: the helper receives on `there`, this side on `back`.
    let there = sys::port_create(1).context("creating the outbound port")?;
    let back = sys::port_create(1).context("creating the return port")?;
    let helper = Helper::spawn(roles::NOTIFY_ECHO, &[there, back])?;
    let stats = measure.run(|| {
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
    });
    sys::port_notify(there, NOTIFY_STOP).context("stopping the helper")?;
    helper.finish()?;
    for port in [there, back] {
        sys::cap_delete(port).context("deleting a port")?;
    }
    stats
}
