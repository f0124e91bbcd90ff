//! How barman-cloud walks a directory into a tar, step for step:
//! `CloudUploadController.upload_directory` (Python's `os.walk` top-down,
//! in directory order, unsorted; each directory before its files, then
//! its subdirectories), the include and exclude rules of
//! `barman.fs.path_allowed`, and `TarFile.gettarinfo` (an `lstat` made
//! into the header fields, user and group names included).
//!
//! Two backups of the same unchanged directory therefore list the same
//! members in the same order as barman-cloud does (the order the file
//! system returns, as `os.scandir` does).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tarfile::{Kind, Member, Mtime};

/// `barman.postgres_plumbing.PGDATA_EXCLUDE_LIST`.
pub(crate) const PGDATA_EXCLUDE_LIST: &[&str] = &[
    "/pg_log/*",
    "/log/*",
    "/pg_xlog/*",
    "/pg_wal/*",
    "/global/pg_control",
];

/// `barman.postgres_plumbing.EXCLUDE_LIST`.
pub(crate) const EXCLUDE_LIST: &[&str] = &[
    "pgsql_tmp*",
    "postgresql.auto.conf.tmp",
    "current_logfiles.tmp",
    "pg_internal.init",
    "postmaster.pid",
    "postmaster.opts",
    "recovery.conf",
    "standby.signal",
    "**/[0-9]*/t[0-9]*_[0-9]*",
    "pg_dynshmem/*",
    "pg_notify/*",
    "pg_replslot/*",
    "pg_serial/*",
    "pg_stat_tmp/*",
    "pg_snapshots/*",
    "pg_subtrans/*",
];

/// The include and exclude rules of one walk (`path_allowed`): a path
/// that matches an include rule is taken, else one that matches an
/// exclude rule is left out, else it is taken.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    exclude: Vec<String>,
    include: Vec<String>,
}

impl Rules {
    /// PGDATA's walk (`_backup_data_files`): Barman's two lists and
    /// `extra` (the tablespaces: `/pg_tblspc/<oid>`, and a location inside
    /// PGDATA).
    pub(crate) fn pgdata(extra: impl IntoIterator<Item = String>) -> Self {
        let exclude = PGDATA_EXCLUDE_LIST
            .iter()
            .chain(EXCLUDE_LIST)
            .map(|s| (*s).to_owned())
            .chain(extra)
            .collect();
        Self {
            exclude,
            include: Vec::new(),
        }
    }

    /// A tablespace's walk: everything at its top is left out but the
    /// `PG_<major>_*` directories (`exclude=["/*"] + EXCLUDE_LIST`,
    /// `include=["/PG_<major>_*"]`).
    pub(crate) fn tablespace(major: &str) -> Self {
        Self {
            exclude: std::iter::once("/*")
                .chain(EXCLUDE_LIST.iter().copied())
                .map(str::to_owned)
                .collect(),
            include: vec![format!("/PG_{major}_*")],
        }
    }

    /// `path_allowed(exclude, include, path, is_dir)`.
    pub(crate) fn allowed(&self, path: &[u8], is_dir: bool) -> bool {
        let units = units(path);
        if match_path(&self.include, &units, is_dir) {
            return true;
        }
        !match_path(&self.exclude, &units, is_dir)
    }
}

/// A path as Python's `str` of it: its characters, a byte that is not
/// UTF-8 as the surrogate `surrogateescape` makes of it.
fn units(path: &[u8]) -> Vec<u32> {
    let mut out = Vec::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        out.extend(chunk.valid().chars().map(u32::from));
        out.extend(chunk.invalid().iter().map(|&b| 0xDC00 + u32::from(b)));
    }
    out
}

/// `barman.fs._match_path`: a rule ending in `/` applies to directories
/// only; one starting with `/` is anchored, any other also matches as a
/// suffix (`**/rule`).
fn match_path(rules: &[String], path: &[u32], is_dir: bool) -> bool {
    rules.iter().any(|rule| {
        let mut rule = rule.as_str();
        if let Some(r) = rule.strip_suffix('/') {
            if !is_dir {
                return false;
            }
            rule = r;
        }
        let (rule, anchored) = match rule.strip_prefix('/') {
            Some(r) => (r, true),
            None => (rule, false),
        };
        wildcard_match(path, rule) || (!anchored && wildcard_match(path, &format!("**/{rule}")))
    })
}

