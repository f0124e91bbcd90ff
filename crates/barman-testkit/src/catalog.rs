//! Reading a barman catalog and its directories as plain files, without the
//! crates under test: directory listings, the backup ids in `meta/`, the
//! names `xlog.db` lists.

use std::fs;
use std::io;
use std::path::Path;

/// The names of the entries directly in `dir`, sorted.
pub fn read_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = fs::read_dir(dir)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<Vec<String>>>()?;
    names.sort();
    Ok(names)
}

/// The names of the entries directly in `dir`, sorted; empty when `dir`
/// does not exist.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The names of the regular files directly in `dir`, sorted; empty when
/// `dir` does not exist.
pub fn file_names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// The backup ids of a server's `meta/` directory (its
/// `<id>-backup.info` files), oldest first (ids are timestamps).
pub fn backup_ids(meta: &Path) -> io::Result<Vec<String>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(meta)? {
        if let Some(id) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix("-backup.info"))
        {
            ids.push(id.to_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

/// The names an `xlog.db` text lists (its first column), in its order.
pub fn xlog_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `name` is a plain 24-hex-digit WAL segment name.
pub fn is_segment(name: &str) -> bool {
    name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit())
}
