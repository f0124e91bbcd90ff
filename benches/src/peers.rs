//! The peers barman-rs is measured beside: pgBackRest (Debian's package)
//! and Barman (Python, from PyPI, in a virtualenv), installed by
//! `benches/scripts/install-peers.sh` when a scenario runs with
//! `--with-peers`.
//!
//! Both run as the `postgres` OS user on the same cluster as barman-rs,
//! with their own repository / home under the scenario's scratch
//! directory. This module finds them, writes their configuration and
//! knows the commands; the scenarios time them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail, ensure};
use barman_testkit::{PgCluster, SERVER_OS_USER};
use serde_json::{Value, json};

/// Where the install script puts Barman's virtualenv (overridden by
/// `BARMAN_BENCH_PEERS`).
pub const DEFAULT_VENV: &str = "/opt/barman-bench-peers/venv";

/// pgBackRest's binary (Debian's package).
pub const PGBACKREST: &str = "/usr/bin/pgbackrest";

/// The stanza / server name every peer uses.
pub const STANZA: &str = "pg";

/// The installed peers.
#[derive(Debug, Clone)]
pub struct Peers {
    /// Barman's virtualenv (`bin/barman`, `bin/barman-wal-archive`).
    pub venv: PathBuf,
    /// `pgbackrest version`.
    pub pgbackrest_version: String,
    /// `barman --version`.
    pub barman_version: String,
    /// `rsync --version` (first line).
    pub rsync_version: String,
}

/// The install script, in the source tree.
pub fn install_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-peers.sh")
}

impl Peers {
    /// Runs the install script (idempotent), then [`Peers::find`].
    pub fn install() -> Result<Self> {
        let script = install_script();
        eprintln!("installing the peers: {}", script.display());
        let status = Command::new("bash")
            .arg(&script)
            .status()
            .with_context(|| format!("run {}", script.display()))?;
        ensure!(status.success(), "{} failed ({status})", script.display());
        Self::find()
    }

    /// Finds pgBackRest and Barman's virtualenv; an error names the
    /// install command.
    pub fn find() -> Result<Self> {
        let venv = std::env::var_os("BARMAN_BENCH_PEERS")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_VENV), PathBuf::from);
        let hint = format!("install them with `bash {}`", install_script().display());
        ensure!(
            Path::new(PGBACKREST).exists(),
            "{PGBACKREST} is missing: {hint}"
        );
        let barman = venv.join("bin/barman");
        ensure!(barman.exists(), "{} is missing: {hint}", barman.display());
        let first_line = |cmd: &mut Command| -> Result<String> {
            let out = barman_testkit::output(cmd)?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            Ok(text.lines().next().unwrap_or("").trim().to_owned())
        };
        let pgbackrest_version = first_line(Command::new(PGBACKREST).arg("version"))?;
        let barman_version = first_line(Command::new(&barman).arg("--version"))?
            .split_whitespace()
            .next()
            .map(|v| format!("Barman {v}"))
            .unwrap_or_default();
        let rsync_version = first_line(Command::new("rsync").arg("--version"))
            .unwrap_or_else(|_| "rsync: not found".to_owned());
        if !rsync_version.starts_with("rsync") {
            bail!("rsync is missing (Barman copies with it): {hint}");
        }
        Ok(Self {
            venv,
            pgbackrest_version,
            barman_version,
            rsync_version,
        })
    }

    /// Barman's `barman`.
    pub fn barman(&self) -> PathBuf {
        self.venv.join("bin/barman")
    }

    /// Barman's `barman-wal-archive`.
    pub fn barman_wal_archive(&self) -> PathBuf {
        self.venv.join("bin/barman-wal-archive")
    }

    /// The versions, for reports.
    pub fn to_json(&self) -> Value {
        json!({
            "pgbackrest": self.pgbackrest_version,
            "barman": self.barman_version,
            "rsync": self.rsync_version,
            "barman_venv": self.venv.display().to_string(),
        })
    }

    /// One Markdown line naming the versions.
    pub fn to_markdown(&self) -> String {
        format!(
            "Peers: {}, {} (PyPI, virtualenv of Debian's python3), {}.",
            self.pgbackrest_version, self.barman_version, self.rsync_version
        )
    }
}

