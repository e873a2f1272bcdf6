//! The Keel kernel ABI: everything the kernel and user space must agree on, in one place.
//!
//! Syscall convention (x86_64 `syscall`): the syscall number goes in `rax`, arguments in
//! `rdi, rsi, rdx, r10, r8, r9`. The kernel returns a [`SyscallResult`] in `rax`: a value
//! `>= 0` is success, a negative value is `-(Error as isize)`. `rcx` and `r11` are clobbered
//! (the CPU uses them); every other register is preserved.
//!
//! The IPC calls that return a message ([`Syscall::PortRecv`], [`Syscall::PortCall`],
//! [`Syscall::PortReplyRecv`]) also overwrite `rdi` (badge), `rsi` ([`ipc::MessageInfo`]) and
//! `rdx, r10, r8, r9` (the four message words).
//!
//! User pointers handed to the kernel are checked against the caller's address space; a bad
//! one gets [`Error::BadAddress`], never a kernel fault.
#![no_std]

pub mod cap;
pub mod ipc;
pub mod layout;
pub mod thread;

/// Syscall numbers. One table in the kernel dispatches on these.
#[repr(usize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// `debug_write(ptr, len)`: write bytes to the kernel log (serial). Returns bytes written.
    DebugWrite = 0,
    /// `thread_create(entry, stack_top, arg, priority, cpus)`: start a thread in the caller's
    /// process. `entry(arg)` runs on `stack_top`, on one of `cpus` (bit `n` for core `n`;
    /// 0: any of its process's), checked as [`SpawnRequest::cpus`] is against the process's
    /// cores; the thread never moves. Returns a capability to the new thread (READ,
    /// MANAGE, GRANT), which goes when the thread ends.
    ThreadCreate = 1,
    /// `thread_exit(code)`: end the calling thread; the last thread's exit ends the process.
    ThreadExit = 2,
    /// `thread_yield()`: give up the rest of the time slice.
    ThreadYield = 3,
    /// `thread_sleep(nanoseconds)`: block for at least that long (rounded up to a tick).
    ThreadSleep = 4,
    /// `mem_map(addr, len, prot)`: map zeroed anonymous memory. `addr == 0` lets the kernel
    /// choose. Overlapping an existing mapping is [`Error::Exists`]. Returns the address.
    MemMap = 5,
    /// `mem_unmap(addr, len)`: unmap every page in the range (which may split mappings);
    /// a range with nothing mapped in it is [`Error::NotFound`].
    MemUnmap = 6,
    /// `mem_protect(addr, len, prot)`: change the protection of mapped pages; every page
    /// in the range must be mapped.
    MemProtect = 7,
    /// `process_spawn(&mut SpawnRequest)`: create a process from an ELF image in the caller's
    /// memory. Needs [`rights::SPAWN`]. Returns the pid, and writes the caller's new process
    /// capability to the child into `process_cap`.
    ProcessSpawn = 8,
    /// `process_exit(code)`: end the calling process.
    ProcessExit = 9,
    /// `process_wait(pid, &mut ExitStatus)`: wait for a child to end and reap it.
    ProcessWait = 10,
    /// `process_kill(pid)`: end process `pid`: the caller itself, one it holds a process
    /// capability to with [`cap::rights::MANAGE`], or any with [`rights::SYSTEM`].
    ProcessKill = 11,
    /// `sys_info(SysInfo)`: one system figure.
    SysInfo = 12,
    /// `process_info(pid, &mut ProcessInfo)`: a snapshot of one process: the caller, one it
    /// holds a process capability to with [`cap::rights::READ`], or any with
    /// [`rights::SYSTEM`] (else [`Error::PermissionDenied`]).
    ProcessInfo = 13,
    /// `process_list(&mut [u32], capacity)`: the live pids the caller may look into (as for
    /// `process_info`); returns how many there are.
    ProcessList = 14,
    /// `system_poweroff(code)`: power the machine off with an exit code. Needs [`rights::SYSTEM`].
    SystemPoweroff = 15,
    /// `cap_derive(handle, rights, badge)`: a new capability to the same object with at most
    /// `rights`, and `badge` if the original has none (0 = keep). Revoking the original
    /// removes it. Returns the new handle.
    CapDerive = 16,
    /// `cap_delete(handle)`: drop one capability (capabilities derived from it survive).
    CapDelete = 17,
    /// `cap_revoke(handle)`: delete every capability derived from this one, wherever it was
    /// sent, and undo their memory mappings. Returns how many were removed.
    CapRevoke = 18,
    /// `cap_info(handle, &mut cap::CapInfo)`.
    CapInfo = 19,
    /// `port_create(capacity)`: a port queueing at most `capacity` messages (1..=64).
    /// Returns a handle with every port right.
    PortCreate = 20,
    /// `port_send(port, info, w0, w1, w2, w3)`: queue a message without blocking; a full queue
    /// is [`Error::QueueFull`]. Needs [`cap::rights::SEND`] (and GRANT to carry capabilities).
    PortSend = 21,
    /// `port_recv(port, timeout_ns)`: wait for a message or notification (`timeout_ns` 0 polls,
    /// `u64::MAX` waits for ever). The message comes back in registers and the IPC buffer.
    /// Returns 1 when it is a call awaiting an answer (answer it with `port_reply_recv`, or
    /// keep it for later with `reply_save`), else 0. Needs [`cap::rights::RECEIVE`].
    PortRecv = 22,
    /// `port_call(port, info, w0, w1, w2, w3)`: send with a one-shot reply capability and
    /// wait for the reply, which comes back like a received message.
    PortCall = 23,
    /// `port_reply(reply, info, w0, w1, w2, w3)`: answer a call; uses up the reply capability.
    PortReply = 24,
    /// `port_reply_recv(port, info, w0, w1, w2, w3)`: answer the call this thread received
    /// last (if it has not answered it yet), then receive on `port`: a server loop's one syscall.
    PortReplyRecv = 25,
    /// `port_notify(port, bits)`: OR `bits` into the port's notification word and wake a
    /// receiver. Never blocks, never fills up. Needs [`cap::rights::SEND`].
    PortNotify = 26,
    /// `ipc_buffer_set(addr)`: the calling thread's IPC buffer ([`ipc::IpcBuffer`], one
    /// writable page) for payload bytes and capability handles.
    IpcBufferSet = 27,
    /// `mem_create(len)`: a memory object of zeroed frames. Returns a handle with every
    /// memory right.
    MemCreate = 28,
    /// `mem_map_object(handle, addr, prot)`: map a memory object (`addr` 0: kernel chooses).
    /// `prot` needs the matching MAP_* rights. Returns the address.
    MemMapObject = 29,
    /// `fault_handler_set(pid, port)`: faults of process `pid` (the caller, or one it holds a
    /// process capability to with MANAGE) are sent to `port` as messages; handle 0 removes
    /// the handler.
    FaultHandlerSet = 30,
    /// `ipc_stats(port, &mut ipc::IpcStats)`: one port's counters, or the whole system's for
    /// handle 0.
    IpcStats = 31,
    /// `audit_read(audit, &mut [cap::AuditRecord], capacity)`: the newest audit records.
    /// Needs an audit capability with [`cap::rights::READ`]. Returns how many were written.
    AuditRead = 32,
    /// `resources(&mut cap::Resources)`: the caller's quotas and what it uses of them.
    Resources = 33,
    /// `reply_save()`: move the call this thread received last into a reply capability, so
    /// it can be answered later with `port_reply`. Returns the handle.
    ReplySave = 34,
    /// `irq_create(irq)`: a capability to interrupt line `irq`: an ISA line (0..16) or a
    /// PCI INTx line, I/O APIC input 16..24 (level-triggered, active-low). Needs
    /// [`rights::SYSTEM`]: device capabilities are minted by the system, handed to drivers.
    IrqCreate = 35,
    /// `event_bind(source, port, bits)`: an event source notifies `port` with `bits`: an
    /// interrupt line (which stays masked after each interrupt until `irq_ack`), an MSI-X
    /// vector, or the
    /// kernel log (when bytes arrive while a driver owns the console). Needs the port's SEND
    /// right; port handle 0 unbinds.
    EventBind = 36,
    /// `irq_ack(irq)`: the driver has handled the interrupt; unmask the line (nothing for
    /// an MSI-X vector).
    IrqAck = 37,
    /// `ioport_create(base, len)`: a capability to I/O ports `base..base + len`. Needs
    /// [`rights::SYSTEM`].
    IoPortCreate = 38,
    /// `ioport_read(cap, port, width)`: read 1, 2 or 4 bytes from an I/O port the
    /// capability covers.
    IoPortRead = 39,
    /// `ioport_write(cap, port, width, value)`.
    IoPortWrite = 40,
    /// `log_read(log, buf, len)`: take bytes from the kernel log buffer (kernel messages
    /// and debug writes), which fills instead of the serial line while a driver owns the
    /// console's I/O ports. Needs a log capability with READ. Returns how many.
    LogRead = 41,
    /// `cap_list(pid, &mut [cap::CapEntry], capacity)`: the capabilities process `pid` holds
    /// (0: the caller). Another process's need [`rights::SYSTEM`] or a process capability to
    /// it with READ.
    /// Returns how many it holds; at most `capacity` are written.
    CapList = 42,
    /// `mem_create_dma(device, len)`: a memory object of physically contiguous, pinned
    /// frames for a device to read and write; `device` (an IRQ, MSI-X vector, I/O port,
    /// device memory or PCI configuration capability of the caller) shows a driver asks. The capability carries [`cap::rights::DMA`].
    MemCreateDma = 43,
    /// `mem_phys(memory, offset)`: the physical address of byte `offset` of a memory object,
    /// to program a device with. Needs [`cap::rights::DMA`].
    MemPhys = 44,
    /// `thread_info(thread, &mut thread::ThreadInfo)`: a snapshot of a thread. Needs
    /// [`cap::rights::READ`].
    ThreadInfo = 45,
    /// `thread_suspend(thread)`: the thread stops running until resumed: a ready one leaves
    /// the run queue, a blocked one stays blocked and does not run when woken (a message
    /// for it is kept). Needs [`cap::rights::MANAGE`].
    ThreadSuspend = 46,
    /// `thread_resume(thread)`: undo `thread_suspend`. Needs MANAGE.
    ThreadResume = 47,
    /// `thread_set_priority(thread, priority)`: at most its process's priority and the
    /// caller's. Needs MANAGE.
    ThreadSetPriority = 48,
    /// `thread_kill(thread)`: end the thread; the last thread of a process ends the process
    /// (as killed). Needs MANAGE.
    ThreadKill = 49,
    /// `thread_regs_read(thread, &mut thread::Registers)`: the registers of a thread stopped
    /// at a fault (else [`Error::NotStopped`]). Needs READ.
    ThreadRegsRead = 50,
    /// `thread_regs_write(thread, &thread::Registers)`: change them before its handler
    /// resumes it; rip must be in user space. Needs MANAGE.
    ThreadRegsWrite = 51,
    /// `port_signal_recv(signal, bits, port, timeout_ns)`: notify `signal` with `bits` and
    /// wait on `port` as `port_recv` does, in one step: "signal and wait". When the
    /// notification wakes a thread waiting on `signal` whose priority is at least the
    /// caller's, the CPU passes straight to it. Needs [`cap::rights::SEND`] on `signal` and
    /// [`cap::rights::RECEIVE`] on `port`; nothing is sent if either check fails.
    PortSignalRecv = 52,
    /// `mem_create_device(phys, len)`: a memory object over device registers (MMIO)
    /// `[phys, phys + len)`, page-aligned, mapped uncached. Needs [`rights::SYSTEM`]; a range
    /// that overlaps RAM, firmware tables or the first MiB is `InvalidArgument`. The
    /// capability carries MAP_READ, MAP_WRITE, GRANT and [`cap::rights::DMA`] (`mem_phys`
    /// tells a driver which registers it holds), and shows a driver asks for
    /// `mem_create_dma`. Costs no frames.
    MemCreateDevice = 53,
    /// `pci_config_create(function)`: a capability to PCI function `function`'s
    /// configuration space (`bus << 8 | device << 3 | function`), or to every function's
    /// with [`pci::ALL_FUNCTIONS`], reached through the kernel (the legacy 0xcf8/0xcfc
    /// mechanism, for machines without ECAM). Needs [`rights::SYSTEM`].
    PciConfigCreate = 54,
    /// `pci_config_read(cap, address, width)`: read 1, 2 or 4 bytes of configuration
    /// space at `address` ([`pci::address`]), a function the capability covers
    /// (`MissingRight` otherwise), a register below [`pci::LEGACY_SIZE`] aligned to `width`.
    PciConfigRead = 55,
    /// `pci_config_write(cap, address, width, value)`, checked as `pci_config_read`.
    PciConfigWrite = 56,
    /// `msi_create()`: a capability to a free MSI-X vector, bound like an interrupt line
    /// (`event_bind`); each interrupt notifies and needs no `irq_ack` (a no-op for it). The
    /// vector is free again when its last capability goes. Needs [`rights::SYSTEM`];
    /// `QuotaExceeded` when none is free.
    MsiCreate = 57,
    /// `msi_message(vector)`: what the function's MSI-X table entry must hold to raise the
    /// vector: the message address in bits 0..32, the data in bits 32..64.
    MsiMessage = 58,
    /// `dma_release(pid)`: the device of ended process `pid` is stopped (its bus mastering
    /// off): free the DMA memory it made, which the kernel holds from the moment a process
    /// that made DMA memory ends, since its device could still write it. Needs
    /// [`rights::SYSTEM`]. Returns how many frames it freed (0 when nothing was held).
    DmaRelease = 59,
    /// `pci_bar_size(function, bar)`: the size of BAR `bar` (0..6) of PCI function
    /// `function` (`bus << 8 | device << 3 | function`), as the kernel measured it at boot
    /// before the other cores started (sizing moves the BAR); `NotFound` for none. Needs
    /// [`rights::SYSTEM`].
    PciBarSize = 60,
}

