//! Roles that do what a hostile process would, to show the kernel survives it and leaks
//! nothing (issue 16).

use keel_rt::ipc::{Message, Port};
use keel_rt::mem::Memory;

use crate::{Failure, OrSetup};

/// What each self-addressed message holds: 16 frames.
const OBJECT_LEN: usize = 0x10000;

pub fn self_queued_port(arg: &str) -> Result<i32, Failure> {
    let mut numbers = arg.split(' ').map(str::parse::<usize>);
    let (Some(Ok(rounds)), Some(Ok(chain))) = (numbers.next(), numbers.next()) else {
        return Err(Failure::check("`self-queued-port` wants ROUNDS CHAIN"));
    };
    for _ in 0..rounds {
        let port = Port::create(1).or_setup("port_create")?;
        let memory = Memory::create(OBJECT_LEN).or_setup("mem_create")?;
        send_and_forget(port, &[port.handle(), memory.handle()])?;
        keel_rt::sys::ipc::cap_delete(memory.handle()).or_setup("cap_delete(memory)")?;
    }
    if chain > 0 {
        let memory = Memory::create(OBJECT_LEN).or_setup("mem_create")?;
        let mut previous = memory.handle();
        for _ in 0..chain {
            let port = Port::create(1).or_setup("port_create")?;
            let message = Message::new(0, [0; 4]).with_caps(&[port.handle(), previous]);
            port.send(&message).or_setup("port_send")?;
            keel_rt::sys::ipc::cap_delete(previous).or_setup("cap_delete")?;
            previous = port.handle();
        }
        keel_rt::sys::ipc::cap_delete(previous).or_setup("cap_delete(last port)")?;
    }
    Ok(0)
}

/// Send `caps` on `port` in one message, then delete the handle to `port`.
fn send_and_forget(port: Port, caps: &[keel_abi::cap::Handle]) -> Result<(), Failure> {
    port.send(&Message::new(0, [0; 4]).with_caps(caps))
        .or_setup("port_send")?;
    keel_rt::sys::ipc::cap_delete(port.handle()).or_setup("cap_delete(port)")
}
