//! Capability arguments: a port, a memory object or any capability, passed to a service
//! method as a [`Cap`].
//!
//! A ring carries bytes, not capabilities, so the capability goes through the kernel: the
//! client gives it to the server with one call on the connection's own send capability
//! (badged, so the server knows which connection it is for), the server files it under a
//! fresh token, and the request carries only the token. Decoding the request takes the
//! capability out of that connection's file: a token from another connection, or one used
//! twice, does not decode (the request is answered `MALFORMED`).
//!
//! ```ignore
//! let memory = keel_rt::mem::Memory::create(4096)?;
//! let cap = client.connection().cap(memory.handle())?; // the server now holds a copy
//! client.attach(cap).await?;
//! ```

use alloc::collections::BTreeMap;
use core::sync::atomic::{AtomicU64, Ordering};
use keel_abi::cap::Handle;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use spin::Mutex;

use super::limits::CAPS_PER_CONNECTION;
use crate::sys;

/// A capability passed to a service method.
pub struct Cap(Repr);

enum Repr {
    /// Client side: what the server filed the capability under.
    Given { token: u64 },
    /// Server side: the capability, now this process's.
    Received(Option<Handle>),
}

impl Cap {
    pub(super) fn given(token: u64) -> Cap {
        Cap(Repr::Given { token })
    }

    /// The capability's handle here (server side), still owned by the `Cap`.
    pub fn handle(&self) -> Option<Handle> {
        match self.0 {
            Repr::Received(handle) => handle,
            Repr::Given { .. } => None,
        }
    }

    /// Take the capability (server side): it is the caller's to keep or delete.
    pub fn into_handle(mut self) -> Option<Handle> {
        match &mut self.0 {
            Repr::Received(handle) => handle.take(),
            Repr::Given { .. } => None,
        }
    }
}

impl Drop for Cap {
    /// A received capability nobody took is deleted.
    fn drop(&mut self) {
        if let Repr::Received(Some(handle)) = self.0 {
            let _ = sys::ipc::cap_delete(handle);
        }
    }
}

/// Capabilities clients have given, by (connection badge, token), until a request uses them.
static FILED: Mutex<BTreeMap<(u64, u64), Handle>> = Mutex::new(BTreeMap::new());
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// File a capability given on the connection with `badge`; the token for it, or `None`
/// when the connection already holds its share ([`CAPS_PER_CONNECTION`]).
pub(super) fn file(badge: u64, handle: Handle) -> Option<u64> {
    let mut filed = FILED.lock();
    if filed.range((badge, 0)..=(badge, u64::MAX)).count() >= CAPS_PER_CONNECTION {
        return None;
    }
    let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    filed.insert((badge, token), handle);
    Some(token)
}

/// Drop what a connection filed and never used (it is closing).
pub(super) fn forget(badge: u64) {
    let mut filed = FILED.lock();
    let doomed: alloc::vec::Vec<(u64, u64)> = filed
        .range((badge, 0)..=(badge, u64::MAX))
        .map(|(&k, _)| k)
        .collect();
    for key in doomed {
        if let Some(handle) = filed.remove(&key) {
            let _ = sys::ipc::cap_delete(handle);
        }
    }
}

impl Serialize for Cap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Repr::Given { token } => token.serialize(serializer),
            Repr::Received(_) => Err(serde::ser::Error::custom(
                "a server cannot send capabilities back",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Cap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let token = u64::deserialize(deserializer)?;
        let Some(badge) = super::decoding::current().map(|request| request.badge) else {
            return Err(D::Error::custom(
                "a capability outside a request's decoding",
            ));
        };
        match FILED.lock().remove(&(badge, token)) {
            Some(handle) => Ok(Cap(Repr::Received(Some(handle)))),
            None => Err(D::Error::custom(
                "no capability filed under that token for this connection",
            )),
        }
    }
}
