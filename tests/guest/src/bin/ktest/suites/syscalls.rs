//! Syscalls given bad input: every bad pointer, length and number comes back as the
//! documented error, and the caller carries on.
//!
//! The rule behind the expectations: memory the kernel must read or write (a buffer, a
//! struct, a name, an image) that is not wholly mapped user memory with that access is
//! [`Error::BadAddress`], whatever the reason — null, kernel half, non-canonical, unmapped,
//! read-only, wrapping around, running off the end of a mapping, or simply too long — and
//! it is judged on the whole buffer the caller declares, not on the part the kernel happens
//! to use this time. Lengths the ABI caps ([`NAME_LEN`], [`ARGS_LEN`]), priorities and
//! unknown figures out of range are [`Error::InvalidArgument`].

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::arch::global_asm;
use core::mem::size_of;

use keel_abi::layout::{PAGE_SIZE, START_INFO_ADDR, USER_END};
use keel_abi::{
    ARGS_LEN, Error, ExitStatus, NAME_LEN, PRIORITY_LEVELS, ProcessInfo, SpawnRequest, Syscall,
};
use keel_guest_tests::{KERNEL_ADDR, Reported, Role, UNMAPPED_ADDR, decode_result};
use keel_rt::ipc::{Message, Port};
use keel_rt::mem::Memory;
use keel_rt::process::{self, Exit, Spawn};
use keel_rt::sys::{self, raw};

use crate::check::{Context, all, ensure, expect_at_least, expect_eq, wait_until};
use crate::child::{self, kill_and_reap};
use crate::elf::{self, header, program};
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(syscalls:
    unknown_syscall_numbers_are_invalid,
    debug_write_writes_a_good_buffer,
    debug_write_rejects_bad_buffers,
    process_wait_rejects_bad_status_pointers_and_keeps_the_child,
    process_info_rejects_bad_pointers,
    process_info_of_an_unknown_pid_is_not_found,
    process_list_rejects_bad_buffers,
    sys_info_rejects_unknown_figures,
    process_spawn_rejects_bad_request_pointers,
    process_spawn_rejects_bad_image_name_and_args,
    process_spawn_rejects_garbage_and_truncated_elf_images,
    a_child_without_rights_cannot_spawn_power_off_kill_or_list_capabilities,
    thread_create_rejects_entry_and_stack_outside_user_space,
    random_syscalls_without_rights_leave_the_kernel_standing,
);

const BAD_ADDRESS: Result<usize, Error> = Err(Error::BadAddress);
const INVALID_ARGUMENT: Result<usize, Error> = Err(Error::InvalidArgument);

fn unknown_syscall_numbers_are_invalid() -> Result<(), String> {
    let numbers = [
        Syscall::COUNT,
        Syscall::COUNT + 1,
        1000,
        1 << 63,
        usize::MAX,
    ];
    all(numbers.map(|number| {
        // SAFETY: no syscall has this number, so nothing happens.
        let result = unsafe { raw::syscall(number, [0; 6]) };
        expect_eq(
            &format!("syscall {number:#x}"),
            result,
            Err(Error::InvalidSyscall),
        )
    }))
}

fn debug_write_writes_a_good_buffer() -> Result<(), String> {
    let line = b"ktest: this line is debug_write's own test\n";
    expect_eq(
        "debug_write of a good buffer",
        sys::debug_write(line),
        Ok(line.len()),
    )
}

fn debug_write_rejects_bad_buffers() -> Result<(), String> {
    let edge = EdgePage::map()?;
    let wrapping = usize::MAX - edge.addr + 1 + PAGE_SIZE;
    let buffers = bad_buffers(&edge, 16).into_iter().chain([
        Buffer::new("far longer than its mapping", edge.addr, 1 << 40),
        Buffer::new("whose length wraps around to page 1", edge.addr, wrapping),
    ]);
    all(buffers.map(|buffer| {
        let result = syscall(Syscall::DebugWrite, [buffer.addr, buffer.len]);
        expect_eq(&format!("debug_write from {buffer}"), result, BAD_ADDRESS)
    }))
}

