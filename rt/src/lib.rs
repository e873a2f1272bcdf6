//! The Keel user runtime: what every user program links against.
//!
//! A program is four lines of ceremony and a `main`:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! keel_rt::entry!(main);
//!
//! fn main(args: &str) -> i32 {
//!     keel_rt::println!("hello from pid {} with {args:?}", keel_rt::process::id());
//!     0
//! }
//! ```
//!
//! The runtime provides `_start`, a panic handler that reports and exits with status 101, a
//! heap (so `alloc`'s `Vec`, `String` and `format!` work), typed syscall wrappers in [`sys`]
//! (with the unchecked forms in [`sys::raw`]), and small modules for [`process`]es,
//! [`thread`]s, [`time`] and printing ([`println!`]).
#![no_std]

extern crate alloc;

mod heap;
mod panic;
pub mod print;
pub mod process;
mod start;
pub mod sync;
pub mod sys;
pub mod thread;
pub mod time;

pub use keel_abi as abi;
pub use start::{Module, boot_module, boot_modules, start_info};

/// Declares the program's `main`: `fn main(args: &str) -> i32`.
///
/// `args` is the argument string the process was started with; the return value becomes the
/// process's exit code.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        // The runtime's start-up code calls this by name once the process is set up.
        #[unsafe(no_mangle)]
        fn __keel_main(args: &str) -> i32 {
            let main: fn(&str) -> i32 = $main;
            main(args)
        }
    };
}
