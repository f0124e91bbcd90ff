//! Throw-away PostgreSQL clusters on loopback ports.

mod builder;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

pub use builder::{
    DEFAULT_PG_BIN, PG_BIN_ENV, PG18_BIN, PgClusterBuilder, embedded_pg_bin, server_major,
};

use crate::error::{Error, Result};
use crate::process::{self, SERVER_OS_USER};

/// A running PostgreSQL cluster in its own temporary directory.
///
/// Created by [`PgCluster::builder`]. The directory (owned by the `postgres`
/// OS user when the tests run as root, mode 0700) holds `data/` (PGDATA), the
/// server log `pg.log` and the unix socket. Dropping the value stops the
/// server by pid (immediate shutdown, then `SIGKILL`) and removes the directory.
#[derive(Debug)]
pub struct PgCluster {
    major: u32,
    pg_bin: PathBuf,
    client_bin: PathBuf,
    data_dir: PathBuf,
    port: u16,
    pid: Option<u32>,
    as_root: bool,
    // Dropped last: the server must be gone before the directory is removed.
    dir: TempDir,
}

/// Appends `text` to a `postgresql.conf`.
pub(crate) fn append_conf(path: &Path, text: &str) -> Result<()> {
    builder::append(path, text)
}

/// A command running `program` as the server's OS user, in `cwd`.
///
/// As root that is `runuser -u postgres -- program`; otherwise the current user.
pub(crate) fn server_command(as_root: bool, program: &Path, cwd: &Path) -> Command {
    let mut cmd = if as_root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", SERVER_OS_USER, "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    };
    cmd.current_dir(cwd);
    cmd
}

impl PgCluster {
    /// Starts describing a cluster: PostgreSQL 15 by default.
    pub fn builder() -> PgClusterBuilder {
        PgClusterBuilder::default()
    }

