//! Receiving in tests: the next message within a deadline, or a failure that says what
//! came instead.

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use keel_abi::ipc::MessageInfo;
use keel_rt::ipc::{Message, Port, Received, Reply};

/// How long a test waits for what another process (or thread) should send.
pub const WAIT: Duration = Duration::from_secs(5);

/// A message that arrived, as opposed to notification bits.
#[derive(Debug)]
pub struct Got {
    pub badge: u64,
    pub message: Message,
    /// There for a call.
    pub reply: Option<Reply>,
    pub info: MessageInfo,
}

/// The next message on `port`, within [`WAIT`]; `what` names it in a failure.
pub fn message(port: Port, what: &str) -> Result<Got, String> {
    message_within(port, Some(WAIT), what)
}

/// The message already waiting on `port`.
pub fn waiting(port: Port, what: &str) -> Result<Got, String> {
    message_within(port, Some(Duration::ZERO), what)
}

fn message_within(port: Port, timeout: Option<Duration>, what: &str) -> Result<Got, String> {
    match port.receive(timeout) {
        Ok(Received::Message {
            badge,
            message,
            reply,
            info,
        }) => Ok(Got {
            badge,
            message,
            reply,
            info,
        }),
        Ok(Received::Notification(bits)) => Err(format!(
            "{what}: expected a message, got notification bits {bits:#x}"
        )),
        Err(error) => Err(format!("{what}: the receive failed: {error}")),
    }
}

/// The notification bits waiting on `port`, or arriving within [`WAIT`].
pub fn notification(port: Port, what: &str) -> Result<u64, String> {
    match port.receive(Some(WAIT)) {
        Ok(Received::Notification(bits)) => Ok(bits),
        Ok(other) => Err(format!("{what}: expected a notification, got {other:?}")),
        Err(error) => Err(format!("{what}: the receive failed: {error}")),
    }
}

/// What a poll of `port` finds: `Err(WouldBlock)` when nothing is waiting, as it must be
/// after refused sends.
pub fn poll(port: Port) -> Result<(), keel_abi::Error> {
    port.receive(Some(Duration::ZERO)).map(drop)
}