/// One element of a pattern (`_translate_to_regexp`).
#[derive(Debug, Clone, Copy)]
enum Token {
    /// `**`: any characters, `/` included (`.*`).
    Deep,
    /// `*`: any characters but `/` (`[^/]*`).
    Shallow,
    /// `?`: one character (`.`, with `(?s)`).
    One,
    /// A literal character.
    Lit(u32),
}

/// Whether the whole `path` matches `pattern` (`re.match` of the pattern
/// translated, which ends in `\Z`).
fn wildcard_match(path: &[u32], pattern: &str) -> bool {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                tokens.push(Token::Deep);
                i += 1;
            }
            '*' => tokens.push(Token::Shallow),
            '?' => tokens.push(Token::One),
            c => tokens.push(Token::Lit(u32::from(c))),
        }
        i += 1;
    }
    // reach[j]: the tokens so far can match path[..j].
    let n = path.len();
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    let slash = u32::from('/');
    for token in tokens {
        let mut next = vec![false; n + 1];
        match token {
            Token::Deep => {
                let mut any = false;
                for j in 0..=n {
                    any |= reach[j];
                    next[j] = any;
                }
            }
            Token::Shallow => {
                let mut any = false;
                for j in 0..=n {
                    if j > 0 && path[j - 1] == slash {
                        any = false;
                    }
                    any |= reach[j];
                    next[j] = any;
                }
            }
            Token::One => {
                next[1..].copy_from_slice(&reach[..n]);
            }
            Token::Lit(c) => {
                for j in 0..n {
                    next[j + 1] = reach[j] && path[j] == c;
                }
            }
        }
        reach = next;
    }
    reach[n]
}

/// One directory of the walk, as `os.walk` yields it.
#[derive(Debug)]
pub(crate) struct WalkDir {
    /// `os.path.relpath(root, top)`: `.` for the top.
    pub rel: Vec<u8>,
    /// The directory.
    pub path: PathBuf,
    /// The names of its entries that are not directories (a symbolic link
    /// to a directory counts as a directory, and is neither listed here
    /// nor descended into).
    pub files: Vec<OsString>,
}

impl WalkDir {
    /// `os.path.join(rel, name)`: `./name` at the top.
    pub(crate) fn child_rel(&self, name: &OsString) -> Vec<u8> {
        join(&self.rel, name.as_bytes())
    }
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = rel.to_vec();
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

/// `os.walk(top)`, top-down, in the order the file system lists entries.
#[derive(Debug)]
pub(crate) struct Walk {
    /// Directories still to list, the next one last.
    pending: Vec<(Vec<u8>, PathBuf)>,
    top: bool,
}

impl Walk {
    /// The walk of `top` (followed if it is a link, as `os.scandir` does).
    pub(crate) fn new(top: &Path) -> Self {
        Self {
            pending: vec![(b".".to_vec(), top.to_path_buf())],
            top: true,
        }
    }

    /// One directory listed: its subdirectories and the rest, in order.
    fn list(path: &Path) -> io::Result<(Vec<OsString>, Vec<OsString>)> {
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let file_type = entry.file_type()?;
            // `DirEntry.is_dir()` follows a symbolic link.
            let is_dir = file_type.is_dir()
                || (file_type.is_symlink() && fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()));
            if is_dir {
                dirs.push(entry.file_name());
            } else {
                files.push(entry.file_name());
            }
        }
        Ok((dirs, files))
    }
}

impl Iterator for Walk {
    type Item = Result<WalkDir, (PathBuf, io::Error)>;

