//! The client end of a connection: many calls in flight, matched to responses by call id;
//! and, for a connection made by name, a new server found after the old one is gone.
//!
//! A [`Connection`] is a handle shared by a client and its clones. Behind it is one *link*
//! at a time: the channel to one start of the server, with its rings, arena and reader
//! task. When a call of an idempotent method fails with `ServerGone` and the connection
//! was made by name, [`Connection::invoke`] looks the name up again, swaps in a link to the
//! new start, and sends the call again (a few times, if new starts die too); every clone
//! then uses the new link. The old
//! link lives on only while something (a call that already failed, a [`Bulk`]) holds it.

use alloc::rc::{Rc, Weak};
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::{Poll, Waker};
use core::time::Duration;
use keel_abi::Error;
use keel_abi::cap::rights;
use keel_ring::alloc_free::Buffer;
use keel_ring::{Consumer, Pop, Producer, Push};
use serde::Serialize;
use serde::de::DeserializeOwned;
use spin::Once;

use super::bulk::{self, Arena, Bulk};
use super::calls::Calls;
use super::channel::{Channel, MAX_RECORD, next_bit};
use super::fixed::{self, Fixed};
use super::wire::{ConnectAnswer, Head};
use super::{Interface, TransportError, label, status};
use crate::executor::{self, Doorbell, Sleep, sleep, spawn, unblock, wake};
use crate::ipc::{Message, Port};

/// How often the reader checks that the server still exists while calls are in flight.
const LIVENESS_PROBE: Duration = Duration::from_millis(20);
/// How long a reconnect keeps trying while the name still leads to the dead server: init
/// drops a registration only once it has reaped the server, which may be just after the
/// client noticed. As long as init's own wait for a restarting server (docs/SYSTEM.md).
const RECONNECT_WAIT: Duration = Duration::from_secs(5);
/// How many times an idempotent call is sent again, each time to a new start of its
/// server, before its `ServerGone` stands.
const MAX_RETRIES: usize = 8;
/// The pause between lookups that found only the dead server.
const STALE_LOOKUP_PAUSE: Duration = Duration::from_millis(5);

/// One link: the channel to one start of the server.
struct Inner {
    /// Borrowed mutably while a request is written in place in it, shared to push.
    requests: RefCell<Producer<'static>>,
    responses: Consumer<'static>,
    /// The channel's mapping and its bulk arena; declared after the rings, so it goes after
    /// them (and lives on while a `Bulk` still holds it).
    arena: Rc<Arena>,
    server: Port,
    /// The server's send capability badged for this connection, to give capabilities on.
    giver: Port,
    /// The connection's lease, held and never used: the server watches it to learn that
    /// this end is gone.
    lease: Port,
    /// Whether `server` is ours to delete: true when it came from a lookup, false when the
    /// caller handed it over and still holds it.
    owns_server: bool,
    server_bit: u32,
    bit: u32,
    calls: RefCell<Calls>,
    broken: Cell<Option<TransportError>>,
    /// The reader task, when it sleeps; and calls waiting for room in the request ring.
    reader: RefCell<Option<Waker>>,
    /// Whether the reader sleeps with its liveness probe armed: a call that finds it so
    /// need not wake it to have one.
    probing: Cell<bool>,
    /// Whether the reader sleeps on the notification bit (or is about to run): a second
    /// call that finds it so need not wake it to take the ring back from a lone call.
    listening: Cell<bool>,
    space_waiters: RefCell<Vec<Waker>>,
    /// The notification bit's standing registration for lone calls: the task making them
    /// (usually the same one, call after call) is registered once, not at every sleep. Its
    /// waker is woken under the registrations' lock: a task's, or a combinator's that
    /// passes the wake on to one (`join_all`, `select`), which only mark tasks ready.
    lone_listener: RefCell<wake::Listener>,
    /// Room for the largest response record, reused by every drain.
    scratch: RefCell<Vec<u8>>,
    /// Room for the largest request record, where a call encodes its request when the
    /// ring has too little room at its tail for it (full, or about to wrap).
    outgoing: RefCell<Vec<u8>>,
}

/// A connection to a service. Clones share it; any number of calls may be in flight.
///
/// One reader task per link takes responses off the ring and wakes exactly the call each
/// belongs to; while calls are in flight it also checks, every `LIVENESS_PROBE`, that the
/// server still exists, so a dead server means `ServerGone`, not a hang. A call alone in
/// flight takes its response off the ring itself, without waking the reader.
#[derive(Clone)]
pub struct Connection(Rc<Shared>);

