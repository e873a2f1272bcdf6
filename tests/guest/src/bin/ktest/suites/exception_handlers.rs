//! Exception handlers (`fault_handler_set`; the `faults` suite has the same exceptions
//! without one): a fault in a process with a handler arrives at the handler's port as a
//! call (vector, error code, rip, address, and a capability to the thread) while the thread
//! waits; through that capability the handler reads and changes its registers. Resumed, the
//! thread retries the instruction (or goes on where its registers now say); refused or
//! abandoned, its process ends as without a handler.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use keel_abi::cap::{kind, rights};
use keel_abi::ipc::{FAULT_RESUME, LABEL_FAULT, MessageInfo};
use keel_abi::{Error, vector};
use keel_guest_tests::{FAULT_R12, FAULT_RAX, KERNEL_ADDR, Role, UNMAPPED_ADDR};
use keel_rt::ipc::{Message, Port};
use keel_rt::process::{self, Exit, Pid};
use keel_rt::thread::{Registers, state};
use keel_rt::{cap, sys};

use crate::check::{Context, all, background, ensure, expect_eq};
use crate::child::{self, expect_exit, expect_page_fault_of, kill_and_reap, page_fault};
use crate::elf;
use crate::receive::{self, Got, WAIT, poll};
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(exception_handlers:
    a_handler_that_maps_the_page_resumes_the_faulting_thread,
    a_fault_arrives_as_a_call_with_vector_error_code_rip_and_address,
    a_handler_reads_and_changes_the_faulting_threads_registers,
    a_fault_answered_by_reply_and_receive_resumes_the_thread,
    a_fault_answered_without_resume_ends_the_process,
    a_fault_whose_reply_is_dropped_ends_the_process,
    a_removed_handler_hears_of_no_fault,
    setting_a_handler_needs_a_child_and_a_send_capability,
);

/// The badge on the handler's port capability, so fault messages can be told apart.
const BADGE: u64 = 0xfa17;

/// kchild ROLE below ktest's priority on its core, so that it runs (and faults) only once
/// ktest waits.
fn spawn_below(role: Role) -> Result<Pid, String> {
    child::spawn_beside(role, "", process::current_priority() - 1, &[])
}

/// kchild read-unmapped with its faults sent to a badged copy of `port`, and the fault
/// message it caused.
fn catch_fault(port: Port) -> Result<(Pid, Got), String> {
    let pid = spawn_below(Role::ReadUnmapped)?;
    let badged = port.derive(rights::SEND, BADGE).context("cap_derive")?;
    process::set_fault_handler(pid, badged).context("fault_handler_set")?;
    Ok((pid, receive::message(port, "the fault message")?))
}

/// kchild is its own handler: see [`Role::FaultResume`].
fn a_handler_that_maps_the_page_resumes_the_faulting_thread() -> Result<(), String> {
    expect_exit(Role::FaultResume, "", 0)
}

fn a_fault_arrives_as_a_call_with_vector_error_code_rip_and_address() -> Result<(), String> {
    let port = Port::create(1).context("port_create")?;
    let (pid, mut got) = catch_fault(port)?;
    let is_call = got.reply.is_some();
    let carried = got
        .message
        .caps
        .iter()
        .map(|&h| cap::info(h).map(|i| i.kind));
    let carried: Vec<_> = carried.collect();
    let thread = got.message.take_fault_thread();
    drop(got.reply);
    let ended = expect_page_fault_of(pid, Role::ReadUnmapped, UNMAPPED_ADDR, page_fault::USER);
    drop(thread);
    let fault = got.message.fault().context("the message as a fault")?;
    let code = elf::code(child::image()?).context("kchild's executable segment")?;
    all([
        expect_eq("the label", got.message.label, LABEL_FAULT),
        expect_eq("the badge", got.badge, BADGE),
        expect_eq("whether it is a call", is_call, true),
        expect_eq(
            "the capabilities it carries",
            carried,
            vec![Ok(kind::THREAD)],
        ),
        expect_eq(
            "(vector, error code, address)",
            (fault.vector, fault.error_code, fault.address),
            (vector::PAGE_FAULT, page_fault::USER, UNMAPPED_ADDR),
        ),
        ensure(code.contains(&fault.rip), || {
            format!(
                "the rip {:#x} is outside kchild's code {code:#x?}",
                fault.rip
            )
        }),
        ended,
    ])
}

/// rflags bits: carry, interrupts enabled, I/O privilege level.
const CF: u64 = 1;
const IF: u64 = 1 << 9;
const IOPL: u64 = 3 << 12;

