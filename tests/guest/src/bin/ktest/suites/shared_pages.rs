//! Shared pages: a memory object's pages are the same pages in every process that maps
//! them; mapping needs the map rights; a mapping lasts exactly as long as the capability it
//! was made through, so a revoke makes the other side fault; the last capability gives the
//! frames back.

use alloc::format;
use alloc::string::String;

use keel_abi::cap::rights;
use keel_abi::layout::PAGE_SIZE;
use keel_abi::{Error, SysInfo, prot};
use keel_guest_tests::{
    DMA_HOLDER_PAGES, KERNEL_ADDR, Role, SCRATCH_ADDR, SHARED_BY_CHILD, SHARED_BY_PARENT, label,
};
use keel_rt::cap;
use keel_rt::ipc::Port;
use keel_rt::mem::{Mapping, Memory};
use keel_rt::process::Pid;
use keel_rt::sys;

use crate::check::{Context, all, ensure, expect_eq};
use crate::child::{self, expect_page_fault_of, kill_and_reap, page_fault};
use crate::receive;
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(shared_pages:
    writes_to_a_shared_page_are_seen_by_the_other_process,
    after_a_revoke_the_other_process_faults_on_the_page,
    mapping_needs_the_map_rights,
    mapping_where_nothing_may_go_is_refused,
    deleting_the_capability_unmaps_the_page,
    a_memory_object_gives_its_frames_back_with_its_last_capability,
    memory_objects_must_be_whole_pages,
    dma_buffers_are_contiguous_and_only_for_drivers,
    an_ended_drivers_dma_memory_is_held_until_its_device_is_stopped,
);

const RW: usize = prot::READ | prot::WRITE;

/// Fixed addresses for this suite's mappings, one gigabyte apart, away from `mem_map(0)`.
const fn fixed(slot: usize) -> usize {
    0x0000_4c00_0000_0000 + slot * 0x4000_0000
}

/// Word `index` of a mapping, read with a volatile access.
fn read_word(mapping: &Mapping, index: usize) -> u64 {
    assert!((index + 1) * 8 <= mapping.len());
    // SAFETY: in bounds of a mapping whose capability the test keeps until it is done with
    // the mapping; volatile, because other processes write it. No reference is made.
    unsafe { mapping.as_ptr().cast::<u64>().add(index).read_volatile() }
}

/// Writes word `index` of a mapping with a volatile access.
fn write_word(mapping: &Mapping, index: usize, value: u64) {
    assert!((index + 1) * 8 <= mapping.len());
    // SAFETY: as for `read_word`.
    unsafe {
        mapping
            .as_ptr()
            .cast::<u64>()
            .add(index)
            .write_volatile(value)
    }
}

/// A page ktest shares with kchild share-page, which has read ktest's word 0 and written
/// its own word 1 when this returns.
struct Shared {
    memory: Memory,
    mapping: Mapping,
    child: Pid,
}

fn share_a_page() -> Result<Shared, String> {
    let memory = Memory::create(PAGE_SIZE).context("mem_create")?;
    let mapping = memory.map(RW).context("mapping the object")?;
    write_word(&mapping, 0, SHARED_BY_PARENT);
    let report = Port::create(1).context("port_create")?;
    let child = child::spawn_with_caps(Role::SharePage, "", &[memory.handle(), report.handle()])?;
    let got = receive::message(report, "kchild share-page's report")?;
    expect_eq("the report's label", got.message.label, label::SHARED)?;
    Ok(Shared {
        memory,
        mapping,
        child,
    })
}

/// ktest writes word 0 (kchild checks it), kchild writes word 1 (ktest checks it).
fn writes_to_a_shared_page_are_seen_by_the_other_process() -> Result<(), String> {
    let shared = share_a_page()?;
    let written = read_word(&shared.mapping, 1);
    kill_and_reap(shared.child)?;
    expect_eq("word 1, written by kchild", written, SHARED_BY_CHILD)
}

/// kchild keeps reading the page; once ktest revokes the copy it was given, its next read
/// faults at the page's address. ktest's own mapping, made through the original, stays.
fn after_a_revoke_the_other_process_faults_on_the_page() -> Result<(), String> {
    let shared = share_a_page()?;
    let removed = cap::revoke(shared.memory.handle()).context("cap_revoke")?;
    all([
        expect_eq(
            "capabilities the revoke removed (kchild's copy)",
            removed,
            1,
        ),
        expect_page_fault_of(
            shared.child,
            Role::SharePage,
            SCRATCH_ADDR,
            page_fault::USER,
        ),
        expect_eq(
            "word 1 in ktest's own mapping after the revoke",
            read_word(&shared.mapping, 1),
            SHARED_BY_CHILD,
        ),
    ])
}

