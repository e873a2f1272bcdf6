//! What a process may make the kernel hold for it: kernel bytes (capability slots, queued
//! messages, page tables, kernel stacks), and how its address space is held to them.

use super::Process;
use crate::kernel::Kernel;
use crate::mm::PAGE_SIZE;
use crate::mm::space::AddressSpace;
use crate::mm::stacks::STACK_SIZE;
use crate::proc::Pid;
use keel_abi::Error;

impl Process {
    /// Kernel bytes held for this process besides its page tables.
    fn kernel_bytes_besides_tables(&self) -> usize {
        let tables = self
            .space
            .as_ref()
            .map_or(0, |s| s.table_frames() * PAGE_SIZE);
        self.kernel_bytes() - tables
    }

    /// Hold the address space to what the quota leaves: its page tables may take the
    /// kernel bytes nothing else holds.
    pub fn apply_quota(&mut self) {
        let room = self
            .quota
            .kernel_bytes
            .saturating_sub(self.kernel_bytes_besides_tables());
        if let Some(space) = self.space.as_mut() {
            space.set_table_limit(room / PAGE_SIZE);
        }
    }
}

impl Kernel {
    /// The running process's address space, held to its quotas, for a change that may
    /// make it grow (a map).
    pub fn current_space_to_grow(&mut self) -> &mut AddressSpace {
        self.current_process().apply_quota();
        self.current_space_mut()
    }

    /// Ok when process `pid` may have one more thread: its kernel stack fits its quota.
    pub fn check_thread_quota(&self, pid: Pid) -> Result<(), Error> {
        match self.processes.get(&pid) {
            Some(p) if p.kernel_bytes() + STACK_SIZE > p.quota.kernel_bytes => {
                Err(Error::QuotaExceeded)
            }
            _ => Ok(()),
        }
    }
}
