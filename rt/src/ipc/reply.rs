//! The right to answer one call, as a value: sending it answers, dropping it refuses.

use core::mem::ManuallyDrop;

use keel_abi::Error;
use keel_abi::cap::Handle;

use super::Message;
use crate::sys;

/// A reply capability: the right to answer one call, once.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "dropping a reply answers the call with PeerGone"]
pub struct Reply(Handle);

impl Reply {
    /// Takes the call this thread received last (and has not answered) out of the thread,
    /// so that it can be answered later, by any thread of the process.
    pub fn save() -> Result<Reply, Error> {
        sys::ipc::reply_save().map(Reply)
    }

    /// The reply capability's handle.
    pub fn handle(&self) -> Handle {
        self.0
    }

    /// Answers the call with `message`. The right is used up even if this fails; `PeerGone`
    /// means the caller is no longer waiting.
    pub fn send(self, message: &Message) -> Result<(), Error> {
        let info = message.stage()?;
        let handle = ManuallyDrop::new(self).0;
        let sent = sys::ipc::port_reply(handle, info, message.words);
        if sent.is_err() {
            // The kernel keeps the capability when it refused the message itself.
            let _ = sys::ipc::cap_delete(handle);
        }
        sent
    }
}

impl Drop for Reply {
    /// Deleting an unused reply capability answers the caller with `PeerGone`.
    fn drop(&mut self) {
        let _ = sys::ipc::cap_delete(self.0);
    }
}
