//! Quotas across objects: a process's frames, descendants and threads checked and counted
//! against its own record and its ancestors' (the rules themselves: `proc/quota.rs`).

use super::Kernel;
use crate::mm::space::AddressSpace;
use crate::proc::quota::{KERNEL_RESERVE_FRAMES, Limits};
use crate::proc::{Pid, Process, Quota};
use alloc::vec::Vec;
use keel_abi::Error;

impl Kernel {
    /// The running process's address space, held to its quotas, for a change that may
    /// make it grow (a map).
    pub fn current_space_to_grow(&mut self) -> &mut AddressSpace {
        let pid = self.current_pid();
        self.apply_quota(pid);
        self.current_space_mut()
    }

    /// Ok when process `pid` may have one more thread: it is under its thread limit and the
    /// thread's kernel stack fits its kernel-bytes quota.
    pub fn check_thread_quota(&self, pid: Pid) -> Result<(), Error> {
        match self.processes.get(&pid) {
            Some(p) if !p.has_room_for_thread() => Err(Error::QuotaExceeded),
            _ => Ok(()),
        }
    }
}

impl Kernel {
    /// Frames of user memory `pid` holds: its pages and page tables, the memory objects it
    /// owns, and what it carved for its children.
    pub fn frames_used(&self, pid: Pid) -> usize {
        let Some(process) = self.processes.get(&pid) else {
            return 0;
        };
        let owned: usize = self
            .memory
            .values()
            .filter(|m| m.owner() == pid)
            .map(|m| m.charged_frames())
            .sum();
        process.space.as_ref().map_or(0, |s| s.frames()) + owned + process.carved()
    }

    /// Ok when `pid` may take `frames` more frames of user memory.
    pub fn check_frames(&self, pid: Pid, frames: usize) -> Result<(), Error> {
        let limit = self.processes.get(&pid).map_or(0, |p| p.quota().frames);
        if self.frames_used(pid).saturating_add(frames) > limit {
            return Err(Error::QuotaExceeded);
        }
        Ok(())
    }

    /// Hold `pid`'s address space to its quotas before it may grow: its frames to what its
    /// frame quota leaves, its page tables also to what its kernel-bytes quota leaves.
    pub fn apply_quota(&mut self, pid: Pid) {
        let used = self.frames_used(pid);
        let Some(process) = self.processes.get_mut(&pid) else {
            return;
        };
        process.limit_tables();
        let held = process.space.as_ref().map_or(0, |s| s.frames());
        process.limit_frames(used.saturating_sub(held));
    }

    /// The quota of a child `parent` spawns with `asked`: the defaults filled in, checked
    /// against the parent's own limits. The first process (no parent) gets every frame but
    /// the kernel's reserve and room for every process.
    pub fn child_quota(&self, parent: Pid, asked: Limits) -> Result<Quota, Error> {
        let Some(parent) = self.processes.get(&parent) else {
            return Ok(Quota {
                frames: crate::mm::frame::free_count().saturating_sub(KERNEL_RESERVE_FRAMES),
                processes: crate::proc::MAX_PROCESSES - 1,
                ..Quota::default()
            });
        };
        let own = parent.quota();
        let pick = |asked: usize, default: usize, own: usize| match asked {
            0 => Ok(default.min(own)),
            n if n > own => Err(Error::PermissionDenied),
            n => Ok(n),
        };
        let defaults = Quota::default();
        let frames = match asked.frames {
            0 => defaults.frames,
            n => n,
        };
        // Any number may be asked for: it must not wrap past the check.
        if self.frames_used(parent.id()).saturating_add(frames) > own.frames {
            return Err(Error::QuotaExceeded);
        }
        Ok(Quota {
            frames,
            processes: pick(asked.processes, defaults.processes, own.processes)?,
            threads: pick(asked.threads, defaults.threads, own.threads)?,
            ..defaults
        })
    }

    /// Ok when every ancestor of a new child of `parent` has room for one more descendant.
    pub fn check_descendant_room(&self, parent: Pid) -> Result<(), Error> {
        let mut full = false;
        self.for_each_ancestor(parent, |p| full |= !p.has_room_for_descendant());
        if full {
            return Err(Error::QuotaExceeded);
        }
        Ok(())
    }

    /// A child of `parent` was born with `quota`: count it in its ancestors and carve its
    /// frames from its parent's quota.
    pub fn count_child(&mut self, parent: Pid, quota: &Quota) {
        self.for_each_ancestor_mut(parent, Process::add_descendant);
        if let Some(parent) = self.processes.get_mut(&parent) {
            parent.carve(quota.frames);
        }
    }

    /// `pid` is being reaped: its ancestors have one descendant fewer.
    pub fn uncount_descendant(&mut self, pid: Pid) {
        let parent = self.processes.get(&pid).map_or(0, Process::parent);
        self.for_each_ancestor_mut(parent, Process::remove_descendant);
    }

    /// `pid` ended: the frames carved for it go back to its parent, and the memory objects
    /// it owns (others may still map them) are charged to its parent from now on.
    pub fn return_quota(&mut self, pid: Pid) {
        let Some((parent, frames)) = self
            .processes
            .get(&pid)
            .map(|p| (p.parent(), p.quota().frames))
        else {
            return;
        };
        let heir = if self.processes.contains_key(&parent) {
            parent
        } else {
            0
        };
        let owned: Vec<_> = self
            .memory
            .iter()
            .filter(|(_, m)| m.owner() == pid)
            .map(|(id, _)| id)
            .collect();
        for id in owned {
            if let Some(object) = self.memory.get_mut(&id) {
                object.pass_to(heir);
            }
        }
        if let Some(parent) = self.processes.get_mut(&parent) {
            parent.uncarve(frames);
        }
    }

    /// Every process descending from `pid`, parents before their children.
    pub fn descendants_of(&self, pid: Pid) -> Vec<Pid> {
        let mut found: Vec<Pid> = Vec::new();
        let mut next = 0;
        let mut parent = pid;
        loop {
            found.extend(
                self.processes
                    .values()
                    .filter(|p| p.parent() == parent && p.id() != pid)
                    .map(Process::id),
            );
            let Some(&child) = found.get(next) else {
                return found;
            };
            parent = child;
            next += 1;
        }
    }

    fn for_each_ancestor(&self, from: Pid, mut f: impl FnMut(&Process)) {
        let mut pid = from;
        // A parent is always older than its child, so the chain ends within this many steps.
        for _ in 0..crate::proc::MAX_PROCESSES {
            let Some(process) = self.processes.get(&pid) else {
                return;
            };
            f(process);
            pid = process.parent();
        }
    }

    fn for_each_ancestor_mut(&mut self, from: Pid, mut f: impl FnMut(&mut Process)) {
        let mut pid = from;
        for _ in 0..crate::proc::MAX_PROCESSES {
            let Some(process) = self.processes.get_mut(&pid) else {
                return;
            };
            f(process);
            pid = process.parent();
        }
    }
}
