//! A key-value store as a service: `kv server` serves it, `kv client` checks a script of calls,
//! `kv announce` serves it to whoever started it (`keel_rt::bootstrap`).
//! The server registers as "kv" with the name service; the client looks it up by name.
//! The server keeps its store in a file when the file service is there (`store`), so a
//! second boot shows what the first one put.
#![no_std]
#![no_main]

extern crate alloc;

mod store;

use alloc::{string::String, vec::Vec};
use core::cell::RefCell;
use keel_rt::{bootstrap, executor, names, println};
use kv::{Kv, KvClient, KvError, serve_kv};
use store::{Disk, Map};

/// The map, and the disk it is saved to. No method awaits while it holds the map, so
/// concurrent calls never clash on the RefCell; a change is acknowledged once saved.
struct Store {
    map: RefCell<Map>,
    disk: Option<Disk>,
}

impl Store {
    /// Change the map with `change`; answer once the change is on the disk.
    async fn change<R>(
        &self,
        change: impl FnOnce(&mut Map) -> Result<R, KvError>,
    ) -> Result<R, KvError> {
        let (result, snapshot) = {
            let mut map = self.map.borrow_mut();
            let result = change(&mut map)?;
            (result, self.disk.as_ref().map(|_| map.clone()))
        };
        if let (Some(disk), Some(snapshot)) = (&self.disk, snapshot) {
            disk.save(&snapshot).await.map_err(|error| {
                println!("kv: saving the store: {error}");
                KvError::Storage
            })?;
        }
        Ok(result)
    }
}

impl Kv for Store {
    async fn get(&self, key: &str) -> Result<Vec<u8>, KvError> {
        self.map.borrow().get(key).cloned().ok_or(KvError::NotFound)
    }
    async fn put(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let value = Some(value.to_vec()).filter(|v| v.len() <= 1024);
        let value = value.ok_or(KvError::TooLarge)?;
        self.change(|map| {
            map.insert(key.into(), value);
            Ok(())
        })
        .await
    }
    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.change(|map| map.remove(key).map(drop).ok_or(KvError::NotFound))
            .await
    }
    async fn list(&self) -> Vec<String> {
        self.map.borrow().keys().cloned().collect()
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
        // Only init's servers may look the file service up; a bootstrapped kv (a test's)
        // keeps its store in memory.
        let (disk, map) = match role {
            "server" => Disk::open().await,
            _ => (None, Map::new()),
        };
        serve_kv(Store {
            map: RefCell::new(map),
            disk,
        })
        .await
    }
    let kv = KvClient::connect_named(kv::NAME).expect("kv: connecting to the server");
    // The store outlives the server: count the boots that ran this client.
    let boots = match kv.get("boots").await.expect("kv.get(\"boots\")") {
        Ok(bytes) => bytes.first().copied().unwrap_or(0),
        Err(_) => 0,
    };
    println!("kv: the store remembers {boots} earlier boots");
    expect!(kv.put("boots", &[boots.wrapping_add(1)]), Ok(()));
    expect!(kv.put("name", b"keel"), Ok(()));
    expect!(kv.put("big", &[0; 1025]), Err(KvError::TooLarge));
    expect!(kv.get("name"), Ok(b"keel".to_vec()));
    expect!(kv.list(), ["boots", "name"]);
    expect!(kv.delete("name"), Ok(()));
    expect!(kv.delete("name"), Err(KvError::NotFound));
    0
}
