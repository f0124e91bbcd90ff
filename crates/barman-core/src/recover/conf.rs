//! Rewriting the recovered cluster's configuration files
//! (BARMAN-BEHAVIOUR.md §8.1 step 9): `archive_command` neutralised,
//! earlier recovery targets commented out, settings that point outside the
//! data directory reported.

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
    /// What was changed, one line each (`archive_command` disabled, ...).
    pub changes: Vec<String>,
    /// Settings to review (paths that may point outside the data directory).
    pub warnings: Vec<String>,
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
                    out.changes
                        .push(format!("{file}:{number}: archive_command disabled"));
                }
                archive_seen = true;
            }
            Some(n) if n.starts_with("recovery_target") => {
                out.text.push_str(BARMAN_PREFIX);
                out.text.push_str(line);
                out.text.push('\n');
                out.changes
                    .push(format!("{file}:{number}: earlier {n} commented out"));
            }
            Some(n) if OUTSIDE.contains(&n) || (n.starts_with("ssl_") && n.ends_with("_file")) => {
                out.warnings.push(format!(
                    "{file}:{number}: `{}` may point outside the recovered data directory: review it",
                    line.trim()
                ));
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
        assert_eq!(m.changes.len(), 2);
        assert!(m.changes[0].contains("postgresql.conf:3"));
        assert_eq!(m.warnings.len(), 2);
        assert!(m.warnings[0].contains("data_directory"));
    }

    #[test]
    fn nothing_to_change() {
        let m = mangle("port = 5432\n#archive_command = 'x'\n", "f");
        assert_eq!(m.text, "port = 5432\n#archive_command = 'x'\n");
        assert!(m.changes.is_empty() && m.warnings.is_empty());
    }
}
