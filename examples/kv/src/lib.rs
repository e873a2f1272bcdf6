//! The `Kv` service: what the `kv` server offers, and the client (`KvClient`) its callers
//! use, in a library so that programs other than `kv` itself (the chaos campaign) can call it.
#![no_std]

extern crate alloc;

use alloc::{string::String, vec::Vec};
use keel_rt::serde::{Deserialize, Serialize};

/// The name the server registers under.
pub const NAME: &str = "kv";

/// The store's own errors, apart from the transport's.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(crate = "keel_rt::serde")]
pub enum KvError {
    NotFound,
    TooLarge,
    /// The change could not be saved to the disk: it holds in memory only, until the
    /// server restarts.
    Storage,
}

#[keel_rt::service]
pub trait Kv {
    #[idempotent]
    async fn get(&self, key: &str) -> Result<Vec<u8>, KvError>;
    /// Idempotent: storing the same value again changes nothing.
    #[idempotent]
    async fn put(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    /// Not idempotent: deleting a key again is `NotFound`.
    async fn delete(&self, key: &str) -> Result<(), KvError>;
    #[idempotent]
    async fn list(&self) -> Vec<String>;
}
