//! The Sockets service: sessions, the sockets each holds, and the calls on them.
//!
//! A call that must wait (accept, read, write into a full buffer, receive a datagram)
//! registers its task's waker with the smoltcp socket and returns `Pending`; the stack's
//! poll wakes it when the socket changes. A listener keeps one spare socket listening on
//! its port; after each SYN taken in (the stack takes frames in one at a time),
//! [`Table::syn_taken`] listens with a fresh one, so a burst of SYNs finds a socket each
//! (smoltcp answers a SYN no socket takes with a reset), up to `backlog` connections not
//! yet accepted; while a handshake is under way, [`Table::tidy`] moves the sockets a
//! connection reached into the accept queue. Tidying looks only at the listeners a SYN
//! came for: with no handshake under way, at none, and the socket table costs a poll
//! nothing but its closing streams.
//!
//! TCP sockets let go of are kept, with their buffers, for the next connection: a fresh
//! one would cost zeroing its 28 KiB of buffers.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::{pending, poll_fn};
use core::task::{Poll, Waker};
use core::time::Duration;

use keel_net::{Data, MAX_READ, MAX_WRITE, NetError, NetInfo, SocketAddr, Sockets};
use keel_rt::{executor, time};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{AnySocket, Socket};
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress, IpEndpoint, Ipv4Address};

use crate::stack::Stack;

/// Sockets open at once, in all sessions (listening ones included).
const MAX_SOCKETS: usize = 256;
const MAX_SESSIONS: usize = 64;
/// Connections a listener may hold not yet accepted (mid-handshake or waiting), at most.
const MAX_BACKLOG: usize = 128;
/// Sockets a listener keeps waiting for a SYN: it gets a fresh one after each SYN taken
/// in, before the next frame, so one covers any burst; each costs the stack a look on
/// every poll.
const SPARE: usize = 1;
/// Closed TCP sockets kept for reuse (with their buffers, 28 KiB each).
const POOL: usize = 16;
/// Receive and send buffers of a TCP socket: requests are small, answers large.
const TCP_RX: usize = 4 * 1024;
const TCP_TX: usize = 24 * 1024;
/// Datagrams and bytes a UDP socket queues each way.
const UDP_PACKETS: usize = 16;
const UDP_BYTES: usize = 16 * 1024;
/// How long a closed stream may take to send what it holds before it is aborted.
const LINGER: Duration = Duration::from_secs(10);
/// The first local port of outgoing connections.
const EPHEMERAL: u16 = 49152;
/// How long a ping waits for its answer.
const PING_TIME: Duration = Duration::from_secs(5);
/// How long a connection may take to be established.
const CONNECT_TIME: Duration = Duration::from_secs(10);
/// A connection with no traffic this long is dropped (smoltcp's timeout).
const TCP_TIMEOUT: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(60);

struct Listener {
    port: u16,
    backlog: usize,
    /// Sockets in `Listen` (or mid-handshake).
    listening: Vec<SocketHandle>,
    /// Connections made, waiting for `accept`.
    ready: VecDeque<SocketHandle>,
    acceptor: Option<Waker>,
}

enum Kind {
    Listener(Listener),
    Stream(SocketHandle),
    Udp(SocketHandle, u16),
}

struct Entry {
    session: u32,
    kind: Kind,
}

pub struct Table {
    stack: Rc<Stack>,
    sessions: RefCell<BTreeMap<u32, ()>>,
    entries: RefCell<BTreeMap<u32, Entry>>,
    /// Streams closed by their owner, sending what they hold: (socket, give up at tick).
    closing: RefCell<Vec<(SocketHandle, u64)>>,
    next_id: Cell<u32>,
    /// Sockets in the stack's set (the DHCP client's has a set of its own).
    count: Cell<usize>,
    next_port: Cell<u16>,
    /// Closed TCP sockets out of the stack's set, ready to listen or connect again.
    pool: RefCell<Vec<tcp::Socket<'static>>>,
    /// Listeners that may have a socket out of `Listen` (a SYN came in for them, a
    /// handshake is under way) or room for a fresh one (an accept made it): the only ones
    /// [`Table::tidy`] looks at.
    handshakes: RefCell<Vec<u32>>,
}

