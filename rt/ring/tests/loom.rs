//! Model check of the sleep/wake protocol with loom: `RUSTFLAGS="--cfg loom" cargo test
//! -p keel-ring --test loom --release`. A consumer that sleeps whenever the ring looks empty
//! is always woken: no interleaving loses a wake-up or a record.
#![cfg(loom)]

use keel_ring::{Pop, Push, Ring, RingHeader, UnsafeCell, alloc_free::Buffer};
use loom::sync::{Arc, Notify};

struct Shared {
    header: RingHeader,
    data: Vec<UnsafeCell<u8>>,
    /// Stands in for the port notification: a signal sent before the wait is kept, like
    /// the bits of a port's notification word. A lost wake-up deadlocks, which loom reports.
    signal: Notify,
}

#[test]
fn no_wakeup_is_lost() {
    loom::model(|| {
        let shared = Arc::new(Shared {
            header: RingHeader::default(),
            data: (0..32).map(|_| UnsafeCell::new(0)).collect(),
            signal: Notify::new(),
        });
        let producer_side = shared.clone();
        let producer = loom::thread::spawn(move || {
            let ring = Ring::new(&producer_side.header, &producer_side.data).producer();
            for i in 0..2u8 {
                match ring.push(&[i]).unwrap() {
                    Push::Done {
                        wake_consumer: true,
                    } => producer_side.signal.notify(),
                    Push::Done {
                        wake_consumer: false,
                    } => {}
                    Push::Full => unreachable!("two small records fit"),
                }
            }
        });
        let ring = Ring::new(&shared.header, &shared.data).consumer();
        let mut received = Vec::new();
        let mut bytes = [0u8; 16];
        while received.len() < 2 {
            let mut out = Buffer::new(&mut bytes);
            // After the last record it saw, the consumer goes straight to its check before
            // sleeping, as after an empty pop.
            match ring.pop(&mut out).unwrap() {
                Pop::Record { last, .. } => {
                    received.push(out.as_slice()[0]);
                    if !last {
                        continue;
                    }
                }
                Pop::Empty => {}
            }
            if received.len() < 2 && ring.prepare_wait().unwrap() {
                shared.signal.wait();
            }
        }
        producer.join().unwrap();
        assert_eq!(received, [0, 1]);
    });
}

#[test]
fn a_waiting_producer_is_always_woken() {
    loom::model(|| {
        let shared = Arc::new(Shared {
            header: RingHeader::default(),
            // Room for two 8-byte records: the third must wait for the consumer.
            data: (0..16).map(|_| UnsafeCell::new(0)).collect(),
            signal: Notify::new(),
        });
        let consumer_side = shared.clone();
        let consumer = loom::thread::spawn(move || {
            let ring = Ring::new(&consumer_side.header, &consumer_side.data).consumer();
            let mut received = Vec::new();
            let mut bytes = [0u8; 16];
            while received.len() < 3 {
                let mut out = Buffer::new(&mut bytes);
                match ring.pop(&mut out).unwrap() {
                    Pop::Record { wake_producer, .. } => {
                        received.push(out.as_slice()[0]);
                        if wake_producer {
                            consumer_side.signal.notify();
                        }
                    }
                    Pop::Empty => loom::thread::yield_now(),
                }
            }
            received
        });
        let ring = Ring::new(&shared.header, &shared.data).producer();
        for i in 0..3u8 {
            while ring.push(&[i]).unwrap() == Push::Full {
                if ring.prepare_wait(1).unwrap() {
                    shared.signal.wait();
                }
            }
        }
        assert_eq!(consumer.join().unwrap(), [0, 1, 2]);
    });
}
