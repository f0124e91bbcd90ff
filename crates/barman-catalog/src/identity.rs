//! `identity.json`: the PostgreSQL cluster a server's catalog belongs to.

use std::path::Path;

use serde_json::{Map, Value};

use crate::fs::{FILE_MODE, read_optional, write_atomic};
use crate::{Error, Result};

/// Content of `identity.json`: `{"systemid": "...", "version": "15"}`.
///
/// Barman 3.20 writes `version` as a string (the major version); an integer
/// is accepted too and written back as it was read. Unknown keys are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// PostgreSQL system identifier.
    pub systemid: String,
    /// PostgreSQL major version (`"15"`).
    pub version: String,
    version_is_number: bool,
    extra: Map<String, Value>,
}

impl Identity {
    /// A new identity, written the way Barman 3.20 writes it.
    pub fn new(systemid: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            systemid: systemid.into(),
            version: version.into(),
            version_is_number: false,
            extra: Map::new(),
        }
    }

    /// Parses identity.json text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let bad = |message: String| Error::CatalogSyntax {
            path: origin.to_path_buf(),
            line: 0,
            message,
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let Value::Object(mut map) = value else {
            return Err(bad("expected a JSON object".into()));
        };
        let systemid = match map.shift_remove("systemid") {
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(bad("missing or invalid `systemid`".into())),
        };
        let (version, version_is_number) = match map.shift_remove("version") {
            Some(Value::String(s)) => (s, false),
            Some(Value::Number(n)) => (n.to_string(), true),
            _ => return Err(bad("missing or invalid `version`".into())),
        };
        Ok(Self {
            systemid,
            version,
            version_is_number,
            extra: map,
        })
    }

    /// Reads `path`; `None` if it does not exist.
    pub fn read(path: &Path) -> Result<Option<Self>> {
        read_optional(path)?
            .map(|text| Self::parse(&text, path))
            .transpose()
    }

    /// The file content: JSON with 4-space indent and a final newline.
    pub fn to_file_string(&self) -> String {
        use serde::Serialize as _;
        let mut map = Map::new();
        map.insert("systemid".into(), Value::String(self.systemid.clone()));
        let version = match self.version.parse::<u64>() {
            Ok(n) if self.version_is_number => Value::from(n),
            _ => Value::String(self.version.clone()),
        };
        map.insert("version".into(), version);
        map.extend(self.extra.clone());
        let mut buf = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(
            &mut buf,
            serde_json::ser::PrettyFormatter::with_indent(b"    "),
        );
        // Serializing a Map of JSON values into a Vec cannot fail.
        let _ = Value::Object(map).serialize(&mut ser);
        let mut text = String::from_utf8(buf).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes `path` atomically (mode 0600).
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_file_string().as_bytes(), FILE_MODE)
    }
}
