//! The driver's lifecycle on the rt framework: probe (reset and bring up the device),
//! interrupt (collect finished requests, wake whoever waits for them), remove.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::poll_fn;
use core::task::{Poll, Waker};

use keel_block::BlockStats;
use keel_rt::driver::pci::{self, PciFunction};
use keel_rt::driver::{Device, Driver, DriverError, Interrupt, IrqLine};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::PciRoot;

use crate::disk::{Data, Disk, Op, QUEUE_SIZE};
use keel_virtio::msix::CommonConfig;
use keel_virtio::{Config, FUNCTION, KeelHal, hal};

/// A request's outcome, filled in at its completion.
type Outcome = Rc<Cell<Option<bool>>>;

/// What a request keeps alive until the device is done with it.
pub type Keep = Option<Rc<dyn core::any::Any>>;

struct Pending {
    outcome: Outcome,
    waker: Option<Waker>,
    /// The memory the device may still be writing: freed only after completion, even
    /// when the caller has given up.
    _keep: Keep,
}

pub struct BlkDriver {
    device: Device,
    disk: RefCell<Option<Disk>>,
    /// By token.
    pending: RefCell<Vec<Option<Pending>>>,
    /// Requests waiting for room in the queue.
    room: RefCell<Vec<Waker>>,
    stats: Cell<BlockStats>,
    in_flight: Cell<u32>,
}

impl BlkDriver {
    pub fn new(device: Device) -> BlkDriver {
        BlkDriver {
            device,
            disk: RefCell::new(None),
            pending: RefCell::new((0..QUEUE_SIZE).map(|_| None).collect()),
            room: RefCell::new(Vec::new()),
            stats: Cell::default(),
            in_flight: Cell::new(0),
        }
    }

    pub fn stats(&self) -> BlockStats {
        self.stats.get()
    }

    /// (blocks, read-only, caches writes) of the probed device.
    pub fn geometry(&self) -> Option<(u64, bool, bool)> {
        let disk = self.disk.borrow();
        disk.as_ref()
            .map(|d| (d.capacity, d.read_only, d.caches_writes()))
    }

    /// Run one request to completion: whether the device reports success.
    ///
    /// # Safety
    /// `data` is DMA memory that `keep` keeps mapped; nobody else touches it until this
    /// answers (or, if dropped first, until the device is done: `keep` lives until then).
    pub async unsafe fn request(
        &self,
        op: Op,
        sector: u64,
        data: Option<Data>,
        keep: Keep,
    ) -> bool {
        let token = poll_fn(|cx| {
            let mut disk = self.disk.borrow_mut();
            let Some(disk) = disk.as_mut() else {
                return Poll::Ready(None);
            };
            if !disk.has_room() {
                self.room.borrow_mut().push(cx.waker().clone());
                return Poll::Pending;
            }
            // SAFETY: forwarded from the caller.
            Poll::Ready(unsafe { disk.submit(op, sector, data) }.ok())
        })
        .await;
        let Some(token) = token else {
            return false;
        };
        let in_flight = self.in_flight.get() + 1;
        self.in_flight.set(in_flight);
        let mut stats = self.stats.get();
        stats.requests += 1;
        stats.most_in_flight = stats.most_in_flight.max(in_flight);
        self.stats.set(stats);
        let outcome = Outcome::default();
        self.pending.borrow_mut()[usize::from(token)] = Some(Pending {
            outcome: outcome.clone(),
            waker: None,
            _keep: keep,
        });
        poll_fn(|cx| match outcome.get() {
            Some(ok) => Poll::Ready(ok),
            None => {
                if let Some(pending) = &mut self.pending.borrow_mut()[usize::from(token)] {
                    pending.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }
}

impl Driver for BlkDriver {
    fn device(&self) -> &Device {
        &self.device
    }

    fn probe(&self) -> Result<(), DriverError> {
        let function = PciFunction::new(&self.device)?;
        let config = function.config();
        // Memory decoding for the BARs and INTx on, but no DMA until the device is reset
        // (in `Disk::new`): requests a killed earlier start left at the device complete at
        // that reset, and must find bus mastering off rather than write memory the kernel
        // has given to someone else since.
        let command = (config.command()? | pci::COMMAND_MEMORY) & !pci::COMMAND_INTX_DISABLE;
        config.set_command(command & !pci::COMMAND_BUS_MASTER)?;
        hal::start(function.device_capability(), function.bars());
        // MSI-X where the function has it and init granted a vector; else INTx.
        let vector = self.device.irq_lines.iter().find(|line| line.is_vector());
        let msix = match vector {
            Some(vector) => function.enable_msix(vector)?,
            None => false,
        };
        let common = if msix {
            CommonConfig::find(&function)?
        } else {
            None
        };
        let mut root = PciRoot::new(Config(function.pinned_config()));
        let transport = PciTransport::new::<KeelHal, _>(&mut root, FUNCTION)
            .map_err(|_| DriverError::Device("not a modern virtio-pci device"))?;
        let route = |queue| common.is_some_and(|common| common.route_queue(queue));
        let disk =
            Disk::new(transport, route).map_err(|_| DriverError::Device("did not come up"))?;
        // Also when an earlier start left MSI-X on: the device would signal no one.
        if !disk.msix {
            function.disable_msix()?;
        }
        function
            .config()
            .set_command(command | pci::COMMAND_BUS_MASTER)?;
        *self.disk.borrow_mut() = Some(disk);
        Ok(())
    }

    fn remove(&self) {
        // Dropping the disk resets the device: no DMA after this.
        self.disk.borrow_mut().take();
    }

    fn interrupt(&self, _line: &IrqLine) -> Interrupt {
        let mut disk = self.disk.borrow_mut();
        let Some(disk) = disk.as_mut() else {
            return Interrupt::NotPending;
        };
        let raised = disk.interrupt();
        let mut pending = self.pending.borrow_mut();
        let done = disk.complete(|token, ok| {
            if let Some(request) = pending.get_mut(usize::from(token)).and_then(Option::take) {
                request.outcome.set(Some(ok));
                if let Some(waker) = request.waker {
                    waker.wake();
                }
            }
        });
        if !raised && done == 0 {
            return Interrupt::NotPending;
        }
        self.in_flight.set(self.in_flight.get() - done as u32);
        let mut stats = self.stats.get();
        stats.interrupts += u64::from(done > 0);
        self.stats.set(stats);
        for waker in self.room.borrow_mut().drain(..) {
            waker.wake();
        }
        Interrupt::Handled
    }
}
