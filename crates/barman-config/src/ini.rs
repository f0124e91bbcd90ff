//! An INI reader faithful to Python's `ConfigParser` in non-strict mode, as
//! Barman uses it, plus `%(name)s` interpolation.
//!
//! Rules: `[section]` headers (names are case-sensitive), `key = value` or
//! `key: value` (keys lower-cased, values stripped), `#`/`;` comment lines,
//! indented lines continue the previous value (joined with `\n`), duplicate
//! sections merge and a later key wins. Every value keeps its origin.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where a value was written: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

/// One `key = value` entry, value not yet interpolated.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: String,
    pub(crate) origin: Origin,
}

/// One section (all occurrences merged).
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub(crate) name: String,
    pub(crate) origin: Origin,
    pub(crate) entries: BTreeMap<String, Entry>,
}

/// A parsed set of INI files.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ini {
    /// Sections in order of first appearance.
    pub(crate) sections: Vec<Section>,
}

/// The continuation state while reading.
struct Current {
    section: usize,
    key: Option<(String, usize)>,
    /// Blank lines seen inside the current value (kept only if it continues).
    pending_blank: usize,
}

impl Ini {
    /// Parses `text` (read from `path`). All syntax errors are reported together.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut ini = Ini::default();
        let mut errors = Vec::new();
        let mut cur: Option<Current> = None;
        for (idx, raw_line) in text.lines().enumerate() {
            let lineno = idx + 1;
            let line = raw_line.trim_end_matches('\r');
            let stripped = line.trim();
            let indent = line.len() - line.trim_start().len();
            if stripped.starts_with('#') || stripped.starts_with(';') {
                continue;
            }
            if stripped.is_empty() {
                if let Some(c) = cur.as_mut()
                    && c.key.is_some()
                {
                    c.pending_blank += 1;
                }
                continue;
            }
            // Continuation of the previous value.
            if let Some(c) = cur.as_mut()
                && let Some((key, key_indent)) = &c.key
                && indent > *key_indent
            {
                let entry = ini.sections[c.section]
                    .entries
                    .get_mut(key)
                    .expect("the current key was inserted when it was read");
                for _ in 0..c.pending_blank {
                    entry.value.push('\n');
                }
                c.pending_blank = 0;
                entry.value.push('\n');
                entry.value.push_str(stripped);
                continue;
            }
            let origin = Origin {
                file: path.to_path_buf(),
                line: lineno,
            };
            if let Some(rest) = stripped.strip_prefix('[')
                && let Some(end) = rest.rfind(']')
                && end > 0
            {
                let name = &rest[..end];
                let section = ini.section_index_or_insert(name, origin);
                cur = Some(Current {
                    section,
                    key: None,
                    pending_blank: 0,
                });
                continue;
            }
            let Some(c) = cur.as_mut() else {
                errors.push(Error::ConfigSyntax {
                    file: path.to_path_buf(),
                    line: lineno,
                    message: format!("option before any [section] header: `{stripped}`"),
                });
                continue;
            };
            let Some(sep) = stripped.find(['=', ':']) else {
                errors.push(Error::ConfigSyntax {
                    file: path.to_path_buf(),
                    line: lineno,
                    message: format!("expected `key = value` or a [section] header: `{stripped}`"),
                });
                c.key = None;
                continue;
            };
            let key = stripped[..sep].trim_end().to_lowercase();
            if key.is_empty() {
                errors.push(Error::ConfigSyntax {
                    file: path.to_path_buf(),
                    line: lineno,
                    message: format!("empty option name: `{stripped}`"),
                });
                c.key = None;
                continue;
            }
            let value = stripped[sep + 1..].trim().to_owned();
            ini.sections[c.section]
                .entries
                .insert(key.clone(), Entry { value, origin });
            c.key = Some((key, indent));
            c.pending_blank = 0;
        }
        match errors.len() {
            0 => Ok(ini),
            1 => Err(errors.remove(0)),
            _ => Err(Error::ConfigErrors(errors)),
        }
    }

    fn section_index_or_insert(&mut self, name: &str, origin: Origin) -> usize {
        if let Some(i) = self.sections.iter().position(|s| s.name == name) {
            return i;
        }
        self.sections.push(Section {
            name: name.to_owned(),
            origin,
            entries: BTreeMap::new(),
        });
        self.sections.len() - 1
    }

    /// Merges `other` into `self`: its sections are added or merged, its keys win.
    pub(crate) fn merge(&mut self, other: Ini) {
        for section in other.sections {
            let i = self.section_index_or_insert(&section.name, section.origin);
            self.sections[i].entries.extend(section.entries);
        }
    }

    /// The section called `name`, if any.
    pub(crate) fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// Maximum nesting of `%(name)s` references (Python's limit is 10 too).
