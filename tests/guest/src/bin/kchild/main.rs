//! `kchild ROLE [ARG]`: the helper process `ktest` spawns for whatever must happen outside
//! the test process. The roles are listed in [`keel_guest_tests::Role`]; those about
//! messages live in [`ipc`], those about capabilities and shared pages in [`caps`], the
//! process that handles its own faults in [`fault`], the service server in [`services`], the
//! hostile service client in [`ring_fuzz`], those the `system` suite's manifests start
//! in [`system`], and the chaos campaign's driver in [`chaos`].
#![no_std]
#![no_main]

extern crate alloc;

mod caps;
mod chaos;
mod fault;
mod files;
mod fuzz;
mod hostile;
mod ipc;
mod ring_fuzz;
mod services;
mod shootdown;
mod storage;
mod system;

use alloc::format;
use alloc::string::String;
use core::arch::asm;
use core::fmt::Debug;
use core::hint::black_box;
use core::time::Duration;

use keel_abi::layout::{CLOCK_ADDR, PAGE_SIZE};
use keel_abi::{poweroff, prot};
use keel_guest_tests::{
    CHECK_FAILED, KERNEL_ADDR, NO_FAULT, Role, SCRATCH_ADDR, SETUP_FAILED, UNMAPPED_ADDR,
    encode_results,
};
use keel_rt::{println, process, sys, thread, time};

keel_rt::entry!(main);

const SCRATCH: usize = SCRATCH_ADDR as usize;

fn main(args: &str) -> i32 {
    let (name, arg) = args.split_once(' ').unwrap_or((args, ""));
    let Some(role) = Role::parse(name) else {
        println!("kchild: unknown role {name:?}");
        return SETUP_FAILED;
    };
    match play(role, arg) {
        Ok(code) => code,
        Err(why) => {
            println!("kchild {name}: {why}");
            why.exit_code()
        }
    }
}

/// Why a role ended without doing what it is for.
enum Failure {
    Setup(&'static str, sys::Error),
    Check(String),
    NoFault,
}

impl Failure {
    fn check(what: impl Into<String>) -> Failure {
        Failure::Check(what.into())
    }

    fn exit_code(&self) -> i32 {
        match self {
            Failure::Setup(..) => SETUP_FAILED,
            Failure::Check(_) => CHECK_FAILED,
            Failure::NoFault => NO_FAULT,
        }
    }
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::Setup(what, error) => write!(f, "{what} failed: {error}"),
            Failure::Check(what) => write!(f, "check failed: {what}"),
            Failure::NoFault => f.write_str("the instruction did not fault"),
        }
    }
}

/// A setup step's error, as the failure of the role.
trait OrSetup<T> {
    fn or_setup(self, what: &'static str) -> Result<T, Failure>;
}

impl<T> OrSetup<T> for Result<T, sys::Error> {
    fn or_setup(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|error| Failure::Setup(what, error))
    }
}

/// `Ok` if `actual == expected`, else a failed check saying both.
fn expect_eq<T: PartialEq + Debug>(what: &str, actual: T, expected: T) -> Result<(), Failure> {
    if actual == expected {
        Ok(())
    } else {
        Err(Failure::check(format!(
            "{what}: expected {expected:?}, got {actual:?}"
        )))
    }
}