fn mapping_needs_the_map_rights() -> Result<(), String> {
    let memory = Memory::create(PAGE_SIZE).context("mem_create")?;
    let read_only = memory.derive(rights::MAP_READ).context("cap_derive")?;
    let no_read = memory.derive(rights::MAP_WRITE).context("cap_derive")?;
    let at = fixed(0);
    let map = |memory: Memory, prot| memory.map_at(at, prot).map(drop);
    let denied = Err(Error::MissingRight);
    let refused = all([
        expect_eq(
            "mapping read-write without MAP_WRITE",
            map(read_only, RW),
            denied,
        ),
        expect_eq(
            "mapping read-execute without MAP_EXEC",
            map(read_only, prot::READ | prot::EXEC),
            denied,
        ),
        expect_eq(
            "mapping readable without MAP_READ",
            map(no_read, RW),
            denied,
        ),
    ]);
    // Nothing may have been mapped by the refused calls: the range is still free.
    let free = sys::mem_map(at, PAGE_SIZE, RW);
    if free.is_ok() {
        // SAFETY: the page was just mapped here and nothing refers to it.
        unsafe { sys::mem_unmap(at, PAGE_SIZE) }.context("mem_unmap")?;
    }
    let mapping = read_only.map_at(at, prot::READ);
    let upgraded = match mapping {
        // SAFETY: nothing writes the page, whatever protection the kernel leaves it with.
        Ok(mapping) => unsafe { sys::mem_protect(mapping.addr(), PAGE_SIZE, RW) },
        Err(error) => Err(error),
    };
    all([
        refused,
        expect_eq("mapping the range after the refusals", free, Ok(at)),
        expect_eq(
            "mapping read-only with MAP_READ",
            mapping.map(|m| m.addr()),
            Ok(at),
        ),
        expect_eq(
            "making that mapping writable with mem_protect",
            upgraded,
            Err(Error::PermissionDenied),
        ),
    ])
}

fn mapping_where_nothing_may_go_is_refused() -> Result<(), String> {
    let memory = Memory::create(PAGE_SIZE).context("mem_create")?;
    let taken = memory
        .map_at(fixed(1), prot::READ)
        .context("mapping the object")?;
    let map = |addr: usize| memory.map_at(addr, prot::READ).map(drop);
    all([
        expect_eq(
            "mapping at an unaligned address",
            map(fixed(2) + 8),
            Err(Error::InvalidArgument),
        ),
        expect_eq(
            "mapping in the kernel half",
            map(KERNEL_ADDR as usize),
            Err(Error::BadAddress),
        ),
        expect_eq(
            "mapping over an existing mapping",
            map(taken.addr()),
            Err(Error::Exists),
        ),
    ])
}

/// The mapping goes with the copy it was made through; the object and its contents stay
/// with the original.
fn deleting_the_capability_unmaps_the_page() -> Result<(), String> {
    let memory = Memory::create(PAGE_SIZE).context("mem_create")?;
    let copy = memory
        .derive(rights::MAP_READ | rights::MAP_WRITE)
        .context("cap_derive")?;
    let at = fixed(3);
    let mapping = copy.map_at(at, RW).context("mapping the copy")?;
    write_word(&mapping, 0, SHARED_BY_PARENT);
    copy.delete().context("cap_delete")?;
    let free = sys::mem_map(at, PAGE_SIZE, RW);
    if free.is_ok() {
        // SAFETY: the page was just mapped here and nothing refers to it.
        unsafe { sys::mem_unmap(at, PAGE_SIZE) }.context("mem_unmap")?;
    }
    let again = memory.map(prot::READ).context("mapping the original")?;
    all([
        expect_eq("mapping where the copy's mapping was", free, Ok(at)),
        expect_eq(
            "word 0 through the original",
            read_word(&again, 0),
            SHARED_BY_PARENT,
        ),
    ])
}

fn a_memory_object_gives_its_frames_back_with_its_last_capability() -> Result<(), String> {
    const PAGES: usize = 16;
    let free = || sys::sys_info(SysInfo::FreeFrames).context("sys_info(FreeFrames)");
    let before = free()?;
    let memory = Memory::create(PAGES * PAGE_SIZE).context("mem_create")?;
    let copy = memory
        .derive(rights::MAP_READ | rights::MAP_WRITE)
        .context("cap_derive")?;
    let mapping = copy.map(RW).context("mapping the copy")?;
    (0..PAGES).for_each(|page| write_word(&mapping, page * PAGE_SIZE / 8, 1));
    let during = free()?;
    memory.delete().context("deleting the original")?;
    let with_copy = free()?;
    copy.delete().context("deleting the copy")?;
    let after = free()?;
    all([
        ensure(during + PAGES <= before, || {
            format!("a {PAGES}-page object took only {} frames", before - during)
        }),
        expect_eq(
            "free frames once the original is gone (the copy holds them)",
            with_copy,
            during,
        ),
        expect_eq(
            "free frames once the last capability is gone (vs before)",
            after,
            before,
        ),
    ])
}