/// The bad calls must not reap the child: a good wait afterwards still gets its status.
fn process_wait_rejects_bad_status_pointers_and_keeps_the_child() -> Result<(), String> {
    let edge = EdgePage::map()?;
    let pid = child::spawn(Role::Exit, "0")?;
    let buffers = bad_buffers(&edge, size_of::<ExitStatus>());
    let refused = all(buffers.into_iter().chain([read_only()]).map(|buffer| {
        let result = syscall(Syscall::ProcessWait, [pid as usize, buffer.addr]);
        expect_eq(&format!("process_wait into {buffer}"), result, BAD_ADDRESS)
    }));
    let exit = process::wait(pid);
    all([
        refused,
        expect_eq("a good process_wait afterwards", exit, Ok(Exit::Exited(0))),
    ])
}

fn process_info_rejects_bad_pointers() -> Result<(), String> {
    let edge = EdgePage::map()?;
    let me = process::id() as usize;
    let buffers = bad_buffers(&edge, size_of::<ProcessInfo>());
    all(buffers.into_iter().chain([read_only()]).map(|buffer| {
        let result = syscall(Syscall::ProcessInfo, [me, buffer.addr]);
        expect_eq(&format!("process_info into {buffer}"), result, BAD_ADDRESS)
    }))
}

fn process_info_of_an_unknown_pid_is_not_found() -> Result<(), String> {
    all([0x7fff_fff0, u32::MAX].map(|pid| {
        let result = process::info(pid).map(drop);
        expect_eq(
            &format!("process_info({pid:#x})"),
            result,
            Err(Error::NotFound),
        )
    }))
}

/// The capacity counts `u32`s, so a huge one makes a byte length that overflows.
fn process_list_rejects_bad_buffers() -> Result<(), String> {
    let edge = EdgePage::map()?;
    let entry = size_of::<u32>();
    let small = bad_buffers(&edge, 4 * entry)
        .into_iter()
        .chain([read_only()]);
    let small = small.map(|buffer| (format!("{buffer}"), buffer.addr, buffer.len / entry));
    let huge = [
        ("far longer than its mapping", 1 << 40),
        (
            "whose byte length wraps around to page 1",
            (usize::MAX - edge.addr + 1 + PAGE_SIZE) / entry,
        ),
        ("whose byte length overflows to exactly 0", 1 << 62),
    ];
    let huge = huge.map(|(what, capacity)| {
        (
            format!("a buffer {what} ({:#x}, capacity {capacity:#x})", edge.addr),
            edge.addr,
            capacity,
        )
    });
    all(small.chain(huge).map(|(what, addr, capacity)| {
        let result = syscall(Syscall::ProcessList, [addr, capacity]);
        expect_eq(&format!("process_list into {what}"), result, BAD_ADDRESS)
    }))
}

fn sys_info_rejects_unknown_figures() -> Result<(), String> {
    let first_unknown = keel_abi::SysInfo::COUNT;
    all([first_unknown, 1000, usize::MAX].map(|figure| {
        let result = syscall(Syscall::SysInfo, [figure]);
        expect_eq(&format!("sys_info({figure:#x})"), result, INVALID_ARGUMENT)
    }))
}

fn process_spawn_rejects_bad_request_pointers() -> Result<(), String> {
    let edge = EdgePage::map()?;
    let buffers = bad_buffers(&edge, size_of::<SpawnRequest>());
    all(buffers.into_iter().map(|buffer| {
        expect_refused(
            &format!("process_spawn of a request {buffer}"),
            buffer.addr,
            Error::BadAddress,
        )
    }))
}

