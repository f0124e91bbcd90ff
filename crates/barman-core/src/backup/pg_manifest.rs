//! PostgreSQL's `backup_manifest` (format version 1) for an rsync backup, so
//! that `pg_verifybackup` can check it (Barman's `generate-manifest` and
//! `autogenerate_manifest`).
//!
//! The manifest covers `base/<id>/data` (tablespaces live beside it in
//! Barman's layout, not under `pg_tblspc/`, so `pg_verifybackup` on the data
//! directory does not look for them); SHA256 per file; the WAL range of the
//! backup; the manifest's own SHA256 over every byte up to its last line.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};
use barman_catalog::{BackupInfo, ServerLayout};

/// The file name PostgreSQL uses.
pub const BACKUP_MANIFEST: &str = "backup_manifest";

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex_lower(&hasher.finalize()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Every regular file under `root` (relative `/` paths, sorted), symlinks not followed.
fn files_under(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| Error::io("cannot list", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("cannot list", &dir, e))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("cannot stat", &path, e))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                if rel != BACKUP_MANIFEST {
                    out.push((rel, path));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// JSON string literal.
fn json_str(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// Writes `base/<id>/data/backup_manifest` for `info` (durably, 0600) and
/// returns its path.
pub fn generate(layout: &ServerLayout, info: &BackupInfo) -> Result<PathBuf> {
    let data = layout.backup_dir(info.backup_id()).join("data");
    let (Some(start), Some(end), Some(timeline)) =
        (info.begin_xlog(), info.end_xlog(), info.timeline()?)
    else {
        return Err(Error::BackupRefused(format!(
            "backup {} has no begin/end LSN or timeline: cannot write a backup_manifest",
            info.backup_id()
        )));
    };
    let mut text = String::from("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [");
    for (i, (rel, path)) in files_under(&data)?.iter().enumerate() {
        let meta = fs::metadata(path).map_err(|e| Error::io("cannot stat", path, e))?;
        let mtime = jiff::Timestamp::try_from(
            meta.modified()
                .map_err(|e| Error::io("cannot stat", path, e))?,
        )
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let _ = write!(
            text,
            "{}\n{{ \"Path\": {}, \"Size\": {}, \"Last-Modified\": \"{}\", \"Checksum-Algorithm\": \"SHA256\", \"Checksum\": \"{}\" }}",
            if i == 0 { "" } else { "," },
            json_str(rel),
            meta.len(),
            mtime.strftime("%Y-%m-%d %H:%M:%S GMT"),
            sha256_file(path)?
        );
    }
    let _ = write!(
        text,
        "\n],\n\"WAL-Ranges\": [\n{{ \"Timeline\": {timeline}, \"Start-LSN\": \"{start}\", \"End-LSN\": \"{end}\" }}\n],\n"
    );
    let checksum = hex_lower(&Sha256::digest(text.as_bytes()));
    let _ = writeln!(text, "\"Manifest-Checksum\": \"{checksum}\"}}");
    let path = data.join(BACKUP_MANIFEST);
    barman_catalog::fs::write_atomic(&path, text.as_bytes(), barman_catalog::fs::FILE_MODE)?;
    Ok(path)
}
