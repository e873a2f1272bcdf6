//! The server end: accept connections on the wake port, serve each on its own task, run
//! each request as its own future so a slow call holds up nothing else.
//!
//! A request's future is polled once as soon as the request is read, on the connection's
//! task: a method that does not wait finishes there, its result encoded straight into the
//! response ring. One that is still pending joins the connection's requests under way,
//! which the connection's task drives, so they end with it.
//!
//! What one client may hold is bounded ([`limits`](super::limits)): connections per
//! client process, calls under way and answers held per connection, capabilities given
//! per connection. A connection over its bounds is not read until its calls drain, so a
//! client that never reads its answers stops only itself.
//!
//! A connection ends when its client closes it (a flag in the channel's header page), or
//! when its client has died (its wake port is closed): a sweep looks every
//! [`SWEEP`](super::limits::SWEEP), and so does every connect. Its task, its
//! requests under way and its channel go (docs/decisions/002-service-connection-reclaim.md).

use alloc::collections::BTreeMap;
use alloc::rc::{Rc, Weak};
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use futures_util::StreamExt;
use futures_util::future::{AbortHandle, abortable};
use futures_util::stream::FuturesUnordered;
use keel_abi::Error;
use keel_abi::layout::PAGE_SIZE;
use keel_ring::alloc_free::Buffer;
use keel_ring::{Consumer, Pop, Producer, Push, RingError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::answer::{Answer, Blocks};
use super::channel::{CHANNEL_SIZE, Channel, MAX_RECORD, next_bit};
use super::decoding::Decoding;
use super::fixed::{self, Fixed};
use super::limits;
use super::wire::{ConnectAnswer, Head};
use super::{Interface, label, status};
use crate::executor::{Doorbell, inline, sleep, spawn, wake};
use crate::ipc::{Message, Port, Received};

/// What `#[service]` implements for a trait: decode a request and start its method.
pub trait Dispatch: Sized + 'static {
    /// Decode `arguments` for `method` now, with [`Reply::decode`] (bulk and capability
    /// arguments resolve against the request's connection, which `reply` knows), and return the future that runs
    /// the method and sends its result through `reply` ([`Reply::answer`]). `None` means
    /// the request was malformed (unknown method, undecodable arguments).
    fn dispatch(service: &Rc<Self>, method: u32, arguments: &[u8], reply: Reply) -> Option<Answer>;
}

/// Where the result of one request goes: its connection and call id.
pub struct Reply {
    connection: Rc<Served>,
    id: u32,
}

impl Reply {
    /// Decode the request's arguments as a `T`, resolving bulk and capability arguments
    /// against its connection; `None` when they are not exactly one `T`.
    pub fn decode<T: DeserializeOwned>(&self, arguments: &[u8]) -> Option<T> {
        let connection = &self.connection;
        let context = Decoding {
            arena: connection.channel.bulk_base(),
            badge: connection.badge,
        };
        context.scope(|| super::decode(arguments))
    }

    /// Decode the request's arguments as a `T` of [`Fixed`] wire form; `None` when they
    /// are not exactly one `T`.
    pub fn decode_fixed<T: Fixed>(&self, arguments: &[u8]) -> Option<T> {
        fixed::decode(arguments)
    }

    /// The future of a request: run `method`, then send its result.
    pub fn answer<R, F>(self, method: F) -> Answer
    where
        R: Serialize + 'static,
        F: Future<Output = R> + 'static,
    {
        self.answer_with(method, |result, body| {
            match postcard::to_slice(result, body) {
                Ok(encoded) => (status::OK, encoded.len()),
                Err(postcard::Error::SerializeBufferFull) => (status::TOO_LARGE, 0),
                Err(_) => (status::MALFORMED, 0),
            }
        })
    }