/// A directory owned by `postgres`, mode 0700.
fn postgres_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("create {}", path.display()))?;
    barman_testkit::chown_to(path, SERVER_OS_USER)?;
    barman_testkit::chmod(path, 0o700)?;
    Ok(())
}

/// A file owned by `postgres` with `mode`.
fn postgres_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    barman_testkit::chown_to(path, SERVER_OS_USER)?;
    barman_testkit::chmod(path, mode)?;
    Ok(())
}

/// pgBackRest's world: a configuration file and a repository under `dir`,
/// stanza [`STANZA`] for one cluster.
#[derive(Debug, Clone)]
pub struct PgBackRest {
    /// The configuration file.
    pub conf: PathBuf,
    /// The repository (`repo1-path`).
    pub repo: PathBuf,
    /// The ssh wrapper for `--cmd-ssh` (key, no host-key checks).
    pub ssh: PathBuf,
    /// The loopback sshd port (`--pg1-host-port` / `--repo1-host-port`).
    pub ssh_port: u16,
}

impl PgBackRest {
    /// Writes `dir/pgbackrest.conf` (repository, logs, locks and spool
    /// under `dir`, `compress-type=none`, `start-fast=y`,
    /// `repo1-retention-full=1` so that disk use stays bounded) for the
    /// cluster at `pg_path` on `pg_port` / `socket_dir`, and an ssh
    /// wrapper using `key`. Nothing is run.
    pub fn write(
        dir: &Path,
        pg_path: &Path,
        pg_port: u16,
        socket_dir: &Path,
        key: &Path,
        ssh_port: u16,
    ) -> Result<Self> {
        postgres_dir(dir)?;
        for sub in ["repo", "log", "lock", "spool"] {
            postgres_dir(&dir.join(sub))?;
        }
        let conf = dir.join("pgbackrest.conf");
        let text = format!(
            "[global]\nrepo1-path={repo}\nrepo1-retention-full=1\nlog-path={log}\n\
             lock-path={lock}\nspool-path={spool}\nstart-fast=y\ncompress-type=none\n\
             log-level-console=warn\nlog-level-file=info\narchive-timeout=120\n\n\
             [{STANZA}]\npg1-path={pg_path}\npg1-port={pg_port}\npg1-socket-path={socket}\n\
             pg1-user={SERVER_OS_USER}\n",
            repo = dir.join("repo").display(),
            log = dir.join("log").display(),
            lock = dir.join("lock").display(),
            spool = dir.join("spool").display(),
            pg_path = pg_path.display(),
            socket = socket_dir.display(),
        );
        postgres_file(&conf, &text, 0o600)?;
        let ssh = dir.join("ssh");
        let wrapper = format!(
            "#!/bin/sh\nexec /usr/bin/ssh -i {} -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=yes \
             -o LogLevel=ERROR \"$@\"\n",
            key.display()
        );
        postgres_file(&ssh, &wrapper, 0o755)?;
        Ok(Self {
            conf,
            repo: dir.join("repo"),
            ssh,
            ssh_port,
        })
    }

    /// For a cluster: [`PgBackRest::write`] with its port and sockets.
    pub fn for_cluster(dir: &Path, pg: &PgCluster, key: &Path, ssh_port: u16) -> Result<Self> {
        Self::write(
            dir,
            pg.data_dir(),
            pg.port(),
            pg.socket_dir(),
            key,
            ssh_port,
        )
    }

    /// `pgbackrest --config=CONF --stanza=pg` and `args`.
    pub fn args(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![
            format!("--config={}", self.conf.display()),
            format!("--stanza={STANZA}"),
        ];
        v.extend(args.iter().map(|a| (*a).to_owned()));
        v
    }

