//! The console's terminal logic, free of any device so the host can test it.
//!
//! [`Editor`] is the line discipline: it turns typed bytes into edits of the line being
//! typed (insert, erase a character, kill the line, enter, interrupt). [`Screen`] decides
//! what goes to the terminal: it echoes edits, and it keeps the bottom line, the prompt a
//! client wrote plus the input typed after it, intact while other text arrives: kernel log
//! lines are printed above it (erase the bottom line, print, redraw), and client output
//! continues the prompt with the input moved after it.
//!
//! Output uses `\r\n` for newlines, BS-space-BS to erase a character, and one ANSI
//! sequence, `ESC [ K` (erase to end of line), to clear the bottom line before a log line.
//! A bottom line wider than the terminal wraps, and only its last row is cleared.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod editor;
mod screen;

pub use editor::{Edit, Editor, MAX_LINE};
pub use screen::{MAX_PROMPT, Screen, Typed};
