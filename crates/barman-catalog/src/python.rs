//! Python literals as Barman writes them with `repr()` (and reads with
//! `ast.literal_eval`): str, int, float, None, True/False, tuple, list, dict.
//!
//! [`PyValue::parse`] accepts what `ast.literal_eval` accepts for these types
//! (both quote styles, the usual escapes, `u`/`r` prefixes, unary minus);
//! [`PyValue::to_repr`] prints exactly what CPython's `repr()` prints, so a
//! value Barman wrote reads and prints back byte-identically. Floats keep
//! their source text. One approximation: CPython escapes non-printable
//! non-ASCII characters using its Unicode database; here "non-printable" is
//! controls, non-ASCII spaces/separators, format characters, private use and
//! noncharacters, which matches CPython 3.11 (Unicode 14) on every assigned
//! code point; unassigned code points are treated as printable (CPython
//! escapes them).

mod parse;

use std::fmt::{self, Write as _};

use crate::Result;

/// A Python float: its value and the text it was read from (or Python's
/// `repr` of it), so that printing it back is byte-identical.
#[derive(Debug, Clone)]
pub struct PyFloat {
    value: f64,
    text: String,
}

impl PyFloat {
    /// A float printed as Python's `repr(value)` would.
    pub fn new(value: f64) -> Self {
        Self {
            value,
            text: float_repr(value),
        }
    }

    /// Parses a float literal (`1.5`, `-0.25`, `1e-05`, `3.`, `.5`, `inf`), keeping its text.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        let value = t.parse::<f64>().ok().filter(|_| looks_like_float(t));
        value
            .map(|value| Self {
                value,
                text: t.to_owned(),
            })
            .ok_or_else(|| crate::Error::InvalidCatalogValue {
                what: "float",
                value: shorten(text),
                reason: "not a decimal floating point number".into(),
            })
    }

    /// The numeric value.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// The text it prints as.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for PyFloat {
    fn eq(&self, other: &Self) -> bool {
        self.value.to_bits() == other.value.to_bits() || self.value == other.value
    }
}

impl fmt::Display for PyFloat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn looks_like_float(t: &str) -> bool {
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    matches!(body, "inf" | "nan")
        || (!body.is_empty()
            && body
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
            && body.chars().any(|c| c.is_ascii_digit()))
}

/// Formats `value` as CPython's `repr(float)`: shortest round-trip digits,
/// fixed notation for exponents -4..16, else `d.ddde+XX`.
pub fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{value:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let mut out = String::from(sign);
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
            out.push_str(&digits);
        } else {
            let point = usize::try_from(point).unwrap_or(0);
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
        out
    } else {
        let mut out = String::from(sign);
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
        out
    }
}

/// A Python literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer (Barman's are well within `i128`).
    Int(i128),
    /// A float, keeping its text.
    Float(PyFloat),
    /// A `str`.
    Str(String),
    /// A tuple.
    Tuple(Vec<PyValue>),
    /// A list.
    List(Vec<PyValue>),
    /// A dict, in insertion order.
    Dict(Vec<(PyValue, PyValue)>),
}

impl PyValue {
    /// Parses one Python literal (surrounding whitespace allowed).
    pub fn parse(text: &str) -> Result<Self> {
        parse::parse(text)
    }

    /// Prints the value exactly as CPython's `repr()` does.
    pub fn to_repr(&self) -> String {
        let mut out = String::new();
        self.write_repr(&mut out);
        out
    }

    fn write_repr(&self, out: &mut String) {
        match self {
            Self::None => out.push_str("None"),
            Self::Bool(true) => out.push_str("True"),
            Self::Bool(false) => out.push_str("False"),
            Self::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Self::Float(f) => out.push_str(f.as_str()),
            Self::Str(s) => out.push_str(&str_repr(s)),
            Self::Tuple(items) => {
                out.push('(');
                write_items(out, items);
                if items.len() == 1 {
                    out.push(',');
                }
                out.push(')');
            }
            Self::List(items) => {
                out.push('[');
                write_items(out, items);
                out.push(']');
            }
            Self::Dict(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_repr(out);
                    out.push_str(": ");
                    v.write_repr(out);
                }
                out.push('}');
            }
        }
    }

    /// Renders the value as Python's `json.dumps` would: tuples become arrays,
    /// dict keys become strings (`1` → `"1"`, `None` → `"null"`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Self::None => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(i) => i64::try_from(*i)
                .map(Value::from)
                .or_else(|_| u64::try_from(*i).map(Value::from))
                .unwrap_or_else(|_| Value::String(i.to_string())),
            Self::Float(f) => {
                serde_json::Number::from_f64(f.value()).map_or(Value::Null, Value::Number)
            }
            Self::Str(s) => Value::String(s.clone()),
            Self::Tuple(items) | Self::List(items) => {
                Value::Array(items.iter().map(Self::to_json).collect())
            }
            Self::Dict(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.json_key(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The Python value `json.loads` makes of `value`: arrays become lists,
    /// objects dicts with `str` keys, numbers `int` (when integral) or
    /// `float`.
    pub fn from_json(value: &serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Self::None,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .map_or_else(
                    || Self::Float(PyFloat::new(n.as_f64().unwrap_or(f64::NAN))),
                    Self::Int,
                ),
            Value::String(s) => Self::Str(s.clone()),
            Value::Array(items) => Self::List(items.iter().map(Self::from_json).collect()),
            Value::Object(map) => Self::Dict(
                map.iter()
                    .map(|(k, v)| (Self::Str(k.clone()), Self::from_json(v)))
                    .collect(),
            ),
        }
    }

    fn json_key(&self) -> String {
        match self {
            Self::Str(s) => s.clone(),
            Self::None => "null".into(),
            Self::Bool(b) => b.to_string(),
            other => other.to_repr(),
        }
    }

    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an `int`.
    pub fn as_int(&self) -> Option<i128> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The items, if this is a list or a tuple.
    pub fn as_seq(&self) -> Option<&[PyValue]> {
        match self {
            Self::List(items) | Self::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// Looks a `str` key up in a dict.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            Self::Dict(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

fn write_items(out: &mut String, items: &[PyValue]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        item.write_repr(out);
    }
}

/// CPython's `repr(str)`.
pub fn str_repr(s: &str) -> String {
    repr_of(s, false)
}

/// CPython's `ascii(str)`: [`str_repr`] with every non-ASCII character
/// escaped.
pub fn str_ascii(s: &str) -> String {
    repr_of(s, true)
}

fn repr_of(s: &str, ascii_only: bool) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c < ' ' || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_ascii() || (!ascii_only && is_printable(c)) => out.push(c),
            c => {
                let cp = c as u32;
                let _ = match cp {
                    0..=0xff => write!(out, "\\x{cp:02x}"),
                    0x100..=0xffff => write!(out, "\\u{cp:04x}"),
                    _ => write!(out, "\\U{cp:08x}"),
                };
            }
        }
    }
    out.push(quote);
    out
}

/// Approximation of CPython's `str.isprintable()` for non-ASCII characters.
fn is_printable(c: char) -> bool {
    let cp = c as u32;
    let format_char = matches!(
        cp,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
            | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
            | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
    );
    let private_or_nonchar = matches!(cp, 0xE000..=0xF8FF | 0xF_0000..=0x10_FFFF | 0xFDD0..=0xFDEF)
        || (cp & 0xFFFE) == 0xFFFE;
    !(c.is_control() || c.is_whitespace() || format_char || private_or_nonchar)
}

/// Shortens `text` for error messages.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(MAX).collect();
        s.push('…');
        s
    }
}