    /// The options that reach the cluster through the loopback sshd
    /// (`pg1-host`, from the repository side: backups).
    pub fn pg_host_args(&self) -> Vec<String> {
        vec![
            "--pg1-host=127.0.0.1".to_owned(),
            format!("--pg1-host-port={}", self.ssh_port),
            format!("--pg1-host-user={SERVER_OS_USER}"),
            format!("--pg1-host-config={}", self.conf.display()),
            format!("--cmd-ssh={}", self.ssh.display()),
        ]
    }

    /// The options that reach the repository through the loopback sshd
    /// (`repo1-host`, from the PostgreSQL side: restore, archive-push).
    pub fn repo_host_args(&self) -> Vec<String> {
        vec![
            "--repo1-host=127.0.0.1".to_owned(),
            format!("--repo1-host-port={}", self.ssh_port),
            format!("--repo1-host-user={SERVER_OS_USER}"),
            format!("--repo1-host-config={}", self.conf.display()),
            format!("--cmd-ssh={}", self.ssh.display()),
        ]
    }

    /// `pgbackrest info --output=json`: the stanza's backups, oldest
    /// first, as (label, type).
    pub fn backups(
        &self,
        run: &dyn Fn(&[String]) -> Result<String>,
    ) -> Result<Vec<(String, String)>> {
        let text = run(&self.args(&["--output=json", "info"]))?;
        let doc: Value = serde_json::from_str(text.trim())
            .with_context(|| format!("parse `pgbackrest info --output=json`: {text}"))?;
        let backups = doc
            .as_array()
            .and_then(|a| a.first())
            .and_then(|s| s.get("backup"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(backups
            .iter()
            .filter_map(|b| {
                Some((
                    b.get("label")?.as_str()?.to_owned(),
                    b.get("type")?.as_str()?.to_owned(),
                ))
            })
            .collect())
    }
}

/// Barman's world: a home and configuration files under `dir`, one server
/// [`STANZA`].
#[derive(Debug, Clone)]
pub struct BarmanPy {
    /// The directory (`home/`, `barman.log`, the configuration files).
    pub dir: PathBuf,
}

/// How a Barman configuration reaches the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyConf {
    /// `backup_method = local-rsync`.
    Local,
    /// `backup_method = rsync` over `ssh_command`, no network compression.
    Ssh,
    /// The same with `network_compression = true` (rsync -z).
    SshZ,
}

impl PyConf {
    const ALL: [Self; 3] = [Self::Local, Self::Ssh, Self::SshZ];

    fn file_name(self) -> &'static str {
        match self {
            Self::Local => "barman-local.conf",
            Self::Ssh => "barman-ssh.conf",
            Self::SshZ => "barman-ssh-z.conf",
        }
    }
}

impl BarmanPy {
    /// Writes the home and one configuration per [`PyConf`] for the
    /// cluster with `conninfo`; `ssh_command` reaches it as `postgres`.
    pub fn write(dir: &Path, conninfo: &str, ssh_command: &str) -> Result<Self> {
        postgres_dir(dir)?;
        postgres_dir(&dir.join("home"))?;
        postgres_dir(&dir.join("home").join(STANZA))?;
        postgres_dir(&dir.join("home").join(STANZA).join("incoming"))?;
        let this = Self {
            dir: dir.to_path_buf(),
        };
        for conf in PyConf::ALL {
            let method = match conf {
                PyConf::Local => "backup_method = local-rsync\n".to_owned(),
                PyConf::Ssh | PyConf::SshZ => format!(
                    "backup_method = rsync\nssh_command = {ssh_command}\nnetwork_compression = {}\n",
                    conf == PyConf::SshZ
                ),
            };
            let text = format!(
                "[barman]\nbarman_home = {home}\nbarman_user = {SERVER_OS_USER}\n\
                 log_file = {log}\nlog_level = INFO\nminimum_redundancy = 0\n\n\
                 [{STANZA}]\ndescription = barman-benches peer\nconninfo = {conninfo}\n\
                 {method}backup_options = concurrent_backup\narchiver = on\n\
                 immediate_checkpoint = true\nreuse_backup = off\n",
                home = dir.join("home").display(),
                log = dir.join("barman.log").display(),
            );
            postgres_file(&this.conf(conf), &text, 0o600)?;
        }
        Ok(this)
    }

