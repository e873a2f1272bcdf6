//! A key-value store as a service: `kv server` serves it, `kv client` checks a script of calls,
//! `kv announce` serves it to whoever started it (`keel_rt::bootstrap`).
//! The server registers as "kv" with the name service; the client looks it up by name.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::{collections::BTreeMap, string::String, vec::Vec};
use core::cell::RefCell;
use keel_rt::{bootstrap, executor, names, println};
use kv::{Kv, KvClient, KvError, serve_kv};

/// No method awaits while it holds the map, so concurrent calls never clash on the RefCell.
struct Store(RefCell<BTreeMap<String, Vec<u8>>>);

impl Kv for Store {
    async fn get(&self, key: &str) -> Result<Vec<u8>, KvError> {
        self.0.borrow().get(key).cloned().ok_or(KvError::NotFound)
    }
    async fn put(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let value = Some(value.to_vec()).filter(|v| v.len() <= 1024);
        let value = value.ok_or(KvError::TooLarge)?;
        self.0.borrow_mut().insert(key.into(), value);
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), KvError> {
        let removed = self.0.borrow_mut().remove(key);
        removed.map(drop).ok_or(KvError::NotFound)
    }
    async fn list(&self) -> Vec<String> {
        self.0.borrow().keys().cloned().collect()
    }
}

/// Make a call, print it and its answer, and insist on the answer expected.
macro_rules! expect {
    ($call:expr, $expected:expr) => {{
        let answer = $call.await.expect(stringify!($call));
        println!("kv: {} -> {answer:?}", stringify!($call));
        assert_eq!(answer, $expected, "{}", stringify!($call));
    }};
}

keel_rt::async_entry!(main);

async fn main(role: &'static str) -> i32 {
    match role {
        "server" => names::register(kv::NAME, executor::wake::port()).expect("kv: registering"),
        // Started by a program other than init (the `services` suite): its port goes back
        // through the bootstrap port it was given.
        "announce" => bootstrap::announce().expect("kv: announcing"),
        _ => {}
    }
    if role == "server" || role == "announce" {
        serve_kv(Store(RefCell::default())).await
    }
    let kv = KvClient::connect_named(kv::NAME).expect("kv: connecting to the server");
    expect!(kv.put("name", b"keel"), Ok(()));
    expect!(kv.put("big", &[0; 1025]), Err(KvError::TooLarge));
    expect!(kv.get("name"), Ok(b"keel".to_vec()));
    expect!(kv.list(), ["name"]);
    expect!(kv.delete("name"), Ok(()));
    expect!(kv.delete("name"), Err(KvError::NotFound));
    0
}
