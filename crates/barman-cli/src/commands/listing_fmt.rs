//! Formatting shared by the listing commands: Python's `ctime()`, `{:.2%}`,
//! Barman's sorted JSON keys and its `key: value` rows.

use jiff::Zoned;
use serde_json::{Map, Value};

/// Python's `datetime.ctime()`: `Sun Nov 22 04:15:37 2026` (day of month
/// padded with a space), in the time's own offset.
pub fn ctime(t: &Zoned) -> String {
    barman_core::catalog::pytime::to_python_ctime(t)
}

/// Python's `str(int(timestamp))` of a time.
pub fn epoch_text(t: &Zoned) -> String {
    t.timestamp().as_second().to_string()
}

/// Python's `"{:.2%}".format(ratio)`.
pub fn percent(ratio: f64) -> String {
    format!("{:.2}%", ratio * 100.0)
}

/// A non-negative float byte count as Python's `int()` truncates it.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "byte counts are non-negative and far below 2^53"
)]
pub fn whole(bytes: f64) -> u64 {
    bytes.max(0.0) as u64
}

/// The value with every object's keys sorted, as Barman dumps its JSON
/// (`sort_keys=True`).
pub fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut pairs: Vec<(String, Value)> = map.into_iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// `  Key                    : value` (the key padded to `width`).
pub fn row(indent: usize, width: usize, key: &str, value: impl std::fmt::Display) -> String {
    format!("{:indent$}{key:<width$}: {value}", "")
}