/// What the clones of a connection share.
struct Shared {
    interface: Interface,
    /// The service name it was made with: where to find a new server. `None` for a
    /// connection made from a port, which has nowhere else to go.
    name: Option<String>,
    /// The current link, swapped for a new one on reconnect.
    link: RefCell<Rc<Inner>>,
    /// One reconnect at a time: the calls that fail together wait for it and share it.
    reconnecting: Cell<bool>,
    /// Bumped when a reconnect ends, so its waiters know it did even if it failed.
    reconnects: Cell<u64>,
    reconnect_waiters: RefCell<Vec<Waker>>,
}

fn transport(error: Error) -> TransportError {
    match error {
        Error::PeerGone => TransportError::ServerGone,
        _ => TransportError::Disconnected,
    }
}

impl Connection {
    /// Connect to the service behind `server` (a send capability to its port, which stays
    /// the caller's). Must run on the executor's thread: the connection's reader is a task.
    /// Such a connection cannot reconnect: after `ServerGone`, every call returns it.
    pub fn connect(server: Port, interface: Interface) -> Result<Connection, TransportError> {
        let link = Inner::connect(server, false, interface)?;
        Ok(Connection::new(link, interface, None))
    }

    /// Connect to service `name`, found through init's name service
    /// ([`names::lookup`](crate::names::lookup)). A refused or failed lookup is
    /// `Disconnected` (`ServerGone` if init itself is gone). The connection remembers
    /// `name`: [`invoke`](Connection::invoke) reconnects through it for idempotent calls.
    pub fn connect_named(name: &str, interface: Interface) -> Result<Connection, TransportError> {
        let link = Inner::connect_named(name, interface)?;
        Ok(Connection::new(link, interface, Some(name.into())))
    }

    fn new(link: Rc<Inner>, interface: Interface, name: Option<String>) -> Connection {
        Connection(Rc::new(Shared {
            interface,
            name,
            link: RefCell::new(link),
            reconnecting: Cell::new(false),
            reconnects: Cell::new(0),
            reconnect_waiters: RefCell::new(Vec::new()),
        }))
    }

    fn link(&self) -> Rc<Inner> {
        self.0.link.borrow().clone()
    }

    /// Room for `len` bulk bytes in this connection's shared arena, to fill and pass to a
    /// method taking a [`Bulk`]. The room is free again when the `Bulk` is dropped. A
    /// `Bulk` belongs to the link it was made on: a call after a reconnect cannot carry it.
    /// Give the server a copy of capability `handle` (which needs GRANT) for a later
    /// request on this connection: pass the [`Cap`](super::Cap) as a method argument.
    pub fn cap(&self, handle: keel_abi::cap::Handle) -> Result<super::Cap, TransportError> {
        let give = Message::new(super::label::GIVE, [0; 4]).with_caps(&[handle]);
        let answer = self.link().giver.call(&give).map_err(transport)?;
        match answer.words {
            [0, token, ..] => Ok(super::Cap::given(token)),
            [code, ..] if code == Error::QuotaExceeded as u64 => Err(TransportError::LimitReached),
            _ => Err(TransportError::Rejected),
        }
    }

    /// Room for `len` bytes in this connection's 2 MiB bulk arena, to fill and pass to a
    /// method that takes a [`Bulk`]. `TooLarge` when the arena has no free run that long
    /// (room comes back as the `Bulk`s holding it are dropped).
    ///
    /// ```ignore
    /// let mut data = client.connection().bulk(1 << 20)?;
    /// data.as_mut_slice().expect("a client's Bulk").fill(7);
    /// let sum = client.checksum(data).await?;
    /// ```
    pub fn bulk(&self, len: usize) -> Result<Bulk, TransportError> {
        Bulk::allocate(&self.link().arena, len)
    }

    /// Call `method` with arguments already encoded; the encoded result. One attempt,
    /// whatever the method: the untyped form, for tests and tools.
    pub async fn call(&self, method: u32, arguments: &[u8]) -> Result<Vec<u8>, TransportError> {
        let encode = |body: &mut [u8]| {
            let room = body
                .get_mut(..arguments.len())
                .ok_or(TransportError::TooLarge)?;
            room.copy_from_slice(arguments);
            Ok(arguments.len())
        };
        let link = self.link();
        let outcome = link.call(method, encode, |bytes| Ok(bytes.to_vec())).await;
        outcome.map_err(Attempt::into_error)
    }

