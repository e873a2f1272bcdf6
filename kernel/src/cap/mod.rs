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
//! This module keeps the tree's rules ([`CapTable`]: inserting under a parent, removing with
//! the children moving up, finding a subtree) and a process's slots ([`CapSpace`]). What a
//! capability's use or loss means across objects (the access check, placing one in a
//! process's space, deleting one and releasing what it held) is the root's, in
//! `kernel/capability.rs`; every use of a capability goes through its `cap_check`, the one
//! place where access is decided and denials are written to the audit log.

pub mod audit;
pub mod space;

use crate::id::{MemId, Pid, PortId, Tid};
use crate::ipc::ReplyRef;
use alloc::vec::Vec;
use keel_abi::cap::kind;

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
    /// One PCI function's configuration space (`bus << 8 | device << 3 | function`), or
    /// every function's (`keel_abi::pci::ALL_FUNCTIONS`), through the kernel.
    PciConfig(u32),
    /// An MSI-X vector (a CPU vector in `device::msi::VECTORS`).
    Msi(u8),
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
            Object::PciConfig(_) => kind::PCI_CONFIG,
            Object::Msi(_) => kind::MSI_VECTOR,
            Object::Process(_) => kind::PROCESS,
            Object::Thread(_) => kind::THREAD,
        }
    }

    pub fn id(&self) -> u64 {
        match self {
            Object::Port(id) | Object::Memory(id) => *id as u64,
            Object::Reply(reply) => reply.seq,
            Object::Audit | Object::Log => 0,
            Object::Irq(line) | Object::Msi(line) => *line as u64,
            Object::PciConfig(function) => *function as u64,
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

/// One capability in the derivation tree. What it grants is fixed when it is made; where it
/// is held changes through [`CapTable::set_holder`], its place in the tree only through the
/// table's insert and remove.
pub struct CapNode {
    object: Object,
    rights: u32,
    badge: u64,
    holder: Holder,
    parent: Option<CapId>,
    children: Vec<CapId>,
}

impl CapNode {
    pub fn object(&self) -> Object {
        self.object
    }

    pub fn rights(&self) -> u32 {
        self.rights
    }

    pub fn badge(&self) -> u64 {
        self.badge
    }

    pub fn holder(&self) -> Holder {
        self.holder
    }
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

    /// A new capability, held in flight, a child of `parent` if given.
    pub fn insert(
        &mut self,
        object: Object,
        rights: u32,
        badge: u64,
        parent: Option<CapId>,
    ) -> CapId {
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

    /// How many capabilities there are, wherever held.
    pub fn total(&self) -> usize {
        self.nodes.len()
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

    /// Every capability to `object` with all of `rights`, and where it is held.
    pub fn holders_with(
        &self,
        object: Object,
        rights: u32,
    ) -> impl Iterator<Item = (CapId, Holder)> + '_ {
        self.nodes
            .iter()
            .filter(move |(_, n)| n.object == object && n.rights & rights == rights)
            .map(|(&id, n)| (id, n.holder))
    }

    /// How many capabilities point at `object` with all of `rights`.
    pub fn count_with(&self, object: Object, rights: u32) -> usize {
        self.nodes
            .values()
            .filter(|n| n.object == object && n.rights & rights == rights)
            .count()
    }

    /// Take capability `id` out of the tree, its children moving up to its parent: the node,
    /// if it was there.
    pub fn remove(&mut self, id: CapId) -> Option<CapNode> {
        let node = self.nodes.remove(&id)?;
        if let Some(parent) = node.parent.and_then(|p| self.nodes.get_mut(&p)) {
            parent.children.retain(|&c| c != id);
            parent.children.extend(node.children.iter().copied());
        }
        for child in &node.children {
            if let Some(child) = self.nodes.get_mut(child) {
                child.parent = node.parent;
            }
        }
        Some(node)
    }

    /// Record where capability `id` is held.
    pub fn set_holder(&mut self, id: CapId, holder: Holder) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.holder = holder;
        }
    }

    /// Every capability derived from `id`, at any depth.
    pub fn descendants(&self, id: CapId) -> Vec<CapId> {
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

/// A capability found by the access check (`Kernel::cap_check`).
#[derive(Clone, Copy, Debug)]
pub struct Found {
    pub id: CapId,
    pub object: Object,
    pub rights: u32,
    pub badge: u64,
}
