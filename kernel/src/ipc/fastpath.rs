//! The IPC fast path, and the path cache that feeds it.
//!
//! A call to a port whose receiver is already waiting, or a reply-and-receive answering a
//! caller that is waiting, moves the message words straight into the other thread's inbox
//! and switches to it directly: no queueing, no run-queue pass, as the seed's
//! `fast_path_ipc` does. It applies when the message carries no capabilities (a payload is
//! copied from buffer to buffer through the direct map, see [`move_payload`]) and the other
//! thread's priority is at least the sender's, so the direct switch never
//! runs a thread ahead of a more urgent one, and not to a suspended thread, nor to one
//! stopped at a fault (its answer goes through the fault code, not its registers).
//! Everything else takes the general path.
//!
//! The path cache remembers, per thread, the last few port handles it used and what they
//! resolved to, valid until the process's capability space next loses a capability: that
//! empties the caches of all its threads ([`PathCache::forget_all`]).

use super::{Delivered, Delivery, PortId, ReplyRef};
use crate::arch::trap::TrapFrame;
use crate::cap::{CapId, Found, Object};
use crate::kernel::Kernel;
use crate::mm::phys_to_virt;
use crate::proc::Process;
use crate::sched::thread::{Thread, ThreadState, Tid};
use crate::sched::{Parked, park};
use crate::table::Table;
use keel_abi::Error;
use keel_abi::cap::{Handle, kind};
use keel_abi::ipc::{IpcBuffer, IpcStats, MAX_PAYLOAD, MESSAGE_CAPS, MessageInfo};

const PATH_CACHE_ENTRIES: usize = 4;

/// The direct switch never runs a thread ahead of a more urgent one, nor a suspended one.
fn may_switch_directly(from: &Thread, to: &Thread) -> bool {
    !to.suspended && to.priority >= from.priority
}

/// What the fast path carries: a message without capabilities, its payload within the IPC
/// buffer's. Anything else (and every error) is the general path's.
fn carried(frame: &TrapFrame) -> bool {
    let info = MessageInfo(frame.rsi);
    info.caps() == 0 && info.payload_len() <= MAX_PAYLOAD
}

/// Copy the payload of the message in `frame`, if any, from `from`'s IPC buffer into `to`'s
/// and clear `to`'s capability handles, as a general delivery without capabilities leaves
/// them. `None`, with nothing written, when either buffer is unusable: the general path then
/// reports it.
#[inline(always)]
fn move_payload(
    processes: &mut Table<Process>,
    from: &mut Thread,
    to: &mut Thread,
    frame: &TrapFrame,
) -> Option<()> {
    match MessageInfo(frame.rsi).payload_len() {
        0 => Some(()),
        len => copy_payload(processes, from, to, len),
    }
}

/// [`move_payload`]'s copy of `len` bytes. Each buffer is checked in its own process's
/// space; both are reached through the direct map, so the receiver's need not be in the
/// loaded address space.
fn copy_payload(
    processes: &mut Table<Process>,
    from: &mut Thread,
    to: &mut Thread,
    len: usize,
) -> Option<()> {
    let source = processes.get_mut(&from.process)?.space.as_mut()?;
    let source = from.ipc_buffer_frame(source)?;
    let target = processes.get_mut(&to.process)?.space.as_mut()?;
    let target = to.ipc_buffer_frame(target)?;
    let payload = core::mem::offset_of!(IpcBuffer, payload);
    let handles = core::mem::size_of::<[u32; MESSAGE_CAPS]>();
    // SAFETY: both frames hold IPC buffers mapped writable in their processes' spaces at
    // those spaces' current epochs: RAM frames from the frame allocator, all in the direct
    // map, which user processes own now. A buffer fills its page, and `len` is at most
    // MAX_PAYLOAD (`carried`), so both ranges stay in their pages. The two buffers may be one
    // page: `copy` allows the overlap.
    unsafe {
        let target = phys_to_virt(target) as *mut u8;
        target.write_bytes(0, handles);
        let source = phys_to_virt(source) as *const u8;
        core::ptr::copy(source.add(payload), target.add(payload), len);
    }
    Some(())
}

/// A port capability as resolved: all the fast path needs, without the capability table.
#[derive(Clone, Copy)]
struct PathEntry {
    handle: Handle,
    rights: u32,
    port: PortId,
    cap: CapId,
    badge: u64,
}

#[derive(Default)]
pub struct PathCache {
    entries: [Option<PathEntry>; PATH_CACHE_ENTRIES],
    next: usize,
}

impl PathCache {
    fn find(&self, handle: Handle, rights: u32) -> Option<PathEntry> {
        self.entries
            .iter()
            .flatten()
            .find(|e| e.handle == handle && e.rights & rights == rights)
            .copied()
    }

    /// Drop every entry: a capability left the process's space.
    pub fn forget_all(&mut self) {
        self.entries = [None; PATH_CACHE_ENTRIES];
    }
}

impl Kernel {
    /// Resolve a port capability of the running thread, through its path cache.
    #[inline]
    pub fn port_lookup(&mut self, handle: Handle, rights: u32) -> Result<(PortId, Found), Error> {
        let tid = self.sched.current;
        let thread = self.threads.get(&tid).expect("running thread");
        let Some(entry) = thread.path_cache.find(handle, rights) else {
            return self.port_lookup_miss(handle, rights);
        };
        self.ipc_stats.path_cache_hits += 1;
        let found = Found {
            id: entry.cap,
            object: Object::Port(entry.port),
            rights: entry.rights,
            badge: entry.badge,
        };
        Ok((entry.port, found))
    }

