//! `console`: the driver of COM1, a 16550 UART, and the system's terminal.
//!
//! - Input is interrupt-driven (IRQ 4): typed bytes go through the line discipline
//!   (`keel_line`) and complete lines go to the clients' `read_line` calls.
//! - Output goes through the transmit FIFO, sixteen bytes per status check, with the
//!   transmit-empty interrupt when more is queued than the FIFO takes.
//! - The kernel log (the log capability, bound to a wake-port bit) is printed above the
//!   line being typed, which is then drawn again.
//! - Clients reach it through the Console service, registered as `console`.
//!
//! It runs on the driver framework (`keel_rt::driver`): [`terminal::Terminal`] is the
//! driver, shared by the runner, the log pump and the service.
#![no_std]
#![no_main]

extern crate alloc;

mod kernel_log;
mod terminal;
mod uart;

use alloc::rc::Rc;
use alloc::string::String;

use console::{Console, ReadError, serve_console};
use keel_rt::driver::{Device, Driver, Runner};
use keel_rt::{executor, names, println};

use terminal::Terminal;

keel_rt::async_entry!(main);

async fn main(_args: &'static str) -> i32 {
    let terminal = match Device::from_start_caps()
        .map_err(Into::into)
        .and_then(Terminal::new)
    {
        Ok(terminal) => Rc::new(terminal),
        Err(error) => {
            println!("console: my capabilities are not a console's: {error}");
            return 1;
        }
    };
    let runner = match Runner::start(terminal.clone()) {
        Ok(runner) => runner,
        Err(error) => {
            println!("console: no working UART: {error}");
            return 1;
        }
    };
    executor::spawn(async {
        if let Err(error) = runner.run().await {
            panic!("console: the driver stopped: {error}");
        }
    });
    executor::spawn(kernel_log::pump(terminal.clone()));
    if let Err(error) = names::register(console::NAME, executor::wake::port()) {
        println!("console: cannot register as {:?}: {error}", console::NAME);
        return 1;
    }
    describe(&terminal);
    serve_console(Service(terminal)).await
}

fn describe(terminal: &Terminal) {
    let device = terminal.device();
    let ports = &device.io_ports[0];
    let lines = device.irq_lines.iter().map(|line| line.line());
    let irqs: alloc::vec::Vec<_> = lines.collect();
    println!(
        "console: driving the UART at {:#x} (IRQ {irqs:?}), {}",
        ports.base(),
        match device.log {
            Some(_) => "printing the kernel log",
            None => "without the kernel log",
        }
    );
}

/// The Console service, on the shared terminal.
struct Service(Rc<Terminal>);

impl Console for Service {
    async fn write(&self, text: &str) {
        self.0.room().await;
        self.0.write(text.as_bytes());
    }

    async fn read_line(&self) -> Result<String, ReadError> {
        self.0.read_line().await
    }
}