fn a_handler_reads_and_changes_the_faulting_threads_registers() -> Result<(), String> {
    const NEW_RAX: u64 = 42;
    let port = Port::create(1).context("port_create")?;
    let pid = spawn_below(Role::FaultRegisters)?;
    process::set_fault_handler(pid, port).context("fault_handler_set")?;
    let mut got = receive::message(port, "the fault message")?;
    let reply = got.reply.take().context("the fault's reply")?;
    let fault = got.message.fault().context("the message as a fault")?;
    let thread = got
        .message
        .take_fault_thread()
        .context("the faulting thread's capability")?;
    let info = thread.info().map(|i| (i.pid, i.state));
    let at_fault = thread.registers().context("thread_regs_read")?;
    // Past the two-byte `ud2`, a new rax, and flags asking for more than user code may have.
    let changed = Registers {
        rip: at_fault.rip + 2,
        rax: NEW_RAX,
        rflags: (at_fault.rflags | CF | IOPL) & !IF,
        ..at_fault
    };
    let into_kernel = Registers {
        rip: KERNEL_ADDR,
        ..changed
    };
    // SAFETY: the thread is kchild's, which expects exactly this change (see its role).
    let (refused, written) = unsafe {
        (
            thread.set_registers(&into_kernel),
            thread.set_registers(&changed),
        )
    };
    let read_back = thread
        .registers()
        .map(|r| (r.rip, r.rax, r.rflags & (CF | IF | IOPL)));
    let answered = reply.send(&Message::resume(None));
    let ended = process::wait(pid).context("waiting for kchild")?;
    all([
        expect_eq("the thread's (pid, state)", info, Ok((pid, state::FAULTED))),
        expect_eq("its rip", at_fault.rip, fault.rip),
        expect_eq(
            "its (rax, r12)",
            (at_fault.rax, at_fault.r12),
            (FAULT_RAX, FAULT_R12),
        ),
        expect_eq(
            "a write of a kernel rip",
            refused,
            Err(Error::InvalidArgument),
        ),
        expect_eq("the write", written, Ok(())),
        expect_eq(
            "(rip, rax, CF|IF|IOPL) read back",
            read_back,
            Ok((changed.rip, NEW_RAX, CF | IF)),
        ),
        expect_eq("answering the fault", answered, Ok(())),
        expect_eq("how kchild ended", ended, Exit::Exited(NEW_RAX as i64)),
        expect_eq(
            "the capability once the thread has gone",
            thread.info().map(drop),
            Err(Error::StaleHandle),
        ),
    ])
}

/// A server loop answers with `port_reply_recv`, whose fast path writes a caller's syscall
/// registers: it must leave a faulted thread, which resumes through the fault code, alone.
/// kchild runs at this priority, so that the fast path's priority condition holds, and on
/// this core, so that it faults only once its handler is set.
fn a_fault_answered_by_reply_and_receive_resumes_the_thread() -> Result<(), String> {
    let port = Port::create(1).context("port_create")?;
    let pid = child::spawn_beside(Role::FaultRegisters, "", process::current_priority(), &[])?;
    process::set_fault_handler(pid, port).context("fault_handler_set")?;
    let handler = background("the handler's loop", move || {
        let timeout = WAIT.as_nanos() as u64;
        let (is_call, fault) = sys::ipc::port_recv(port.handle(), timeout)?;
        if !is_call || fault.info.label() != LABEL_FAULT {
            return Err(Error::InvalidArgument);
        }
        // Resume past the two-byte `ud2`, then wait for the next message.
        let resume = [FAULT_RESUME, fault.words[2] + 2, 0, 0];
        sys::ipc::port_reply_recv(port.handle(), MessageInfo::new(0, 0, 0), resume).map(drop)
    })?;
    let ended = process::wait(pid).context("waiting for kchild")?;
    // The handler waits on the port again: a message ends its loop.
    port.send(&Message::default()).context("port_send")?;
    all([
        expect_eq(
            "how kchild ended",
            ended,
            Exit::Exited(FAULT_RAX as i32 as i64),
        ),
        expect_eq("the handler's loop", handler.wait(WAIT)?, Ok(())),
    ])
}

fn a_fault_answered_without_resume_ends_the_process() -> Result<(), String> {
    let port = Port::create(1).context("port_create")?;
    let (pid, got) = catch_fault(port)?;
    let reply = got.reply.context("the fault's reply")?;
    let answered = reply.send(&Message::end_faulted());
    all([
        expect_eq("answering the fault", answered, Ok(())),
        expect_page_fault_of(pid, Role::ReadUnmapped, UNMAPPED_ADDR, page_fault::USER),
    ])
}

fn a_fault_whose_reply_is_dropped_ends_the_process() -> Result<(), String> {
    let port = Port::create(1).context("port_create")?;
    let (pid, got) = catch_fault(port)?;
    drop(got.reply);
    expect_page_fault_of(pid, Role::ReadUnmapped, UNMAPPED_ADDR, page_fault::USER)
}

fn a_removed_handler_hears_of_no_fault() -> Result<(), String> {
    let port = Port::create(1).context("port_create")?;
    let pid = spawn_below(Role::ReadUnmapped)?;
    process::set_fault_handler(pid, port).context("fault_handler_set")?;
    process::clear_fault_handler(pid).context("fault_handler_set(0)")?;
    all([
        expect_page_fault_of(pid, Role::ReadUnmapped, UNMAPPED_ADDR, page_fault::USER),
        expect_eq(
            "a poll of the former handler's port",
            poll(port),
            Err(Error::WouldBlock),
        ),
    ])
}

fn setting_a_handler_needs_a_child_and_a_send_capability() -> Result<(), String> {
    let port = Port::create(1).context("port_create")?;
    let no_send = port.derive(rights::RECEIVE, 0).context("cap_derive")?;
    let pid = spawn_below(Role::Spin)?;
    let results = [
        (
            "for a pid no process has",
            process::set_fault_handler(0x7fff_fff0, port),
            Err(Error::NotFound),
        ),
        (
            "with a port capability without SEND",
            process::set_fault_handler(pid, no_send),
            Err(Error::MissingRight),
        ),
        (
            "for a child with a full port capability",
            process::set_fault_handler(pid, port),
            Ok(()),
        ),
    ];
    kill_and_reap(pid)?;
    all(results.into_iter().map(|(what, result, expected)| {
        expect_eq(&format!("setting a fault handler {what}"), result, expected)
    }))
}
