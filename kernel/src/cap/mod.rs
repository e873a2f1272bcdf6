//! Capabilities: every right a process has to a kernel object is a capability in its space.
//!
//! Capabilities live in one table, each a node of a derivation tree: deriving (with fewer
//! rights or a badge) and granting (passing a copy in a message or at spawn) make children.
//! Revoking a capability deletes its whole subtree, wherever the copies went, including
//! copies still travelling in queued messages; deleting one capability keeps its children
//! (they move up to its parent), as in seL4. A process names capabilities by handles into
//! its [`CapSpace`]; a handle carries its slot's generation so stale handles are told apart
//! from forged ones.
//!
//! Every use of a capability goes through [`Kernel::cap_check`], the one place where access
//! is decided and denials are written to the audit log.

pub mod audit;
pub mod space;

use crate::id::Pid;
use crate::ipc::{PortId, ReplyRef};
use crate::kernel::Kernel;
use crate::mm::object::MemId;
use crate::sched::thread::Tid;
use alloc::vec::Vec;
use keel_abi::Error;
use keel_abi::cap::{AuditRecord, Handle, audit as event, kind};

pub use crate::id::CapId;

/// What a capability points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    Port(PortId),
    /// The right to answer one call.
    Reply(ReplyRef),
    Memory(MemId),
    Audit,
    /// A legacy interrupt line.
    Irq(u8),
    /// I/O ports `base .. base + len`.
    IoPorts(u16, u16),
    /// The kernel log buffer.
    Log,
    /// A process.
    Process(Pid),
    /// A thread.
    Thread(Tid),
}

impl Object {
    pub fn kind(&self) -> u32 {
        match self {
            Object::Port(_) => kind::PORT,
            Object::Reply(_) => kind::REPLY,
            Object::Memory(_) => kind::MEMORY,
            Object::Audit => kind::AUDIT,
            Object::Irq(_) => kind::IRQ,
            Object::IoPorts(..) => kind::IO_PORTS,
            Object::Log => kind::LOG,
            Object::Process(_) => kind::PROCESS,
            Object::Thread(_) => kind::THREAD,
        }
    }

    pub fn id(&self) -> u64 {
        match self {
            Object::Port(id) | Object::Memory(id) => *id as u64,
            Object::Reply(reply) => reply.seq,
            Object::Audit | Object::Log => 0,
            Object::Irq(line) => *line as u64,
            Object::Process(pid) => *pid as u64,
            Object::Thread(tid) => *tid as u64,
            Object::IoPorts(base, len) => ((*base as u64) << 16) | *len as u64,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// In slot `index` of process `pid`.
    Slot(Pid, usize),
    /// Inside a queued message (or a delivery not yet picked up).
    InFlight,
}

pub struct CapNode {
    pub object: Object,
    pub rights: u32,
    pub badge: u64,
    pub holder: Holder,
    parent: Option<CapId>,
    children: Vec<CapId>,
}

/// All capabilities in the system.
#[derive(Default)]
pub struct CapTable {
    nodes: alloc::collections::BTreeMap<CapId, CapNode>,
    next: CapId,
}

impl CapTable {
    pub fn get(&self, id: CapId) -> Option<&CapNode> {
        self.nodes.get(&id)
    }

    fn insert(&mut self, object: Object, rights: u32, badge: u64, parent: Option<CapId>) -> CapId {
        self.next += 1;
        let id = self.next;
        self.nodes.insert(
            id,
            CapNode {
                object,
                rights,
                badge,
                holder: Holder::InFlight,
                parent,
                children: Vec::new(),
            },
        );
        if let Some(parent) = parent.and_then(|p| self.nodes.get_mut(&p)) {
            parent.children.push(id);
        }
        id
    }

    /// Every capability to `object`.
    pub fn ids_of(&self, object: Object) -> Vec<CapId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.object == object)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Whether any capability's object satisfies `test`.
    pub fn any(&self, test: impl Fn(Object) -> bool) -> bool {
        self.nodes.values().any(|n| test(n.object))
    }

    /// How many capabilities point at `object`.
    pub fn count(&self, object: Object) -> usize {
        self.count_with(object, 0)
    }

    /// How many capabilities point at `object` with all of `rights`.
    pub fn count_with(&self, object: Object, rights: u32) -> usize {
        self.nodes
            .values()
            .filter(|n| n.object == object && n.rights & rights == rights)
            .count()
    }

    fn descendants(&self, id: CapId) -> Vec<CapId> {
        let mut out = Vec::new();
        let mut stack: Vec<CapId> = self
            .nodes
            .get(&id)
            .map(|n| n.children.clone())
            .unwrap_or_default();
        while let Some(next) = stack.pop() {
            if let Some(node) = self.nodes.get(&next) {
                stack.extend(node.children.iter().copied());
                out.push(next);
            }
        }
        out
    }
}

/// A capability found by [`Kernel::cap_check`].
#[derive(Clone, Copy, Debug)]
pub struct Found {
    pub id: CapId,
    pub object: Object,
    pub rights: u32,
    pub badge: u64,
}

impl Kernel {
    /// The capability `handle` of process `pid`, if it is of `want_kind` (any kind for
    /// `None`) and has `rights`: the seed's `check_security_access`. Denials are audited.
    pub fn cap_check(
        &mut self,
        pid: Pid,
        handle: Handle,
        want_kind: Option<u32>,
        rights: u32,
    ) -> Result<Found, Error> {
        let result = self.cap_resolve(pid, handle).and_then(|found| {
            if want_kind.is_some_and(|k| k != found.object.kind()) {
                Err(Error::WrongType)
            } else if found.rights & rights != rights {
                Err(Error::MissingRight)
            } else {
                Ok(found)
            }
        });
        if let Err(error) = result {
            self.audit.record(AuditRecord {
                event: event::DENIED,
                error: error as u32,
                pid,
                handle,
                rights,
                other: 0,
                tick: self.ticks,
            });
        }
        result
    }

