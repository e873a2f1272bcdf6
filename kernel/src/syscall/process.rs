//! Processes: spawn from an ELF image, exit, wait, kill, and read-only snapshots.

use super::{Args, Next, Then};
use crate::cap::{Found, Object};
use crate::ipc::PortId;
use crate::kernel::Kernel;
use crate::kernel::spawn::SpawnSpec;
use crate::mm::user::{UserArray, UserSlice};
use crate::proc::{Pid, Process};
use crate::sched::thread::ThreadState;
use keel_abi::cap::{Handle, MAX_SPAWN_CAPS, kind as cap_kind, rights as cap_rights};
use keel_abi::{
    ARGS_LEN, Error, ExitStatus, NAME_LEN, PRIORITY_LEVELS, ProcessInfo, SpawnRequest, exit_kind,
    process_state, rights,
};

/// Largest ELF image `process_spawn` accepts (it is copied into the kernel heap).
const MAX_IMAGE: usize = 8 << 20;

pub fn spawn(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let caller = k.current_process();
    if !caller.has_right(rights::SPAWN) {
        return Err(Error::PermissionDenied);
    }
    let (parent, parent_rights, parent_priority) =
        (caller.id(), caller.rights(), caller.priority());
    let space = k.current_space();
    let request: SpawnRequest = args.user::<SpawnRequest>(0).read_value(space)?;
    if request.elf_len > MAX_IMAGE || request.name_len > NAME_LEN || request.args_len > ARGS_LEN {
        return Err(Error::InvalidArgument);
    }
    if request.priority >= PRIORITY_LEVELS {
        return Err(Error::InvalidArgument);
    }
    if request.priority > parent_priority || request.rights & !parent_rights != 0 {
        return Err(Error::PermissionDenied);
    }
    let mut name = [0u8; NAME_LEN];
    UserSlice::new(request.name_ptr, request.name_len)
        .read_into(space, &mut name[..request.name_len])?;
    let name =
        core::str::from_utf8(&name[..request.name_len]).map_err(|_| Error::InvalidArgument)?;
    let mut process_args = [0u8; ARGS_LEN];
    UserSlice::new(request.args_ptr, request.args_len)
        .read_into(space, &mut process_args[..request.args_len])?;
    let image = UserSlice::new(request.elf_ptr, request.elf_len).read_vec(space)?;
    let caps = granted_caps(k, parent, &request)?;
    let cpus = child_cpus(k, parent, request.cpus)?;
    let fault_handler = port_for_faults(k, parent, request.fault_handler)?;
    let pid = k.spawn_process(&SpawnSpec {
        parent,
        name,
        args: &process_args[..request.args_len],
        image: &image,
        priority: request.priority,
        rights: request.rights,
        modules: &[],
        caps: &caps,
        system_caps: false,
        limits: crate::proc::quota::Limits {
            frames: request.frames,
            processes: request.max_processes as usize,
            threads: request.max_threads as usize,
        },
        cpus,
    })?;
    // Before the syscall lets go of the kernel lock, and so before the child's first
    // instruction on any core.
    if let Some(child) = k.processes.get_mut(&pid) {
        child.set_fault_handler(fault_handler);
    }
    // The caller's capability to its child, handed back in the request.
    let granted = k
        .cap_create(
            parent,
            Object::Process(pid),
            cap_rights::MANAGE | cap_rights::READ | cap_rights::GRANT,
        )
        .and_then(|handle| {
            let out = UserSlice::of::<u32>(
                args.word(0) + core::mem::offset_of!(SpawnRequest, process_cap),
            );
            out.write_value(k.current_space(), &handle)
        });
    if let Err(error) = granted {
        // Without its capability the child could not be managed: it does not start.
        k.end_process(pid, crate::proc::exited(-1));
        k.reap(pid);
        return Err(error);
    }
    Ok(Next::Return(pid as usize))
}

/// The cores a spawn request gives the child: a subset of the parent's, 0 for all of them.
fn child_cpus(k: &Kernel, parent: Pid, asked: u32) -> Result<u8, Error> {
    let parent_cpus = k.processes.get(&parent).ok_or(Error::NotFound)?.cpus();
    match cpus_within(parent_cpus, asked as usize)? {
        0 => Ok(parent_cpus),
        asked => Ok(asked),
    }
}

/// `asked` (bit `n` for core `n`) checked against the cores a caller may use: a bit at or
/// above `MAX_CORES` is `InvalidArgument`, a core outside `allowed` `PermissionDenied`.
pub(super) fn cpus_within(allowed: u8, asked: usize) -> Result<u8, Error> {
    let asked = u8::try_from(asked).map_err(|_| Error::InvalidArgument)?;
    if asked & !allowed != 0 {
        return Err(Error::PermissionDenied);
    }
    Ok(asked)
}