    /// Call `method` with the arguments `arguments` builds for this connection (it may put
    /// bytes in the arena, as [`Bytes`](super::Bytes) does); the decoded result
    /// (`MalformedReply` if it does not decode as an `R`). What the generated clients call.
    ///
    /// When the call fails with `ServerGone`, `idempotent` is true and the connection was
    /// made by name, the connection reconnects through the name service (whose lookup
    /// waits for a restarting server) and the call is built and sent again, to the new
    /// server; and again after each new server that dies in turn, up to eight
    /// times. Otherwise, or when no new server can be reached, the error is returned.
    pub async fn invoke<A, F, R>(
        &self,
        method: u32,
        idempotent: bool,
        arguments: F,
    ) -> Result<R, TransportError>
    where
        A: Serialize,
        F: Fn(&Connection) -> Result<A, TransportError>,
        R: DeserializeOwned,
    {
        let call = Encoding {
            encode: bulk::encode_for,
            decode: super::decode,
        };
        self.invoke_with(method, idempotent, arguments, call).await
    }

    /// [`invoke`](Connection::invoke) for a method whose arguments and result all have a
    /// [`Fixed`] wire form: encoded as their bytes, without postcard. What the generated
    /// clients call for such methods.
    pub async fn invoke_fixed<A: Fixed + Copy, R: Fixed>(
        &self,
        method: u32,
        idempotent: bool,
        arguments: A,
    ) -> Result<R, TransportError> {
        let call = Encoding {
            encode: |_: &Rc<Arena>, arguments: &A, body: &mut [u8]| {
                fixed::encode(arguments, body).ok_or(TransportError::TooLarge)
            },
            decode: fixed::decode,
        };
        self.invoke_with(method, idempotent, |_| Ok(arguments), call)
            .await
    }

    /// Build, encode and send a call; when it fails with `ServerGone`, `idempotent` is
    /// true and the connection was made by name, reconnect and send it again, up to
    /// [`MAX_RETRIES`] times.
    async fn invoke_with<A, R, F, E, D>(
        &self,
        method: u32,
        idempotent: bool,
        arguments: F,
        call: Encoding<E, D>,
    ) -> Result<R, TransportError>
    where
        F: Fn(&Connection) -> Result<A, TransportError>,
        E: Fn(&Rc<Arena>, &A, &mut [u8]) -> Result<usize, TransportError>,
        D: Fn(&[u8]) -> Option<R>,
    {
        let mut link = self.link();
        let mut outcome = self.attempt(&link, method, &arguments, &call).await;
        // A new server killed while the call was sent again is one more restart to get
        // across, not a failure (the chaos campaign found it): so again, up to a bound.
        for _ in 0..MAX_RETRIES {
            let retry = matches!(outcome, Err(Attempt::Sending(TransportError::ServerGone)))
                && idempotent
                && self.0.name.is_some();
            if !retry {
                break;
            }
            if self.reconnect(&link).await.is_err() {
                return Err(TransportError::ServerGone);
            }
            link = self.link();
            outcome = match self.attempt(&link, method, &arguments, &call).await {
                // Arguments that built the first time and not now hold a `Bulk` of the old
                // link, which cannot travel on the new one: the call stays failed as it was.
                Err(Attempt::Building(_)) => return Err(TransportError::ServerGone),
                outcome => outcome,
            };
        }
        outcome.map_err(Attempt::into_error)
    }

    /// Build, encode and send the call on `link`, the current one, keeping the built
    /// arguments (and any arena room they hold) until the response is in.
    async fn attempt<A, R, E, D>(
        &self,
        link: &Inner,
        method: u32,
        arguments: &impl Fn(&Connection) -> Result<A, TransportError>,
        call: &Encoding<E, D>,
    ) -> Result<R, Attempt>
    where
        E: Fn(&Rc<Arena>, &A, &mut [u8]) -> Result<usize, TransportError>,
        D: Fn(&[u8]) -> Option<R>,
    {
        // The builder runs synchronously, so the link it finds is still `link`.
        let built = arguments(self).map_err(Attempt::Building)?;
        let encode = |body: &mut [u8]| (call.encode)(&link.arena, &built, body);
        let decode = |bytes: &[u8]| (call.decode)(bytes).ok_or(TransportError::MalformedReply);
        let outcome = link.call(method, encode, decode).await;
        drop(built);
        outcome
    }

