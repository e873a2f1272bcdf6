//! The kernel's state, behind one lock, and the root that ties the objects together: an
//! operation that crosses objects (what a capability's going means for its object, an
//! interrupt or log bytes signalled to a port) belongs here rather than in one object's
//! module.
//!
//! The lock has a ticket per core (`arch::spinlock`): [`kernel`] takes them all, the
//! *exclusive* mode, which every syscall handler uses; the IPC fast path, the scheduler's
//! pass, the tick and the notifications of interrupts take their core's alone, the *shared*
//! mode (`shared.rs`), and lock each object they touch, so they do not wait for each other
//! across cores. The
//! kernel never takes interrupts in ring 0 (except while idle, holding nothing), so an
//! interrupt never meets its own core holding it. Taking it twice is a kernel bug and
//! panics loudly instead of hanging.

mod capability;
mod dma;
pub mod fastpath;
pub mod fault;
pub mod fpu;
mod ipc;
mod port;
mod process;
mod quota;
mod shared;
pub mod spawn;
pub mod switch;
mod thread;

use crate::arch::spinlock::{CoreLock, Exclusive};
use crate::cap::audit::AuditLog;
use crate::cap::{CapTable, Object};
use crate::device::Devices;
use crate::ipc::{Port, PortId};
use crate::mm::object::MemoryObject;
use crate::mm::space::AddressSpace;
use crate::proc::{Pid, Process};
use crate::sched::Scheduler;
use crate::sched::thread::{Thread, Tid};
use crate::table::Table;
use alloc::string::String;
use core::ptr::NonNull;
use keel_abi::ipc::IpcStats;
use shared::Shared;

pub struct Kernel {
    pub processes: Table<Process>,
    pub threads: Table<Thread>,
    pub sched: Scheduler,
    caps: CapTable,
    pub ports: Table<Port>,
    pub memory: Table<MemoryObject>,
    audit: AuditLog,
    devices: Devices,
    /// System-wide IPC counters.
    ipc_stats: IpcStats,
    /// Messages of dead ports waiting to be discarded (see [`Kernel::discard_all`]).
    doomed: alloc::vec::Vec<crate::ipc::Message>,
    /// Set while `doomed` is being emptied.
    discarding: bool,
    /// DMA memory of ended drivers, by driver, until their devices are stopped.
    dma_held: alloc::collections::BTreeMap<Pid, dma::Held>,
}

pub static KERNEL: CoreLock<Option<Kernel>> = CoreLock::new(None);

/// The kernel state in exclusive mode. It keeps a pointer to the state so that reaching
/// it does not check, at every use, that it was initialised.
pub struct KernelGuard {
    _lock: Exclusive<'static, Option<Kernel>>,
    state: NonNull<Kernel>,
}

impl core::ops::Deref for KernelGuard {
    type Target = Kernel;
    fn deref(&self) -> &Kernel {
        // SAFETY: `state` points into the `Option` the lock guards, which stays `Some` and
        // in place while the guard lives; the guard is the only way to it.
        unsafe { self.state.as_ref() }
    }
}

impl core::ops::DerefMut for KernelGuard {
    fn deref_mut(&mut self) -> &mut Kernel {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { self.state.as_mut() }
    }
}

/// The kernel state in exclusive mode, once the cores before this one are done with it.
/// Panics if this core holds it already (a kernel bug, never a user's doing).
#[inline]
#[track_caller]
pub fn kernel() -> KernelGuard {
    let mut lock = KERNEL.lock();
    let state = NonNull::from(lock.as_mut().expect("kernel state initialised"));
    KernelGuard { _lock: lock, state }
}

/// The end-of-entry work for the log: if bytes arrived since last time, tell the console
/// driver. Takes the lock only then.
#[inline(always)]
pub fn announce_log() {
    if crate::log::take_pending() {
        signal_log();
    }
}

#[cold]
#[inline(never)]
fn signal_log() {
    signal(Object::Log);
}

/// An event source fired (an interrupt line, masked until the driver acknowledges it; an
/// MSI-X vector; log bytes for the console driver): notify its port, in the shared mode
/// when it can (`Shared::notify_port`), so that an interrupt does not stop the other
/// cores. The caller then does the end-of-interrupt work (rescheduling).
pub fn signal(source: Object) {
    let notified = Shared::enter().and_then(|mut k| {
        let (port, bits) = k.devices.target(source)?;
        k.notify_port(port, bits)?;
        k.core.fast_counts().events += 1;
        Some(())
    });
    if notified.is_none() {
        kernel().signal_event(source);
    }
}

