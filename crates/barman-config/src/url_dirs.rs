//! Catalog directories written as URLs: Barman 3.20 keeps such a catalog in
//! cloud storage; barman-rs refuses them as configuration errors until it
//! does too.

use super::ctx::Ctx;

/// The catalog directory options, which must be local paths.
const DIRECTORY_KEYS: [&str; 7] = [
    "backup_directory",
    "basebackups_directory",
    "errors_directory",
    "incoming_wals_directory",
    "streaming_wals_directory",
    "wals_directory",
    "xlogdb_directory",
];

/// Refuses (as a configuration error naming the option) a catalog directory
/// written as a URL (`s3://...`, `gs://...`, `https://<account>.blob.core.windows.net/...`):
/// Barman 3.20 keeps such a catalog in cloud storage, which barman-rs does
/// not do yet; taken as a path it would be a relative directory `./s3:`.
pub(crate) fn refuse_url_directories(c: &mut Ctx<'_>) {
    for key in DIRECTORY_KEYS {
        let Some(value) = c.string(key).filter(|_| c.r.explicit.contains(key)) else {
            continue;
        };
        if is_url(&value) {
            c.rule(
                key,
                format!(
                    "{key} = {value}: a URL is not a directory (a catalog in cloud storage is not implemented by barman-rs yet)"
                ),
            );
        }
    }
}

/// Whether `value` starts with a URL scheme (`scheme://`).
pub(crate) fn is_url(value: &str) -> bool {
    value.trim().split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}