    /// Replace `failed`, a link whose server is gone, by one to the server now registered
    /// under the connection's name. Calls that fail together share one reconnect: one
    /// that finds it done or under way takes its outcome.
    async fn reconnect(&self, failed: &Rc<Inner>) -> Result<(), TransportError> {
        let shared = &self.0;
        let swapped = || !Rc::ptr_eq(&shared.link.borrow(), failed);
        if swapped() {
            return Ok(());
        }
        if shared.reconnecting.get() {
            let started = shared.reconnects.get();
            poll_fn(|cx| {
                if shared.reconnects.get() != started {
                    return Poll::Ready(());
                }
                shared
                    .reconnect_waiters
                    .borrow_mut()
                    .push(cx.waker().clone());
                Poll::Pending
            })
            .await;
            return if swapped() {
                Ok(())
            } else {
                Err(TransportError::ServerGone)
            };
        }
        let name = shared.name.as_deref().ok_or(TransportError::ServerGone)?;
        let _under_way = Reconnecting::begin(shared);
        let link = Inner::connect_fresh(name, shared.interface).await?;
        *shared.link.borrow_mut() = link;
        Ok(())
    }
}

/// How a call's arguments are encoded for a link and its result decoded.
struct Encoding<E, D> {
    encode: E,
    decode: D,
}

/// Where an attempt failed: building its arguments, or carrying the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    Building(TransportError),
    Sending(TransportError),
}

impl Attempt {
    fn into_error(self) -> TransportError {
        match self {
            Attempt::Building(error) | Attempt::Sending(error) => error,
        }
    }
}

/// Marks a reconnect under way; its end (even by cancellation) wakes those waiting for it.
struct Reconnecting<'a>(&'a Shared);

impl<'a> Reconnecting<'a> {
    fn begin(shared: &'a Shared) -> Reconnecting<'a> {
        shared.reconnecting.set(true);
        Reconnecting(shared)
    }
}

impl Drop for Reconnecting<'_> {
    fn drop(&mut self) {
        let shared = self.0;
        shared.reconnecting.set(false);
        shared
            .reconnects
            .set(shared.reconnects.get().wrapping_add(1));
        shared
            .reconnect_waiters
            .borrow_mut()
            .drain(..)
            .for_each(Waker::wake);
    }
}

impl Inner {
    /// A link to the server behind `server`; `owns_server` if the link is to delete it.
    fn connect(
        server: Port,
        owns_server: bool,
        interface: Interface,
    ) -> Result<Rc<Inner>, TransportError> {
        let bit = next_bit();
        // The server gets a send-only copy of our wake port, to signal us with.
        let wake = wake::port()
            .derive(rights::SEND | rights::GRANT, 0)
            .map_err(transport)?;
        let request = Message::new(label::CONNECT, [interface.hash, bit as u64, 0, 0])
            .with_caps(&[wake.handle()]);
        let answer = call_patiently(server, &request);
        let _ = crate::sys::ipc::cap_delete(wake.handle());
        let answer = answer.map_err(transport)?;
        let server_bit = match ConnectAnswer::from_words(answer.words) {
            Some(ConnectAnswer::Accepted { server_bit }) => server_bit,
            Some(ConnectAnswer::Mismatch { found }) => {
                return Err(TransportError::InterfaceMismatch {
                    expected: interface.hash,
                    found,
                });
            }
            Some(ConnectAnswer::Limit) => return Err(TransportError::LimitReached),
            Some(ConnectAnswer::Malformed) | None => return Err(TransportError::Disconnected),
        };
        let (channel, giver, lease) = match answer.caps.as_slice() {
            &[channel, giver, lease] => match Channel::map(channel) {
                Ok(channel) => (channel, Port::from_handle(giver), Port::from_handle(lease)),
                Err(_) => {
                    let _ = crate::sys::ipc::cap_delete(giver);
                    let _ = crate::sys::ipc::cap_delete(lease);
                    return Err(TransportError::Disconnected);
                }
            },
            caps => {
                for &cap in caps {
                    let _ = crate::sys::ipc::cap_delete(cap);
                }
                return Err(TransportError::Disconnected);
            }
        };
        let arena = Rc::new(Arena::new(channel));
        let (requests, responses) = arena.channel().client_ends();
        let inner = Rc::new(Inner {
            requests: RefCell::new(requests),
            responses,
            arena,
            server,
            giver,
            lease,
            owns_server,
            server_bit,
            bit,
            calls: RefCell::default(),
            broken: Cell::new(None),
            reader: RefCell::new(None),
            probing: Cell::new(false),
            listening: Cell::new(false),
            space_waiters: RefCell::new(Vec::new()),
            lone_listener: RefCell::new(wake::Listener::new(bit)),
            scratch: RefCell::new(alloc::vec![0; MAX_RECORD]),
            outgoing: RefCell::new(alloc::vec![0; MAX_RECORD]),
        });
        spawn(read_responses(Rc::downgrade(&inner)));
        Ok(inner)
    }

