//! What a program built for a hard-float target (x86_64-unknown-linux-gnu, no_std, linked
//! statically without libc: docs/decisions/008-hard-float-programs.md) needs and libc would
//! have given it: the memory functions the compiler calls, and the personality symbol the
//! precompiled `alloc` refers to (never called: these programs abort on panic).

use core::arch::asm;

/// # Safety
/// As C's `memset`: `dst` is valid for `n` bytes of writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, value: i32, n: usize) -> *mut u8 {
    // SAFETY: per the caller; `rep stosb` writes exactly `n` bytes from `dst` upwards (DF is
    // clear, as the ABI requires).
    unsafe {
        asm!("rep stosb", inout("rdi") dst => _, inout("rcx") n => _, in("al") value as u8,
            options(nostack, preserves_flags))
    };
    dst
}

/// # Safety
/// As C's `memcpy`: both ranges valid for `n` bytes, not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: per the caller; `rep movsb` copies `n` bytes upwards.
    unsafe {
        asm!("rep movsb", inout("rdi") dst => _, inout("rsi") src => _, inout("rcx") n => _,
            options(nostack, preserves_flags))
    };
    dst
}

/// # Safety
/// As C's `memmove`: both ranges valid for `n` bytes; they may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if n == 0 || (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize) + n {
        // SAFETY: per the caller; copying upwards never reads a byte already overwritten.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: per the caller; the destination lies above the source, so the copy runs
    // downwards (DF set, then cleared again as the ABI requires) from the last byte.
    unsafe {
        asm!("std", "rep movsb", "cld", inout("rdi") dst.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _, inout("rcx") n => _, options(nostack))
    };
    dst
}

/// # Safety
/// As C's `memcmp`: both ranges valid for `n` bytes of reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: per the caller. Volatile, so the loop is not turned back into a call of
        // this very function.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// As [`memcmp`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: per the caller.
    unsafe { memcmp(a, b, n) }
}

/// The unwinding personality the precompiled `alloc` names; never called, since these
/// programs are built with `panic = abort`.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}