fn process_spawn_rejects_bad_image_name_and_args() -> Result<(), String> {
    let image = child::image()?;
    let edge = EdgePage::map()?;
    // The edge page starts like kchild's image; the rest of the image would be past its end.
    edge.fill(&image[..PAGE_SIZE]);
    let (edge_start, edge_end) = (edge.addr, edge.end());
    let long = [b'a'; ARGS_LEN + 1];
    let long = long.as_ptr() as usize;
    let good = Spawn::new("kchild", image).args("exit 0").request();
    let with = |change: &dyn Fn(&mut SpawnRequest)| {
        let mut request = good;
        change(&mut request);
        request
    };
    let (kernel, unmapped) = (KERNEL_ADDR as usize, UNMAPPED_ADDR as usize);
    let bad_address = [
        ("a null image", with(&|r| r.elf_ptr = 0)),
        ("an image in the kernel half", with(&|r| r.elf_ptr = kernel)),
        ("an unmapped image", with(&|r| r.elf_ptr = unmapped)),
        (
            "an image running off its mapping",
            with(&|r| r.elf_ptr = edge_start),
        ),
        ("a null name", with(&|r| r.name_ptr = 0)),
        ("a name in the kernel half", with(&|r| r.name_ptr = kernel)),
        (
            "an unmapped argument string",
            with(&|r| r.args_ptr = unmapped),
        ),
        (
            "arguments running off their mapping",
            with(&|r| (r.args_ptr, r.args_len) = (edge_end - 3, 6)),
        ),
    ];
    let invalid_argument = [
        (
            "a name of NAME_LEN + 1 bytes",
            with(&|r| (r.name_ptr, r.name_len) = (long, NAME_LEN + 1)),
        ),
        (
            "arguments of ARGS_LEN + 1 bytes",
            with(&|r| (r.args_ptr, r.args_len) = (long, ARGS_LEN + 1)),
        ),
        (
            "priority PRIORITY_LEVELS",
            with(&|r| r.priority = PRIORITY_LEVELS),
        ),
        ("priority usize::MAX", with(&|r| r.priority = usize::MAX)),
    ];
    let cases = (bad_address.iter().map(|case| (case, Error::BadAddress))).chain(
        invalid_argument
            .iter()
            .map(|case| (case, Error::InvalidArgument)),
    );
    all(cases.map(|((what, request), expected)| {
        let what = format!("process_spawn with {what}");
        expect_refused(&what, request as *const SpawnRequest as usize, expected)
    }))
}

/// Each image is refused with BadElf; an unmodified copy first shows the copies are sound.
fn process_spawn_rejects_garbage_and_truncated_elf_images() -> Result<(), String> {
    let image = child::image()?;
    let copy = image.to_vec();
    let spawned = Spawn::new("kchild", &copy)
        .args("exit 0")
        .spawn()
        .context("spawning a copy of kchild")?;
    expect_eq(
        "how the copy of kchild ended",
        process::wait(spawned),
        Ok(Exit::Exited(0)),
    )?;
    all(bad_images(image).iter().map(|(what, bad)| {
        let request = Spawn::new("kchild", bad).args("exit 0").request();
        expect_refused(
            &format!("process_spawn of {what}"),
            &request as *const _ as usize,
            Error::BadElf,
        )
    }))
}

/// The child (rights 0) reports four results in its exit code, a byte each.
fn a_child_without_rights_cannot_spawn_power_off_kill_or_list_capabilities() -> Result<(), String> {
    let me = process::id();
    let code = match child::run(Role::NoRights, &format!("{me}"))? {
        Exit::Exited(code) if code >= 0 => code,
        other => {
            return Err(format!(
                "kchild no-rights should exit with its results, but it {other}"
            ));
        }
    };
    let expected = [
        ("process_spawn without SPAWN", Error::PermissionDenied),
        ("system_poweroff without SYSTEM", Error::PermissionDenied),
        ("process_kill of its parent", Error::PermissionDenied),
        ("cap_list of its parent", Error::PermissionDenied),
    ];
    all(expected.iter().enumerate().map(|(i, &(what, error))| {
        expect_eq(what, decode_result(code, i), Reported::Failed(error))
    }))
}

