//! The client end of a connection: many calls in flight, matched to responses by call id.

use alloc::collections::BTreeMap;
use alloc::rc::{Rc, Weak};
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::poll_fn;
use core::task::{Poll, Waker};
use core::time::Duration;
use futures_util::future::{Either, select};
use keel_abi::Error;
use keel_abi::cap::rights;
use keel_ring::alloc_free::Buffer;
use keel_ring::{Consumer, Pop, Producer, Push};

use super::bulk::{Arena, Bulk};
use super::channel::{Channel, RING_SIZE, next_bit};
use super::{Interface, TransportError, label, status};
use crate::executor::{sleep, spawn, wake};
use crate::ipc::{Message, Port};

/// How long a call waits in silence before checking that the server still exists.
const LIVENESS_PROBE: Duration = Duration::from_millis(20);

/// A call in flight.
enum Slot {
    /// The waker of the call's future, once it has been polled.
    Waiting(Option<Waker>),
    Done(Result<Vec<u8>, TransportError>),
}

struct Inner {
    requests: Producer<'static>,
    responses: Consumer<'static>,
    /// The channel's mapping and its bulk arena; declared after the rings, so it goes after
    /// them (and lives on while a `Bulk` still holds it).
    arena: Rc<Arena>,
    server: Port,
    server_bit: u32,
    bit: u32,
    next_call: Cell<u32>,
    pending: RefCell<BTreeMap<u32, Slot>>,
    broken: Cell<Option<TransportError>>,
    /// The reader task, when it sleeps; and calls waiting for room in the request ring.
    reader: RefCell<Option<Waker>>,
    space_waiters: RefCell<Vec<Waker>>,
    /// Room for the largest response record, reused by every drain.
    scratch: RefCell<Vec<u8>>,
}

/// A connection to a service. Clones share it; any number of calls may be in flight.
///
/// One reader task per connection takes responses off the ring and wakes exactly the call
/// each belongs to; while calls are in flight it also checks, every [`LIVENESS_PROBE`] of
/// silence, that the server still exists, so a dead server means `ServerGone`, not a hang.
#[derive(Clone)]
pub struct Connection(Rc<Inner>);

fn transport(error: Error) -> TransportError {
    match error {
        Error::PeerGone => TransportError::ServerGone,
        _ => TransportError::Disconnected,
    }
}

impl Connection {
    /// Connect to the service behind `server` (a send capability to its port). Must run on
    /// the executor's thread: the connection's reader is a task.
    pub fn connect(server: Port, interface: Interface) -> Result<Connection, TransportError> {
        let bit = next_bit();
        // The server gets a send-only copy of our wake port, to signal us with.
        let wake = wake::port()
            .derive(rights::SEND | rights::GRANT, 0)
            .map_err(transport)?;
        let request = Message::new(label::CONNECT, [interface.hash, bit as u64, 0, 0])
            .with_caps(&[wake.handle()]);
        let answer = server.call(&request);
        let _ = crate::sys::ipc::cap_delete(wake.handle());
        let answer = answer.map_err(transport)?;
        let server_bit = match answer.words {
            [0, server_bit, ..] => server_bit as u32,
            [1, found, ..] => {
                return Err(TransportError::InterfaceMismatch {
                    expected: interface.hash,
                    found,
                });
            }
            _ => return Err(TransportError::Disconnected),
        };
        let channel = match answer.caps.as_slice() {
            [channel] => Channel::map(*channel).map_err(|_| TransportError::Disconnected)?,
            _ => return Err(TransportError::Disconnected),
        };
        let arena = Rc::new(Arena::new(channel));
        let (requests, responses) = arena.channel().client_ends();
        let inner = Rc::new(Inner {
            requests,
            responses,
            arena,
            server,
            server_bit,
            bit,
            next_call: Cell::new(0),
            pending: RefCell::new(BTreeMap::new()),
            broken: Cell::new(None),
            reader: RefCell::new(None),
            space_waiters: RefCell::new(Vec::new()),
            scratch: RefCell::new(alloc::vec![0; RING_SIZE / 2]),
        });
        spawn(read_responses(Rc::downgrade(&inner)));
        Ok(Connection(inner))
    }