    /// [`Kernel::port_lookup`] past the path cache: check the capability and remember it.
    #[cold]
    #[inline(never)]
    fn port_lookup_miss(&mut self, handle: Handle, rights: u32) -> Result<(PortId, Found), Error> {
        let tid = self.sched.current;
        let pid = self.current_pid();
        self.ipc_stats.path_cache_misses += 1;
        let found = self.cap_check(pid, handle, Some(kind::PORT), rights)?;
        let Object::Port(port) = found.object else {
            return Err(Error::WrongType);
        };
        let cache = &mut self
            .threads
            .get_mut(&tid)
            .expect("running thread")
            .path_cache;
        cache.entries[cache.next] = Some(PathEntry {
            handle,
            rights: found.rights,
            port,
            cap: found.id,
            badge: found.badge,
        });
        cache.next = (cache.next + 1) % PATH_CACHE_ENTRIES;
        Ok((port, found))
    }

    /// A call without capabilities straight into a waiting receiver's registers (and IPC
    /// buffer). On success the caller is blocked awaiting the answer to its next call and
    /// parked, and the receiver is the thread to switch to.
    pub fn fast_call(
        &mut self,
        port_id: PortId,
        frame: &TrapFrame,
        badge: u64,
    ) -> Option<(Tid, Parked)> {
        if !carried(frame) {
            return None;
        }
        let caller = self.sched.current;
        let port = self.ports.get_mut(&port_id)?;
        let receiver = port.receivers.first()?;
        let (from, to) = self.threads.get_pair_mut(&caller, &receiver)?;
        if !may_switch_directly(from, to) {
            return None;
        }
        move_payload(&mut self.processes, from, to, frame)?;
        port.receivers.pop_first(to);
        let bump = |s: &mut IpcStats| {
            s.calls += 1;
            s.sent += 1;
            s.received += 1;
            s.fast_path_hits += 1;
        };
        bump(&mut port.stats);
        bump(&mut self.ipc_stats);
        let reply = from.next_call(caller, port_id);
        from.state = ThreadState::WaitingReply(reply.seq);
        let park = park(from, Delivered::Answer);
        let previous = to.pending_reply.replace(reply);
        // Only a receive with a timeout is on a timer.
        if let waiting @ ThreadState::Receiving { until: Some(_), .. } =
            to.hand_over(frame, badge, 1)
        {
            self.sched.forget(receiver, waiting);
        }
        if let Some(previous) = previous {
            self.abandon_reply(previous);
        }
        Some((receiver, park))
    }

    /// Answer `reply` with a message without capabilities and wait on `port` in one step,
    /// parked, switching straight to the caller.
    pub fn fast_reply_recv(
        &mut self,
        reply: ReplyRef,
        port_id: PortId,
        frame: &TrapFrame,
    ) -> Option<(Tid, Parked)> {
        if !carried(frame) {
            return None;
        }
        let server = self.sched.current;
        let port = self.ports.get_mut(&port_id)?;
        if !port.queue.is_empty() || port.notify != 0 || port.closed {
            return None;
        }
        let (from, to) = self.threads.get_pair_mut(&server, &reply.caller)?;
        let awaited = matches!(to.state, ThreadState::WaitingReply(seq) if seq == reply.seq);
        if !awaited || !may_switch_directly(from, to) {
            return None;
        }
        move_payload(&mut self.processes, from, to, frame)?;
        port.stats.fast_path_hits += 1;
        self.ipc_stats.fast_path_hits += 1;
        self.ipc_stats.replies += 1;
        from.state = ThreadState::Receiving {
            port: port_id,
            until: None,
        };
        let park = park(from, Delivered::Received);
        // A caller awaiting its answer is on no run queue and no timer: nothing to forget.
        to.hand_over(frame, 0, 0);
        port.receivers.push(&mut self.threads, server);
        if reply.port == port_id {
            port.stats.replies += 1;
        } else if let Some(other) = self.ports.get_mut(&reply.port) {
            other.stats.replies += 1;
        }
        Some((reply.caller, park))
    }

    /// Count a call or reply-and-receive that could not take the fast path.
    pub fn fast_path_missed(&mut self, port_id: PortId) {
        self.count(port_id, |s| s.fast_path_misses += 1);
    }
}

impl Thread {
    /// Copy the sender's label, payload length and words into the saved registers of this
    /// thread, blocked in the kernel, and set its syscall's result: no message built.
    /// Returns the state it was blocked in.
    #[inline(always)]
    fn hand_over(&mut self, frame: &TrapFrame, badge: u64, result: usize) -> ThreadState {
        let sent = MessageInfo(frame.rsi);
        let info = MessageInfo::new(sent.label(), sent.payload_len(), 0).0;
        self.load_registers(badge, info, [frame.rdx, frame.r10, frame.r8, frame.r9]);
        self.inbox = Some(Delivery::InRegisters(result));
        self.state
    }

    /// Write a message's badge, info and words into the saved registers of this thread,
    /// blocked in a receiving syscall.
    pub fn load_registers(&mut self, badge: u64, info: u64, words: [u64; 4]) {
        // SAFETY: the thread is blocked inside a syscall, so the top of its kernel stack holds
        // the frame its syscall entry saved, and nothing else refers to it until it runs.
        let saved = unsafe { &mut *self.saved_user_frame() };
        saved.rdi = badge;
        saved.rsi = info;
        [saved.rdx, saved.r10, saved.r8, saved.r9] = words;
    }
}