// A thread entry that exits at once without touching its stack: harmless even if the
// kernel wrongly accepts a bad stack for it.
global_asm!(
    ".globl ktest_exit_thread",
    "ktest_exit_thread:",
    "    mov ${thread_exit}, %eax",
    "    xor %edi, %edi",
    "    syscall",
    "    ud2",
    thread_exit = const Syscall::ThreadExit as usize,
    options(att_syntax)
);

unsafe extern "C" {
    #[link_name = "ktest_exit_thread"]
    safe fn exit_thread();
}

/// Entry points and stacks are not memory the kernel touches, but it must not start a
/// thread outside user space (a `sysret` to a non-canonical address faults in ring 0):
/// BadAddress, by the rule above. A wrongly accepted bad entry ends ktest with a fault.
fn thread_create_rejects_entry_and_stack_outside_user_space() -> Result<(), String> {
    let edge = EdgePage::map()?;
    let entry = exit_thread as *const () as usize;
    let priority = process::current_priority();
    let cases = [
        (
            "an entry in the kernel half",
            KERNEL_ADDR as usize,
            edge.end(),
            priority,
            BAD_ADDRESS,
        ),
        (
            "an entry at USER_END (non-canonical)",
            USER_END,
            edge.end(),
            priority,
            BAD_ADDRESS,
        ),
        (
            "a non-canonical entry",
            0x8000_0000_0000_0000,
            edge.end(),
            priority,
            BAD_ADDRESS,
        ),
        (
            "a stack in the kernel half",
            entry,
            KERNEL_ADDR as usize,
            priority,
            BAD_ADDRESS,
        ),
        (
            "a stack at USER_END (non-canonical)",
            entry,
            USER_END,
            priority,
            BAD_ADDRESS,
        ),
        (
            "priority PRIORITY_LEVELS",
            entry,
            edge.end(),
            PRIORITY_LEVELS,
            INVALID_ARGUMENT,
        ),
    ];
    all(cases.map(|(what, entry, stack, priority, expected)| {
        let result = syscall(Syscall::ThreadCreate, [entry, stack, 0, priority]);
        expect_eq(&format!("thread_create with {what}"), result, expected)
    }))
}

/// Issues a syscall whose pointers are ones the kernel must refuse, or point into memory
/// this suite owns and touches through no reference.
fn syscall<const N: usize>(number: Syscall, args: [usize; N]) -> Result<usize, Error> {
    // SAFETY: see above; nothing Rust relies on can change.
    unsafe { raw::call(number, args) }
}

/// Spawns from the request at `request` and expects `expected`; a child wrongly created
/// is killed and reaped.
fn expect_refused(what: &str, request: usize, expected: Error) -> Result<(), String> {
    match syscall(Syscall::ProcessSpawn, [request]) {
        Ok(pid) => {
            let pid = pid as u32;
            let reaped = kill_and_reap(pid).err().unwrap_or_default();
            Err(format!(
                "{what}: expected Err({expected:?}), got a child (pid {pid}) {reaped}"
            ))
        }
        result => expect_eq(what, result, Err(expected)),
    }
}

/// A range of memory handed to a syscall.
struct Buffer {
    what: &'static str,
    addr: usize,
    len: usize,
}

impl Buffer {
    fn new(what: &'static str, addr: usize, len: usize) -> Buffer {
        Buffer { what, addr, len }
    }
}

impl core::fmt::Display for Buffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "a buffer {} ({:#x}, {:#x} bytes)",
            self.what, self.addr, self.len
        )
    }
}