    /// A link to the server registered as `name`.
    fn connect_named(name: &str, interface: Interface) -> Result<Rc<Inner>, TransportError> {
        let server = crate::names::lookup(name).map_err(transport)?;
        Inner::connect(server, true, interface).inspect_err(|_| {
            let _ = server.delete();
        })
    }

    /// A link to the server registered as `name` after the last one was found gone: until
    /// init has reaped that one, a lookup may still lead to it, so one that reaches a dead
    /// server is tried again, a little later, up to [`RECONNECT_WAIT`]. The lookup itself
    /// waits for a server that is restarting, on a thread of its own: this process's other
    /// tasks go on meanwhile.
    async fn connect_fresh(name: &str, interface: Interface) -> Result<Rc<Inner>, TransportError> {
        let deadline = crate::time::uptime() + RECONNECT_WAIT;
        loop {
            // A failed lookup (init refuses, or waited in vain) is final; only a connect
            // to the port a lookup gave can find the dead server.
            let owned = alloc::string::String::from(name);
            let lookup = unblock(move || crate::names::lookup(&owned).map(LookedUp));
            let server = lookup.await.map_err(transport)?.map_err(transport)?.take();
            match Inner::connect(server, true, interface) {
                Err(TransportError::ServerGone) if crate::time::uptime() < deadline => {
                    let _ = server.delete();
                    sleep(STALE_LOOKUP_PAUSE).await;
                }
                outcome => {
                    if outcome.is_err() {
                        let _ = server.delete();
                    }
                    return outcome;
                }
            }
        }
    }

    /// Call `method` on this link: `encode` writes the arguments into the request record
    /// and returns their length (its errors are `Building` ones), `decode` reads the
    /// result from the response.
    async fn call<R>(
        &self,
        method: u32,
        encode: impl Fn(&mut [u8]) -> Result<usize, TransportError>,
        decode: impl Fn(&[u8]) -> Result<R, TransportError>,
    ) -> Result<R, Attempt> {
        if let Some(error) = self.broken.get() {
            return Err(Attempt::Sending(error));
        }
        let (was_idle, was_lone, id) = {
            let mut calls = self.calls.borrow_mut();
            (!calls.busy(), calls.lone(), calls.open())
        };
        let mut call = Open {
            link: self,
            id,
            sent: false,
        };
        let waiting = {
            let head = Head {
                id: call.id,
                code: method,
            };
            let mut requests = self.requests.borrow_mut();
            let mut outgoing = self.outgoing.borrow_mut();
            // Alone, and nothing else for this thread to do: the kernel's call, if the
            // record fits in its message.
            let may_inline = was_idle && executor::inline::may_block();
            // Encoded where it goes from: the kernel's message, by way of the scratch;
            // else straight into the ring; else, when the room at the ring's tail is too
            // small, the scratch, to be copied in (or to wait with).
            let in_message = may_inline
                .then(|| write_record(&mut outgoing[..executor::inline::MAX_RECORD], head, &encode))
                .and_then(Result::ok);
            let mut draft = None;
            let len = match in_message {
                Some(len) => len,
                None => {
                    let Ok(fresh) = requests.draft() else {
                        return Err(Attempt::Sending(self.fail(TransportError::Disconnected)));
                    };
                    match write_record(draft.insert(fresh).room(), head, &encode) {
                        Ok(len) => len,
                        Err(_) => {
                            draft = None;
                            let len = write_record(&mut outgoing, head, &encode);
                            len.map_err(Attempt::Building)?
                        }
                    }
                }
            };
            let record = match &mut draft {
                Some(draft) => &draft.room()[..len],
                None => &outgoing[..len],
            };
            let inline = may_inline
                .then(|| executor::inline::request(record))
                .flatten();
            let sent = match inline {
                Some((label, words)) => match self.call_inline(label, words, &decode) {
                    Inline::Answered(outcome) => return outcome.map_err(Attempt::Sending),
                    Inline::Deferred => true,
                    Inline::Unsent => false,
                },
                None => false,
            };
            if (was_idle && !self.probing.get()) || (was_lone && !self.listening.get()) {
                // The reader sleeps without a liveness check while nothing is in flight,
                // and off the notification bit while a lone call files its own response:
                // it arms the one, or takes over the other, when it finds this call.
                self.wake_reader();
            }
            // A draft is published as it stands; the scratch's record goes in when there
            // is room, a copy of it waits otherwise.
            let pushed = match draft {
                _ if sent => Ok(true),
                Some(draft) => self.pushed(Ok(draft.publish(len))),
                None => self.pushed(requests.push(&outgoing[..len])),
            };
            match pushed.map_err(Attempt::Sending)? {
                true => None,
                false => Some(outgoing[..len].to_vec()),
            }
        };
        if let Some(record) = waiting {
            self.submit(&record).await.map_err(Attempt::Sending)?;
        }
        call.sent = true;
        poll_fn(|cx| {
            if self.calls.borrow().lone_waiting(call.id) {
                self.file_alone(call.id, cx.waker());
            }
            match self.calls.borrow_mut().poll(call.id, cx.waker()) {
                None => Poll::Pending,
                Some(outcome) => Poll::Ready(outcome.and_then(&decode).map_err(Attempt::Sending)),
            }
        })
        .await
    }

