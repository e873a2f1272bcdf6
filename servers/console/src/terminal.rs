//! The console's one piece of state, shared by the interrupt runner, the log pump and the
//! Console service on the executor's thread: the screen, the bytes waiting to be sent,
//! the lines typed and the reads waiting for them.
//!
//! A refused access to COM1 means the capability is gone, and a console without its UART
//! can do nothing useful: the driver panics (see [`fail`]) and its supervisor starts a new
//! one, which probes the device afresh.

use alloc::collections::VecDeque;
use alloc::rc::{Rc, Weak};
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::poll_fn;
use core::task::{Poll, Waker};

use console::ReadError;
use keel_line::{Screen, Typed};
use keel_rt::abi::Error;
use keel_rt::driver::{Device, Driver, DriverError, Interrupt, IrqLine};

use crate::uart::{Cause, FIFO_SIZE, Uart};

/// Writers (and the log pump) wait while this much output is queued.
const HIGH_WATER: usize = 8 * 1024;
/// Lines typed before anyone asked: more are dropped.
const MAX_TYPE_AHEAD: usize = 16;

/// The end of the console: a refused device access, or the log, means its capability went.
pub fn fail(what: &str, error: Error) -> ! {
    panic!("console: {what} refused ({error}): the capability is gone")
}

/// A read waiting for a line.
#[derive(Default)]
struct Reader {
    typed: Cell<Option<Typed>>,
    waker: Cell<Option<Waker>>,
}

