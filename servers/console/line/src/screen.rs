//! What the terminal shows: echo, client output, and log lines above the line being typed.
//!
//! The bottom line is the prompt (what clients wrote since their last newline) followed by
//! the input typed so far. Log text is shown a whole line at a time, above the bottom
//! line; a partial log line waits for its end, or for [`Screen::flush_log`].

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::editor::{Edit, Editor};

/// The prompt kept for redrawing: its last this many bytes.
pub const MAX_PROMPT: usize = 256;
/// A partial log line longer than this is shown without waiting for its end.
const MAX_PARTIAL_LOG: usize = 1024;

/// Erase the current terminal line: carriage return, then ANSI "erase to end of line".
const ERASE_LINE: &[u8] = b"\r\x1b[K";
const ERASE_CHAR: &[u8] = b"\x08 \x08";
const BELL: u8 = 0x07;

/// What typing produced for a reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Typed {
    /// A complete line (invalid UTF-8 replaced).
    Line(String),
    /// Ctrl-C.
    Interrupt,
}

/// The terminal's state, and the bytes that keep it true.
#[derive(Debug, Default)]
pub struct Screen {
    prompt: Vec<u8>,
    editor: Editor,
    partial_log: Vec<u8>,
}

impl Screen {
    pub fn new() -> Self {
        Screen::default()
    }

    /// The input typed so far.
    pub fn input(&self) -> &[u8] {
        self.editor.text()
    }

    /// Whether a partial log line is waiting for its end.
    pub fn has_partial_log(&self) -> bool {
        !self.partial_log.is_empty()
    }

    /// A byte typed at the terminal: edit the line and echo to `out`.
    pub fn type_byte(&mut self, byte: u8, out: &mut VecDeque<u8>) -> Option<Typed> {
        match self.editor.feed(byte) {
            Edit::Insert(byte) => out.push_back(byte),
            Edit::Erase => out.extend(ERASE_CHAR),
            Edit::Kill(characters) => (0..characters).for_each(|_| out.extend(ERASE_CHAR)),
            Edit::Full => out.push_back(BELL),
            Edit::Nothing => {}
            Edit::Enter(line) => {
                out.extend(b"\r\n");
                self.prompt.clear();
                return Some(Typed::Line(String::from_utf8_lossy(&line).into_owned()));
            }
            Edit::Interrupt => {
                out.extend(b"^C\r\n");
                self.prompt.clear();
                return Some(Typed::Interrupt);
            }
        }
        None
    }

    /// Client output: it continues the prompt, and the input typed so far moves after it.
    pub fn write(&mut self, text: &[u8], out: &mut VecDeque<u8>) {
        if text.is_empty() {
            return;
        }
        let typed = !self.editor.text().is_empty();
        if typed {
            // The input sits after the prompt: take it away and carry on from the prompt.
            out.extend(ERASE_LINE);
            out.extend(&self.prompt);
        }
        emit(text, out);
        match text.iter().rposition(|&b| b == b'\n') {
            Some(end) => self.prompt = text[end + 1..].to_vec(),
            None => self.prompt.extend_from_slice(text),
        }
        let excess = self.prompt.len().saturating_sub(MAX_PROMPT);
        self.prompt.drain(..excess);
        if typed {
            out.extend(self.editor.text());
        }
    }

    /// Kernel log bytes: each complete line is shown above the bottom line at once; the
    /// rest waits for its newline.
    pub fn log(&mut self, bytes: &[u8], out: &mut VecDeque<u8>) {
        self.partial_log.extend_from_slice(bytes);
        match self.partial_log.iter().rposition(|&b| b == b'\n') {
            Some(end) => {
                let lines: Vec<u8> = self.partial_log.drain(..=end).collect();
                self.show_log(&lines, out);
            }
            None if self.partial_log.len() > MAX_PARTIAL_LOG => self.flush_log(out),
            None => {}
        }
    }

    /// Show a waiting partial log line as a line of its own.
    pub fn flush_log(&mut self, out: &mut VecDeque<u8>) {
        if self.partial_log.is_empty() {
            return;
        }
        let mut line = core::mem::take(&mut self.partial_log);
        line.push(b'\n');
        self.show_log(&line, out);
    }

    fn show_log(&self, lines: &[u8], out: &mut VecDeque<u8>) {
        let bottom = !self.prompt.is_empty() || !self.editor.text().is_empty();
        if bottom {
            out.extend(ERASE_LINE);
        }
        emit(lines, out);
        if bottom {
            out.extend(&self.prompt);
            out.extend(self.editor.text());
        }
    }
}