    /// Writes `barman-NAME.conf`: the same home and server as the other
    /// configurations with `backup_method = postgres` (`pg_basebackup` and
    /// `pg_combinebackup` from `path_prefix`, `streaming_conninfo` =
    /// `conninfo`), `local_staging_path` (incremental chains) and
    /// `staging_path` with `staging_location = local` (compressed backups)
    /// = `DIR/staging` (created, owned by
    /// `postgres`) and `extra` lines for the server; returns its path.
    pub fn write_postgres_conf(
        &self,
        name: &str,
        conninfo: &str,
        path_prefix: &Path,
        extra: &str,
    ) -> Result<PathBuf> {
        let staging = self.dir.join("staging");
        postgres_dir(&staging)?;
        let text = format!(
            "[barman]\nbarman_home = {home}\nbarman_user = {SERVER_OS_USER}\n\
             log_file = {log}\nlog_level = INFO\nminimum_redundancy = 0\n\n\
             [{STANZA}]\ndescription = barman-benches peer\nconninfo = {conninfo}\n\
             backup_method = postgres\nstreaming_conninfo = {conninfo}\n\
             path_prefix = {prefix}\nlocal_staging_path = {staging}\n\
             staging_path = {staging}\nstaging_location = local\narchiver = on\n\
             immediate_checkpoint = true\n{extra}",
            home = self.dir.join("home").display(),
            log = self.dir.join("barman.log").display(),
            prefix = path_prefix.display(),
            staging = staging.display(),
        );
        let path = self.dir.join(format!("barman-{name}.conf"));
        postgres_file(&path, &text, 0o600)?;
        Ok(path)
    }

    /// The configuration file of `conf`.
    pub fn conf(&self, conf: PyConf) -> PathBuf {
        self.dir.join(conf.file_name())
    }

    /// The server directory.
    pub fn server_dir(&self) -> PathBuf {
        self.dir.join("home").join(STANZA)
    }

    /// The `backup.info` of backup `id`, wherever this Barman version
    /// keeps it: `base/<id>/backup.info` or `meta/<id>-backup.info`.
    pub fn info_path(&self, id: &str) -> PathBuf {
        let server = self.server_dir();
        let in_base = server.join("base").join(id).join("backup.info");
        if in_base.exists() {
            in_base
        } else {
            server.join("meta").join(format!("{id}-backup.info"))
        }
    }

    /// The tail of Barman's log.
    pub fn log_tail(&self) -> String {
        crate::backup::fixture::tail(&self.dir.join("barman.log"), 4096)
    }

    /// Every `backup.info` of the server as (id, status, size), oldest
    /// first (wherever this Barman version keeps them: `base/<id>/` or
    /// `meta/`).
    pub fn backups(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let server = self.server_dir();
        let mut infos = Vec::new();
        if let Ok(entries) = fs::read_dir(server.join("base")) {
            for e in entries.flatten() {
                let info = e.path().join("backup.info");
                if info.exists() {
                    infos.push((e.file_name().to_string_lossy().into_owned(), info));
                }
            }
        }
        if let Ok(entries) = fs::read_dir(server.join("meta")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix("-backup.info")
                    && !infos.iter().any(|(i, _)| i == id)
                {
                    infos.push((id.to_owned(), e.path()));
                }
            }
        }
        for (id, info) in infos {
            let text =
                fs::read_to_string(&info).with_context(|| format!("read {}", info.display()))?;
            let status = text
                .lines()
                .find_map(|l| l.strip_prefix("status="))
                .unwrap_or("")
                .trim()
                .to_owned();
            out.push((id, status));
        }
        out.sort();
        Ok(out)
    }
}
