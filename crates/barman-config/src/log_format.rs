//! `log_format`: a format string of Python's `logging.Formatter` (`%`
//! style, as Barman passes it), parsed once and rendered per log record.
//!
//! Every `%(field)` of Python's `LogRecord` that a log format may name is
//! here ([`LogField`]), with the printf conversion flags (`-`, `0`, `+`,
//! space, `#`), width, precision and conversions (`s r a c d i u o x X e E
//! f F g G`, `%%`) of Python's `%` operator, rendered as Python renders
//! them: `%(levelname)-8s`, `%(lineno)4d`, `%(created).3f`,
//! `%(msecs)03d`. A format Python's logging would refuse, or fail to
//! render at every record (an unknown field, `%(levelname)d`, a spec
//! without a field name, `*` widths, a truncated spec), is refused by
//! [`LogFormat::parse`] instead of losing log lines.
//!
//! What a field holds in barman-rs, where it cannot be what Python holds:
//! `name` is the tracing target in Barman's dotted style
//! (`barman.output`); `levelno` is 10/20/30/40/50 for
//! DEBUG/INFO/WARNING/ERROR/CRITICAL; `pathname`, `filename`, `module` and
//! `lineno` locate the log statement in barman-rs's sources; `funcName` is
//! Python's own placeholder `(unknown function)`, since tracing records no
//! function name (use `%(module)s` and `%(lineno)d` to locate a line);
//! `thread` is the kernel thread id (Python prints its opaque `pthread_t`
//! value); `processName` is `MainProcess`, `taskName` is `None` (no
//! asyncio tasks); `relativeCreated` counts milliseconds since barman set
//! up its logging; `msecs` is the whole milliseconds of `created` (as
//! Python 3.13 computes it).

use std::borrow::Cow;
use std::fmt;

use super::values::LogLevel;
use barman_catalog::python::{str_ascii, str_repr};

/// The widest field width or precision accepted: log lines stay bounded.
pub const MAX_LOG_FORMAT_WIDTH: usize = 1000;

/// A field of a log record: Python's `LogRecord` attributes a format may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogField {
    /// `asctime`: local time, `YYYY-MM-DD HH:MM:SS,mmm`.
    Asctime,
    /// `created`: seconds since the Unix epoch (a float).
    Created,
    /// `filename`: the file name part of `pathname`.
    Filename,
    /// `funcName`: always `(unknown function)` (tracing has no function name).
    FuncName,
    /// `levelname`: DEBUG, INFO, WARNING, ERROR or CRITICAL.
    Levelname,
    /// `levelno`: 10, 20, 30, 40 or 50.
    Levelno,
    /// `lineno`: the source line of the log statement (0 when unknown).
    Lineno,
    /// `message`: the logged message.
    Message,
    /// `module`: `filename` without its extension.
    Module,
    /// `msecs`: the milliseconds part of `created` (a float).
    Msecs,
    /// `name`: the logger name.
    Name,
    /// `pathname`: the source file of the log statement.
    Pathname,
    /// `process`: the process id.
    Process,
    /// `processName`: always `MainProcess`.
    ProcessName,
    /// `relativeCreated`: milliseconds since logging started (a float).
    RelativeCreated,
    /// `taskName`: always `None` (Python 3.12+: the asyncio task).
    TaskName,
    /// `thread`: the thread id.
    Thread,
    /// `threadName`: the thread's name (`MainThread` for the main thread).
    ThreadName,
}

/// Python's names of the fields, sorted.
const FIELDS: &[(&str, LogField)] = &[
    ("asctime", LogField::Asctime),
    ("created", LogField::Created),
    ("filename", LogField::Filename),
    ("funcName", LogField::FuncName),
    ("levelname", LogField::Levelname),
    ("levelno", LogField::Levelno),
    ("lineno", LogField::Lineno),
    ("message", LogField::Message),
    ("module", LogField::Module),
    ("msecs", LogField::Msecs),
    ("name", LogField::Name),
    ("pathname", LogField::Pathname),
    ("process", LogField::Process),
    ("processName", LogField::ProcessName),
    ("relativeCreated", LogField::RelativeCreated),
    ("taskName", LogField::TaskName),
    ("thread", LogField::Thread),
    ("threadName", LogField::ThreadName),
];

/// The Python type of a field's value, which decides the conversions it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Float,
    None,
}

impl LogField {
    /// The field called `name` (Python's spelling, case-sensitive).
    pub fn from_name(name: &str) -> Option<LogField> {
        FIELDS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    /// Python's name of the field.
    pub fn name(self) -> &'static str {
        FIELDS
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("", |(n, _)| n)
    }