/// Text as the terminal wants it: `\n` becomes `\r\n`.
fn emit(text: &[u8], out: &mut VecDeque<u8>) {
    for &byte in text {
        if byte == b'\n' {
            out.push_back(b'\r');
        }
        out.push_back(byte);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{format, vec};

    /// Drive a screen and collect what it sends, as text.
    #[derive(Default)]
    struct Terminal {
        screen: Screen,
        out: VecDeque<u8>,
        typed: Vec<Typed>,
    }

    impl Terminal {
        fn write(&mut self, text: &str) -> &mut Self {
            self.screen.write(text.as_bytes(), &mut self.out);
            self
        }
        fn log(&mut self, text: &str) -> &mut Self {
            self.screen.log(text.as_bytes(), &mut self.out);
            self
        }
        fn type_text(&mut self, text: &[u8]) -> &mut Self {
            for &byte in text {
                let typed = self.screen.type_byte(byte, &mut self.out);
                self.typed.extend(typed);
            }
            self
        }
        fn sent(&mut self) -> String {
            let bytes: Vec<u8> = self.out.drain(..).collect();
            String::from_utf8(bytes).unwrap()
        }
    }

    #[test]
    fn typing_echoes_and_enter_ends_the_prompt() {
        let mut t = Terminal::default();
        t.write("keel> ").type_text(b"pss\x7f\r");
        assert_eq!(t.sent(), "keel> pss\x08 \x08\r\n");
        assert_eq!(t.typed, [Typed::Line("ps".into())]);
        // The prompt is gone: a log line now needs no redraw.
        t.log("keel: hello\n");
        assert_eq!(t.sent(), "keel: hello\r\n");
    }

    #[test]
    fn a_log_line_goes_above_the_prompt_and_the_input() {
        let mut t = Terminal::default();
        t.write("keel> ").type_text(b"se").sent();
        t.log("keel: pid 7 started\n");
        assert_eq!(t.sent(), "\r\x1b[Kkeel: pid 7 started\r\nkeel> se");
        t.type_text(b"rvices\r");
        assert_eq!(t.typed, [Typed::Line("services".into())]);
    }

    #[test]
    fn partial_log_lines_wait_for_their_end_or_a_flush() {
        let mut t = Terminal::default();
        t.write("keel> ").sent();
        t.log("init: start");
        assert_eq!(t.sent(), "");
        assert!(t.screen.has_partial_log());
        t.log("ing\ninit: half");
        assert_eq!(t.sent(), "\r\x1b[Kinit: starting\r\nkeel> ");
        t.screen.flush_log(&mut t.out);
        assert_eq!(t.sent(), "\r\x1b[Kinit: half\r\nkeel> ");
        assert!(!t.screen.has_partial_log());
    }

    #[test]
    fn a_very_long_partial_log_line_is_shown_anyway() {
        let mut t = Terminal::default();
        let long = "x".repeat(MAX_PARTIAL_LOG + 1);
        t.log(&long);
        assert_eq!(t.sent(), format!("{long}\r\n"));
    }

    #[test]
    fn client_output_moves_typed_input_after_it() {
        let mut t = Terminal::default();
        t.write("keel> ").type_text(b"ab").sent();
        t.write("tick\n> ");
        assert_eq!(t.sent(), "\r\x1b[Kkeel> tick\r\n> ab");
        t.log("log\n");
        assert_eq!(t.sent(), "\r\x1b[Klog\r\n> ab");
    }

    #[test]
    fn kill_erases_every_character_and_ctrl_c_interrupts() {
        let mut t = Terminal::default();
        t.type_text("né\x15".as_bytes());
        assert_eq!(t.sent(), "né\x08 \x08\x08 \x08");
        t.write("keel> ").type_text(b"x\x03");
        assert_eq!(t.sent(), "keel> x^C\r\n");
        assert_eq!(t.typed, [Typed::Interrupt]);
        assert_eq!(t.screen.input(), b"");
    }

    #[test]
    fn the_prompt_kept_for_redraws_is_bounded() {
        let mut t = Terminal::default();
        t.write(&"p".repeat(MAX_PROMPT * 2)).type_text(b"a").sent();
        t.log("l\n");
        let redrawn = format!("\r\x1b[Kl\r\n{}a", "p".repeat(MAX_PROMPT));
        assert_eq!(t.sent(), redrawn);
    }

    #[test]
    fn a_full_line_rings_the_bell() {
        let mut t = Terminal::default();
        t.type_text(&vec![b'z'; crate::MAX_LINE + 1]);
        assert!(t.sent().ends_with("z\x07"));
    }
}
