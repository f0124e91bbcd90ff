//! Which files of a PostgreSQL data directory a base backup leaves out.
//!
//! [`Exclusions`] is a pure matcher over paths relative to the data directory
//! (or to a tablespace's root): it never touches the disk. The listing walks
//! the tree and asks [`Exclusions::is_excluded`] about every entry; an entry
//! that is [`Exclusion::Exclude`]d is not copied and, for a directory, not
//! descended into; an entry with [`Exclusion::ExcludeContents`] is created as
//! an empty directory (PostgreSQL needs it to exist, with its permissions).

mod postgres;
mod relation;

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// What a base backup does with one entry of the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exclusion {
    /// Copy it (and, for a directory, look at its entries).
    Include,
    /// Keep the directory itself, empty: its contents are recreated or
    /// useless after a restore.
    ExcludeContents,
    /// Leave it out entirely.
    Exclude,
}

/// Which entries a [`Rule`] matches, by the entry's own name and where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Matcher {
    /// An entry with exactly this name, at any depth.
    Name(Cow<'static, str>),
    /// An entry whose name starts with this prefix, at any depth.
    NamePrefix(Cow<'static, str>),
    /// An entry with exactly this name directly in the data directory.
    TopLevel(Cow<'static, str>),
    /// A temporary relation file (`t<backend>_<relnumber>[_<fork>][.<segment>]`)
    /// in a database directory (`base/<dboid>` or a tablespace's `PG_*/<dboid>`).
    TempRelation,
    /// A temporary file of barman-rs (`.<name>.<pid>.<n>.barman-tmp`,
    /// [`barman_fs::is_temp_name`]), at any depth.
    BarmanTemp,
}

impl Matcher {
    fn matches(&self, parents: &[&str], name: &str) -> bool {
        match self {
            Self::Name(n) => name == n,
            Self::NamePrefix(p) => name.starts_with(p.as_ref()),
            Self::TopLevel(n) => parents.is_empty() && name == n,
            Self::TempRelation => {
                relation::is_database_dir(parents) && relation::is_temp_relation(name)
            }
            Self::BarmanTemp => barman_fs::is_temp_name(name),
        }
    }

    fn pattern(&self) -> Option<&str> {
        match self {
            Self::Name(p) | Self::NamePrefix(p) | Self::TopLevel(p) => Some(p),
            Self::TempRelation | Self::BarmanTemp => None,
        }
    }
}

/// One exclusion rule: what it matches, what it does, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    matcher: Matcher,
    contents_only: bool,
    keep_empty: Vec<Cow<'static, str>>,
    reason: Cow<'static, str>,
}

impl Rule {
    /// A rule leaving matching entries (and everything under them) out.
    pub fn exclude(matcher: Matcher, reason: impl Into<Cow<'static, str>>) -> Result<Self> {
        Self::new(matcher, false, reason.into())
    }

    /// A rule keeping matching directories but none of their contents.
    pub fn exclude_contents(
        matcher: Matcher,
        reason: impl Into<Cow<'static, str>>,
    ) -> Result<Self> {
        Self::new(matcher, true, reason.into())
    }

    fn new(matcher: Matcher, contents_only: bool, reason: Cow<'static, str>) -> Result<Self> {
        if let Some(pattern) = matcher.pattern()
            && !is_file_name(pattern)
        {
            return Err(Error::InvalidPattern {
                pattern: pattern.to_owned(),
            });
        }
        Ok(Self {
            matcher,
            contents_only,
            keep_empty: Vec::new(),
            reason,
        })
    }

    /// For a contents-only rule: sub-directories to keep (empty) inside the
    /// matched directory, as `pg_wal/archive_status`.
    pub fn keep_empty_subdirs(
        mut self,
        names: impl IntoIterator<Item = impl Into<Cow<'static, str>>>,
    ) -> Result<Self> {
        for name in names {
            let name = name.into();
            if !is_file_name(&name) {
                return Err(Error::InvalidPattern {
                    pattern: name.into_owned(),
                });
            }
            self.keep_empty.push(name);
        }
        Ok(self)
    }

    /// What the rule matches.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// What the rule does to a matching entry: [`Exclusion::ExcludeContents`]
    /// or [`Exclusion::Exclude`].
    pub fn action(&self) -> Exclusion {
        if self.contents_only {
            Exclusion::ExcludeContents
        } else {
            Exclusion::Exclude
        }
    }

    /// Sub-directories kept (empty) inside a matched directory.
    pub fn kept_subdirs(&self) -> impl Iterator<Item = &str> {
        self.keep_empty.iter().map(AsRef::as_ref)
    }

    /// Why the rule exists.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Whether `s` is one non-empty path component.
fn is_file_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && s != "." && s != ".."
}

/// An ordered set of exclusion rules; for each entry the first matching rule decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    rules: Vec<Rule>,
}

