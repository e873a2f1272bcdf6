//! Handing a server's port to its clients, until the name service does it.
//!
//! A service takes connections on its process's wake port
//! ([`executor::wake::port`](crate::executor::wake::port)), so a client needs a send
//! capability to that port, and only the server can make one. So whoever starts a server
//! ([`start_server`]):
//!
//! 1. creates a bootstrap port and starts the server with a send capability to it as its
//!    first capability (handle 1);
//! 2. the server [`announce`]s: it sends a send capability to its wake port over it;
//! 3. the starter receives that capability and passes it to clients (`Spawn::caps`), who
//!    connect with `FooClient::connect`.
//!
//! ```ignore
//! // The starter (init):
//! let (pid, port) = bootstrap::start_server(Spawn::new("kv", image).args("server"), TIMEOUT)?;
//! Spawn::new("kv", image).args("client").caps(&[port.handle()]).spawn()?;
//!
//! // The server, first thing:
//! bootstrap::announce()?;
//! serve_kv(Store::default()).await
//! ```

use core::time::Duration;

use keel_abi::Error;
use keel_abi::cap::{kind, rights};

use crate::cap;
use crate::ipc::{Message, Port, Received};
use crate::process::{self, Pid, Spawn};

/// The label of the message carrying a server's port.
pub const ANNOUNCE: u32 = u32::from_be_bytes(*b"KANN");

/// Send a capability to this process's wake port to the port this process was started
/// with as its first capability. The capability sent can send and be passed on (GRANT),
/// nothing more: clients must not receive the server's connections.
pub fn announce() -> Result<(), Error> {
    let bootstrap = Port::from_handle(*cap::initial().start());
    let wake = crate::executor::wake::port().derive(rights::SEND | rights::GRANT, 0)?;
    // The message carries a copy, so ours goes either way.
    let sent = bootstrap.send(&Message::new(ANNOUNCE, [0; 4]).with_caps(&[wake.handle()]));
    let _ = wake.delete();
    sent
}

/// Start the server `spawn` describes, with a bootstrap port as its only capability, and
/// wait up to `timeout` for it to [`announce`]. Its pid and a capability to send to its
/// wake port (with GRANT, to pass on to clients). Blocks the calling thread.
///
/// A server that does not announce in time is killed and reaped, and the error is
/// [`Error::TimedOut`].
pub fn start_server(spawn: Spawn<'_>, timeout: Duration) -> Result<(Pid, Port), Error> {
    let bootstrap = Port::create(1)?;
    let result = start_with(spawn, bootstrap, timeout);
    let _ = bootstrap.delete();
    result
}

fn start_with(spawn: Spawn<'_>, bootstrap: Port, timeout: Duration) -> Result<(Pid, Port), Error> {
    let for_server = bootstrap.derive(rights::SEND | rights::GRANT, 0)?;
    let pid = spawn.caps(&[for_server.handle()]).spawn();
    let _ = for_server.delete();
    let pid = pid?;
    match receive_announcement(bootstrap, timeout) {
        Ok(port) => Ok((pid, port)),
        Err(error) => {
            let _ = process::kill(pid);
            let _ = process::wait(pid);
            Err(error)
        }
    }
}

/// The port capability in the server's announcement; anything else is refused.
fn receive_announcement(bootstrap: Port, timeout: Duration) -> Result<Port, Error> {
    let Received::Message { message, .. } = bootstrap.receive(Some(timeout))? else {
        return Err(Error::InvalidArgument);
    };
    let is_port = |handle| cap::info(handle).is_ok_and(|info| info.kind == kind::PORT);
    match message.caps.as_slice() {
        &[handle] if message.label == ANNOUNCE && is_port(handle) => Ok(Port::from_handle(handle)),
        caps => {
            for &handle in caps {
                let _ = cap::delete(handle);
            }
            Err(Error::InvalidArgument)
        }
    }
}
