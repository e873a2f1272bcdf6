//! `virtio-net`: the network server. One process holds the virtio-net driver, the smoltcp
//! stack and the Sockets service (docs/decisions/011-network-stack-placement.md), so a
//! frame is read and written by the stack in place in the device's DMA buffers, and socket
//! data reaches clients through the service's shared channel: the kernel copies no packet
//! byte.
//!
//! Arguments: an optional static configuration, used when DHCP has not answered within
//! [`stack::DHCP_PATIENCE`]: `static=10.0.2.15/24 gateway=10.0.2.2`.
#![no_std]
#![no_main]

extern crate alloc;

mod checksum;
mod driver;
mod loopback;
mod nic;
mod sockets;
mod stack;
mod transport;

use alloc::rc::Rc;

use keel_net::serve_sockets;
use keel_rt::driver::{Device, Runner};
use keel_rt::{executor, names, println};

use driver::NetDriver;
use sockets::{Service, Table};
use stack::{Stack, StaticConfig};

keel_rt::async_entry!(main);

async fn main(args: &'static str) -> i32 {
    let fallback = match StaticConfig::from_args(args) {
        Ok(fallback) => fallback,
        Err(word) => {
            println!("net: cannot read argument {word:?}: want static=A.B.C.D/N gateway=A.B.C.D");
            return 2;
        }
    };
    let device = match Device::from_start_caps() {
        Ok(device) => device,
        Err(error) => {
            println!("net: my capabilities are not a PCI function's: {error}");
            return 1;
        }
    };
    let runner = match Runner::start(Rc::new(NetDriver::new(device))) {
        Ok(runner) => runner,
        Err(error) => {
            println!("net: no working virtio-net device: {error}");
            return 1;
        }
    };
    let driver = runner.driver().clone();
    let Some(stack) = Stack::new(driver.clone(), fallback) else {
        println!("net: the driver started without a device");
        return 1;
    };
    describe(&driver);
    executor::spawn(async {
        if let Err(error) = runner.run().await {
            panic!("net: the driver stopped: {error}");
        }
    });
    let stack = Rc::new(stack);
    let table = Rc::new(Table::new(stack.clone()));
    executor::spawn({
        let table = table.clone();
        async move {
            stack
                .run(|port| table.syn_taken(port), || table.tidy())
                .await
        }
    });
    if let Err(error) = names::register(keel_net::NAME, executor::wake::port()) {
        println!("net: cannot register as {:?}: {error}", keel_net::NAME);
        return 1;
    }
    serve_sockets(Service(table)).await
}

fn describe(driver: &NetDriver) {
    let device = keel_rt::driver::Driver::device(driver);
    let mac = driver.nic().map(|nic| nic.mac()).unwrap_or_default();
    let [a, b, c, d, e, f] = mac;
    let lines: alloc::vec::Vec<u8> = device.irq_lines.iter().map(|l| l.line()).collect();
    println!(
        "net: virtio-net {a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}, IRQ {lines:?}, {} BAR(s)",
        device.memory.len().saturating_sub(1)
    );
}
