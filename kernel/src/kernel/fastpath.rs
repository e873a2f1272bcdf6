//! The IPC fast path, at the syscall door.
//!
//! `syscall_entry` sends `port_call`, `port_reply_recv`, `port_signal_recv` and
//! `port_notify` here before anything else, as
//! seL4's `fastpath_call` and `fastpath_reply_recv` take them before its general handler.
//! The conditions are checked straight on the records involved (one lookup each: the two
//! threads, the port, the capability through the path cache), and when they all hold the
//! message words go straight into the other thread's saved registers, any payload from
//! buffer to buffer through the direct map, and the CPU passes to that thread: no message
//! built, no run queue, no scheduler pass. `port_signal_recv` does the same with bits, and
//! `port_notify` leaves its bits on the port, or in a waiting receiver at home on this core
//! that it then queues here (`Shared::notify_port`), and returns. When any condition fails
//! nothing has changed,
//! and the general path (`syscall/ipc.rs`), which stays the reference, takes the call. The
//! kernel command line `fastpath=off` sends everything there (the `ipc_slow` check runs
//! the IPC suites that way and requires the same results).
//!
//! The conditions: the fast path is on and no end-of-syscall work is due; the message
//! carries no capabilities and a payload within the IPC buffer; the handle is in the
//! thread's path cache with the right; for a call, a receiver waits on the port without a
//! timeout; for a reply-and-receive, the call being answered came through that same port,
//! nothing waits on it (no message, no notification), and its caller still waits for this
//! answer; the other thread is parked, not suspended, and of no lower priority, so the
//! direct switch never runs a thread ahead of a more urgent one; both IPC buffers are
//! usable if there is a payload.
//!
//! The path cache (`ipc/path_cache.rs`) remembers, per thread, the last few port handles it
//! used and what they resolved to.
//!
//! It runs in the kernel's *shared* mode: it takes only this core's ticket of the kernel
//! lock (`arch/spinlock.rs`), so fast paths on different cores run at once, and locks each
//! object it changes on its own (`kernel/shared.rs`): the port, then the other thread (and a port's
//! last waiting receiver, to queue behind it). The running thread's record is this core's
//! already: a core keeps it locked while the thread runs (`sched::Core::load`), and hands
//! the lock on with the CPU. Every lock is tried, never waited for: when one is held
//! elsewhere the general path, in exclusive mode, takes the call, so no two cores ever wait
//! for each other here. In shared mode nothing changes a table's shape, an address space,
//! or another core's scheduler record.
//!
//! It sits at the root, not in `ipc/`, because it works across the objects at once: the
//! running thread, the port, the other thread and both processes' address spaces.

use super::shared::Shared;
use crate::arch::trap::TrapFrame;
use crate::ipc::{Delivered, ReplyRef};
use crate::mm::phys_to_virt;
use crate::proc::Process;
use crate::sched::thread::{Thread, ThreadState};
use crate::sched::{park, timeout_ticks, work_pending};
use crate::table::Table;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use keel_abi::cap::{Handle, rights};
use keel_abi::ipc::{IpcBuffer, MAX_PAYLOAD, MESSAGE_CAPS, MessageInfo};

/// Off with `fastpath=off` on the kernel command line: every call takes the general path.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Read the kernel command line's `fastpath=off`.
pub fn configure(cmdline: &str) {
    let off = cmdline
        .split_whitespace()
        .any(|word| word == "fastpath=off");
    ENABLED.store(!off, Relaxed);
}

pub fn is_enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// What the fast path carries: a message without capabilities, its payload within the IPC
/// buffer's. Anything else (and every error) is the general path's.
#[inline(always)]
fn carried(info: MessageInfo) -> bool {
    info.caps() == 0 && info.payload_len() <= MAX_PAYLOAD
}

/// The direct switch never runs a thread ahead of a more urgent one, nor a suspended one,
/// nor one at home on another core, and resumes only a thread whose syscall left nothing
/// on its kernel stack.
#[inline(always)]
fn may_switch_to(from: &Thread, to: &Thread) -> bool {
    !to.is_suspended()
        && to.priority() >= from.priority()
        && to.is_parked()
        && to.home() == from.home()
}

/// The message a call or reply carries, if the fast path can carry it.
#[inline(always)]
fn carried_info(frame: &TrapFrame) -> Option<MessageInfo> {
    let info = MessageInfo(frame.rsi);
    carried(info).then_some(info)
}

/// The kernel in shared mode for the fast path; `None`, for the general path, when the door
/// is shut: the fast path is off, or end-of-syscall work is due (asked under the lock:
/// another core may have given this one work, ended its thread say, while it waited).
#[inline(always)]
fn enter() -> Option<Shared> {
    let shared = Shared::enter()?;
    (is_enabled() && !work_pending()).then_some(shared)
}