    fn kind(self) -> Kind {
        match self {
            LogField::Levelno | LogField::Lineno | LogField::Process | LogField::Thread => {
                Kind::Int
            }
            LogField::Created | LogField::Msecs | LogField::RelativeCreated => Kind::Float,
            LogField::TaskName => Kind::None,
            _ => Kind::Str,
        }
    }
}

/// Why a `log_format` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LogFormatError(String);

/// One `%(field)...` conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    field: LogField,
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alternate: bool,
    width: usize,
    precision: Option<usize>,
    conversion: char,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Spec),
}

/// A parsed `log_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    text: String,
    pieces: Vec<Piece>,
}

impl Default for LogFormat {
    /// Barman's default, [`DEFAULT_LOG_FORMAT`](super::DEFAULT_LOG_FORMAT).
    fn default() -> Self {
        LogFormat::parse(super::DEFAULT_LOG_FORMAT).expect("Barman's default log format parses")
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a log line is made of. `time` is the record's creation time in
/// the local time zone (`asctime`, `created`, `msecs`).
#[derive(Debug, Clone)]
pub struct LogRecord<'a> {
    /// When the record was created, in the time zone `asctime` shows.
    pub time: &'a jiff::Zoned,
    /// Milliseconds since logging started (`relativeCreated`).
    pub relative_created_ms: f64,
    /// The logger name (`name`).
    pub name: &'a str,
    /// The level (`levelname`, `levelno`).
    pub level: LogLevel,
    /// The message (`message`).
    pub message: &'a str,
    /// The source file of the log statement (`pathname`), if known.
    pub pathname: Option<&'a str>,
    /// The source line of the log statement (`lineno`), if known.
    pub lineno: Option<u32>,
    /// The process id (`process`).
    pub process: u32,
    /// The thread id (`thread`).
    pub thread: u64,
    /// The thread name (`threadName`).
    pub thread_name: &'a str,
}

/// A field's value, typed as Python's `LogRecord` types it.
enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    None,
}

impl LogFormat {
    /// Parses a Python logging format (`%` style). The error says what is
    /// wrong and where (the offending `%(...)` spec).
    pub fn parse(text: &str) -> Result<LogFormat, LogFormatError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find('%') {
            literal.push_str(&rest[..pos]);
            let spec_text = &rest[pos..];
            if let Some(after) = spec_text.strip_prefix("%%") {
                literal.push('%');
                rest = after;
                continue;
            }
            let (spec, len) = parse_spec(spec_text)?;
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Field(spec));
            rest = &spec_text[len..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Field(_))) {
            return Err(LogFormatError(
                "the format has no `%(field)` conversion (Python's logging refuses it)".to_owned(),
            ));
        }
        Ok(LogFormat {
            text: text.to_owned(),
            pieces,
        })
    }

    /// The format as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the format names `field`.
    pub fn uses(&self, field: LogField) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Field(s) if s.field == field))
    }

    /// Appends the line of `record` (without a line terminator) to `out`.
    pub fn render(&self, record: &LogRecord<'_>, out: &mut String) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(spec) => spec.render(&record.value(spec.field), out),
            }
        }
    }
}

fn err(spec: &str, why: impl fmt::Display) -> LogFormatError {
    LogFormatError(format!("`{spec}`: {why}"))
}