impl Syscall {
    pub const COUNT: usize = 61;

    pub fn from_raw(n: usize) -> Option<Self> {
        use Syscall::*;
        static ALL: [Syscall; Syscall::COUNT] = [
            DebugWrite,
            ThreadCreate,
            ThreadExit,
            ThreadYield,
            ThreadSleep,
            MemMap,
            MemUnmap,
            MemProtect,
            ProcessSpawn,
            ProcessExit,
            ProcessWait,
            ProcessKill,
            SysInfo,
            ProcessInfo,
            ProcessList,
            SystemPoweroff,
            CapDerive,
            CapDelete,
            CapRevoke,
            CapInfo,
            PortCreate,
            PortSend,
            PortRecv,
            PortCall,
            PortReply,
            PortReplyRecv,
            PortNotify,
            IpcBufferSet,
            MemCreate,
            MemMapObject,
            FaultHandlerSet,
            IpcStats,
            AuditRead,
            Resources,
            ReplySave,
            IrqCreate,
            EventBind,
            IrqAck,
            IoPortCreate,
            IoPortRead,
            IoPortWrite,
            LogRead,
            CapList,
            MemCreateDma,
            MemPhys,
            ThreadInfo,
            ThreadSuspend,
            ThreadResume,
            ThreadSetPriority,
            ThreadKill,
            ThreadRegsRead,
            ThreadRegsWrite,
            PortSignalRecv,
            MemCreateDevice,
            PciConfigCreate,
            PciConfigRead,
            PciConfigWrite,
            MsiCreate,
            MsiMessage,
            DmaRelease,
            PciBarSize,
        ];
        ALL.get(n).copied()
    }
}

