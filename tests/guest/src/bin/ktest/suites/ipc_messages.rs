//! IPC messages: they carry their words, payload and capabilities; queues push back when
//! full and lose nothing; receives time out; notifications merge; calls are answered, late
//! or never (then the caller hears `PeerGone`, never hangs); the fast path carries round
//! trips between processes; and one process at its limits does not stop the others.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use keel_abi::Error;
use keel_abi::cap::{Handle, rights};
use keel_abi::ipc::{IpcStats, MAX_PAYLOAD, MAX_PORT_CAPACITY, MESSAGE_CAPS, MessageInfo};
use keel_abi::layout::PAGE_SIZE;
use keel_guest_tests::{FLOOD_QUEUE_FULL, FLOOD_QUOTA_EXCEEDED, Role};
use keel_rt::cap;
use keel_rt::ipc::{self, Message, Port, Received};
use keel_rt::mem::Memory;
use keel_rt::{sys, time};

use crate::check::{Context, all, background, ensure, expect_at_least, expect_eq, wait_until};
use crate::child::{self, expect_success, kill_and_reap};
use crate::receive::{self, WAIT, poll, waiting};
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(ipc_messages:
    a_message_arrives_with_its_label_and_words,
    payload_and_capabilities_travel_to_another_process,
    received_capabilities_name_the_same_objects,
    capabilities_are_dropped_when_the_receivers_space_is_full,
    a_full_queue_refuses_the_next_send_and_loses_nothing,
    port_capacity_must_be_between_1_and_64,
    oversized_messages_and_missing_buffers_are_refused,
    a_receive_times_out_after_about_the_requested_time,
    polling_an_empty_port_would_block_at_once,
    a_message_sent_while_waiting_ends_the_wait,
    notifications_or_together_and_never_fill_up,
    a_notification_wakes_a_waiting_receiver,
    a_call_gets_the_servers_answer,
    a_server_exiting_mid_call_gives_the_caller_peer_gone,
    a_server_killed_mid_call_gives_the_caller_peer_gone,
    answering_a_caller_that_is_gone_is_peer_gone,
    a_saved_reply_answers_the_call_later_and_only_once,
    a_malformed_answer_leaves_the_call_to_answer,
    a_port_without_receivers_is_peer_gone,
    the_fast_path_carries_a_hundred_round_trips,
    signal_and_wait_passes_bits_both_ways_in_one_step,
    signal_and_wait_checks_both_capabilities_before_sending,
    port_and_system_counters_count_messages_calls_and_replies,
    a_flooding_process_hits_its_limits_while_others_keep_working,
    a_server_can_call_another_while_serving_a_call,
);

fn new_port(capacity: usize) -> Result<Port, String> {
    Port::create(capacity).context("port_create")
}

/// What the `echo` and `forward` roles answer a call with: every word plus one.
fn plus(words: [u64; 4], n: u64) -> [u64; 4] {
    words.map(|word| word + n)
}

fn a_message_arrives_with_its_label_and_words() -> Result<(), String> {
    let port = new_port(1)?;
    port.send(&Message::new(0xabc, [1, u64::MAX, 3, 1 << 63]))
        .context("port_send")?;
    let got = waiting(port, "the message")?;
    all([
        expect_eq("the label", got.message.label, 0xabc),
        expect_eq("the words", got.message.words, [1, u64::MAX, 3, 1 << 63]),
        expect_eq("the badge (none)", got.badge, 0),
        expect_eq("whether it is a call", got.reply.is_some(), false),
        expect_eq("the payload (none)", got.message.payload.len(), 0),
    ])
}

/// ktest sends kchild a payload and a memory object in one message; kchild maps the
/// object and copies the payload into it, where ktest reads it.
fn payload_and_capabilities_travel_to_another_process() -> Result<(), String> {
    const TEXT: &str = "a payload that crossed over, with a page to put it in";
    let port = new_port(1)?;
    let memory = Memory::create(PAGE_SIZE).context("mem_create")?;
    let mapping = memory
        .map(keel_abi::prot::READ)
        .context("mapping the object")?;
    let pid = child::spawn_with_caps(Role::MapReceived, TEXT, &[port.handle()])?;
    let message = Message::new(1, [0; 4])
        .with_payload(TEXT.as_bytes())
        .with_caps(&[memory.handle()]);
    port.send(&message).context("port_send")?;
    expect_success(pid, Role::MapReceived)?;
    let copied: Vec<u8> = (0..TEXT.len())
        // SAFETY: inside the mapping, which lives as long as `memory`, not deleted here;
        // volatile, because another process wrote it.
        .map(|i| unsafe { mapping.as_ptr().add(i).read_volatile() })
        .collect();
    expect_eq("the object's contents", copied.as_slice(), TEXT.as_bytes())
}