    /// Send a request inline (`executor::inline`) and block for the answer.
    fn call_inline<R>(
        &self,
        label: u32,
        words: [u64; 4],
        decode: impl Fn(&[u8]) -> Result<R, TransportError>,
    ) -> Inline<R> {
        let answer = match self.giver.call_receiver(label, words) {
            Ok((label, words)) => executor::inline::Answer { label, words },
            // The server is busy, or its queue full: the ring, which does not wait on it.
            Err(Error::WouldBlock | Error::QueueFull) => return Inline::Unsent,
            Err(error) => return Inline::Answered(Err(self.fail(transport(error)))),
        };
        let mut room = [0; executor::inline::MAX_RECORD];
        match answer.parse(&mut room) {
            None => Inline::Deferred,
            Some(Ok((code, body))) => Inline::Answered(outcome(code.into(), body).and_then(decode)),
            Some(Err(())) => Inline::Answered(Err(TransportError::MalformedReply)),
        }
    }

    /// Put a request in the ring if there is room: false when there is none.
    fn push(&self, record: &[u8]) -> Result<bool, TransportError> {
        self.pushed(self.requests.borrow().push(record))
    }

    /// What a push of a request did: false when the ring had no room.
    fn pushed(&self, push: Result<Push, keel_ring::RingError>) -> Result<bool, TransportError> {
        match push {
            Ok(Push::Done { wake_consumer }) => {
                if wake_consumer {
                    // Sent as this thread sleeps, which hands the CPU to the server. A
                    // server gone is then found by the reader's liveness probe.
                    wake::signal_later(self.server, 1 << self.server_bit);
                }
                Ok(true)
            }
            Ok(Push::Full) => Ok(false),
            Err(keel_ring::RingError::TooLarge) => Err(TransportError::TooLarge),
            Err(keel_ring::RingError::Corrupt) => Err(self.fail(TransportError::Disconnected)),
        }
    }

    /// Put a request in the ring, waiting for room if it is full.
    async fn submit(&self, record: &[u8]) -> Result<(), TransportError> {
        loop {
            if let Some(error) = self.broken.get() {
                return Err(error);
            }
            if self.push(record)? {
                return Ok(());
            }
            let waits = self.requests.borrow().prepare_wait(record.len());
            match waits {
                Ok(true) => {
                    let mut registered = false;
                    poll_fn(|cx| {
                        if registered {
                            return Poll::Ready(());
                        }
                        registered = true;
                        self.space_waiters.borrow_mut().push(cx.waker().clone());
                        Poll::Pending
                    })
                    .await
                }
                Ok(false) => {}
                Err(_) => return Err(self.fail(TransportError::Disconnected)),
            }
        }
    }
}

/// Encode a request into `room`: its head, then the arguments `encode` writes there; the
/// record's length.
fn write_record(
    room: &mut [u8],
    head: Head,
    encode: impl Fn(&mut [u8]) -> Result<usize, TransportError>,
) -> Result<usize, TransportError> {
    let body = room.get_mut(Head::LEN..).ok_or(TransportError::TooLarge)?;
    let len = encode(body)?;
    Ok(head.pack(room, len).len())
}

