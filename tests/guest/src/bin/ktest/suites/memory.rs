//! Memory: `mem_map`, `mem_unmap` and `mem_protect` do what the ABI says, refuse what it
//! forbids with the documented error, and give every frame back.
//!
//! The errors follow one rule across all syscalls: an address or range that is not wholly
//! in user space is [`Error::BadAddress`]; a malformed value (unaligned, zero or huge length,
//! unknown protection bit) is [`Error::InvalidArgument`]; a user range with nothing mapped
//! where something must be is [`Error::NotFound`].

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::mem::ManuallyDrop;
use core::ptr;

use keel_abi::layout::{
    CLOCK_ADDR, MMAP_BASE, PAGE_SIZE, STACK_SIZE, STACK_TOP, START_INFO_ADDR, USER_END,
};
use keel_abi::{Error, SysInfo, prot, vector};
use keel_guest_tests::{KERNEL_ADDR, Role, SCRATCH_ADDR};
use keel_rt::sys;

use crate::check::{Context, all, ensure, expect_eq};
use crate::child::{expect_fault, expect_page_fault, page_fault};
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(memory:
    map_returns_zeroed_writable_memory_at_a_kernel_chosen_address,
    map_at_a_fixed_address_returns_it_zeroed_and_writable,
    kernel_chosen_mappings_do_not_overlap,
    an_overlapping_map_is_refused_with_exists,
    touching_unmapped_memory_faults,
    unmapping_the_middle_splits_a_mapping,
    a_read_only_page_reads_but_faults_on_write,
    write_and_execute_together_are_refused,
    unaligned_or_empty_ranges_are_invalid,
    ranges_outside_user_space_are_bad_addresses,
    unmapping_or_protecting_nothing_is_not_found,
    map_and_unmap_give_back_every_frame,
    a_thread_stack_overflow_faults_on_the_guard_page,
    the_heap_grows_for_large_and_page_aligned_allocations,
    the_clock_page_tells_the_kernels_time,
    the_clock_page_is_read_only,
    a_page_unmapped_on_one_core_faults_on_the_next_at_once,
);

const RW: usize = prot::READ | prot::WRITE;

/// A fixed address for one test: each gets its own gigabyte, so one test's leftovers
/// cannot make another's mapping collide.
const fn fixed(slot: usize) -> usize {
    0x0000_4800_0000_0000 + slot * 0x4000_0000
}

fn map_returns_zeroed_writable_memory_at_a_kernel_chosen_address() -> Result<(), String> {
    let mapping = Mapping::new(0, 4 * PAGE_SIZE, RW)?;
    let (start, end) = (mapping.addr, mapping.addr + mapping.len);
    ensure(
        start.is_multiple_of(PAGE_SIZE) && start >= MMAP_BASE && end <= USER_END,
        || {
            format!(
                "mem_map(0, ..) chose {start:#x}..{end:#x}; expected page-aligned, \
                 from MMAP_BASE {MMAP_BASE:#x} up, below USER_END"
            )
        },
    )?;
    mapping.check_zeroed_and_writable()
}

fn map_at_a_fixed_address_returns_it_zeroed_and_writable() -> Result<(), String> {
    let mapping = Mapping::new(fixed(0), 2 * PAGE_SIZE, RW)?;
    expect_eq("the address mem_map returned", mapping.addr, fixed(0))?;
    mapping.check_zeroed_and_writable()
}

fn kernel_chosen_mappings_do_not_overlap() -> Result<(), String> {
    let a = Mapping::new(0, 3 * PAGE_SIZE, RW)?;
    let b = Mapping::new(0, 3 * PAGE_SIZE, RW)?;
    ensure(a.addr + a.len <= b.addr || b.addr + b.len <= a.addr, || {
        format!(
            "two mem_map(0, 3 pages) calls overlap: {:#x} and {:#x}",
            a.addr, b.addr
        )
    })
}