fn received_capabilities_name_the_same_objects() -> Result<(), String> {
    let port = new_port(2)?;
    let other = new_port(1)?;
    let memory = Memory::create(PAGE_SIZE).context("mem_create")?;
    let sent = [other.handle(), memory.handle()];
    port.send(&Message::new(1, [0; 4]).with_caps(&sent))
        .context("port_send")?;
    let got = waiting(port, "the message")?;
    expect_eq("capabilities received", got.message.caps.len(), 2)?;
    let info = |handle: Handle| cap::info(handle).context("cap_info");
    let through_copy = Port::from_handle(got.message.caps[0]).send(&Message::new(9, [0; 4]));
    all(sent
        .iter()
        .zip(&got.message.caps)
        .map(|(&original, &copy)| {
            let (original, copy) = (info(original)?, info(copy)?);
            expect_eq(
                "a received copy's (kind, rights, object)",
                (copy.kind, copy.rights, copy.object),
                (original.kind, original.rights, original.object),
            )
        })
        .chain([
            expect_eq("sending through the received port", through_copy, Ok(())),
            expect_eq(
                "the label arriving through it",
                waiting(other, "the message through the copy").map(|got| got.message.label),
                Ok(9),
            ),
        ]))
}

fn capabilities_are_dropped_when_the_receivers_space_is_full() -> Result<(), String> {
    let port = new_port(1)?;
    let passed = new_port(1)?;
    port.send(&Message::new(1, [0; 4]).with_caps(&[passed.handle()]))
        .context("port_send")?;
    let slots = || {
        cap::resources()
            .map(|r| r.cap_slots_used)
            .context("resources")
    };
    let before = slots()?;
    let mut fillers = Vec::new();
    let full = loop {
        match passed.derive(rights::SEND, 0) {
            Ok(filler) => fillers.push(filler),
            Err(error) => break error,
        }
    };
    let got = waiting(port, "the message");
    for filler in &fillers {
        filler.delete().context("cap_delete")?;
    }
    let got = got?;
    all([
        expect_eq("deriving in a full space", full, Error::QuotaExceeded),
        expect_eq("CAPS_DROPPED on the message", got.info.caps_dropped(), true),
        expect_eq("capabilities received", got.message.caps.len(), 0),
        expect_eq(
            "slots used after freeing the fillers (vs before)",
            slots()?,
            before,
        ),
    ])
}

fn a_full_queue_refuses_the_next_send_and_loses_nothing() -> Result<(), String> {
    all([1, 4, MAX_PORT_CAPACITY].map(|capacity| {
        let port = new_port(capacity)?;
        for i in 0..capacity as u64 {
            port.send(&Message::new(1, [i, 0, 0, 0]))
                .context(&format!("send {i} of {capacity}"))?;
        }
        let refused = port.send(&Message::new(1, [u64::MAX; 4]));
        let stats = port.stats().context("ipc_stats")?;
        let words: Vec<u64> = (0..capacity)
            .map(|_| waiting(port, "a queued message").map(|got| got.message.words[0]))
            .collect::<Result<_, _>>()?;
        let expected: Vec<u64> = (0..capacity as u64).collect();
        all([
            expect_eq(
                &format!("send {} to a port of capacity {capacity}", capacity + 1),
                refused,
                Err(Error::QueueFull),
            ),
            expect_eq("the port's queue_full count", stats.queue_full, 1),
            expect_eq("word 0 of the messages received, in order", words, expected),
            expect_eq("a poll after them", poll(port), Err(Error::WouldBlock)),
        ])
    }))
}

fn port_capacity_must_be_between_1_and_64() -> Result<(), String> {
    let invalid = Err(Error::InvalidArgument);
    all([
        expect_eq("port_create(0)", Port::create(0).map(drop), invalid),
        expect_eq(
            "port_create(65)",
            Port::create(MAX_PORT_CAPACITY + 1).map(drop),
            invalid,
        ),
        expect_eq("port_create(1)", Port::create(1).map(drop), Ok(())),
        expect_eq(
            "port_create(64)",
            Port::create(MAX_PORT_CAPACITY).map(drop),
            Ok(()),
        ),
    ])
}