fn play(role: Role, arg: &str) -> Result<i32, Failure> {
    match role {
        Role::Spin => spin(),
        Role::Exit => arg
            .parse()
            .map_err(|_| Failure::check("`exit` wants an i32")),
        Role::Core => keel_rt::sys::sys_info(keel_abi::SysInfo::Core)
            .map(|core| core as i32)
            .or_setup("sys_info(Core)"),
        Role::Panic => panic!("kchild was asked to panic"),
        Role::LastThreadExits => last_thread_exits(),
        Role::NoRights => no_rights(arg),
        Role::Snoop => snoop(arg),
        Role::Fuzz => fuzz::fuzz(arg),
        Role::ReadUnmapped
        | Role::ReadKernel
        | Role::WriteKernel
        | Role::Halt
        | Role::DisableInterrupts
        | Role::WriteCr3
        | Role::PortOut
        | Role::Ud2
        | Role::Int3
        | Role::DivideByZero
        | Role::WriteCode
        | Role::WriteClock => execute(role),
        Role::ExecuteData => execute_data(),
        Role::TouchAfterUnmap => touch_after_unmap(),
        Role::SplitUnmap => split_unmap(),
        Role::WriteAfterProtect => write_after_protect(),
        Role::ThreadStackOverflow => thread_stack_overflow(),
        Role::Send => ipc::send(arg),
        Role::Echo => ipc::echo(),
        Role::SignalEcho => ipc::signal_echo(),
        Role::XmmKeeper => xmm_keeper(arg),
        Role::Forward => ipc::forward(),
        Role::ExitMidCall => ipc::exit_mid_call(),
        Role::DmaHolder => dma_holder(),
        Role::HoldCall => ipc::hold_call(),
        Role::DeferredReply => ipc::deferred_reply(),
        Role::Call => ipc::call(),
        Role::MapReceived => ipc::map_received(arg),
        Role::Flood => ipc::flood(),
        Role::Relay => caps::relay(),
        Role::Holder => caps::holder(),
        Role::SharePage => caps::share_page(),
        Role::FaultResume => fault::resume_after_mapping(),
        Role::FaultRegisters => fault::registers(),
        Role::RaisePriority => raise_priority(),
        Role::ThreadCores => thread_cores(),
        Role::UnmapAcross => shootdown::unmap_across(),
        Role::ReadAudit => caps::read_audit(),
        Role::ProbeServer => services::probe_server(),
        Role::ProbeClientDies => services::probe_client_dies(arg),
        Role::ProbeEcho => services::probe_echo(),
        Role::ProbeClientBorrows => services::probe_client_borrows(),
        Role::RingFuzz => ring_fuzz::ring_fuzz(arg),
        Role::ConsoleReaderDies => services::console_reader_dies(),
        Role::WitnessServer => system::witness_server(arg),
        Role::WitnessCaller => system::witness_caller(),
        Role::WitnessRetrier => system::witness_retrier(),
        Role::Outsider => system::outsider(arg),
        Role::Granted => system::granted(),
        Role::PciConfined => storage::pci_confined(arg),
        Role::FilesHolder => files::holder(arg),
        Role::Limited => hostile::limited(arg),
        Role::SelfQueuedPort => hostile::self_queued_port(arg),
        Role::SparseMaps => hostile::sparse_maps(),
        Role::Idle => loop {
            time::sleep(Duration::from_secs(3600));
        },
        Role::Breeder => hostile::breeder(arg),
        Role::Hog => hostile::hog(arg),
        Role::Chaos => chaos::chaos(arg),
    }
}

/// Spins without a single syscall: only preemption can take the CPU away.
#[allow(clippy::empty_loop, reason = "spinning without syscalls is the point")]
fn spin() -> ! {
    loop {}
}

