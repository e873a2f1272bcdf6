//! The kernel log: `kprintln!` and debug writes, to the serial line or, while a user-space
//! driver owns the console, into a buffer that driver drains (`log_read`).
//!
//! One lock orders all output, so lines never interleave. The buffer keeps the newest
//! 16 KiB: a console driver that falls behind loses the oldest bytes, never the kernel's
//! memory.

use crate::arch::serial::Serial;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;

const BUFFER_SIZE: usize = 16 * 1024;

struct Log {
    serial: Serial,
    buffered: bool,
    buffer: heapless::Deque<u8, BUFFER_SIZE>,
}

impl Log {
    fn put(&mut self, byte: u8) {
        if !self.buffered {
            if byte == b'\n' {
                self.serial.write_byte(b'\r');
            }
            self.serial.write_byte(byte);
            return;
        }
        if self.buffer.is_full() {
            self.buffer.pop_front();
        }
        let _ = self.buffer.push_back(byte);
        PENDING.store(true, Ordering::Release);
    }
}

impl Write for Log {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        s.bytes().for_each(|b| self.put(b));
        Ok(())
    }
}

static LOG: Mutex<Log> = Mutex::new(Log {
    serial: Serial::com1(),
    buffered: false,
    buffer: heapless::Deque::new(),
});
/// Bytes arrived in the buffer since the console driver was last told.
static PENDING: AtomicBool = AtomicBool::new(false);

pub fn init() {
    LOG.lock().serial.init();
}

pub fn print(args: core::fmt::Arguments) {
    let _ = LOG.lock().write_fmt(args);
}

/// Raw bytes from user space, written as they are.
pub fn write_bytes(bytes: &[u8]) {
    let mut log = LOG.lock();
    bytes.iter().for_each(|&b| log.put(b));
}

/// Send the log to the buffer (a driver owns the console) or back to the serial line,
/// flushing what the buffer holds so nothing is lost when the driver goes away.
pub fn set_buffered(buffered: bool) {
    let mut log = LOG.lock();
    if log.buffered == buffered {
        return;
    }
    log.buffered = buffered;
    if !buffered {
        while let Some(byte) = log.buffer.pop_front() {
            log.put(byte);
        }
    }
}

/// Up to `max` bytes from the buffer, oldest first.
pub fn take(max: usize) -> Vec<u8> {
    let mut log = LOG.lock();
    let n = max.min(log.buffer.len());
    (0..n).filter_map(|_| log.buffer.pop_front()).collect()
}

pub fn mark_pending() {
    PENDING.store(true, Ordering::Release);
}

/// Whether bytes arrived since the last [`take_pending`], which stays to be called.
#[inline]
pub fn is_pending() -> bool {
    PENDING.load(Ordering::Acquire)
}

/// Whether bytes arrived since the last call.
pub fn take_pending() -> bool {
    PENDING.swap(false, Ordering::AcqRel)
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
