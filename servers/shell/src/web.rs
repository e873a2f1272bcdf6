//! The tour's look at the network from inside: a ping of the guest's own address, and the
//! status page over a TCP connection to its port 80, through the network server's sockets
//! (its loopback brings the frames back).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use keel_net::{Net, SocketAddr, TcpStream};
use keel_rt::executor::{self, sleep};

/// How long the network (an address, a listening web server) may take to be ready.
const READY: Duration = Duration::from_secs(15);
/// The most of the answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// `GET path` from the guest's own web server: the status line and the body.
pub async fn get(path: &str) -> Result<(String, String), String> {
    let net = Net::connect()
        .await
        .map_err(|error| format!("connecting to the network server: {error}"))?;
    let stream = executor::timeout(READY, connect(&net))
        .await
        .map_err(|_| format!("no web server answered within {READY:?}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: keel\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| format!("sending the request: {error}"))?;
    let answer = executor::timeout(READY, read_all(&stream))
        .await
        .map_err(|_| String::from("the answer did not end"))??;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {} bytes", answer.len()))?;
    let status = head.lines().next().unwrap_or("").into();
    Ok((status, body.into()))
}

/// Ping the guest's own address (the stack answers it as it answers anyone): the
/// address and the round trip.
pub async fn ping_self() -> Result<([u8; 4], Duration), String> {
    let net = Net::connect()
        .await
        .map_err(|error| format!("connecting to the network server: {error}"))?;
    let ip = executor::timeout(READY, own_address(&net))
        .await
        .map_err(|_| format!("no address within {READY:?}"))?;
    let rtt = net
        .ping(ip)
        .await
        .map_err(|error| format!("no echo reply: {error}"))?;
    Ok((ip, rtt))
}

async fn own_address(net: &Net) -> [u8; 4] {
    loop {
        if let Ok(info) = net.info().await
            && let Some((ip, _)) = info.address
        {
            return ip;
        }
        sleep(Duration::from_millis(200)).await;
    }
}

/// A connection to port 80 of the guest's own address, once it has one and the web
/// server listens.
async fn connect(net: &Net) -> TcpStream {
    loop {
        if let Ok(info) = net.info().await
            && let Some((ip, _)) = info.address
            && let Ok(stream) = net.tcp_connect(SocketAddr { ip, port: 80 }).await
        {
            return stream;
        }
        sleep(Duration::from_millis(200)).await;
    }
}

async fn read_all(stream: &TcpStream) -> Result<Vec<u8>, String> {
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    while answer.len() < MAX_ANSWER {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(error) => return Err(format!("reading the answer: {error}")),
        }
    }
    Ok(answer)
}
