//! The virtio-net driver on the rt driver framework: probe finds the PCI function init
//! granted, brings the device up on `virtio-drivers`, and each interrupt tells the stack to
//! look at the queues.

use alloc::boxed::Box;
use core::cell::{Cell, OnceCell};
use core::future::poll_fn;
use core::task::{Poll, Waker};

use keel_rt::driver::pci::{COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE, COMMAND_MEMORY};
use keel_rt::driver::{Device, Driver, DriverError, Interrupt, IrqLine, PciFunction};
use keel_virtio::{Config, FUNCTION, KeelHal, hal};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::PciRoot;

use crate::nic::Nic;
use crate::transport::NoEventIdx;

/// A one-bit signal with one waiter: set by whoever has news, taken by the stack's loop.
#[derive(Default)]
pub struct Signal {
    raised: Cell<bool>,
    waiter: Cell<Option<Waker>>,
}

impl Signal {
    pub fn raise(&self) {
        self.raised.set(true);
        if let Some(waker) = self.waiter.take() {
            waker.wake();
        }
    }

    /// Wait until raised, and lower it.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.raised.replace(false) {
                Poll::Ready(())
            } else {
                self.waiter.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

pub struct NetDriver {
    device: Device,
    nic: OnceCell<Box<Nic>>,
    /// Raised on each interrupt that found work.
    pub work: Signal,
    interrupts: Cell<u64>,
}

impl NetDriver {
    pub fn new(device: Device) -> NetDriver {
        NetDriver {
            device,
            nic: OnceCell::new(),
            work: Signal::default(),
            interrupts: Cell::new(0),
        }
    }

    /// The NIC, once probed.
    pub fn nic(&self) -> Option<&Nic> {
        self.nic.get().map(|nic| &**nic)
    }

    pub fn interrupts(&self) -> u64 {
        self.interrupts.get()
    }

    fn bring_up(&self) -> Result<Box<Nic>, DriverError> {
        let function = PciFunction::new(&self.device)?;
        let config = function.config();
        hal::start(function.device_capability(), function.bars());
        let command = config.command()? & !COMMAND_INTX_DISABLE;
        config.set_command(command | COMMAND_MEMORY | COMMAND_BUS_MASTER)?;
        let mut root = PciRoot::new(Config(function.pinned_config()));
        let transport = PciTransport::new::<KeelHal, _>(&mut root, FUNCTION)
            .map_err(|_| DriverError::Device("not a virtio device I can drive"))?;
        let device = VirtIONetRaw::new(NoEventIdx(transport))
            .map_err(|_| DriverError::Device("the virtio-net device would not start"))?;
        Nic::new(Box::new(device)).map(Box::new)
    }
}

impl Driver for NetDriver {
    fn device(&self) -> &Device {
        &self.device
    }

    fn probe(&self) -> Result<(), DriverError> {
        if self.device.irq_lines.is_empty() {
            return Err(DriverError::Device("no interrupt line was granted"));
        }
        let nic = self.bring_up()?;
        let _ = self.nic.set(nic);
        Ok(())
    }

    fn remove(&self) {
        // Stop the device reaching memory: the DMA buffers go with the process.
        if let Ok(function) = PciFunction::new(&self.device) {
            let config = function.config();
            if let Ok(command) = config.command() {
                let _ = config.set_command(command & !COMMAND_BUS_MASTER);
            }
        }
    }

    fn interrupt(&self, _line: &IrqLine) -> Interrupt {
        match self.nic() {
            Some(nic) if nic.interrupted() => {
                self.interrupts.set(self.interrupts.get() + 1);
                self.work.raise();
                Interrupt::Handled
            }
            _ => Interrupt::NotPending,
        }
    }
}
