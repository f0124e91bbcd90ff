//! The ssh side shared by `barman-wal-archive` and `barman-wal-restore`:
//! how the Barman server is reached, how the remote `barman` command line is
//! built and quoted, and how ssh's exit status is read.
//!
//! The program run is `ssh`, looked up on `PATH` (as Barman's scripts do), as
//! `ssh -q -T [-p PORT] USER@HOST '<remote command>'`. The remote command is
//! one argument: ssh hands it to the remote user's shell, so every word of it
//! is shell-quoted here.

use std::io;
use std::process::{Command, ExitStatus, Stdio};

use barman_core::shell::quote;

/// The program run to reach the Barman server, looked up on `PATH`.
pub const SSH_PROGRAM: &str = "ssh";

/// The exit status ssh itself uses for its own failures (connection,
/// authentication, host key): a remote command never sees it.
pub const SSH_FAILURE: i32 = 255;

/// A user, host or configuration path [`Remote::new`] refuses.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRemote(String);

/// How `barman put-wal --test` or `barman get-wal --test` failed (see
/// [`Remote::connectivity_test`]).
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// ssh could not be started.
    #[error("Impossible to invoke remote {command}: {source}")]
    Spawn {
        /// The barman command tested (`put-wal`, `get-wal`).
        command: &'static str,
        /// Why.
        source: io::Error,
    },
    /// ssh could not reach the server (its status 255).
    #[error("Connection problem with ssh")]
    Connection,
    /// The remote command failed with this status.
    #[error("Remote 'barman {command} --test' command has failed!")]
    Failed {
        /// The barman command tested.
        command: &'static str,
        /// Its exit status.
        status: u8,
    },
    /// ssh was killed by a signal.
    #[error("ssh was terminated by a signal")]
    Signal,
}

/// How to reach the Barman server over ssh and which configuration file the
/// remote `barman` reads.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The ssh login user (`-U/--user`).
    user: String,
    /// The Barman host (`BARMAN_HOST`).
    host: String,
    /// The ssh port (`--port`), ssh's default when `None`.
    port: Option<u16>,
    /// The remote Barman configuration file (`-c/--config`).
    config: Option<String>,
}

impl Remote {
    /// Checks the user and host (non-empty, no leading `-` that ssh would
    /// read as an option, no whitespace or control characters).
    pub fn new(
        user: &str,
        host: &str,
        port: Option<u16>,
        config: Option<&str>,
    ) -> Result<Self, InvalidRemote> {
        let invalid = |message: String| Err(InvalidRemote(message));
        for (what, value) in [("user", user), ("BARMAN_HOST", host)] {
            if value.is_empty() {
                return invalid(format!("the {what} must not be empty"));
            }
            if value.starts_with('-') {
                return invalid(format!("the {what} must not start with '-': {value}"));
            }
            if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return invalid(format!(
                    "the {what} must not contain spaces or control characters: {value:?}"
                ));
            }
        }
        if let Some(path) = config
            && path.is_empty()
        {
            return invalid("the remote configuration path must not be empty".into());
        }
        Ok(Self {
            user: user.to_owned(),
            host: host.to_owned(),
            port,
            config: config.map(str::to_owned),
        })
    }

    /// The remote command line `barman [--config=PATH] WORDS...`, each word
    /// shell-quoted when it needs it.
    pub fn barman_command(&self, words: &[&str]) -> String {
        let mut line = String::from("barman");
        if let Some(config) = &self.config {
            line.push(' ');
            line.push_str(&quote(&format!("--config={config}")));
        }
        for word in words {
            line.push(' ');
            line.push_str(&quote(word));
        }
        line
    }

    /// `ssh -q -T [-p PORT] USER@HOST REMOTE_COMMAND`, with the standard
    /// streams left to the caller.
    pub fn ssh(&self, remote_command: &str) -> Command {
        let mut cmd = Command::new(SSH_PROGRAM);
        cmd.args(["-q", "-T"]);
        if let Some(port) = self.port {
            cmd.arg("-p").arg(port.to_string());
        }
        cmd.arg(format!("{}@{}", self.user, self.host));
        cmd.arg(remote_command);
        cmd
    }

    /// `--test` of both clients: runs `barman COMMAND --test ARGS...`
    /// remotely with no input; its output goes to ours (inherited).
    pub fn connectivity_test(&self, command: &'static str, args: &[&str]) -> Result<(), TestError> {
        let mut words = vec![command, "--test"];
        words.extend_from_slice(args);
        let status = self
            .ssh(&self.barman_command(&words))
            .stdin(Stdio::null())
            .status()
            .map_err(|source| TestError::Spawn { command, source })?;
        match Ended::of(status) {
            Ended::Success => Ok(()),
            Ended::SshFailure => Err(TestError::Connection),
            Ended::Remote(status) => Err(TestError::Failed { command, status }),
            Ended::Signal => Err(TestError::Signal),
        }
    }
}

/// How an ssh run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Exit status 0: the remote command succeeded.
    Success,
    /// Exit status 255: ssh could not run the command (connection failure).
    SshFailure,
    /// Any other exit status: the remote command's own.
    Remote(u8),
    /// ssh was killed by a signal.
    Signal,
}

impl Ended {
    /// Reads an ssh exit status.
    pub fn of(status: ExitStatus) -> Self {
        match status.code() {
            Some(0) => Self::Success,
            Some(SSH_FAILURE) => Self::SshFailure,
            Some(code) => u8::try_from(code).map_or(Self::Signal, Self::Remote),
            None => Self::Signal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_command_line() {
        let remote = Remote::new("barman", "host", Some(22), Some("/a b.conf")).unwrap();
        assert_eq!(
            remote.barman_command(&["put-wal", "--test", "pg"]),
            "barman '--config=/a b.conf' put-wal --test pg"
        );
        let args: Vec<_> = remote
            .ssh("cmd")
            .get_args()
            .map(std::ffi::OsStr::to_os_string)
            .collect();
        assert_eq!(args, ["-q", "-T", "-p", "22", "barman@host", "cmd"]);
    }

    #[test]
    fn rejects_option_like_user_or_host() {
        assert!(Remote::new("-oProxyCommand=x", "host", None, None).is_err());
        assert!(Remote::new("barman", "-host", None, None).is_err());
        assert!(Remote::new("barman", "", None, None).is_err());
        assert!(Remote::new("bar man", "host", None, None).is_err());
        assert!(Remote::new("barman", "host", None, Some("")).is_err());
    }
}
