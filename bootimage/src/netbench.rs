//! `cargo boot bench net`: the host drives the guest's web server over QEMU's user network
//! and the guest's counters say what it cost. Under `-icount shift=0` the guest's TSC
//! counts instructions, and the kernel counts the TSC spent halted, so busy instructions
//! are the TSC's change less the idle time's (`/api/cpu` reads both).
//!
//! Copies per byte, by construction: a download's bytes are copied once by httpd into the
//! service channel (the request ring for writes up to 4 KiB, the bulk arena above: shared
//! memory, the kernel does not touch it), once by the service runtime out of the channel
//! into the network server's own buffer (the client may still write the channel), once by
//! the network server into the socket's send buffer, and once by smoltcp from there into a
//! transmit slot of the DMA pool, which the device reads. The kernel copies none.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::background;
use crate::qemu::{Accel, Nic};
use crate::web;
use crate::{Error, Result};

/// Requests of `GET /` in a row.
const REQUESTS: u64 = 200;
/// The plain page of the per-request measure.
const SMALL_PAGE: u64 = 2048;
/// The bulk download.
const DOWNLOAD: u64 = 64 << 20;
const PATIENCE: Duration = Duration::from_secs(120);

/// The guest's TSC and idle TSC, as `/api/cpu` gives them.
fn cpu(port: u16) -> Result<(u64, u64)> {
    let response =
        web::get(port, "/api/cpu", PATIENCE).map_err(|e| Error::new(format!("/api/cpu: {e}")))?;
    let json: serde_json::Value = serde_json::from_slice(&response.body)
        .map_err(|e| Error::new(format!("/api/cpu is not JSON: {e}")))?;
    match (json["tsc"].as_u64(), json["idle_tsc"].as_u64()) {
        (Some(tsc), Some(idle)) => Ok((tsc, idle)),
        _ => Err(Error::new(format!("/api/cpu says {json}"))),
    }
}

/// Busy TSC between two `cpu` readings.
fn busy(before: (u64, u64), after: (u64, u64)) -> u64 {
    (after.0 - before.0).saturating_sub(after.1 - before.1)
}

/// Download `len` bytes of `/bytes/len`, checking every byte.
fn download(port: u16, len: u64) -> Result<()> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let failed = |e: std::io::Error| Error::new(format!("the download: {e}"));
    let mut stream = TcpStream::connect_timeout(&address, PATIENCE).map_err(failed)?;
    stream.set_read_timeout(Some(PATIENCE)).map_err(failed)?;
    write!(stream, "GET /bytes/{len} HTTP/1.0\r\n\r\n").map_err(failed)?;
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).map_err(failed)?;
        head.push(byte[0]);
    }
    let mut buf = vec![0; 1 << 16];
    let mut at = 0u64;
    loop {
        let n = stream.read(&mut buf).map_err(failed)?;
        if n == 0 {
            break;
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            if b != ((at + i as u64) % 251) as u8 {
                return Err(Error::new(format!("byte {} is wrong", at + i as u64)));
            }
        }
        at += n as u64;
    }
    if at != len {
        return Err(Error::new(format!("{at} bytes of {len}")));
    }
    Ok(())
}

/// [`REQUESTS`] of `GET path` in a row, each answered 200: busy instructions (TSC cycles
/// without icount) per request, and how long they took.
fn requests(port: u16, path: &str) -> Result<(u64, Duration)> {
    let start = cpu(port)?;
    let clock = Instant::now();
    for _ in 0..REQUESTS {
        let page =
            web::get(port, path, PATIENCE).map_err(|e| Error::new(format!("GET {path}: {e}")))?;
        if page.status != 200 {
            return Err(Error::new(format!("GET {path} answered {}", page.status)));
        }
    }
    let took = clock.elapsed();
    // The interval holds one /api/cpu request too, counted in with the rest.
    Ok((busy(start, cpu(port)?) / (REQUESTS + 1), took))
}

/// Boot, measure, print; whether every request and byte came through.
pub fn run(accel: Accel, icount: bool) -> Result<bool> {
    let port = web::free_port().map_err(|e| Error::new(format!("no free port: {e}")))?;
    let guest = background::demo(
        accel,
        Nic::http(port),
        icount,
        Duration::from_secs(900),
        "netbench-disk",
    )?;
    if !web::wait_for_page(port, Duration::from_secs(300), || !guest.running()) {
        return Err(Error::new("the page never answered"));
    }
    let unit = if icount { "instructions" } else { "TSC cycles" };
    // A warm-up: the first requests build the server's caches and connections.
    for _ in 0..10 {
        web::get(port, "/", PATIENCE).map_err(|e| Error::new(format!("GET /: {e}")))?;
    }
    let page_len = web::get(port, "/", PATIENCE)
        .map_err(|e| Error::new(format!("GET /: {e}")))?
        .body
        .len();
    let (per_page, pages) = requests(port, "/")?;
    // The measure: a plain 2 KiB page, the network path without the status page's
    // gathering of the system's figures.
    let small = format!("/bytes/{SMALL_PAGE}");
    let (per_small, smalls) = requests(port, &small)?;
    let middle = cpu(port)?;
    let clock = Instant::now();
    download(port, DOWNLOAD)?;
    let bulk = clock.elapsed();
    let end = cpu(port)?;
    let mib = DOWNLOAD >> 20;
    let per_mib = busy(middle, end) / mib;
    println!(
        "bench net: GET / ({page_len} bytes, the status page), {REQUESTS} in a row: {per_page} busy {unit} per request, {:.0} requests/s",
        REQUESTS as f64 / pages.as_secs_f64()
    );
    println!(
        "bench net: GET {small} ({SMALL_PAGE} bytes), {REQUESTS} in a row: {per_small} busy {unit} per request, {:.0} requests/s",
        REQUESTS as f64 / smalls.as_secs_f64()
    );
    println!(
        "bench net: GET /bytes/{DOWNLOAD} ({mib} MiB): {per_mib} busy {unit} per MiB, {:.1} MB/s",
        DOWNLOAD as f64 / bulk.as_secs_f64() / 1e6
    );
    println!(
        "bench net: copies per byte sent: 4 in user space (httpd into the channel, the service runtime out of it, the network server into the socket, smoltcp into the DMA slot), 0 in the kernel"
    );
    Ok(true)
}
