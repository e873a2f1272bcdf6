//! The client library: `std::net`'s shapes over [`SocketsClient`], every socket in one
//! session per [`Net`].

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;

use futures_util::future::{AbortHandle, abortable};
use keel_rt::executor;
use keel_rt::service::TransportError;

use crate::{Data, MAX_READ, MAX_WRITE, NAME, NetError, NetInfo, SocketAddr, SocketsClient};

/// What a socket call can fail with: the server refused, or the call never got through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Net(NetError),
    Transport(TransportError),
}

impl From<NetError> for Error {
    fn from(error: NetError) -> Self {
        Error::Net(error)
    }
}

impl From<TransportError> for Error {
    fn from(error: TransportError) -> Self {
        Error::Transport(error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Net(error) => write!(f, "{error}"),
            Error::Transport(error) => write!(f, "the network server: {error}"),
        }
    }
}

/// Flattens a call's two layers of error.
fn flat<T>(result: Result<Result<T, NetError>, TransportError>) -> Result<T, Error> {
    Ok(result??)
}

struct Session {
    client: SocketsClient,
    id: u32,
    hold: AbortHandle,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropping the held call (the server sees it cancelled) ends the session.
        self.hold.abort();
    }
}

/// A session with the network server: the sockets made through it close with it.
/// Clones share the session.
#[derive(Clone)]
pub struct Net(Rc<Session>);

impl Net {
    /// Connect to the network server by name and open a session. Call from inside the
    /// executor: the session's held call runs as a task.
    pub async fn connect() -> Result<Net, Error> {
        Net::over(SocketsClient::connect_named(NAME)?).await
    }

    /// A session over a client already connected.
    pub async fn over(client: SocketsClient) -> Result<Net, Error> {
        let id = flat(client.open_session().await)?;
        let (hold, handle) = abortable({
            let client = client.clone();
            async move { client.hold(id).await }
        });
        executor::spawn(hold);
        Ok(Net(Rc::new(Session {
            client,
            id,
            hold: handle,
        })))
    }

    fn client(&self) -> &SocketsClient {
        &self.0.client
    }

    fn session(&self) -> u32 {
        self.0.id
    }

    /// Listen on TCP `port`, with room for 16 connections not yet accepted.
    pub async fn tcp_listen(&self, port: u16) -> Result<TcpListener, Error> {
        self.tcp_listen_backlog(port, 16).await
    }

    /// Listen on TCP `port`, with room for `backlog` connections not yet accepted.
    pub async fn tcp_listen_backlog(&self, port: u16, backlog: u16) -> Result<TcpListener, Error> {
        let id = flat(
            self.client()
                .tcp_listen(self.session(), port, backlog)
                .await,
        )?;
        Ok(TcpListener(Socket::new(self, id)))
    }

    /// A TCP connection to `to`.
    pub async fn tcp_connect(&self, to: SocketAddr) -> Result<TcpStream, Error> {
        let id = flat(self.client().tcp_connect(self.session(), to).await)?;
        Ok(TcpStream {
            socket: Socket::new(self, id),
            early: RefCell::default(),
        })
    }

    /// A UDP socket on `port`.
    pub async fn udp_bind(&self, port: u16) -> Result<UdpSocket, Error> {
        let id = flat(self.client().udp_bind(self.session(), port).await)?;
        Ok(UdpSocket(Socket::new(self, id)))
    }

    /// Ping `to`: the round trip.
    pub async fn ping(&self, to: [u8; 4]) -> Result<core::time::Duration, Error> {
        let micros = flat(self.client().ping(to).await)?;
        Ok(core::time::Duration::from_micros(micros.into()))
    }

    /// The interface's configuration and counters.
    pub async fn info(&self) -> Result<NetInfo, Error> {
        Ok(self.client().info().await?)
    }
}

/// A socket id in a session; closed when dropped, unless a call closed it already.
struct Socket {
    net: Net,
    id: u32,
    closed: Cell<bool>,
}

impl Socket {
    fn new(net: &Net, id: u32) -> Socket {
        Socket {
            net: net.clone(),
            id,
            closed: Cell::new(false),
        }
    }

    fn client(&self) -> &SocketsClient {
        self.net.client()
    }

