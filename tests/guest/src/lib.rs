//! What `ktest` and `kchild` agree on: the roles `kchild` plays, the fixed addresses it uses
//! and the exit codes it reports with.
//!
//! `kchild ROLE [ARG]` is started by `ktest` for anything that must happen in another
//! process: faults that end it, spinning while `ktest` watches, checks under fewer rights,
//! the other end of a port or a shared page. Roles that need capabilities get them with
//! the spawn, as handles `1..`; each role's doc says which.
#![no_std]

extern crate alloc;

pub mod chaos;
pub mod hostile;
pub mod services;
pub mod system;

use keel_abi::Error;

macro_rules! roles {
    ($($(#[doc = $doc:literal])* $role:ident = $name:literal,)*) => {
        /// A job for `kchild`, named by its first argument.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Role {
            $($(#[doc = $doc])* $role,)*
        }

        impl Role {
            /// The role's name on the command line.
            pub fn name(self) -> &'static str {
                match self {
                    $(Role::$role => $name,)*
                }
            }

            /// The role called `name`.
            pub fn parse(name: &str) -> Option<Role> {
                match name {
                    $($name => Some(Role::$role),)*
                    _ => None,
                }
            }
        }
    };
}

roles! {
    /// `loop {}` with no syscalls at all, until killed.
    Spin = "spin",
    /// Exit with the code given as the argument.
    Exit = "exit",
    /// Exit with the number of the core it runs on.
    Core = "core",
    /// Panic (the runtime exits with 101).
    Panic = "panic",
    /// Start a thread that exits with 7 after 50 ms, then end the main thread with 3.
    LastThreadExits = "last-thread-exits",
    /// With no rights: try to spawn, power off, kill and list the capabilities of the pid
    /// given as the argument; report the four results with [`encode_results`].
    NoRights = "no-rights",
    /// With no rights (caps: maybe 1 = a process capability): look into the pid given as
    /// the argument with `process_info`, into itself, and whether `process_list` names
    /// that pid (`NotFound` if not); report the three results with [`encode_results`].
    Snoop = "snoop",
    /// Caps: 1 = a memory object (a page). Make random syscalls with edge-case arguments
    /// (the argument seeds them), all but those that would end it or unmap its memory,
    /// counting them in word 0 of the page, until killed.
    Fuzz = "fuzz",
    /// Read [`UNMAPPED_ADDR`].
    ReadUnmapped = "read-unmapped",
    /// Read [`KERNEL_ADDR`].
    ReadKernel = "read-kernel",
    /// Write [`KERNEL_ADDR`].
    WriteKernel = "write-kernel",
    /// Execute `hlt`.
    Halt = "hlt",
    /// Execute `cli`.
    DisableInterrupts = "cli",
    /// Execute `mov %rax, %cr3`.
    WriteCr3 = "write-cr3",
    /// Execute `out %al, $0x80`.
    PortOut = "port-out",
    /// Execute `ud2`.
    Ud2 = "ud2",
    /// Execute `int3`.
    Int3 = "int3",
    /// Divide by zero with `div`.
    DivideByZero = "divide-by-zero",
    /// Map [`SCRATCH_ADDR`] read-write, put a `ret` there and call it.
    ExecuteData = "execute-data",
    /// Write a byte at `_start` (the ELF entry point).
    WriteCode = "write-code",
    /// Write a byte to the clock page ([`keel_abi::layout::CLOCK_ADDR`]).
    WriteClock = "write-clock",
    /// Map a page at [`SCRATCH_ADDR`], use it, unmap it, read it again.
    TouchAfterUnmap = "touch-after-unmap",
    /// Map three pages at [`SCRATCH_ADDR`], unmap the middle one, check both ends still
    /// hold their data, then read the middle one.
    SplitUnmap = "split-unmap",
    /// Map a page at [`SCRATCH_ADDR`], write it, make it read-only, check a read, then write.
    WriteAfterProtect = "write-after-protect",
    /// Recurse on a second thread until its stack runs into the runtime's guard page.
    ThreadStackOverflow = "thread-stack-overflow",
    /// Caps: 1 = a port to send on. Send one message, label [`label::SENT`] and word 0 the
    /// argument (a number).
    Send = "send",
    /// Caps: 1 = a port to serve. Answer each call with its words plus one, until killed.
    Echo = "echo",
    /// Caps: 1 = a port to serve (A), 2 = a port to call (B). Answer each call on A with
    /// the answer B gives to the same words, plus one, until killed.
    Forward = "forward",
    /// Caps: 1 = a port to wait on (A), 2 = a port to signal (B). Wait on A; answer each
    /// notification's bits, rotated left by one, on B with `port_signal_recv`, waiting on A
    /// again in the same step; until killed.
    SignalEcho = "signal-echo",
    /// With the argument `SEED ROUNDS`: put SEED + i in xmm i (all sixteen), then for
    /// ROUNDS rounds yield, spin, step an f64 series held in xmm15 with mulsd and addsd,
    /// and check the other fifteen (and ymm12's upper half, where AVX is on); exit 0 if
    /// they always held and the series equals the same series computed in (soft-float)
    /// Rust, else 1.
    XmmKeeper = "xmm-keeper",
    /// Caps: 1 = a port to serve. Take one call and exit without answering it.
    ExitMidCall = "exit-mid-call",
    /// Caps: 1 = a device capability. Make a [`DMA_HOLDER_PAGES`]-page DMA buffer, write
    /// every page, and exit still holding it.
    DmaHolder = "dma-holder",
    /// Caps: 1 = a port to serve. Take one call and sleep until killed.
    HoldCall = "hold-call",
    /// Caps: 1 = a port to serve. Take two calls, save the first one's reply, answer the
    /// second, then the first (each with its words plus one); check that the reply
    /// capability is then used up.
    DeferredReply = "deferred-reply",
    /// Caps: 1 = a port. Call it once, whatever the answer.
    Call = "call",
    /// Caps: 1 = a port with RECEIVE. Receive a message whose payload is the argument and
    /// which carries a memory object; map the object and copy the payload into it.
    MapReceived = "map-received",
    /// Caps: 1 = a port to flood, 2 = a port to report on. Send until `QueueFull` (then
    /// notify [`FLOOD_QUEUE_FULL`]), derive capabilities until `QuotaExceeded` (then
    /// notify [`FLOOD_QUOTA_EXCEEDED`]), and keep trying both until killed.
    Flood = "flood",
    /// Caps: 1 = a port P (SEND, GRANT), 2 = a port X (SEND, GRANT). Derive two copies of
    /// P and send each in a message on X; report [`label::RELAY_READY`] on P; once P is
    /// revoked, check that P and both copies are stale.
    Relay = "relay",
    /// Caps: 1 = a port X (RECEIVE). Take the port capability the first message on X
    /// carries and report [`label::HOLDER_READY`] through it; once it is revoked, check it
    /// is stale and that the next message on X brings no usable capability.
    Holder = "holder",
    /// Caps: 1 = a memory object (a page), 2 = a port to report on. Map the object at
    /// [`SCRATCH_ADDR`], check word 0 is [`SHARED_BY_PARENT`], write [`SHARED_BY_CHILD`]
    /// to word 1, report [`label::SHARED`], then read word 0 every millisecond until that
    /// faults.
    SharePage = "share-page",
    /// Be its own fault handler: a second thread reads [`SCRATCH_ADDR`], unmapped; the main
    /// thread takes the fault message, checks it, maps the page holding
    /// [`SHARED_BY_PARENT`] and resumes the thread, which must then read that value.
    FaultResume = "fault-resume",
    /// Put [`FAULT_RAX`] in rax and [`FAULT_R12`] in r12 and execute `ud2` (two bytes long);
    /// if resumed, exit with the low 32 bits of what rax then holds.
    FaultRegisters = "fault-registers",
    /// Start a thread, then through its capability set its priority to this process's
    /// plus one, then to this process's; report the two results with [`encode_results`].
    RaisePriority = "raise-priority",
    /// Run on core 0 alone (spawned so): start a thread on core 1, then on core 0; report
    /// the two results with [`encode_results`].
    ThreadCores = "thread-cores",
    /// A thread on the next core writes a page in a loop while this one unmaps it, 50
    /// times: no write may land once the unmap returned, the next one faults (to this
    /// process's own handler, which maps the page again and resumes it). Exits with 0.
    UnmapAcross = "unmap-across",
    /// Read the audit log through handle 1; report the result with [`encode_results`].
    ReadAudit = "read-audit",
    /// Caps: 1 = a bootstrap port. Announce this process's port through it
    /// (`keel_rt::bootstrap`), then serve [`services::Probe`] until killed.
    ProbeServer = "probe-server",
    /// Caps: 1 = a [`services::Probe`] server's port. Connect, start a `stall` call, and
    /// exit with it in flight (with the argument `linger`: wait to be killed).
    ProbeClientDies = "probe-client-dies",
    /// Caps: 1 = a [`services::Probe`] server's port. Connect by hand ([`hostile`]) handing
    /// over the server's own port as this process's wake port, then exit with the
    /// connection open.
    ProbeClientBorrows = "probe-client-borrows",
    /// Caps: 1 = a [`services::Probe`] server's port. Connect, call `echo(11)`, and exit
    /// with 0 when the answer is right.
    ProbeEcho = "probe-echo",
    /// Caps: 1 = a service's port; the argument seeds it (and may name, after the seed,
    /// the lowest method id its requests call). Do to the service all a
    /// hostile client can ([`hostile`]): garbage records, bogus and unaligned counters in
    /// both rings, huge lengths, forged capabilities, answers never read, connect storms;
    /// a bounded number of rounds, then exit 0.
    RingFuzz = "ring-fuzz",
    /// Caps: 1 = the console's port. Connect, start a `read_line`, and exit with it
    /// waiting for a line.
    ConsoleReaderDies = "console-reader-dies",
    /// Started by the supervisor (handle 1: init's port). Register the argument as a
    /// service name and serve [`system::Witness`] under it until killed.
    WitnessServer = "witness-server",
    /// Started by the supervisor; may connect to `witness` and `steady` and kill. With
    /// calls to `witness` in flight, have it killed; check those calls fail within
    /// [`system::CALLS_FAIL_WITHIN`], that a lookup finds its new start within
    /// [`system::RESTARTED_WITHIN`], and that `steady` answered throughout, unchanged.
    WitnessCaller = "witness-caller",
    /// Started by the supervisor; may connect to `witness` and kill. With a client made by
    /// name, have the witness killed; check that a call of a method that is not idempotent
    /// then fails with `ServerGone`, that an idempotent one reconnects by name and reaches
    /// the new start within [`system::RESTARTED_WITHIN`], and that the client's clones
    /// share the new connection; then that an idempotent call whose server is killed, and
    /// whose next server is killed too while holding the call, reaches the third.
    WitnessRetrier = "witness-retrier",
    /// Started by the supervisor with no grants. Check that every request but `LIST` is
    /// refused (lookups of the argument and of a name nobody has, and the process and
    /// capability listings, included), that minting
    /// device capabilities is `PermissionDenied`, and that it holds handle 1 alone.
    Outsider = "outsider",
    /// Argument `ROUNDS CHAIN CYCLES`. CYCLES times: two ports A and B, each queue holding
    /// the only capability to the other (A's also a 64 KiB memory object), all handles
    /// deleted. ROUNDS times: create a port P and a 64 KiB memory object M, send `[P, M]`
    /// on P itself, delete both handles. Then a chain of CHAIN ports, each queue holding the
    /// only capability to itself and to the one before (the first: to a memory object), all
    /// handles deleted. Exit 0; nothing is left to receive anything.
    SelfQueuedPort = "self-queued-port",
    /// Map one page in each 512 GiB of the address space (three page tables each) until a
    /// map fails; check it failed with `QuotaExceeded` and that the kernel bytes held never
    /// passed the limit; unmap them all and check a map succeeds again.
    SparseMaps = "sparse-maps",
    /// Sleep until killed.
    Idle = "idle",
    /// Caps: 1 = a memory object holding `kchild`'s image, 2 = a port to report on.
    /// Argument `IMAGE_LEN LIMIT`, LIMIT its own process limit. With the SPAWN right: spawn
    /// a child asking for LIMIT + 1 descendants, then `idle` children (2 MiB each) until a
    /// spawn fails; report [`encode_results`] of those two spawns in word 0 and how many
    /// children it has in word 1; sleep until killed.
    Breeder = "breeder",
    /// Caps: 1 = a memory object holding `kchild`'s image, 2 = a port to report on.
    /// Argument `IMAGE_LEN DEPTH`. With the SPAWN right: map 1 MiB at a time until a map
    /// fails, then, if DEPTH > 0, spawn a hog of DEPTH - 1 with the same caps and right;
    /// report [`encode_results`] of the failed map and the spawn in word 0, the MiB mapped
    /// in word 1; sleep until killed.
    Hog = "hog",
    /// Started by the supervisor; argument `FRAMES THREADS`, what its manifest entry sets.
    /// Check its frame quota is FRAMES and that it can have THREADS threads and no more.
    Limited = "limited",
    /// Started by the supervisor with I/O ports 0x2f8+8, IRQ 3 and the kernel log. Check
    /// it holds exactly those, in that order after handle 1, and what they allow.
    Granted = "granted",
    /// Started by the supervisor with the PCI function of the SATA controller (8086:2922).
    /// The argument: its configuration page's physical address, then the virtio disk's
    /// configuration page and BAR 4, in hex. Check it holds exactly its own page and can
    /// reach neither ECAM at large, nor the disk's registers, nor another interrupt line.
    PciConfined = "pci-confined",
    /// Started by the supervisor, may connect to `fs`. Argument a path: begin a session with
    /// the file service, open (creating) the file, and sleep until killed.
    FilesHolder = "files-holder",
    /// Started by the supervisor on the chaos manifest; argument a [`chaos::Plan`], may
    /// kill and connect to every victim. Load every victim it has a workload for while
    /// killing a random running victim every few milliseconds, KILLS times; then read back
    /// every acknowledged write. Print the figures and every failure (which call, after
    /// which kill); exit 0 only if no idempotent call failed and no write was lost.
    Chaos = "chaos",
}

/// Message labels the roles use.
pub mod label {
    /// [`Role::Send`]'s message.
    pub const SENT: u32 = 0x5e4d;
    /// [`Role::Relay`] has passed on its copies.
    pub const RELAY_READY: u32 = 0x7e1a;
    /// [`Role::Holder`] holds the copy it was passed.
    pub const HOLDER_READY: u32 = 0x401d;
    /// [`Role::SharePage`] has checked and written the page.
    pub const SHARED: u32 = 0x54a7;
}

/// What `ktest` writes first into a page it shares.
pub const SHARED_BY_PARENT: u64 = 0x7061_7265_6e74_2121;
/// What `kchild` writes back into it.
pub const SHARED_BY_CHILD: u64 = 0x6368_696c_6421_2121;

/// The size of [`Role::DmaHolder`]'s DMA buffer, in pages.
pub const DMA_HOLDER_PAGES: usize = 16;

/// [`Role::Flood`]'s notification when its sends met a full queue.
pub const FLOOD_QUEUE_FULL: u64 = 1;
/// [`Role::Flood`]'s notification when its capability space was full.
pub const FLOOD_QUOTA_EXCEEDED: u64 = 2;

/// An address nothing maps in `kchild` (not page-aligned, so CR2 is checked to the byte).
pub const UNMAPPED_ADDR: u64 = 0x0000_5555_0000_0123;
/// The kernel's image: mapped, but not for ring 3.
pub const KERNEL_ADDR: u64 = 0xffff_ffff_8010_0000;
/// Where `kchild` makes its fixed mappings.
pub const SCRATCH_ADDR: u64 = 0x0000_4000_0000_0000;

/// What [`Role::FaultRegisters`] holds in rax and r12 when it faults.
pub const FAULT_RAX: u64 = 0x0123_4567_89ab_cdef;
pub const FAULT_R12: u64 = 0x0fed_cba9_8765_4321;

/// `kchild`'s exit code when an instruction that should have faulted did not.
pub const NO_FAULT: i32 = 98;
/// `kchild`'s exit code when it could not set up its role (it prints why).
pub const SETUP_FAILED: i32 = 99;
/// `kchild`'s exit code when one of its checks failed (it prints which).
pub const CHECK_FAILED: i32 = 97;

/// What a `kchild` exit code of its own means, if it is one.
pub fn exit_code_meaning(code: i64) -> Option<&'static str> {
    match i32::try_from(code).ok()? {
        NO_FAULT => Some("the instruction did not fault"),
        SETUP_FAILED => Some("it could not set up its role"),
        CHECK_FAILED => Some("one of its checks failed"),
        _ => None,
    }
}

/// Packs up to four syscall results into an exit code, a byte each: 0 for success, else
/// the error's ABI number.
pub fn encode_results<T>(results: &[Result<T, Error>]) -> i32 {
    results
        .iter()
        .take(4)
        .enumerate()
        .fold(0, |code, (i, result)| {
            let byte = result.as_ref().err().map_or(0, |&error| error as i32);
            code | byte << (8 * i)
        })
}

/// One syscall result as [`encode_results`] reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reported {
    Succeeded,
    Failed(Error),
    /// A byte that is no error number.
    Unknown(i64),
}

/// Unpacks result `index` of an exit code made by [`encode_results`].
pub fn decode_result(code: i64, index: usize) -> Reported {
    match (code >> (8 * index)) & 0xff {
        0 => Reported::Succeeded,
        raw => Error::from_raw(raw as isize).map_or(Reported::Unknown(raw), Reported::Failed),
    }
}
