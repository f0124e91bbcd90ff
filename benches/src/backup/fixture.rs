//! The world the base-backup benchmark runs in: a PostgreSQL 15 cluster
//! filled by `pgbench -i`, archiving its WAL with `barman put-wal` (the
//! one-host mode), a loopback sshd logging in `postgres`, the staged
//! `barman` and a barman home owned by `postgres` with one configuration
//! file per way of backing up the same server `pg`.
//!
//! Everything lives in temporary directories under `/tmp` and is removed on
//! drop; the cluster and sshd are stopped by pid (see `barman-e2e`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use barman_testkit::{PgCluster, PgClusterBuilder, SERVER_OS_USER, Sshd};
use tempfile::TempDir;

use crate::peers::{BarmanPy, Peers, PgBackRest, PyConf, STANZA};

pub use crate::wal_archive::fixture::remove_dir;

/// GNU time, for the peak RSS of the measured processes.
pub const TIME: &str = "/usr/bin/time";

/// The barman server every configuration describes.
pub const SERVER: &str = "pg";

/// How a configuration file reaches the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conf {
    /// `backup_method = local-rsync` (barman reads PGDATA itself).
    Local,
    /// `backup_method = rsync` through `ssh_command` and `barman agent`,
    /// `network_compression = false`.
    Ssh,
    /// The same with `network_compression = true` (zstd on the wire).
    SshZstd,
    /// `backup_method = postgres` (`BASE_BACKUP` over the replication
    /// protocol, `streaming_conninfo` = the cluster's conninfo).
    Postgres,
}

impl Conf {
    /// Every configuration.
    const ALL: [Self; 4] = [Self::Local, Self::Ssh, Self::SshZstd, Self::Postgres];

    /// The file name under the barman directory.
    fn file_name(self) -> &'static str {
        match self {
            Self::Local => "local.conf",
            Self::Ssh => "ssh.conf",
            Self::SshZstd => "ssh-zstd.conf",
            Self::Postgres => "postgres.conf",
        }
    }

    /// Whether the copy goes through ssh and `barman agent`.
    pub fn uses_ssh(self) -> bool {
        matches!(self, Self::Ssh | Self::SshZstd)
    }

    /// The server's method lines of the configuration.
    fn method_lines(self, ssh_command: &str, conninfo: &str) -> String {
        match self {
            Self::Local => "backup_method = local-rsync\n".to_owned(),
            Self::Postgres => {
                format!("backup_method = postgres\nstreaming_conninfo = {conninfo}\n")
            }
            Self::Ssh | Self::SshZstd => format!(
                "backup_method = rsync\nssh_command = {ssh_command}\nnetwork_compression = {}\n",
                self == Self::SshZstd
            ),
        }
    }
}

/// How the fixture's cluster and peers are set up; the default is the
/// `backup` scenario's world (PostgreSQL 15 or `BARMAN_TEST_PG_BIN`,
/// pgBackRest and Barman beside barman-rs with `--with-peers`).
#[derive(Debug, Clone)]
pub struct Setup {
    /// The PostgreSQL major: `None` for the test kit's default binaries,
    /// 18 for the complete PostgreSQL 18 (server and client tools), any
    /// other for the embedded server of that major (client tools 15's).
    pub major: Option<u32>,
    /// Lines appended to `postgresql.conf` (e.g. `summarize_wal = on`).
    pub conf: Vec<String>,
    /// With peers, whether pgBackRest is among them (else Barman alone).
    pub pgbackrest: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            major: None,
            conf: Vec::new(),
            pgbackrest: true,
        }
    }
}

impl Setup {
    /// The cluster's builder for these settings.
    fn builder(&self) -> PgClusterBuilder {
        let builder = match self.major {
            None => PgCluster::builder(),
            Some(18) => PgCluster::builder().pg18(),
            Some(major) => PgCluster::builder().embedded(major),
        };
        self.conf
            .iter()
            .fold(builder, |b, line| b.conf(line.clone()))
    }
}