fn memory_objects_must_be_whole_pages() -> Result<(), String> {
    all([0, 100, PAGE_SIZE + 1]
        .map(|len| {
            expect_eq(
                &format!("mem_create({len})"),
                Memory::create(len).map(drop),
                Err(Error::InvalidArgument),
            )
        })
        .into_iter()
        .chain([expect_eq(
            "the size of a two-page object",
            Memory::create(2 * PAGE_SIZE).and_then(|memory| memory.size()),
            Ok(2 * PAGE_SIZE),
        )]))
}

/// A driver that ends leaves its DMA memory to the kernel, which frees it only once a
/// SYSTEM process says the device is stopped: the device may still write it meanwhile.
fn an_ended_drivers_dma_memory_is_held_until_its_device_is_stopped() -> Result<(), String> {
    let free = || sys::sys_info(SysInfo::FreeFrames).context("sys_info(FreeFrames)");
    let irq = sys::device::irq_create(8).context("minting an interrupt line")?;
    let before = free()?;
    let pid = child::spawn_with_caps(Role::DmaHolder, "", &[irq])?;
    child::expect_success(pid, Role::DmaHolder)?;
    let ended = free()?;
    let released = sys::device::dma_release(pid);
    let after = free()?;
    let again = sys::device::dma_release(pid);
    // A live process's DMA memory goes back as soon as its last capability does.
    let buffer = keel_rt::driver::DmaBuffer::new(irq, PAGE_SIZE).context("a DMA buffer")?;
    let with_buffer = free()?;
    drop(buffer);
    let dropped = free()?;
    let _ = sys::ipc::cap_delete(irq);
    all([
        expect_eq(
            "frames missing once the driver ended (its DMA buffer)",
            before - ended,
            DMA_HOLDER_PAGES,
        ),
        expect_eq("frames dma_release freed", released, Ok(DMA_HOLDER_PAGES)),
        expect_eq("free frames after the release", after, before),
        expect_eq("a second release", again, Ok(0)),
        expect_eq("a live driver's buffer freed", dropped, with_buffer + 1),
    ])
}

fn dma_buffers_are_contiguous_and_only_for_drivers() -> Result<(), String> {
    const PAGES: usize = 4;
    // ktest is the first process, so it may mint a device capability to show.
    let irq = sys::device::irq_create(8).context("minting an interrupt line")?;
    let buffer = keel_rt::driver::DmaBuffer::new(irq, PAGES * PAGE_SIZE).context("a DMA buffer")?;
    let phys = buffer.phys();
    let pages: alloc::vec::Vec<_> = (0..PAGES)
        .map(|page| buffer.phys_at(page * PAGE_SIZE))
        .collect();
    let expected: alloc::vec::Vec<_> = (0..PAGES)
        .map(|page| Ok(phys + (page * PAGE_SIZE) as u64))
        .collect();
    // SAFETY: inside the buffer's mapping, which `buffer` keeps; no reference is made.
    let written = unsafe {
        buffer.as_ptr().add(PAGE_SIZE).write_volatile(0x5a);
        buffer.as_ptr().add(PAGE_SIZE).read_volatile()
    };
    let plain = Memory::create(PAGE_SIZE).context("an ordinary memory object")?;
    let port = Port::create(1).context("a port")?;
    let checks = [
        ensure(phys != 0 && phys % PAGE_SIZE as u64 == 0, || {
            format!("physical address {phys:#x}")
        }),
        expect_eq("each page's physical address", pages, expected),
        expect_eq("a byte written and read back", written, 0x5a),
        expect_eq(
            "the address of an ordinary memory object",
            sys::device::mem_phys(plain.handle(), 0),
            Err(Error::MissingRight),
        ),
        expect_eq(
            "DMA memory asked for with a port instead of a device",
            sys::device::mem_create_dma(port.handle(), PAGE_SIZE),
            Err(Error::WrongType),
        ),
        expect_eq(
            "a byte beyond the buffer",
            buffer.phys_at(PAGES * PAGE_SIZE),
            Err(Error::InvalidArgument),
        ),
    ];
    let _ = plain.delete();
    let _ = sys::ipc::cap_delete(port.handle());
    let _ = sys::ipc::cap_delete(irq);
    all(checks)
}
