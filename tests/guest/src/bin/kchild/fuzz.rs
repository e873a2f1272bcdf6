//! Random syscalls: numbers and arguments drawn from values that sit on the edges the
//! kernel must check (null, kernel and non-canonical addresses, huge lengths, handles
//! forged, stale or of every kind), on a few threads at once, until killed. Nothing waits
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

/// Slot indices (below 64) of the capabilities `port_create` and `cap_derive` returned.
static MADE_HERE: AtomicU64 = AtomicU64::new(0);

/// Memory of its own the kernel may be pointed at, read and write.
static mut SCRATCH: [u64; 1024] = [0; 1024];

/// Caps: 1 = a memory object (a page) whose word 0 counts the syscalls made.
pub fn fuzz(seed: &str) -> Result<i32, Failure> {
    let seed: u64 = seed
        .parse()
        .map_err(|_| Failure::check("`fuzz` wants a seed"))?;
    let counter = Memory::from_handle(1)
        .map_at(SCRATCH_ADDR as usize, prot::READ | prot::WRITE)
        .or_setup("mapping the counter")?;
    let count = counter.as_ptr() as usize;
    // The mapping stays for the process's life: handle 1 is never deleted.
    for i in 1..THREADS {
        thread::spawn(move || call_at_random(seed.wrapping_mul(i + 1), count))
            .or_setup("thread::spawn")?;
    }
    call_at_random(seed, count);
    Ok(0)
}

/// Random calls for ever, each counted in the word at `count`.
fn call_at_random(mut x: u64, count: usize) {
    // SAFETY: the counter page is mapped for the process's life, aligned, and only ever
    // used as this one atomic word.
    let made = unsafe { AtomicU64::from_ptr(count as *mut u64) };
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
        count,
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
            // Handle 1 stays: it holds the counter's mapping.
            Some(Syscall::CapDelete | Syscall::CapRevoke) if args[0] == 1 => continue,
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
            && handle & 0xffff < 64
        {
            MADE_HERE.fetch_or(1 << (handle & 0xffff), Ordering::Relaxed);
        }
        made.fetch_add(1, Ordering::Relaxed);
    }
}

fn made_here(handle: usize) -> bool {
    let index = handle & 0xffff;
    index < 64 && MADE_HERE.load(Ordering::Relaxed) & (1 << index) != 0
}