/// `server.call(request)`, tried again while the server's queue is full (a flood of other
/// clients' messages must not starve a connect): after 1, 2, 4 .. 64 ms, for up to
/// [`CONNECT_PATIENCE`](super::limits::CONNECT_PATIENCE). Blocks the thread, as the
/// connect call itself does.
fn call_patiently(server: Port, request: &Message) -> Result<Message, Error> {
    let deadline = crate::time::uptime() + super::limits::CONNECT_PATIENCE;
    let mut pause = Duration::from_millis(1);
    loop {
        match server.call(request) {
            Err(Error::QueueFull) if crate::time::uptime() + pause < deadline => {
                crate::time::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(64));
            }
            outcome => return outcome,
        }
    }
}

/// A port capability a lookup on another thread found: deleted if nobody takes it (the
/// reconnect awaiting it was dropped meanwhile).
struct LookedUp(Port);

impl LookedUp {
    fn take(self) -> Port {
        let port = self.0;
        core::mem::forget(self);
        port
    }
}

impl Drop for LookedUp {
    fn drop(&mut self) {
        let _ = self.0.delete();
    }
}

/// A call's slot, closed when the call ends, however it ends.
struct Open<'a> {
    link: &'a Inner,
    id: u32,
    /// Whether the request went out, so that a response may come.
    sent: bool,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        let abandoned = self.link.calls.borrow_mut().close(self.id, self.sent);
        if abandoned {
            // The server need not finish it; best effort: with the ring full, its answer
            // comes anyway. Either response is the reader's to file: the call that would
            // have is gone.
            let mut cancel = [0u8; Head::LEN];
            let head = Head {
                id: self.id,
                code: super::CANCEL,
            };
            let _ = self.link.push(head.pack(&mut cancel, 0));
            self.link.wake_reader();
        }
    }
}

