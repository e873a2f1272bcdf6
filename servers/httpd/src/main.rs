//! `httpd`: the web server, a client of the network server's Sockets service.
//!
//! - port 80: `/` the live status page, `/api/status` the same as JSON, `/bytes/N` N bytes
//!   (byte `i` is `i % 251`) for downloads and benchmarks, `/api/cpu` the TSC and idle time
//!   for benchmarks;
//! - port 7: echo, over TCP and UDP.
//!
//! Each connection is a task of its own with its own time limits, so a slow or silent client
//! holds one socket and nothing else. When the network server dies (its calls fail with a
//! transport error) the server connects again, to the restarted one, and listens anew.
#![no_std]
#![no_main]

extern crate alloc;

mod http;
mod status;

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use core::time::Duration;

use futures_util::future::Either;
use keel_net::{Error, Net, TcpListener, TcpStream, UdpSocket};
use keel_rt::executor::{self, sleep};
use keel_rt::println;

use http::Request;
use status::{Served, Snapshots};

const HTTP_PORT: u16 = 80;
const ECHO_PORT: u16 = 7;
/// Connections the stack may hold for each port before they are accepted: a burst of page
/// requests; echo needs few.
const WEB_BACKLOG: u16 = 64;
const ECHO_BACKLOG: u16 = 8;
/// An echo connection silent this long is closed.
const ECHO_IDLE: Duration = Duration::from_secs(60);
/// The largest `/bytes/N`.
const MAX_DOWNLOAD: u64 = 1 << 30;
/// A period of the download pattern that fills a write: 128 rounds of 251.
const PATTERN_LEN: usize = 251 * 128;

keel_rt::async_entry!(main);

async fn main(_args: &'static str) -> i32 {
    let served = Rc::new(Counters::default());
    let mut last_error = None;
    loop {
        match Net::connect().await {
            Ok(net) => {
                last_error = None;
                if let Err(error) = serve(&net, &served).await {
                    println!("httpd: the network server went away ({error}); connecting again");
                }
            }
            Err(error) => {
                if last_error != Some(error) {
                    println!("httpd: cannot reach the network server: {error}; trying again");
                }
                last_error = Some(error);
            }
        }
        sleep(Duration::from_millis(200)).await;
    }
}

#[derive(Default)]
struct Counters {
    connections: Cell<u64>,
    requests: Cell<u64>,
    refused: Cell<u64>,
    open: Cell<u64>,
    snapshots: Snapshots,
}

impl Counters {
    fn bump(cell: &Cell<u64>) {
        cell.set(cell.get() + 1);
    }

    fn served(&self) -> Served {
        Served {
            connections: self.connections.get(),
            requests: self.requests.get(),
            refused: self.refused.get(),
            open: self.open.get(),
        }
    }
}

/// A connection counted open while it lives.
struct Open(Rc<Counters>);

impl Open {
    fn new(counters: &Rc<Counters>) -> Open {
        Counters::bump(&counters.connections);
        Counters::bump(&counters.open);
        Open(counters.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
    }
}

/// Listen on both ports and serve until the network server is gone.
async fn serve(net: &Net, served: &Rc<Counters>) -> Result<(), Error> {
    let web = net.tcp_listen_backlog(HTTP_PORT, WEB_BACKLOG).await?;
    let echo = net.tcp_listen_backlog(ECHO_PORT, ECHO_BACKLOG).await?;
    println!(
        "httpd: serving the status page on port {HTTP_PORT} and echo on port {ECHO_PORT} (TCP and UDP)"
    );
    let pages = accept_loop(&web, |stream| {
        let (net, served) = (net.clone(), served.clone());
        async move { page(stream, &net, &served).await }
    });
    let echoes = accept_loop(&echo, |stream| {
        let served = served.clone();
        async move { echo_stream(stream, &served).await }
    });
    let datagrams = udp_echo(net.udp_bind(ECHO_PORT).await?);
    let (pages, echoes) = (core::pin::pin!(pages), core::pin::pin!(echoes));
    let datagrams = core::pin::pin!(datagrams);
    let tcp = futures_util::future::select(pages, echoes);
    match futures_util::future::select(tcp, datagrams).await {
        Either::Left((Either::Left((error, _)) | Either::Right((error, _)), _))
        | Either::Right((error, _)) => Err(error),
    }
}

/// Accept connections and run `handle` on each as a task; the accept error that ends it.
async fn accept_loop<F, H>(listener: &TcpListener, handle: H) -> Error
where
    H: Fn(TcpStream) -> F,
    F: Future<Output = ()> + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                executor::spawn(handle(stream));
            }
            Err(error @ Error::Transport(_)) => return error,
            // The stack ran out of sockets for a moment: let connections end first.
            Err(Error::Net(_)) => sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn page(stream: TcpStream, net: &Net, counters: &Rc<Counters>) {
    let _open = Open::new(counters);
    // Either way the stream is closed: what was written goes out, then FIN (the last
    // write closes it, or dropping it does). A write that failed leaves nothing else to do.
    let _ = match http::read_request(&stream).await {
        Ok(request) => {
            Counters::bump(&counters.requests);
            answer(stream, &request, net, counters).await
        }
        Err(refusal) => {
            Counters::bump(&counters.refused);
            match http::refusal_answer(&refusal) {
                Some(text) => stream.write_all_and_close(&text).await,
                None => Ok(()),
            }
        }
    };
}