/// Vector registers that must stay this process's across switches: the `xmm-keeper` role.
/// The asm names xmm registers in its text only: this crate's target is soft-float, so
/// the compiler itself never uses them and none of its code can disturb them.
fn xmm_keeper(arg: &str) -> Result<i32, Failure> {
    let mut words = arg.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(seed)), Some(Ok(rounds))) = (words.next(), words.next()) else {
        return Err(Failure::check("xmm-keeper wants SEED ROUNDS"));
    };
    // (a, b): the series x <- x * a + b, in f64, from x = 1.
    let (a, b) = (1.0 + seed as f64 / 1024.0, seed as f64 / 3.0);
    // SAFETY: writes xmm0-15 only, which nothing else in this program uses.
    unsafe {
        asm!(
            "movq xmm0, {v}", "inc {v}", "movq xmm1, {v}", "inc {v}", "movq xmm2, {v}",
            "inc {v}", "movq xmm3, {v}", "inc {v}", "movq xmm4, {v}", "inc {v}",
            "movq xmm5, {v}", "inc {v}", "movq xmm6, {v}", "inc {v}", "movq xmm7, {v}",
            "inc {v}", "movq xmm8, {v}", "inc {v}", "movq xmm9, {v}", "inc {v}",
            "movq xmm10, {v}", "inc {v}", "movq xmm11, {v}", "inc {v}", "movq xmm12, {v}",
            "movq xmm13, {a}", "movq xmm14, {b}", "movq xmm15, {one}",
            v = inout(reg) seed => _,
            a = in(reg) a.to_bits(),
            b = in(reg) b.to_bits(),
            one = in(reg) 1.0f64.to_bits(),
            options(nomem, nostack),
        );
    }
    // Where the kernel turned AVX on, ymm12's upper half holds SEED + 11 too.
    let avx = avx_enabled();
    if avx {
        // SAFETY: AVX is enabled (CPUID and XCR0 say so); writes ymm12 only.
        unsafe {
            asm!(
                "vinsertf128 ymm12, ymm12, xmm11, 1",
                options(nomem, nostack)
            )
        };
    }
    let mut expected = 1.0f64;
    let mut wrong = 0u64;
    for _ in 0..rounds {
        keel_rt::thread::yield_now();
        for spin in 0..2_000u32 {
            core::hint::black_box(spin);
        }
        expected = expected * a + b;
        let off: u64;
        // SAFETY: reads xmm0-12, steps xmm15 with the constants in xmm13 and xmm14; only
        // the named general registers change.
        unsafe {
            asm!(
                "mulsd xmm15, xmm13", "addsd xmm15, xmm14",
                "xor {off}, {off}",
                "movq {t}, xmm0", "sub {t}, {s}", "or {off}, {t}", "inc {s}",
                "movq {t}, xmm1", "sub {t}, {s}", "or {off}, {t}", "inc {s}",
                "movq {t}, xmm2", "sub {t}, {s}", "or {off}, {t}", "inc {s}",
                "movq {t}, xmm3", "sub {t}, {s}", "or {off}, {t}", "inc {s}",
                "movq {t}, xmm4", "sub {t}, {s}", "or {off}, {t}", "inc {s}",
                "movq {t}, xmm5", "sub {t}, {s}", "or {off}, {t}", "inc {s}",
                "movq {t}, xmm6", "sub {t}, {s}", "or {off}, {t}", "inc {s}",
                "movq {t}, xmm7", "sub {t}, {s}", "or {off}, {t}", "inc {s}",
                "movq {t}, xmm8", "sub {t}, {s}", "or {off}, {t}", "inc {s}",
                "movq {t}, xmm9", "sub {t}, {s}", "or {off}, {t}", "inc {s}",
                "movq {t}, xmm10", "sub {t}, {s}", "or {off}, {t}", "inc {s}",
                "movq {t}, xmm11", "sub {t}, {s}", "or {off}, {t}", "inc {s}",
                "movq {t}, xmm12", "sub {t}, {s}", "or {off}, {t}",
                off = out(reg) off,
                t = out(reg) _,
                s = inout(reg) seed => _,
                options(nomem, nostack),
            );
        }
        wrong |= off;
        if avx {
            let mut upper = [0u64; 2];
            // SAFETY: AVX is enabled; writes the 16 bytes of `upper`.
            unsafe {
                asm!("vextractf128 xmmword ptr [{}], ymm12, 1", in(reg) upper.as_mut_ptr(),
                    options(nostack))
            };
            wrong |= upper[0] ^ (seed + 11);
        }
    }
    let series: u64;
    // SAFETY: reads xmm15 into a general register.
    unsafe { asm!("movq {}, xmm15", out(reg) series, options(nomem, nostack)) };
    Ok(i32::from(wrong != 0 || series != expected.to_bits()))
}

/// Whether the kernel turned AVX on: the CPU has it and XSAVE, and XCR0 enables its state.
fn avx_enabled() -> bool {
    let basic = core::arch::x86_64::__cpuid(1);
    let (osxsave, avx) = (basic.ecx & (1 << 27) != 0, basic.ecx & (1 << 28) != 0);
    if !osxsave || !avx {
        return false;
    }
    let xcr0: u32;
    // SAFETY: XGETBV may run in ring 3 once CR4.OSXSAVE is set, which CPUID just reported.
    unsafe { asm!("xgetbv", in("ecx") 0, out("eax") xcr0, out("edx") _, options(nomem, nostack)) };
    xcr0 & 0b110 == 0b110
}

/// Executes the one instruction `role` is named after; returns only if it did not fault.
/// Never inlined, so that a fault's backtrace names it (tests/tests/backtraces.rs).
#[inline(never)]
fn execute(role: Role) -> Result<i32, Failure> {
    // SAFETY: each instruction is expected to fault and end the process. One that does not
    // changes nothing Rust relies on: no register beyond those declared, and memory only
    // at `_start`, which never runs again, or in the kernel, which is not ours.
    unsafe {
        match role {
            Role::ReadUnmapped => asm!("mov {0}, qword ptr [{0}]", inout(reg) UNMAPPED_ADDR => _),
            Role::ReadKernel => asm!("mov {0}, qword ptr [{0}]", inout(reg) KERNEL_ADDR => _),
            Role::WriteKernel => asm!("mov byte ptr [{0}], 0", in(reg) KERNEL_ADDR),
            Role::Halt => asm!("hlt"),
            Role::DisableInterrupts => asm!("cli"),
            Role::WriteCr3 => asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _),
            Role::PortOut => asm!("out 0x80, al", in("al") 0u8),
            Role::Ud2 => asm!("ud2"),
            Role::Int3 => asm!("int3"),
            Role::DivideByZero => asm!(
                "div {0:e}",
                in(reg) 0u32,
                inout("eax") 1u32 => _,
                inout("edx") 0u32 => _,
            ),
            Role::WriteCode => asm!("lea {0}, [rip + _start]", "mov byte ptr [{0}], 0", out(reg) _),
            Role::WriteClock => asm!("mov byte ptr [{0}], 0", in(reg) CLOCK_ADDR),
            _ => return Err(Failure::check("not an instruction role")),
        }
    }
    Err(Failure::NoFault)
}

