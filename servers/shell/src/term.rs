//! The shell's terminal: a Console client found by name, found again when the console
//! restarts.

use alloc::string::String;
use core::cell::RefCell;
use core::time::Duration;

use console::{ConsoleClient, ReadError};
use keel_rt::executor::sleep;
use keel_rt::names;
use keel_rt::service::TransportError;

/// How often, and how far apart, the shell looks the console up again after losing it.
const RECONNECT_TRIES: u32 = 50;
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

pub struct Term {
    console: RefCell<ConsoleClient>,
}

/// Look the console up by name and connect to it.
fn connect() -> Result<ConsoleClient, String> {
    let port = names::lookup(console::NAME)
        .map_err(|error| alloc::format!("looking up {:?}: {error}", console::NAME))?;
    ConsoleClient::connect(port)
        .map_err(|error| alloc::format!("connecting to the console: {error}"))
}

impl Term {
    pub fn connect() -> Result<Term, String> {
        Ok(Term {
            console: RefCell::new(connect()?),
        })
    }

    /// The current connection (a clone shares it), for calls whose failures the caller
    /// wants to see.
    pub fn client(&self) -> ConsoleClient {
        self.console.borrow().clone()
    }

    /// Connect afresh, waiting for the supervisor to restart the console.
    pub async fn reconnect(&self) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..RECONNECT_TRIES {
            match connect() {
                Ok(client) => {
                    *self.console.borrow_mut() = client;
                    return Ok(());
                }
                Err(why) => last = why,
            }
            sleep(RECONNECT_PAUSE).await;
        }
        Err(last)
    }

    /// Print `text`, reconnecting once if the console went away. Output that cannot be
    /// shown at all goes to the kernel log, which reaches the serial line one way or
    /// another.
    pub async fn write(&self, text: &str) {
        if self.client().write(text).await.is_ok() {
            return;
        }
        if self.reconnect().await.is_ok() && self.client().write(text).await.is_ok() {
            return;
        }
        keel_rt::print!("{text}");
    }

    /// The next line typed; `None` when the console cannot be reached even after
    /// reconnecting.
    pub async fn read_line(&self) -> Option<Result<String, ReadError>> {
        let first: Result<_, TransportError> = self.client().read_line().await;
        if let Ok(answer) = first {
            return Some(answer);
        }
        self.reconnect().await.ok()?;
        self.client().read_line().await.ok()
    }
}