    /// The next directory. A directory that vanished is skipped (and so is
    /// a link to a directory: `os.walk` does not follow links); any other
    /// error ends the walk, where `os.walk` would skip the directory
    /// silently.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (rel, path) = self.pending.pop()?;
            let top = std::mem::replace(&mut self.top, false);
            if !top && fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                continue;
            }
            let (dirs, files) = match Self::list(&path) {
                Ok(listed) => listed,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !top => continue,
                Err(e) => return Some(Err((path, e))),
            };
            for name in dirs.iter().rev() {
                let child = if top {
                    name.as_bytes().to_vec()
                } else {
                    join(&rel, name.as_bytes())
                };
                self.pending.push((child, path.join(name)));
            }
            return Some(Ok(WalkDir { rel, path, files }));
        }
    }
}

/// User and group names by id, looked up once each (`pwd.getpwuid`,
/// `grp.getgrgid`: through NSS with `getent`, else from `/etc/passwd` and
/// `/etc/group`); an unknown id has an empty name, as in Python.
#[derive(Debug, Default)]
pub(crate) struct Names {
    users: HashMap<u32, Vec<u8>>,
    groups: HashMap<u32, Vec<u8>>,
}

impl Names {
    /// The name of user `uid`.
    pub(crate) fn user(&mut self, uid: u32) -> Vec<u8> {
        self.users
            .entry(uid)
            .or_insert_with(|| lookup("passwd", uid))
            .clone()
    }

    /// The name of group `gid`.
    pub(crate) fn group(&mut self, gid: u32) -> Vec<u8> {
        self.groups
            .entry(gid)
            .or_insert_with(|| lookup("group", gid))
            .clone()
    }
}

/// The name of `id` in `database` (`passwd` or `group`).
fn lookup(database: &str, id: u32) -> Vec<u8> {
    let id_text = id.to_string();
    let entries = match Command::new("getent").args([database, &id_text]).output() {
        Ok(out) if out.status.success() => out.stdout,
        // getent ran: the id is unknown (status 2).
        Ok(_) => return Vec::new(),
        Err(_) => fs::read(Path::new("/etc").join(database)).unwrap_or_default(),
    };
    entries
        .split(|&b| b == b'\n')
        .find_map(|line| {
            let mut fields = line.split(|&b| b == b':');
            let name = fields.next()?;
            let _password = fields.next()?;
            (fields.next()? == id_text.as_bytes()).then(|| name.to_vec())
        })
        .unwrap_or_default()
}

/// What `gettarinfo` found: a member, and what `TarFile` needs for hard
/// links.
#[derive(Debug)]
pub(crate) struct Found {
    /// The member.
    pub member: Member,
    /// `(st_ino, st_dev)`.
    pub inode: (u64, u64),
    /// `st_nlink`.
    pub nlink: u64,
}