fn endpoint(endpoint: IpEndpoint) -> SocketAddr {
    let IpAddress::Ipv4(ip) = endpoint.addr;
    SocketAddr {
        ip: ip.octets(),
        port: endpoint.port,
    }
}

fn linger_deadline() -> u64 {
    time::ticks() + time::ticks_in(LINGER)
}

/// Up to `max` bytes `socket` has received, and whether taking them may have opened its
/// window enough for smoltcp to tell the peer (it does once the window at least doubles:
/// only a read from a buffer half full or more can do that).
fn take_received(socket: &mut tcp::Socket, max: usize) -> (Vec<u8>, bool) {
    let queued = socket.recv_queue();
    if queued == 0 {
        return (Vec::new(), false);
    }
    let update = queued >= socket.recv_capacity() / 2;
    let mut bytes = vec![0; max.min(queued)];
    let n = socket.recv_slice(&mut bytes).unwrap_or(0);
    bytes.truncate(n);
    (bytes, update)
}

impl Listener {
    /// Sockets it may hold, listening, mid-handshake or waiting to be accepted.
    fn capacity(&self) -> usize {
        self.backlog + SPARE
    }
}

impl Table {
    pub fn new(stack: Rc<Stack>) -> Table {
        Table {
            stack,
            sessions: RefCell::default(),
            entries: RefCell::default(),
            closing: RefCell::default(),
            next_id: Cell::new(1),
            count: Cell::new(0),
            next_port: Cell::new(EPHEMERAL),
            pool: RefCell::default(),
            handshakes: RefCell::default(),
        }
    }