/// `port_call` at the door. Returns the trap frame to leave through (the receiver's), or
/// null for the general path.
#[unsafe(no_mangle)]
extern "C" fn fastpath_call(frame: &TrapFrame) -> *const TrapFrame {
    let Some(info) = carried_info(frame) else {
        return ptr::null();
    };
    enter()
        .and_then(|mut fast| fast.call(frame, info))
        .unwrap_or(ptr::null())
}

/// `port_reply_recv` at the door, as [`fastpath_call`]: the caller's frame, or null.
#[unsafe(no_mangle)]
extern "C" fn fastpath_reply_recv(frame: &TrapFrame) -> *const TrapFrame {
    let Some(info) = carried_info(frame) else {
        return ptr::null();
    };
    enter()
        .and_then(|mut fast| fast.reply_recv(frame, info))
        .unwrap_or(ptr::null())
}

/// `port_signal_recv` at the door, as [`fastpath_call`]: the woken thread's frame, or null.
#[unsafe(no_mangle)]
extern "C" fn fastpath_signal_recv(frame: &TrapFrame) -> *const TrapFrame {
    enter()
        .and_then(|mut fast| fast.signal_recv(frame))
        .unwrap_or(ptr::null())
}

/// `port_notify` at the door: true if the bits were delivered (the result is in the frame,
/// and the end-of-syscall work done), false for the general path.
#[unsafe(no_mangle)]
extern "C" fn fastpath_notify(frame: &mut TrapFrame) -> bool {
    let delivered = enter().and_then(|mut fast| fast.notify(frame)).is_some();
    if delivered {
        frame.rax = 0;
        // A receiver woken here may outrank the caller.
        crate::kernel::switch::reschedule_if_needed();
    }
    delivered
}

/// Copy `len` payload bytes from `from`'s IPC buffer into `to`'s and clear `to`'s capability
/// handles, as a general delivery without capabilities leaves them. `None`, with nothing
/// written, when either buffer is unusable: the general path then reports it. Each buffer
/// is checked in its own process's space; both are reached through the direct map, so the
/// receiver's need not be in the loaded address space.
#[cold]
#[inline(never)]
fn copy_payload(
    processes: &Table<Process>,
    from: &mut Thread,
    to: &mut Thread,
    len: usize,
) -> Option<()> {
    let source = processes.get(&from.process())?.space.as_ref()?;
    let source = from.ipc_buffer_frame(source)?;
    let target = processes.get(&to.process())?.space.as_ref()?;
    let target = to.ipc_buffer_frame(target)?;
    let payload = core::mem::offset_of!(IpcBuffer, payload);
    let handles = core::mem::size_of::<[u32; MESSAGE_CAPS]>();
    // SAFETY: both frames hold IPC buffers mapped writable in their processes' spaces at
    // those spaces' current epochs: RAM frames from the frame allocator, all in the direct
    // map, which user processes own now. A buffer fills its page, and `len` is at most
    // MAX_PAYLOAD (`carried`), so both ranges stay in their pages. The two buffers may be one
    // page: `copy` allows the overlap. Each belongs to a thread whose record is locked here,
    // the one running on this core and the one it hands over to, so no other core's fast
    // path writes them; their owners are not running.
    unsafe {
        let target = phys_to_virt(target) as *mut u8;
        target.write_bytes(0, handles);
        let source = phys_to_virt(source) as *const u8;
        ptr::copy(source.add(payload), target.add(payload), len);
    }
    Some(())
}

/// The message a fast-path sender leaves in the other thread's registers: its label and
/// payload length, no capabilities.
#[inline(always)]
fn delivered_info(sent: MessageInfo) -> u64 {
    MessageInfo::new(sent.label(), sent.payload_len(), 0).0
}

impl Shared {
    /// A call without capabilities straight into a waiting receiver's registers (and IPC
    /// buffer): the caller is left waiting for the answer, parked, and the receiver runs.
    #[inline(always)]
    fn call(&mut self, frame: &TrapFrame, info: MessageInfo) -> Option<*const TrapFrame> {
        let handle = Handle::try_from(frame.rdi).ok()?;
        let caller_id = self.core.current();
        let caller = self.running()?;
        let entry = *caller.path_cache().find(handle, rights::SEND)?;
        let mut port = self.port(entry.port)?;
        let receiver_id = port.first_receiver()?;
        let mut receiver = self.thread(receiver_id)?;
        let woken_state = receiver.state();
        // An unanswered call must be abandoned first: the general path's business.
        if !matches!(woken_state, ThreadState::Receiving { .. })
            || !may_switch_to(caller, &receiver)
            || receiver.pending_reply().is_some()
        {
            return None;
        }
        if info.payload_len() != 0 {
            copy_payload(self.processes, caller, &mut receiver, info.payload_len())?;
        }
        // Nothing can fail from here on.
        self.core.forget_timer(receiver_id, woken_state);
        port.pop_first_receiver(&*receiver);
        port.count_fast_call();
        self.core.fast_counts().calls += 1;
        let reply = caller.next_call(caller_id, entry.port);
        caller.block(ThreadState::WaitingReply(reply.seq));
        park(caller, Delivered::Answer);
        let words = [frame.rdx, frame.r10, frame.r8, frame.r9];
        receiver.load_registers(1, entry.badge, delivered_info(info), words);
        receiver.replace_pending_reply(Some(reply));
        Some(self.core.resume_parked(receiver_id, receiver))
    }