/// Maps `pages` read-write pages at [`SCRATCH_ADDR`].
fn map_scratch(pages: usize) -> Result<*mut u8, Failure> {
    sys::mem_map(SCRATCH, pages * PAGE_SIZE, prot::READ | prot::WRITE)
        .map(|addr| addr as *mut u8)
        .map_err(|error| Failure::Setup("mem_map", error))
}

/// Reads the byte at `addr` with one instruction, outside Rust's view of memory, so that
/// reading an unmapped page is an honest fault rather than undefined behaviour.
fn read_byte(addr: *const u8) -> u8 {
    let value: u8;
    // SAFETY: a read has no effect; if `addr` is not readable the process faults, which is
    // what the roles that use this are for.
    unsafe { asm!("mov {0}, byte ptr [{1}]", out(reg_byte) value, in(reg) addr) };
    value
}

/// Writes the byte at `addr` with one instruction, outside Rust's view of memory.
fn write_byte(addr: *mut u8, value: u8) {
    // SAFETY: only the scratch and shared mappings this process made are written, and no
    // Rust reference points into them; an unwritable page faults, as the roles intend.
    unsafe { asm!("mov byte ptr [{0}], {1}", in(reg) addr, in(reg_byte) value) };
}

/// Reads the word at `addr` with one instruction, like [`read_byte`]: a page that another
/// process's revoke took away faults honestly.
fn read_word(addr: *const u64) -> u64 {
    let value: u64;
    // SAFETY: as for `read_byte`.
    unsafe { asm!("mov {0}, qword ptr [{1}]", out(reg) value, in(reg) addr) };
    value
}

/// Writes the word at `addr` with one instruction, like [`write_byte`].
fn write_word(addr: *mut u64, value: u64) {
    // SAFETY: as for `write_byte`.
    unsafe { asm!("mov qword ptr [{0}], {1}", in(reg) addr, in(reg) value) };
}

fn execute_data() -> Result<i32, Failure> {
    let page = map_scratch(1)?;
    write_byte(page, 0xc3); // `ret`: harmless should the page wrongly be executable.
    // SAFETY: the page holds a lone `ret`; calling it either faults (no-execute, as expected)
    // or returns at once, clobbering only what a call may.
    unsafe { asm!("call {0}", in(reg) page, clobber_abi("C")) };
    Err(Failure::NoFault)
}

fn touch_after_unmap() -> Result<i32, Failure> {
    let page = map_scratch(1)?;
    write_byte(page, 1);
    if read_byte(page) != 1 {
        return Err(Failure::check("the page did not keep a written byte"));
    }
    // SAFETY: only `read_byte`/`write_byte` touch the page, never a Rust reference.
    unsafe { sys::mem_unmap(SCRATCH, PAGE_SIZE) }.map_err(|e| Failure::Setup("mem_unmap", e))?;
    read_byte(page);
    Err(Failure::NoFault)
}

fn split_unmap() -> Result<i32, Failure> {
    let first = map_scratch(3)?;
    // SAFETY: all three pages lie inside the mapping just made.
    let (middle, last) = unsafe { (first.add(PAGE_SIZE), first.add(2 * PAGE_SIZE)) };
    for (page, mark) in [(first, 1), (middle, 2), (last, 3)] {
        write_byte(page, mark);
    }
    // SAFETY: only `read_byte`/`write_byte` touch the pages, never a Rust reference.
    unsafe { sys::mem_unmap(middle as usize, PAGE_SIZE) }
        .map_err(|e| Failure::Setup("mem_unmap of the middle page", e))?;
    if read_byte(first) != 1 || read_byte(last) != 3 {
        return Err(Failure::check(
            "the ends lost their data when the middle was unmapped",
        ));
    }
    write_byte(first, 4);
    write_byte(last, 5);
    if read_byte(first) != 4 || read_byte(last) != 5 {
        return Err(Failure::check("the ends are no longer writable"));
    }
    read_byte(middle);
    Err(Failure::NoFault)
}

