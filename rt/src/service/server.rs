//! The server end: accept connections on the wake port, serve each on its own task, run
//! each request as its own future so a slow call holds up nothing else.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::future::Future;
use keel_ring::alloc_free::Buffer;
use keel_ring::{Consumer, Pop, Producer, Push, RingError};

use super::channel::{Channel, RING_SIZE, next_bit};
use super::{Interface, label, status};
use crate::executor::{spawn, wake};
use crate::ipc::{Message, Port, Received};

/// What `#[service]` implements for a trait: decode a request, run the method, encode the
/// result. `None` means the request was malformed (unknown method, undecodable arguments).
pub trait Dispatch {
    fn dispatch(&self, method: u32, arguments: Vec<u8>) -> impl Future<Output = Option<Vec<u8>>>;
}

/// Serve `interface` with `service` for ever: accept every connection sent to this
/// process's wake port. Clients reach it through a send capability to that port.
pub async fn serve<D: Dispatch + 'static>(interface: Interface, service: D) -> ! {
    let service = Rc::new(service);
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
                let _ = reply.send(&file_given(badge, &message));
            }
            continue;
        }
        // A connection's badged send capability goes once its copy is on its way.
        let mut giver = None;
        let answer = match accept(interface, &message) {
            Ok((connection, bit, given)) => {
                // The client gets a copy of the channel's capability (ours stays ours) and
                // a send capability badged for this connection, to give capabilities on.
                let answer = Message::new(0, [0, bit as u64, 0, 0])
                    .with_caps(&[connection.channel.object, given.handle()]);
                giver = Some(given);
                spawn(serve_connection(connection, service.clone()));
                answer
            }
            Err(refusal) => {
                // Nothing keeps the capabilities of a refused request.
                for &cap in &message.caps {
                    let _ = crate::sys::ipc::cap_delete(cap);
                }
                match refusal {
                    Refusal::Mismatch(found) => Message::new(0, [1, found, 0, 0]),
                    Refusal::Malformed => Message::new(0, [2, 0, 0, 0]),
                }
            }
        };
        if let Some(reply) = reply {
            let _ = reply.send(&answer);
        }
        if let Some(giver) = giver {
            let _ = giver.delete();
        }
    }
}

struct Served {
    requests: Consumer<'static>,
    responses: Producer<'static>,
    /// Declared after the rings, so the mapping outlives them.
    channel: Channel,
    client: Port,
    client_bit: u32,
    bit: u32,
    /// The badge of the send capability the client gives capabilities on.
    badge: u64,
}

enum Refusal {
    Malformed,
    /// The server's interface hash.
    Mismatch(u64),
}

/// Check a connect request and make the connection's channel.
/// A capability a client gives for a later request: filed under a token for its
/// connection (known by the badge it came with).
fn file_given(badge: u64, message: &Message) -> Message {
    match message.caps.as_slice() {
        &[handle] if badge != 0 => Message::new(0, [0, super::caps::file(badge, handle), 0, 0]),
        caps => {
            for &cap in caps {
                let _ = crate::sys::ipc::cap_delete(cap);
            }
            Message::new(0, [keel_abi::Error::InvalidArgument as u64, 0, 0, 0])
        }
    }
}

/// Badges of connections: they tell a `GIVE` which connection it is for.
static NEXT_BADGE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

fn accept(interface: Interface, message: &Message) -> Result<(Served, u32, Port), Refusal> {
    let [hash, client_bit, ..] = message.words;
    if message.label != label::CONNECT || message.caps.len() != 1 {
        return Err(Refusal::Malformed);
    }
    if hash != interface.hash {
        return Err(Refusal::Mismatch(interface.hash));
    }
    let channel = Channel::create().map_err(|_| Refusal::Malformed)?;
    let badge = NEXT_BADGE.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    let giver = wake::port()
        .derive(
            keel_abi::cap::rights::SEND | keel_abi::cap::rights::GRANT,
            badge,
        )
        .map_err(|_| Refusal::Malformed)?;
    let (requests, responses) = channel.server_ends();
    let bit = next_bit();
    let served = Served {
        requests,
        responses,
        channel,
        client: Port::from_handle(message.caps[0]),
        client_bit: (client_bit % wake::CHANNEL_BITS as u64) as u32,
        bit,
        badge,
    };
    Ok((served, bit, giver))
}

/// Drain one connection's requests for ever, spawning one future per request.
async fn serve_connection<D: Dispatch + 'static>(connection: Served, service: Rc<D>) {
    let connection = Rc::new(connection);
    let mut bytes = alloc::vec![0u8; RING_SIZE / 2];
    loop {
        let mut out = Buffer::new(&mut bytes);
        match connection.requests.pop(&mut out) {
            Ok(Pop::Record { wake_producer }) => {
                if wake_producer {
                    connection.signal_client();
                }
                let record = out.as_slice().to_vec();
                spawn(answer(connection.clone(), service.clone(), record));
            }
            Ok(Pop::Empty) => match connection.requests.prepare_wait() {
                Ok(true) => wake::notification(connection.bit).await,
                Ok(false) => {}
                Err(_) => return,
            },
            // The client broke its ring: this connection ends, the others go on.
            Err(_) => return,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = crate::sys::ipc::cap_delete(self.client.handle());
        super::caps::forget(self.badge);
    }
}

impl Served {
    fn signal_client(&self) {
        // A client that is gone cannot be signalled; its connection simply goes quiet.
        let _ = self.client.notify(1 << self.client_bit);
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

/// Run one request and send its response.
async fn answer<D: Dispatch>(connection: Rc<Served>, service: Rc<D>, record: Vec<u8>) {
    if record.len() < 8 {
        let _ = connection
            .respond(&response(u32::MAX, status::MALFORMED, &[]))
            .await;
        return;
    }
    let id = u32::from_le_bytes([record[0], record[1], record[2], record[3]]);
    let method = u32::from_le_bytes([record[4], record[5], record[6], record[7]]);
    // Bulk arguments resolve against this connection's arena while the dispatcher decodes,
    // which it does before it first awaits, inside this poll.
    super::bulk::decoding_for(connection.channel.bulk_base());
    super::caps::decoding_for(connection.badge);
    let reply = match service.dispatch(method, record[8..].to_vec()).await {
        Some(result) => response(id, status::OK, &result),
        None => response(id, status::MALFORMED, &[]),
    };
    if connection.respond(&reply).await == Err(RingError::TooLarge) {
        // Dropping it would leave the caller waiting for ever: tell it instead.
        let _ = connection
            .respond(&response(id, status::TOO_LARGE, &[]))
            .await;
    }
}

fn response(id: u32, code: u32, result: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(8 + result.len());
    record.extend_from_slice(&id.to_le_bytes());
    record.extend_from_slice(&code.to_le_bytes());
    record.extend_from_slice(result);
    record
}
