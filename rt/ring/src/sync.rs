//! The atomics and cells the ring uses: loom's when model checking, core's otherwise.

#[cfg(loom)]
pub use loom::cell::UnsafeCell;
#[cfg(loom)]
pub use loom::sync::atomic::AtomicU32;

#[cfg(not(loom))]
pub use core::sync::atomic::AtomicU32;

/// A byte of shared memory, with loom's `with`/`with_mut` interface.
#[cfg(not(loom))]
#[repr(transparent)]
#[derive(Default)]
pub struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

// SAFETY: the ring protocol gives each byte one writer at a time, and publishes writes with
// release/acquire on the counters before the other side reads them.
#[cfg(not(loom))]
unsafe impl<T: Send> Sync for UnsafeCell<T> {}

/// View `len` bytes of shared memory at `ptr` as ring cells.
///
/// # Safety
/// The memory is mapped for the ring's lifetime `'a` and used only through rings.
#[cfg(not(loom))]
pub unsafe fn cells<'a>(ptr: *mut u8, len: usize) -> &'a [UnsafeCell<u8>] {
    // SAFETY: UnsafeCell<u8> is a transparent u8; the caller vouches for the memory.
    unsafe { core::slice::from_raw_parts(ptr as *const UnsafeCell<u8>, len) }
}
