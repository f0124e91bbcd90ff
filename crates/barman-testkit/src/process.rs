//! Process, user and port helpers shared by the fixtures.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The OS user that owns PostgreSQL data directories when the tests run as root.
pub const SERVER_OS_USER: &str = "postgres";

/// Returns an error naming `install` when `path` does not exist.
pub(crate) fn require(path: &Path, install: &str) -> Result<()> {
    if path.exists() {
        Ok(())
    } else {
        Err(Error::MissingBinary {
            path: path.to_path_buf(),
            install: install.to_owned(),
        })
    }
}

/// A printable form of a command line, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `cmd` to completion with captured output; spawn errors are reported.
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            command: describe(cmd),
            source,
        })
}

/// Runs `cmd` and fails unless it exits successfully; returns its output.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = output(cmd)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::CommandFailed {
            command: describe(cmd),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The effective uid of this process (the owner of `/proc/self`).
pub fn current_uid() -> Result<u32> {
    fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| Error::io("/proc/self", e))
}

/// Whether the tests run as root.
pub fn is_root() -> Result<bool> {
    Ok(current_uid()? == 0)
}

/// The login name of the user running the tests.
pub fn current_user() -> Result<String> {
    let out = run(Command::new("id").arg("-un"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `program` as [`SERVER_OS_USER`] (`ids`: its uid and gid, from
/// [`user_ids`]) with a clean environment — `PATH` = `bin` then `/usr/bin:/bin`,
/// `HOME` = `home`, `USER`, `LOGNAME`, `LANG=C.UTF-8` — and no stdin.
pub fn server_user_command(
    program: impl AsRef<std::ffi::OsStr>,
    ids: (u32, u32),
    home: &Path,
    bin: &Path,
) -> Command {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(program);
    cmd.uid(ids.0)
        .gid(ids.1)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", home)
        .env("USER", SERVER_OS_USER)
        .env("LOGNAME", SERVER_OS_USER)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null());
    cmd
}

/// Numeric uid and gid of `user`.
pub fn user_ids(user: &str) -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = run(Command::new("id").arg(flag).arg(user))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        text.parse().map_err(|_| Error::Parse {
            what: format!("id {flag} {user}"),
            output: text,
        })
    };
    Ok((id("-u")?, id("-g")?))
}

/// Changes the owner of `path` (not recursive) to `user`.
pub fn chown_to(path: &Path, user: &str) -> Result<()> {
    let (uid, gid) = user_ids(user)?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| Error::io(path, e))
}

/// Sets the permission bits of `path`.
pub fn chmod(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| Error::io(path, e))
}

/// Asks the kernel for a free loopback TCP port (bind to port 0, then release it).
///
/// Another process may take the port before it is used: callers retry on a
/// bind failure.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("127.0.0.1:0", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("127.0.0.1:0", e))?
        .port();
    Ok(port)
}

/// Whether process `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state is the first field after the parenthesised command name.
    match stat.rsplit_once(')') {
        Some((_, rest)) => !matches!(rest.trim_start().chars().next(), Some('Z' | 'X')),
        None => true,
    }
}

/// Sends `signal` (a name such as `QUIT` or `KILL`) to `pid`.
pub(crate) fn signal(pid: u32, signal: &str) -> Result<()> {
    run(Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\"", "sh", signal])
        .arg(pid.to_string()))
    .map(drop)
}

/// Waits up to `timeout` for `pid` to disappear; returns whether it did.
pub(crate) fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let start = Instant::now();
    while pid_alive(pid) {
        if start.elapsed() > timeout {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Makes `pid` go away: `first` signal, then `KILL` after `grace`.
pub(crate) fn terminate(pid: u32, first: &str, grace: Duration) {
    if !pid_alive(pid) {
        return;
    }
    let _ = signal(pid, first);
    if !wait_gone(pid, grace) {
        let _ = signal(pid, "KILL");
        let _ = wait_gone(pid, Duration::from_secs(5));
    }
}

/// Reads the last `max` bytes of a log file (lossy), or a note that it is unreadable.
pub(crate) fn log_tail(path: &Path, max: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Copies the executable `src` into `dir` (created if needed), readable and
/// executable by every user, and returns the copy's path.
///
/// Use it for binaries that must run as another user (an `archive_command`
/// runs as `postgres`, a command run over ssh as the ssh login user) when the
/// build directory is not reachable by that user. `dir` and its parents must
/// be traversable by that user; [`crate::PgCluster::stage_binary`] picks such a
/// directory.
pub fn stage_binary(src: &Path, dir: &Path) -> Result<PathBuf> {
    let name = src.file_name().ok_or_else(|| {
        Error::io(
            src,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        )
    })?;
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    chmod(dir, 0o755)?;
    let dest = dir.join(name);
    fs::copy(src, &dest).map_err(|e| Error::io(&dest, e))?;
    chmod(&dest, 0o755)?;
    Ok(dest)
}