impl Inner {
    fn wake_reader(&self) {
        if let Some(waker) = self.reader.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Call `id`, the lone call in flight, files responses itself until its own is in;
    /// until then it sleeps on the link's notification bit (`waker` is its own), and the
    /// reader sleeps on.
    fn file_alone(&self, id: u32, waker: &Waker) {
        loop {
            // The look before sleeping comes first: right after the request went out, the
            // response is rarely in already.
            match self.responses.prepare_wait() {
                Ok(true) => return self.lone_listener.borrow_mut().register(waker),
                Ok(false) => {}
                Err(_) => {
                    self.fail(TransportError::Disconnected);
                    return;
                }
            }
            if let Err(error) = self.drain(Some(id)) {
                self.fail(error);
                return;
            }
            if !self.calls.borrow().lone_waiting(id) {
                return;
            }
        }
    }

    /// File every response in the ring with its call, up to the last one published when
    /// the last pop looked: [`Consumer::prepare_wait`] looks again before any sleep. The
    /// call `polling`, if any, is not woken for its response: it is the one looking.
    fn drain(&self, polling: Option<u32>) -> Result<(), TransportError> {
        let mut bytes = self.scratch.borrow_mut();
        loop {
            let mut out = Buffer::new(&mut bytes);
            match self.responses.pop(&mut out) {
                Ok(Pop::Empty) => return Ok(()),
                Ok(Pop::Record {
                    wake_producer,
                    last,
                }) => {
                    if wake_producer {
                        wake::signal_later(self.server, 1 << self.server_bit);
                    }
                    let (id, result) =
                        parse_response(out.as_slice()).ok_or(TransportError::MalformedReply)?;
                    self.calls.borrow_mut().answer(id, result, polling);
                    if last {
                        return Ok(());
                    }
                }
                Err(_) => return Err(TransportError::Disconnected),
            }
        }
    }

    /// Mark the connection broken: every call, now and later, gets `error`.
    fn fail(&self, error: TransportError) -> TransportError {
        self.broken.set(Some(error));
        self.calls.borrow_mut().fail(error);
        self.space_waiters
            .borrow_mut()
            .drain(..)
            .for_each(Waker::wake);
        error
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A signal deferred for the server goes before its capability may.
        wake::flush_signal();
        // The server ends its side now, not when this process dies.
        self.arena.channel().close();
        let _ = self.server.notify(1 << self.server_bit);
        self.wake_reader();
        let _ = self.giver.delete();
        let _ = self.lease.delete();
        if self.owns_server {
            let _ = self.server.delete();
        }
    }
}

fn parse_response(record: &[u8]) -> Option<(u32, Result<&[u8], TransportError>)> {
    let (Head { id, code }, body) = Head::unpack(record)?;
    Some((id, outcome(code, body)))
}

/// A response's status and body, as the call's outcome.
fn outcome(code: u32, body: &[u8]) -> Result<&[u8], TransportError> {
    match code {
        status::OK => Ok(body),
        status::MALFORMED => Err(TransportError::Rejected),
        status::TOO_LARGE => Err(TransportError::TooLarge),
        // Only a call given up is cancelled: nobody waits for this outcome.
        status::CANCELLED => Err(TransportError::Disconnected),
        _ => Err(TransportError::MalformedReply),
    }
}

/// How an inline call went.
enum Inline<R> {
    /// Answered: the call is over.
    Answered(Result<R, TransportError>),
    /// The server carries it on: its response comes through the ring.
    Deferred,
    /// Not sent (the server was not waiting): it goes through the ring instead.
    Unsent,
}

/// The connection's reader task: file responses, wake waiting senders, watch the server.
///
/// The liveness probe is armed once calls are in flight and left running: when it fires
/// with calls still in flight it probes the server and is armed again, so a busy link
/// costs one probe every [`LIVENESS_PROBE`], not one per response.
async fn read_responses(connection: Weak<Inner>) {
    let mut probe = Probe::new();
    loop {
        let Some(inner) = connection.upgrade() else {
            return;
        };
        if let Err(error) = inner.drain(None) {
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
        let (bit, server) = (inner.bit, inner.server);
        // A lone call files its own response: the reader leaves the notification bit to
        // it, and wakes it in case it last slept with another call in flight.
        let lone = inner.calls.borrow().lone();
        if lone {
            inner.calls.borrow().wake_waiting();
        }
        if inner.calls.borrow().busy() {
            probe.arm();
        }
        inner.probing.set(probe.armed());
        inner.listening.set(!lone);
        // Hold no strong reference while asleep, so dropping the connection ends the task.
        drop(inner);
        let mut registered = false;
        let fired = poll_fn(|cx| {
            // Looked at first: a probe due ends the wait as surely as a kick does.
            if probe.fired(cx.waker()) {
                return Poll::Ready(true);
            }
            if registered {
                return Poll::Ready(false);
            }
            registered = true;
            if let Some(inner) = connection.upgrade() {
                let mut reader = inner.reader.borrow_mut();
                if !reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *reader = Some(cx.waker().clone());
                }
            }
            if !lone {
                wake::on_notification(bit, cx.waker());
            }
            Poll::Pending
        })
        .await;
        if fired {
            let Some(inner) = connection.upgrade() else {
                return;
            };
            if inner.calls.borrow().busy()
                && let Err(error) = server.notify(0)
            {
                inner.fail(transport(error));
                return;
            }
        }
    }
}

/// The process's doorbell for liveness probes, shared by every link's reader; `None`
/// when no thread could be had for it.
static PROBE_BELL: Once<Option<Doorbell>> = Once::new();

/// A reader's clock for liveness probes: the process's doorbell, or, without one, a timer
/// of its own (which every sleep of the executor then pays for).
enum Probe {
    /// Armed: the doorbell's ring count when it was.
    Bell(&'static Doorbell, Option<u64>),
    Timer(Option<Sleep>),
}

impl Probe {
    fn new() -> Probe {
        let bell = PROBE_BELL.call_once(|| Doorbell::start(LIVENESS_PROBE, next_bit()).ok());
        match bell {
            Some(bell) => Probe::Bell(bell, None),
            None => Probe::Timer(None),
        }
    }

    /// Make it fire within about [`LIVENESS_PROBE`], unless it is armed already.
    fn arm(&mut self) {
        match self {
            Probe::Bell(bell, armed @ None) => {
                *armed = Some(bell.rings());
                bell.want();
            }
            Probe::Timer(timer @ None) => *timer = Some(sleep(LIVENESS_PROBE)),
            Probe::Bell(_, Some(_)) | Probe::Timer(Some(_)) => {}
        }
    }

    fn armed(&self) -> bool {
        matches!(self, Probe::Bell(_, Some(_)) | Probe::Timer(Some(_)))
    }

    /// Whether it fired (then it is disarmed); if not, `waker` is woken when it does.
    fn fired(&mut self, waker: &Waker) -> bool {
        match self {
            Probe::Bell(bell, armed @ Some(_)) => {
                if bell.rings() != armed.unwrap_or_default() {
                    *armed = None;
                    return true;
                }
                wake::on_notification(bell.bit(), waker);
                false
            }
            Probe::Timer(Some(timer)) => {
                let mut cx = core::task::Context::from_waker(waker);
                if Pin::new(timer).poll(&mut cx).is_ready() {
                    *self = Probe::Timer(None);
                    return true;
                }
                false
            }
            Probe::Bell(_, None) | Probe::Timer(None) => false,
        }
    }
}