fn oversized_messages_and_missing_buffers_are_refused() -> Result<(), String> {
    let port = new_port(1)?;
    let send = move |info: MessageInfo| sys::ipc::port_send(port.handle(), info, [0; 4]);
    // A thread that never received has no IPC buffer for a payload to come from.
    let without_buffer = background("a send from a thread without an IPC buffer", move || {
        send(MessageInfo::new(1, 8, 0))
    })?
    .wait(WAIT)?;
    all([
        expect_eq(
            "a payload longer than MAX_PAYLOAD",
            send(MessageInfo::new(1, MAX_PAYLOAD + 1, 0)),
            Err(Error::InvalidArgument),
        ),
        expect_eq(
            "more capabilities than MESSAGE_CAPS",
            send(MessageInfo::new(1, 0, MESSAGE_CAPS + 1)),
            Err(Error::InvalidArgument),
        ),
        expect_eq(
            "a payload without an IPC buffer",
            without_buffer,
            Err(Error::BadAddress),
        ),
        expect_eq(
            "a poll after the refused sends",
            poll(port),
            Err(Error::WouldBlock),
        ),
    ])
}

fn a_receive_times_out_after_about_the_requested_time() -> Result<(), String> {
    const TIMEOUT: Duration = Duration::from_millis(50);
    /// Slack for a loaded emulator: the bound is on the kernel oversleeping grossly.
    const SLACK: Duration = Duration::from_millis(200);
    let port = new_port(1)?;
    let start = time::ticks();
    let received = port.receive(Some(TIMEOUT)).map(drop);
    let elapsed = time::ticks() - start;
    let (least, most) = (time::ticks_in(TIMEOUT), time::ticks_in(TIMEOUT + SLACK));
    all([
        expect_eq(
            "a receive of 50 ms on an empty port",
            received,
            Err(Error::TimedOut),
        ),
        ensure((least..=most).contains(&elapsed), || {
            format!("the 50 ms receive took {elapsed} ticks; expected {least}..={most}")
        }),
    ])
}

fn polling_an_empty_port_would_block_at_once() -> Result<(), String> {
    let port = new_port(1)?;
    let start = time::ticks();
    let polled = poll(port);
    let elapsed = time::ticks() - start;
    all([
        expect_eq("a poll of an empty port", polled, Err(Error::WouldBlock)),
        ensure(elapsed <= time::ticks_in(Duration::from_millis(20)), || {
            format!("the poll took {elapsed} ticks")
        }),
    ])
}

fn a_message_sent_while_waiting_ends_the_wait() -> Result<(), String> {
    let port = new_port(1)?;
    let sender = background("the sender", move || {
        time::sleep(Duration::from_millis(20));
        port.send(&Message::new(5, [0; 4]))
    })?;
    let start = time::ticks();
    let got = receive::message(port, "the message sent while waiting")?;
    let elapsed = time::ticks() - start;
    all([
        expect_eq("the label", got.message.label, 5),
        expect_eq("the send", sender.wait(WAIT)?, Ok(())),
        ensure(elapsed < time::ticks_in(Duration::from_secs(1)), || {
            format!("the receive took {elapsed} ticks for a message sent after 20 ms")
        }),
    ])
}

/// A port of capacity 1 holds one message; a hundred notifications still go in (never
/// `QueueFull`), merge into one word, and come first.
fn notifications_or_together_and_never_fill_up() -> Result<(), String> {
    let port = new_port(1)?;
    port.send(&Message::new(1, [0; 4])).context("port_send")?;
    let notified: Result<(), Error> = (0..100).try_for_each(|i| port.notify(1 << (i % 8)));
    let bits = receive::notification(port, "the notification")?;
    let message = waiting(port, "the queued message")?;
    all([
        expect_eq("a hundred notifies to a full port", notified, Ok(())),
        expect_eq("the notification bits", bits, 0xff),
        expect_eq("the queued message after it", message.message.label, 1),
        expect_eq("a poll after both", poll(port), Err(Error::WouldBlock)),
    ])
}