/// Parses the spec at the start of `s` (which starts with `%`, not `%%`):
/// the spec and its length in bytes.
fn parse_spec(s: &str) -> Result<(Spec, usize), LogFormatError> {
    let bytes = s.as_bytes();
    let mut i = 1;
    // What the error quotes: the spec so far (at most a few characters past it).
    let shown = |end: usize| {
        let end = (end.min(s.len())..=s.len())
            .find(|e| s.is_char_boundary(*e))
            .unwrap_or(s.len());
        s[..end].to_owned()
    };
    if bytes.get(i) != Some(&b'(') {
        let end = s[1..]
            .find(|c: char| c.is_ascii_alphabetic())
            .map_or(s.len(), |e| e + 2);
        return Err(err(
            &shown(end),
            "a conversion without a field name (each must name one: `%(field)s`; `%%` is a literal `%`)",
        ));
    }
    // Python's key: up to the matching `)`, nested parentheses included.
    let mut depth = 1;
    let key_start = i + 1;
    i = key_start;
    while depth > 0 {
        match bytes.get(i) {
            None => {
                return Err(err(
                    &shown(s.len().min(key_start + 20)),
                    "incomplete `%(field)`: no closing `)`",
                ));
            }
            Some(b'(') => depth += 1,
            Some(b')') => depth -= 1,
            Some(_) => {}
        }
        i += 1;
    }
    let key = &s[key_start..i - 1];
    let mut spec = Spec {
        field: LogField::Message,
        left: false,
        zero: false,
        plus: false,
        space: false,
        alternate: false,
        width: 0,
        precision: None,
        conversion: 's',
    };
    while let Some(&b) = bytes.get(i) {
        match b {
            b'-' => spec.left = true,
            b'0' => spec.zero = true,
            b'+' => spec.plus = true,
            b' ' => spec.space = true,
            b'#' => spec.alternate = true,
            _ => break,
        }
        i += 1;
    }
    let number = |i: &mut usize| -> Result<Option<usize>, LogFormatError> {
        if bytes.get(*i) == Some(&b'*') {
            return Err(err(
                &shown(*i + 1),
                "`*` (a width or precision taken from an argument) cannot be used with named fields",
            ));
        }
        let start = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        if start == *i {
            return Ok(None);
        }
        match s[start..*i].parse::<usize>() {
            Ok(n) if n <= MAX_LOG_FORMAT_WIDTH => Ok(Some(n)),
            _ => Err(err(
                &shown(*i),
                format_args!(
                    "width or precision {} is too large (at most {MAX_LOG_FORMAT_WIDTH})",
                    &s[start..*i]
                ),
            )),
        }
    };
    spec.width = number(&mut i)?.unwrap_or(0);
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        spec.precision = Some(number(&mut i)?.unwrap_or(0));
    }
    // C's length modifiers, which Python accepts and ignores.
    if matches!(bytes.get(i), Some(b'h' | b'l' | b'L')) {
        i += 1;
    }
    let Some(conversion) = s[i..].chars().next() else {
        return Err(err(
            s,
            "incomplete spec: no conversion character (`s`, `d`, `f`, ...) at the end",
        ));
    };
    let end = i + conversion.len_utf8();
    let text = &s[..end];
    if !"sracdiuoxXeEfFgG".contains(conversion) {
        return Err(err(
            text,
            format_args!(
                "unsupported conversion character `{conversion}` (Python's are s r a c d i u o x X e E f F g G)"
            ),
        ));
    }
    spec.conversion = conversion;
    spec.field = LogField::from_name(key).ok_or_else(|| {
        let names: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
        err(
            text,
            format_args!(
                "unknown field `{key}` (the fields are {})",
                names.join(", ")
            ),
        )
    })?;
    let kind = spec.field.kind();
    let needs = match conversion {
        'c' | 'o' | 'x' | 'X' if kind != Kind::Int => Some("an integer"),
        'd' | 'i' | 'u' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G'
            if !matches!(kind, Kind::Int | Kind::Float) =>
        {
            Some("a number")
        }
        // `s`, `r`, `a` take anything.
        _ => None,
    };
    if let Some(needs) = needs {
        let is = match kind {
            Kind::Str => "text",
            Kind::Int => "an integer",
            Kind::Float => "a float",
            Kind::None => "None",
        };
        return Err(err(
            text,
            format_args!("`%{conversion}` needs {needs}, and `{key}` is {is} (use `s`)"),
        ));
    }
    Ok((spec, end))
}

impl LogRecord<'_> {
    fn value(&self, field: LogField) -> Value<'_> {
        let pathname = self.pathname.unwrap_or("(unknown file)");
        let filename = pathname.rsplit('/').next().unwrap_or(pathname);
        match field {
            LogField::Asctime => Value::Str(Cow::Owned(format!(
                "{},{:03}",
                self.time.strftime("%Y-%m-%d %H:%M:%S"),
                self.millis()
            ))),
            LogField::Created => {
                let ts = self.time.timestamp();
                #[allow(clippy::cast_precision_loss)] // seconds since 1970 fit in 53 bits
                let seconds = ts.as_second() as f64;
                Value::Float(seconds + f64::from(ts.subsec_nanosecond()) / 1e9)
            }
            LogField::Msecs => Value::Float(f64::from(self.millis())),
            LogField::RelativeCreated => Value::Float(self.relative_created_ms),
            LogField::Filename => Value::Str(Cow::Borrowed(filename)),
            LogField::Module => Value::Str(Cow::Borrowed(python_stem(filename))),
            LogField::Pathname => Value::Str(Cow::Borrowed(pathname)),
            LogField::Lineno => Value::Int(self.lineno.map_or(0, i64::from)),
            LogField::FuncName => Value::Str(Cow::Borrowed("(unknown function)")),
            LogField::Levelname => Value::Str(Cow::Borrowed(level_name(self.level))),
            LogField::Levelno => Value::Int(level_number(self.level)),
            LogField::Message => Value::Str(Cow::Borrowed(self.message)),
            LogField::Name => Value::Str(Cow::Borrowed(self.name)),
            LogField::Process => Value::Int(i64::from(self.process)),
            LogField::ProcessName => Value::Str(Cow::Borrowed("MainProcess")),
            LogField::Thread => Value::Int(i64::try_from(self.thread).unwrap_or(i64::MAX)),
            LogField::ThreadName => Value::Str(Cow::Borrowed(self.thread_name)),
            LogField::TaskName => Value::None,
        }
    }

    fn millis(&self) -> i32 {
        self.time.subsec_nanosecond() / 1_000_000
    }
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warning => "WARNING",
        LogLevel::Error => "ERROR",
        LogLevel::Critical => "CRITICAL",
    }
}

