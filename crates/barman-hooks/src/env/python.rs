//! Text exactly as Python prints it: `json.dumps(obj, sort_keys=True)` and
//! `str(float)`, the two formats Barman puts into hook variables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A JSON scalar, as found in Barman's recovery options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonScalar {
    /// A string.
    Text(String),
    /// A boolean (`true` / `false`).
    Bool(bool),
    /// An integer.
    Int(i64),
}

impl JsonScalar {
    /// Python truthiness: `""`, `False` and `0` are false. Barman drops such
    /// recovery options before encoding them.
    pub fn is_truthy(&self) -> bool {
        match self {
            Self::Text(s) => !s.is_empty(),
            Self::Bool(b) => *b,
            Self::Int(i) => *i != 0,
        }
    }

    fn write(&self, out: &mut String) {
        match self {
            Self::Text(s) => write_string(s, out),
            Self::Bool(true) => out.push_str("true"),
            Self::Bool(false) => out.push_str("false"),
            Self::Int(i) => {
                let _ = write!(out, "{i}");
            }
        }
    }
}

/// `json.dumps(map, sort_keys=True)` with Python's default separators
/// (`", "` and `": "`) and `ensure_ascii=True`.
///
/// `BTreeMap` orders keys by their UTF-8 bytes, which is code-point order:
/// the order Python's `sort_keys` uses.
pub fn json_object(map: &BTreeMap<String, JsonScalar>) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_string(key, &mut out);
        out.push_str(": ");
        value.write(&mut out);
    }
    out.push('}');
    out
}

/// A JSON string literal with `ensure_ascii=True`: printable ASCII stays,
/// `"` and `\` are escaped, the usual control characters use their short
/// escapes, everything else becomes `\uXXXX` (lower-case hex, surrogate pairs
/// above U+FFFF).
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// `str(x)` for a Python float: the shortest text that reads back as the same
/// number, with `.0` on integral values and exponent notation (`1e+16`,
/// `1e-05`) outside `1e-4 <= |x| < 1e16`.
pub fn float_str(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let magnitude = x.abs();
    if x == 0.0 || (1e-4..1e16).contains(&magnitude) {
        if x.fract() == 0.0 {
            format!("{x:.1}")
        } else {
            format!("{x}")
        }
    } else {
        // Rust prints `1e16` / `1.5e-7`; Python wants a sign and two digits.
        let text = format!("{x:e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) => {
                let (sign, digits) = match exponent.strip_prefix('-') {
                    Some(digits) => ('-', digits),
                    None => ('+', exponent),
                };
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, JsonScalar)]) -> BTreeMap<String, JsonScalar> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn objects_match_python_json_dumps_sort_keys() {
        // python3 -c 'import json; print(json.dumps({"tbs2": "/b", "tbs1": "/a"}, sort_keys=True))'
        let m = map(&[
            ("tbs2", JsonScalar::Text("/b".into())),
            ("tbs1", JsonScalar::Text("/a".into())),
        ]);
        assert_eq!(json_object(&m), r#"{"tbs1": "/a", "tbs2": "/b"}"#);
        let m = map(&[
            ("target_tli", JsonScalar::Int(2)),
            ("target_immediate", JsonScalar::Bool(true)),
            ("standby_mode", JsonScalar::Bool(false)),
        ]);
        assert_eq!(
            json_object(&m),
            r#"{"standby_mode": false, "target_immediate": true, "target_tli": 2}"#
        );
        assert_eq!(json_object(&BTreeMap::new()), "{}");
    }

    #[test]
    fn strings_escape_like_ensure_ascii() {
        // json.dumps({"k": "a\"b\\c\n\t\x01\x7fé€😀"}) in Python 3
        let m = map(&[(
            "k",
            JsonScalar::Text("a\"b\\c\n\t\u{1}\u{7f}é€😀\r\u{8}\u{c}".into()),
        )]);
        assert_eq!(
            json_object(&m),
            r#"{"k": "a\"b\\c\n\t\u0001\u007f\u00e9\u20ac\ud83d\ude00\r\b\f"}"#
        );
    }

    #[test]
    fn keys_sort_by_code_point() {
        let m = map(&[
            ("b", JsonScalar::Int(1)),
            ("B", JsonScalar::Int(2)),
            ("é", JsonScalar::Int(3)),
            ("a_b", JsonScalar::Int(4)),
        ]);
        assert_eq!(
            json_object(&m),
            r#"{"B": 2, "a_b": 4, "b": 1, "\u00e9": 3}"#
        );
    }

    #[test]
    fn truthiness_matches_python() {
        assert!(!JsonScalar::Text(String::new()).is_truthy());
        assert!(!JsonScalar::Bool(false).is_truthy());
        assert!(!JsonScalar::Int(0).is_truthy());
        assert!(JsonScalar::Text("x".into()).is_truthy());
        assert!(JsonScalar::Int(-1).is_truthy());
    }

    #[test]
    fn floats_print_like_python_str() {
        for (x, python) in [
            (1_795_320_937.0, "1795320937.0"),
            (1_795_320_937.719_162, "1795320937.719162"),
            (0.5, "0.5"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (-3.0, "-3.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1.234_5e20, "1.2345e+20"),
            (9_999_999_999_999_998.0, "9999999999999998.0"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(float_str(x), python, "{x:?}");
        }
    }
}