    /// [`answer`](Reply::answer) for a result of [`Fixed`] wire form.
    pub fn answer_fixed<R, F>(self, method: F) -> Answer
    where
        R: Fixed + 'static,
        F: Future<Output = R> + 'static,
    {
        self.answer_with(method, |result, body| match fixed::encode(result, body) {
            Some(len) => (status::OK, len),
            None => (status::TOO_LARGE, 0),
        })
    }

    /// Run `method`, then send its result as `encode` writes it (returning the status and
    /// the result's length).
    fn answer_with<R, F>(
        self,
        method: F,
        encode: impl Fn(&R, &mut [u8]) -> (u32, usize) + 'static,
    ) -> Answer
    where
        R: 'static,
        F: Future<Output = R> + 'static,
    {
        let blocks = self.connection.blocks.clone();
        Answer::new(blocks, async move {
            let result = method.await;
            if let Some(held) = self
                .connection
                .push_response(self.id, |body| encode(&result, body))
            {
                held.send().await;
            }
        })
    }
}

/// An inline request (`executor::inline`) on the connection badged `badge`, if it is one of
/// these: started and polled once here, in the executor's wake-up. Its response, if it is
/// ready and fits, is the answer owed; otherwise the answer is "deferred" and the
/// connection's task carries the request on, its response going through the ring.
fn take_inline<D: Dispatch>(
    connections: &Registry,
    service: &Rc<D>,
    badge: u64,
    label: u32,
    words: [u64; 4],
) -> bool {
    let Some(connection) = connections.find(badge) else {
        return false;
    };
    let mut room = [0; inline::MAX_RECORD];
    let Some(record) = inline::record(label, words, &mut room) else {
        return false;
    };
    let Some((head, _)) = Head::unpack(record) else {
        inline::settle(inline::Answer::bare(inline::REFUSED));
        return true;
    };
    connection.inline.set(Some(head.id));
    if let Some((id, mut answer)) = start(&connection, service, record) {
        let mut cx = Context::from_waker(Waker::noop());
        if Pin::new(&mut answer).poll(&mut cx).is_pending() {
            // Polled again, with its own waker, by the connection's task.
            let answer = connection.cancellable(id, answer);
            connection.adopted.borrow_mut().push(answer);
            wake::raise(connection.bit);
        }
    }
    connection.inline.set(None);
    inline::settle(inline::Answer::bare(inline::DEFERRED));
    true
}

/// Serve `interface` with `service` for ever: accept every connection sent to this
/// process's wake port. Clients reach it through a send capability to that port.
pub async fn serve<D: Dispatch>(interface: Interface, service: D) -> ! {
    let service = Rc::new(service);
    let connections = Registry::default();
    spawn(sweep(connections.clone()));
    let (known, served) = (connections.clone(), service.clone());
    inline::add_taker(Rc::new(move |badge, label, words| {
        take_inline(&known, &served, badge, label, words)
    }));
    loop {
        let Received::Message {
            badge,
            message,
            reply,
            ..
        } = wake::next_message().await
        else {
            continue;
        };
        if message.label == label::GIVE {
            if let Some(reply) = reply {
                let _ = reply.send(&file_given(&connections.live(), badge, &message));
            }
            continue;
        }
        // What goes to the client, ours only until the copies are on their way.
        let mut handed = None;
        // Dead clients' places are free for this one (junk messages do not pay for a look).
        if message.label == label::CONNECT {
            connections.end_abandoned();
        }
        let answer = match accept(interface, &message, &connections.live()) {
            Ok((connection, bit, [giver, lease])) => {
                // The client gets a copy of the channel's capability (ours stays ours), a
                // send capability badged for this connection, to give capabilities on, and
                // its lease.
                let accepted = ConnectAnswer::Accepted { server_bit: bit };
                let answer = Message::new(0, accepted.words()).with_caps(&[
                    connection.channel.object,
                    giver.handle(),
                    lease.handle(),
                ]);
                handed = Some([giver, lease]);
                let connection = Rc::new(connection);
                connections.0.borrow_mut().push(Rc::downgrade(&connection));
                spawn(serve_connection(connection, service.clone()));
                answer
            }
            Err(refusal) => {
                // Nothing keeps the capabilities of a refused request.
                for &cap in &message.caps {
                    let _ = crate::sys::ipc::cap_delete(cap);
                }
                Message::new(0, refusal.words())
            }
        };
        if let Some(reply) = reply {
            let _ = reply.send(&answer);
        }
        for port in handed.into_iter().flatten() {
            let _ = port.delete();
        }
    }
}

