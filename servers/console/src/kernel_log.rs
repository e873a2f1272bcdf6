//! The kernel log's printer: while the console holds COM1, kernel messages and every
//! process's `println!` collect in the kernel's log buffer; this task moves them to the
//! screen, above the line being typed.

use alloc::rc::Rc;
use alloc::vec;
use core::time::Duration;

use keel_rt::driver::Driver;
use keel_rt::executor::timeout;

use crate::terminal::{Terminal, fail};

/// How long a log line without its end waits for the rest before it is shown anyway.
const PARTIAL_LINE_WAIT: Duration = Duration::from_millis(100);
/// Bytes taken from the kernel per read.
const CHUNK: usize = 1024;

/// Drain the kernel log into `terminal` for ever (at once if the console has no log).
pub async fn pump(terminal: Rc<Terminal>) {
    let Some(log) = terminal.device().log.as_ref() else {
        return;
    };
    if let Err(error) = log.bind() {
        fail("binding the kernel log", error);
    }
    let mut chunk = vec![0; CHUNK];
    loop {
        // Waiting for room leaves the bytes in the kernel's buffer, which keeps the newest.
        terminal.room().await;
        match log.read(&mut chunk) {
            Ok(0) => {}
            Ok(len) => {
                terminal.log(&chunk[..len]);
                continue;
            }
            Err(error) => fail("reading the kernel log", error),
        }
        if !terminal.has_partial_log() {
            log.arrival().await;
        } else if timeout(PARTIAL_LINE_WAIT, log.arrival()).await.is_err() {
            terminal.flush_log();
        }
    }
}
