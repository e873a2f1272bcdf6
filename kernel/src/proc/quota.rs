//! What a process may make the kernel hold for it, and how it is held to it: kernel bytes
//! (capability slots, queued messages, page tables, kernel stacks); frames of user memory,
//! each child's quota carved from its parent's while the child lives; descendants, counted
//! in every ancestor; threads. A parent sets its child's at spawn ([`Limits`]), never above
//! what it has itself.

use super::{Process, Quota};
use crate::mm::PAGE_SIZE;
use crate::mm::stacks::STACK_SIZE;

impl Process {
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Hold `bytes` more kernel memory for it (a queued message); false, holding nothing,
    /// when its quota would be exceeded.
    pub fn charge_kernel_bytes(&mut self, bytes: usize) -> bool {
        if self.kernel_bytes() + bytes > self.quota.kernel_bytes {
            return false;
        }
        self.queued_bytes += bytes;
        true
    }

    /// `bytes` charged with [`Process::charge_kernel_bytes`] are released.
    pub fn refund_kernel_bytes(&mut self, bytes: usize) {
        self.queued_bytes = self.queued_bytes.saturating_sub(bytes);
    }

    /// Whether it may have one more thread: under its thread limit, with room in its
    /// kernel-bytes quota for the thread's kernel stack.
    pub fn has_room_for_thread(&self) -> bool {
        self.threads.len() < self.quota.threads
            && self.kernel_bytes() + STACK_SIZE <= self.quota.kernel_bytes
    }

    /// Whether one more process may descend from it.
    pub fn has_room_for_descendant(&self) -> bool {
        self.descendants < self.quota.processes
    }

    pub fn add_descendant(&mut self) {
        self.descendants += 1;
    }

    pub fn remove_descendant(&mut self) {
        self.descendants = self.descendants.saturating_sub(1);
    }

    /// Frames carved from its quota for its living children's.
    pub fn carved(&self) -> usize {
        self.carved
    }

    /// A child was given `frames` of its quota.
    pub fn carve(&mut self, frames: usize) {
        self.carved += frames;
    }

    /// A child given `frames` of its quota ended.
    pub fn uncarve(&mut self, frames: usize) {
        self.carved = self.carved.saturating_sub(frames);
    }

    /// Hold its address space to the frames its quota leaves when `elsewhere` are held
    /// outside it (memory objects it owns, what it carved).
    pub fn limit_frames(&mut self, elsewhere: usize) {
        let room = self.quota.frames.saturating_sub(elsewhere);
        if let Some(space) = self.space.as_mut() {
            space.set_frame_limit(room);
        }
    }

    /// Kernel bytes held for this process besides its page tables.
    fn kernel_bytes_besides_tables(&self) -> usize {
        let tables = self
            .space
            .as_ref()
            .map_or(0, |s| s.table_frames() * PAGE_SIZE);
        self.kernel_bytes().saturating_sub(tables)
    }

    /// Hold the address space to what the quota leaves: its page tables may take the
    /// kernel bytes nothing else holds.
    pub fn limit_tables(&mut self) {
        let room = self
            .quota
            .kernel_bytes
            .saturating_sub(self.kernel_bytes_besides_tables());
        if let Some(space) = self.space.as_mut() {
            space.set_table_limit(room / PAGE_SIZE);
        }
    }
}

/// Frames no quota ever includes: what the kernel needs beyond every process's quota (memory
/// objects whose owners ended with no parent left, say) comes from here: 2 MiB.
pub const KERNEL_RESERVE_FRAMES: usize = 512;

/// What a parent asks for its child at spawn; 0 in a field means the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub frames: usize,
    pub processes: usize,
    pub threads: usize,
}
