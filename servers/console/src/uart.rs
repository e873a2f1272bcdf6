//! The 16550 UART, register by register, through an I/O port capability.
//!
//! Every access is a syscall, so the driver reads the line status once per FIFO load
//! rather than once per byte: when the transmit holding register is empty with FIFOs on,
//! the whole 16-byte transmit FIFO is free.

use keel_rt::abi::Error;
use keel_rt::driver::{DriverError, IoPorts};

/// Register offsets from the base port.
mod reg {
    /// Receive buffer (read) or transmit holding register (write); divisor low with DLAB.
    pub const DATA: u16 = 0;
    /// Interrupt enable; divisor high with DLAB.
    pub const IER: u16 = 1;
    /// Interrupt identification (read) or FIFO control (write).
    pub const IIR_FCR: u16 = 2;
    pub const LCR: u16 = 3;
    pub const MCR: u16 = 4;
    pub const LSR: u16 = 5;
    pub const MSR: u16 = 6;
    pub const SCRATCH: u16 = 7;
}

/// Interrupt enable bits.
mod ier {
    pub const RX_AVAILABLE: u8 = 1;
    pub const TX_EMPTY: u8 = 2;
    pub const LINE_STATUS: u8 = 4;
}

/// Interrupt identification: bit 0 clear means an interrupt is pending; bits 1..3 say which.
mod iir {
    pub const NONE_PENDING: u8 = 1;
    pub const CAUSE: u8 = 0x0e;
    pub const MODEM_STATUS: u8 = 0x00;
    pub const TX_EMPTY: u8 = 0x02;
}

const FCR_ENABLE_FIFOS: u8 = 0x01;
const FCR_CLEAR_TX: u8 = 0x04;
/// Interrupt when 14 bytes wait, or when fewer have waited four character times.
const FCR_TRIGGER_14: u8 = 0xc0;
const LCR_8N1: u8 = 0x03;
const LCR_DIVISOR_LATCH: u8 = 0x80;
/// 115200 baud: the 1.8432 MHz clock / 16 / 1.
const DIVISOR: u8 = 1;
/// DTR, RTS, and OUT2, which on PCs gates the UART's interrupt onto the bus.
const MCR_ON: u8 = 0x0b;
const MCR_LOOPBACK: u8 = 0x10;
const LSR_DATA_READY: u8 = 0x01;
const LSR_TX_EMPTY: u8 = 0x20;

/// Bytes the transmit FIFO holds.
pub const FIFO_SIZE: usize = 16;
/// How many status reads a loopback byte may take to come back.
const LOOPBACK_POLLS: usize = 1000;

/// Why the UART interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Received data, a receive timeout, or a line status change: read until empty.
    Receive,
    /// The transmit FIFO emptied.
    TransmitEmpty,
    /// Modem lines changed (nothing the console uses).
    ModemStatus,
}

/// A UART at the start of an I/O port range.
#[derive(Clone, Copy)]
pub struct Uart<'a> {
    ports: &'a IoPorts,
}

impl<'a> Uart<'a> {
    pub fn new(ports: &'a IoPorts) -> Self {
        Uart { ports }
    }

    /// Whether a working 16550 is there: the scratch register keeps a value, and in
    /// loopback mode a byte sent comes back. Bytes already received are handed to
    /// `received` first, so nothing typed before the driver started is lost.
    pub fn probe(&self, mut received: impl FnMut(u8)) -> Result<(), DriverError> {
        if self.ports.len() < 8 {
            return Err(DriverError::Device("a 16550 needs 8 ports"));
        }
        self.ports.write8(reg::SCRATCH, 0x5a)?;
        if self.ports.read8(reg::SCRATCH)? != 0x5a {
            return Err(DriverError::Device("no UART: the scratch register forgets"));
        }
        self.ports.write8(reg::IER, 0)?;
        while let Some(byte) = self.read_byte()? {
            received(byte);
        }
        self.ports.write8(reg::MCR, MCR_LOOPBACK)?;
        let echoed = self.loopback(0xa5);
        self.ports.write8(reg::MCR, MCR_ON)?;
        match echoed? {
            Some(0xa5) => Ok(()),
            _ => Err(DriverError::Device("the UART's loopback lost a byte")),
        }
    }

