//! A server loop on one port: each answer goes out with the next receive, in one syscall.

use core::ops::ControlFlow;

use keel_abi::Error;
use keel_abi::ipc::MessageInfo;

use super::{Message, Port, buffer};
use crate::sys;

/// A message as [`Port::serve`] hands it to its handler.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// The badge of the capability it was sent through (0 for none).
    pub badge: u64,
    /// For a notification: label 0 and the bits in word 0.
    pub message: Message,
    /// The kernel's flags: [`MessageInfo::is_notification`], dropped capabilities or payload.
    pub info: MessageInfo,
    /// A call, waiting for the handler's answer.
    pub is_call: bool,
}

impl Port {
    /// Serves this port (which needs RECEIVE) until `handler` breaks, or fails with the
    /// receive's error.
    ///
    /// Every message and notification goes to `handler`. For a call, the message it returns
    /// is the answer, sent together with the next receive (`port_reply_recv`: for a plain
    /// answer to a waiting caller, the kernel's fast path). A call it answers with `None`
    /// fails with `PeerGone` at the next receive, unless the handler took it with
    /// [`Reply::save`](super::Reply::save) to answer later. What it returns for anything
    /// but a call is dropped.
    pub fn serve<F>(self, mut handler: F) -> Result<(), Error>
    where
        F: FnMut(Request) -> ControlFlow<(), Option<Message>>,
    {
        buffer::current()?;
        let mut next = sys::ipc::port_recv(self.handle(), u64::MAX);
        loop {
            let (is_call, raw) = next?;
            let request = Request {
                badge: raw.badge,
                message: Message::collect(&raw),
                info: raw.info,
                is_call,
            };
            let ControlFlow::Continue(answer) = handler(request) else {
                return Ok(());
            };
            next = match answer.filter(|_| is_call) {
                Some(answer) => {
                    let info = answer.stage()?;
                    sys::ipc::port_reply_recv(self.handle(), info, answer.words)
                }
                None => sys::ipc::port_recv(self.handle(), u64::MAX),
            };
        }
    }
}