    /// Connect to service `name`, found through init's name service
    /// ([`names::lookup`](crate::names::lookup)). A refused or failed lookup is
    /// `Disconnected` (`ServerGone` if init itself is gone).
    pub fn connect_named(name: &str, interface: Interface) -> Result<Connection, TransportError> {
        let server = crate::names::lookup(name).map_err(transport)?;
        Connection::connect(server, interface)
    }

    /// Room for `len` bulk bytes in this connection's shared arena, to fill and pass to a
    /// method taking a [`Bulk`]. The room is free again when the `Bulk` is dropped.
    pub fn bulk(&self, len: usize) -> Result<Bulk, TransportError> {
        Bulk::allocate(&self.0.arena, len)
    }

    /// Call `method` with encoded arguments; the encoded result.
    pub async fn call(&self, method: u32, arguments: &[u8]) -> Result<Vec<u8>, TransportError> {
        let inner = &self.0;
        if let Some(error) = inner.broken.get() {
            return Err(error);
        }
        let id = inner.next_call.get();
        inner.next_call.set(id.wrapping_add(1));
        let mut record = Vec::with_capacity(8 + arguments.len());
        record.extend_from_slice(&id.to_le_bytes());
        record.extend_from_slice(&method.to_le_bytes());
        record.extend_from_slice(arguments);
        let was_idle = inner.pending.borrow().is_empty();
        inner.pending.borrow_mut().insert(id, Slot::Waiting(None));
        if was_idle {
            // The reader sleeps without a liveness check while nothing is in flight.
            inner.wake_reader();
        }
        let result = match self.submit(&record).await {
            Ok(()) => self.response(id).await,
            Err(error) => Err(error),
        };
        inner.pending.borrow_mut().remove(&id);
        result
    }

    /// Put a request in the ring, waiting for room if it is full.
    async fn submit(&self, record: &[u8]) -> Result<(), TransportError> {
        let inner = &self.0;
        loop {
            if let Some(error) = inner.broken.get() {
                return Err(error);
            }
            match inner.requests.push(record) {
                Ok(Push::Done { wake_consumer }) => {
                    if wake_consumer {
                        inner
                            .server
                            .notify(1 << inner.server_bit)
                            .map_err(transport)?;
                    }
                    return Ok(());
                }
                Ok(Push::Full) => match inner.requests.prepare_wait(record.len()) {
                    Ok(true) => {
                        let mut registered = false;
                        poll_fn(|cx| {
                            if registered {
                                return Poll::Ready(());
                            }
                            registered = true;
                            inner.space_waiters.borrow_mut().push(cx.waker().clone());
                            Poll::Pending
                        })
                        .await
                    }
                    Ok(false) => {}
                    Err(_) => return Err(inner.fail(TransportError::Disconnected)),
                },
                Err(keel_ring::RingError::TooLarge) => return Err(TransportError::TooLarge),
                Err(keel_ring::RingError::Corrupt) => {
                    return Err(inner.fail(TransportError::Disconnected));
                }
            }
        }
    }

    /// Wait until the reader has filed call `id`'s response.
    async fn response(&self, id: u32) -> Result<Vec<u8>, TransportError> {
        poll_fn(|cx| {
            let mut pending = self.0.pending.borrow_mut();
            match pending.get_mut(&id) {
                Some(Slot::Done(_)) => match pending.remove(&id) {
                    Some(Slot::Done(result)) => Poll::Ready(result),
                    _ => unreachable!("matched Done above"),
                },
                Some(Slot::Waiting(waker)) => {
                    *waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                None => Poll::Ready(Err(TransportError::Disconnected)),
            }
        })
        .await
    }
}

impl Inner {
    fn wake_reader(&self) {
        if let Some(waker) = self.reader.borrow_mut().take() {
            waker.wake();
        }
    }