fn an_overlapping_map_is_refused_with_exists() -> Result<(), String> {
    let base = Mapping::new(fixed(1), 2 * PAGE_SIZE, RW)?;
    let own_code =
        an_overlapping_map_is_refused_with_exists as *const () as usize & !(PAGE_SIZE - 1);
    let cases = [
        ("the same first page", base.addr, PAGE_SIZE),
        (
            "the second page and the one after",
            base.addr + PAGE_SIZE,
            2 * PAGE_SIZE,
        ),
        (
            "the page before and the first page",
            base.addr - PAGE_SIZE,
            2 * PAGE_SIZE,
        ),
        ("a range around it", base.addr - PAGE_SIZE, 4 * PAGE_SIZE),
        ("the top of ktest's stack", STACK_TOP - PAGE_SIZE, PAGE_SIZE),
        ("the start-up record", START_INFO_ADDR, PAGE_SIZE),
        ("ktest's code", own_code, PAGE_SIZE),
    ];
    all(cases.iter().map(|&(what, addr, len)| {
        expect_eq(
            &format!("mem_map over {what}"),
            map(addr, len, RW),
            Err(Error::Exists),
        )
    }))
}

fn touching_unmapped_memory_faults() -> Result<(), String> {
    expect_page_fault(Role::TouchAfterUnmap, SCRATCH_ADDR, page_fault::USER)
}

/// In ktest: the middle page really is gone (unmapping it again finds nothing, mapping it
/// again works) and one unmap can then cover all three. In a child: the ends keep their
/// data and stay writable, and touching the middle faults there.
fn unmapping_the_middle_splits_a_mapping() -> Result<(), String> {
    let mapping = Mapping::new(fixed(2), 3 * PAGE_SIZE, RW)?;
    let middle = mapping.addr + PAGE_SIZE;
    expect_eq(
        "unmapping the middle page",
        unmap(middle, PAGE_SIZE),
        Ok(()),
    )?;
    expect_eq(
        "unmapping the middle page again",
        unmap(middle, PAGE_SIZE),
        Err(Error::NotFound),
    )?;
    expect_eq(
        "mapping the middle page again",
        sys::mem_map(middle, PAGE_SIZE, RW),
        Ok(middle),
    )?;
    expect_eq("unmapping all three pages at once", mapping.unmap(), Ok(()))?;
    let middle = SCRATCH_ADDR + PAGE_SIZE as u64;
    expect_page_fault(Role::SplitUnmap, middle, page_fault::USER)
}

fn a_read_only_page_reads_but_faults_on_write() -> Result<(), String> {
    let mapping = Mapping::new(fixed(3), PAGE_SIZE, RW)?;
    mapping.write(0, 0x77);
    let protected = protect(mapping.addr, PAGE_SIZE, prot::READ);
    expect_eq("making the page read-only", protected, Ok(()))?;
    expect_eq(
        "the byte read back from the read-only page",
        mapping.read(0),
        0x77,
    )?;
    let error_code = page_fault::PRESENT | page_fault::WRITE | page_fault::USER;
    expect_page_fault(Role::WriteAfterProtect, SCRATCH_ADDR, error_code)
}

fn write_and_execute_together_are_refused() -> Result<(), String> {
    let mapping = Mapping::new(fixed(4), PAGE_SIZE, RW)?;
    let refused = Err(Error::WriteExecute);
    let wx = prot::WRITE | prot::EXEC;
    all([
        expect_eq("mem_map with W|X", map(0, PAGE_SIZE, wx), refused),
        expect_eq("mem_map with R|W|X", map(0, PAGE_SIZE, prot::ALL), refused),
        expect_eq(
            "mem_protect to W|X",
            protect(mapping.addr, PAGE_SIZE, wx),
            refused,
        ),
        expect_eq(
            "mem_protect to R|W|X",
            protect(mapping.addr, PAGE_SIZE, prot::ALL),
            refused,
        ),
        match sys::mem_map(0, PAGE_SIZE, prot::READ | prot::EXEC) {
            Ok(addr) => unmap(addr, PAGE_SIZE).context("unmapping the R|X page"),
            Err(error) => Err(format!(
                "mem_map with R|X (allowed under W^X) failed: {error:?}"
            )),
        },
    ])
}