impl Exclusions {
    /// No rules: everything is included.
    pub fn none() -> Self {
        Self::default()
    }

    /// The exclusions of PostgreSQL's own base backup (`basebackup.c`,
    /// PostgreSQL 15 to 18), plus `pg_xlog` for servers before 10, after
    /// the rule leaving out barman-rs's own temporary files
    /// ([`Matcher::BarmanTemp`]). See the README for the list and the
    /// reason for each rule.
    pub fn postgres_default() -> Self {
        let mut rules = vec![postgres::barman_temp_rule()];
        rules.extend(postgres::postgres_rules());
        Self { rules }
    }

    /// [`postgres_default`](Self::postgres_default) plus what Barman's rsync
    /// copy also leaves out: the contents of the server log directories
    /// `pg_log/` and `log/`, and `recovery.conf` and `standby.signal`.
    pub fn barman_rsync() -> Self {
        let mut rules = Self::postgres_default().rules;
        rules.extend(postgres::barman_rsync_rules());
        Self { rules }
    }

    /// Adds a rule after the existing ones.
    pub fn push(&mut self, rule: Rule) {
        self.rules.push(rule);
    }

    /// The rules, in the order they are tried.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// What to do with the entry at `relative_path` (relative to the data
    /// directory or tablespace root; `.` components are ignored).
    ///
    /// `is_dir` is true for a directory or a symbolic link to one: PostgreSQL
    /// follows a symlinked `pg_wal` or excluded directory and writes a plain
    /// empty directory in its place. A non-directory matched by a
    /// contents-only rule is excluded.
    pub fn is_excluded(&self, relative_path: &Path, is_dir: bool) -> Exclusion {
        self.decide(relative_path, is_dir).0
    }

    /// The rule that decides `relative_path`, if any (the same decision as
    /// [`is_excluded`](Self::is_excluded); for an entry inside an excluded
    /// directory, the directory's rule).
    pub fn explain(&self, relative_path: &Path, is_dir: bool) -> Option<&Rule> {
        self.decide(relative_path, is_dir).1
    }

    fn decide(&self, relative_path: &Path, is_dir: bool) -> (Exclusion, Option<&Rule>) {
        let names = components(relative_path);
        let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        for (depth, name) in names.iter().enumerate() {
            let is_last = depth + 1 == names.len();
            let Some(rule) = self
                .rules
                .iter()
                .find(|r| r.matcher.matches(&names[..depth], name))
            else {
                continue;
            };
            if !rule.contents_only {
                return (Exclusion::Exclude, Some(rule));
            }
            if is_last {
                let action = if is_dir {
                    Exclusion::ExcludeContents
                } else {
                    Exclusion::Exclude
                };
                return (action, Some(rule));
            }
            // Inside a contents-only directory: only the kept sub-directories
            // survive, as empty directories.
            let child = names[depth + 1];
            let kept_child =
                depth + 2 == names.len() && is_dir && rule.keep_empty.iter().any(|k| k == child);
            let action = if kept_child {
                Exclusion::ExcludeContents
            } else {
                Exclusion::Exclude
            };
            return (action, Some(rule));
        }
        (Exclusion::Include, None)
    }

    /// For a relation file of an unlogged relation's non-init fork, the path
    /// of its init fork (`base/16384/16400` → `base/16384/16400_init`).
    ///
    /// PostgreSQL leaves out every fork of an unlogged relation except the
    /// init fork (the relation is reset from it at startup): the listing
    /// excludes `relative_path` when the returned file exists. `None` for
    /// anything that is not a main/fsm/vm fork file in a database directory
    /// or `global`.
    pub fn unlogged_init_fork(relative_path: &Path) -> Option<PathBuf> {
        let names = components(relative_path);
        let (name, parents) = names.split_last()?;
        let parents: Vec<&str> = parents.iter().map(AsRef::as_ref).collect();
        if !relation::is_relation_dir(&parents) {
            return None;
        }
        let (relnumber, fork) = relation::parse_relation(name)?;
        if fork == "init" {
            return None;
        }
        let parent = relative_path.parent().unwrap_or(Path::new(""));
        Some(parent.join(format!("{relnumber}_init")))
    }
}

/// The normal components of a path, as text (`.`, `/` and prefixes dropped).
fn components(path: &Path) -> Vec<Cow<'_, str>> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_string_lossy()),
            Component::ParentDir => Some(Cow::Borrowed("..")),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