/// The connections being served, shared by the accept loop and the sweep.
#[derive(Clone, Default)]
struct Registry(Rc<RefCell<Vec<Weak<Served>>>>);

impl Registry {
    /// The connections still served: a connection its client has closed no longer counts,
    /// even before its task has seen the flag.
    fn live(&self) -> Vec<Rc<Served>> {
        let connections = self.0.borrow();
        let live = connections.iter().filter_map(Weak::upgrade);
        live.filter(|connection| !connection.ended()).collect()
    }

    /// The live connection whose clients send on capabilities badged `badge`.
    fn find(&self, badge: u64) -> Option<Rc<Served>> {
        let connections = self.0.borrow();
        let mut live = connections.iter().filter_map(Weak::upgrade);
        live.find(|connection| connection.badge == badge && !connection.ended())
    }

    /// End the connections whose client is gone: their tasks notice at their next
    /// wake-up, which this gives them.
    fn end_abandoned(&self) {
        self.0.borrow_mut().retain(|weak| {
            let Some(connection) = weak.upgrade() else {
                return false;
            };
            // Notifying nothing only asks whether the lease is still held.
            if connection.lease.notify(0) != Err(Error::PeerGone) {
                return true;
            }
            connection.abandoned.set(true);
            let _ = wake::port().notify(1 << connection.bit);
            false
        });
    }
}

/// Look for dead clients every [`SWEEP`](limits::SWEEP), not only when another connects:
/// a server nobody connects to again must get its memory back too.
///
/// A doorbell rings this task's notification bit each period ([`Doorbell`]): a timer on
/// the executor would do the same, but while one is armed the executor sleeps in a receive
/// with a timeout, which every call then pays for (docs/decisions/002). The bit may be
/// shared with connections, so only a ring the doorbell counted is believed.
async fn sweep(connections: Registry) {
    let bit = next_bit();
    let doorbell = Doorbell::start(limits::SWEEP, bit);
    let mut rings = wake::Listener::new(bit);
    let mut seen = 0;
    loop {
        match &doorbell {
            Ok(bell) => {
                bell.want();
                rings.wait().await;
                if bell.rings() == seen {
                    continue;
                }
                seen = bell.rings();
            }
            // No thread to be had: the timer, and calls pay for it.
            Err(_) => sleep(limits::SWEEP).await,
        }
        connections.end_abandoned();
    }
}

struct Served {
    requests: Consumer<'static>,
    responses: Producer<'static>,
    /// Declared after the rings, so the mapping outlives them.
    channel: Channel,
    client: Port,
    /// The client's wake port (its object id): one per client process.
    client_port: u64,
    /// A send capability to the connection's lease, a port only the client can receive
    /// on: it closes when the client's copy goes, with the client's process or by hand.
    lease: Port,
    client_bit: u32,
    bit: u32,
    /// The badge of the send capability the client gives capabilities on.
    badge: u64,
    /// Where responses are encoded, one at a time, before they go in the ring.
    scratch: RefCell<Vec<u8>>,
    /// Set when the client is found gone: the connection's task ends.
    abandoned: Cell<bool>,
    /// Bytes of answers waiting for room in the response ring.
    held: Cell<usize>,
    /// The calls under way that wait, by id: a cancel drops them.
    under_way: RefCell<BTreeMap<u32, AbortHandle>>,
    /// Where requests' futures live, recycled from one request to the next.
    blocks: Rc<Blocks>,
    /// The call taken inline whose first poll runs now: its response is the answer owed.
    inline: Cell<Option<u32>>,
    /// Inline calls that did not finish on their first poll, for the connection's task.
    adopted: RefCell<Vec<Answer>>,
}