fn level_number(level: LogLevel) -> i64 {
    match level {
        LogLevel::Debug => 10,
        LogLevel::Info => 20,
        LogLevel::Warning => 30,
        LogLevel::Error => 40,
        LogLevel::Critical => 50,
    }
}

/// Python's `os.path.splitext(name)[0]`: the last `.ext` goes, unless the
/// dot only leads the name (`.bashrc`).
fn python_stem(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if name[..i].chars().any(|c| c != '.') => &name[..i],
        _ => name,
    }
}

impl Spec {
    fn render(&self, value: &Value<'_>, out: &mut String) {
        match self.conversion {
            's' | 'r' | 'a' => {
                let text: Cow<'_, str> = match (self.conversion, value) {
                    ('s', Value::Str(s)) => Cow::Borrowed(s.as_ref()),
                    ('s', _) => Cow::Owned(python_str(value)),
                    (c, Value::Str(s)) => {
                        Cow::Owned(if c == 'a' { str_ascii(s) } else { str_repr(s) })
                    }
                    (_, _) => Cow::Owned(python_str(value)),
                };
                let text = match self.precision {
                    Some(p) => match text.char_indices().nth(p) {
                        Some((cut, _)) => Cow::Owned(text[..cut].to_owned()),
                        None => text,
                    },
                    None => text,
                };
                self.pad("", &text, false, out);
            }
            'c' => {
                let c = match value {
                    Value::Int(n) => u32::try_from(*n)
                        .ok()
                        .and_then(char::from_u32)
                        .unwrap_or(char::REPLACEMENT_CHARACTER),
                    _ => char::REPLACEMENT_CHARACTER,
                };
                self.pad("", c.encode_utf8(&mut [0; 4]), false, out);
            }
            'd' | 'i' | 'u' | 'o' | 'x' | 'X' => {
                let (negative, digits) = match value {
                    Value::Int(n) => (*n < 0, self.int_digits(n.unsigned_abs())),
                    Value::Float(f) => {
                        // Python: int(x), truncated toward zero.
                        let t = f.trunc();
                        (t < 0.0, format!("{:.0}", t.abs()))
                    }
                    _ => (false, String::new()),
                };
                let digits = match self.precision {
                    Some(p) if digits.len() < p => {
                        format!("{}{digits}", "0".repeat(p - digits.len()))
                    }
                    _ => digits,
                };
                let prefix = match (self.alternate, self.conversion) {
                    (true, 'o') => "0o",
                    (true, 'x') => "0x",
                    (true, 'X') => "0X",
                    _ => "",
                };
                let sign = format!("{}{prefix}", self.sign(negative));
                self.pad(&sign, &digits, true, out);
            }
            _ => {
                let x = match value {
                    Value::Float(f) => *f,
                    #[allow(clippy::cast_precision_loss)] // as Python's float(int)
                    Value::Int(n) => *n as f64,
                    _ => 0.0,
                };
                let body = self.float_body(x.abs());
                let sign = self.sign(x.is_sign_negative() && !x.is_nan());
                self.pad(sign, &body, x.is_finite(), out);
            }
        }
    }

    fn int_digits(&self, n: u64) -> String {
        match self.conversion {
            'o' => format!("{n:o}"),
            'x' => format!("{n:x}"),
            'X' => format!("{n:X}"),
            _ => n.to_string(),
        }
    }

    fn sign(&self, negative: bool) -> &'static str {
        if negative {
            "-"
        } else if self.plus {
            "+"
        } else if self.space {
            " "
        } else {
            ""
        }
    }

    /// Pads `sign` + `body` to the width: spaces on the left (or right with
    /// `-`), zeros between sign and body for numbers with `0`.
    fn pad(&self, sign: &str, body: &str, numeric: bool, out: &mut String) {
        let len = sign.chars().count() + body.chars().count();
        let fill = self.width.saturating_sub(len);
        if self.left {
            out.push_str(sign);
            out.push_str(body);
            out.extend(std::iter::repeat_n(' ', fill));
        } else if self.zero && numeric {
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', fill));
            out.push_str(body);
        } else {
            out.extend(std::iter::repeat_n(' ', fill));
            out.push_str(sign);
            out.push_str(body);
        }
    }

    /// `%e`, `%f`, `%g` of a non-negative float, without sign.
    fn float_body(&self, x: f64) -> String {
        let upper = self.conversion.is_ascii_uppercase();
        if !x.is_finite() {
            let s = if x.is_nan() { "nan" } else { "inf" };
            return if upper {
                s.to_ascii_uppercase()
            } else {
                s.to_owned()
            };
        }
        let p = self.precision.unwrap_or(6);
        match self.conversion {
            'f' | 'F' => fixed(x, p, self.alternate),
            'e' | 'E' => exponent(x, p, self.alternate, upper),
            _ => {
                // %g: Python's (and C's) rule, from the exponent after rounding.
                let p = p.max(1);
                let exp = if x == 0.0 {
                    0
                } else {
                    split_exp(&format!("{:.*e}", p - 1, x)).1
                };
                let p_i = i64::try_from(p).unwrap_or(i64::MAX);
                let mut s = if -4 <= exp && exp < p_i {
                    let decimals = usize::try_from(p_i - 1 - exp).unwrap_or(0);
                    fixed(x, decimals, self.alternate)
                } else {
                    exponent(x, p - 1, self.alternate, upper)
                };
                if !self.alternate {
                    s = strip_fraction_zeros(&s);
                }
                s
            }
        }
    }
}

