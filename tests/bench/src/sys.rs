//! The syscalls kbench makes around its timed loops, written out here rather than taken from
//! the runtime: the benchmarks must stay the same while the runtime's IPC layer changes, and
//! the message-passing calls return six registers that a plain syscall wrapper would lose.

use core::arch::asm;

use keel_abi::cap::Handle;
use keel_abi::ipc::MessageInfo;
use keel_abi::{Error, Syscall, decode_result};

/// `port_recv`'s timeout meaning "wait for ever".
pub const FOREVER: u64 = u64::MAX;

/// A syscall number that names no syscall: the kernel's cheapest answer.
pub const NO_SYSCALL: usize = usize::MAX;

/// A received message, as the kernel leaves it in the registers.
#[derive(Clone, Copy, Debug)]
pub struct Message {
    pub info: MessageInfo,
    pub words: [u64; 4],
}

/// A syscall that takes no more than three arguments and returns only `rax`.
#[inline(always)]
fn simple(number: Syscall, args: [usize; 3]) -> Result<usize, Error> {
    let rax: usize;
    // SAFETY: for these calls the kernel changes only rax, rcx and r11 and never touches
    // the user stack; none of them writes memory that Rust code here owns (they create
    // objects, map fresh pages, register the IPC buffer, notify or delete capabilities).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number as usize => rax,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    decode_result(rax)
}

/// A syscall that may return a message: `rdi, rsi, rdx, r10, r8, r9` come back changed.
#[inline(always)]
fn message(number: Syscall, handle: Handle, arg: u64, words: [u64; 4]) -> Result<Message, Error> {
    let rax: usize;
    let (info, w0, w1, w2, w3): (u64, u64, u64, u64, u64);
    // SAFETY: the kernel changes only the registers declared here and, for a payload, the
    // thread's IPC buffer, a page registered for that alone (see `IpcPage`).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number as usize => rax,
            inlateout("rdi") u64::from(handle) => _,
            inlateout("rsi") arg => info,
            inlateout("rdx") words[0] => w0,
            inlateout("r10") words[1] => w1,
            inlateout("r8") words[2] => w2,
            inlateout("r9") words[3] => w3,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    decode_result(rax)?;
    Ok(Message {
        info: MessageInfo(info),
        words: [w0, w1, w2, w3],
    })
}

/// Waits for a message or notification on `port`.
#[inline(always)]
pub fn port_recv(port: Handle, timeout_ns: u64) -> Result<Message, Error> {
    message(Syscall::PortRecv, port, timeout_ns, [0; 4])
}

/// Notifies `signal` with `bits` and waits on `port`, in one syscall.
#[inline(always)]
pub fn port_signal_recv(signal: Handle, bits: u64, port: Handle) -> Result<Message, Error> {
    message(
        Syscall::PortSignalRecv,
        signal,
        bits,
        [port.into(), FOREVER, 0, 0],
    )
}

/// Sends a call and waits for its answer.
#[inline(always)]
pub fn port_call(port: Handle, info: MessageInfo, words: [u64; 4]) -> Result<Message, Error> {
    message(Syscall::PortCall, port, info.0, words)
}

/// Answers the call received last, then waits on `port`.
#[inline(always)]
pub fn port_reply_recv(port: Handle, info: MessageInfo, words: [u64; 4]) -> Result<Message, Error> {
    message(Syscall::PortReplyRecv, port, info.0, words)
}

/// Queues a message without waiting (here: only to stop a server).
pub fn port_send(port: Handle, info: MessageInfo, words: [u64; 4]) -> Result<(), Error> {
    message(Syscall::PortSend, port, info.0, words).map(drop)
}

/// ORs `bits` into `port`'s notification word.
#[inline(always)]
pub fn port_notify(port: Handle, bits: u64) -> Result<(), Error> {
    simple(Syscall::PortNotify, [port as usize, bits as usize, 0]).map(drop)
}

/// A new port queueing at most `capacity` messages.
pub fn port_create(capacity: usize) -> Result<Handle, Error> {
    simple(Syscall::PortCreate, [capacity, 0, 0]).map(|handle| handle as Handle)
}

/// A new memory object of `len` zeroed bytes.
pub fn mem_create(len: usize) -> Result<Handle, Error> {
    simple(Syscall::MemCreate, [len, 0, 0]).map(|handle| handle as Handle)
}

/// Maps memory object `handle` wherever the kernel chooses; returns the address.
pub fn mem_map_object(handle: Handle, prot: usize) -> Result<usize, Error> {
    simple(Syscall::MemMapObject, [handle as usize, 0, prot])
}

/// Drops a capability (and, for memory, its mapping).
pub fn cap_delete(handle: Handle) -> Result<(), Error> {
    simple(Syscall::CapDelete, [handle as usize, 0, 0]).map(drop)
}

/// Registers the calling thread's IPC buffer (0: none).
///
/// # Safety
///
/// From now on the kernel writes received payloads to `addr`: it must be a page that
/// nothing else uses for as long as it stays registered.
pub unsafe fn ipc_buffer_set(addr: usize) -> Result<(), Error> {
    simple(Syscall::IpcBufferSet, [addr, 0, 0]).map(drop)
}

/// A syscall with a number the kernel does not know, which must say so.
pub fn no_syscall() -> Result<usize, Error> {
    let rax: usize;
    // SAFETY: the kernel rejects the number without acting on anything.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") NO_SYSCALL => rax,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack, nomem),
        );
    }
    decode_result(rax)
}

/// Gives up the rest of the time slice.
#[inline(always)]
pub fn thread_yield() {
    // SAFETY: no arguments and no effect on this process's memory; `thread_yield` cannot fail.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") Syscall::ThreadYield as usize => _,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
}
