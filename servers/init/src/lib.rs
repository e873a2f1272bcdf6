//! The supervisor behind init: starts the servers of a manifest with exactly what it grants
//! them, serves the name service and supervisor protocol (docs/SYSTEM.md), and keeps the
//! servers running as their restart policies say.
//!
//! init runs it on the manifest bootimage wrote; the in-guest `system` suite runs it on
//! manifests of its own, so what the tests check is what boots.
//!
//! ```ignore
//! let system = System::new(keel_manifest::parse(text)?);
//! system.start_all();
//! let poweroff = system.run().await; // until someone allowed to asks for a poweroff
//! ```
//!
//! | module | holds |
//! |---|---|
//! | [`system`] | the table of children and services, and the loop that drives it |
//! | `requests` | the protocol: who may ask what, and the answers |
//! | `start` | starting one child with its grants |
//! | `pci` | the PCI functions found through ECAM, for `pci` grants |
//! | `watch` | a thread per child waiting for it to end |
//! | `badge` | who is calling, from the badge on init's port |
#![no_std]

extern crate alloc;

mod badge;
mod pci;
mod requests;
mod start;
pub mod system;
mod watch;

pub use keel_manifest::{Policy, Restart, Server};
pub use system::{Poweroff, State, Status, System};
