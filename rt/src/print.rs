//! `print!` and `println!`: formatted output to the kernel log.
//!
//! Each call formats into a buffer on the stack and writes it with one `debug_write`, so a
//! line from one thread is never split by another's (unless it outgrows the buffer).

use core::fmt::{self, Write};

use crate::sys;

/// Prints to the kernel log, like `std::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::print::print_fmt(format_args!($($arg)*))
    };
}

/// Prints a line to the kernel log, like `std::println!`.
#[macro_export]
macro_rules! println {
    () => {
        $crate::print::print_str("\n")
    };
    ($($arg:tt)*) => {
        $crate::print::print_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

const BUFFER_LEN: usize = 512;

/// Collects output and hands it to the kernel when full or dropped.
struct LogWriter {
    buffer: [u8; BUFFER_LEN],
    len: usize,
}

impl LogWriter {
    fn flush(&mut self) {
        // The log is best effort: there is nowhere to report its failure.
        let _ = sys::debug_write(&self.buffer[..self.len]);
        self.len = 0;
    }
}

impl Write for LogWriter {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for chunk in text.as_bytes().chunks(BUFFER_LEN) {
            if self.len + chunk.len() > BUFFER_LEN {
                self.flush();
            }
            self.buffer[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.len > 0 {
            self.flush();
        }
    }
}

/// Writes formatted output to the kernel log; what [`print!`] and [`println!`] call.
pub fn print_fmt(args: fmt::Arguments) {
    let mut writer = LogWriter {
        buffer: [0; BUFFER_LEN],
        len: 0,
    };
    // `LogWriter` never fails; a `Display` impl that does just cuts the output short.
    let _ = writer.write_fmt(args);
}

/// Writes a string to the kernel log as it is.
pub fn print_str(text: &str) {
    let _ = sys::debug_write(text.as_bytes());
}
