//! Shell command lines built by barman-rs.
//!
//! Every value barman-rs puts into a command line that a shell reads (the
//! ssh command lines it runs, the `restore_command` and
//! `recovery_end_command` it writes for PostgreSQL, the remote commands it
//! sends over ssh) goes through [`quote`]; a value written into a
//! PostgreSQL `*_command` setting also goes through [`escape_percent`].
//! Commands taken from the configuration (`ssh_command`,
//! `primary_ssh_command`, hook scripts, custom compression filters) are the
//! operator's shell text and are used as written.

use std::borrow::Cow;

/// Quotes `word` as one word for a POSIX shell: unchanged when it only
/// holds characters no shell interprets (letters, digits, `@%+=:,./_-`),
/// otherwise in single quotes (a `'` inside becomes `'\''`). The empty
/// word is `''`.
pub fn quote(word: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
    }
}

/// Doubles every `%` of `text`, for a text put into a PostgreSQL
/// `restore_command`, `recovery_end_command` or `archive_command`, where
/// PostgreSQL reads `%f`, `%p`, `%r` and `%%` before the shell runs it.
pub fn escape_percent(text: &str) -> String {
    text.replace('%', "%%")
}

/// [`quote`] then [`escape_percent`]: one word of a PostgreSQL `*_command`.
pub fn pg_command_word(word: &str) -> String {
    escape_percent(&quote(word))
}

/// The `sh -c` line running `remote_command` through `ssh_command` (the
/// configured shell fragment, such as `ssh -q postgres@pg`):
/// `exec <ssh_command> <remote_command quoted>`. `exec` makes ssh the
/// process barman started, so that killing it (a failed or timed-out
/// session) ends ssh instead of leaving it orphaned; the quoting hands
/// `remote_command` to ssh as one argument, which ssh passes to the
/// remote shell as written.
pub fn ssh_line(ssh_command: &str, remote_command: &str) -> String {
    format!("exec {ssh_command} {}", quote(remote_command))
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use proptest::prelude::*;

    use super::*;

    /// What `sh -c "printf %s <word>"` prints.
    fn through_sh(word: &str) -> Vec<u8> {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {word}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "sh failed on {word:?}: {out:?}");
        out.stdout
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("pg"), "pg");
        assert_eq!(
            quote("--config=/etc/barman.conf"),
            "--config=/etc/barman.conf"
        );
        assert_eq!(quote("100%"), "100%");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("my server"), "'my server'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(quote("a;b"), "'a;b'");
        assert_eq!(quote("~root"), "'~root'");
        assert_eq!(quote("*"), "'*'");
    }

    #[test]
    fn hostile_words_survive_the_shell() {
        for word in [
            "pg data; touch pwned",
            "$(touch pwned)",
            "`touch pwned`",
            "it's",
            "''",
            "a\nb",
            "\\",
            "!x",
            "*",
            "~",
            "#c",
            "-n",
            "%f %p",
            "{a,b}",
            "x=1",
        ] {
            assert_eq!(through_sh(&quote(word)), word.as_bytes(), "{word:?}");
        }
    }

    #[test]
    fn percent_is_doubled() {
        assert_eq!(escape_percent("/srv/100%f/x"), "/srv/100%%f/x");
        assert_eq!(escape_percent("no percent"), "no percent");
        assert_eq!(pg_command_word("/a b/50%"), "'/a b/50%%'");
    }

    #[test]
    fn ssh_line_execs_ssh_with_the_remote_command_as_one_word() {
        assert_eq!(
            ssh_line("ssh -q pg", "barman agent"),
            "exec ssh -q pg 'barman agent'"
        );
        // The argument ssh gets is the remote command, as written.
        let out = Command::new("sh")
            .arg("-c")
            .arg(ssh_line("printf [%s]", "barman -c '/a b' agent"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "[barman -c '/a b' agent]"
        );
        // `exec`: the process started is the ssh command itself.
        let out = Command::new("sh")
            .arg("-c")
            .arg(ssh_line("sh -c 'echo $$ $PPID' ssh", "x"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let (own, parent) = text.trim().split_once(' ').unwrap();
        assert_eq!(parent, std::process::id().to_string(), "not exec'ed: {own}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any string without NUL (which no argument can hold) comes out of
        /// `sh -c "printf %s <quoted>"` unchanged.
        #[test]
        fn quoted_strings_round_trip_through_sh(word in "[^\u{0}]{0,40}") {
            prop_assert_eq!(through_sh(&quote(&word)), word.as_bytes());
        }

        /// The same for ASCII punctuation-heavy strings (the characters a
        /// shell interprets).
        #[test]
        fn quoted_punctuation_round_trips_through_sh(word in "[ -~\t\n]{0,40}") {
            prop_assert_eq!(through_sh(&quote(&word)), word.as_bytes());
        }
    }
}