/// A member as `TarFile.gettarinfo(path, arcname)` makes it from
/// `os.lstat(path)`, with the inode and its link count for hard links;
/// `None` for a socket (which tarfile leaves out).
///
/// # Errors
/// The `lstat` (or `readlink`) error; `NotFound` when the file vanished.
pub(crate) fn gettarinfo(
    path: &Path,
    arcname: Vec<u8>,
    names: &mut Names,
) -> io::Result<Option<Found>> {
    let meta = fs::symlink_metadata(path)?;
    let file_type = meta.file_type();
    let rdev = || {
        let dev = meta.rdev();
        (rustix::fs::major(dev), rustix::fs::minor(dev))
    };
    let kind = if file_type.is_file() {
        Kind::Regular
    } else if file_type.is_dir() {
        Kind::Dir
    } else if file_type.is_fifo() {
        Kind::Fifo
    } else if file_type.is_symlink() {
        Kind::Symlink(fs::read_link(path)?.into_os_string().into_vec())
    } else if file_type.is_char_device() {
        let (major, minor) = rdev();
        Kind::Char { major, minor }
    } else if file_type.is_block_device() {
        let (major, minor) = rdev();
        Kind::Block { major, minor }
    } else {
        return Ok(None);
    };
    let size = if kind == Kind::Regular { meta.len() } else { 0 };
    let member = Member {
        name: arcname,
        kind,
        mode: meta.mode(),
        uid: u64::from(meta.uid()),
        gid: u64::from(meta.gid()),
        size,
        mtime: Mtime::from_stat(meta.mtime(), meta.mtime_nsec()),
        uname: names.user(meta.uid()),
        gname: names.group(meta.gid()),
    };
    Ok(Some(Found {
        member,
        inode: (meta.ino(), meta.dev()),
        nlink: meta.nlink(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barmans_rules_as_path_allowed_applies_them() {
        let data = Rules::pgdata(["/pg_tblspc/16385".to_owned()]);
        // The WAL directory is kept, its contents are not (archive_status
        // included: a directory that matches is left out with its files).
        assert!(data.allowed(b"pg_wal", true));
        assert!(!data.allowed(b"pg_wal/000000010000000000000001", false));
        assert!(!data.allowed(b"pg_wal/archive_status", true));
        assert!(!data.allowed(b"global/pg_control", false));
        assert!(data.allowed(b"global/1262", false));
        // Unanchored rules match at the top (`./name`) and below.
        assert!(!data.allowed(b"./postmaster.pid", false));
        assert!(!data.allowed(b"global/pg_internal.init", false));
        assert!(!data.allowed(b"base/1/pgsql_tmp", true));
        // Barman's temporary-relation rule escapes `[0-9]` into a literal:
        // it never matches a real file.
        assert!(data.allowed(b"base/5/t3_16384", false));
        assert!(data.allowed(b"base/5/16384", false));
        assert!(!data.allowed(b"pg_stat_tmp/global.stat", false));
        assert!(data.allowed(b"pg_stat_tmp", true));
        assert!(!data.allowed(b"pg_tblspc/16385", false));
        assert!(data.allowed(b".", true));
        assert!(data.allowed(b"./PG_VERSION", false));

        let ts = Rules::tablespace("15");
        assert!(!ts.allowed(b".", true));
        assert!(ts.allowed(b"PG_15_202209061", true));
        assert!(!ts.allowed(b"PG_16_202307071", true));
        assert!(ts.allowed(b"PG_15_202209061/5", true));
        assert!(ts.allowed(b"PG_15_202209061/5/16385", false));
    }

    #[test]
    fn wildcards_follow_barmans_translation() {
        let u = |s: &str| units(s.as_bytes());
        assert!(wildcard_match(&u("a/b/c"), "**"));
        assert!(wildcard_match(&u("abc"), "*"));
        assert!(!wildcard_match(&u("a/c"), "*"));
        assert!(wildcard_match(&u("a/c"), "a?c"));
        assert!(!wildcard_match(&u("abcd"), "abc"));
        assert!(!wildcard_match(
            &u("x/y/1/t2_3"),
            "**/[0-9]*/t[0-9]*_[0-9]*"
        ));
        // `[` is a literal in Barman's patterns.
        assert!(wildcard_match(
            &u("x/[0-9]9/t[0-9]_[0-9]"),
            "**/[0-9]*/t[0-9]*_[0-9]*"
        ));
        // A byte that is not UTF-8 is one character.
        assert!(wildcard_match(&units(b"a\xffc"), "a?c"));
    }

    #[test]
    fn the_walk_lists_a_directory_before_its_files_then_its_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("top"), "x").unwrap();
        fs::write(root.join("a/f"), "x").unwrap();
        fs::write(root.join("a/b/g"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("link-to-dir")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("dangling")).unwrap();
        let walked: Vec<(String, Vec<String>)> = Walk::new(root)
            .map(|d| {
                let d = d.unwrap();
                let mut files: Vec<String> = d
                    .files
                    .iter()
                    .map(|f| String::from_utf8(d.child_rel(f)).unwrap())
                    .collect();
                files.sort();
                (String::from_utf8(d.rel).unwrap(), files)
            })
            .collect();
        assert_eq!(
            walked,
            vec![
                (".".into(), vec!["./dangling".into(), "./top".into()]),
                ("a".into(), vec!["a/f".into()]),
                ("a/b".into(), vec!["a/b/g".into()]),
            ]
        );
    }
}
