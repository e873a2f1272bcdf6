//! Just enough HTTP/1.x: read a request's head within a size and time limit, route it, and
//! answer with `Connection: close`. Anything it cannot read is a 400, never a panic.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use keel_net::TcpStream;
use keel_rt::executor;

/// The most bytes a request's head may take.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its whole head (a slowloris client is cut off then).
pub const HEAD_TIME: Duration = Duration::from_secs(10);

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub head_only: bool,
    pub path: String,
}

/// Why no request could be read.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The client closed, or the connection broke, before a whole head came.
    Gone,
    /// Not HTTP as we know it: answer 400 with this reason.
    Malformed(&'static str),
    /// Not GET or HEAD: 405.
    Method,
    /// Too long or too slow: 431 or 408.
    TooLarge,
    TooSlow,
}

/// Read one request head from `stream`.
pub async fn read_request(stream: &TcpStream) -> Result<Request, Refusal> {
    let mut head: Vec<u8> = Vec::new();
    let reading = async {
        loop {
            if let Some(end) = find_end(&head) {
                head.truncate(end);
                return Ok(());
            }
            if head.len() >= MAX_HEAD {
                return Err(Refusal::TooLarge);
            }
            // The bytes as the server sent them: no buffer of our own in the future.
            match stream.recv(MAX_HEAD - head.len()).await {
                Ok(bytes) if bytes.is_empty() => return Err(Refusal::Gone),
                Err(_) => return Err(Refusal::Gone),
                Ok(bytes) if head.is_empty() => head = bytes,
                Ok(bytes) => head.extend_from_slice(&bytes),
            }
        }
    };
    match executor::timeout(HEAD_TIME, reading).await {
        Ok(Ok(())) => parse(&head),
        Ok(Err(refusal)) => Err(refusal),
        Err(_) => Err(Refusal::TooSlow),
    }
}

/// Where the head ends (the blank line), if it has.
fn find_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

/// The request line of a head: `METHOD PATH HTTP/1.x`.
pub fn parse(head: &[u8]) -> Result<Request, Refusal> {
    let head = core::str::from_utf8(head).map_err(|_| Refusal::Malformed("not UTF-8"))?;
    let line = head.split("\r\n").next().unwrap_or("");
    let mut words = line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(Refusal::Malformed(
            "the request line is not METHOD PATH VERSION",
        ));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Refusal::Malformed("not HTTP/1.x"));
    }
    if !path.starts_with('/') {
        return Err(Refusal::Malformed("the path does not start with /"));
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(Refusal::Method),
    };
    Ok(Request {
        head_only,
        path: path.into(),
    })
}

/// Body bytes an answer's head has room for after it: a whole small answer, or a
/// download's first piece.
const BODY_ROOM: usize = 32 * 1024;

/// A whole answer's head, in a buffer with room for the body that follows it (up to
/// [`BODY_ROOM`]). Built from its pieces, not with `format!`: the formatting machinery
/// cost a request about 700 instructions, and growing the buffer for the body a copy.
pub fn head(status: &str, content_type: &str, length: usize) -> Vec<u8> {
    const SERVER: &[u8] = b"\r\nServer: keel-httpd\r\nContent-Type: ";
    const LENGTH: &[u8] = b"\r\nContent-Length: ";
    const END: &[u8] = b"\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
    let mut digits = [0; 20];
    let mut at = digits.len();
    let mut left = length;
    loop {
        at -= 1;
        digits[at] = b'0' + (left % 10) as u8;
        left /= 10;
        if left == 0 {
            break;
        }
    }
    let pieces: [&[u8]; 7] = [
        b"HTTP/1.1 ",
        status.as_bytes(),
        SERVER,
        content_type.as_bytes(),
        LENGTH,
        &digits[at..],
        END,
    ];
    let head_len: usize = pieces.iter().map(|piece| piece.len()).sum();
    let mut head = Vec::with_capacity(head_len + length.min(BODY_ROOM));
    for piece in pieces {
        head.extend_from_slice(piece);
    }
    head
}

/// The answer to a refusal, if the client is still there to read it.
pub fn refusal_answer(refusal: &Refusal) -> Option<Vec<u8>> {
    let (status, why) = match refusal {
        Refusal::Gone => return None,
        Refusal::Malformed(why) => ("400 Bad Request", *why),
        Refusal::Method => ("405 Method Not Allowed", "only GET and HEAD"),
        Refusal::TooLarge => (
            "431 Request Header Fields Too Large",
            "the head is over 8 KiB",
        ),
        Refusal::TooSlow => ("408 Request Timeout", "the head took over 10 s"),
    };
    let mut answer = head(status, "text/plain", why.len() + 1);
    answer.extend_from_slice(why.as_bytes());
    answer.push(b'\n');
    Some(answer)
}
