//! The Sockets service the network server offers, and the client library over it in the
//! shape of `std::net`: [`TcpListener`], [`TcpStream`], [`UdpSocket`], all async.
//!
//! ```ignore
//! let net = Net::connect()?;                          // the "net" service, by name
//! let listener = net.tcp_listen(80).await?;
//! loop {
//!     let (stream, peer) = listener.accept().await?;
//!     executor::spawn(async move {
//!         let mut buf = [0; 1024];
//!         let n = stream.read(&mut buf).await?;
//!         stream.write_all(&buf[..n]).await?;
//!         stream.shutdown().await
//!     });
//!     // or, for a last answer: stream.write_all_and_close(b"...").await
//! }
//! ```
//!
//! Sockets belong to a *session*, which lives as long as a call the client keeps open
//! (`hold`): when the client process dies its connection ends, the server drops that call,
//! and every socket of the session closes. Dropping a socket closes it; dropping the last
//! handle of a [`Net`] ends its session.
//!
//! Data moves through the service's shared rings and bulk arena: a write's bytes go from the
//! client's buffer into the channel, and the server copies them once into the socket's send
//! buffer; the kernel copies nothing.
#![no_std]

extern crate alloc;

mod client;

pub use client::{Error, Net, TcpListener, TcpStream, UdpSocket};

use alloc::vec::Vec;
use core::fmt;
use keel_rt::serde::de::{Deserializer, Visitor};
use keel_rt::serde::{Deserialize, Serialize, Serializer};

/// The name the network server registers under.
pub const NAME: &str = "net";

/// The most bytes one read or `recv_from` returns: a result fits in one response record.
pub const MAX_READ: u32 = 16 * 1024;

/// The most bytes one write takes (a larger write takes this much and says so).
pub const MAX_WRITE: u32 = 64 * 1024;

/// Bytes an answer carries, encoded as one byte string (a length, then the bytes): a
/// `Vec<u8>` would be written and read one number at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Data(pub Vec<u8>);

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl Visitor<'_> for Bytes {
            type Value = Data;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E>(self, bytes: &[u8]) -> Result<Data, E> {
                Ok(Data(bytes.to_vec()))
            }

            fn visit_byte_buf<E>(self, bytes: Vec<u8>) -> Result<Data, E> {
                Ok(Data(bytes))
            }
        }
        deserializer.deserialize_byte_buf(Bytes)
    }
}

/// An IPv4 address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "keel_rt::serde")]
pub struct SocketAddr {
    pub ip: [u8; 4],
    pub port: u16,
}

impl fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.ip;
        write!(f, "{a}.{b}.{c}.{d}:{}", self.port)
    }
}

/// Why the network server refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "keel_rt::serde")]
pub enum NetError {
    /// No such session, or it has ended.
    NoSession,
    /// No such socket in this session, or not of the kind the call needs.
    NoSuchSocket,
    /// The port is taken (or is 0 where a port is needed).
    AddressInUse,
    /// The server holds as many sockets (or sessions) as it may.
    TooManySockets,
    /// The peer reset the connection, or it timed out.
    ConnectionReset,
    /// The connection is no longer open for writing (shut down, or closed by the peer).
    NotConnected,
    /// The network is not configured yet, or the datagram cannot be sent.
    Unreachable,
    /// An argument is out of range (a datagram too large, a read of 0 bytes).
    InvalidArgument,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetError::NoSession => "no such session",
            NetError::NoSuchSocket => "no such socket",
            NetError::AddressInUse => "address in use",
            NetError::TooManySockets => "too many sockets",
            NetError::ConnectionReset => "connection reset",
            NetError::NotConnected => "not connected",
            NetError::Unreachable => "network unreachable",
            NetError::InvalidArgument => "invalid argument",
        })
    }
}

/// The interface as it stands, and what went through it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "keel_rt::serde")]
pub struct NetInfo {
    pub mac: [u8; 6],
    /// The address and prefix length, once configured.
    pub address: Option<([u8; 4], u8)>,
    pub gateway: Option<[u8; 4]>,
    /// Configured by DHCP (false: the static fallback).
    pub dhcp: bool,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Interrupts the driver served.
    pub interrupts: u64,
    /// Sockets open, in all sessions.
    pub sockets: u32,
    pub sessions: u32,
}

/// The sockets of the network server. Every call but `open_session` names its session.
#[keel_rt::service]
pub trait Sockets {
    /// A new session for this client's sockets.
    async fn open_session(&self) -> Result<u32, NetError>;
    /// Never answers: the session ends (closing its sockets) when this call is dropped.
    async fn hold(&self, session: u32) -> Result<(), NetError>;
    /// Listen on TCP `port` with room for `backlog` connections not yet accepted.
    async fn tcp_listen(&self, session: u32, port: u16, backlog: u16) -> Result<u32, NetError>;
    /// The next connection on a listener, who it is from, and up to `max` bytes that have
    /// already come on it (at most [`MAX_READ`]; often a client's first request, which
    /// then takes no read of its own).
    async fn tcp_accept(
        &self,
        session: u32,
        listener: u32,
        max: u32,
    ) -> Result<(u32, SocketAddr, Data), NetError>;
    /// A connection to `to`, once established (within 10 s).
    async fn tcp_connect(&self, session: u32, to: SocketAddr) -> Result<u32, NetError>;
    /// Up to `max` bytes received (at most [`MAX_READ`]); empty once the peer has closed.
    async fn tcp_read(&self, session: u32, stream: u32, max: u32) -> Result<Data, NetError>;
    /// Queue bytes to send, waiting for room; how many were taken (at most [`MAX_WRITE`]).
    async fn tcp_write(&self, session: u32, stream: u32, data: &[u8]) -> Result<u32, NetError>;
    /// Queue bytes to send as `tcp_write` does and, once all are taken, close the stream
    /// as `close` does (what it holds goes out, then FIN): a last write and its close in
    /// one call. How many were taken; fewer than all leaves the stream open.
    async fn tcp_write_close(
        &self,
        session: u32,
        stream: u32,
        data: &[u8],
    ) -> Result<u32, NetError>;
    /// Send nothing more (the peer reads end of file); reads go on.
    async fn tcp_shutdown(&self, session: u32, stream: u32) -> Result<(), NetError>;
    /// A UDP socket on `port`.
    async fn udp_bind(&self, session: u32, port: u16) -> Result<u32, NetError>;
    async fn udp_send_to(
        &self,
        session: u32,
        socket: u32,
        data: &[u8],
        to: SocketAddr,
    ) -> Result<(), NetError>;
    /// The next datagram (cut to `max` bytes) and its sender.
    async fn udp_recv_from(
        &self,
        session: u32,
        socket: u32,
        max: u32,
    ) -> Result<(Data, SocketAddr), NetError>;
    /// Close a socket of any kind. A stream still open sends what it holds, then ends
    /// (FIN); the server lets it go once that is done, or after a time limit.
    async fn close(&self, session: u32, socket: u32) -> Result<(), NetError>;
    /// Send an ICMP echo request to `to`; the round trip in microseconds (at most 5 s,
    /// else `Unreachable`).
    async fn ping(&self, to: [u8; 4]) -> Result<u32, NetError>;
    #[idempotent]
    async fn info(&self) -> NetInfo;
}