const MAX_DEPTH: usize = 10;

/// Most `%(name)s` references expanded for one value, nested ones included.
/// Python has no such limit: ten levels of a few references each expand
/// millions of times (a value of gigabytes, or minutes of work for
/// references to empty values); a real configuration needs a handful.
const MAX_REFERENCES: usize = 1000;

/// Longest value interpolation may produce.
const MAX_VALUE: usize = 1 << 20;

/// Expands `%(name)s` references and `%%` in `value`.
///
/// `lookup` returns the raw (not yet interpolated) value of a name and whether
/// it must itself be interpolated. Errors are plain messages; the caller adds
/// the origin. More than [`MAX_REFERENCES`] references in all, or a value
/// longer than [`MAX_VALUE`], is an error.
pub(crate) fn interpolate(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<(String, bool)>,
) -> Result<String, String> {
    interpolate_depth(value, lookup, 0, &std::cell::Cell::new(MAX_REFERENCES))
}

fn interpolate_depth(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<(String, bool)>,
    depth: usize,
    references_left: &std::cell::Cell<usize>,
) -> Result<String, String> {
    if depth > MAX_DEPTH {
        return Err("interpolation nested too deeply (a reference loop?)".to_owned());
    }
    if !value.contains('%') {
        return Ok(value.to_owned());
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(r) = after.strip_prefix('%') {
            out.push('%');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(') {
            let Some(close) = r.find(")s") else {
                return Err(format!(
                    "bad interpolation syntax in `{value}` (expected `%(name)s`)"
                ));
            };
            let name = r[..close].to_lowercase();
            let Some(left) = references_left.get().checked_sub(1) else {
                return Err(format!(
                    "too many `%(name)s` references to expand (more than {MAX_REFERENCES})"
                ));
            };
            references_left.set(left);
            let Some((raw, needs_interp)) = lookup(&name) else {
                return Err(format!("`%({name})s` refers to an option that is not set"));
            };
            if needs_interp {
                out.push_str(&interpolate_depth(
                    &raw,
                    lookup,
                    depth + 1,
                    references_left,
                )?);
            } else {
                out.push_str(&raw);
            }
            if out.len() > MAX_VALUE {
                return Err(format!(
                    "the value is longer than {MAX_VALUE} bytes once interpolated"
                ));
            }
            rest = &r[close + 2..];
        } else {
            return Err(format!("`%` must be followed by `%` or `(` in `{value}`"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Strips one pair of matching surrounding quotes (`"..."` or `'...'`).
pub(crate) fn strip_quotes(value: &str) -> &str {
    let b = value.as_bytes();
    if b.len() >= 2
        && (b[0] == b'"' || b[0] == b'\'')
        && b[b.len() - 1] == b[0]
        && !value.contains('\n')
    {
        &value[1..value.len() - 1]
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Ini> {
        Ini::parse(text, Path::new("/t.conf"))
    }

    #[test]
    fn separators_comments_case_and_strip() {
        let ini = parse("# c\n; c\n[S]\nKey = v1 \nother:  v2\n  # indented comment\n").unwrap();
        let s = ini.section("S").unwrap();
        assert_eq!(s.entries["key"].value, "v1");
        assert_eq!(s.entries["other"].value, "v2");
        assert_eq!(s.entries["other"].origin.line, 5);
        assert!(
            ini.section("s").is_none(),
            "section names are case-sensitive"
        );
    }

    #[test]
    fn continuation_lines_and_inner_blank_lines() {
        let ini = parse("[s]\nk = a\n  b\n\n  c\n\nz = 1\n").unwrap();
        let s = ini.section("s").unwrap();
        assert_eq!(s.entries["k"].value, "a\nb\n\nc");
        assert_eq!(s.entries["z"].value, "1");
    }

    #[test]
    fn duplicates_later_wins_and_sections_merge() {
        let ini = parse("[a]\nx = 1\ny = 2\n[b]\n[a]\nx = 3\n").unwrap();
        assert_eq!(ini.sections.len(), 2);
        let a = ini.section("a").unwrap();
        assert_eq!(a.entries["x"].value, "3");
        assert_eq!(a.entries["x"].origin.line, 6);
        assert_eq!(a.entries["y"].value, "2");
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let e = parse("x = 1\n").unwrap_err().to_string();
        assert!(e.starts_with("/t.conf:1:"), "{e}");
        let e = parse("[a]\nx = 1\nnot an option\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/t.conf:3:"), "{e}");
        let e = parse("[a]\n= 1\n").unwrap_err().to_string();
        assert!(e.contains("/t.conf:2:"), "{e}");
        // Both errors are reported.
        let e = parse("[a]\nbad\nworse\n").unwrap_err().to_string();
        assert!(e.contains("/t.conf:2:") && e.contains("/t.conf:3:"), "{e}");
    }

    #[test]
    fn interpolation_rules() {
        let look = |n: &str| match n {
            "home" => Some(("/h".to_owned(), false)),
            "dir" => Some(("%(home)s/d".to_owned(), true)),
            "loop" => Some(("%(loop)s".to_owned(), true)),
            _ => None,
        };
        assert_eq!(interpolate("%(DIR)s/x", &look).unwrap(), "/h/d/x");
        assert_eq!(interpolate("100%% %(home)s", &look).unwrap(), "100% /h");
        assert!(interpolate("%(nope)s", &look).unwrap_err().contains("nope"));
        assert!(interpolate("50%", &look).is_err());
        assert!(interpolate("%(loop)s", &look).is_err());
    }

    /// Ten levels of five references each expand to 5^10 (~10 million)
    /// copies: refused at once instead of allocating and looping.
    #[test]
    fn interpolation_bombs_are_refused() {
        let look = |n: &str| -> Option<(String, bool)> {
            let level: usize = n.strip_prefix('v')?.parse().ok()?;
            Some(if level == 10 {
                ("x".to_owned(), false)
            } else {
                (format!("%(v{})s", level + 1).repeat(5), true)
            })
        };
        let start = std::time::Instant::now();
        let e = interpolate("%(v0)s", &look).unwrap_err();
        assert!(e.contains("too many"), "{e}");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        // The same with references that expand to nothing: time, no memory.
        let empty = |n: &str| -> Option<(String, bool)> {
            let level: usize = n.strip_prefix('v')?.parse().ok()?;
            Some(if level == 10 {
                (String::new(), false)
            } else {
                (format!("%(v{})s", level + 1).repeat(5), true)
            })
        };
        assert!(interpolate("%(v0)s", &empty).is_err());
        // Ordinary nesting stays fine.
        let chain = |n: &str| -> Option<(String, bool)> {
            let level: usize = n.strip_prefix('v')?.parse().ok()?;
            Some(if level == 10 {
                ("/srv".to_owned(), false)
            } else {
                (format!("%(v{})s/{level}", level + 1), true)
            })
        };
        assert_eq!(
            interpolate("%(v0)s", &chain).unwrap(),
            "/srv/9/8/7/6/5/4/3/2/1/0"
        );
    }

    #[test]
    fn quotes() {
        assert_eq!(strip_quotes("\"a b\""), "a b");
        assert_eq!(strip_quotes("'a'"), "a");
        assert_eq!(strip_quotes("\"a'"), "\"a'");
        assert_eq!(strip_quotes("\""), "\"");
    }
}
