//! Roles at the other end of a port: a sender, servers that answer, forward, never answer
//! or answer late, a caller, a receiver of a shared object, and a flood.

use alloc::format;
use core::ops::ControlFlow;
use core::time::Duration;

use keel_abi::Error;
use keel_abi::cap::rights;
use keel_abi::ipc::{MAX_PORT_CAPACITY, MessageInfo};
use keel_abi::prot;
use keel_guest_tests::{FLOOD_QUEUE_FULL, FLOOD_QUOTA_EXCEEDED, label};
use keel_rt::ipc::{Message, Port, Received, Reply};
use keel_rt::mem::Memory;
use keel_rt::{sys, thread, time};

use crate::{Failure, OrSetup, expect_eq, write_byte};

/// The port every role here starts with, as handle 1.
const FIRST: Port = Port::from_handle(1);
/// The second port some roles get, as handle 2.
const SECOND: Port = Port::from_handle(2);
/// How long a role waits for `ktest` to send what it expects.
const WAIT: Duration = Duration::from_secs(5);

pub fn send(arg: &str) -> Result<i32, Failure> {
    let word = arg
        .parse()
        .map_err(|_| Failure::check("`send` wants a number"))?;
    let message = Message::new(label::SENT, [word, 0, 0, 0]);
    FIRST.send(&message).or_setup("port_send")?;
    Ok(0)
}

/// The answer the servers give: the same label, every word plus one.
fn plus_one(message: &Message) -> Message {
    Message::new(
        message.label,
        message.words.map(|word| word.wrapping_add(1)),
    )
}

pub fn echo() -> Result<i32, Failure> {
    FIRST
        .serve(|request| ControlFlow::Continue(Some(plus_one(&request.message))))
        .or_setup("serving")?;
    Err(Failure::check("the server loop ended"))
}

pub fn signal_echo() -> Result<i32, Failure> {
    let mut received = FIRST.receive(None).or_setup("port_recv")?;
    loop {
        let Received::Notification(bits) = received else {
            return Err(Failure::check(
                "signal-echo got a message, not a notification",
            ));
        };
        received = FIRST
            .signal_receive(SECOND, bits.rotate_left(1), None)
            .or_setup("port_signal_recv")?;
    }
}

pub fn forward() -> Result<i32, Failure> {
    let mut failed = Ok(());
    FIRST
        .serve(|request| match SECOND.call(&request.message) {
            Ok(answer) => ControlFlow::Continue(Some(plus_one(&answer))),
            Err(error) => {
                failed = Err(error);
                ControlFlow::Break(())
            }
        })
        .or_setup("serving")?;
    failed.or_setup("calling the second port")?;
    Err(Failure::check("the server loop ended"))
}

/// Takes the call with the plain syscall, so that it stays the thread's pending call (not
/// a reply capability) when the process ends.
pub fn exit_mid_call() -> Result<i32, Failure> {
    let (is_call, _) = sys::ipc::port_recv(FIRST.handle(), u64::MAX).or_setup("port_recv")?;
    expect_eq("whether the message taken is a call", is_call, true)?;
    Ok(0)
}

/// Holds the call's reply capability, unanswered, until the process is killed.
pub fn hold_call() -> Result<i32, Failure> {
    let (_, _held) = take_call()?;
    loop {
        time::sleep(Duration::from_secs(1));
    }
}

pub fn deferred_reply() -> Result<i32, Failure> {
    let (first, first_reply) = take_call()?;
    let (second, second_reply) = take_call()?;
    second_reply
        .send(&plus_one(&second))
        .or_setup("answering the second call")?;
    let used = first_reply.handle();
    first_reply
        .send(&plus_one(&first))
        .or_setup("answering the first call")?;
    let again = sys::ipc::port_reply(used, MessageInfo::default(), [0; 4]);
    expect_eq(
        "answering with the used reply again",
        again,
        Err(Error::StaleHandle),
    )?;
    Ok(0)
}

/// The next message on the first port, which must be a call.
fn take_call() -> Result<(Message, Reply), Failure> {
    match FIRST.receive(None).or_setup("port_recv")? {
        Received::Message {
            message,
            reply: Some(reply),
            ..
        } => Ok((message, reply)),
        other => Err(Failure::check(format!("expected a call, got {other:?}"))),
    }
}

pub fn call() -> Result<i32, Failure> {
    // The caller is what the test is about, not the answer.
    let _ = FIRST.call(&Message::new(0, [1, 2, 3, 4]));
    Ok(0)
}

pub fn map_received(text: &str) -> Result<i32, Failure> {
    let message = match FIRST.receive(Some(WAIT)).or_setup("port_recv")? {
        Received::Message { message, .. } => message,
        other => return Err(Failure::check(format!("expected a message, got {other:?}"))),
    };
    expect_eq("the payload", message.payload.as_slice(), text.as_bytes())?;
    let [memory] = message.caps[..] else {
        let caps = &message.caps;
        return Err(Failure::check(format!(
            "expected one capability, got {caps:?}"
        )));
    };
    let mapping = Memory::from_handle(memory)
        .map(prot::READ | prot::WRITE)
        .or_setup("mapping the object received")?;
    if mapping.len() < text.len() {
        return Err(Failure::check("the object is smaller than the payload"));
    }
    for (i, &byte) in text.as_bytes().iter().enumerate() {
        // In bounds: checked above.
        write_byte(mapping.as_ptr().wrapping_add(i), byte);
    }
    Ok(0)
}

pub fn flood() -> Result<i32, Failure> {
    let flood = Message::new(0, [0; 4]);
    for sent in 0.. {
        match FIRST.send(&flood) {
            Ok(()) if sent <= MAX_PORT_CAPACITY => {}
            Ok(()) => return Err(Failure::check("the queue took more than any port holds")),
            Err(Error::QueueFull) => break,
            Err(error) => return Err(Failure::Setup("flooding the port", error)),
        }
    }
    SECOND.notify(FLOOD_QUEUE_FULL).or_setup("reporting")?;
    // A handle's slot index has 16 bits: no space holds more.
    for derived in 0..=1 << 16 {
        match FIRST.derive(rights::SEND, 0) {
            Ok(_) if derived < 1 << 16 => {}
            Ok(_) => return Err(Failure::check("no quota on capability slots")),
            Err(Error::QuotaExceeded) => break,
            Err(error) => return Err(Failure::Setup("deriving", error)),
        }
    }
    SECOND.notify(FLOOD_QUOTA_EXCEEDED).or_setup("reporting")?;
    // Keep pressing on both limits while the other processes work.
    loop {
        let _ = FIRST.send(&flood);
        let _ = FIRST.derive(rights::SEND, 0);
        thread::yield_now();
    }
}
