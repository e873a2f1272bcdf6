//! The `Hello` service: what `hello-service server` offers, and the client (`HelloClient`)
//! its callers use, in a library so that other programs (the chaos campaign) can call it.
#![no_std]

extern crate alloc;

use alloc::string::String;

/// The name the server registers under.
pub const NAME: &str = "hello";

#[keel_rt::service]
pub trait Hello {
    /// A greeting for `name`.
    #[idempotent]
    async fn greet(&self, name: &str) -> String;
}