/// `%.{p}f`, with `#` keeping the point.
fn fixed(x: f64, p: usize, alternate: bool) -> String {
    let mut s = format!("{x:.p$}");
    if alternate && p == 0 {
        s.push('.');
    }
    s
}

/// `%.{p}e`: Python writes the exponent with a sign and two digits at least.
fn exponent(x: f64, p: usize, alternate: bool, upper: bool) -> String {
    let (mut mantissa, exp) = split_exp(&format!("{x:.p$e}"));
    if alternate && p == 0 {
        mantissa.push('.');
    }
    let e = if upper { 'E' } else { 'e' };
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}{e}{sign}{:02}", exp.unsigned_abs())
}

/// Rust's `1.5e-7` as (`1.5`, -7).
fn split_exp(s: &str) -> (String, i64) {
    match s.split_once('e') {
        Some((m, e)) => (m.to_owned(), e.parse().unwrap_or(0)),
        None => (s.to_owned(), 0),
    }
}

/// `%g` without `#`: trailing zeros of the fraction go, and a bare point.
fn strip_fraction_zeros(s: &str) -> String {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.')
    } else {
        mantissa
    };
    format!("{mantissa}{exp}")
}

/// Python's `str()` of a value.
fn python_str(value: &Value<'_>) -> String {
    match value {
        Value::Str(s) => s.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Float(f) => python_float_repr(*f),
        Value::None => "None".to_owned(),
    }
}

/// Python's `repr()` of a float: the shortest text that reads back as the
/// same float, `1e-05` / `1e+16` style beyond Python's bounds, `.0` on
/// whole numbers.
pub(crate) fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_owned();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let (mantissa, exp) = split_exp(&format!("{:e}", x.abs()));
    if !(-4..16).contains(&exp) {
        let e_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{e_sign}{:02}", exp.unsigned_abs());
    }
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // The point goes after `exp + 1` digits.
    let point = exp + 1;
    let n = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    let body = if point <= 0 {
        let zeros = usize::try_from(-point).unwrap_or(0);
        format!("0.{}{digits}", "0".repeat(zeros))
    } else if point >= n {
        let zeros = usize::try_from(point - n).unwrap_or(0);
        format!("{digits}{}.0", "0".repeat(zeros))
    } else {
        let at = usize::try_from(point).unwrap_or(0);
        format!("{}.{}", &digits[..at], &digits[at..])
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests;