fn a_notification_wakes_a_waiting_receiver() -> Result<(), String> {
    let port = new_port(1)?;
    let notifier = background("the notifier", move || {
        time::sleep(Duration::from_millis(20));
        port.notify(0x50)
    })?;
    let bits = receive::notification(port, "the notification")?;
    all([
        expect_eq("the bits", bits, 0x50),
        expect_eq("the notify", notifier.wait(WAIT)?, Ok(())),
    ])
}

fn a_call_gets_the_servers_answer() -> Result<(), String> {
    let port = new_port(1)?;
    let server = child::spawn_with_caps(Role::Echo, "", &[port.handle()])?;
    let answers: Vec<_> = (0..3)
        .map(|i| port.call(&Message::new(7, [i, 10, 20, 30])))
        .collect();
    kill_and_reap(server)?;
    all(answers.into_iter().zip(0..).map(|(answer, i)| {
        expect_eq(
            &format!("the answer to call {i}"),
            answer,
            Ok(Message::new(7, plus([i, 10, 20, 30], 1))),
        )
    }))
}

/// kchild takes the call as its thread's pending call and exits.
fn a_server_exiting_mid_call_gives_the_caller_peer_gone() -> Result<(), String> {
    let port = new_port(1)?;
    let server = child::spawn_with_caps(Role::ExitMidCall, "", &[port.handle()])?;
    let answer = background("the call", move || port.call(&Message::new(1, [0; 4])))?;
    expect_success(server, Role::ExitMidCall)?;
    expect_eq(
        "the call's result",
        answer.wait(WAIT)?,
        Err(Error::PeerGone),
    )
}

/// kchild holds the call's reply capability until it is killed.
fn a_server_killed_mid_call_gives_the_caller_peer_gone() -> Result<(), String> {
    let port = new_port(1)?;
    let server = child::spawn_with_caps(Role::HoldCall, "", &[port.handle()])?;
    let answer = background("the call", move || port.call(&Message::new(1, [0; 4])))?;
    wait_until("the server takes the call", || taken(port))?;
    kill_and_reap(server)?;
    expect_eq(
        "the call's result",
        answer.wait(WAIT)?,
        Err(Error::PeerGone),
    )
}

/// Whether a message on `port` has been received.
fn taken(port: Port) -> Result<bool, String> {
    Ok(port.stats().context("ipc_stats")?.received > 0)
}

fn answering_a_caller_that_is_gone_is_peer_gone() -> Result<(), String> {
    let port = new_port(1)?;
    let caller = child::spawn_with_caps(Role::Call, "", &[port.handle()])?;
    let call = receive::message(port, "kchild call's call")?;
    kill_and_reap(caller)?;
    let reply = call.reply.context("the call's reply")?;
    expect_eq(
        "answering the killed caller",
        reply.send(&Message::default()),
        Err(Error::PeerGone),
    )
}

/// kchild takes two calls, answers the second, then the first with its saved reply.
fn a_saved_reply_answers_the_call_later_and_only_once() -> Result<(), String> {
    let port = new_port(2)?;
    let server = child::spawn_with_caps(Role::DeferredReply, "", &[port.handle()])?;
    let first = background("the first call", move || {
        port.call(&Message::new(1, [100, 0, 0, 0]))
    })?;
    // The second call only once the server holds the first.
    wait_until("the server takes the first call", || taken(port))?;
    let second = port.call(&Message::new(2, [200, 0, 0, 0]));
    all([
        expect_eq(
            "the answer to the second call",
            second,
            Ok(Message::new(2, [201, 1, 1, 1])),
        ),
        expect_eq(
            "the answer to the first call",
            first.wait(WAIT)?,
            Ok(Message::new(1, [101, 1, 1, 1])),
        ),
        expect_success(server, Role::DeferredReply),
    ])
}

