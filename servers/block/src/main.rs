//! The virtio-blk driver server: drives the PCI function init grants it (modern
//! virtio-pci, interrupt-driven, up to 128 requests in flight) and serves it as the
//! `Block` service (`keel-block`), with the data moving by DMA straight between the disk
//! and the data regions it shares with its clients.
#![no_std]
#![no_main]

extern crate alloc;

mod disk;
mod driver;
mod service;

use alloc::rc::Rc;

use keel_rt::driver::{Device, Runner};
use keel_rt::{executor, names, println};

use driver::BlkDriver;

keel_rt::async_entry!(main);

async fn main(_args: &'static str) -> i32 {
    let device = match Device::from_start_caps() {
        Ok(device) => device,
        Err(error) => {
            println!("virtio-blk: my capabilities are not a PCI device's: {error}");
            return 1;
        }
    };
    let driver = Rc::new(BlkDriver::new(device));
    let runner = match Runner::start(driver.clone()) {
        Ok(runner) => runner,
        Err(error) => {
            println!("virtio-blk: no working device: {error}");
            return 1;
        }
    };
    executor::spawn(async {
        if let Err(error) = runner.run().await {
            panic!("virtio-blk: the driver stopped: {error}");
        }
    });
    if let Some((blocks, read_only, _)) = driver.geometry() {
        println!(
            "virtio-blk: {} MiB ({blocks} blocks){}",
            blocks >> 11,
            if read_only { ", read-only" } else { "" }
        );
    }
    if let Err(error) = names::register(keel_block::NAME, executor::wake::port()) {
        println!(
            "virtio-blk: cannot register as {:?}: {error}",
            keel_block::NAME
        );
        return 1;
    }
    keel_block::serve_block(service::Service::new(driver)).await
}