/// Every way a syscall can fail. Values are stable: they cross the ABI negated in `rax`.
#[repr(isize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No syscall has this number.
    InvalidSyscall = 1,
    /// A pointer (or pointer + length) is not mapped user memory with the access needed.
    BadAddress = 2,
    /// An argument is out of range: unaligned address, zero or huge length, unknown flag.
    InvalidArgument = 3,
    /// No physical memory (or kernel memory) left for the request.
    OutOfMemory = 4,
    /// The range overlaps an existing mapping.
    Exists = 5,
    /// No such process, thread or mapping.
    NotFound = 6,
    /// The caller lacks the right for this operation.
    PermissionDenied = 7,
    /// The ELF image is malformed or unsupported.
    BadElf = 8,
    /// The caller has reached one of its limits (threads, mappings, children).
    QuotaExceeded = 9,
    /// The pid names a process that is not the caller's child.
    NotChild = 10,
    /// Writable and executable at once: refused (W^X).
    WriteExecute = 11,
    /// The handle never named a capability of the caller (out of range, never issued).
    InvalidHandle = 12,
    /// The handle named a capability that has since been deleted or revoked.
    StaleHandle = 13,
    /// The capability is of another kind than the call needs.
    WrongType = 14,
    /// The capability lacks a right the call needs.
    MissingRight = 15,
    /// The port's queue is full; nothing was sent.
    QueueFull = 16,
    /// A wait ran out of time.
    TimedOut = 17,
    /// The other side is gone: the port's last receiver, the caller awaiting a reply, or the
    /// server holding a call's reply capability.
    PeerGone = 18,
    /// A poll found nothing.
    WouldBlock = 19,
    /// The thread is not stopped at a fault, so its registers are not all at hand.
    NotStopped = 20,
}