/// A reply-and-receive whose answer is refused (a payload longer than any) answers nothing
/// and receives nothing: the call is still this thread's to answer, and a good answer then
/// reaches the caller.
fn a_malformed_answer_leaves_the_call_to_answer() -> Result<(), String> {
    let port = new_port(1)?;
    let caller = background("the call", move || {
        port.call(&Message::new(1, [7, 0, 0, 0]))
            .map(|m| m.words[0])
    })?;
    let (is_call, _) =
        sys::ipc::port_recv(port.handle(), WAIT.as_nanos() as u64).context("receiving the call")?;
    let too_long = MessageInfo::new(0, MAX_PAYLOAD + 1, 0);
    let refused = sys::ipc::port_reply_recv(port.handle(), too_long, [0; 4]).map(drop);
    let saved = sys::ipc::reply_save().context("saving the call's reply")?;
    let answered = sys::ipc::port_reply(saved, MessageInfo::default(), [8, 0, 0, 0]);
    all([
        expect_eq("whether it is a call", is_call, true),
        expect_eq(
            "a reply-and-receive with an oversized payload",
            refused,
            Err(Error::InvalidArgument),
        ),
        expect_eq("the good answer", answered, Ok(())),
        expect_eq("what the caller got", caller.wait(WAIT)?, Ok(8)),
    ])
}

/// Once the last capability with RECEIVE is gone (here: with the child that held it),
/// sending, calling and notifying all fail at once.
fn a_port_without_receivers_is_peer_gone() -> Result<(), String> {
    let port = new_port(1)?;
    let send_only = port.derive(rights::SEND, 0).context("cap_derive")?;
    let receiver = child::spawn_with_caps(Role::Exit, "0", &[port.handle()])?;
    port.delete().context("cap_delete")?;
    expect_success(receiver, Role::Exit)?;
    let gone = Err(Error::PeerGone);
    all([
        expect_eq("port_send", send_only.send(&Message::default()), gone),
        expect_eq(
            "port_call",
            send_only.call(&Message::default()).map(drop),
            gone,
        ),
        expect_eq("port_notify", send_only.notify(1), gone),
    ])
}

/// kchild echo serves a port; ktest calls it a hundred times. The server waits in receive
/// before each call and ktest waits for the answer before each reply, and both are plain
/// and of equal priority: so each round trip is two fast-path hits (the call handed to
/// the waiting server, the reply-and-receive handed back to the waiting caller). One
/// warm-up call first makes sure the server already waits when counting starts, so the
/// bound is the full 2 * 100 = 200. The server runs on ktest's core: the fast path
/// switches only between threads of one core. Booted with `fastpath=off`, the same calls
/// must give the same answers with no hit at all, every one a miss.
/// kchild ROLE at ktest's priority on its core, with copies of `caps`.
fn spawn_beside(role: Role, caps: &[Handle]) -> Result<keel_rt::process::Pid, String> {
    child::spawn_beside(role, "", keel_rt::process::current_priority(), caps)
}

fn the_fast_path_carries_a_hundred_round_trips() -> Result<(), String> {
    const ROUND_TRIPS: u64 = 100;
    let port = new_port(1)?;
    let server = spawn_beside(Role::Echo, &[port.handle()])?;
    let warm_up = port.call(&Message::new(1, [0; 4]));
    let (port_before, system_before) = (port.stats(), ipc::system_stats());
    let answers: Result<Vec<Message>, Error> = (0..ROUND_TRIPS)
        .map(|i| port.call(&Message::new(1, [i, 0, 0, 0])))
        .collect();
    let (port_after, system_after) = (port.stats(), ipc::system_stats());
    kill_and_reap(server)?;
    expect_eq("the warm-up call", warm_up.map(|m| m.words[0]), Ok(1))?;
    let answers = answers.context("the calls")?;
    let rise = |before: &Result<IpcStats, Error>, after: &Result<IpcStats, Error>| {
        let (before, after) = (
            (*before).context("ipc_stats")?,
            (*after).context("ipc_stats")?,
        );
        Ok::<_, String>((
            after.fast_path_hits - before.fast_path_hits,
            after.fast_path_misses - before.fast_path_misses,
        ))
    };
    let (port_hits, port_misses) = rise(&port_before, &port_after)?;
    let (system_hits, _) = rise(&system_before, &system_after)?;
    if crate::GENERAL_PATH.load(core::sync::atomic::Ordering::Relaxed) {
        return all([
            each_answer_is_its_calls_word_plus_one(&answers),
            expect_eq(
                "the port's fast-path hits with the fast path off",
                port_hits,
                0,
            ),
            expect_eq(
                "the system's fast-path hits with the fast path off",
                system_hits,
                0,
            ),
            expect_at_least(
                "the rise in the port's fast-path misses",
                port_misses,
                2 * ROUND_TRIPS,
            ),
        ]);
    }
    all([
        each_answer_is_its_calls_word_plus_one(&answers),
        expect_at_least(
            "the rise in the port's fast-path hits over the round trips",
            port_hits,
            2 * ROUND_TRIPS,
        ),
        expect_at_least(
            "the rise in the system's fast-path hits (vs the port's)",
            system_hits,
            port_hits,
        ),
    ])
}

