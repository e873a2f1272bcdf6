//! Just enough JSON for the benchmark files and the guest's result lines: a value type, a
//! strict parser, and a writer that indents. Hand-written because the shapes are small and
//! fixed, and the host tool has no other use for a JSON crate.

use std::fmt::{self, Write};

/// A JSON value. Objects keep their keys in order, so files read back as they were written.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The text of this value, indented by two spaces per level, ending without a newline.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0)
            .expect("writing to a String cannot fail");
        out
    }

    fn write(&self, out: &mut String, depth: usize) -> fmt::Result {
        let indent = |out: &mut String, depth: usize| {
            out.push('\n');
            out.push_str(&"  ".repeat(depth));
        };
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => write!(out, "{b}")?,
            Value::Number(n) => out.push_str(&number(*n)),
            Value::String(s) => write_string(out, s)?,
            Value::Array(items) if items.is_empty() => out.push_str("[]"),
            Value::Object(members) if members.is_empty() => out.push_str("{}"),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    out.push_str(if i == 0 { "" } else { "," });
                    indent(out, depth + 1);
                    item.write(out, depth + 1)?;
                }
                indent(out, depth);
                out.push(']');
            }
            Value::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    out.push_str(if i == 0 { "" } else { "," });
                    indent(out, depth + 1);
                    write_string(out, key)?;
                    out.push_str(": ");
                    value.write(out, depth + 1)?;
                }
                indent(out, depth);
                out.push('}');
            }
        }
        Ok(())
    }
}

/// A number as JSON (and people) write it: no `.0` on whole numbers, at most three
/// decimals otherwise (the figures are counts and their means).
pub fn number(n: f64) -> String {
    if !n.is_finite() {
        return "null".into();
    }
    if n.fract() == 0.0 && n.abs() < 1e15 {
        return format!("{n:.0}");
    }
    let text = format!("{n:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn write_string(out: &mut String, s: &str) -> fmt::Result {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32)?,
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(())
}

/// Parses one JSON value that makes up all of `text` (surrounding whitespace aside).
pub fn parse(text: &str) -> Result<Value, String> {
    let mut parser = Parser { text, at: 0 };
    let value = parser.value()?;
    parser.skip_whitespace();
    if parser.at != text.len() {
        return Err(parser.error("trailing characters"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.at)
    }

    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    fn skip_whitespace(&mut self) {
        while self
            .peek()
            .is_some_and(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
        {
            self.at += 1;
        }
    }

    fn expect(&mut self, wanted: char) -> Result<(), String> {
        match self.next() {
            Some(c) if c == wanted => Ok(()),
            _ => Err(self.error(&format!("expected `{wanted}`"))),
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, String> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("unknown literal"))
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_whitespace();
        match self.peek() {
            Some('{') => self.object(),
            Some('[') => self.array(),
            Some('"') => self.string().map(Value::String),
            Some('t') => self.literal("true", Value::Bool(true)),
            Some('f') => self.literal("false", Value::Bool(false)),
            Some('n') => self.literal("null", Value::Null),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some(_) => Err(self.error("unexpected character")),
            None => Err(self.error("unexpected end")),
        }
    }

    /// Items between `open` and `close`, separated by commas, each read by `item`.
    fn sequence<T>(
        &mut self,
        open: char,
        close: char,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        self.expect(open)?;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(items);
        }
        loop {
            items.push(item(self)?);
            self.skip_whitespace();
            match self.next() {
                Some(',') => continue,
                Some(c) if c == close => return Ok(items),
                _ => return Err(self.error(&format!("expected `,` or `{close}`"))),
            }
        }
    }

    fn object(&mut self) -> Result<Value, String> {
        let members = self.sequence('{', '}', |parser| {
            parser.skip_whitespace();
            let key = parser.string()?;
            parser.skip_whitespace();
            parser.expect(':')?;
            Ok((key, parser.value()?))
        })?;
        Ok(Value::Object(members))
    }

    fn array(&mut self) -> Result<Value, String> {
        self.sequence('[', ']', Self::value).map(Value::Array)
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect('"')?;
        let mut out = String::new();
        loop {
            match self.next() {
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape()?),
                Some(c) if (c as u32) < 0x20 => return Err(self.error("control character")),
                Some(c) => out.push(c),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    fn escape(&mut self) -> Result<char, String> {
        Ok(match self.next() {
            Some('"') => '"',
            Some('\\') => '\\',
            Some('/') => '/',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('u') => {
                let hex = self.text.get(self.at..self.at + 4).unwrap_or("");
                let code = u32::from_str_radix(hex, 16).map_err(|_| self.error("bad \\u"))?;
                self.at += 4;
                // Surrogate pairs never occur in our files; refuse rather than mangle them.
                char::from_u32(code).ok_or_else(|| self.error("unsupported \\u escape"))?
            }
            _ => return Err(self.error("bad escape")),
        })
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
        {
            self.at += 1;
        }
        let text = &self.text[start..self.at];
        text.parse::<f64>()
            .map(Value::Number)
            .map_err(|_| format!("bad number `{text}` at byte {start}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_guests_result_line() {
        let value =
            parse(r#"{"name":"yield_cross_as","min":650.5,"p99":1e3,"ok":true,"x":null}"#).unwrap();
        assert_eq!(
            value.get("name").and_then(Value::as_str),
            Some("yield_cross_as")
        );
        assert_eq!(value.get("min").and_then(Value::as_f64), Some(650.5));
        assert_eq!(value.get("p99").and_then(Value::as_f64), Some(1000.0));
        assert_eq!(value.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(value.get("x"), Some(&Value::Null));
        assert_eq!(value.get("missing"), None);
    }

    #[test]
    fn written_values_read_back_the_same() {
        let value = Value::Object(vec![
            ("mode".into(), Value::String("icount \"quoted\"\n".into())),
            (
                "results".into(),
                Value::Array(vec![Value::Number(-3.25), Value::Number(2318308.0)]),
            ),
            ("empty".into(), Value::Array(vec![])),
            ("nested".into(), Value::Object(vec![])),
        ]);
        let text = value.pretty();
        assert!(
            text.contains("\n  \"results\": [\n    -3.25,\n    2318308\n  ]"),
            "{text}"
        );
        assert_eq!(parse(&text).unwrap(), value);
    }

    #[test]
    fn numbers_are_written_plainly() {
        assert_eq!(number(70.0), "70");
        assert_eq!(number(650.5), "650.5");
        assert_eq!(number(2661.4712), "2661.471");
        assert_eq!(number(0.1 + 0.2), "0.3");
        assert_eq!(number(f64::NAN), "null");
    }

    #[test]
    fn malformed_text_is_refused_with_a_place() {
        for bad in [
            "{",
            "[1,]",
            "{\"a\" 1}",
            "tru",
            "\"open",
            "1 2",
            "{\"a\":01x}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            parse("[1, @]").unwrap_err(),
            "unexpected character at byte 4"
        );
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(
            parse(r#""a\"b\\c\u0041\n""#).unwrap(),
            Value::String("a\"b\\cA\n".into())
        );
    }
}