    /// File every response in the ring with its call. False when nothing came.
    fn drain(&self) -> Result<bool, TransportError> {
        let mut bytes = self.scratch.borrow_mut();
        let mut any = false;
        loop {
            let mut out = Buffer::new(&mut bytes);
            match self.responses.pop(&mut out) {
                Ok(Pop::Empty) => return Ok(any),
                Ok(Pop::Record { wake_producer }) => {
                    any = true;
                    if wake_producer {
                        self.server
                            .notify(1 << self.server_bit)
                            .map_err(transport)?;
                    }
                    let (id, result) =
                        parse_response(out.as_slice()).ok_or(TransportError::MalformedReply)?;
                    // A response to no call of ours is ignored: only its sender is confused.
                    if let Some(slot) = self.pending.borrow_mut().get_mut(&id)
                        && let Slot::Waiting(Some(waker)) =
                            core::mem::replace(slot, Slot::Done(result))
                    {
                        waker.wake();
                    }
                }
                Err(_) => return Err(TransportError::Disconnected),
            }
        }
    }

    /// Mark the connection broken: every call, now and later, gets `error`.
    fn fail(&self, error: TransportError) -> TransportError {
        self.broken.set(Some(error));
        for slot in self.pending.borrow_mut().values_mut() {
            if let Slot::Waiting(waker) = core::mem::replace(slot, Slot::Done(Err(error))) {
                waker.into_iter().for_each(Waker::wake);
            }
        }
        self.space_waiters
            .borrow_mut()
            .drain(..)
            .for_each(Waker::wake);
        error
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.wake_reader();
    }
}

fn parse_response(record: &[u8]) -> Option<(u32, Result<Vec<u8>, TransportError>)> {
    let id = u32::from_le_bytes(record.get(0..4)?.try_into().ok()?);
    let code = u32::from_le_bytes(record.get(4..8)?.try_into().ok()?);
    let result = match code {
        status::OK => Ok(record[8..].to_vec()),
        status::MALFORMED => Err(TransportError::Rejected),
        status::TOO_LARGE => Err(TransportError::TooLarge),
        _ => Err(TransportError::MalformedReply),
    };
    Some((id, result))
}

/// The connection's reader task: file responses, wake waiting senders, watch the server.
async fn read_responses(connection: Weak<Inner>) {
    loop {
        let Some(inner) = connection.upgrade() else {
            return;
        };
        if let Err(error) = inner.drain() {
            inner.fail(error);
            return;
        }
        inner
            .space_waiters
            .borrow_mut()
            .drain(..)
            .for_each(Waker::wake);
        if !matches!(inner.responses.prepare_wait(), Ok(true)) {
            continue;
        }
        let (bit, busy, server) = (inner.bit, !inner.pending.borrow().is_empty(), inner.server);
        // Hold no strong reference while asleep, so dropping the connection ends the task.
        drop(inner);
        let mut registered = false;
        let kicked = core::pin::pin!(poll_fn(|cx| {
            if registered {
                return Poll::Ready(());
            }
            registered = true;
            if let Some(inner) = connection.upgrade() {
                *inner.reader.borrow_mut() = Some(cx.waker().clone());
            }
            wake::on_notification(bit, cx.waker());
            Poll::Pending
        }));
        if busy {
            // The timer goes first: `kicked` reports ready on any poll after its first.
            if let Either::Left(_) = select(sleep(LIVENESS_PROBE), kicked).await
                && let Err(error) = server.notify(0)
                && let Some(inner) = connection.upgrade()
            {
                inner.fail(transport(error));
                return;
            }
        } else {
            kicked.await;
        }
    }
}

/// Complete at the next notification carrying `bit` (or any earlier poll: callers re-check).
pub(super) async fn next_signal(bit: u32) {
    let mut registered = false;
    poll_fn(|cx| {
        if registered {
            return Poll::Ready(());
        }
        registered = true;
        wake::on_notification(bit, cx.waker());
        Poll::Pending
    })
    .await
}