/// ktest and kchild signal-echo pass notification bits back and forth with
/// `port_signal_recv`, each waiting on its own port in the same step: a hundred round
/// trips, each answer the bits rotated. Both wait without a timeout at equal priority, so
/// every signal finds the other waiting and is handed straight to it (two fast-path hits a
/// round trip; the child runs on ktest's core, as the fast path needs), unless the kernel
/// runs with `fastpath=off` (then none).
fn signal_and_wait_passes_bits_both_ways_in_one_step() -> Result<(), String> {
    const ROUND_TRIPS: u64 = 100;
    let (mine, theirs) = (new_port(1)?, new_port(1)?);
    let echo = spawn_beside(Role::SignalEcho, &[theirs.handle(), mine.handle()])?;
    // The first answer shows the child waits on its port when counting starts.
    let warm_up = mine.signal_receive(theirs, 1, Some(WAIT));
    let before = mine.stats();
    let mut answers = Vec::new();
    for i in 0..ROUND_TRIPS {
        let bits = 1u64 << (i % 64);
        answers.push((bits, mine.signal_receive(theirs, bits, Some(WAIT))));
    }
    let after = mine.stats();
    kill_and_reap(echo)?;
    expect_eq(
        "the warm-up answer",
        warm_up.map(|r| matches!(r, Received::Notification(2))),
        Ok(true),
    )?;
    for (bits, answer) in answers {
        let answer = answer.context("port_signal_recv")?;
        ensure(
            matches!(answer, Received::Notification(b) if b == bits.rotate_left(1)),
            || format!("signalled {bits:#x}, answered {answer:?}"),
        )?;
    }
    let (before, after) = (before.context("ipc_stats")?, after.context("ipc_stats")?);
    let hits = after.fast_path_hits - before.fast_path_hits;
    let notifications = after.notifications - before.notifications;
    if crate::GENERAL_PATH.load(core::sync::atomic::Ordering::Relaxed) {
        return all([
            expect_eq("fast-path hits with the fast path off", hits, 0),
            expect_eq("notifications to ktest's port", notifications, ROUND_TRIPS),
        ]);
    }
    all([
        expect_eq(
            "fast-path hits on ktest's port (its answers)",
            hits,
            ROUND_TRIPS,
        ),
        expect_eq("notifications to ktest's port", notifications, ROUND_TRIPS),
    ])
}

/// A signal-and-wait whose port to wait on lacks RECEIVE, or whose port to signal lacks
/// SEND, is refused before anything is sent: the port to signal stays empty.
fn signal_and_wait_checks_both_capabilities_before_sending() -> Result<(), String> {
    let (signal, wait) = (new_port(1)?, new_port(1)?);
    let wait_without_receive = Port::from_handle(
        cap::derive(wait.handle(), rights::SEND, 0).context("cap_derive without RECEIVE")?,
    );
    let signal_without_send = Port::from_handle(
        cap::derive(signal.handle(), rights::RECEIVE, 0).context("cap_derive without SEND")?,
    );
    let no_receive = wait_without_receive
        .signal_receive(signal, 1, Some(WAIT))
        .map(drop);
    let no_send = wait
        .signal_receive(signal_without_send, 1, Some(WAIT))
        .map(drop);
    let left = signal.receive(Some(Duration::ZERO)).map(drop);
    all([
        expect_eq(
            "waiting without RECEIVE",
            no_receive,
            Err(Error::MissingRight),
        ),
        expect_eq("signalling without SEND", no_send, Err(Error::MissingRight)),
        expect_eq(
            "what reached the port to signal",
            left,
            Err(Error::WouldBlock),
        ),
    ])
}