/// A capability a client gives for a later request: filed under a token for its
/// connection (known by the badge it came with), if that connection is being served and
/// has room in its share; deleted at once otherwise.
fn file_given(connections: &[Rc<Served>], badge: u64, message: &Message) -> Message {
    let refusal = match message.caps.as_slice() {
        &[handle] if connections.iter().any(|c| c.badge == badge) => {
            match super::caps::file(badge, handle) {
                Some(token) => return Message::new(0, [0, token, 0, 0]),
                None => Error::QuotaExceeded,
            }
        }
        _ => Error::InvalidArgument,
    };
    for &cap in &message.caps {
        let _ = crate::sys::ipc::cap_delete(cap);
    }
    Message::new(0, [refusal as u64, 0, 0, 0])
}

/// Check a connect request against the interface and the limits, and make the
/// connection's channel; with it, what goes to the client: the badged capability it gives
/// capabilities on, and its lease.
fn accept(
    interface: Interface,
    message: &Message,
    connections: &[Rc<Served>],
) -> Result<(Served, u32, [Port; 2]), ConnectAnswer> {
    let [hash, client_bit, ..] = message.words;
    let &[client] = message.caps.as_slice() else {
        return Err(ConnectAnswer::Malformed);
    };
    let client_port = match crate::sys::ipc::cap_info(client) {
        Ok(info) if info.kind == keel_abi::cap::kind::PORT => info.object,
        _ => return Err(ConnectAnswer::Malformed),
    };
    if message.label != label::CONNECT {
        return Err(ConnectAnswer::Malformed);
    }
    if hash != interface.hash {
        return Err(ConnectAnswer::Mismatch {
            found: interface.hash,
        });
    }
    let its_own = connections
        .iter()
        .filter(|c| c.client_port == client_port)
        .count();
    if connections.len() >= limits::CONNECTIONS || its_own >= limits::CONNECTIONS_PER_CLIENT {
        return Err(ConnectAnswer::Limit);
    }
    // No memory left for another channel is a limit too: the server's frame quota, less
    // what it keeps for its own heap.
    let resources = crate::sys::ipc::resources().map_err(|_| ConnectAnswer::Limit)?;
    let after = resources.frames_used as usize + CHANNEL_SIZE.div_ceil(PAGE_SIZE);
    if after + limits::RESERVED_FRAMES > resources.frames_limit as usize {
        return Err(ConnectAnswer::Limit);
    }
    let channel = Channel::create().map_err(|error| match error {
        Error::QuotaExceeded | Error::OutOfMemory => ConnectAnswer::Limit,
        _ => ConnectAnswer::Malformed,
    })?;
    let badge = super::badge::fresh(|badge| connections.iter().any(|c| c.badge == badge));
    let giver = wake::port()
        .derive(
            keel_abi::cap::rights::SEND | keel_abi::cap::rights::GRANT,
            badge,
        )
        .map_err(|_| ConnectAnswer::Malformed)?;
    let (lease, handed_lease) = match lease() {
        Ok(ends) => ends,
        Err(_) => {
            let _ = giver.delete();
            return Err(ConnectAnswer::Limit);
        }
    };
    let (requests, responses) = channel.server_ends();
    let bit = next_bit();
    let served = Served {
        requests,
        responses,
        channel,
        client: Port::from_handle(client),
        client_port,
        lease,
        client_bit: (client_bit % wake::CHANNEL_BITS as u64) as u32,
        bit,
        badge,
        scratch: RefCell::new(alloc::vec![0; MAX_RECORD]),
        abandoned: Cell::new(false),
        held: Cell::new(0),
        under_way: RefCell::new(BTreeMap::new()),
        blocks: Rc::default(),
        inline: Cell::new(None),
        adopted: RefCell::new(Vec::new()),
    };
    Ok((served, bit, [giver, handed_lease]))
}