fn unaligned_or_empty_ranges_are_invalid() -> Result<(), String> {
    // Maps go where nothing is mapped and the rest where something is, so that only the
    // range itself can be the reason for a refusal (not Exists or NotFound).
    let mapping = Mapping::new(fixed(5), PAGE_SIZE, RW)?;
    let (free, mapped) = (fixed(6), mapping.addr);
    let invalid = Err(Error::InvalidArgument);
    let ranges = [
        ("an unaligned address", 8, PAGE_SIZE),
        ("a length of 100", 0, 100),
        ("a length of a page plus one", 0, PAGE_SIZE + 1),
        ("a zero length", 0, 0),
    ];
    all(ranges
        .iter()
        .flat_map(|&(what, offset, len)| {
            [
                expect_eq(
                    &format!("mem_map with {what}"),
                    map(free + offset, len, RW),
                    invalid,
                ),
                expect_eq(
                    &format!("mem_unmap with {what}"),
                    unmap(mapped + offset, len),
                    invalid,
                ),
                expect_eq(
                    &format!("mem_protect with {what}"),
                    protect(mapped + offset, len, prot::READ),
                    invalid,
                ),
            ]
        })
        .chain([
            expect_eq(
                "mem_map with an unknown protection bit",
                map(free, PAGE_SIZE, RW | 8),
                invalid,
            ),
            expect_eq(
                "mem_protect with an unknown protection bit",
                protect(mapped, PAGE_SIZE, RW | 8),
                invalid,
            ),
        ]))
}

/// A range that is not wholly user space is a bad address, whichever call it is given to;
/// a length no placement could ever satisfy is a huge length, so an invalid argument.
fn ranges_outside_user_space_are_bad_addresses() -> Result<(), String> {
    let bad = Err(Error::BadAddress);
    let ranges = [
        ("at USER_END", USER_END, PAGE_SIZE),
        ("across USER_END", USER_END - PAGE_SIZE, 2 * PAGE_SIZE),
        ("in the kernel half", KERNEL_ADDR as usize, PAGE_SIZE),
        (
            "wrapping past the top of the address space",
            usize::MAX & !(PAGE_SIZE - 1),
            2 * PAGE_SIZE,
        ),
        ("larger than user space", fixed(7), 1 << 47),
    ];
    all(ranges
        .iter()
        .flat_map(|&(what, addr, len)| {
            [
                expect_eq(&format!("mem_map {what}"), map(addr, len, RW), bad),
                expect_eq(&format!("mem_unmap {what}"), unmap(addr, len), bad),
                expect_eq(&format!("mem_protect {what}"), protect(addr, len, RW), bad),
            ]
        })
        .chain([
            expect_eq("mem_unmap of page 0", unmap(0, PAGE_SIZE), bad),
            expect_eq("mem_protect of page 0", protect(0, PAGE_SIZE, RW), bad),
            expect_eq(
                "mem_map(0, ..) of more than user space holds",
                map(0, 1 << 47, RW),
                Err(Error::InvalidArgument),
            ),
        ]))
}

fn unmapping_or_protecting_nothing_is_not_found() -> Result<(), String> {
    let mapping = Mapping::new(fixed(8), PAGE_SIZE, RW)?;
    let after = mapping.addr + PAGE_SIZE;
    all([
        expect_eq(
            "mem_unmap of an empty range",
            unmap(after, PAGE_SIZE),
            Err(Error::NotFound),
        ),
        expect_eq(
            "mem_protect of an empty range",
            protect(after, PAGE_SIZE, prot::READ),
            Err(Error::NotFound),
        ),
        expect_eq(
            "mem_protect of a half-mapped range",
            protect(mapping.addr, 2 * PAGE_SIZE, prot::READ),
            Err(Error::NotFound),
        ),
    ])
}