/// Create the kernel state with its idle thread.
pub fn init() {
    let mut state = Kernel {
        processes: Table::default(),
        threads: Table::default(),
        sched: Scheduler::new(&[]),
        caps: CapTable::default(),
        ports: Table::default(),
        memory: Table::default(),
        audit: AuditLog::default(),
        devices: Devices::default(),
        ipc_stats: IpcStats::default(),
        doomed: alloc::vec::Vec::new(),
        discarding: false,
        dma_held: alloc::collections::BTreeMap::new(),
    };
    // One idle thread per core, at home there.
    let idles: alloc::vec::Vec<Tid> = (0..crate::arch::percpu::online())
        .map(|core| {
            let mut idle = Thread::new(0, 0, switch::idle_start()).expect("idle thread");
            idle.set_home(core);
            state.threads.insert(idle)
        })
        .collect();
    state.sched = Scheduler::new(&idles);
    *KERNEL.lock() = Some(state);
}

impl Kernel {
    pub fn current_thread(&self) -> &Thread {
        self.running()
    }

    pub fn current_pid(&self) -> Pid {
        self.current_thread().process()
    }

    /// The running process's address space (it has one: only ended processes lose theirs).
    pub fn current_space(&self) -> &AddressSpace {
        let process = &self.processes[&self.current_pid()];
        process.space.as_ref().expect("running process has memory")
    }

    pub fn current_space_mut(&mut self) -> &mut AddressSpace {
        let pid = self.current_pid();
        let process = self
            .processes
            .get_mut(&pid)
            .expect("running thread's process exists");
        process.space.as_mut().expect("running process has memory")
    }

    pub fn current_process(&mut self) -> &mut Process {
        let pid = self.current_pid();
        self.processes
            .get_mut(&pid)
            .expect("running thread's process exists")
    }

    /// How many kernel objects of a kind exist (for `sys_info`'s leak-audit figures).
    pub fn object_count(&self, kind: keel_abi::SysInfo) -> usize {
        match kind {
            keel_abi::SysInfo::Threads => self.threads.len(),
            keel_abi::SysInfo::Ports => self.ports.len(),
            keel_abi::SysInfo::MemoryObjects => self.memory.len(),
            keel_abi::SysInfo::Capabilities => self.caps.total(),
            _ => 0,
        }
    }

    /// A capability to `object` went away: what that means for the object (a reply
    /// abandoned, a port closed or freed, memory freed, an interrupt line masked, the
    /// console handed back). Across objects, so here at the root.
    pub fn release_object(&mut self, object: Object) {
        match object {
            Object::Reply(reply) => self.abandon_reply(reply),
            Object::Port(port) => self.port_capability_gone(port),
            Object::Memory(mem) => {
                if self.caps.count(object) == 0
                    && let Some(memory) = self.memory.remove(&mem)
                {
                    self.free_memory(memory);
                }
            }
            Object::Irq(_) | Object::Msi(_) => self.devices.interrupt_released(object, &self.caps),
            Object::IoPorts(..) => crate::device::update_console_owner(&self.caps),
            Object::Audit
            | Object::Log
            | Object::PciConfig(_)
            | Object::Process(_)
            | Object::Thread(_) => {}
        }
    }

    /// An event source fired (an interrupt line, masked until the driver acknowledges it;
    /// an MSI-X vector; log bytes for the console driver): notify its port, if bound; a
    /// port that is gone unbinds the source (a line stays masked).
    pub fn signal_event(&mut self, source: Object) {
        if let Some((port, bits)) = self.devices.target(source)
            && self.notify_port(port, bits).is_err()
        {
            self.devices.unbind(source);
        }
    }

    /// The audit log, newest records last.
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// Bind an event source (an interrupt line, the log) to a port and bits, or unbind it.
    pub fn bind_event(
        &mut self,
        source: Object,
        target: Option<(PortId, u64)>,
    ) -> Result<(), keel_abi::Error> {
        self.devices.bind_event(source, target)
    }

    /// Route the log to the console driver's buffer while any capability covers the
    /// console's ports (after one to I/O ports is made).
    pub fn update_console_owner(&self) {
        crate::device::update_console_owner(&self.caps);
    }

    /// Whether interrupt `line` is bound to a port.
    pub fn irq_bound(&mut self, line: u8) -> bool {
        self.devices.target(Object::Irq(line)).is_some()
    }

    /// A free MSI-X vector, if any.
    pub fn free_vector(&self) -> Option<u8> {
        Devices::free_vector(&self.caps)
    }

    pub fn describe_thread(&self, tid: Tid) -> String {
        let Some(thread) = self.threads.get(&tid) else {
            return alloc::format!("thread {tid} (gone)");
        };
        if self.sched.is_idle(tid) {
            return String::from("the idle thread");
        }
        match self.processes.get(&thread.process()) {
            Some(p) => alloc::format!("process {} ({}), thread {}", p.id(), p.name(), tid),
            None => alloc::format!("thread {tid} of process {}", thread.process()),
        }
    }
}
