//! The smallest service: `hello-service server` serves `Hello`; `hello-service client NAME`
//! greets NAME through the server whose port it was started with. Whoever starts both
//! passes the port on with `keel_rt::bootstrap` (docs/SERVICES.md).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::{format, string::String};
use keel_rt::{bootstrap, cap, ipc::Port, println, process};

#[keel_rt::service]
pub trait Hello {
    /// A greeting for `name`.
    #[idempotent]
    async fn greet(&self, name: &str) -> String;
}

struct Greeter;

impl Hello for Greeter {
    async fn greet(&self, name: &str) -> String {
        format!("hello, {name}, from pid {}", process::id())
    }
}

keel_rt::async_entry!(main);

async fn main(args: &'static str) -> i32 {
    let (role, name) = args.split_once(' ').unwrap_or((args, ""));
    if role == "server" {
        bootstrap::announce().expect("hello-service: announcing the server");
        serve_hello(Greeter).await
    }
    // The server's port is the first capability this client was started with.
    let server = Port::from_handle(*cap::initial().start());
    let hello = HelloClient::connect(server).expect("hello-service: connecting");
    match hello.greet(name).await {
        Ok(greeting) => {
            println!("hello-service: pid {} got {greeting:?}", process::id());
            0
        }
        Err(error) => {
            println!("hello-service: the call failed: {error}");
            1
        }
    }
}
