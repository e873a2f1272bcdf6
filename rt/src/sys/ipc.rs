//! Typed wrappers for syscalls 16..=34: capabilities and what they name (ports, replies,
//! memory objects, the audit log), fault handlers and IPC statistics, in ABI order.
//!
//! Payload bytes and capability handles travel through the calling thread's IPC buffer
//! ([`ipc_buffer_set`]): a send reads them from it, a receive writes them to it. The calls
//! that return a message ([`port_recv`], [`port_call`], [`port_reply_recv`]) give back the
//! registers the kernel filled as a [`RawMessage`], and whether it is a call to answer.
//!
//! Deleting or revoking a capability is safe although it can unmap memory: a memory
//! object's mapping lives exactly as long as the capability it was made through, and only
//! code that turned such a mapping into references (which takes `unsafe`) can be hurt.

use keel_abi::cap::{AuditRecord, CapEntry, CapInfo, Handle, Resources};
use keel_abi::ipc::{IpcStats, MessageInfo};
use keel_abi::{Error, Syscall};

pub use super::raw::RawMessage;
use super::raw::{call, syscall_message};

/// `cap_derive`: a new capability to the same object with at most `rights` (and `badge`, if
/// `cap` has none yet; 0 keeps it). Revoking `cap` removes it.
pub fn cap_derive(cap: Handle, rights: u32, badge: u64) -> Result<Handle, Error> {
    let args = [cap as usize, rights as usize, badge as usize];
    // SAFETY: no memory is read or written.
    unsafe { call(Syscall::CapDerive, args) }.map(to_handle)
}

/// `cap_delete`: drops one capability; those derived from it survive. A memory mapping made
/// through it goes with it.
pub fn cap_delete(cap: Handle) -> Result<(), Error> {
    // SAFETY: only memory-object mappings can go, which Rust code never owns (see above).
    unsafe { call(Syscall::CapDelete, [cap as usize]) }.map(drop)
}

/// `cap_revoke`: deletes every capability derived from `cap`, in any process or message,
/// with their mappings; returns how many went.
pub fn cap_revoke(cap: Handle) -> Result<usize, Error> {
    // SAFETY: as for `cap_delete`.
    unsafe { call(Syscall::CapRevoke, [cap as usize]) }
}

/// `cap_info`: what `cap` names, with which rights and badge.
pub fn cap_info(cap: Handle) -> Result<CapInfo, Error> {
    let mut info = CapInfo::default();
    // SAFETY: the kernel writes one `CapInfo` into `info`.
    unsafe { call(Syscall::CapInfo, [cap as usize, &raw mut info as usize]) }?;
    Ok(info)
}

/// `port_create`: a port queueing at most `capacity` (1..=64) messages; the handle has
/// every port right.
pub fn port_create(capacity: usize) -> Result<Handle, Error> {
    // SAFETY: no memory is read or written.
    unsafe { call(Syscall::PortCreate, [capacity]) }.map(to_handle)
}

/// `port_send`: queues a message without blocking. The payload and capabilities `info`
/// announces come from the IPC buffer.
pub fn port_send(port: Handle, info: MessageInfo, words: [u64; 4]) -> Result<(), Error> {
    // SAFETY: the kernel only reads the IPC buffer.
    unsafe { call(Syscall::PortSend, message_args(port, info.0, words)) }.map(drop)
}

/// `port_recv`: waits up to `timeout_ns` (0 polls, `u64::MAX` waits for ever) for a message
/// or notification; `true` with it when it is a call awaiting an answer.
pub fn port_recv(port: Handle, timeout_ns: u64) -> Result<(bool, RawMessage), Error> {
    crate::executor::wake::flush_signal();
    port_recv_unflushed(port, timeout_ns)
}

/// `port_recv` for the executor's sleep, which has just taken the deferred signal itself.
pub(crate) fn port_recv_unflushed(
    port: Handle,
    timeout_ns: u64,
) -> Result<(bool, RawMessage), Error> {
    let args = message_args(port, timeout_ns, [0; 4]);
    // SAFETY: the kernel writes only the IPC buffer, which `ipc_buffer_set` set aside for it.
    let (result, message) = unsafe { syscall_message(Syscall::PortRecv as usize, args) };
    Ok((result? == 1, message))
}

/// `port_call`: sends a call and waits for its answer.
pub fn port_call(port: Handle, info: MessageInfo, words: [u64; 4]) -> Result<RawMessage, Error> {
    crate::executor::wake::flush_signal();
    let args = message_args(port, info.0, words);
    // SAFETY: as for `port_send` and `port_recv`.
    let (result, message) = unsafe { syscall_message(Syscall::PortCall as usize, args) };
    result.map(|_| message)
}

/// `port_reply`: answers the call behind reply capability `reply`, using it up.
pub fn port_reply(reply: Handle, info: MessageInfo, words: [u64; 4]) -> Result<(), Error> {
    // SAFETY: as for `port_send`.
    unsafe { call(Syscall::PortReply, message_args(reply, info.0, words)) }.map(drop)
}

/// `port_reply_recv`: answers the call this thread received last (if not answered yet),
/// then waits on `port` for ever; `true` with the message when it is a call.
pub fn port_reply_recv(
    port: Handle,
    info: MessageInfo,
    words: [u64; 4],
) -> Result<(bool, RawMessage), Error> {
    crate::executor::wake::flush_signal();
    port_reply_recv_unflushed(port, info, words)
}

