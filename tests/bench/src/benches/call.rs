//! Call round trips: a client's `port_call` to a server looping on `port_reply_recv`, in
//! the same address space (a second thread) and across address spaces (a helper process),
//! with an empty message and with 64 bytes of payload each way.

use keel_abi::cap::Handle;
use keel_abi::ipc::MessageInfo;
use keel_abi::{Error, Syscall, decode_result};
use keel_rt::{println, thread};

use crate::benches::Helper;
use crate::failure::{Context, Failure, ensure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::roles::{self, label};
use crate::stats::Stats;
use crate::sys;

/// The payload of the `_64b` variants: sent through the IPC buffer and echoed back.
const PAYLOAD: usize = 64;
/// Queue room on the benchmark's port; calls never queue once the server waits.
const PORT_CAPACITY: usize = 4;

/// `port_call_same_as`: client and server are two threads of this process.
pub fn same_as(measure: &mut Measure, page: &mut IpcPage) -> Result<Stats, Failure> {
    with_server_thread(measure, page, 0)
}

/// `port_call_same_as_64b`: as `port_call_same_as`, 64 bytes each way.
pub fn same_as_64b(measure: &mut Measure, page: &mut IpcPage) -> Result<Stats, Failure> {
    with_server_thread(measure, page, PAYLOAD)
}

/// `port_call_cross_as`: the server is another process.
pub fn cross_as(measure: &mut Measure, page: &mut IpcPage) -> Result<Stats, Failure> {
    with_server_process(measure, page, 0)
}

/// `port_call_cross_as_64b`: as `port_call_cross_as`, 64 bytes each way.
pub fn cross_as_64b(measure: &mut Measure, page: &mut IpcPage) -> Result<Stats, Failure> {
    with_server_process(measure, page, PAYLOAD)
}

fn with_server_thread(
    measure: &mut Measure,
    page: &mut IpcPage,
    payload: usize,
) -> Result<Stats, Failure> {
    let port = sys::port_create(PORT_CAPACITY).context("creating the port")?;
    let server = thread::spawn(move || {
        if let Err(error) = roles::serve(port, None) {
            println!("kbench: server thread: {error}");
        }
    })
    .context("starting the server thread")?;
    let stats = echo_calls(measure, page, port, payload);
    stop_server(port)?;
    // Waiting by yielding, not sleeping: an idle CPU would let virtual time jump ahead and
    // make later icount figures depend on the host.
    while !server.is_finished() {
        sys::thread_yield();
    }
    sys::cap_delete(port).context("deleting the port")?;
    stats
}

fn with_server_process(
    measure: &mut Measure,
    page: &mut IpcPage,
    payload: usize,
) -> Result<Stats, Failure> {
    let port = sys::port_create(PORT_CAPACITY).context("creating the port")?;
    let helper = Helper::spawn(roles::SERVE, &[port])?;
    let stats = echo_calls(measure, page, port, payload);
    stop_server(port)?;
    helper.finish()?;
    sys::cap_delete(port).context("deleting the port")?;
    stats
}

/// Tells the server on `port` to stop; it is waiting in its receive, so this is delivered.
pub fn stop_server(port: Handle) -> Result<(), Failure> {
    let stop = MessageInfo::new(label::STOP, 0, 0);
    sys::port_send(port, stop, [0; 4]).context("stopping the server")
}

/// Samples ECHO calls carrying `payload` bytes, checking each answer carries them back.
pub fn echo_calls(
    measure: &mut Measure,
    page: &mut IpcPage,
    port: Handle,
    payload: usize,
) -> Result<Stats, Failure> {
    for (i, byte) in page.payload_mut(payload).iter_mut().enumerate() {
        *byte = i as u8;
    }
    let info = MessageInfo::new(label::ECHO, payload, 0);
    measure.run(|| {
        let (elapsed, reply) = timed_call(port, info).context("port_call")?;
        ensure(
            reply.payload_len() == payload && !reply.payload_dropped(),
            || alloc::format!("{payload} bytes sent, answer {reply:?}"),
        )?;
        Ok(elapsed)
    })
}

/// One timed `port_call` (word 0 zero, the other words too): the raw reading and the
/// answer's message info.
#[inline(always)]
fn timed_call(port: Handle, info: MessageInfo) -> Result<(u64, MessageInfo), Error> {
    let result: usize;
    let answer: u64;
    // SAFETY: `port_call` changes only the registers declared and, for a payload, this
    // thread's IPC buffer, which no Rust reference points into during the call.
    let elapsed = unsafe {
        timed!(
            "mov eax, {number}",
            "xor edx, edx",
            "syscall",
            "mov r13, rax";
            number = const Syscall::PortCall as usize,
            inout("rdi") u64::from(port) => _,
            inout("rsi") info.0 => answer,
            inout("r10") 0u64 => _,
            inout("r8") 0u64 => _,
            inout("r9") 0u64 => _,
            out("r13") result,
            out("rcx") _,
            out("r11") _,
        )
    };
    decode_result(result)?;
    Ok((elapsed, MessageInfo(answer)))
}
