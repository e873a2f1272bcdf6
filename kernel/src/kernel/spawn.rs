//! Creating a process: address space, ELF image, stack, start-up record, main thread.
//!
//! Every step can fail on bad input or exhausted memory; the half-built address space is then
//! dropped, which returns every frame, so a failed spawn leaves nothing behind.

use super::Kernel;
use crate::cap::space::{CapSpace, DEFAULT_SLOTS};
use crate::cap::{Found, Object};
use crate::mm::space::AddressSpace;
use crate::mm::{PAGE_SIZE, PhysAddr, align_up};
use crate::proc::{Birth, MAX_PROCESSES, Pid, Process, Quota, elf};
use crate::sched::thread::Start;
use alloc::boxed::Box;
use alloc::vec::Vec;
use keel_abi::cap::{AuditRecord, audit, rights};
use keel_abi::layout::{self, BootModule, StartInfo};
use keel_abi::{Error, prot};

/// A boot module handed to the first process: its frames are mapped read-only, never freed.
pub struct SharedModule<'a> {
    pub phys: PhysAddr,
    pub len: usize,
    pub name: &'a str,
    pub args: &'a str,
}

pub struct SpawnSpec<'a> {
    pub parent: Pid,
    pub name: &'a str,
    pub args: &'a [u8],
    pub image: &'a [u8],
    pub priority: usize,
    pub rights: u32,
    pub modules: &'a [SharedModule<'a>],
    /// Capabilities of the parent the child gets copies of, as handles `1..`.
    pub caps: &'a [Found],
    /// Also give the audit-log and kernel-log capabilities (the first process).
    pub system_caps: bool,
    /// What the parent asks for the child's quota.
    pub limits: crate::proc::quota::Limits,
    /// The cores its threads may run on, bit `n` for core `n`.
    pub cpus: u8,
}

fn copy_str(dst: &mut [u8], src: &[u8]) -> usize {
    let len = src.len().min(dst.len());
    dst[..len].copy_from_slice(&src[..len]);
    len
}

fn start_info(pid: Pid, spec: &SpawnSpec, module_addrs: &[usize]) -> Box<StartInfo> {
    let info = Box::<StartInfo>::new_zeroed();
    // SAFETY: StartInfo is made of integers and byte arrays, for which all-zero is valid.
    let mut info = unsafe { info.assume_init() };
    info.magic = layout::START_INFO_MAGIC;
    info.pid = pid;
    info.args_len = copy_str(&mut info.args, spec.args) as u64;
    info.name_len = copy_str(&mut info.name, spec.name.as_bytes()) as u64;
    for ((slot, module), &addr) in info.modules.iter_mut().zip(spec.modules).zip(module_addrs) {
        *slot = BootModule::EMPTY;
        slot.addr = addr as u64;
        slot.len = module.len as u64;
        slot.name_len = copy_str(&mut slot.name, module.name.as_bytes()) as u32;
        slot.args_len = copy_str(&mut slot.args, module.args.as_bytes()) as u32;
    }
    info.module_count = module_addrs.len() as u32;
    info.cap_count = (spec.caps.len() + 2 * spec.system_caps as usize) as u64;
    info
}

/// Map the boot modules read-only, one after another with a guard gap; their addresses.
fn map_modules(space: &mut AddressSpace, modules: &[SharedModule]) -> Result<Vec<usize>, Error> {
    let mut addrs = Vec::new();
    let mut next = layout::MODULES_BASE;
    for module in modules.iter().take(layout::MAX_MODULES) {
        let len = align_up(module.len.max(1), PAGE_SIZE).ok_or(Error::InvalidArgument)?;
        space.map_borrowed(next, module.phys, len)?;
        addrs.push(next);
        next += len + PAGE_SIZE;
    }
    Ok(addrs)
}

impl Kernel {
    pub fn spawn_process(&mut self, spec: &SpawnSpec) -> Result<Pid, Error> {
        if self.processes.len() >= MAX_PROCESSES {
            return Err(Error::QuotaExceeded);
        }
        self.check_descendant_room(spec.parent)?;
        let quota: Quota = self.child_quota(spec.parent, spec.limits)?;
        let mut space = AddressSpace::new()?;
        // Everything it is built with counts against its own quotas; its page tables may
        // take its kernel bytes but for its first thread's stack.
        space.set_frame_limit(quota.frames);
        space.set_table_limit((quota.kernel_bytes - crate::mm::stacks::STACK_SIZE) / PAGE_SIZE);
        let entry = elf::load(&mut space, spec.image)?;
        space.map_anonymous(
            layout::STACK_TOP - layout::STACK_SIZE,
            layout::STACK_SIZE,
            prot::READ | prot::WRITE,
        )?;
        let module_addrs = map_modules(&mut space, spec.modules)?;
        space.map_anonymous(layout::START_INFO_ADDR, layout::START_INFO_SIZE, prot::READ)?;
        space.map_borrowed(layout::CLOCK_ADDR, crate::clock::frame(), layout::PAGE_SIZE)?;
        let pid = self.processes.next_id();
        let info = start_info(pid, spec, &module_addrs);
        // SAFETY: StartInfo is plain data without padding; viewing it as bytes is sound.
        let bytes = unsafe {
            core::slice::from_raw_parts(
                &*info as *const StartInfo as *const u8,
                layout::START_INFO_SIZE,
            )
        };
        space.write_through_tables(layout::START_INFO_ADDR, bytes)?;

        let inserted = self.processes.insert(Process::new(Birth {
            id: pid,
            parent: spec.parent,
            name: spec.name,
            priority: spec.priority,
            rights: spec.rights,
            cpus: spec.cpus,
            quota,
            space,
            caps: CapSpace::new(DEFAULT_SLOTS),
        }));
        debug_assert_eq!(inserted, pid);
        let started = self.grant_initial_caps(pid, spec).and_then(|()| {
            let start = Start::User {
                entry,
                stack_top: layout::STACK_TOP,
                arg: layout::START_INFO_ADDR,
            };
            self.spawn_thread(pid, spec.priority, 0, start)
        });
        match started {
            Ok(tid) => {
                self.processes
                    .get_mut(&pid)
                    .expect("just inserted")
                    .add_thread(tid);
                self.count_child(spec.parent, &quota);
                Ok(pid)
            }
            Err(error) => {
                self.cap_delete_all(pid);
                let process = self.processes.remove(&pid).expect("just inserted");
                drop(process);
                Err(error)
            }
        }
    }

    /// The capabilities a new process starts with, in handles `1..`: copies derived from the
    /// parent's, then the audit and kernel logs for the first process.
    fn grant_initial_caps(&mut self, pid: Pid, spec: &SpawnSpec) -> Result<(), Error> {
        for granted in spec.caps {
            let copy = self.cap_derive_in_flight(granted, rights::ALL, 0);
            self.cap_place(pid, copy)
                .inspect_err(|_| self.cap_delete(copy))?;
            self.audit.record(AuditRecord {
                event: audit::GRANTED,
                error: 0,
                pid: spec.parent,
                handle: 0,
                rights: granted.rights,
                other: pid,
                tick: crate::clock::ticks(),
            });
        }
        if spec.system_caps {
            self.cap_create(pid, Object::Audit, rights::READ | rights::GRANT)?;
            self.cap_create(pid, Object::Log, rights::READ | rights::GRANT)?;
        }
        Ok(())
    }
}
