//! Rewriting the recovered cluster's configuration files
//! (BARMAN-BEHAVIOUR.md §8.1 step 9): `archive_command` neutralised,
//! earlier recovery targets commented out, settings that point outside the
//! data directory reported.

use crate::event::recovery::{Change, Warning};

/// The prefix of lines barman comments out.
pub const BARMAN_PREFIX: &str = "#BARMAN#";

/// Settings that may point outside the recovered directory: reported, not
/// changed.
const OUTSIDE: &[&str] = &[
    "data_directory",
    "config_file",
    "hba_file",
    "ident_file",
    "external_pid_file",
    "unix_socket_directory",
    "unix_socket_directories",
    "include",
    "include_if_exists",
    "include_dir",
];

/// The result of [`mangle`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mangled {
    /// The new text.
    pub text: String,
    /// What was changed (`archive_command` disabled, ...).
    pub changes: Vec<Change>,
    /// Settings to review (paths that may point outside the data directory).
    pub warnings: Vec<Warning>,
}

/// The setting name of a configuration line (`name = value`, `name value`),
/// `None` for comments and blank lines.
fn setting_name(line: &str) -> Option<String> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(line.len());
    Some(line[..end].to_ascii_lowercase())
}

/// Comments out every `archive_command` (adding `archive_command = false`
/// after the last one) and every `recovery_target*` setting with
/// [`BARMAN_PREFIX`]; reports settings that may point outside the data
/// directory. `file` names the file in the messages.
pub fn mangle(text: &str, file: &str) -> Mangled {
    let mut out = Mangled::default();
    let mut archive_seen = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let name = setting_name(line);
        match name.as_deref() {
            Some("archive_command") => {
                out.text.push_str(BARMAN_PREFIX);
                out.text.push_str(line);
                out.text.push('\n');
                if !archive_seen {
                    out.changes.push(Change::ArchiveCommandDisabled {
                        file: file.to_owned(),
                        line: number,
                    });
                }
                archive_seen = true;
            }
            Some(n) if n.starts_with("recovery_target") => {
                out.text.push_str(BARMAN_PREFIX);
                out.text.push_str(line);
                out.text.push('\n');
                out.changes.push(Change::TargetSettingCommentedOut {
                    file: file.to_owned(),
                    line: number,
                    setting: n.to_owned(),
                });
            }
            Some(n) if OUTSIDE.contains(&n) || (n.starts_with("ssl_") && n.ends_with("_file")) => {
                out.warnings.push(Warning::SettingMayPointOutside {
                    file: file.to_owned(),
                    line: number,
                    text: line.trim().to_owned(),
                });
                out.text.push_str(line);
                out.text.push('\n');
            }
            _ => {
                out.text.push_str(line);
                out.text.push('\n');
            }
        }
    }
    if archive_seen {
        out.text.push_str("archive_command = false\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_command_and_targets_are_commented() {
        let text = "# comment\nport = 5432\narchive_command = 'barman-wal-archive b pg %p'\n  recovery_target_time = '2020-01-01'\ndata_directory = '/elsewhere'\nssl_cert_file = 'server.crt'\nshared_buffers = 128MB\n";
        let m = mangle(text, "postgresql.conf");
        assert_eq!(
            m.text,
            "# comment\nport = 5432\n#BARMAN#archive_command = 'barman-wal-archive b pg %p'\n#BARMAN#  recovery_target_time = '2020-01-01'\ndata_directory = '/elsewhere'\nssl_cert_file = 'server.crt'\nshared_buffers = 128MB\narchive_command = false\n"
        );
        assert_eq!(
            m.changes,
            [
                Change::ArchiveCommandDisabled {
                    file: "postgresql.conf".into(),
                    line: 3
                },
                Change::TargetSettingCommentedOut {
                    file: "postgresql.conf".into(),
                    line: 4,
                    setting: "recovery_target_time".into()
                }
            ]
        );
        assert_eq!(m.warnings.len(), 2);
        assert_eq!(
            m.warnings[0],
            Warning::SettingMayPointOutside {
                file: "postgresql.conf".into(),
                line: 5,
                text: "data_directory = '/elsewhere'".into()
            }
        );
    }

    #[test]
    fn nothing_to_change() {
        let m = mangle("port = 5432\n#archive_command = 'x'\n", "f");
        assert_eq!(m.text, "port = 5432\n#archive_command = 'x'\n");
        assert!(m.changes.is_empty() && m.warnings.is_empty());
    }
}
