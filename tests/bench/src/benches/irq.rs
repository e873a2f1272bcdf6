//! `irq_to_server`: a device interrupt delivered to a server process as a notification.
//!
//! The device is COM1, the 16550 UART: with its transmit-holding register empty (always, as
//! nothing writes it while kbench holds its ports), enabling the transmit-empty interrupt
//! (IER bit 1) raises line 4 at once. kbench mints the line and the ports (it has the SYSTEM
//! right), binds the line to a port and starts a helper that waits on that port. A sample
//! runs from kbench's `ioport_write` that enables the interrupt to the helper's return from
//! `port_recv`. The helper then reads the interrupt's cause (IIR), disables it again, acks
//! the line, and sends kbench its timestamp and the cause; kbench waits for that in
//! `port_recv` right after its write, which is when the helper gets the CPU (it runs at
//! kbench's priority, so the interrupt does not preempt kbench).

use keel_abi::cap::Handle;
use keel_abi::ipc::MessageInfo;
use keel_abi::{Error, Syscall, decode_result};
use keel_rt::sys::device;

use crate::benches::Helper;
use crate::failure::{Context, Failure, ensure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::roles;
use crate::stats::Stats;
use crate::sys::{self, FOREVER};

/// COM1's registers, its interrupt line, and the bits this benchmark uses.
mod uart {
    pub const BASE: u16 = 0x3f8;
    pub const PORTS: u16 = 8;
    pub const LINE: u8 = 4;
    /// Interrupt enable: bit 1 is "transmit-holding register empty".
    pub const IER: u16 = BASE + 1;
    pub const IER_THR_EMPTY: u32 = 1 << 1;
    /// Interrupt identification: the low nibble 0b0010 is "transmit-holding register empty".
    pub const IIR: u16 = BASE + 2;
    pub const IIR_CAUSE: u64 = 0x0f;
    pub const IIR_THR_EMPTY: u64 = 0x02;
    /// Modem control: OUT2 gates the UART's interrupt onto the line on PC hardware.
    pub const MCR: u16 = BASE + 4;
    pub const MCR_OUT2: u32 = 1 << 3;
}

/// The notification bit the line is bound to.
const IRQ_BIT: u64 = 1;
/// The message that stops the helper.
const STOP: u32 = 1;

pub fn to_server(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    let com1 = Com1::claim()?;
    let events = sys::port_create(1).context("creating the interrupt port")?;
    let reply = sys::port_create(1).context("creating the reply port")?;
    device::event_bind(com1.irq, events, IRQ_BIT).context("binding line 4")?;
    let helper = Helper::spawn(roles::IRQ, &[events, com1.irq, com1.ports, reply])?;
    let stats = measure.run(|| {
        let (elapsed, cause) = interrupt_and_wait(com1.ports, reply).context("one interrupt")?;
        ensure(cause & uart::IIR_CAUSE == uart::IIR_THR_EMPTY, || {
            alloc::format!("the helper read IIR {cause:#x}, not a transmit-empty interrupt")
        })?;
        Ok(elapsed)
    });
    let stop = MessageInfo::new(STOP, 0, 0);
    sys::port_send(events, stop, [0; 4]).context("stopping the helper")?;
    helper.finish()?;
    // Gives the console back: the log goes to the serial line again.
    drop(com1);
    for port in [events, reply] {
        sys::cap_delete(port).context("deleting a port")?;
    }
    stats
}

/// One sample: enable the interrupt, then wait for the helper's answer. The raw reading
/// (from this side's TSC read to the helper's, after its `port_recv`) and the IIR it read.
#[inline(always)]
fn interrupt_and_wait(ports: Handle, reply: Handle) -> Result<(u64, u64), Error> {
    let start: u64;
    let results: usize;
    let (handler_time, cause): (u64, u64);
    // SAFETY: `ioport_write` changes only rax, rcx and r11 and a UART register; `port_recv`
    // changes only the registers declared, and the answer carries no payload, so the IPC
    // buffer is not written.
    unsafe {
        core::arch::asm!(
            "lfence",
            "rdtsc",
            "shl rdx, 32",
            "or rdx, rax",
            "mov r12, rdx",
            "mov eax, {write}",
            "mov edx, 1",
            "syscall",
            "mov r13, rax",
            "mov eax, {recv}",
            "mov rdi, r14",
            "mov rsi, -1",
            "syscall",
            "or r13, rax",
            write = const Syscall::IoPortWrite as usize,
            recv = const Syscall::PortRecv as usize,
            out("r12") start,
            out("r13") results,
            in("r14") u64::from(reply),
            inout("rdi") u64::from(ports) => _,
            inout("rsi") u64::from(uart::IER) => _,
            out("rdx") handler_time,
            inout("r10") u64::from(uart::IER_THR_EMPTY) => cause,
            out("rax") _,
            out("r8") _,
            out("r9") _,
            out("rcx") _,
            out("r11") _,
        );
    }
    // Both results are 0 on success, and an error is negative: OR-ing keeps its sign.
    decode_result(results)?;
    Ok((handler_time.wrapping_sub(start), cause))
}

/// `kbench irq`: waits for interrupts on `events` and answers each on `reply` with the TSC
/// read right after its `port_recv` returned and the UART's IIR; a STOP message ends it.
pub fn serve(events: Handle, irq: Handle, ports: Handle, reply: Handle) -> Result<(), Error> {
    loop {
        let (info, time) = timed_recv(events)?;
        if !info.is_notification() {
            return if info.label() == STOP {
                Ok(())
            } else {
                Err(Error::InvalidArgument)
            };
        }
        // Reading IIR is what a driver does first; disabling the interrupt lowers the line
        // before it is unmasked again.
        let cause = device::ioport_read(ports, uart::IIR, 1)?;
        device::ioport_write(ports, uart::IER, 1, 0)?;
        device::irq_ack(irq)?;
        sys::port_send(reply, MessageInfo::default(), [time, cause.into(), 0, 0])?;
    }
}

/// `port_recv` on `port`, then a TSC read: what arrived, and when.
#[inline(always)]
fn timed_recv(port: Handle) -> Result<(MessageInfo, u64), Error> {
    let result: usize;
    let info: u64;
    let time: u64;
    // SAFETY: `port_recv` changes only the registers declared; what this port receives
    // (notifications, the payload-less STOP) never writes the IPC buffer.
    unsafe {
        core::arch::asm!(
            "syscall",
            "mov r12, rax",
            "lfence",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            inout("rax") Syscall::PortRecv as usize => time,
            inout("rdi") u64::from(port) => _,
            inout("rsi") FOREVER => info,
            out("rdx") _,
            out("r10") _,
            out("r8") _,
            out("r9") _,
            out("r12") result,
            out("rcx") _,
            out("r11") _,
        );
    }
    decode_result(result)?;
    Ok((MessageInfo(info), time))
}

/// COM1's interrupt line and ports, minted for the benchmark, with OUT2 set. Dropping it
/// disables the UART's interrupts, restores MCR, unbinds the line and deletes both
/// capabilities, which gives the console back to the kernel log.
struct Com1 {
    irq: Handle,
    ports: Handle,
    /// MCR as it was, once read.
    mcr: Option<u32>,
}

impl Com1 {
    fn claim() -> Result<Com1, Failure> {
        let irq = device::irq_create(uart::LINE).context("minting line 4")?;
        let ports = match device::ioport_create(uart::BASE, uart::PORTS) {
            Ok(ports) => ports,
            Err(error) => {
                let _ = sys::cap_delete(irq);
                return Err(error).context("minting COM1's ports");
            }
        };
        // From here on, dropping `com1` undoes whatever was done.
        let mut com1 = Com1 {
            irq,
            ports,
            mcr: None,
        };
        let mcr = device::ioport_read(ports, uart::MCR, 1).context("reading MCR")?;
        com1.mcr = Some(mcr);
        device::ioport_write(ports, uart::MCR, 1, mcr | uart::MCR_OUT2).context("setting OUT2")?;
        Ok(com1)
    }
}

impl Drop for Com1 {
    fn drop(&mut self) {
        // Best effort: each step is independent, and deleting the capabilities matters most.
        let _ = device::ioport_write(self.ports, uart::IER, 1, 0);
        if let Some(mcr) = self.mcr {
            let _ = device::ioport_write(self.ports, uart::MCR, 1, mcr);
        }
        let _ = device::event_bind(self.irq, 0, 0);
        let _ = sys::cap_delete(self.irq);
        let _ = sys::cap_delete(self.ports);
    }
}
