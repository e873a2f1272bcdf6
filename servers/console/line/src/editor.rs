//! The line discipline: typed bytes become edits of one line of input.
//!
//! | typed | edit |
//! |---|---|
//! | a printable character (UTF-8 too) | insert it |
//! | Backspace (0x08) or DEL (0x7f) | erase the last character |
//! | Ctrl-U (0x15) | erase the whole line |
//! | Enter: CR or LF (CR LF counts once) | the line is complete |
//! | Ctrl-C (0x03) | the line is dropped, the pending read interrupted |
//! | escape sequences (arrow keys), other control characters | nothing |

use alloc::vec::Vec;

/// The longest line: further characters are refused (the terminal's bell rings).
pub const MAX_LINE: usize = 1024;

const BACKSPACE: u8 = 0x08;
const DELETE: u8 = 0x7f;
const CTRL_C: u8 = 0x03;
const CTRL_U: u8 = 0x15;
const ESCAPE: u8 = 0x1b;

/// What one typed byte did to the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// The byte was appended (part of a character, for multi-byte UTF-8).
    Insert(u8),
    /// The last character went.
    Erase,
    /// The whole line went; it held this many characters.
    Kill(usize),
    /// The line is complete (without its end).
    Enter(Vec<u8>),
    /// Ctrl-C: the line was dropped.
    Interrupt,
    /// The line is full: the byte was refused.
    Full,
    /// Nothing changed.
    Nothing,
}

/// Where the editor is inside an escape sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Start,
    /// After `ESC [`, until a final byte (0x40..=0x7e).
    Csi,
}

/// One line of input being typed.
#[derive(Debug, Default)]
pub struct Editor {
    line: Vec<u8>,
    escape: Escape,
    after_cr: bool,
}

impl Editor {
    pub fn new() -> Self {
        Editor::default()
    }

    /// The line so far.
    pub fn text(&self) -> &[u8] {
        &self.line
    }

    /// Apply one typed byte.
    pub fn feed(&mut self, byte: u8) -> Edit {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match self.escape {
            Escape::Start => {
                self.escape = if byte == b'[' {
                    Escape::Csi
                } else {
                    Escape::None
                };
                return Edit::Nothing;
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                }
                return Edit::Nothing;
            }
            Escape::None => {}
        }
        match byte {
            b'\n' if after_cr => Edit::Nothing,
            b'\r' | b'\n' => Edit::Enter(core::mem::take(&mut self.line)),
            BACKSPACE | DELETE => self.erase(),
            CTRL_U => self.kill(),
            CTRL_C => {
                self.line.clear();
                Edit::Interrupt
            }
            ESCAPE => {
                self.escape = Escape::Start;
                Edit::Nothing
            }
            // Tab and the other control characters have no meaning here.
            0..=0x1f => Edit::Nothing,
            _ if self.line.len() >= MAX_LINE => Edit::Full,
            _ => {
                self.line.push(byte);
                Edit::Insert(byte)
            }
        }
    }

    fn erase(&mut self) -> Edit {
        // A character starts at the last byte that is not a UTF-8 continuation byte.
        match self.line.iter().rposition(|&b| !is_continuation(b)) {
            Some(start) => {
                self.line.truncate(start);
                Edit::Erase
            }
            None if self.line.is_empty() => Edit::Nothing,
            // Only stray continuation bytes: they showed as one replacement character.
            None => {
                self.line.clear();
                Edit::Erase
            }
        }
    }

    fn kill(&mut self) -> Edit {
        let characters = self.line.iter().filter(|&&b| !is_continuation(b)).count();
        self.line.clear();
        match characters {
            0 => Edit::Nothing,
            n => Edit::Kill(n),
        }
    }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xc0 == 0x80
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn typed(editor: &mut Editor, bytes: &[u8]) -> Vec<Edit> {
        bytes.iter().map(|&b| editor.feed(b)).collect()
    }

    fn line_after(bytes: &[u8]) -> Option<Vec<u8>> {
        let mut editor = Editor::new();
        typed(&mut editor, bytes)
            .into_iter()
            .find_map(|edit| match edit {
                Edit::Enter(line) => Some(line),
                _ => None,
            })
    }

    #[test]
    fn enter_completes_the_line_without_its_end() {
        assert_eq!(line_after(b"ps\r"), Some(b"ps".to_vec()));
        assert_eq!(line_after(b"ps\n"), Some(b"ps".to_vec()));
        assert_eq!(line_after(b"ps"), None);
    }

    #[test]
    fn cr_lf_is_one_enter_but_two_crs_are_two() {
        let mut editor = Editor::new();
        let edits = typed(&mut editor, b"a\r\nb\r\r");
        let lines: Vec<_> = edits
            .into_iter()
            .filter_map(|e| match e {
                Edit::Enter(line) => Some(line),
                _ => None,
            })
            .collect();
        assert_eq!(lines, [b"a".to_vec(), b"b".to_vec(), vec![]]);
    }

    #[test]
    fn backspace_and_delete_erase_one_character() {
        assert_eq!(line_after(b"hellp\x7fo\r"), Some(b"hello".to_vec()));
        assert_eq!(line_after(b"ab\x08\x08\x08c\r"), Some(b"c".to_vec()));
        let mut editor = Editor::new();
        assert_eq!(editor.feed(DELETE), Edit::Nothing);
    }

    #[test]
    fn erasing_removes_a_whole_utf8_character() {
        let mut editor = Editor::new();
        typed(&mut editor, "aé€".as_bytes());
        assert_eq!(editor.feed(DELETE), Edit::Erase);
        assert_eq!(editor.text(), "aé".as_bytes());
        assert_eq!(editor.feed(BACKSPACE), Edit::Erase);
        assert_eq!(editor.text(), b"a");
    }

    #[test]
    fn ctrl_u_kills_the_line_counting_characters() {
        let mut editor = Editor::new();
        typed(&mut editor, "garbé".as_bytes());
        assert_eq!(editor.feed(CTRL_U), Edit::Kill(5));
        assert_eq!(editor.feed(CTRL_U), Edit::Nothing);
        assert_eq!(line_after(b"rm -rf\x15echo\r"), Some(b"echo".to_vec()));
    }

    #[test]
    fn ctrl_c_drops_the_line() {
        let mut editor = Editor::new();
        typed(&mut editor, b"abc");
        assert_eq!(editor.feed(CTRL_C), Edit::Interrupt);
        assert_eq!(editor.text(), b"");
    }

    #[test]
    fn escape_sequences_and_control_characters_are_swallowed() {
        // Up arrow, F5 (`ESC [ 1 5 ~`), Alt-x, a tab, a bell.
        assert_eq!(
            line_after(b"l\x1b[As\x1b[15~\x1bx\t\x07\r"),
            Some(b"ls".to_vec())
        );
    }

    #[test]
    fn a_full_line_refuses_more() {
        let mut editor = Editor::new();
        typed(&mut editor, &[b'x'; MAX_LINE]);
        assert_eq!(editor.feed(b'y'), Edit::Full);
        assert_eq!(editor.feed(DELETE), Edit::Erase);
        assert_eq!(editor.feed(b'y'), Edit::Insert(b'y'));
    }
}