/// Buffers of `len` bytes (at least 2) that no syscall may read or write.
fn bad_buffers(edge: &EdgePage, len: usize) -> [Buffer; 6] {
    [
        Buffer::new("at null", 0, len),
        Buffer::new("in the kernel half", KERNEL_ADDR as usize, len),
        Buffer::new("at USER_END (non-canonical)", USER_END, len),
        Buffer::new(
            "that is unmapped",
            UNMAPPED_ADDR as usize & !(PAGE_SIZE - 1),
            len,
        ),
        Buffer::new(
            "ending past the top of the address space",
            usize::MAX - len / 2,
            len,
        ),
        Buffer::new(
            "running off the end of its mapping",
            edge.end() - len / 2,
            len,
        ),
    ]
}

/// Memory the process may read but not write: the start-up record.
fn read_only() -> Buffer {
    Buffer::new("that is read-only", START_INFO_ADDR, PAGE_SIZE)
}

/// One page mapped at a fixed address with nothing after it, for buffers that run off
/// the end of a mapping.
struct EdgePage {
    addr: usize,
}

impl EdgePage {
    const ADDR: usize = 0x0000_4900_0000_0000;

    fn map() -> Result<EdgePage, String> {
        let prot = keel_abi::prot::READ | keel_abi::prot::WRITE;
        let addr = sys::mem_map(Self::ADDR, PAGE_SIZE, prot).context("mapping the edge page")?;
        Ok(EdgePage { addr })
    }

    fn end(&self) -> usize {
        self.addr + PAGE_SIZE
    }

    fn fill(&self, bytes: &[u8]) {
        let len = bytes.len().min(PAGE_SIZE);
        // SAFETY: the page is mapped read-write for this `EdgePage` alone and no
        // reference points into it.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.addr as *mut u8, len) };
    }
}

impl Drop for EdgePage {
    fn drop(&mut self) {
        // SAFETY: the page is this `EdgePage`'s; nothing refers into it.
        let _ = unsafe { sys::mem_unmap(self.addr, PAGE_SIZE) };
    }
}

/// ELF images the kernel must refuse, each with what is wrong with it. Those made from
/// `kchild` change one thing, so that thing is why.
fn bad_images(kchild: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let noise = |len: usize| -> Vec<u8> {
        // xorshift: any fixed noise will do.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let changed = |change: &dyn Fn(&mut Vec<u8>)| {
        let mut image = kchild.to_vec();
        change(&mut image);
        image
    };
    let load = elf::loads(kchild)
        .next()
        .expect("kchild has a loadable segment");
    let last_data = elf::loads(kchild)
        .filter(|segment| segment.filesz > 1)
        .last()
        .expect("kchild has a segment with file data");
    let phoff = elf::read_u64(kchild, header::PHOFF) as usize;
    vec![
        // Empty, but at a real address (an empty `Vec` would point at address 1).
        ("an empty image", Vec::with_capacity(1)),
        ("a page of zeros", vec![0; PAGE_SIZE]),
        ("a page of noise", noise(PAGE_SIZE)),
        (
            "the ELF magic and noise",
            [b"\x7fELF".as_slice(), &noise(PAGE_SIZE)].concat(),
        ),
        ("a 32-bit ELF", changed(&|image| image[header::CLASS] = 1)),
        (
            "a big-endian ELF",
            changed(&|image| image[header::DATA] = 2),
        ),
        (
            "an ELF for i386",
            changed(&|image| elf::write_u16(image, header::MACHINE, 3)),
        ),
        (
            "a relocatable object",
            changed(&|image| elf::write_u16(image, header::TYPE, 1)),
        ),
        ("a header cut short", kchild[..40].to_vec()),
        (
            "program headers cut short",
            kchild[..elf::program_headers_end(kchild) - 1].to_vec(),
        ),
        (
            "a segment cut short",
            kchild[..(last_data.offset + last_data.filesz / 2) as usize].to_vec(),
        ),
        (
            "program headers beyond the end",
            changed(&|image| elf::write_u64(image, header::PHOFF, kchild.len() as u64)),
        ),
        (
            "a program header table of 65535 entries",
            changed(&|image| elf::write_u16(image, header::PHNUM, u16::MAX)),
        ),
        (
            "a wrong program header size",
            changed(&|image| elf::write_u16(image, header::PHENTSIZE, 8)),
        ),
        (
            "a segment beyond the end",
            changed(&|image| {
                let at = load.header_at + program::OFFSET;
                elf::write_u64(image, at, (kchild.len() + PAGE_SIZE) as u64)
            }),
        ),
        (
            "a segment larger in the file than in memory",
            changed(&|image| {
                elf::write_u64(image, load.header_at + program::FILESZ, load.memsz + 1)
            }),
        ),
        (
            "a segment in the kernel half",
            changed(&|image| {
                let vaddr = KERNEL_ADDR + load.vaddr % PAGE_SIZE as u64;
                elf::write_u64(image, load.header_at + program::VADDR, vaddr)
            }),
        ),
        (
            "a segment across USER_END",
            changed(&|image| {
                let vaddr = USER_END as u64 - PAGE_SIZE as u64 + load.vaddr % PAGE_SIZE as u64;
                elf::write_u64(image, load.header_at + program::VADDR, vaddr);
                elf::write_u64(image, load.header_at + program::MEMSZ, 2 * PAGE_SIZE as u64);
            }),
        ),
        (
            "a segment wrapping around the address space",
            changed(&|image| {
                elf::write_u64(
                    image,
                    load.header_at + program::MEMSZ,
                    u64::MAX - load.vaddr + 2,
                )
            }),
        ),
        ("only the ELF header", kchild[..phoff.min(64)].to_vec()),
    ]
}