/// `port_reply_recv` for the executor's sleep, which has just taken what it owed itself.
pub(crate) fn port_reply_recv_unflushed(
    port: Handle,
    info: MessageInfo,
    words: [u64; 4],
) -> Result<(bool, RawMessage), Error> {
    let args = message_args(port, info.0, words);
    // SAFETY: as for `port_send` and `port_recv`.
    let (result, message) = unsafe { syscall_message(Syscall::PortReplyRecv as usize, args) };
    Ok((result? == 1, message))
}

/// `port_signal_recv`: notifies `signal` with `bits`, then waits on `port` as `port_recv`
/// does, in one syscall; `true` with the message when it is a call.
pub fn port_signal_recv(
    signal: Handle,
    bits: u64,
    port: Handle,
    timeout_ns: u64,
) -> Result<(bool, RawMessage), Error> {
    crate::executor::wake::flush_signal();
    let args = [
        signal as usize,
        bits as usize,
        port as usize,
        timeout_ns as usize,
        0,
        0,
    ];
    // SAFETY: as for `port_recv`.
    let (result, message) = unsafe { syscall_message(Syscall::PortSignalRecv as usize, args) };
    Ok((result? == 1, message))
}

/// `port_notify`: ORs `bits` into the port's notification word; never blocks, never fills.
pub fn port_notify(port: Handle, bits: u64) -> Result<(), Error> {
    // SAFETY: no memory is read or written.
    unsafe { call(Syscall::PortNotify, [port as usize, bits as usize]) }.map(drop)
}

/// `ipc_buffer_set`: makes the page at `addr` the calling thread's IPC buffer (0: none).
///
/// # Safety
///
/// From now on the kernel writes received payloads and handles to that page, during this
/// thread's receives: it must be a writable page nothing else uses for as long as it stays
/// registered, and no reference into it may be held across this thread's IPC syscalls.
pub unsafe fn ipc_buffer_set(addr: usize) -> Result<(), Error> {
    // SAFETY: forwarded from the caller.
    unsafe { call(Syscall::IpcBufferSet, [addr]) }.map(drop)
}

/// `mem_create`: a memory object of `len` zeroed bytes (whole pages); the handle has every
/// memory right.
pub fn mem_create(len: usize) -> Result<Handle, Error> {
    // SAFETY: no memory of this process is touched.
    unsafe { call(Syscall::MemCreate, [len]) }.map(to_handle)
}

/// `mem_map_object`: maps the whole object at `addr` (0: where the kernel chooses) with
/// `prot`, which needs the matching MAP_* rights; returns the address. The mapping lasts as
/// long as the capability `object`.
pub fn mem_map_object(object: Handle, addr: usize, prot: usize) -> Result<usize, Error> {
    // SAFETY: a new mapping never replaces another (`Exists`), so no memory in use changes.
    unsafe { call(Syscall::MemMapObject, [object as usize, addr, prot]) }
}

/// `fault_handler_set`: sends the faults of process `pid` (this one or a child) to `port`
/// (which needs SEND) as messages; handle 0 removes the handler.
pub fn fault_handler_set(pid: u32, port: Handle) -> Result<(), Error> {
    // SAFETY: no memory is read or written.
    unsafe { call(Syscall::FaultHandlerSet, [pid as usize, port as usize]) }.map(drop)
}

/// `ipc_stats`: the counters of `port`, or of the whole system for handle 0.
pub fn ipc_stats(port: Handle) -> Result<IpcStats, Error> {
    let mut stats = IpcStats::default();
    // SAFETY: the kernel writes one `IpcStats` into `stats`.
    unsafe { call(Syscall::IpcStats, [port as usize, &raw mut stats as usize]) }?;
    Ok(stats)
}

/// `audit_read`: fills `records` with the newest audit records, oldest first; returns how
/// many it wrote. Needs an audit capability with READ.
pub fn audit_read(audit: Handle, records: &mut [AuditRecord]) -> Result<usize, Error> {
    let args = [audit as usize, records.as_mut_ptr() as usize, records.len()];
    // SAFETY: the kernel writes at most `records.len()` records into `records`.
    unsafe { call(Syscall::AuditRead, args) }
}

/// `resources`: this process's quotas and what it uses of them.
pub fn resources() -> Result<Resources, Error> {
    let mut resources = Resources::default();
    // SAFETY: the kernel writes one `Resources` into `resources`.
    unsafe { call(Syscall::Resources, [&raw mut resources as usize]) }?;
    Ok(resources)
}

/// `reply_save`: moves the call this thread received last into a reply capability, to be
/// answered later with [`port_reply`].
pub fn reply_save() -> Result<Handle, Error> {
    // SAFETY: no memory is read or written.
    unsafe { call(Syscall::ReplySave, []) }.map(to_handle)
}

/// The six registers of a message syscall: a handle, the info (or timeout) and four words.
fn message_args(handle: Handle, second: u64, words: [u64; 4]) -> [usize; 6] {
    let [w0, w1, w2, w3] = words.map(|word| word as usize);
    [handle as usize, second as usize, w0, w1, w2, w3]
}

/// Handles are 32 bits; the kernel returns them in a register.
fn to_handle(raw: usize) -> Handle {
    raw as Handle
}

/// The capabilities process `pid` holds (0: this one); how many it holds in all.
pub fn cap_list(pid: u32, entries: &mut [CapEntry]) -> Result<usize, Error> {
    // SAFETY: the kernel writes at most `entries.len()` entries.
    unsafe {
        call(
            Syscall::CapList,
            [pid as usize, entries.as_mut_ptr() as usize, entries.len()],
        )
    }
}