    fn fresh_id(&self) -> u32 {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1).max(1));
        id
    }

    fn socket_count(&self) -> usize {
        self.count.get()
    }

    /// Add a socket to the stack's set, if there is room.
    fn add_socket<T: AnySocket<'static>>(&self, socket: T) -> Result<SocketHandle, NetError> {
        if self.count.get() >= MAX_SOCKETS {
            return Err(NetError::TooManySockets);
        }
        self.count.set(self.count.get() + 1);
        Ok(self.stack.sockets.borrow_mut().add(socket))
    }

    /// Take a socket out of the stack's set; a TCP one is kept for reuse.
    fn remove_socket(&self, sockets: &mut SocketSet<'static>, handle: SocketHandle) {
        if let Socket::Tcp(socket) = sockets.remove(handle) {
            let mut pool = self.pool.borrow_mut();
            if pool.len() < POOL {
                pool.push(socket);
            }
        }
        self.count.set(self.count.get() - 1);
    }

    /// A TCP socket in the stack's set, closed: one from the pool (`listen` and `connect`
    /// reset all but its settings and buffers), or a new one.
    fn tcp_socket(&self) -> Result<SocketHandle, NetError> {
        let pooled = self.pool.borrow_mut().pop();
        let socket = pooled.unwrap_or_else(|| {
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; TCP_RX]),
                tcp::SocketBuffer::new(vec![0; TCP_TX]),
            );
            socket.set_timeout(Some(TCP_TIMEOUT));
            socket.set_nagle_enabled(false);
            socket
        });
        self.add_socket(socket)
    }

    fn listen_on(&self, port: u16) -> Result<SocketHandle, NetError> {
        let handle = self.tcp_socket()?;
        let mut sockets = self.stack.sockets.borrow_mut();
        if sockets.get_mut::<tcp::Socket>(handle).listen(port).is_err() {
            self.remove_socket(&mut sockets, handle);
            return Err(NetError::AddressInUse);
        }
        Ok(handle)
    }

    /// Check that `id` is a socket of `session`, and look at it.
    fn with<R>(
        &self,
        session: u32,
        id: u32,
        look: impl FnOnce(&mut Kind) -> Result<R, NetError>,
    ) -> Result<R, NetError> {
        if !self.sessions.borrow().contains_key(&session) {
            return Err(NetError::NoSession);
        }
        let mut entries = self.entries.borrow_mut();
        match entries.get_mut(&id) {
            Some(entry) if entry.session == session => look(&mut entry.kind),
            _ => Err(NetError::NoSuchSocket),
        }
    }

    fn stream(&self, session: u32, id: u32) -> Result<SocketHandle, NetError> {
        self.with(session, id, |kind| match kind {
            Kind::Stream(handle) => Ok(*handle),
            _ => Err(NetError::NoSuchSocket),
        })
    }

    fn add(&self, session: u32, kind: Kind) -> u32 {
        let id = self.fresh_id();
        self.entries
            .borrow_mut()
            .insert(id, Entry { session, kind });
        id
    }

    /// After a SYN for `port` was taken in, before the next frame: the spare socket of the
    /// listener on `port` took it, so it listens with a fresh one.
    pub fn syn_taken(&self, port: u16) {
        let listener = self.entries.borrow().iter().find_map(|(&id, entry)| {
            matches!(&entry.kind, Kind::Listener(listener) if listener.port == port).then_some(id)
        });
        if let Some(id) = listener {
            self.handshake(id);
        }
        self.tidy();
    }

    /// Have [`Table::tidy`] look at listener `id`.
    fn handshake(&self, id: u32) {
        let mut handshakes = self.handshakes.borrow_mut();
        if !handshakes.contains(&id) {
            handshakes.push(id);
        }
    }

    /// After each poll: hand the listeners with a handshake under way their new
    /// connections and listen with fresh sockets; let go of closed streams.
    pub fn tidy(&self) {
        if !self.handshakes.borrow().is_empty() {
            let mut entries = self.entries.borrow_mut();
            self.handshakes
                .borrow_mut()
                .retain(|id| match entries.get_mut(id) {
                    Some(Entry {
                        kind: Kind::Listener(listener),
                        ..
                    }) => self.refill(listener),
                    _ => false,
                });
        }
        if !self.closing.borrow().is_empty() {
            self.let_go();
        }
    }

    /// Remove the closing streams that are done, or out of time.
    fn let_go(&self) {
        let now = time::ticks();
        let mut sockets = self.stack.sockets.borrow_mut();
        self.closing.borrow_mut().retain(|&(handle, deadline)| {
            let socket = sockets.get_mut::<tcp::Socket>(handle);
            // Done when both sides have closed; forgotten in TIME-WAIT (a late segment gets
            // a reset, which is all TIME-WAIT would do). Past the deadline, a reset ends it.
            let done = matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait);
            if !done && now < deadline {
                return true;
            }
            if !done {
                socket.abort();
            }
            self.remove_socket(&mut sockets, handle);
            false
        });
    }

    /// Move connected sockets to the accept queue and listen with fresh ones; whether one
    /// is still mid-handshake (to be looked at after the next poll). A fresh listening
    /// socket needs no poll: it has nothing to send until a SYN comes.
    fn refill(&self, listener: &mut Listener) -> bool {
        let mut sockets = self.stack.sockets.borrow_mut();
        let (mut connected, mut idle, mut pending) = (false, 0, false);
        listener.listening.retain(|&handle| {
            match sockets.get::<tcp::Socket>(handle).state() {
                tcp::State::Listen => idle += 1,
                tcp::State::SynReceived => pending = true,
                tcp::State::Closed => {
                    self.remove_socket(&mut sockets, handle);
                    return false;
                }
                _ => {
                    listener.ready.push_back(handle);
                    connected = true;
                    return false;
                }
            }
            true
        });
        drop(sockets);
        if connected && let Some(waker) = listener.acceptor.take() {
            waker.wake();
        }
        while idle < SPARE && listener.listening.len() + listener.ready.len() < listener.capacity()
        {
            match self.listen_on(listener.port) {
                Ok(handle) => listener.listening.push(handle),
                Err(_) => break,
            }
            idle += 1;
        }
        pending
    }

    /// Queue some of `data` on stream `id`, waiting for room: how many bytes were taken.
    async fn send(&self, session: u32, id: u32, data: &[u8]) -> Result<u32, NetError> {
        let data = &data[..data.len().min(MAX_WRITE as usize)];
        poll_fn(|cx| {
            let handle = match self.stream(session, id) {
                Ok(handle) => handle,
                Err(error) => return Poll::Ready(Err(error)),
            };
            let mut sockets = self.stack.sockets.borrow_mut();
            let socket = sockets.get_mut::<tcp::Socket>(handle);
            if !socket.may_send() {
                return Poll::Ready(Err(match socket.state() {
                    tcp::State::Closed | tcp::State::TimeWait => NetError::ConnectionReset,
                    _ => NetError::NotConnected,
                }));
            }
            if data.is_empty() {
                return Poll::Ready(Ok(0));
            }
            // Wait for room for the whole write, or half the buffer: smoltcp wakes a writer
            // on every ACK, and taking the little room one ACK frees would cost a call
            // per segment.
            let room = socket.send_capacity() - socket.send_queue();
            if room >= data.len().min(TCP_TX / 2) {
                let n = socket.send_slice(data).unwrap_or(0);
                return Poll::Ready(Ok(n as u32));
            }
            socket.register_send_waker(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Let go of a socket: a stream sends what it holds first.
    fn release(&self, kind: Kind) {
        let mut sockets = self.stack.sockets.borrow_mut();
        match kind {
            Kind::Listener(listener) => {
                for handle in listener.listening.into_iter().chain(listener.ready) {
                    sockets.get_mut::<tcp::Socket>(handle).abort();
                    self.closing.borrow_mut().push((handle, linger_deadline()));
                }
            }
            Kind::Stream(handle) => {
                sockets.get_mut::<tcp::Socket>(handle).close();
                self.closing.borrow_mut().push((handle, linger_deadline()));
            }
            Kind::Udp(handle, _) => {
                self.remove_socket(&mut sockets, handle);
            }
        }
        drop(sockets);
        self.stack.poke();
    }

    /// A new session's id: hard to guess, since the service cannot tell who calls and a
    /// session's id is all that names its sockets. Never 0 or one in use.
    fn session_id(&self) -> u32 {
        loop {
            // SAFETY: RDTSC only reads the counter (the kernel leaves CR4.TSD clear).
            let tsc = unsafe { core::arch::x86_64::_rdtsc() };
            let mixed = (tsc ^ u64::from(self.fresh_id())).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let id = (mixed >> 32) as u32;
            if id != 0 && !self.sessions.borrow().contains_key(&id) {
                return id;
            }
        }
    }

    /// Let go of socket `id`, whoever holds it.
    fn forget(&self, id: u32) {
        let entry = self.entries.borrow_mut().remove(&id);
        if let Some(entry) = entry {
            self.release(entry.kind);
        }
    }

    /// The next local port for an outgoing connection: 49152..=65535, round robin.
    fn ephemeral_port(&self) -> u16 {
        let port = self.next_port.get();
        self.next_port.set(port.checked_add(1).unwrap_or(EPHEMERAL));
        port
    }

    fn end_session(&self, session: u32) {
        self.sessions.borrow_mut().remove(&session);
        let ids: Vec<u32> = self
            .entries
            .borrow()
            .iter()
            .filter(|(_, entry)| entry.session == session)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.forget(id);
        }
    }
}

/// A ping's socket, gone with the call.
struct Pinging<'a> {
    table: &'a Table,
    handle: SocketHandle,
}

impl Drop for Pinging<'_> {
    fn drop(&mut self) {
        let mut sockets = self.table.stack.sockets.borrow_mut();
        self.table.remove_socket(&mut sockets, self.handle);
    }
}