impl Error {
    pub fn from_raw(code: isize) -> Option<Self> {
        use Error::*;
        Some(match code {
            1 => InvalidSyscall,
            2 => BadAddress,
            3 => InvalidArgument,
            4 => OutOfMemory,
            5 => Exists,
            6 => NotFound,
            7 => PermissionDenied,
            8 => BadElf,
            9 => QuotaExceeded,
            10 => NotChild,
            11 => WriteExecute,
            12 => InvalidHandle,
            13 => StaleHandle,
            14 => WrongType,
            15 => MissingRight,
            16 => QueueFull,
            17 => TimedOut,
            18 => PeerGone,
            19 => WouldBlock,
            20 => NotStopped,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use Error::*;
        match self {
            InvalidSyscall => "invalid syscall",
            BadAddress => "bad address",
            InvalidArgument => "invalid argument",
            OutOfMemory => "out of memory",
            Exists => "range overlaps an existing mapping",
            NotFound => "not found",
            PermissionDenied => "permission denied",
            BadElf => "bad ELF image",
            QuotaExceeded => "quota exceeded",
            NotChild => "not a child of the caller",
            WriteExecute => "writable and executable at once (W^X)",
            InvalidHandle => "invalid capability handle",
            StaleHandle => "capability deleted or revoked",
            WrongType => "capability of the wrong kind",
            MissingRight => "capability lacks the right",
            QueueFull => "port queue full",
            TimedOut => "timed out",
            PeerGone => "the other side is gone",
            WouldBlock => "nothing to receive",
            NotStopped => "thread not stopped at a fault",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a syscall returns in `rax`.
pub type SyscallResult = Result<usize, Error>;

/// Encode a result for `rax`.
pub fn encode_result(result: SyscallResult) -> usize {
    match result {
        Ok(value) => value,
        Err(error) => (-(error as isize)) as usize,
    }
}

/// Decode `rax` after a syscall.
pub fn decode_result(raw: usize) -> SyscallResult {
    let signed = raw as isize;
    if signed >= 0 {
        Ok(raw)
    } else {
        Err(Error::from_raw(-signed).unwrap_or(Error::InvalidArgument))
    }
}

/// Memory protection bits for `mem_map` and `mem_protect`.
/// PCI configuration space through the kernel (`pci_config_*`).
pub mod pci {
    /// The function a `pci_config_create` capability names for all of them (enumeration).
    pub const ALL_FUNCTIONS: usize = 1 << 16;
    /// Bytes of configuration space per function the legacy mechanism reaches.
    pub const LEGACY_SIZE: usize = 256;

    /// Where register `register` of `function` (`bus << 8 | device << 3 | function`) is,
    /// as `pci_config_read` and `pci_config_write` take it: its ECAM offset.
    pub const fn address(function: u16, register: usize) -> usize {
        (function as usize) << 12 | register
    }
}

pub mod prot {
    pub const READ: usize = 1;
    pub const WRITE: usize = 2;
    pub const EXEC: usize = 4;
    pub const ALL: usize = READ | WRITE | EXEC;
}

/// Process-wide rights, fixed at spawn: a child gets at most its parent's.
pub mod rights {
    /// May create processes.
    pub const SPAWN: u32 = 1;
    /// May kill any process, read any process's details and power the machine off.
    pub const SYSTEM: u32 = 2;
    pub const ALL: u32 = SPAWN | SYSTEM;
}

/// Values for `system_poweroff`, as QEMU's `isa-debug-exit` device sees them: QEMU exits
/// with status `(value << 1) | 1`, so success is status 33 and nothing else is.
pub mod poweroff {
    pub const SUCCESS: u32 = 0x10;
    pub const FAILURE: u32 = 0x11;
    /// Written by the kernel itself when it panics.
    pub const KERNEL_PANIC: u32 = 0x1f;
    /// QEMU's exit status for [`SUCCESS`].
    pub const SUCCESS_STATUS: i32 = ((SUCCESS << 1) | 1) as i32;
}

/// Priorities: higher runs first; equal priorities share the CPU round-robin.
pub const PRIORITY_LEVELS: usize = 32;
pub const PRIORITY_DEFAULT: usize = 8;

/// The figures `sys_info` returns.
#[repr(usize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysInfo {
    Pid = 0,
    Tid = 1,
    /// Timer ticks since boot.
    Ticks = 2,
    /// Timer ticks per second.
    TickHz = 3,
    FreeFrames = 4,
    TotalFrames = 5,
    /// Live processes.
    Processes = 6,
    /// Threads in the system, the idle thread included (leak audits).
    Threads = 7,
    /// Ports in the system.
    Ports = 8,
    /// Memory objects in the system.
    MemoryObjects = 9,
    /// Capabilities in the system, those travelling in messages included.
    Capabilities = 10,
    /// TSC cycles the CPU has spent halted in the idle loop since boot: under icount the
    /// TSC runs on while the CPU waits for a device, so a benchmark subtracts this.
    IdleTsc = 11,
    /// The physical address of PCI bus 0's configuration space (ECAM, from the ACPI
    /// MCFG); 0 when the firmware describes none.
    PciEcam = 12,
    /// How many buses the ECAM window covers (0 without one).
    PciBuses = 13,
    /// How many cores run.
    Cores = 14,
    /// The caller's core: its home, which it never leaves.
    Core = 15,
    /// How often since boot a core found the kernel lock held and waited for it.
    LockWaits = 16,
    /// TSC cycles cores have spent waiting for the kernel lock since boot.
    LockWaitTsc = 17,
}

impl SysInfo {
    /// How many figures there are: numbers from this on are unknown.
    pub const COUNT: usize = 18;

    pub fn from_raw(n: usize) -> Option<Self> {
        use SysInfo::*;
        const ALL: [SysInfo; SysInfo::COUNT] = [
            Pid,
            Tid,
            Ticks,
            TickHz,
            FreeFrames,
            TotalFrames,
            Processes,
            Threads,
            Ports,
            MemoryObjects,
            Capabilities,
            IdleTsc,
            PciEcam,
            PciBuses,
            Cores,
            Core,
            LockWaits,
            LockWaitTsc,
        ];
        ALL.get(n).copied()
    }
}

/// Argument of `process_spawn`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SpawnRequest {
    pub elf_ptr: usize,
    pub elf_len: usize,
    /// The child's name (shown by `ps`); at most [`NAME_LEN`] bytes.
    pub name_ptr: usize,
    pub name_len: usize,
    /// Argument string handed to the child's `main`; at most [`ARGS_LEN`] bytes.
    pub args_ptr: usize,
    pub args_len: usize,
    /// At most the caller's own priority.
    pub priority: usize,
    /// A subset of the caller's rights.
    pub rights: u32,
    /// Written by the kernel: the caller's new capability to the child (MANAGE, READ,
    /// GRANT). It goes when the child is reaped.
    pub process_cap: u32,
    /// Capability handles (`u32` each, at most [`cap::MAX_SPAWN_CAPS`]) the child receives as
    /// copies derived from the caller's; in the child they are handles `1..=caps_len`.
    /// Carrying capabilities needs the GRANT right on each.
    pub caps_ptr: usize,
    pub caps_len: usize,
    /// Frames of user memory the child may hold (its pages and page tables, the memory
    /// objects it makes, what it carves for its own children), carved from the caller's
    /// quota until the child ends; 0: [`DEFAULT_CHILD_FRAMES`]. More than the caller has
    /// left is `QuotaExceeded`.
    pub frames: usize,
    /// How many processes may descend from the child at once (children, their children,
    /// ..., zombies included); 0: [`DEFAULT_MAX_PROCESSES`], or the caller's own limit if
    /// lower. More than the caller's own limit is `PermissionDenied`.
    pub max_processes: u32,
    /// How many threads the child may have at once; 0: [`MAX_THREADS`], or the caller's
    /// own limit if lower. More than the caller's own limit is `PermissionDenied`.
    pub max_threads: u32,
    /// The cores the child's threads may run on, bit `n` for core `n` (below
    /// [`MAX_CORES`]); 0: the caller's. A bit at or above `MAX_CORES` is `InvalidArgument`,
    /// a core the caller may not use `PermissionDenied`. Cores the machine lacks are left
    /// out; if none named is there, the child uses the caller's.
    pub cpus: u32,
    /// A port capability (SEND) the child's faults go to from its first instruction, as
    /// `fault_handler_set` would send them (with its badge); 0: none. Set here, not after
    /// the spawn: on another core the child may fault before the parent's next syscall.
    pub fault_handler: u32,
}

/// Cores the kernel runs at most; core numbers are `0..MAX_CORES`.
pub const MAX_CORES: usize = 8;

/// Frames of user memory a child gets unless its parent says otherwise: 16 MiB.
pub const DEFAULT_CHILD_FRAMES: usize = 4096;
/// Descendants a process may have at once unless its parent says otherwise.
pub const DEFAULT_MAX_PROCESSES: u32 = 16;
/// Processes (zombies included) the whole system may hold at once.
pub const PROCESS_TABLE_SIZE: usize = 256;
/// Threads a process may have at once, and the default a parent may lower.
pub const MAX_THREADS: u32 = 64;

pub const NAME_LEN: usize = 32;
pub const ARGS_LEN: usize = 1024;

/// How a process ended, written by `process_wait`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitStatus {
    /// One of [`exit_kind`].
    pub kind: u32,
    /// For a fault: the CPU exception vector.
    pub vector: u32,
    /// For an exit: the exit code. For a fault: the error code.
    pub code: i64,
    /// For a fault: the faulting instruction.
    pub rip: u64,
    /// For a page fault: the address touched (CR2).
    pub address: u64,
}

pub mod exit_kind {
    pub const EXITED: u32 = 0;
    pub const FAULTED: u32 = 1;
    pub const KILLED: u32 = 2;
}

/// CPU exception vectors that user programs can cause.
pub mod vector {
    pub const DIVIDE_ERROR: u32 = 0;
    pub const BREAKPOINT: u32 = 3;
    pub const INVALID_OPCODE: u32 = 6;
    pub const GENERAL_PROTECTION: u32 = 13;
    pub const PAGE_FAULT: u32 = 14;
}

/// A snapshot of one process, written by `process_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcessInfo {
    pub pid: u32,
    pub parent: u32,
    /// One of [`process_state`].
    pub state: u32,
    pub threads: u32,
    /// Timer ticks spent running its threads.
    pub cpu_ticks: u64,
    /// Frames mapped in its address space (data and page tables).
    pub frames: u64,
    pub priority: u32,
    pub rights: u32,
    pub name_len: u32,
    /// The cores its threads run on, bit `n` for core `n`.
    pub cpus: u32,
    /// How many of its threads are at home on each core (a thread runs only at home).
    pub homes: [u8; MAX_CORES],
    pub name: [u8; NAME_LEN],
}

impl ProcessInfo {
    pub const fn empty() -> Self {
        ProcessInfo {
            pid: 0,
            parent: 0,
            state: 0,
            threads: 0,
            cpu_ticks: 0,
            frames: 0,
            priority: 0,
            rights: 0,
            name_len: 0,
            cpus: 0,
            homes: [0; MAX_CORES],
            name: [0; NAME_LEN],
        }
    }