/// A connection's lease: a port whose only receive right will be the client's. The server
/// keeps a send capability, whose notifications of no bits fail once the client's copy is
/// gone: the client's process ended, or it dropped the connection. Unlike the wake port
/// the client hands over, which could be any port it may send to, the lease is the
/// client's own. (ours, to probe; the client's, with every right).
fn lease() -> Result<(Port, Port), Error> {
    let port = Port::create(1)?;
    match port.derive(keel_abi::cap::rights::SEND, 0) {
        Ok(probe) => Ok((probe, port)),
        Err(error) => {
            let _ = port.delete();
            Err(error)
        }
    }
}

/// Drain one connection's requests until its client breaks its ring or is gone, starting
/// one future per request and driving those that wait.
async fn serve_connection<D: Dispatch>(connection: Rc<Served>, service: Rc<D>) {
    let mut under_way: FuturesUnordered<Answer> = FuturesUnordered::new();
    let mut bytes = alloc::vec![0u8; MAX_RECORD];
    let mut requests = wake::Listener::new(connection.bit);
    while !connection.ended() {
        if !connection.adopted.borrow().is_empty() {
            under_way.extend(connection.adopted.borrow_mut().drain(..));
        }
        if !under_way.is_empty() {
            poll_fn(|cx| {
                while let Poll::Ready(Some(())) = under_way.poll_next_unpin(cx) {}
                Poll::Ready(())
            })
            .await;
        }
        if connection.saturated(under_way.len()) {
            // Back-pressure: the client's requests wait in its ring until its calls drain.
            // Any call's progress (or a signal, a close) wakes this task.
            requests.wait().await;
            continue;
        }
        let mut out = Buffer::new(&mut bytes);
        let last = match connection.requests.pop(&mut out) {
            Ok(Pop::Record {
                wake_producer,
                last,
            }) => {
                if wake_producer {
                    connection.signal_client();
                }
                if let Some((id, mut answer)) = start(&connection, &service, out.as_slice())
                    && poll_fn(|cx| Poll::Ready(Pin::new(&mut answer).poll(cx)))
                        .await
                        .is_pending()
                {
                    under_way.push(connection.cancellable(id, answer));
                }
                last
            }
            Ok(Pop::Empty) => true,
            // The client broke its ring: this connection ends, the others go on.
            Err(_) => return,
        };
        // After the last request the pop saw, no pop to find the ring empty: the check
        // before sleeping looks again.
        if last {
            match connection.requests.prepare_wait() {
                Ok(true) => requests.wait().await,
                Ok(false) => {}
                Err(_) => return,
            }
        }
    }
}

/// Decode a request and start it: the call's id and its answer, or `None` when nothing is
/// left to do for it.
fn start<D: Dispatch>(
    connection: &Rc<Served>,
    service: &Rc<D>,
    record: &[u8],
) -> Option<(u32, Answer)> {
    let Some((Head { id, code: method }, arguments)) = Head::unpack(record) else {
        return connection.reject(u32::MAX);
    };
    if method == super::CANCEL {
        return connection.cancel(id);
    }
    let reply = Reply {
        connection: connection.clone(),
        id,
    };
    match D::dispatch(service, method, arguments, reply) {
        Some(answer) => Some((id, answer)),
        None => connection.reject(id),
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A signal deferred for the client goes before its capability does.
        wake::flush_signal();
        let _ = crate::sys::ipc::cap_delete(self.client.handle());
        let _ = self.lease.delete();
        super::caps::forget(self.badge);
    }
}

impl Served {
    /// Whether the connection is over: its client closed it or is gone.
    fn ended(&self) -> bool {
        self.abandoned.get() || self.channel.is_closed()
    }

    /// Whether the connection holds all it may: `under_way` calls, or answers waiting
    /// for room.
    fn saturated(&self, under_way: usize) -> bool {
        under_way >= limits::CALLS_PER_CONNECTION
            || self.held.get() >= limits::HELD_BYTES_PER_CONNECTION
    }