    /// A default cluster (no archiving), started.
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (PGDATA).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The WAL directory, `PGDATA/pg_wal`.
    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("pg_wal")
    }

    /// The directory holding the server's unix socket (also the cluster's temp dir).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster's temporary directory (readable only by the server's OS user and root).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("pg.log")
    }

    /// The server's major version (13, 15, 17, ...).
    pub fn major(&self) -> u32 {
        self.major
    }

    /// The directory of the server binaries in use.
    pub fn pg_bin(&self) -> &Path {
        &self.pg_bin
    }

    /// The postmaster's pid, while the server runs.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// A libpq connection string for the superuser over TCP.
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// Runs `sql` with `psql -X -A -t -v ON_ERROR_STOP=1` and returns its trimmed output.
    ///
    /// The error carries psql's stderr.
    pub fn psql(&self, sql: &str) -> Result<String> {
        psql_on(&self.client_bin, self.port, sql)
    }

    /// Creates the pgbench tables at `scale` (`pgbench -i -s scale -q`, ~15 MB per unit).
    pub fn pgbench_init(&self, scale: u32) -> Result<()> {
        let mut cmd = self.client("pgbench");
        cmd.args(["-i", "-q", "-s", &scale.to_string(), "postgres"]);
        process::run(&mut cmd).map(drop)
    }

    /// Runs the default pgbench workload for `seconds` with `clients`; returns its report.
    pub fn pgbench_run(&self, clients: u32, seconds: u32) -> Result<String> {
        let mut cmd = self.client("pgbench");
        cmd.args(["-n", "-c", &clients.to_string()])
            .args(["-j", &clients.clamp(1, 2).to_string()])
            .args(["-T", &seconds.to_string(), "postgres"]);
        let out = process::run(&mut cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Takes a plain copy of the cluster with `pg_basebackup -X none -c
    /// fast` into `dest` (a new directory whose parent the server's OS user
    /// may write), as that user; without WAL: a recovery of it needs the
    /// archive.
    pub fn base_copy(&self, dest: &Path) -> Result<()> {
        let tool = self.client_bin.join("pg_basebackup");
        let mut cmd = server_command(self.as_root, &tool, self.dir.path());
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ])
        .args(["-X", "none", "-c", "fast", "-D"])
        .arg(dest);
        process::run(&mut cmd).map(drop)
    }

    /// Forces a WAL switch and returns the name of the segment that was switched out.
    pub fn switch_wal(&self) -> Result<String> {
        self.psql("SELECT pg_walfile_name(pg_switch_wal())")
    }

    /// The database system identifier, as printed by `pg_controldata`.
    pub fn system_identifier(&self) -> Result<u64> {
        let tool = ["pg_controldata"]
            .iter()
            .flat_map(|t| [self.pg_bin.join(t), self.client_bin.join(t)])
            .find(|p| p.exists())
            .ok_or_else(|| Error::MissingBinary {
                path: self.pg_bin.join("pg_controldata"),
                install: builder::PG_INSTALL.to_owned(),
            })?;
        let mut cmd = server_command(self.as_root, &tool, self.dir.path());
        cmd.arg("-D").arg(&self.data_dir);
        let out = process::run(&mut cmd)?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("Database system identifier:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| Error::Parse {
                what: "pg_controldata".into(),
                output: text.into_owned(),
            })
    }

    /// Creates `name` inside the cluster's directory, owned by the server's OS
    /// user (mode 0700), e.g. as a target an `archive_command` may write to.
    pub fn server_owned_dir(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        if self.as_root {
            process::chown_to(&path, SERVER_OS_USER)?;
        }
        process::chmod(&path, 0o700)?;
        Ok(path)
    }

    /// Copies `binary` into `<dir>/bin`, where the `postgres` user can run it
    /// (e.g. from an `archive_command`); returns the copy's path.
    pub fn stage_binary(&self, binary: &Path) -> Result<PathBuf> {
        process::stage_binary(binary, &self.dir.path().join("bin"))
    }

    /// Stops the server (`pg_ctl stop -m fast`), killing the postmaster by pid if
    /// it is still alive afterwards.
    pub fn stop(&mut self) -> Result<()> {
        self.stop_with("fast")
    }

    /// Crashes the server: `pg_ctl stop -m immediate` (no shutdown
    /// checkpoint, the walsenders killed), then `SIGKILL` by pid if the
    /// postmaster is still alive.
    pub fn stop_immediate(&mut self) -> Result<()> {
        self.stop_with("immediate")
    }

    fn stop_with(&mut self, mode: &str) -> Result<()> {
        let Some(pid) = self.pid.take() else {
            return Ok(());
        };
        let mut cmd = self.pg_ctl();
        cmd.args(["-m", mode, "-w", "-t", "60", "stop"]);
        let result = process::run(&mut cmd).map(drop);
        process::terminate(pid, "KILL", Duration::from_secs(5));
        result
    }

    /// Starts the server again on the same port after [`stop`](Self::stop).
    pub fn restart(&mut self) -> Result<()> {
        if self.pid.is_some() {
            self.stop()?;
        }
        self.start_on(self.port)
    }

    /// Sets the port and runs `pg_ctl -w start`, recording the postmaster pid.
    fn start_on(&mut self, port: u16) -> Result<()> {
        builder::append(
            &self.data_dir.join("postgresql.conf"),
            &format!("port = {port}\n"),
        )?;
        self.port = port;
        let mut cmd = self.pg_ctl();
        cmd.arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "start"]);
        let out = process::output(&mut cmd)?;
        if !out.status.success() {
            return Err(Error::PostgresStart {
                reason: format!(
                    "pg_ctl start on port {port} exited with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                log: process::log_tail(&self.log_path(), 4096),
            });
        }
        let pid_file = self.data_dir.join("postmaster.pid");
        let text = fs::read_to_string(&pid_file).map_err(|e| Error::io(&pid_file, e))?;
        let pid = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| Error::Parse {
                what: pid_file.display().to_string(),
                output: text.clone(),
            })?;
        self.pid = Some(pid);
        Ok(())
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = server_command(self.as_root, &self.pg_bin.join("pg_ctl"), self.dir.path());
        cmd.arg("-D").arg(&self.data_dir);
        cmd
    }

    /// A client tool connecting over TCP as `postgres` (the database is added by the caller).
    fn client(&self, tool: &str) -> Command {
        client_for(&self.client_bin, self.port, tool)
    }

    /// A command running client tool `tool` (`pgbench`, `psql`,
    /// `pg_amcheck`, ...) of the cluster's client binaries against it, as
    /// its OS user; for tools the harness has no method for, or to run one
    /// in the background (`pgbench` load during a backup).
    pub fn client_command(&self, tool: &str) -> Command {
        self.client(tool)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            // SIGQUIT is PostgreSQL's immediate shutdown; it also stops the children.
            process::terminate(pid, "QUIT", Duration::from_secs(10));
        }
    }
}

/// A client tool (`psql`, `pgbench`, ...) aimed at the server on `port` as
/// `postgres`, with the libpq variables that could redirect it removed.
pub(crate) fn client_for(client_bin: &Path, port: u16, tool: &str) -> Command {
    let mut cmd = builder::client_command(client_bin, tool);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres"]);
    for var in [
        "PGPASSWORD",
        "PGSERVICE",
        "PGOPTIONS",
        "PGSSLMODE",
        "PGTARGETSESSIONATTRS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `sql` with `psql -X -A -t -v ON_ERROR_STOP=1` against the server on
/// `port` and returns its trimmed output; the error carries psql's stderr.
pub(crate) fn psql_on(client_bin: &Path, port: u16, sql: &str) -> Result<String> {
    let mut cmd = client_for(client_bin, port, "psql");
    cmd.args([
        "-d",
        "postgres",
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
    ]);
    let out = process::run(&mut cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
