//! Typed access to a server's resolved strings, collecting errors and warnings.

use std::path::{Path, PathBuf};

use super::resolve::{RawValue, Resolved};
use super::values::{parse_bool, parse_int};
use crate::error::Error;

/// Typed access to resolved strings, collecting errors and warnings.
pub(crate) struct Ctx<'a> {
    pub(crate) r: &'a Resolved,
    pub(crate) file: &'a Path,
    pub(crate) name: &'a str,
    pub(crate) errors: &'a mut Vec<Error>,
    pub(crate) warnings: &'a mut Vec<String>,
}

impl Ctx<'_> {
    pub(crate) fn location(&self, v: &RawValue) -> (PathBuf, usize) {
        v.origin.as_ref().map_or_else(
            || (self.file.to_path_buf(), 0),
            |o| (o.file.clone(), o.line),
        )
    }

    pub(crate) fn string(&self, key: &str) -> Option<String> {
        self.r.values.get(key).map(|v| v.value.clone())
    }

    pub(crate) fn parse<T>(
        &mut self,
        key: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let r = self.r;
        let v = r.values.get(key)?;
        match f(&v.value) {
            Ok(t) => Some(t),
            Err(allowed) => {
                self.value_error(key, v, allowed);
                None
            }
        }
    }

    pub(crate) fn value_error(&mut self, key: &str, v: &RawValue, allowed: String) {
        let (file, line) = self.location(v);
        self.errors.push(Error::ConfigValue {
            file,
            line,
            section: v.section.clone(),
            option: key.to_owned(),
            value: v.value.as_str().into(),
            allowed: allowed.into(),
        });
    }

    pub(crate) fn rule(&mut self, key: &str, message: String) {
        let r = self.r;
        let Some(v) = r.values.get(key) else { return };
        let (file, line) = self.location(v);
        self.errors.push(Error::ConfigRule {
            file,
            line,
            section: v.section.clone(),
            message,
        });
    }

    pub(crate) fn warn(&mut self, key: &str, message: &str) {
        let r = self.r;
        let Some(v) = r.values.get(key) else { return };
        let (file, line) = self.location(v);
        self.warnings.push(format!(
            "{}:{line}: [{}] {key}: {message}",
            file.display(),
            v.section
        ));
    }

    pub(crate) fn bool(&mut self, key: &str, default: bool) -> bool {
        self.parse(key, parse_bool).unwrap_or(default)
    }

    pub(crate) fn int<T: TryFrom<i64>>(&mut self, key: &str, min: i64) -> Option<T> {
        self.parse(key, |v| parse_int(v, min, i64::MAX))
    }

    pub(crate) fn path(&self, key: &str) -> Option<PathBuf> {
        self.string(key).map(PathBuf::from)
    }
}