    fn loopback(&self, byte: u8) -> Result<Option<u8>, Error> {
        self.ports.write8(reg::DATA, byte)?;
        for _ in 0..LOOPBACK_POLLS {
            if let Some(byte) = self.read_byte()? {
                return Ok(Some(byte));
            }
        }
        Ok(None)
    }

    /// 115200 baud, 8N1, FIFOs on, interrupts off.
    pub fn configure(&self) -> Result<(), Error> {
        let ports = self.ports;
        ports.write8(reg::IER, 0)?;
        ports.write8(reg::LCR, LCR_DIVISOR_LATCH)?;
        // With the divisor latch open, DATA and IER are the divisor's low and high bytes.
        ports.write8(reg::DATA, DIVISOR)?;
        ports.write8(reg::IER, 0)?;
        ports.write8(reg::LCR, LCR_8N1)?;
        // The receive FIFO is not cleared: it may hold what was typed meanwhile.
        ports.write8(
            reg::IIR_FCR,
            FCR_ENABLE_FIFOS | FCR_CLEAR_TX | FCR_TRIGGER_14,
        )?;
        ports.write8(reg::MCR, MCR_ON)
    }

    /// Interrupt on received data and line status, and on an empty transmit FIFO if
    /// `transmit`; none at all if `enabled` is false.
    pub fn set_interrupts(&self, enabled: bool, transmit: bool) -> Result<(), Error> {
        let mut bits = 0;
        if enabled {
            bits = ier::RX_AVAILABLE | ier::LINE_STATUS;
            if transmit {
                bits |= ier::TX_EMPTY;
            }
        }
        self.ports.write8(reg::IER, bits)
    }

    /// The interrupt pending, if any. Reading it acknowledges a transmit-empty interrupt.
    pub fn pending(&self) -> Result<Option<Cause>, Error> {
        let iir = self.ports.read8(reg::IIR_FCR)?;
        if iir & iir::NONE_PENDING != 0 {
            return Ok(None);
        }
        Ok(Some(match iir & iir::CAUSE {
            iir::TX_EMPTY => Cause::TransmitEmpty,
            iir::MODEM_STATUS => Cause::ModemStatus,
            _ => Cause::Receive,
        }))
    }

    /// Acknowledge a modem status interrupt.
    pub fn clear_modem_status(&self) -> Result<(), Error> {
        self.ports.read8(reg::MSR).map(drop)
    }

    /// The next received byte, if one is waiting. Reading the status also clears line
    /// errors (overrun, framing), which the console cannot do more about.
    pub fn read_byte(&self) -> Result<Option<u8>, Error> {
        if self.ports.read8(reg::LSR)? & LSR_DATA_READY == 0 {
            return Ok(None);
        }
        self.ports.read8(reg::DATA).map(Some)
    }

    /// Whether the transmit FIFO is empty, so [`FIFO_SIZE`] bytes may be written.
    pub fn can_transmit(&self) -> Result<bool, Error> {
        Ok(self.ports.read8(reg::LSR)? & LSR_TX_EMPTY != 0)
    }

    pub fn write_byte(&self, byte: u8) -> Result<(), Error> {
        self.ports.write8(reg::DATA, byte)
    }

    /// Send `bytes` without interrupts, waiting for the FIFO to empty before each load.
    pub fn send_polled(&self, bytes: &[u8]) -> Result<(), Error> {
        for load in bytes.chunks(FIFO_SIZE) {
            while !self.can_transmit()? {
                core::hint::spin_loop();
            }
            load.iter().try_for_each(|&byte| self.write_byte(byte))?;
        }
        Ok(())
    }
}