    /// The capability behind a handle, whatever its kind and rights.
    pub fn cap_resolve(&self, pid: Pid, handle: Handle) -> Result<Found, Error> {
        let process = self.processes.get(&pid).ok_or(Error::InvalidHandle)?;
        let id = process.caps.lookup(handle)?;
        let node = self.caps.get(id).ok_or(Error::StaleHandle)?;
        Ok(Found {
            id,
            object: node.object,
            rights: node.rights,
            badge: node.badge,
        })
    }

    /// A new capability (no parent) in a slot of `pid`.
    pub fn cap_create(&mut self, pid: Pid, object: Object, rights: u32) -> Result<Handle, Error> {
        let id = self.caps.insert(object, rights, 0, None);
        self.cap_place(pid, id).inspect_err(|_| self.cap_delete(id))
    }

    /// A new capability (no parent) held in flight until placed: one the kernel sends.
    pub fn cap_mint_in_flight(&mut self, object: Object, rights: u32) -> CapId {
        self.caps.insert(object, rights, 0, None)
    }

    /// A child of `parent` with at most its rights, held in flight until placed.
    pub fn cap_derive_in_flight(&mut self, parent: &Found, rights: u32, badge: u64) -> CapId {
        let badge = if parent.badge != 0 {
            parent.badge
        } else {
            badge
        };
        self.caps.insert(
            parent.object,
            parent.rights & rights,
            badge,
            Some(parent.id),
        )
    }

    /// Put an in-flight capability into a free slot of `pid`.
    pub fn cap_place(&mut self, pid: Pid, id: CapId) -> Result<Handle, Error> {
        // Revoked while in flight: nothing to place.
        if self.caps.get(id).is_none() {
            return Err(Error::StaleHandle);
        }
        let process = self.processes.get_mut(&pid).ok_or(Error::PeerGone)?;
        let (index, handle) = process.caps.insert(id)?;
        if let Some(node) = self.caps.nodes.get_mut(&id) {
            node.holder = Holder::Slot(pid, index);
        }
        Ok(handle)
    }

    /// Delete one capability: its children move up to its parent; the object is released
    /// when this was its last capability.
    pub fn cap_delete(&mut self, id: CapId) {
        let Some(node) = self.caps.nodes.remove(&id) else {
            return;
        };
        if let Some(parent) = node.parent.and_then(|p| self.caps.nodes.get_mut(&p)) {
            parent.children.retain(|&c| c != id);
            parent.children.extend(node.children.iter().copied());
        }
        for child in &node.children {
            if let Some(child) = self.caps.nodes.get_mut(child) {
                child.parent = node.parent;
            }
        }
        if let Holder::Slot(pid, index) = node.holder
            && let Some(process) = self.processes.get_mut(&pid)
        {
            if process.caps.clear(index) {
                for tid in &process.threads {
                    if let Some(thread) = self.threads.get_mut(tid) {
                        thread.path_cache.forget_all();
                    }
                }
            }
            if let Object::Memory(_) = node.object
                && let Some(space) = process.space.as_mut()
            {
                space.unmap_shared(id);
            }
        }
        self.release_object(node.object);
    }

    /// Delete every capability derived from `cap` (which `pid` holds as `handle`), wherever
    /// it went; returns how many.
    pub fn cap_revoke(&mut self, pid: Pid, handle: Handle, cap: &Found) -> usize {
        let doomed = self.caps.descendants(cap.id);
        for &child in doomed.iter().rev() {
            self.cap_delete(child);
        }
        self.audit.record(AuditRecord {
            event: event::REVOKED,
            error: 0,
            pid,
            handle,
            rights: cap.rights,
            other: doomed.len() as u32,
            tick: self.ticks,
        });
        doomed.len()
    }

    /// Ok when `caller` may act on process `pid` with `rights`: it is itself, holds a
    /// capability to it with those rights, or has the SYSTEM right. `NotFound` when there is
    /// no such process, `PermissionDenied` otherwise.
    pub fn check_reach(&self, caller: Pid, pid: Pid, rights: u32) -> Result<(), Error> {
        if !self.processes.contains_key(&pid) {
            return Err(Error::NotFound);
        }
        let system = self.processes[&caller].rights & keel_abi::rights::SYSTEM != 0;
        if pid == caller || system || self.holds_process_cap(caller, pid, rights) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// Whether process `pid` holds a capability to process `target` with `rights`.
    fn holds_process_cap(&self, pid: Pid, target: Pid, rights: u32) -> bool {
        let Some(process) = self.processes.get(&pid) else {
            return false;
        };
        process.caps.held().into_iter().any(|id| {
            self.caps
                .get(id)
                .is_some_and(|n| n.object == Object::Process(target) && n.rights & rights == rights)
        })
    }

    /// Delete every capability to `object`, wherever held (the object is gone).
    pub fn cap_delete_object(&mut self, object: Object) {
        let doomed: Vec<CapId> = self.caps.ids_of(object);
        for id in doomed {
            self.cap_delete(id);
        }
    }

    /// Delete every capability a process holds (it is ending).
    pub fn cap_delete_all(&mut self, pid: Pid) {
        let ids = self
            .processes
            .get(&pid)
            .map(|p| p.caps.held())
            .unwrap_or_default();
        for id in ids {
            self.cap_delete(id);
        }
    }
}
