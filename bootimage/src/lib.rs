//! The host side of Keel: prepare the machine, build the guest crates, assemble boot images
//! and run them under QEMU.
//!
//! `cargo boot` (the `bootimage` binary) and the host test crate (`tests/`) both drive this
//! library, so a boot from the command line and a boot from `cargo test` are the same boot.

pub mod bench;
pub mod chaos;
pub mod check;
pub mod disk;
mod error;
pub mod fuzz;
pub mod gdb;
pub mod guest;
pub mod image;
pub mod iso;
pub mod manifest;
pub mod qemu;
pub mod setup;
pub mod status;
pub mod symbols;

use std::path::Path;

pub use error::{Error, Result};

/// The workspace root: `bootimage/` sits directly inside it. Fixed at compile time so the tool
/// finds the guest crates wherever it is started from.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bootimage/ has a parent directory")
}
