//! What a process may make the kernel hold for it, and how it is held to it: kernel bytes
//! (capability slots, queued messages, page tables, kernel stacks); frames of user memory,
//! each child's quota carved from its parent's while the child lives; descendants, counted
//! in every ancestor; threads. A parent sets its child's at spawn ([`Limits`]), never above
//! what it has itself.

use super::Process;
use crate::mm::PAGE_SIZE;

impl Process {
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