/// Mapped in a 512 GiB slot of its own, so the mapping needs fresh page tables at every
/// level: unmapping must give those back too, not only the 16 data frames.
fn map_and_unmap_give_back_every_frame() -> Result<(), String> {
    const PAGES: usize = 16;
    const FRESH_SLOT: usize = 0x0000_5000_0000_0000;
    let before = free_frames()?;
    let mapping = Mapping::new(FRESH_SLOT, PAGES * PAGE_SIZE, RW)?;
    (0..PAGES).for_each(|page| mapping.write(page * PAGE_SIZE, 1));
    let mapped = free_frames()?;
    mapping.unmap().context("mem_unmap")?;
    let after = free_frames()?;
    ensure(mapped + PAGES <= before, || {
        format!(
            "mapping and touching {PAGES} pages took only {} frames \
             ({before} free before, {mapped} after)",
            before as isize - mapped as isize
        )
    })?;
    expect_eq("free frames after map + unmap (vs before)", after, before)
}

/// `mem_map`, with the address dropped (only the verdict matters to these tests).
fn map(addr: usize, len: usize, prot: usize) -> Result<(), Error> {
    sys::mem_map(addr, len, prot).map(drop)
}

/// `mem_unmap` as this suite uses it: on its own fixed slots, which it touches only through
/// volatile accesses (never references), or on ranges the kernel must refuse.
fn unmap(addr: usize, len: usize) -> Result<(), Error> {
    // SAFETY: see above; ktest's stack, code and heap are outside every range passed here.
    unsafe { sys::mem_unmap(addr, len) }
}

/// `mem_protect`, with the same rules as [`unmap`].
fn protect(addr: usize, len: usize, prot: usize) -> Result<(), Error> {
    // SAFETY: as for `unmap`; a page made read-only is never written afterwards here.
    unsafe { sys::mem_protect(addr, len, prot) }
}

/// The runtime puts a read-only page under each thread stack: running into it is a write
/// to a present page, far from the main stack, in the area `mem_map(0, ..)` hands out.
fn a_thread_stack_overflow_faults_on_the_guard_page() -> Result<(), String> {
    let fault = expect_fault(Role::ThreadStackOverflow)?;
    let error_code = page_fault::PRESENT | page_fault::WRITE | page_fault::USER;
    all([
        expect_eq(
            "(vector, error code)",
            (fault.vector, fault.error_code),
            (vector::PAGE_FAULT, error_code),
        ),
        ensure(
            (MMAP_BASE as u64..STACK_TOP as u64 - STACK_SIZE as u64).contains(&fault.address),
            || {
                format!(
                    "the overflow touched {:#x}, not a thread stack's guard page",
                    fault.address
                )
            },
        ),
    ])
}

/// The runtime's heap maps more memory as it is needed, in this case well past its first
/// 64 KiB, and honours page alignment.
fn the_heap_grows_for_large_and_page_aligned_allocations() -> Result<(), String> {
    #[repr(align(4096))]
    struct Page([u8; PAGE_SIZE]);

    let big = vec![0xa5u8; 4 << 20];
    let pages: Vec<Box<Page>> = (0..32).map(|i| Box::new(Page([i; PAGE_SIZE]))).collect();
    all([
        ensure(big.iter().all(|&byte| byte == 0xa5), || {
            String::from("a 4 MiB Vec lost its contents")
        }),
        ensure(
            pages
                .iter()
                .all(|page| (page.0.as_ptr() as usize).is_multiple_of(PAGE_SIZE)),
            || String::from("a page-aligned Box is not page-aligned"),
        ),
        ensure(
            pages
                .iter()
                .zip(0..)
                .all(|(page, i)| page.0.iter().all(|&byte| byte == i)),
            || String::from("page-sized Boxes lost their contents"),
        ),
    ])
}

