//! Capabilities by handle: derive, delete, revoke and inspect them; the ones this process
//! started with; the audit log; this process's quotas.
//!
//! A handle names a slot in this process's capability space. Handles are plain numbers, so
//! copying one copies the name, not the capability.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::RangeInclusive;

use keel_abi::Error;
pub use keel_abi::cap::{AuditRecord, CapInfo, Handle, Resources, audit, kind, rights};

pub use crate::sys::ipc::{
    cap_delete as delete, cap_derive as derive, cap_info as info, cap_revoke as revoke, resources,
};

/// The handles of the capabilities this process was started with (`Spawn::caps`, or the
/// audit log for the first process): `1..=n`, empty when there are none.
pub fn initial() -> RangeInclusive<Handle> {
    let count = crate::start_info().cap_count;
    1..=Handle::try_from(count).unwrap_or(Handle::MAX)
}

/// Up to `max` of the newest audit records, oldest first, read through `audit` (an audit
/// capability with READ).
pub fn audit_log(audit: Handle, max: usize) -> Result<Vec<AuditRecord>, Error> {
    let mut records = vec![AuditRecord::default(); max];
    let count = crate::sys::ipc::audit_read(audit, &mut records)?;
    records.truncate(count);
    Ok(records)
}