    fn session(&self) -> u32 {
        self.net.session()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if self.closed.get() {
            return;
        }
        let (net, id) = (self.net.clone(), self.id);
        // Nobody waits for the answer: a session that is ending closes the socket anyway.
        executor::spawn(async move {
            let _ = net.client().close(net.session(), id).await;
        });
    }
}

/// A TCP socket listening for connections.
pub struct TcpListener(Socket);

impl TcpListener {
    /// The next connection, and who it is from.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr), Error> {
        let socket = &self.0;
        let (id, peer, Data(early)) = flat(
            socket
                .client()
                .tcp_accept(socket.session(), socket.id, EARLY)
                .await,
        )?;
        let stream = TcpStream {
            socket: Socket::new(&socket.net, id),
            early: RefCell::new(early),
        };
        Ok((stream, peer))
    }
}

/// Bytes an accept takes with it from its connection, if they have come already.
const EARLY: u32 = 4096;

/// A TCP connection.
pub struct TcpStream {
    socket: Socket,
    /// Bytes that came with the accept, not yet read.
    early: RefCell<Vec<u8>>,
}

impl TcpStream {
    /// Read into `buf`; 0 once the peer has closed its side.
    pub async fn read(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let bytes = self.recv(buf.len()).await?;
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }

    /// Up to `max` bytes received (at most [`MAX_READ`]), as they came from the server;
    /// empty once the peer has closed its side (or for a `max` of 0).
    pub async fn recv(&self, max: usize) -> Result<Vec<u8>, Error> {
        let socket = &self.socket;
        let max = max.min(MAX_READ as usize);
        if max == 0 {
            return Ok(Vec::new());
        }
        {
            let mut early = self.early.borrow_mut();
            if !early.is_empty() {
                let len = early.len();
                let rest = early.split_off(max.min(len));
                return Ok(core::mem::replace(&mut *early, rest));
            }
        }
        let Data(bytes) = flat(
            socket
                .client()
                .tcp_read(socket.session(), socket.id, max as u32)
                .await,
        )?;
        Ok(bytes)
    }

    /// Write some of `data`, waiting for room; how much was taken.
    pub async fn write(&self, data: &[u8]) -> Result<usize, Error> {
        let socket = &self.socket;
        let chunk = &data[..data.len().min(MAX_WRITE as usize)];
        let taken = flat(
            socket
                .client()
                .tcp_write(socket.session(), socket.id, chunk)
                .await,
        )?;
        Ok(taken as usize)
    }

    /// Write all of `data`.
    pub async fn write_all(&self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            let taken = self.write(data).await?;
            data = &data[taken.min(data.len())..];
        }
        Ok(())
    }

    /// Write all of `data`, then close: the last piece and the close go in one call.
    /// Either way the stream is closed (an error closes it as dropping it would).
    pub async fn write_all_and_close(self, mut data: &[u8]) -> Result<(), Error> {
        let socket = &self.socket;
        loop {
            if data.len() > MAX_WRITE as usize {
                let taken = self.write(data).await?;
                data = &data[taken.min(data.len())..];
                continue;
            }
            let taken = flat(
                socket
                    .client()
                    .tcp_write_close(socket.session(), socket.id, data)
                    .await,
            )? as usize;
            if taken >= data.len() {
                socket.closed.set(true);
                return Ok(());
            }
            data = &data[taken..];
        }
    }

    /// Send nothing more: the peer reads end of file once what was written has arrived.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let socket = &self.socket;
        flat(
            socket
                .client()
                .tcp_shutdown(socket.session(), socket.id)
                .await,
        )
    }
}

/// A UDP socket.
pub struct UdpSocket(Socket);

impl UdpSocket {
    pub async fn send_to(&self, data: &[u8], to: SocketAddr) -> Result<(), Error> {
        let socket = &self.0;
        flat(
            socket
                .client()
                .udp_send_to(socket.session(), socket.id, data, to)
                .await,
        )
    }

    /// The next datagram into `buf` (the rest of a longer one is lost), and its sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), Error> {
        let socket = &self.0;
        let max = buf.len().min(MAX_READ as usize) as u32;
        let (Data(bytes), from) = flat(
            socket
                .client()
                .udp_recv_from(socket.session(), socket.id, max)
                .await,
        )?;
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok((n, from))
    }
}
