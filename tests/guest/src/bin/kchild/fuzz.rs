//! Random syscalls: numbers and arguments drawn from values that sit on the edges the
//! kernel must check (null, kernel and non-canonical addresses, huge lengths, handles
//! forged, stale or of every kind), on a few threads at once, until killed or until a
//! given number of calls is made. Nothing waits
//! (a wait is time not spent calling): sleeps and receives get no timeout, and calls and
//! reply-and-receives are not made through the ports the fuzzer made itself, which no
//! one answers.

use core::sync::atomic::{AtomicU64, Ordering};

use keel_abi::Syscall;
use keel_abi::layout::{PAGE_SIZE, USER_END};
use keel_abi::prot;
use keel_guest_tests::{KERNEL_ADDR, SCRATCH_ADDR};
use keel_rt::mem::Memory;
use keel_rt::{sys, thread};

use crate::{Failure, OrSetup};

/// Threads making calls, the main one included.
const THREADS: u64 = 4;

/// Calls that would end the fuzzer or pull its own memory from under it: not made.
const SPARED: [Syscall; 6] = [
    Syscall::ThreadExit,
    Syscall::ProcessExit,
    Syscall::MemUnmap,
    Syscall::MemProtect,
    Syscall::ThreadCreate,
    // Garbage on the serial line would garble the test log.
    Syscall::DebugWrite,
];

/// Slot indices of the capabilities `port_create` and `cap_derive` returned, a bit each
/// (every slot of a capability space).
static MADE_HERE: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Memory of its own the kernel may be pointed at, read and write.
static mut SCRATCH: [u64; 1024] = [0; 1024];

/// Where the counter page keeps what it counts, in words.
pub mod word {
    /// Calls made.
    pub const CALLS: usize = 0;
    /// Calls that succeeded.
    pub const SUCCEEDED: usize = 1;
    /// Calls refused with error `e` are counted in word `REFUSED + e`.
    pub const REFUSED: usize = 2;
}

/// Caps: 1 = a memory object (a page) counting the syscalls made ([`word`]). Argument
/// `SEED [CALLS]`: with CALLS, exit 0 once that many are made.
pub fn fuzz(arg: &str) -> Result<i32, Failure> {
    let mut words = arg.split(' ');
    let seed: u64 = words
        .next()
        .and_then(|seed| seed.parse().ok())
        .ok_or_else(|| Failure::check("`fuzz` wants a seed"))?;
    let limit: u64 = match words.next() {
        Some(calls) => calls
            .parse()
            .map_err(|_| Failure::check("`fuzz` wants a number of calls"))?,
        None => u64::MAX,
    };
    let counter = Memory::from_handle(1)
        .map_at(SCRATCH_ADDR as usize, prot::READ | prot::WRITE)
        .or_setup("mapping the counter")?;
    let count = counter.as_ptr() as usize;
    // The mapping stays for the process's life: handle 1 is never deleted.
    for i in 1..THREADS {
        thread::spawn(move || call_at_random(seed.wrapping_mul(i + 1), count, limit))
            .or_setup("thread::spawn")?;
    }
    call_at_random(seed, count, limit);
    Ok(0)
}

/// Counter word `index` of the page at `count`.
fn counter(count: usize, index: usize) -> &'static AtomicU64 {
    // SAFETY: the counter page is mapped for the process's life and page-aligned; its
    // words are only ever used as atomics, and `index` stays within the page.
    unsafe { AtomicU64::from_ptr((count as *mut u64).add(index % (PAGE_SIZE / 8))) }
}

/// Random calls until `limit` are made, each counted on the page at `count`.
fn call_at_random(mut x: u64, count: usize, limit: u64) {
    let made = counter(count, word::CALLS);
    let me = keel_rt::process::id() as usize;
    let scratch = (&raw mut SCRATCH) as usize;
    let values = [
        0,
        1,
        2,
        3,
        7,
        64,
        PAGE_SIZE,
        0x1_0001,
        0xffff,
        u32::MAX as usize,
        scratch,
        scratch + 4093,
        // Not the counter page: what the kernel writes there would garble the counts.
        // Read-only pages: the start-up record and the clock.
        keel_abi::layout::START_INFO_ADDR,
        keel_abi::layout::CLOCK_ADDR + 8,
        USER_END - 8,
        USER_END,
        KERNEL_ADDR as usize,
        1 << 47,
        1 << 63,
        1 << 40,
        usize::MAX,
    ];
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    loop {
        let number = next() as usize % (Syscall::COUNT + 2);
        let call = Syscall::from_raw(number);
        if call.is_some_and(|call| SPARED.contains(&call)) {
            continue;
        }
        let mut args = [0usize; 6];
        for arg in &mut args {
            let pick = next();
            *arg = if pick % 8 == 0 {
                pick as usize
            } else {
                values[(pick >> 8) as usize % values.len()]
            };
        }
        match call {
            // Handle 1 stays: it holds the counter's mapping. Nor is it mapped again, or
            // copied to be: the kernel would write figures into the counts through the alias.
            Some(
                Syscall::CapDelete
                | Syscall::CapRevoke
                | Syscall::MemMapObject
                | Syscall::CapDerive,
            ) if args[0] == 1 => continue,
            // Killing itself would end the campaign early (2, its pid in a fresh boot, is
            // one of the values).
            Some(Syscall::ProcessKill) if args[0] == me => continue,
            Some(Syscall::ThreadSleep) => args[0] = 0,
            Some(Syscall::PortRecv) => args[1] = 0,
            Some(Syscall::PortCall | Syscall::PortReplyRecv) if made_here(args[0]) => continue,
            _ => {}
        }
        // SAFETY: the calls that could end this process or unmap its memory are spared; the
        // pointers handed over are scratch memory, the counter page, or not ours at all, so
        // whatever the kernel writes lands where nothing Rust relies on lives.
        let result = unsafe { sys::raw::syscall(number, args) };
        if let (Some(Syscall::PortCreate | Syscall::CapDerive), Ok(handle)) = (call, result)
            && let Some(bits) = MADE_HERE.get((handle & 0xffff) / 64)
        {
            bits.fetch_or(1 << (handle % 64), Ordering::Relaxed);
        }
        let tally = match result {
            Ok(_) => word::SUCCEEDED,
            Err(error) => word::REFUSED + error as usize,
        };
        counter(count, tally).fetch_add(1, Ordering::Relaxed);
        if made.fetch_add(1, Ordering::Relaxed) + 1 >= limit {
            sys::process_exit(0);
        }
    }
}

fn made_here(handle: usize) -> bool {
    let index = handle & 0xffff;
    MADE_HERE
        .get(index / 64)
        .is_some_and(|bits| bits.load(Ordering::Relaxed) & (1 << (index % 64)) != 0)
}
