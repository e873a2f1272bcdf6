//! What one client may take of a server: every `#[service]` server enforces these, so a
//! client that floods, never reads its answers or hoards connections hurts only itself.
//! docs/SERVICES.md ("Limits") explains each; change them here.

use core::time::Duration;

/// Connections one client process holds at once (known by its wake port, which every
/// connection of a process hands over). One more is refused with `LimitReached`.
pub const CONNECTIONS_PER_CLIENT: usize = 4;
/// Connections a server holds at once, all clients together: each costs a 2.1 MiB
/// channel of the server's 64 MiB of frames, and two capability slots.
pub const CONNECTIONS: usize = 16;
/// Frames of its quota a server keeps for itself (its heap, stacks, what its methods hold):
/// a connect whose channel would leave fewer is refused with `LimitReached`. Channels are
/// charged to the server, and one the server has ended stays charged while its client
/// still holds its copy, so without this reserve a client keeping such copies could take
/// the quota's last frames and make the server's next heap growth fail (a panic).
pub const RESERVED_FRAMES: usize = 512;
/// Calls of one connection under way at once (methods running, or answered and waiting
/// for room in the response ring). Beyond it the server takes no more of that
/// connection's requests until some end: back-pressure, felt only by that client.
pub const CALLS_PER_CONNECTION: usize = 1024;
/// Bytes of answers one connection's calls hold while its response ring is full; beyond
/// it, back-pressure as for [`CALLS_PER_CONNECTION`].
pub const HELD_BYTES_PER_CONNECTION: usize = 64 * 1024;
/// Capabilities given on one connection and not yet taken by a request; one more is
/// refused (the client gets `LimitReached`) and deleted at once.
pub const CAPS_PER_CONNECTION: usize = 8;
/// How often the server looks for connections whose client process has died.
pub const SWEEP: Duration = Duration::from_millis(100);
/// How long a connect keeps trying while the server's port queue is full.
pub const CONNECT_PATIENCE: Duration = Duration::from_secs(2);
