//! String-level resolution of a server's options: server section, then (for
//! inheritable keys) `[barman]`, then Barman's default, with `%(name)s`
//! interpolation and Barman's `None`/empty/quote rules.

use std::collections::{BTreeMap, BTreeSet};

use super::ini::{Entry, Ini, Origin, Section, interpolate, strip_quotes};
use super::keys::{SERVER_KEYS, Scope, is_raw_key};
use crate::error::Error;

/// The global section's name.
pub(crate) const GLOBAL: &str = "barman";
/// ConfigParser's defaults section: its keys are visible in every section.
pub(crate) const DEFAULT: &str = "DEFAULT";

/// One resolved value, after interpolation and quote stripping.
#[derive(Debug, Clone)]
pub(crate) struct RawValue {
    pub(crate) value: String,
    /// `None` when the value is a built-in default.
    pub(crate) origin: Option<Origin>,
    /// The section the value comes from (`barman` when inherited).
    pub(crate) section: String,
}

/// A server's options as strings.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    /// Typed options that have a value (set, inherited or defaulted).
    pub(crate) values: BTreeMap<&'static str, RawValue>,
    /// Options written in the server section or `[barman]` (not defaults).
    pub(crate) explicit: BTreeSet<&'static str>,
    /// Out-of-scope options kept raw (cloud, snapshot, ...).
    pub(crate) raw: BTreeMap<String, RawValue>,
}

/// The value of `key` in `section`, falling back to `[DEFAULT]` like ConfigParser.
pub(crate) fn entry<'a>(ini: &'a Ini, section: &str, key: &str) -> Option<&'a Entry> {
    ini.section(section)
        .and_then(|s| s.entries.get(key))
        .or_else(|| ini.section(DEFAULT).and_then(|s| s.entries.get(key)))
}

/// Reads `key` from `section` as Barman's `Config.get` does: interpolated,
/// `None` becomes empty, surrounding quotes stripped. `Ok(None)` = not present.
pub(crate) fn get(
    ini: &Ini,
    section: &str,
    key: &str,
    vars: &BTreeMap<String, String>,
) -> Result<Option<(String, Origin)>, Error> {
    let Some(e) = entry(ini, section, key) else {
        return Ok(None);
    };
    let value =
        interpolate_in(ini, section, &e.value, vars).map_err(|message| Error::ConfigRule {
            file: e.origin.file.clone(),
            line: e.origin.line,
            section: section.to_owned(),
            message: format!("{key}: {message}"),
        })?;
    let value = if value.eq_ignore_ascii_case("none") {
        String::new()
    } else {
        value
    };
    Ok(Some((strip_quotes(&value).to_owned(), e.origin.clone())))
}

/// Interpolates `value` as found in `section`: vars, then the section, then
/// `[barman]`, then `[DEFAULT]`.
pub(crate) fn interpolate_in(
    ini: &Ini,
    section: &str,
    value: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, String> {
    let lookup = |name: &str| {
        vars.get(name).map(|v| (v.clone(), false)).or_else(|| {
            entry(ini, section, name)
                .or_else(|| entry(ini, GLOBAL, name))
                .map(|e| (e.value.clone(), true))
        })
    };
    interpolate(value, &lookup)
}

/// Resolves every option of server `section`. `vars` holds `barman_home`,
/// `barman_lock_directory` (and receives `name` and each resolved option).
pub(crate) fn resolve_server(
    ini: &Ini,
    section: &Section,
    mut vars: BTreeMap<String, String>,
    errors: &mut Vec<Error>,
) -> Resolved {
    let mut out = Resolved::default();
    vars.insert("name".to_owned(), section.name.clone());
    for key in SERVER_KEYS {
        let mut found: Option<RawValue> = None;
        let mut cancelled = false;
        let mut sources = vec![section.name.as_str()];
        if key.scope == Scope::Global {
            sources.push(GLOBAL);
        }
        for src in sources {
            match get(ini, src, key.name, &vars) {
                Err(e) => {
                    errors.push(e);
                    cancelled = true;
                    break;
                }
                Ok(None) => {}
                Ok(Some((value, origin))) => {
                    out.explicit.insert(key.name);
                    if value.is_empty() {
                        // An empty value (or `None`) cancels inheritance and default.
                        cancelled = true;
                    } else {
                        found = Some(RawValue {
                            value,
                            origin: Some(origin),
                            section: src.to_owned(),
                        });
                    }
                    break;
                }
            }
        }
        if found.is_none()
            && !cancelled
            && let Some(template) = key.default
        {
            // Barman formats defaults with `%`: a missing reference yields "None" = unset.
            let lookup = |name: &str| vars.get(name).map(|v| (v.clone(), false));
            if let Ok(value) = interpolate(template, &lookup) {
                found = Some(RawValue {
                    value,
                    origin: None,
                    section: section.name.clone(),
                });
            }
        }
        if let Some(v) = found {
            vars.insert(key.name.to_owned(), v.value.clone());
            out.values.insert(key.name, v);
        }
    }
    // Out-of-scope options: server section first, then [barman].
    for src in [GLOBAL, section.name.as_str()] {
        let Some(sec) = ini.section(src) else {
            continue;
        };
        for key in sec.entries.keys().filter(|k| is_raw_key(k)) {
            match get(ini, src, key, &vars) {
                Err(e) => errors.push(e),
                Ok(None) => {}
                Ok(Some((value, origin))) => {
                    out.raw.insert(
                        key.clone(),
                        RawValue {
                            value,
                            origin: Some(origin),
                            section: src.to_owned(),
                        },
                    );
                }
            }
        }
    }
    out.raw.retain(|_, v| !v.value.is_empty());
    out
}
