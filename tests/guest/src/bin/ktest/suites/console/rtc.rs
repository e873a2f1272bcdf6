//! A driver for the CMOS real-time clock's periodic interrupt (ports 0x70-0x71, IRQ 8), to
//! put `keel_rt::driver` through a whole lifecycle on a device that needs no input: it
//! interrupts 64 times a second once enabled, and says in register C whether it did.

use core::cell::Cell;

use keel_rt::driver::{Device, Driver, DriverError, Interrupt, IoPorts, IrqLine};

pub const PORTS: (u16, u16) = (0x70, 2);
pub const LINE: u8 = 8;

const INDEX: u16 = 0;
const DATA: u16 = 1;
/// Register A: the periodic rate in its low four bits.
const REG_A: u8 = 0x0a;
/// Register B: bit 6 enables the periodic interrupt.
const REG_B: u8 = 0x0b;
/// Register C: why the clock interrupted; reading it acknowledges the clock.
const REG_C: u8 = 0x0c;
/// Register D: bit 7 says the clock's RAM and time are valid.
const REG_D: u8 = 0x0d;
const PERIODIC: u8 = 0x40;
const VALID: u8 = 0x80;
/// 32768 Hz >> (10 - 1): 64 interrupts a second.
const RATE_64_HZ: u8 = 10;

/// What the driver was asked to do, for the test to check.
#[derive(Default)]
pub struct Calls {
    pub probed: Cell<bool>,
    pub removed: Cell<bool>,
    pub suspended: Cell<u32>,
    pub resumed: Cell<u32>,
    pub interrupts: Cell<u32>,
}

pub struct Rtc {
    device: Device,
    pub calls: Calls,
}

impl Rtc {
    /// The clock, through capabilities minted for it (ktest has the SYSTEM right).
    pub fn mint() -> Result<Rtc, keel_abi::Error> {
        let device = Device {
            io_ports: alloc::vec![IoPorts::create(PORTS.0, PORTS.1)?],
            irq_lines: alloc::vec![IrqLine::create(LINE)?],
            ..Device::default()
        };
        Ok(Rtc {
            device,
            calls: Calls::default(),
        })
    }

    fn read(&self, register: u8) -> Result<u8, keel_abi::Error> {
        let ports = &self.device.io_ports[0];
        ports.write8(INDEX, register)?;
        ports.read8(DATA)
    }

    fn write(&self, register: u8, value: u8) -> Result<(), keel_abi::Error> {
        let ports = &self.device.io_ports[0];
        ports.write8(INDEX, register)?;
        ports.write8(DATA, value)
    }

    fn set_periodic(&self, on: bool) -> Result<(), keel_abi::Error> {
        let b = self.read(REG_B)?;
        self.write(REG_B, if on { b | PERIODIC } else { b & !PERIODIC })?;
        // A flag raised meanwhile would hold the line up: clear it.
        self.read(REG_C).map(drop)
    }
}

impl Driver for Rtc {
    fn device(&self) -> &Device {
        &self.device
    }

    fn probe(&self) -> Result<(), DriverError> {
        if self.read(REG_D)? & VALID == 0 {
            return Err(DriverError::Device(
                "register D says the clock is not valid",
            ));
        }
        let a = self.read(REG_A)?;
        self.write(REG_A, (a & 0xf0) | RATE_64_HZ)?;
        self.set_periodic(true)?;
        self.calls.probed.set(true);
        Ok(())
    }

    fn remove(&self) {
        let _ = self.set_periodic(false);
        self.calls.removed.set(true);
    }

    fn suspend(&self) -> Result<(), DriverError> {
        self.set_periodic(false)?;
        self.calls.suspended.set(self.calls.suspended.get() + 1);
        Ok(())
    }

    fn resume(&self) -> Result<(), DriverError> {
        self.set_periodic(true)?;
        self.calls.resumed.set(self.calls.resumed.get() + 1);
        Ok(())
    }

    fn interrupt(&self, _line: &IrqLine) -> Interrupt {
        match self.read(REG_C) {
            Ok(c) if c & PERIODIC != 0 => {
                self.calls.interrupts.set(self.calls.interrupts.get() + 1);
                Interrupt::Handled
            }
            _ => Interrupt::NotPending,
        }
    }
}
