//! Capabilities across objects: the access check every use goes through (the seed's
//! `check_security_access`), placing a capability in a process's space, deleting one
//! (slots, path caches and shared mappings follow, and the object is released with its last
//! capability), revoking a subtree, and whether one process may act on another.
//!
//! The derivation tree's own rules are `cap::CapTable`'s; this is what the tree means to the
//! processes, threads and objects around it.

use super::Kernel;
use crate::cap::{CapId, Found, Holder, Object};
use crate::id::Pid;
use alloc::vec::Vec;
use keel_abi::Error;
use keel_abi::cap::{AuditRecord, Handle, audit as event};

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
                tick: crate::clock::ticks(),
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
            object: node.object(),
            rights: node.rights(),
            badge: node.badge(),
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
        self.caps.set_holder(id, Holder::Slot(pid, index));
        Ok(handle)
    }

    /// Delete one capability: its children move up to its parent; the object is released
    /// when this was its last capability.
    pub fn cap_delete(&mut self, id: CapId) {
        let Some(node) = self.caps.remove(id) else {
            return;
        };
        if let Holder::Slot(pid, index) = node.holder()
            && let Some(process) = self.processes.get_mut(&pid)
        {
            if process.caps.clear(index) {
                for tid in process.threads() {
                    if let Some(thread) = self.threads.get_mut(tid) {
                        thread.path_cache_mut().forget_all();
                    }
                }
            }
            if let Object::Memory(_) = node.object()
                && let Some(space) = process.space.as_mut()
            {
                space.unmap_shared(id);
            }
        }
        self.release_object(node.object());
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
            tick: crate::clock::ticks(),
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
        let system = self.processes[&caller].has_right(keel_abi::rights::SYSTEM);
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
            self.caps.get(id).is_some_and(|n| {
                n.object() == Object::Process(target) && n.rights() & rights == rights
            })
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