/// Ends a session when the call holding it is dropped.
struct Hold<'a> {
    table: &'a Table,
    session: u32,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.table.end_session(self.session);
    }
}

/// The service, over the shared table.
pub struct Service(pub Rc<Table>);

impl Sockets for Service {
    async fn open_session(&self) -> Result<u32, NetError> {
        let table = &self.0;
        if table.sessions.borrow().len() >= MAX_SESSIONS {
            return Err(NetError::TooManySockets);
        }
        let id = table.session_id();
        table.sessions.borrow_mut().insert(id, ());
        Ok(id)
    }

    async fn hold(&self, session: u32) -> Result<(), NetError> {
        if !self.0.sessions.borrow().contains_key(&session) {
            return Err(NetError::NoSession);
        }
        let _hold = Hold {
            table: &self.0,
            session,
        };
        pending().await
    }

    async fn tcp_listen(&self, session: u32, port: u16, backlog: u16) -> Result<u32, NetError> {
        let table = &self.0;
        if !table.sessions.borrow().contains_key(&session) {
            return Err(NetError::NoSession);
        }
        let taken =
            table.entries.borrow().values().any(
                |entry| matches!(&entry.kind, Kind::Listener(listener) if listener.port == port),
            );
        if port == 0 || taken {
            return Err(NetError::AddressInUse);
        }
        let mut listener = Listener {
            port,
            backlog: usize::from(backlog).clamp(1, MAX_BACKLOG),
            listening: Vec::new(),
            ready: VecDeque::new(),
            acceptor: None,
        };
        let _ = table.refill(&mut listener);
        if listener.listening.is_empty() {
            return Err(NetError::TooManySockets);
        }
        table.stack.poke();
        Ok(table.add(session, Kind::Listener(listener)))
    }

