//! User memory as the kernel sees it: an address and length alleged by user space, usable only
//! once checked against the caller's regions.
//!
//! A check and the copy that follows happen inside one syscall, on the only CPU, with
//! interrupts off, so the mapping cannot change in between.

use super::space::AddressSpace;
use crate::arch::cpu::with_user_access;
use keel_abi::Error;

/// `len` bytes at `addr` in the calling process: an allegation until checked.
#[derive(Clone, Copy, Debug)]
pub struct UserSlice {
    addr: usize,
    len: usize,
}

impl UserSlice {
    pub fn new(addr: usize, len: usize) -> Self {
        UserSlice { addr, len }
    }

    /// A slice the size of `T` at `addr`.
    pub fn of<T>(addr: usize) -> Self {
        UserSlice::new(addr, core::mem::size_of::<T>())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Copy out of user memory into `buf` (which must be `len` bytes).
    pub fn read_into(&self, space: &AddressSpace, buf: &mut [u8]) -> Result<(), Error> {
        debug_assert_eq!(buf.len(), self.len);
        space.check_access(self.addr, self.len, false)?;
        with_user_access(|| {
            // SAFETY: the range is mapped readable user memory (checked above) and cannot
            // change before the copy finishes.
            unsafe {
                core::ptr::copy_nonoverlapping(self.addr as *const u8, buf.as_mut_ptr(), self.len)
            }
        });
        Ok(())
    }

    /// Copy into a fresh kernel buffer, refusing (not panicking) when the heap is short.
    pub fn read_vec(&self, space: &AddressSpace) -> Result<alloc::vec::Vec<u8>, Error> {
        space.check_access(self.addr, self.len, false)?;
        let mut buf = alloc::vec::Vec::new();
        buf.try_reserve_exact(self.len)
            .map_err(|_| Error::OutOfMemory)?;
        buf.resize(self.len, 0);
        self.read_into(space, &mut buf)?;
        Ok(buf)
    }

    /// [`read_into`](Self::read_into) for a range already checked readable.
    ///
    /// # Safety
    /// `check_access` accepted the range for reading in the current address space, and no
    /// region went or lost rights since (its epoch is unchanged).
    pub unsafe fn read_checked(&self, buf: &mut [u8]) {
        let len = buf.len().min(self.len);
        with_user_access(|| {
            // SAFETY: per the caller, the range is mapped readable user memory.
            unsafe { core::ptr::copy_nonoverlapping(self.addr as *const u8, buf.as_mut_ptr(), len) }
        });
    }

    /// [`write`](Self::write) for a range already checked writable.
    ///
    /// # Safety
    /// As for [`read_checked`](Self::read_checked), checked for writing.
    pub unsafe fn write_checked(&self, bytes: &[u8]) {
        let len = bytes.len().min(self.len);
        with_user_access(|| {
            // SAFETY: per the caller, the range is mapped writable user memory.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.addr as *mut u8, len) }
        });
    }

    /// Copy a plain-data value out of user memory.
    pub fn read_value<T: Copy>(&self, space: &AddressSpace) -> Result<T, Error> {
        debug_assert_eq!(self.len, core::mem::size_of::<T>());
        space.check_access(self.addr, self.len, false)?;
        Ok(with_user_access(|| {
            // SAFETY: checked readable above; `T: Copy` is plain data for which every bit
            // pattern the ABI allows is valid (ABI structs hold only integers).
            unsafe { core::ptr::read_unaligned(self.addr as *const T) }
        }))
    }

    /// Copy `bytes` (at most `len`) into user memory.
    pub fn write(&self, space: &AddressSpace, bytes: &[u8]) -> Result<(), Error> {
        let len = bytes.len().min(self.len);
        space.check_access(self.addr, len, true)?;
        with_user_access(|| {
            // SAFETY: the range is mapped writable user memory (checked above).
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.addr as *mut u8, len) }
        });
        Ok(())
    }

    /// Copy a plain-data value into user memory.
    pub fn write_value<T: Copy>(&self, space: &AddressSpace, value: &T) -> Result<(), Error> {
        // SAFETY: `T` is a plain-data ABI struct; viewing it as bytes is sound.
        let bytes = unsafe {
            core::slice::from_raw_parts(value as *const T as *const u8, core::mem::size_of::<T>())
        };
        self.write(space, bytes)
    }
}

/// `capacity` plain-data records at `addr` that a syscall fills: the whole array the caller
/// declares is checked, even when fewer records are written.
pub struct UserArray<T> {
    addr: usize,
    capacity: usize,
    records: core::marker::PhantomData<T>,
}

impl<T: Copy> UserArray<T> {
    pub fn new(addr: usize, capacity: usize) -> Self {
        UserArray {
            addr,
            capacity,
            records: core::marker::PhantomData,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Ok when the whole array is writable user memory (an empty one always is).
    pub fn check(&self, space: &AddressSpace) -> Result<(), Error> {
        let len = self
            .capacity
            .checked_mul(core::mem::size_of::<T>())
            .ok_or(Error::BadAddress)?;
        space.check_access(self.addr, len, true)
    }

    /// Write `records` from the front, as many as fit; how many were written.
    pub fn write(&self, space: &AddressSpace, records: &[T]) -> Result<usize, Error> {
        self.check(space)?;
        let size = core::mem::size_of::<T>();
        for (i, record) in records.iter().take(self.capacity).enumerate() {
            UserSlice::of::<T>(self.addr + i * size).write_value(space, record)?;
        }
        Ok(records.len().min(self.capacity))
    }
}