/// Five messages sent and received, three calls answered: each counter of the port, and
/// at least as much of the system's, must show it.
fn port_and_system_counters_count_messages_calls_and_replies() -> Result<(), String> {
    let port = new_port(8)?;
    let system_before = ipc::system_stats().context("ipc_stats(0)")?;
    for i in 0..5 {
        port.send(&Message::new(1, [i, 0, 0, 0]))
            .context("port_send")?;
        waiting(port, "a message")?;
    }
    let server = child::spawn_with_caps(Role::Echo, "", &[port.handle()])?;
    let answered = (0..3).try_for_each(|_| port.call(&Message::default()).map(drop));
    let (stats, system) = (port.stats(), ipc::system_stats());
    kill_and_reap(server)?;
    answered.context("the calls")?;
    let (stats, system) = (stats.context("ipc_stats")?, system.context("ipc_stats(0)")?);
    let counters = |s: &IpcStats| (s.sent, s.received, s.calls, s.replies);
    let risen = [
        system.sent - system_before.sent,
        system.received - system_before.received,
        system.calls - system_before.calls,
        system.replies - system_before.replies,
    ];
    all([
        expect_eq(
            "the port's (sent, received, calls, replies)",
            counters(&stats),
            (8, 8, 3, 3),
        ),
        ensure(
            risen
                .iter()
                .zip([8, 8, 3, 3])
                .all(|(&rise, least)| rise >= least),
            || {
                format!(
                    "the system's (sent, received, calls, replies) rose by {risen:?}; \
                     expected at least [8, 8, 3, 3]"
                )
            },
        ),
    ])
}

/// kchild flood fills a port's queue and its own capability space, then keeps pressing on
/// both; meanwhile ktest's calls to kchild echo all succeed, and ktest can still derive.
fn a_flooding_process_hits_its_limits_while_others_keep_working() -> Result<(), String> {
    const CALLS: u64 = 50;
    let flooded = new_port(MAX_PORT_CAPACITY)?;
    let reports = new_port(1)?;
    let service = new_port(1)?;
    let server = child::spawn_with_caps(Role::Echo, "", &[service.handle()])?;
    let flooder = child::spawn_with_caps(
        Role::Flood,
        "",
        &[
            flooded
                .derive(rights::SEND | rights::GRANT, 0)
                .context("cap_derive")?
                .handle(),
            reports.handle(),
        ],
    )?;
    let mut reported = 0;
    while reported != FLOOD_QUEUE_FULL | FLOOD_QUOTA_EXCEEDED {
        reported |= receive::notification(reports, "the flooder's report")?;
    }
    let answers: Result<Vec<Message>, Error> = (0..CALLS)
        .map(|i| service.call(&Message::new(1, [i, 0, 0, 0])))
        .collect();
    let derived = flooded.derive(rights::SEND, 0).map(drop);
    let stats = flooded.stats().context("ipc_stats")?;
    kill_and_reap(flooder)?;
    kill_and_reap(server)?;
    let answers = answers.context("calls while the flood went on")?;
    all([
        each_answer_is_its_calls_word_plus_one(&answers),
        expect_eq("ktest deriving during the flood", derived, Ok(())),
        expect_eq(
            "messages the flooded port holds",
            stats.sent,
            MAX_PORT_CAPACITY as u64,
        ),
        ensure(stats.queue_full > 0, || {
            String::from("the flooded port counted no QueueFull")
        }),
    ])
}

/// kchild forward serves port A by calling port B (served by kchild echo) with each
/// request: a call made while a call is being served must not cost that call its answer.
fn a_server_can_call_another_while_serving_a_call() -> Result<(), String> {
    let front = new_port(1)?;
    let back = new_port(1)?;
    let echo = child::spawn_with_caps(Role::Echo, "", &[back.handle()])?;
    let forward = child::spawn_with_caps(Role::Forward, "", &[front.handle(), back.handle()])?;
    let answer = background("the call through forward", move || {
        front.call(&Message::new(3, [1, 2, 3, 4]))
    })?
    .wait(WAIT);
    kill_and_reap(forward)?;
    kill_and_reap(echo)?;
    expect_eq(
        "the answer through forward and echo",
        answer?,
        Ok(Message::new(3, plus([1, 2, 3, 4], 2))),
    )
}

/// The echo server's answers, in call order, each its call's word (0, 1, ..) plus one.
fn each_answer_is_its_calls_word_plus_one(answers: &[Message]) -> Result<(), String> {
    ensure(
        answers
            .iter()
            .zip(0..)
            .all(|(answer, i)| answer.words[0] == i + 1),
        || String::from("an answer was not its call's word plus one"),
    )
}