    async fn tcp_accept(
        &self,
        session: u32,
        listener: u32,
        max: u32,
    ) -> Result<(u32, SocketAddr, Data), NetError> {
        let table = &self.0;
        let (handle, full) = poll_fn(|cx| {
            table
                .with(session, listener, |kind| {
                    let Kind::Listener(listener) = kind else {
                        return Err(NetError::NoSuchSocket);
                    };
                    let full =
                        listener.listening.len() + listener.ready.len() >= listener.capacity();
                    Ok(match listener.ready.pop_front() {
                        Some(handle) => Poll::Ready((handle, full)),
                        None => {
                            listener.acceptor = Some(cx.waker().clone());
                            Poll::Pending
                        }
                    })
                })
                .map_or_else(|error| Poll::Ready(Err(error)), |poll| poll.map(Ok))
        })
        .await?;
        let (peer, early, update) = {
            let mut sockets = table.stack.sockets.borrow_mut();
            let socket = sockets.get_mut::<tcp::Socket>(handle);
            let (early, update) = take_received(socket, max.min(MAX_READ) as usize);
            (socket.remote_endpoint(), early, update)
        };
        if full || update {
            // The backlog was full, so no socket listened: one can now. Or reading opened
            // the window: let the peer know.
            if full {
                table.handshake(listener);
            }
            table.stack.poke();
        }
        let id = table.add(session, Kind::Stream(handle));
        let peer = peer.map(endpoint).unwrap_or(SocketAddr {
            ip: [0; 4],
            port: 0,
        });
        Ok((id, peer, Data(early)))
    }