fn free_frames() -> Result<usize, String> {
    sys::sys_info(SysInfo::FreeFrames).context("sys_info(FreeFrames)")
}

/// A mapping this test owns; unmapped when dropped (errors ignored: the test has already
/// failed if it matters) or explicitly with [`Mapping::unmap`].
struct Mapping {
    addr: usize,
    len: usize,
}

impl Mapping {
    fn new(addr: usize, len: usize, prot: usize) -> Result<Mapping, String> {
        let addr = sys::mem_map(addr, len, prot)
            .context(&format!("mem_map({addr:#x}, {len:#x}, {prot})"))?;
        Ok(Mapping { addr, len })
    }

    /// Reads byte `offset` of the (readable) mapping.
    fn read(&self, offset: usize) -> u8 {
        assert!(offset < self.len);
        // SAFETY: in bounds of a live mapping; volatile, so the read really happens.
        unsafe { ptr::read_volatile((self.addr + offset) as *const u8) }
    }

    /// Writes byte `offset` of the (writable) mapping.
    fn write(&self, offset: usize, value: u8) {
        assert!(offset < self.len);
        // SAFETY: in bounds of a live mapping no reference covers; volatile, so the write
        // really happens.
        unsafe { ptr::write_volatile((self.addr + offset) as *mut u8, value) }
    }

    fn check_zeroed_and_writable(&self) -> Result<(), String> {
        if let Some(offset) = (0..self.len).find(|&offset| self.read(offset) != 0) {
            return Err(format!(
                "new mapping at {:#x} is not zeroed at offset {offset:#x}",
                self.addr
            ));
        }
        let pattern = |offset: usize| (offset / 8) as u8 ^ 0x5a;
        let offsets = (0..self.len).step_by(8);
        offsets
            .clone()
            .for_each(|offset| self.write(offset, pattern(offset)));
        match offsets
            .clone()
            .find(|&offset| self.read(offset) != pattern(offset))
        {
            Some(offset) => Err(format!(
                "new mapping at {:#x} did not keep a byte written at offset {offset:#x}",
                self.addr
            )),
            None => Ok(()),
        }
    }

    fn unmap(self) -> Result<(), Error> {
        let this = ManuallyDrop::new(self);
        unmap(this.addr, this.len)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let _ = unmap(self.addr, self.len);
    }
}

/// The clock page the kernel maps into every process says what `sys_info` says, and moves.
fn the_clock_page_tells_the_kernels_time() -> Result<(), String> {
    let figure = |what| sys::sys_info(what).map(|n| n as u64);
    let before = keel_rt::time::ticks();
    let kernel = figure(SysInfo::Ticks).context("sys_info(Ticks)")?;
    let after = keel_rt::time::ticks();
    keel_rt::time::sleep(core::time::Duration::from_millis(5));
    let later = keel_rt::time::ticks();
    all([
        ensure(before <= kernel && kernel <= after, || {
            format!("the page read {before} and {after} around the kernel's {kernel}")
        }),
        expect_eq(
            "ticks per second",
            Ok(keel_rt::time::tick_hz()),
            figure(SysInfo::TickHz),
        ),
        ensure(later >= after + 5, || {
            format!("5 ms of sleep took the page from {after} to {later}")
        }),
    ])
}

fn the_clock_page_is_read_only() -> Result<(), String> {
    expect_page_fault(
        Role::WriteClock,
        CLOCK_ADDR as u64,
        page_fault::PRESENT | page_fault::WRITE | page_fault::USER,
    )
}

/// kchild's writer on the next core (this one, on one core) loses the page the moment its
/// main thread's `mem_unmap` returns: the TLB shootdown reached it first.
fn a_page_unmapped_on_one_core_faults_on_the_next_at_once() -> Result<(), String> {
    let pid = crate::child::spawn(Role::UnmapAcross, "")?;
    crate::child::expect_success(pid, Role::UnmapAcross)
}