    /// Notify a port whose receiver waits and wait on another, in one step: the receiver
    /// runs with the bits in its registers, the caller is left receiving, parked.
    #[inline(always)]
    fn signal_recv(&mut self, frame: &TrapFrame) -> Option<*const TrapFrame> {
        let (signal, bits) = (Handle::try_from(frame.rdi).ok()?, frame.rsi);
        let wait = Handle::try_from(frame.rdx).ok()?;
        let until = match timeout_ticks(frame.r10) {
            None => None,
            Some(0) => return None,
            Some(ticks) => Some(crate::clock::ticks().saturating_add(ticks)),
        };
        let caller_id = self.core.current();
        let caller = self.running()?;
        let cache = caller.path_cache();
        let signal = cache.find(signal, rights::SEND)?.port;
        let wait = cache.find(wait, rights::RECEIVE)?.port;
        // Zero bits wake nobody; something already waiting on `wait` is returned at once.
        let mut waiting = self.port(wait)?;
        if bits == 0 || waiting.is_closed() || waiting.notification() != 0 || waiting.has_queued() {
            return None;
        }
        let mut last = self.last_receiver(&waiting)?;
        let mut woken = self.port(signal)?;
        let receiver_id = woken.first_receiver()?;
        let mut receiver = self.thread(receiver_id)?;
        let woken_state = receiver.state();
        if !matches!(woken_state, ThreadState::Receiving { .. })
            || !may_switch_to(caller, &receiver)
        {
            return None;
        }
        // Nothing can fail from here on.
        self.core.forget_timer(receiver_id, woken_state);
        woken.pop_first_receiver(&*receiver);
        woken.count_fast_signal();
        self.core.fast_counts().signals += 1;
        let state = ThreadState::Receiving { port: wait, until };
        caller.block(state);
        park(caller, Delivered::Received);
        receiver.load_registers(0, 0, MessageInfo::NOTIFICATION, [bits, 0, 0, 0]);
        let next = self.core.resume_parked(receiver_id, receiver);
        self.core.time(caller_id, state);
        waiting.wait_behind(last.as_deref_mut(), caller_id);
        Some(next)
    }

    /// `port_notify`: the port found in the running thread's path cache, then as
    /// [`Shared::notify`].
    #[inline(always)]
    fn notify(&mut self, frame: &TrapFrame) -> Option<()> {
        let handle = Handle::try_from(frame.rdi).ok()?;
        let port = self
            .running()?
            .path_cache()
            .find(handle, rights::SEND)?
            .port;
        self.notify_port(port, frame.rsi)?;
        self.core.fast_counts().notifies += 1;
        Some(())
    }

    /// Answer the pending call with a message without capabilities and wait on the port in
    /// one step: the caller runs, the server is left receiving, parked.
    #[inline(always)]
    fn reply_recv(&mut self, frame: &TrapFrame, info: MessageInfo) -> Option<*const TrapFrame> {
        let handle = Handle::try_from(frame.rdi).ok()?;
        let server_id = self.core.current();
        let server = self.running()?;
        let entry = server.path_cache().find(handle, rights::RECEIVE)?;
        let reply: ReplyRef = server.pending_reply()?;
        if reply.port != entry.port {
            return None;
        }
        let mut port = self.port(reply.port)?;
        if port.has_queued() || port.notification() != 0 || port.is_closed() {
            return None;
        }
        let mut last = self.last_receiver(&port)?;
        let mut caller = self.thread(reply.caller)?;
        let awaited = matches!(caller.state(), ThreadState::WaitingReply(seq) if seq == reply.seq);
        if !awaited || !may_switch_to(server, &caller) {
            return None;
        }
        if info.payload_len() != 0 {
            copy_payload(self.processes, server, &mut caller, info.payload_len())?;
        }
        // Nothing can fail from here on.
        port.count_fast_reply();
        self.core.fast_counts().replies += 1;
        server.take_pending_reply();
        server.block(ThreadState::Receiving {
            port: reply.port,
            until: None,
        });
        park(server, Delivered::Received);
        let words = [frame.rdx, frame.r10, frame.r8, frame.r9];
        caller.load_registers(0, 0, delivered_info(info), words);
        let next = self.core.resume_parked(reply.caller, caller);
        port.wait_behind(last.as_deref_mut(), server_id);
        Some(next)
    }
}