fn write_after_protect() -> Result<i32, Failure> {
    let page = map_scratch(1)?;
    write_byte(page, 0x5a);
    // SAFETY: only `read_byte`/`write_byte` touch the page, never a Rust reference.
    unsafe { sys::mem_protect(SCRATCH, PAGE_SIZE, prot::READ) }
        .map_err(|e| Failure::Setup("mem_protect", e))?;
    if read_byte(page) != 0x5a {
        return Err(Failure::check("the read-only page lost its data"));
    }
    write_byte(page, 0xa5);
    Err(Failure::NoFault)
}

fn thread_stack_overflow() -> Result<i32, Failure> {
    /// Uses half a kilobyte of stack per call, touching it, until the stack runs out.
    fn recurse(depth: u64) -> u64 {
        let frame = black_box([depth as u8; 512]);
        if depth == u64::MAX {
            return 0;
        }
        recurse(depth + 1) + u64::from(frame[0])
    }
    thread::spawn(|| {
        black_box(recurse(0));
    })
    .map_err(|e| Failure::Setup("thread::spawn", e))?
    .join();
    Err(Failure::NoFault)
}

fn dma_holder() -> Result<i32, Failure> {
    // Handle 1: the first capability the parent passed.
    let device: keel_abi::cap::Handle = 1;
    let len = keel_guest_tests::DMA_HOLDER_PAGES * keel_abi::layout::PAGE_SIZE;
    let buffer = keel_rt::driver::DmaBuffer::new(device, len).or_setup("a DMA buffer")?;
    for page in (0..len).step_by(keel_abi::layout::PAGE_SIZE) {
        // SAFETY: inside the buffer's mapping, which lives until the process ends.
        unsafe { buffer.as_ptr().add(page).write_volatile(0xd4) };
    }
    // Held to the end: the kernel frees it with the process, or holds it for the device.
    core::mem::forget(buffer);
    Ok(0)
}

fn last_thread_exits() -> Result<i32, Failure> {
    thread::spawn(|| {
        time::sleep(Duration::from_millis(50));
        sys::thread_exit(7)
    })
    .map_err(|e| Failure::Setup("thread::spawn", e))?;
    sys::thread_exit(3)
}

/// Runs with no rights: spawning, powering off and killing another process (`arg`, not a
/// child) must all be refused. The results go back in the exit code.
fn raise_priority() -> Result<i32, Failure> {
    let sleeper = thread::spawn(|| time::sleep(Duration::from_millis(100)))
        .map_err(|error| Failure::Setup("thread::spawn", error))?;
    let priority = process::current_priority();
    Ok(encode_results(&[
        sleeper.thread().set_priority(priority + 1),
        sleeper.thread().set_priority(priority),
    ]))
}

fn thread_cores() -> Result<i32, Failure> {
    let priority = process::current_priority();
    Ok(encode_results(&[
        thread::spawn_on(1 << 1, priority, || {}).map(drop),
        thread::spawn_on(1 << 0, priority, || {}).map(drop),
    ]))
}

fn snoop(arg: &str) -> Result<i32, Failure> {
    let target = arg
        .parse()
        .map_err(|_| Failure::check("`snoop` wants a pid"))?;
    let listed = match process::list() {
        Ok(pids) if pids.contains(&target) => Ok(()),
        Ok(_) => Err(sys::Error::NotFound),
        Err(error) => Err(error),
    };
    Ok(encode_results(&[
        process::info(target).map(drop),
        process::info(process::id()).map(drop),
        listed,
    ]))
}

fn no_rights(arg: &str) -> Result<i32, Failure> {
    let victim = arg
        .parse()
        .map_err(|_| Failure::check("`no-rights` wants a pid"))?;
    // Garbage on purpose: the missing right must be reported before the image is looked at.
    let image = [0u8; 64];
    let spawned = process::Spawn::new("nope", &image).spawn();
    // FAILURE, so that a wrongly allowed power-off cannot pass for a test run's success.
    let powered_off = sys::system_poweroff(poweroff::FAILURE);
    let killed = process::kill(victim);
    let listed = sys::ipc::cap_list(victim, &mut []).map(drop);
    Ok(encode_results(&[
        spawned.map(drop),
        powered_off.map(drop),
        killed,
        listed,
    ]))
}