/// kchild fuzz, without rights, makes random syscalls for a while under each of a few
/// seeds; the kernel must take them all (a panic would end the run) and still serve. A
/// run makes some thousands (3,400 to 5,400 seen: mapping megabytes of memory until the
/// quota says no takes time); fewer than 1,000 would mean the fuzzer did not get going.
fn random_syscalls_without_rights_leave_the_kernel_standing() -> Result<(), String> {
    const SEEDS: [u64; 4] = [0x9e37_79b9, 0x85eb_ca6b, 0xc2b2_ae35, 0x27d4_eb2f];
    let mut made = 0;
    let mut endings = Vec::new();
    for seed in SEEDS {
        let counter = Memory::create(PAGE_SIZE).context("mem_create")?;
        let mapping = counter
            .map(keel_abi::prot::READ)
            .context("mapping the counter")?;
        let pid = Spawn::new("kchild", child::image()?)
            .args(&format!("{} {seed}", Role::Fuzz.name()))
            .rights(0)
            .caps(&[counter.handle()])
            .spawn()
            .context("spawning kchild fuzz")?;
        // SAFETY: the page is mapped readable for as long as `mapping` lives.
        let count = || unsafe { mapping.as_ptr().cast::<u64>().read_volatile() };
        // At this priority, it runs while this thread sleeps: until it has made its share,
        // however slowly a busy host runs the guest (bounded).
        let _ = wait_until("the fuzzer to make 250 syscalls", || Ok(count() >= 250));
        let _ = process::kill(pid);
        endings.push((seed, process::wait(pid)));
        made += count();
    }
    // Still serving: a message through a port of its own.
    let port = Port::create(1).context("port_create")?;
    port.send(&Message::new(1, [made, 0, 0, 0]))
        .context("port_send")?;
    let echoed = crate::receive::waiting(port, "the message to itself")?;
    all(endings
        .into_iter()
        .map(|(seed, ended)| {
            ensure(ended.is_ok(), || {
                format!("waiting for the fuzzer of seed {seed}: {ended:?}")
            })
        })
        .chain([
            expect_at_least("syscalls the fuzzers made", made, 1_000),
            expect_eq("the word sent to itself", echoed.message.words[0], made),
        ]))
}
