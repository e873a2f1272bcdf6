//! The shell's terminal: a Console client found by name, found again when the console
//! restarts.

use alloc::string::String;
use core::cell::RefCell;
use core::time::Duration;

use console::{ConsoleClient, ReadError};
use keel_rt::executor::sleep;
use keel_rt::names;

/// How often, and how far apart, the shell looks the console up again after losing it.
const RECONNECT_TRIES: u32 = 50;
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// What [`Term::read_line`] brought.
pub enum Input {
    Line(String),
    /// Ctrl-C: the line was dropped.
    Interrupted,
    /// The console restarted; the shell is connected to the new one.
    Reconnected,
}

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

    /// What was typed. A console that went away is found again, but what was typed on it
    /// is gone with it, and its prompt: [`Input::Reconnected`] says to prompt again.
    pub async fn read_line(&self) -> Result<Input, String> {
        match self.client().read_line().await {
            Ok(Ok(line)) => Ok(Input::Line(line)),
            Ok(Err(ReadError::Interrupted)) => Ok(Input::Interrupted),
            Err(_) => self.reconnect().await.map(|()| Input::Reconnected),
        }
    }
}