/// The capabilities a spawn request hands down; each needs GRANT.
fn granted_caps(
    k: &mut Kernel,
    parent: Pid,
    request: &SpawnRequest,
) -> Result<heapless::Vec<Found, MAX_SPAWN_CAPS>, Error> {
    if request.caps_len > MAX_SPAWN_CAPS {
        return Err(Error::InvalidArgument);
    }
    let mut handles = [0u32; MAX_SPAWN_CAPS];
    let space = k.current_space();
    let bytes = UserSlice::new(request.caps_ptr, request.caps_len * 4);
    if request.caps_len > 0 {
        let mut raw = [0u8; MAX_SPAWN_CAPS * 4];
        bytes.read_into(space, &mut raw[..request.caps_len * 4])?;
        for (handle, chunk) in handles.iter_mut().zip(raw.chunks_exact(4)) {
            *handle = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
    }
    let mut caps = heapless::Vec::new();
    for &handle in &handles[..request.caps_len] {
        let cap = k.cap_check(parent, handle, None, cap_rights::GRANT)?;
        let _ = caps.push(cap);
    }
    Ok(caps)
}

pub fn fault_handler_set(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let pid = args.pid(0)?;
    let caller = k.current_pid();
    k.check_reach(caller, pid, cap_rights::MANAGE)?;
    let handler = port_for_faults(k, caller, args.optional_handle(1)?.unwrap_or(0))?;
    k.processes
        .get_mut(&pid)
        .ok_or(Error::NotFound)?
        .set_fault_handler(handler);
    Ok(Next::Return(0))
}

/// The port and badge faults go to through `caller`'s capability `handle` (0: none).
fn port_for_faults(
    k: &mut Kernel,
    caller: Pid,
    handle: Handle,
) -> Result<Option<(PortId, u64)>, Error> {
    if handle == 0 {
        return Ok(None);
    }
    let cap = k.cap_check(caller, handle, Some(cap_kind::PORT), cap_rights::SEND)?;
    match cap.object {
        Object::Port(port) => Ok(Some((port, cap.badge))),
        _ => Err(Error::WrongType),
    }
}

pub fn exit(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let pid = k.current_pid();
    k.end_process(pid, crate::proc::exited(args.word(0) as i64));
    Ok(Next::Gone)
}

/// The caller's child `pid`, or why not.
fn child_of(k: &Kernel, caller: Pid, pid: Pid) -> Result<&Process, Error> {
    let child = k.processes.get(&pid).ok_or(Error::NotFound)?;
    if child.parent() != caller {
        return Err(Error::NotChild);
    }
    Ok(child)
}

pub fn wait(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let pid = args.pid(0)?;
    let out = args.user::<ExitStatus>(1);
    let caller = k.current_pid();
    // Check the destination before waiting, so a bad pointer costs nothing.
    k.current_space()
        .check_access(args.word(1), out.len(), true)?;
    let child = child_of(k, caller, pid)?;
    if let Some(status) = child.exit_status() {
        out.write_value(k.current_space(), &status)?;
        k.reap(pid);
        return Ok(Next::Return(0));
    }
    // Woken when a child ends: look again.
    Ok(Next::Block {
        state: ThreadState::WaitingChild,
        then: Then::Restart,
    })
}

pub fn kill(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let pid = args.pid(0)?;
    let caller = k.current_pid();
    k.check_reach(caller, pid, cap_rights::MANAGE)?;
    let target = &k.processes[&pid];
    if target.is_zombie() {
        return Err(Error::NotFound);
    }
    crate::kprintln!(
        "process {} ({}) killed by process {}",
        pid,
        target.name(),
        caller
    );
    let status = ExitStatus {
        kind: exit_kind::KILLED,
        ..ExitStatus::default()
    };
    k.end_process(pid, status);
    // Killing an ancestor ends the caller too.
    if k.processes.get(&caller).is_none_or(|p| p.is_zombie()) {
        return Ok(Next::Gone);
    }
    Ok(Next::Return(0))
}

pub fn info(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    let pid = args.pid(0)?;
    k.check_reach(k.current_pid(), pid, cap_rights::READ)?;
    let process = &k.processes[&pid];
    let mut info = ProcessInfo::empty();
    info.pid = process.id();
    info.parent = process.parent();
    info.state = if process.is_zombie() {
        process_state::ZOMBIE
    } else {
        process_state::RUNNING
    };
    info.threads = process.threads().len() as u32;
    info.cpu_ticks = process.cpu_ticks();
    info.frames = process.space.as_ref().map_or(0, |s| s.frames()) as u64;
    info.priority = process.priority() as u32;
    info.rights = process.rights();
    info.cpus = u32::from(k.sched.usable(process.cpus()));
    for thread in process
        .threads()
        .iter()
        .filter_map(|tid| k.threads.get(tid))
    {
        let home = &mut info.homes[thread.home()];
        *home = home.saturating_add(1);
    }
    let name = process.name().as_bytes();
    info.name[..name.len()].copy_from_slice(name);
    info.name_len = name.len() as u32;
    args.user::<ProcessInfo>(1)
        .write_value(k.current_space(), &info)?;
    Ok(Next::Return(0))
}

pub fn list(k: &mut Kernel, args: &Args) -> Result<Next, Error> {
    // The whole buffer the caller declares must be writable, not just the part used now.
    let out = UserArray::<u32>::new(args.word(0), args.word(1));
    out.check(k.current_space())?;
    let caller = k.current_pid();
    let mut pids: alloc::vec::Vec<u32> = k
        .processes
        .keys()
        .filter(|&pid| k.check_reach(caller, pid, cap_rights::READ).is_ok())
        .collect();
    pids.sort_unstable();
    out.write(k.current_space(), &pids)?;
    Ok(Next::Return(pids.len()))
}