    pub fn name(&self) -> &str {
        let len = (self.name_len as usize).min(NAME_LEN);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

pub mod process_state {
    pub const RUNNING: u32 = 0;
    /// Ended, waiting for its parent to reap it.
    pub const ZOMBIE: u32 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip_through_rax() {
        for value in [0usize, 1, 4096, isize::MAX as usize] {
            assert_eq!(decode_result(encode_result(Ok(value))), Ok(value));
        }
        for code in 1..=20 {
            let error = Error::from_raw(code).unwrap();
            assert_eq!(decode_result(encode_result(Err(error))), Err(error));
        }
    }

    #[test]
    fn syscall_numbers_are_dense_and_stable() {
        for n in 0..Syscall::COUNT {
            assert_eq!(Syscall::from_raw(n).map(|s| s as usize), Some(n));
        }
        assert_eq!(Syscall::from_raw(Syscall::COUNT), None);
    }

    #[test]
    fn sys_info_figures_are_dense_and_stable() {
        for n in 0..SysInfo::COUNT {
            assert_eq!(SysInfo::from_raw(n).map(|f| f as usize), Some(n));
        }
        assert_eq!(SysInfo::from_raw(SysInfo::COUNT), None);
    }

    #[test]
    fn abi_structs_have_fixed_layouts() {
        assert_eq!(core::mem::size_of::<SpawnRequest>(), 104);
        assert_eq!(core::mem::size_of::<ExitStatus>(), 32);
        assert_eq!(core::mem::size_of::<ProcessInfo>(), 88);
        assert_eq!(
            core::mem::size_of::<layout::StartInfo>(),
            layout::START_INFO_SIZE
        );
        assert_eq!(core::mem::size_of::<ipc::IpcBuffer>(), layout::PAGE_SIZE);
        assert_eq!(core::mem::size_of::<ipc::IpcStats>(), 80);
        assert_eq!(core::mem::size_of::<cap::CapInfo>(), 32);
        assert_eq!(core::mem::size_of::<cap::AuditRecord>(), 32);
        assert_eq!(core::mem::size_of::<cap::Resources>(), 48);
        assert_eq!(core::mem::size_of::<cap::CapEntry>(), 40);
        assert_eq!(core::mem::size_of::<thread::ThreadInfo>(), 32);
        assert_eq!(core::mem::size_of::<thread::Registers>(), 144);
    }

    #[test]
    fn message_info_packs_label_length_and_caps() {
        let info = ipc::MessageInfo::new(0xdead_beef, 4032, 4);
        assert_eq!(
            (info.label(), info.payload_len(), info.caps()),
            (0xdead_beef, 4032, 4)
        );
        assert!(!info.is_notification() && !info.caps_dropped() && !info.payload_dropped());
    }

    #[test]
    fn handles_carry_index_and_generation() {
        let handle = cap::make_handle(513, 7);
        assert_eq!(cap::handle_parts(handle), (513, 7));
        assert_ne!(cap::make_handle(1, 0), cap::make_handle(1, 1));
    }
}