/// Answer `request` on `stream` and close it.
async fn answer(
    stream: TcpStream,
    request: &Request,
    net: &Net,
    counters: &Rc<Counters>,
) -> Result<(), Error> {
    let path = request.path.split('?').next().unwrap_or("");
    let (status, kind, body) = match path {
        "/" | "/api/status" => {
            let info = async { net.info().await.ok() };
            let status = counters.snapshots.get(info).await;
            if path == "/" {
                (
                    "200 OK",
                    "text/html; charset=utf-8",
                    status.html(counters.served()),
                )
            } else {
                ("200 OK", "application/json", status.json(counters.served()))
            }
        }
        "/api/cpu" => ("200 OK", "application/json", cpu_json()),
        _ => match path.strip_prefix("/bytes/").map(str::parse::<u64>) {
            Some(Ok(len)) if len <= MAX_DOWNLOAD => {
                let head = http::head("200 OK", "application/octet-stream", len as usize);
                if request.head_only {
                    return stream.write_all_and_close(&head).await;
                }
                return send_pattern(stream, head, len).await;
            }
            Some(_) => (
                "400 Bad Request",
                "text/plain",
                format!("want /bytes/N with N at most {MAX_DOWNLOAD}\n"),
            ),
            None => ("404 Not Found", "text/plain", "no such page\n".into()),
        },
    };
    let mut bytes = http::head(status, kind, body.len());
    if !request.head_only {
        bytes.extend_from_slice(body.as_bytes());
    }
    stream.write_all_and_close(&bytes).await
}

/// The TSC and the part of it the CPU spent idle (halted): a benchmark's busy time is the
/// change of one less the change of the other (under `-icount`, in instructions).
fn cpu_json() -> String {
    // SAFETY: RDTSC only reads the counter (the kernel leaves CR4.TSD clear).
    let tsc = unsafe { core::arch::x86_64::_rdtsc() };
    let idle = keel_status::figure(keel_rt::abi::SysInfo::IdleTsc);
    format!("{{\"tsc\":{tsc},\"idle_tsc\":{idle}}}")
}

/// The download pattern, byte `i` being `i % 251`, made at compile time: a request pays
/// nothing to have it (making it per request cost a small page about 300,000 instructions).
static PATTERN: [u8; PATTERN_LEN] = {
    let mut pattern = [0; PATTERN_LEN];
    let mut i = 0;
    while i < PATTERN_LEN {
        pattern[i] = (i % 251) as u8;
        i += 1;
    }
    pattern
};

/// `head`, then `len` bytes of the download pattern, then close: the head goes with the
/// first piece of the pattern, the close with the last.
async fn send_pattern(stream: TcpStream, mut head: Vec<u8>, len: u64) -> Result<(), Error> {
    let first = len.min(PATTERN_LEN as u64) as usize;
    head.extend_from_slice(&PATTERN[..first]);
    let mut left = len - first as u64;
    if left == 0 {
        return stream.write_all_and_close(&head).await;
    }
    stream.write_all(&head).await?;
    while left > PATTERN_LEN as u64 {
        stream.write_all(&PATTERN).await?;
        left -= PATTERN_LEN as u64;
    }
    stream.write_all_and_close(&PATTERN[..left as usize]).await
}

/// Echo every datagram to its sender; the error that ends it.
async fn udp_echo(socket: UdpSocket) -> Error {
    let mut buf = [0; 2048];
    loop {
        let echoed = match socket.recv_from(&mut buf).await {
            Ok((n, from)) => socket.send_to(&buf[..n], from).await,
            Err(error) => Err(error),
        };
        match echoed {
            Err(error @ Error::Transport(_)) => return error,
            // A datagram the stack would not send (no route yet): dropped, as UDP may.
            Err(Error::Net(_)) | Ok(()) => {}
        }
    }
}

async fn echo_stream(stream: TcpStream, counters: &Rc<Counters>) {
    let _open = Open::new(counters);
    let mut buf = [0; 4096];
    loop {
        match executor::timeout(ECHO_IDLE, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            // End of file, a broken connection, or silence: done.
            _ => break,
        }
    }
    let _ = stream.shutdown().await;
}