    async fn tcp_connect(&self, session: u32, to: SocketAddr) -> Result<u32, NetError> {
        let table = &self.0;
        if !table.sessions.borrow().contains_key(&session) {
            return Err(NetError::NoSession);
        }
        let handle = table.tcp_socket()?;
        let [a, b, c, d] = to.ip;
        let remote = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::new(a, b, c, d)), to.port);
        let id = table.add(session, Kind::Stream(handle));
        if table
            .stack
            .connect(handle, remote, table.ephemeral_port())
            .is_err()
        {
            table.forget(id);
            return Err(NetError::Unreachable);
        }
        table.stack.poke();
        let established = poll_fn(|cx| {
            let mut sockets = table.stack.sockets.borrow_mut();
            let socket = sockets.get_mut::<tcp::Socket>(handle);
            match socket.state() {
                tcp::State::SynSent => {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
                tcp::State::Closed => Poll::Ready(Err(NetError::ConnectionReset)),
                _ => Poll::Ready(Ok(())),
            }
        });
        match executor::timeout(CONNECT_TIME, established).await {
            Ok(Ok(())) => Ok(id),
            Ok(Err(error)) => {
                table.forget(id);
                Err(error)
            }
            Err(_) => {
                table.forget(id);
                Err(NetError::Unreachable)
            }
        }
    }

    async fn tcp_read(&self, session: u32, stream: u32, max: u32) -> Result<Data, NetError> {
        let table = &self.0;
        if max == 0 {
            return Err(NetError::InvalidArgument);
        }
        let max = max.min(MAX_READ) as usize;
        let (bytes, update) = poll_fn(|cx| {
            let handle = match table.stream(session, stream) {
                Ok(handle) => handle,
                Err(error) => return Poll::Ready(Err(error)),
            };
            let mut sockets = table.stack.sockets.borrow_mut();
            let socket = sockets.get_mut::<tcp::Socket>(handle);
            if socket.can_recv() {
                return Poll::Ready(Ok(take_received(socket, max)));
            }
            if !socket.may_recv() {
                // End of file: the peer sent FIN, or the connection is gone (a write says
                // which).
                return Poll::Ready(Ok((Vec::new(), false)));
            }
            socket.register_recv_waker(cx.waker());
            Poll::Pending
        })
        .await?;
        if update {
            // Reading opened the window: let the peer know.
            table.stack.poke();
        }
        Ok(Data(bytes))
    }

    async fn tcp_write(&self, session: u32, stream: u32, data: &[u8]) -> Result<u32, NetError> {
        let table = &self.0;
        let sent = table.send(session, stream, data).await?;
        table.stack.poke();
        Ok(sent)
    }

    async fn tcp_write_close(
        &self,
        session: u32,
        stream: u32,
        data: &[u8],
    ) -> Result<u32, NetError> {
        let table = &self.0;
        let sent = table.send(session, stream, data).await?;
        if sent as usize == data.len() {
            // Closing pokes the stack.
            table.forget(stream);
        } else {
            table.stack.poke();
        }
        Ok(sent)
    }

    async fn tcp_shutdown(&self, session: u32, stream: u32) -> Result<(), NetError> {
        let table = &self.0;
        let handle = table.stream(session, stream)?;
        table
            .stack
            .sockets
            .borrow_mut()
            .get_mut::<tcp::Socket>(handle)
            .close();
        table.stack.poke();
        Ok(())
    }

    async fn udp_bind(&self, session: u32, port: u16) -> Result<u32, NetError> {
        let table = &self.0;
        if !table.sessions.borrow().contains_key(&session) {
            return Err(NetError::NoSession);
        }
        let taken = table
            .entries
            .borrow()
            .values()
            .any(|entry| matches!(entry.kind, Kind::Udp(_, bound) if bound == port));
        if port == 0 || taken {
            return Err(NetError::AddressInUse);
        }
        let buffer = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_BYTES],
            )
        };
        let mut socket = udp::Socket::new(buffer(), buffer());
        socket.bind(port).map_err(|_| NetError::AddressInUse)?;
        let handle = table.add_socket(socket)?;
        Ok(table.add(session, Kind::Udp(handle, port)))
    }

    async fn udp_send_to(
        &self,
        session: u32,
        socket: u32,
        data: &[u8],
        to: SocketAddr,
    ) -> Result<(), NetError> {
        let table = &self.0;
        let handle = table.with(session, socket, |kind| match kind {
            Kind::Udp(handle, _) => Ok(*handle),
            _ => Err(NetError::NoSuchSocket),
        })?;
        if data.len() > UDP_BYTES / 2 {
            return Err(NetError::InvalidArgument);
        }
        let [a, b, c, d] = to.ip;
        let remote = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::new(a, b, c, d)), to.port);
        poll_fn(|cx| {
            let mut sockets = table.stack.sockets.borrow_mut();
            let socket = sockets.get_mut::<udp::Socket>(handle);
            match socket.send_slice(data, remote) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(udp::SendError::BufferFull) => {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
                Err(udp::SendError::Unaddressable) => Poll::Ready(Err(NetError::Unreachable)),
            }
        })
        .await?;
        table.stack.poke();
        Ok(())
    }

    async fn udp_recv_from(
        &self,
        session: u32,
        socket: u32,
        max: u32,
    ) -> Result<(Data, SocketAddr), NetError> {
        let table = &self.0;
        if max == 0 {
            return Err(NetError::InvalidArgument);
        }
        let max = max.min(MAX_READ) as usize;
        poll_fn(|cx| {
            let handle = match table.with(session, socket, |kind| match kind {
                Kind::Udp(handle, _) => Ok(*handle),
                _ => Err(NetError::NoSuchSocket),
            }) {
                Ok(handle) => handle,
                Err(error) => return Poll::Ready(Err(error)),
            };
            let mut sockets = table.stack.sockets.borrow_mut();
            let socket = sockets.get_mut::<udp::Socket>(handle);
            match socket.recv() {
                Ok((bytes, meta)) => {
                    let bytes = bytes[..bytes.len().min(max)].to_vec();
                    Poll::Ready(Ok((Data(bytes), endpoint(meta.endpoint))))
                }
                Err(_) => {
                    socket.register_recv_waker(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    async fn close(&self, session: u32, socket: u32) -> Result<(), NetError> {
        let table = &self.0;
        table.with(session, socket, |_| Ok(()))?;
        table.forget(socket);
        Ok(())
    }

    async fn ping(&self, to: [u8; 4]) -> Result<u32, NetError> {
        let table = &self.0;
        let buffer = || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 2], vec![0; 256]);
        let ident = table.ephemeral_port();
        let mut socket = icmp::Socket::new(buffer(), buffer());
        socket
            .bind(icmp::Endpoint::Ident(ident))
            .map_err(|_| NetError::InvalidArgument)?;
        let pinging = Pinging {
            table,
            handle: table.add_socket(socket)?,
        };
        let [a, b, c, d] = to;
        let remote = IpAddress::Ipv4(Ipv4Address::new(a, b, c, d));
        let request = Icmpv4Repr::EchoRequest {
            ident,
            seq_no: 1,
            data: b"keel",
        };
        {
            let mut sockets = table.stack.sockets.borrow_mut();
            let socket = sockets.get_mut::<icmp::Socket>(pinging.handle);
            let bytes = socket
                .send(request.buffer_len(), remote)
                .map_err(|_| NetError::Unreachable)?;
            request.emit(
                &mut Icmpv4Packet::new_unchecked(bytes),
                &ChecksumCapabilities::default(),
            );
        }
        let sent = time::uptime();
        table.stack.poke();
        let reply = poll_fn(|cx| {
            let mut sockets = table.stack.sockets.borrow_mut();
            let socket = sockets.get_mut::<icmp::Socket>(pinging.handle);
            while let Ok((bytes, from)) = socket.recv() {
                let echoed = Icmpv4Packet::new_checked(bytes).and_then(|packet| {
                    Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default())
                });
                if from == remote
                    && matches!(echoed, Ok(Icmpv4Repr::EchoReply { ident: i, seq_no: 1, .. }) if i == ident)
                {
                    return Poll::Ready(());
                }
            }
            socket.register_recv_waker(cx.waker());
            Poll::Pending
        });
        executor::timeout(PING_TIME, reply)
            .await
            .map_err(|_| NetError::Unreachable)?;
        Ok((time::uptime() - sent).as_micros().min(u32::MAX.into()) as u32)
    }

    async fn info(&self) -> NetInfo {
        let table = &self.0;
        let stack = &table.stack;
        let driver = stack.driver();
        let counters = driver.nic().map(|nic| nic.counters()).unwrap_or_default();
        let configured = stack.configured();
        NetInfo {
            mac: driver.nic().map(|nic| nic.mac()).unwrap_or_default(),
            address: configured.map(|c| (c.address.address().octets(), c.address.prefix_len())),
            gateway: configured.and_then(|c| c.gateway).map(|g| g.octets()),
            dhcp: configured.is_some_and(|c| c.dhcp),
            rx_packets: counters.rx_packets,
            tx_packets: counters.tx_packets,
            rx_bytes: counters.rx_bytes,
            tx_bytes: counters.tx_bytes,
            interrupts: driver.interrupts(),
            sockets: table.socket_count() as u32,
            sessions: table.sessions.borrow().len() as u32,
        }
    }
}
