//! Recursive-descent parser for the Python literal subset.

use super::{PyFloat, PyValue, shorten};
use crate::{Error, Result};

const MAX_DEPTH: usize = 64;

pub(super) fn parse(text: &str) -> Result<PyValue> {
    let mut p = Parser { src: text, pos: 0 };
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != p.src.len() {
        return Err(p.error("unexpected text after the value"));
    }
    Ok(value)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, reason: &str) -> Error {
        Error::InvalidCatalogValue {
            what: "Python literal",
            value: shorten(self.src),
            reason: format!("{reason} at offset {}", self.pos),
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c') {
                self.pos += 1;
            } else if c == '\\' && self.peek_at(1) == Some('\n') {
                self.pos += 2;
            } else {
                break;
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<PyValue> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        match self.peek() {
            None => Err(self.error("expected a value")),
            Some('\'' | '"') => self.string(false).map(PyValue::Str),
            Some('(') => self.sequence(')', depth).map(|(items, trailing)| {
                // `(x)` is just x; `(x,)` and `()` are tuples.
                if items.len() == 1 && !trailing {
                    items.into_iter().next().unwrap_or(PyValue::None)
                } else {
                    PyValue::Tuple(items)
                }
            }),
            Some('[') => self
                .sequence(']', depth)
                .map(|(items, _)| PyValue::List(items)),
            Some('{') => self.dict(depth),
            Some(c) if c.is_ascii_digit() || matches!(c, '-' | '+' | '.') => self.number(),
            Some(c) if c.is_alphabetic() || c == '_' => self.word(),
            Some(_) => Err(self.error("unexpected character")),
        }
    }

    fn word(&mut self) -> Result<PyValue> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.bump();
        }
        let word = &self.src[start..self.pos];
        match word {
            "None" => Ok(PyValue::None),
            "True" => Ok(PyValue::Bool(true)),
            "False" => Ok(PyValue::Bool(false)),
            "u" | "U" | "r" | "R" if matches!(self.peek(), Some('\'' | '"')) => {
                self.string(matches!(word, "r" | "R")).map(PyValue::Str)
            }
            _ => {
                self.pos = start;
                Err(self.error("unknown name"))
            }
        }
    }

    /// Parses items up to `close`; returns them and whether a trailing comma was seen.
    fn sequence(&mut self, close: char, depth: usize) -> Result<(Vec<PyValue>, bool)> {
        self.bump();
        let mut items = Vec::new();
        let mut trailing = false;
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.bump();
                return Ok((items, trailing));
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.bump() {
                Some(',') => trailing = true,
                Some(c) if c == close => return Ok((items, false)),
                _ => return Err(self.error(&format!("expected `,` or `{close}`"))),
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Result<PyValue> {
        self.bump();
        let mut pairs = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some('}') {
                self.bump();
                return Ok(PyValue::Dict(pairs));
            }
            let key = self.value(depth + 1)?;
            self.skip_ws();
            if self.bump() != Some(':') {
                return Err(self.error("expected `:` in dict"));
            }
            self.skip_ws();
            let value = self.value(depth + 1)?;
            pairs.push((key, value));
            self.skip_ws();
            match self.bump() {
                Some(',') => {}
                Some('}') => return Ok(PyValue::Dict(pairs)),
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    fn number(&mut self) -> Result<PyValue> {
        let start = self.pos;
        let negative = match self.peek() {
            Some('-') => {
                self.bump();
                true
            }
            Some('+') => {
                self.bump();
                false
            }
            _ => false,
        };
        self.skip_ws();
        let body_start = self.pos;
        if self.src[self.pos..].starts_with("0x") || self.src[self.pos..].starts_with("0X") {
            self.pos += 2;
            let hex_start = self.pos;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_hexdigit() || c == '_')
            {
                self.bump();
            }
            let digits: String = self.src[hex_start..self.pos]
                .chars()
                .filter(|&c| c != '_')
                .collect();
            let v =
                i128::from_str_radix(&digits, 16).map_err(|_| self.error("invalid hex integer"))?;
            return Ok(PyValue::Int(if negative { -v } else { v }));
        }
        let mut is_float = false;
        while let Some(c) = self.peek() {
            match c {
                '0'..='9' | '_' => {}
                '.' => is_float = true,
                'e' | 'E' => {
                    is_float = true;
                    if matches!(self.peek_at(1), Some('+' | '-')) {
                        self.bump();
                    }
                }
                _ => break,
            }
            self.bump();
        }
        let body: String = self.src[body_start..self.pos]
            .chars()
            .filter(|&c| c != '_')
            .collect();
        if body.is_empty() {
            self.pos = start;
            return Err(self.error("expected a number"));
        }
        if is_float {
            let text = if negative { format!("-{body}") } else { body };
            return PyFloat::parse(&text)
                .map(PyValue::Float)
                .map_err(|_| self.error("invalid float"));
        }
        if body.len() > 1 && body.starts_with('0') && body.bytes().any(|b| b != b'0') {
            return Err(self.error("leading zeros in an integer"));
        }
        let v: i128 = body
            .parse()
            .map_err(|_| self.error("integer out of range"))?;
        Ok(PyValue::Int(if negative { -v } else { v }))
    }

    fn string(&mut self, raw: bool) -> Result<String> {
        let Some(quote) = self.bump() else {
            return Err(self.error("expected a string"));
        };
        if self.peek() == Some(quote) && self.peek_at(1) == Some(quote) {
            return Err(self.error("triple-quoted strings are not supported"));
        }
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(self.error("unterminated string"));
            };
            match c {
                c if c == quote => return Ok(out),
                '\n' => return Err(self.error("newline in a string")),
                '\\' if raw => {
                    // In raw strings the backslash stays, but still protects a quote.
                    out.push('\\');
                    if let Some(next) = self.bump() {
                        out.push(next);
                    }
                }
                '\\' => self.escape(&mut out)?,
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<()> {
        let Some(c) = self.bump() else {
            return Err(self.error("unterminated string"));
        };
        match c {
            '\n' => {}
            '\\' | '\'' | '"' => out.push(c),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '0'..='7' => {
                let mut v = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v).ok_or_else(|| self.error("invalid octal escape"))?);
            }
            'x' => out.push(self.hex_escape(2)?),
            'u' => out.push(self.hex_escape(4)?),
            'U' => out.push(self.hex_escape(8)?),
            other => {
                // Python keeps unknown escapes as they are (with a warning).
                out.push('\\');
                out.push(other);
            }
        }
        Ok(())
    }

    fn hex_escape(&mut self, len: usize) -> Result<char> {
        let end = self.pos + len;
        let digits = self
            .src
            .get(self.pos..end)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(digits) = digits else {
            return Err(self.error("truncated \\x, \\u or \\U escape"));
        };
        let cp = u32::from_str_radix(digits, 16).map_err(|_| self.error("invalid escape"))?;
        self.pos = end;
        char::from_u32(cp)
            .ok_or_else(|| self.error("escape is not a Unicode scalar value (surrogate?)"))
    }
}