/// The peers' side of the fixture: each has its own repository / home,
/// and the cluster's `archive_command` feeds all three archives.
#[derive(Debug)]
pub struct PeerWorld {
    /// The installed peers.
    pub peers: Peers,
    /// pgBackRest's configuration and repository (stanza `pg`); `None`
    /// when the setup leaves pgBackRest out (see [`PeerWorld::pgbr`]).
    pub pgbackrest: Option<PgBackRest>,
    /// Barman's home and configurations (server `pg`).
    pub bpy: BarmanPy,
}

impl PeerWorld {
    /// pgBackRest's world; an error when the setup left it out.
    pub fn pgbr(&self) -> Result<&PgBackRest> {
        self.pgbackrest
            .as_ref()
            .context("pgBackRest is not among this scenario's peers")
    }
}

/// The running fixture. Field order is drop order: the servers stop before
/// their directories go.
#[derive(Debug)]
pub struct Fixture {
    /// The loopback sshd logging in `postgres`.
    pub sshd: Sshd,
    /// The cluster being backed up.
    pub pg: PgCluster,
    /// Apparent size of the regular files under PGDATA after set-up, bytes.
    pub pgdata_bytes: u64,
    /// Seconds `pgbench -i` took.
    pub pgbench_init_s: f64,
    /// Seconds until the WAL written by `pgbench -i` was archived and filed.
    pub wal_catch_up_s: f64,
    /// pgBackRest and Barman on the same cluster (`--with-peers`).
    pub peers: Option<PeerWorld>,
    /// uid and gid of `postgres`.
    ids: (u32, u32),
    /// `postgres`'s home directory.
    pg_home: PathBuf,
    /// Root of every other file of the run (mode 0755, root's).
    scratch: TempDir,
}

impl Fixture {
    /// Builds everything: stages `barman`, starts sshd, initialises and
    /// starts the cluster archiving through `barman put-wal`, writes the
    /// configurations, runs `pgbench -i -s scale` and a checkpoint, and
    /// files the WAL that produced (so that no measured backup pays for it).
    pub fn start(scale: u32, peers: Option<Peers>) -> Result<Self> {
        Self::start_with(scale, peers, &Setup::default())
    }