impl Reader {
    fn answer(&self, typed: Typed) {
        self.typed.set(Some(typed));
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    async fn answered(&self) -> Typed {
        poll_fn(|cx| match self.typed.take() {
            Some(typed) => Poll::Ready(typed),
            None => {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

pub struct Terminal {
    device: Device,
    screen: RefCell<Screen>,
    tx: RefCell<VecDeque<u8>>,
    /// Probed and not suspended: the UART may be touched.
    running: Cell<bool>,
    /// The transmit-empty interrupt is on (there is more to send than the FIFO took).
    tx_interrupt: Cell<bool>,
    type_ahead: RefCell<VecDeque<Typed>>,
    /// Reads waiting, oldest first; one whose request was dropped (its client died and its
    /// connection ended) is gone, and takes no line.
    readers: RefCell<VecDeque<Weak<Reader>>>,
    waiting_for_room: RefCell<Vec<Waker>>,
}

impl Terminal {
    /// A terminal on the first I/O port range of `device`.
    pub fn new(device: Device) -> Result<Terminal, DriverError> {
        if device.io_ports.is_empty() {
            return Err(DriverError::Device("no I/O ports were granted"));
        }
        Ok(Terminal {
            device,
            screen: RefCell::default(),
            tx: RefCell::default(),
            running: Cell::new(false),
            tx_interrupt: Cell::new(false),
            type_ahead: RefCell::default(),
            readers: RefCell::default(),
            waiting_for_room: RefCell::default(),
        })
    }

    fn uart(&self) -> Uart<'_> {
        Uart::new(&self.device.io_ports[0])
    }

    /// Client output.
    pub fn write(&self, text: &[u8]) {
        self.screen
            .borrow_mut()
            .write(text, &mut self.tx.borrow_mut());
        self.transmit();
    }

    /// Kernel log bytes.
    pub fn log(&self, bytes: &[u8]) {
        self.screen
            .borrow_mut()
            .log(bytes, &mut self.tx.borrow_mut());
        self.transmit();
    }

    /// Show a partial log line that has waited long enough for its end.
    pub fn flush_log(&self) {
        self.screen
            .borrow_mut()
            .flush_log(&mut self.tx.borrow_mut());
        self.transmit();
    }

    pub fn has_partial_log(&self) -> bool {
        self.screen.borrow().has_partial_log()
    }

    /// Wait until the output queue has room.
    pub async fn room(&self) {
        poll_fn(|cx| {
            if self.tx.borrow().len() < HIGH_WATER {
                return Poll::Ready(());
            }
            self.waiting_for_room.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The next line typed (or the Ctrl-C that cancelled it).
    pub async fn read_line(&self) -> Result<String, ReadError> {
        let queued = self.type_ahead.borrow_mut().pop_front();
        let typed = match queued {
            Some(typed) => typed,
            None => {
                let reader = Rc::new(Reader::default());
                self.readers.borrow_mut().push_back(Rc::downgrade(&reader));
                reader.answered().await
            }
        };
        match typed {
            Typed::Line(line) => Ok(line),
            Typed::Interrupt => Err(ReadError::Interrupted),
        }
    }

    /// Typed bytes: edit, echo, and hand out what they complete.
    fn type_bytes(&self, bytes: &[u8]) {
        for &byte in bytes {
            let typed = self
                .screen
                .borrow_mut()
                .type_byte(byte, &mut self.tx.borrow_mut());
            if let Some(typed) = typed {
                self.deliver(typed);
            }
        }
        self.transmit();
    }

    fn deliver(&self, typed: Typed) {
        let reader = {
            let mut readers = self.readers.borrow_mut();
            core::iter::from_fn(|| readers.pop_front()).find_map(|reader| reader.upgrade())
        };
        let mut type_ahead = self.type_ahead.borrow_mut();
        match (reader, typed) {
            (Some(reader), typed) => reader.answer(typed),
            // Ctrl-C with nobody reading throws away what was typed ahead.
            (None, Typed::Interrupt) => type_ahead.clear(),
            (None, line) if type_ahead.len() < MAX_TYPE_AHEAD => type_ahead.push_back(line),
            (None, _) => {}
        }
    }

    /// Everything received so far.
    fn receive(&self) {
        let uart = self.uart();
        let mut bytes = Vec::new();
        loop {
            match uart.read_byte() {
                Ok(Some(byte)) => bytes.push(byte),
                Ok(None) => break,
                Err(error) => fail("reading COM1", error),
            }
        }
        self.type_bytes(&bytes);
    }

    /// Fill the transmit FIFO while it is empty; if bytes remain, have the UART interrupt
    /// when it has room again.
    fn transmit(&self) {
        if !self.running.get() {
            return;
        }
        if let Err(error) = self.send_queued() {
            fail("writing COM1", error);
        }
        if self.tx.borrow().len() < HIGH_WATER {
            self.waiting_for_room
                .borrow_mut()
                .drain(..)
                .for_each(Waker::wake);
        }
    }

    fn send_queued(&self) -> Result<(), Error> {
        let uart = self.uart();
        let mut tx = self.tx.borrow_mut();
        while !tx.is_empty() && uart.can_transmit()? {
            let load = tx.len().min(FIFO_SIZE);
            for byte in tx.drain(..load) {
                uart.write_byte(byte)?;
            }
        }
        let more = !tx.is_empty();
        if more != self.tx_interrupt.get() {
            uart.set_interrupts(true, more)?;
            self.tx_interrupt.set(more);
        }
        Ok(())
    }
}

impl Driver for Terminal {
    fn device(&self) -> &Device {
        &self.device
    }

    fn probe(&self) -> Result<(), DriverError> {
        let uart = self.uart();
        let mut typed_early = Vec::new();
        uart.probe(|byte| typed_early.push(byte))?;
        uart.configure()?;
        uart.set_interrupts(true, false)?;
        self.running.set(true);
        self.type_bytes(&typed_early);
        Ok(())
    }

    fn remove(&self) {
        // Send what is queued, by polling: the interrupt is going away.
        let uart = self.uart();
        self.running.set(false);
        let _ = uart.set_interrupts(false, false);
        self.tx_interrupt.set(false);
        let queued: Vec<u8> = self.tx.borrow_mut().drain(..).collect();
        // Nothing is left to tell if the UART refuses now.
        let _ = uart.send_polled(&queued);
    }

    fn suspend(&self) -> Result<(), DriverError> {
        self.running.set(false);
        self.tx_interrupt.set(false);
        self.uart().set_interrupts(false, false)?;
        Ok(())
    }

    fn resume(&self) -> Result<(), DriverError> {
        self.uart().set_interrupts(true, false)?;
        self.running.set(true);
        self.transmit();
        Ok(())
    }

    fn interrupt(&self, _line: &IrqLine) -> Interrupt {
        match self.uart().pending() {
            Ok(None) => return Interrupt::NotPending,
            Ok(Some(Cause::Receive)) => self.receive(),
            Ok(Some(Cause::TransmitEmpty)) => self.transmit(),
            Ok(Some(Cause::ModemStatus)) => {
                if let Err(error) = self.uart().clear_modem_status() {
                    fail("reading COM1", error);
                }
            }
            Err(error) => fail("reading COM1", error),
        }
        Interrupt::Handled
    }
}
