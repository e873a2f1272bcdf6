//! The kernel log: `kprintln!` to the serial line, one lock so lines never interleave.

use crate::arch::serial::Serial;
use core::fmt::Write;
use spin::Mutex;

static LOG: Mutex<Serial> = Mutex::new(Serial::com1());

pub fn init() {
    LOG.lock().init();
}

pub fn print(args: core::fmt::Arguments) {
    // Serial writes cannot fail.
    let _ = LOG.lock().write_fmt(args);
}

/// Raw bytes from user space: written as they are, `\n` expanded to `\r\n`.
pub fn write_bytes(bytes: &[u8]) {
    let mut serial = LOG.lock();
    for &byte in bytes {
        if byte == b'\n' {
            serial.write_byte(b'\r');
        }
        serial.write_byte(byte);
    }
}

/// For the panic path: the lock may be held by the code that panicked.
pub fn print_emergency(args: core::fmt::Arguments) {
    let mut serial = Serial::com1();
    let _ = serial.write_fmt(args);
}

#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => {
        $crate::log::print(format_args!("keel: {}\n", format_args!($($arg)*)))
    };
}
