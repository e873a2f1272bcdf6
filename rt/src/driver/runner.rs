//! Running a driver: probe, bind its lines, feed it interrupts until told to stop, remove.

use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::poll_fn;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Poll, Waker};

use super::{Driver, DriverError, Interrupt, IrqLine};
use crate::executor::wake;

/// Where a driver is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Probed, lines bound, interrupts served.
    Running,
    /// Lines unbound, the device told to be quiet.
    Suspended,
    /// Removed; the runner has returned.
    Stopped,
}

#[derive(Debug)]
struct Shared {
    state: Cell<State>,
    /// What was asked for last; `Stopped` sticks.
    wanted: Cell<State>,
    runner: RefCell<Option<Waker>>,
}

/// Asks a running driver to suspend, resume or stop, and tells its state. Clones share.
#[derive(Clone, Debug)]
pub struct Control(Rc<Shared>);

impl Control {
    fn new() -> Control {
        Control(Rc::new(Shared {
            state: Cell::new(State::Running),
            wanted: Cell::new(State::Running),
            runner: RefCell::new(None),
        }))
    }

    pub fn state(&self) -> State {
        self.0.state.get()
    }

    pub fn suspend(&self) {
        self.ask(State::Suspended)
    }

    pub fn resume(&self) {
        self.ask(State::Running)
    }

    /// Unbind the lines, [`remove`](Driver::remove) the driver and end [`Runner::run`].
    pub fn stop(&self) {
        self.ask(State::Stopped)
    }

    fn ask(&self, state: State) {
        if self.0.wanted.get() != State::Stopped {
            self.0.wanted.set(state);
        }
        if let Some(waker) = self.0.runner.borrow_mut().take() {
            waker.wake();
        }
    }
}

/// One line's notification bit, as a waker: it records that the line fired, so the runner
/// services exactly the lines that did.
#[derive(Default)]
struct LineSignal {
    fired: AtomicBool,
    runner: spin::Mutex<Option<Waker>>,
}

impl Wake for LineSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        if let Some(waker) = self.runner.lock().take() {
            waker.wake();
        }
    }
}

/// Which lines [`Runner::service`] looks at.
#[derive(Clone, Copy)]
enum Lines {
    All,
    /// Those whose notification came.
    Fired,
    None,
}

/// A probed driver with its lines bound, ready to [`run`](Runner::run).
pub struct Runner<D: Driver> {
    driver: D,
    control: Control,
    signals: Vec<Arc<LineSignal>>,
}

impl<D: Driver> Runner<D> {
    /// Probe the device and bind its interrupt lines to the wake port. When this returns
    /// the driver is [`State::Running`]; interrupts are served once [`run`](Runner::run)
    /// goes.
    pub fn start(driver: D) -> Result<Runner<D>, DriverError> {
        driver.probe()?;
        let runner = Runner {
            signals: driver
                .device()
                .irq_lines
                .iter()
                .map(|_| Arc::default())
                .collect(),
            driver,
            control: Control::new(),
        };
        if let Err(error) = runner.bind_all() {
            runner.driver.remove();
            return Err(error);
        }
        Ok(runner)
    }

    pub fn control(&self) -> Control {
        self.control.clone()
    }

    pub fn driver(&self) -> &D {
        &self.driver
    }

    /// Serve interrupts and [`Control`] requests until stopped (or until the kernel refuses
    /// a line operation); then unbind the lines and remove the driver, and hand it back.
    pub async fn run(self) -> Result<D, DriverError> {
        let outcome = self.serve().await;
        // Removing is best effort after a failure: the kernel masks the lines anyway once
        // the capabilities go.
        let _ = self.unbind_all();
        self.driver.remove();
        self.control.0.state.set(State::Stopped);
        outcome.map(|()| self.driver)
    }

    async fn serve(&self) -> Result<(), DriverError> {
        // The device may have raised a line before it was bound: that edge is lost.
        self.service(Lines::All)?;
        loop {
            self.next_event().await;
            let shared = &self.control.0;
            match (shared.state.get(), shared.wanted.get()) {
                (_, State::Stopped) => return Ok(()),
                (State::Running, State::Suspended) => {
                    self.unbind_all()?;
                    self.driver.suspend()?;
                    shared.state.set(State::Suspended);
                }
                (State::Suspended, State::Running) => {
                    self.driver.resume()?;
                    self.bind_all()?;
                    shared.state.set(State::Running);
                    self.service(Lines::All)?;
                }
                (State::Running, _) => self.service(Lines::Fired)?,
                // Suspended: a notification sent before the unbind; nothing to do.
                _ => self.service(Lines::None)?,
            }
        }
    }

    /// Service `which` lines: interrupt, ack, and look again until the device has nothing
    /// pending, since edges that come while a line is masked are lost. Every line's
    /// "fired" mark is taken either way.
    fn service(&self, which: Lines) -> Result<(), DriverError> {
        let lines = &self.driver.device().irq_lines;
        for (line, signal) in lines.iter().zip(&self.signals) {
            let fired = signal.fired.swap(false, Ordering::AcqRel);
            let wanted = match which {
                Lines::All => true,
                Lines::Fired => fired,
                Lines::None => false,
            };
            if wanted {
                let mut outcome = self.driver.interrupt(line);
                line.ack()?;
                while outcome == Interrupt::Handled {
                    outcome = self.driver.interrupt(line);
                }
            }
        }
        Ok(())
    }

    /// Wait until a line fires or a request comes.
    async fn next_event(&self) {
        let mut registered = false;
        poll_fn(|cx| {
            let fired = self.signals.iter().any(|s| s.fired.load(Ordering::Acquire));
            let asked = self.control.0.wanted.get() != self.control.0.state.get();
            if registered || fired || asked {
                return Poll::Ready(());
            }
            registered = true;
            let lines = &self.driver.device().irq_lines;
            for (line, signal) in lines.iter().zip(&self.signals) {
                *signal.runner.lock() = Some(cx.waker().clone());
                wake::on_notification(line.bit(), &Waker::from(signal.clone()));
            }
            *self.control.0.runner.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    fn bind_all(&self) -> Result<(), DriverError> {
        self.lines().try_for_each(IrqLine::bind)?;
        Ok(())
    }

    fn unbind_all(&self) -> Result<(), DriverError> {
        self.lines().try_for_each(IrqLine::unbind)?;
        Ok(())
    }

    fn lines(&self) -> core::slice::Iter<'_, IrqLine> {
        self.driver.device().irq_lines.iter()
    }
}

/// Start `driver` and serve it until its [`Control`] stops it; the control is gone with
/// the runner, so this serves for as long as the process lives.
pub async fn run<D: Driver>(driver: D) -> Result<(), DriverError> {
    Runner::start(driver)?.run().await.map(drop)
}
