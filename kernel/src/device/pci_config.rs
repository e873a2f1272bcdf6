//! PCI configuration space through the legacy mechanism (an address written to port 0xcf8,
//! data at 0xcfc..0xd00), for machines without ECAM (QEMU's `pc`). The address register is
//! shared by every function, so it cannot be granted: the kernel makes each access itself,
//! for a capability naming the function, with address and data paired under one lock.

use core::ops::Range;

use keel_abi::Error;
use keel_abi::pci::{ALL_FUNCTIONS, LEGACY_SIZE};
use spin::Mutex;
use x86_64::instructions::port::Port;

/// The mechanism's ports, which no I/O port capability may cover.
pub const PORTS: Range<u32> = 0xcf8..0xd00;
const ADDRESS_PORT: u16 = 0xcf8;
const DATA_PORT: u16 = 0xcfc;
/// Set in the address register for a configuration cycle.
const ENABLE: u32 = 1 << 31;

/// Held from writing the address register to the data access it selects.
static MECHANISM: Mutex<()> = Mutex::new(());

/// Whether `function` names one function or all of them.
pub fn is_valid(function: usize) -> bool {
    function <= 0xffff || function == ALL_FUNCTIONS
}

/// One access a capability allows: `width` bytes at `register` of `function`.
pub struct Access {
    function: u32,
    register: u32,
    width: usize,
}

impl Access {
    /// The access at `address` (`function << 12 | register`) with a capability to
    /// `functions`: `MissingRight` for another function, `InvalidArgument` for a register
    /// the mechanism cannot reach or a width it does not have.
    pub fn checked(functions: u32, address: usize, width: usize) -> Result<Access, Error> {
        let (function, register) = (address >> 12, address & 0xfff);
        let aligned = matches!(width, 1 | 2 | 4) && register.is_multiple_of(width);
        if !aligned || register >= LEGACY_SIZE || function > 0xffff {
            return Err(Error::InvalidArgument);
        }
        if functions as usize != ALL_FUNCTIONS && functions as usize != function {
            return Err(Error::MissingRight);
        }
        Ok(Access {
            function: function as u32,
            register: register as u32,
            width,
        })
    }

    /// Select the register's dword; the data port plus the byte offset reads or writes it.
    fn select(&self) -> u16 {
        let address = ENABLE | self.function << 8 | (self.register & !3);
        // SAFETY: port 0xcf8 is the configuration address register, which only this module
        // touches (I/O port capabilities cannot cover it); selecting has no other effect.
        unsafe { Port::<u32>::new(ADDRESS_PORT).write(address) };
        DATA_PORT + (self.register & 3) as u16
    }

    pub fn read(&self) -> u32 {
        let _paired = MECHANISM.lock();
        let data = self.select();
        // SAFETY: a configuration register the capability covers; reading it cannot touch
        // memory.
        unsafe {
            match self.width {
                1 => Port::<u8>::new(data).read().into(),
                2 => Port::<u16>::new(data).read().into(),
                _ => Port::<u32>::new(data).read(),
            }
        }
    }

    pub fn write(&self, value: u32) {
        let _paired = MECHANISM.lock();
        let data = self.select();
        // SAFETY: as for `read`; the value goes to the function the capability names, which
        // its holder was trusted with (the manifest's grant).
        unsafe {
            match self.width {
                1 => Port::<u8>::new(data).write(value as u8),
                2 => Port::<u16>::new(data).write(value as u16),
                _ => Port::<u32>::new(data).write(value),
            }
        }
    }
}
