//! The smallest service: `hello-service server` serves `Hello` and registers it as "hello"
//! with the name service; `hello-service client NAME` looks it up and greets NAME;
//! `hello-service announce` serves it to whoever started it (`keel_rt::bootstrap`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::{format, string::String};
use hello_service::{Hello, HelloClient, serve_hello};
use keel_rt::{bootstrap, executor, names, println, process};

struct Greeter;

impl Hello for Greeter {
    async fn greet(&self, name: &str) -> String {
        format!("hello, {name}, from pid {}", process::id())
    }
}

keel_rt::async_entry!(main);

async fn main(args: &'static str) -> i32 {
    let (role, name) = args.split_once(' ').unwrap_or((args, ""));
    match role {
        "server" => names::register(hello_service::NAME, executor::wake::port())
            .expect("hello-service: registering"),
        // Started by a program other than init (the `services` suite): its port goes back
        // through the bootstrap port it was given.
        "announce" => bootstrap::announce().expect("hello-service: announcing"),
        _ => {}
    }
    if role == "server" || role == "announce" {
        serve_hello(Greeter).await
    }
    let hello = HelloClient::connect_named(hello_service::NAME).expect("hello-service: connecting");
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