    /// Answer call `id` `MALFORMED`; a future that does so when the ring is full.
    fn reject(self: &Rc<Self>, id: u32) -> Option<(u32, Answer)> {
        self.answer_status(id, status::MALFORMED)
    }

    /// Answer call `id` with `code` and no result; a future that does so when the ring is
    /// full.
    fn answer_status(self: &Rc<Self>, id: u32, code: u32) -> Option<(u32, Answer)> {
        let held = self.push_response(id, |_| (code, 0))?;
        Some((id, Answer::new(self.blocks.clone(), held.send())))
    }

    /// `answer`, which waits, made cancellable by a later [`CANCEL`](super::CANCEL) of `id`.
    fn cancellable(self: &Rc<Self>, id: u32, answer: Answer) -> Answer {
        let (answer, abort) = abortable(answer);
        self.under_way.borrow_mut().insert(id, abort);
        let connection = self.clone();
        Answer::new(self.blocks.clone(), async move {
            // Ended either way: its entry goes (a cancel took it already).
            if answer.await.is_ok() {
                connection.under_way.borrow_mut().remove(&id);
            }
        })
    }

    /// The client gave call `id` up: drop it if it is still under way, and say so.
    fn cancel(self: &Rc<Self>, id: u32) -> Option<(u32, Answer)> {
        let abort = self.under_way.borrow_mut().remove(&id)?;
        abort.abort();
        self.answer_status(id, status::CANCELLED)
    }

    /// Push the response to call `id`, its status and result written by `encode` (which
    /// returns the status and the result's length) into the response scratch. When the
    /// ring has no room, the record comes back, counted against the connection, to be
    /// sent with [`Held::send`].
    fn push_response(
        self: &Rc<Self>,
        id: u32,
        encode: impl FnOnce(&mut [u8]) -> (u32, usize),
    ) -> Option<Held> {
        let mut scratch = self.scratch.borrow_mut();
        let (code, len) = encode(&mut scratch[Head::LEN..]);
        if self.inline.get() == Some(id)
            && let Some(answer) = inline::Answer::with(code as u8, &scratch[Head::LEN..][..len])
            && inline::settle(answer)
        {
            return None;
        }
        let record = Head { id, code }.pack(&mut scratch, len);
        match self.responses.push(record) {
            Ok(Push::Done { wake_consumer }) => {
                if wake_consumer {
                    self.signal_client();
                }
                None
            }
            Ok(Push::Full) => {
                self.held.set(self.held.get() + record.len());
                Some(Held {
                    connection: self.clone(),
                    record: record.to_vec(),
                })
            }
            // The scratch holds no more than a record: only a broken ring refuses one, and
            // then the connection is over for its reader as well.
            Err(_) => None,
        }
    }

    fn signal_client(&self) {
        // Sent as this thread sleeps, which hands the CPU to the client. A client that is
        // gone cannot be signalled; its connection simply goes quiet.
        wake::signal_later(self.client, 1 << self.client_bit);
    }

    /// Queue a response, waiting for room in the ring. `TooLarge` when no record could
    /// ever hold it; `Corrupt` when the client broke the ring.
    async fn respond(&self, record: &[u8]) -> Result<(), RingError> {
        loop {
            match self.responses.push(record)? {
                Push::Done { wake_consumer } => {
                    if wake_consumer {
                        self.signal_client();
                    }
                    return Ok(());
                }
                Push::Full => {
                    if self.responses.prepare_wait(record.len())? {
                        wake::notification(self.bit).await;
                    }
                }
            }
        }
    }
}

/// An answer waiting for room in the response ring, counted in its connection's `held`
/// bytes until it is sent or dropped.
struct Held {
    connection: Rc<Served>,
    record: Vec<u8>,
}

impl Held {
    async fn send(self) {
        let _ = self.connection.respond(&self.record).await;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let held = &self.connection.held;
        held.set(held.get() - self.record.len());
    }
}