    /// [`Fixture::start`] with the cluster and peers of `setup`.
    pub fn start_with(scale: u32, peers: Option<Peers>, setup: &Setup) -> Result<Self> {
        ensure!(
            barman_testkit::is_root()?,
            "run the benchmark as root: PostgreSQL and barman run as the `{SERVER_OS_USER}` OS user"
        );
        ensure!(scale > 0, "--scale must be at least 1");
        ensure!(
            Path::new(TIME).exists(),
            "{TIME} is missing (apt-get install -y time): it measures the peak RSS"
        );
        let ids = barman_testkit::user_ids(SERVER_OS_USER).with_context(|| {
            format!("the `{SERVER_OS_USER}` OS user (apt-get install -y postgresql-15)")
        })?;
        let pg_home = crate::wal_archive::fixture::home_of(SERVER_OS_USER)?;
        let barman = barman_testkit::barman_bin("barman")
            .context("the barman binary (cargo build --release -p barman-cli --bins)")?;

        let scratch = tempfile::Builder::new()
            .prefix("barman-bench-backup-")
            .tempdir_in("/tmp")
            .context("create a temporary directory in /tmp")?;
        barman_testkit::chmod(scratch.path(), 0o755)?;
        let bin = scratch.path().join("bin");
        barman_testkit::stage_binary(&barman, &bin)?;
        for dir in ["barman", "out", "ref", "client"] {
            let path = scratch.path().join(dir);
            fs::create_dir(&path).with_context(|| format!("create {}", path.display()))?;
            barman_testkit::chown_to(&path, SERVER_OS_USER)?;
            barman_testkit::chmod(&path, 0o700)?;
        }
        let barman_dir = scratch.path().join("barman");
        let home = barman_dir.join("home");
        fs::create_dir(&home).with_context(|| format!("create {}", home.display()))?;
        barman_testkit::chown_to(&home, SERVER_OS_USER)?;
        barman_testkit::chmod(&home, 0o700)?;

        let sshd = Sshd::builder()
            .user(SERVER_OS_USER)
            .config_line(format!("SetEnv PATH={}:/usr/bin:/bin", bin.display()))
            .start()
            .context("start a loopback sshd (apt-get install -y openssh-server)")?;
        let key = scratch.path().join("client").join("id_ed25519");
        fs::copy(sshd.client_key(), &key).context("copy the ssh client key")?;
        barman_testkit::chown_to(&key, SERVER_OS_USER)?;
        barman_testkit::chmod(&key, 0o600)?;

        let local_conf = barman_dir.join(Conf::Local.file_name());
        let mut archive_command = format!(
            "{} -c {} put-wal {SERVER} %p",
            bin.join("barman").display(),
            local_conf.display()
        );
        // With peers, the same segment goes to pgBackRest (archive-push)
        // and into Barman's incoming directory too; a failure of any of
        // them fails the command, so every archive holds every segment.
        let pgbr_dir = scratch.path().join("pgbackrest");
        let bpy_dir = scratch.path().join("barman-py");
        if peers.is_some() && setup.pgbackrest {
            archive_command = format!(
                "{archive_command} && {} --config={}/pgbackrest.conf --stanza={STANZA} \
                 archive-push %p",
                crate::peers::PGBACKREST,
                pgbr_dir.display(),
            );
        }
        if peers.is_some() {
            archive_command = format!(
                "{archive_command} && cp %p {}/home/{STANZA}/incoming/%f",
                bpy_dir.display()
            );
        }
        let pg = setup
            .builder()
            .archive_command(archive_command)
            .start()
            .with_context(|| {
                format!(
                    "start a PostgreSQL {} cluster",
                    setup
                        .major
                        .map_or_else(|| "15".to_owned(), |m| m.to_string())
                )
            })?;

        let mut fixture = Self {
            sshd,
            pg,
            pgdata_bytes: 0,
            pgbench_init_s: 0.0,
            wal_catch_up_s: 0.0,
            peers: None,
            ids,
            pg_home,
            scratch,
        };
        fixture.write_configs()?;
        if let Some(peers) = peers {
            let pgbr = if setup.pgbackrest {
                let pgbr =
                    PgBackRest::for_cluster(&pgbr_dir, &fixture.pg, &key, fixture.sshd.port())?;
                let mut cmd = fixture.as_postgres(crate::peers::PGBACKREST);
                cmd.args(pgbr.args(&["stanza-create"]));
                barman_testkit::run(&mut cmd).context("pgbackrest stanza-create")?;
                Some(pgbr)
            } else {
                None
            };
            let bpy = BarmanPy::write(&bpy_dir, &fixture.pg.conninfo(), &fixture.ssh_command())?;
            let world = PeerWorld {
                peers,
                pgbackrest: pgbr,
                bpy,
            };
            let mut cmd = fixture.as_postgres(world.peers.barman());
            cmd.arg("-c").arg(world.bpy.conf(PyConf::Local)).arg("cron");
            barman_testkit::run(&mut cmd)
                .context("barman cron (Barman, creates its directories)")?;
            fixture.peers = Some(world);
        }

        eprintln!(
            "pgbench -i -s {scale} on port {} (≈ {} MB)...",
            fixture.pg.port(),
            u64::from(scale) * 15
        );
        let t = Instant::now();
        fixture.pg.pgbench_init(scale).context("pgbench -i")?;
        fixture.pg.psql("CHECKPOINT")?;
        fixture.pgbench_init_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        fixture.catch_up_wal()?;
        fixture.wal_catch_up_s = t.elapsed().as_secs_f64();
        fixture.pgdata_bytes = tree_bytes(fixture.pg.data_dir())?;
        Ok(fixture)
    }

    /// Writes one `barman.conf` per [`Conf`]: the same `barman_home`, log
    /// file and server `pg`, only the way of copying differs.
    /// The ssh command reaching the cluster's host as `postgres` through
    /// the loopback sshd (`ssh_command`, `--remote-ssh-command`).
    pub fn ssh_command(&self) -> String {
        let key = self.scratch.path().join("client").join("id_ed25519");
        format!(
            "ssh -p {} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR {SERVER_OS_USER}@127.0.0.1",
            self.sshd.port(),
            key.display()
        )
    }

