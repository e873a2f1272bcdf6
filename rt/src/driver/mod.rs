//! Device drivers in user space: the lifecycle a driver implements, typed access to the
//! device capabilities it was given, and the loop that feeds it interrupts.
//!
//! A driver is a process. The system (init, from its manifest) mints capabilities to the
//! device's I/O port ranges, interrupt lines, registers (a PCI function's configuration
//! page and BARs, as [`DeviceMemory`]; without ECAM, configuration space as a
//! [`PciConfig`]) and, for the console, the kernel log, and
//! starts the driver with them (docs/SYSTEM.md: handles 2..). [`Device::from_start_caps`]
//! collects them. The driver implements [`Driver`], the seed's `driver_ops` as a trait:
//!
//! | `driver_ops` | [`Driver`] | called |
//! |---|---|---|
//! | `probe` | [`probe`](Driver::probe) | once, by [`Runner::start`], before the lines are bound |
//! | `handle_interrupt` | [`interrupt`](Driver::interrupt) | per interrupt on a line, before its ack |
//! | `suspend`, `resume` | [`suspend`](Driver::suspend), [`resume`](Driver::resume) | on [`Control`] requests |
//! | `remove` | [`remove`](Driver::remove) | once, when the runner stops |
//!
//! ```ignore
//! let runner = driver::Runner::start(Rc::new(Uart::new(Device::from_start_caps()?)))?;
//! let control = runner.control(); // suspend, resume, stop
//! executor::spawn(runner.run());  // interrupts, acks, until stopped
//! ```
//!
//! Interrupts arrive as notifications on the executor's wake port
//! ([`wake::port`](crate::executor::wake::port)), one bit per line ([`irq_bit`]), so a
//! driver is an ordinary async program: the same executor serves its clients. Methods take
//! `&self` for that reason: the driver's state is shared between the interrupt loop and the
//! service, on one thread, behind `Cell`s and `RefCell`s.
//!
//! A bound line masks itself on each interrupt until acknowledged. The runner acks after
//! [`Driver::interrupt`] returns, then asks the driver again until it finds nothing
//! pending: the legacy lines are edge-triggered, and an edge that comes while the line is
//! masked is lost, so work that arrived meanwhile is found by looking, not by waiting.
//!
//! [`DmaBuffer`]s are physically contiguous, pinned memory for devices that read and write
//! on their own, with the physical address to program them with.

mod device;
mod dma;
pub mod pci;
mod runner;

pub use device::{Device, DeviceMemory, IoPorts, IrqLine, KernelLog, PciConfig};
pub use dma::DmaBuffer;
pub use pci::PciFunction;
pub use runner::{Control, Runner, State, run};

use alloc::rc::Rc;
use core::fmt;
use keel_abi::Error;

/// The first wake-port notification bit for interrupt lines: line `n` signals bit
/// `IRQ_BITS + n`. Service channels pick bits round-robin and may share one; that costs a
/// spurious look at the device, never a lost interrupt.
pub const IRQ_BITS: u32 = 40;
/// The wake-port notification bit for "kernel log bytes arrived".
pub const LOG_BIT: u32 = IRQ_BITS + 16;

/// The notification bit of interrupt line `line`.
pub const fn irq_bit(line: u8) -> u32 {
    IRQ_BITS + (line as u32 % 16)
}

/// What a driver does for its device: the seed's `driver_ops`.
pub trait Driver {
    /// The capabilities the driver works through.
    fn device(&self) -> &Device;

    /// Find the device and bring it up, its interrupts enabled at the device. An error
    /// means there is no working device here; nothing else is called then.
    fn probe(&self) -> Result<(), DriverError>;

    /// The device is being given up: leave it quiet (no interrupts). Its lines are
    /// already unbound.
    fn remove(&self);

    /// Stop the device raising interrupts, keeping what [`resume`](Driver::resume) needs.
    /// Its lines are already unbound. The default has nothing to save.
    fn suspend(&self) -> Result<(), DriverError> {
        Ok(())
    }

    /// Undo [`suspend`](Driver::suspend); the lines are bound again afterwards.
    fn resume(&self) -> Result<(), DriverError> {
        Ok(())
    }

    /// Service whatever the device has pending after an interrupt on `line`.
    /// [`Interrupt::NotPending`] when it had nothing: the runner keeps asking until then.
    fn interrupt(&self, line: &IrqLine) -> Interrupt;
}

/// What [`Driver::interrupt`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Interrupt {
    /// The device had work, now done; there may be more.
    Handled,
    /// The device had nothing pending.
    NotPending,
}

/// Why a driver could not go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverError {
    /// The kernel refused an operation on a device capability.
    Kernel(Error),
    /// The device did not behave as the driver expects.
    Device(&'static str),
}

impl From<Error> for DriverError {
    fn from(error: Error) -> Self {
        DriverError::Kernel(error)
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Kernel(error) => write!(f, "the kernel refused: {error}"),
            DriverError::Device(why) => write!(f, "the device misbehaves: {why}"),
        }
    }
}

/// A driver shared with the code that serves its clients.
impl<D: Driver + ?Sized> Driver for Rc<D> {
    fn device(&self) -> &Device {
        (**self).device()
    }
    fn probe(&self) -> Result<(), DriverError> {
        (**self).probe()
    }
    fn remove(&self) {
        (**self).remove()
    }
    fn suspend(&self) -> Result<(), DriverError> {
        (**self).suspend()
    }
    fn resume(&self) -> Result<(), DriverError> {
        (**self).resume()
    }
    fn interrupt(&self, line: &IrqLine) -> Interrupt {
        (**self).interrupt(line)
    }
}
