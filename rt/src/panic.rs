//! The panic handler: report which process panicked, where and why, then exit with 101.

use core::fmt;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::{println, process, sys};

/// The exit code of a process that panicked.
const PANIC_EXIT_CODE: i32 = 101;

/// Set by the first panic, so that a panic while reporting one does not recurse.
static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if !PANICKING.swap(true, Ordering::Relaxed) {
        let whence: &dyn fmt::Display = match info.location() {
            Some(location) => location,
            None => &"an unknown location",
        };
        println!("panic in {}: {} at {whence}", ThisProcess, info.message());
    }
    process::exit(PANIC_EXIT_CODE)
}

/// This process as a reader knows it: by name, or by pid if it has none.
struct ThisProcess;

impl fmt::Display for ThisProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pid = process::id();
        match sys::process_info(pid) {
            Ok(info) if !info.name().is_empty() => f.write_str(info.name()),
            _ => write!(f, "pid {pid}"),
        }
    }
}