    fn write_configs(&self) -> Result<()> {
        let barman_dir = self.barman_dir();
        let ssh_command = self.ssh_command();
        for conf in Conf::ALL {
            let text = format!(
                "[barman]\nbarman_home = {home}\nlog_file = {log}\nlog_level = INFO\n\n\
                 [{SERVER}]\ndescription = barman-benches backup\nconninfo = {conninfo}\n\
                 {method}archiver = on\nimmediate_checkpoint = true\n",
                home = barman_dir.join("home").display(),
                log = barman_dir.join("barman.log").display(),
                conninfo = self.pg.conninfo(),
                method = conf.method_lines(&ssh_command, &self.pg.conninfo()),
            );
            let path = self.conf(conf);
            fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
            barman_testkit::chown_to(&path, SERVER_OS_USER)?;
            barman_testkit::chmod(&path, 0o600)?;
        }
        Ok(())
    }

    /// Switches WAL, waits until PostgreSQL's archiver has pushed
    /// everything through `put-wal`, then files it with `archive-wal`.
    pub fn catch_up_wal(&self) -> Result<()> {
        let last = self.pg.switch_wal()?;
        eprintln!("waiting for the archiver to push everything up to {last}...");
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            let row = self.pg.psql(
                "SELECT coalesce(last_archived_wal, '') || '|' || failed_count || '|' || \
                 coalesce(last_failed_wal, '') FROM pg_stat_archiver",
            )?;
            let fields: Vec<&str> = row.split('|').collect();
            if fields.first().is_some_and(|w| *w >= last.as_str()) {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "the archiver did not reach {last} in 30 minutes (pg_stat_archiver: {row});\n\
                     --- barman log (tail) ---\n{}",
                    self.log_tail()
                );
            }
            if fields.get(1).is_some_and(|n| *n != "0") {
                eprintln!("warning: archive_command failures so far: {row}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let mut cmd = self.barman(Conf::Local, &["archive-wal", SERVER]);
        barman_testkit::run(&mut cmd).context("barman archive-wal")?;
        if let Some(world) = &self.peers {
            let mut cmd = self.as_postgres(world.peers.barman());
            cmd.arg("-c")
                .arg(world.bpy.conf(PyConf::Local))
                .args(["archive-wal", STANZA]);
            barman_testkit::run(&mut cmd).context("barman archive-wal (Barman)")?;
        }
        Ok(())
    }

    /// The barman directory (configurations, `home/`, `barman.log`).
    pub fn barman_dir(&self) -> PathBuf {
        self.scratch.path().join("barman")
    }

    /// The configuration file of `conf`.
    pub fn conf(&self, conf: Conf) -> PathBuf {
        self.barman_dir().join(conf.file_name())
    }

    /// The server's directory in the barman home.
    pub fn server_dir(&self) -> PathBuf {
        self.barman_dir().join("home").join(SERVER)
    }

    /// The directory holding the staged `barman`.
    pub fn bin(&self) -> PathBuf {
        self.scratch.path().join("bin")
    }

    /// A directory owned by `postgres` for the measurement files.
    pub fn out_dir(&self) -> PathBuf {
        self.scratch.path().join("out")
    }

    /// A directory owned by `postgres` for the `cp -a` reference copy.
    pub fn ref_dir(&self) -> PathBuf {
        self.scratch.path().join("ref")
    }

    /// The tail of the barman log (for error messages).
    pub fn log_tail(&self) -> String {
        tail(&self.barman_dir().join("barman.log"), 4096)
    }

    /// The tail of the sshd log (for error messages).
    pub fn sshd_log(&self) -> String {
        tail(&self.sshd.log_path(), 2048)
    }

    /// `barman -c CONF args...` as `postgres`, without a time wrapper.
    pub fn barman(&self, conf: Conf, args: &[&str]) -> Command {
        let mut cmd = self.as_postgres(self.bin().join("barman"));
        cmd.arg("-c").arg(self.conf(conf)).args(args);
        cmd
    }

    /// `/usr/bin/time -f '%M %e %U %S' -o TIME_FILE program args...` as
    /// `postgres`: GNU time writes the peak RSS (KiB), the elapsed, user
    /// and system seconds of `program` into `time_file`.
    pub fn timed(&self, time_file: &Path, program: &Path, args: &[&str]) -> Command {
        let mut cmd = self.as_postgres(TIME);
        cmd.args(["-f", "%M %e %U %S", "-o"])
            .arg(time_file)
            .arg(program)
            .args(args);
        cmd
    }

    /// A command run as `postgres` with a clean environment and no stdin.
    pub fn as_postgres(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd =
            barman_testkit::server_user_command(program, self.ids, &self.pg_home, &self.bin());
        cmd.current_dir(&self.pg_home);
        cmd
    }

    /// `pgbench -n -t transactions -c clients postgres` against the cluster
    /// (as root over TCP, trust); returns its seconds.
    pub fn pgbench_run(&self, transactions: u32, clients: u32) -> Result<f64> {
        // The cluster's own client tools (PostgreSQL 15's unless the
        // setup chose 18), over TCP as `postgres`.
        let mut cmd = self.pg.client_command("pgbench");
        cmd.arg("-n")
            .args(["-t", &transactions.to_string()])
            .args(["-c", &clients.to_string()])
            .args(["-j", &clients.clamp(1, 2).to_string(), "postgres"]);
        let t = Instant::now();
        barman_testkit::run(&mut cmd).context("pgbench -n")?;
        Ok(t.elapsed().as_secs_f64())
    }

    /// The backup ids in the catalog (`meta/<id>-backup.info`), oldest
    /// first (ids are timestamps).
    pub fn backup_ids(&self) -> Result<Vec<String>> {
        let meta = self.server_dir().join("meta");
        let mut ids: Vec<String> = match fs::read_dir(&meta) {
            Ok(entries) => entries
                .filter_map(|e| {
                    e.ok()?
                        .file_name()
                        .to_str()?
                        .strip_suffix("-backup.info")
                        .map(str::to_owned)
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("read {}", meta.display())),
        };
        ids.sort();
        Ok(ids)
    }

    /// Removes every backup but the `keep` newest (`base/<id>` and
    /// `meta/<id>-backup.info`), so the disk use stays bounded.
    pub fn prune(&self, keep: usize) -> Result<()> {
        let ids = self.backup_ids()?;
        let server = self.server_dir();
        for id in &ids[..ids.len().saturating_sub(keep)] {
            remove_dir(&server.join("base").join(id))?;
            let info = server.join("meta").join(format!("{id}-backup.info"));
            fs::remove_file(&info).with_context(|| format!("remove {}", info.display()))?;
        }
        Ok(())
    }

    /// The `status` field of `meta/<id>-backup.info`.
    pub fn backup_status(&self, id: &str) -> Result<String> {
        let path = self
            .server_dir()
            .join("meta")
            .join(format!("{id}-backup.info"));
        let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        text.lines()
            .find_map(|l| l.strip_prefix("status="))
            .map(|s| s.trim().to_owned())
            .with_context(|| format!("no status= line in {}", path.display()))
    }
}

/// The apparent size of every regular file under `dir` (symlinks not
/// followed), in bytes.
pub fn tree_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for_each_file(dir, |_, meta| total += meta.len())?;
    Ok(total)
}

/// Calls `f` with every regular file under `dir` and its metadata
/// (symlinks not followed; entries a live cluster removes meanwhile are
/// skipped).
pub fn for_each_file(dir: &Path, mut f: impl FnMut(&Path, &fs::Metadata)) -> Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(entries) => entries,
            // A live cluster removes files while we walk.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("read {}", d.display())),
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                f(&path, &meta);
            }
        }
    }
    Ok(())
}

/// The last `bytes` of a text file (empty when unreadable).
pub fn tail(path: &Path, bytes: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(bytes);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}
