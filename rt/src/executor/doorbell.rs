//! Doorbells: a thread that rings a notification bit of the executor's wake port once a
//! period while a task wants it, for tasks that look at something now and then (a client
//! probing its server, a server sweeping for dead clients).
//!
//! A timer would do, but while one is armed the executor sleeps with a timeout, which the
//! kernel files in and takes out of its timer queue at every sleep: every lone service
//! call paid about 400 instructions for a probe due every 20 ms (docs/decisions/002). A
//! doorbell costs a thread, and one wake-up a period only while it is wanted: a period
//! with no [`Doorbell::want`] parks its thread until the next one.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use keel_abi::Error;

use super::wake;
use crate::ipc::Port;

/// A doorbell's thread and what it shares with the tasks that want it.
pub struct Doorbell {
    bit: u32,
    shared: Arc<Shared>,
}

struct Shared {
    /// Some task wants a ring at the end of the period.
    wanted: AtomicBool,
    /// The thread waits on `kick` for a `want`.
    parked: AtomicBool,
    rings: AtomicU64,
    kick: Port,
}

impl Doorbell {
    /// A doorbell ringing notification `bit` every `period` while wanted; the error when
    /// no thread (or no port to park it on) can be had.
    pub fn start(period: Duration, bit: u32) -> Result<Doorbell, Error> {
        let kick = Port::create(1)?;
        let shared = Arc::new(Shared {
            wanted: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            rings: AtomicU64::new(0),
            kick,
        });
        let theirs = shared.clone();
        let wake_port = wake::port();
        let started = crate::thread::spawn(move || {
            loop {
                crate::time::sleep(period);
                if theirs.wanted.swap(false, Ordering::SeqCst) {
                    theirs.rings.fetch_add(1, Ordering::Release);
                    let _ = wake_port.notify(1 << bit);
                    continue;
                }
                // Sequentially consistent with `want`: either it sees the flag and kicks,
                // or this look sees its wish.
                theirs.parked.store(true, Ordering::SeqCst);
                if theirs.wanted.load(Ordering::SeqCst) {
                    // A kick it may also have sent is taken by the next park, early.
                    theirs.parked.store(false, Ordering::SeqCst);
                    continue;
                }
                let _ = theirs.kick.receive(None);
            }
        });
        match started {
            Ok(_) => Ok(Doorbell { bit, shared }),
            Err(error) => {
                let _ = kick.delete();
                Err(error)
            }
        }
    }

    /// Ring at the end of this period, or of the next one if the thread was parked.
    pub fn want(&self) {
        let shared = &self.shared;
        shared.wanted.store(true, Ordering::SeqCst);
        if shared.parked.load(Ordering::SeqCst) && shared.parked.swap(false, Ordering::SeqCst) {
            let _ = shared.kick.notify(1);
        }
    }

    /// How many times it has rung: a task woken on [`bit`](Doorbell::bit), which other
    /// sources may share, tells a ring by this count.
    pub fn rings(&self) -> u64 {
        self.shared.rings.load(Ordering::Acquire)
    }

    pub fn bit(&self) -> u32 {
        self.bit
    }
}
