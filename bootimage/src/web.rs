//! The host's side of the guest's web server: a free loopback port to forward, and a plain
//! HTTP/1.0 client (std's `TcpStream`) for `cargo boot`, which prints the URL once the page
//! answers, and for the tests that check what it serves.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// The port `cargo boot` forwards to the guest's web server unless `--http-port` says.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// A loopback port nothing listens on now (the kernel's pick for port 0).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The page's address on the host.
pub fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/")
}

/// An answer: status code, headers as they came, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Read one HTTP/1.0 answer: everything until the server closes.
pub fn read_response(stream: &mut TcpStream) -> io::Result<Response> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

/// Split raw bytes into status, headers and body.
pub fn parse_response(raw: &[u8]) -> io::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| invalid("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no status line"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

/// `GET path` from the guest behind `port`, within `timeout` for each step.
pub fn get(port: u16, path: &str, timeout: Duration) -> io::Result<Response> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: keel\r\n\r\n")?;
    read_response(&mut stream)
}

/// Ask for `/` every half second until it answers 200 or `patience` runs out (or `give_up`
/// says so: QEMU ended); whether it answered.
pub fn wait_for_page(port: u16, patience: Duration, give_up: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline && !give_up() {
        if get(port, "/", Duration::from_secs(5)).is_ok_and(|r| r.status == 200) {
            return true;
        }
        thread::sleep(Duration::from_millis(500));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_split_into_status_headers_and_body() {
        let raw = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nX: a:b\r\n\r\n<p>hi</p>";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("text/html"));
        assert_eq!(response.header("x"), Some("a:b"));
        assert_eq!(response.text(), "<p>hi</p>");
        assert!(parse_response(b"HTTP/1.0 200 OK\r\n").is_err());
    }

    #[test]
    fn a_free_port_is_not_zero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
