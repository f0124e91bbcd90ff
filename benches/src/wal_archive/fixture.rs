//! The world the WAL-archiving benchmark runs in: a throwaway PostgreSQL 15
//! cluster that produced the segments, a copy of them shaped like `pg_wal`,
//! the staged binaries, an ssh client wrapper, a loopback sshd and a barman
//! home, all owned by the `postgres` OS user where PostgreSQL would need it.
//!
//! Everything lives in temporary directories under `/tmp` and is removed on
//! drop; the cluster and sshd are stopped by pid (see `barman-e2e`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail, ensure};
use barman_testkit::{BarmanHome, PgCluster, SERVER_OS_USER, Sshd};
use barman_wal::{SegmentName, WalSegmentSize};
use tempfile::TempDir;

use crate::peers::{Peers, PgBackRest};

/// The segment size of the benchmark cluster (PostgreSQL's default).
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// The directory (inside [`Fixture::pgdata`]) holding the input segments,
/// named like PostgreSQL's so that `%p` is `pg_wal/<segment>`.
const WAL_DIR: &str = "pg_wal";

/// The running fixture. Field order is drop order: the servers stop before
/// their directories go.
#[derive(Debug)]
pub struct Fixture {
    /// The loopback sshd logging in `postgres`.
    pub sshd: Sshd,
    /// The cluster that produced the segments (kept running: `archive-wal`
    /// reads the system identifier from it on first use, as Barman does).
    pub pg: PgCluster,
    /// The barman home (owned by `postgres`) with one server per variant.
    pub home: BarmanHome,
    /// The input segments, in name order.
    pub segments: Vec<String>,
    /// Size of every input segment in bytes.
    pub segment_bytes: u64,
    /// uid and gid of `postgres`.
    ids: (u32, u32),
    /// `postgres`'s home directory (`HOME` of the archive commands).
    pg_home: PathBuf,
    /// pgBackRest and Barman (Python), with `--with-peers`.
    pub peers: Option<WalPeers>,
    /// Root of every other file of the run (mode 0755, root's).
    scratch: TempDir,
}

/// The peers' side: pgBackRest's repository (stanza `pg`, pg1-path the
/// segments' directory) and a second loopback sshd whose `PATH` starts
/// with Barman's virtualenv, so that Barman's `barman-wal-archive` reaches
/// Barman's `barman put-wal` (`ssh` on `PATH` for it: `bin-py/ssh`).
#[derive(Debug)]
pub struct WalPeers {
    /// The installed peers.
    pub peers: Peers,
    /// pgBackRest's configuration and repository.
    pub pgbr: PgBackRest,
    /// The sshd in front of Barman (Python).
    pub sshd: Sshd,
    /// Barman's configuration file (its servers: the `barman-py-*`
    /// variants').
    pub conf: PathBuf,
    /// Barman's home.
    pub home: PathBuf,
}

impl Fixture {
    /// Builds everything: generates at least `count` segments with rounds of
    /// `pgbench -i -s scale`, copies the last `count` completed ones, stages
    /// the binaries and starts sshd. `servers` is the barman configuration
    /// of the servers (without the `[barman]` section); `{conninfo}` in it
    /// is replaced by the cluster's.
    pub fn start(
        count: usize,
        scale: u32,
        servers: &str,
        peers: Option<(Peers, String)>,
    ) -> Result<Self> {
        ensure!(
            barman_testkit::is_root()?,
            "run the benchmark as root: PostgreSQL and the archive commands run as the `{SERVER_OS_USER}` OS user"
        );
        ensure!(count > 0, "--segments must be at least 1");
        let ids = barman_testkit::user_ids(SERVER_OS_USER).with_context(|| {
            format!("the `{SERVER_OS_USER}` OS user (apt-get install -y postgresql-15)")
        })?;
        let pg_home = home_of(SERVER_OS_USER)?;
        let binaries: Vec<PathBuf> = ["barman", "barman-wal-archive"]
            .iter()
            .map(|b| barman_testkit::barman_bin(b))
            .collect::<Result<_, _>>()
            .context("the barman binaries (cargo build --release -p barman-cli --bins)")?;

        let scratch = tempfile::Builder::new()
            .prefix("barman-bench-wal-")
            .tempdir_in("/tmp")
            .context("create a temporary directory in /tmp")?;
        barman_testkit::chmod(scratch.path(), 0o755)?;

        let pg = PgCluster::builder()
            .conf("wal_keep_size = '64GB'")
            .conf("max_wal_size = '64GB'")
            .conf("checkpoint_timeout = '1h'")
            .start()
            .context("start a PostgreSQL 15 cluster")?;
        let chosen = generate(&pg, count, scale)?;

        let bin = scratch.path().join("bin");
        for b in &binaries {
            barman_testkit::stage_binary(b, &bin)?;
        }
        let sshd = Sshd::builder()
            .user(SERVER_OS_USER)
            .config_line(format!("SetEnv PATH={}:/usr/bin:/bin", bin.display()))
            .start()
            .context("start a loopback sshd (apt-get install -y openssh-server)")?;
        write_ssh_wrappers(scratch.path(), &sshd)?;
        let home = BarmanHome::new(
            &servers.replace("{conninfo}", &pg.conninfo()),
            Some(SERVER_OS_USER),
        )?;

        let pgdata = scratch.path().join("pgdata");
        let wal = pgdata.join(WAL_DIR);
        fs::create_dir_all(wal.join("archive_status"))
            .with_context(|| format!("create {}", wal.display()))?;
        let mut segments = Vec::with_capacity(chosen.len());
        for seg in &chosen {
            let name = seg.to_string();
            let dest = wal.join(&name);
            fs::copy(pg.wal_dir().join(&name), &dest)
                .with_context(|| format!("copy {name} to {}", dest.display()))?;
            let size = fs::metadata(&dest)?.len();
            ensure!(
                size == SEGMENT_BYTES,
                "{name} has {size} bytes, not {SEGMENT_BYTES}"
            );
            segments.push(name);
        }
        let peers = match peers {
            None => None,
            Some((peers, py_servers)) => {
                // pgBackRest's archive-push reads pg_control under pg1-path.
                let global = pgdata.join("global");
                fs::create_dir_all(&global)?;
                fs::copy(
                    pg.data_dir().join("global/pg_control"),
                    global.join("pg_control"),
                )
                .context("copy pg_control for pgBackRest")?;
                let key = scratch.path().join("client").join("id_ed25519");
                let pgbr = PgBackRest::for_cluster(
                    &scratch.path().join("pgbackrest"),
                    &pg,
                    &key,
                    sshd.port(),
                )?;
                let py_sshd = Sshd::builder()
                    .user(SERVER_OS_USER)
                    .config_line(format!(
                        "SetEnv PATH={}:/usr/bin:/bin",
                        peers.venv.join("bin").display()
                    ))
                    .start()
                    .context("start the loopback sshd in front of Barman")?;
                write_py_ssh_wrapper(scratch.path(), &py_sshd)?;
                let py_dir = scratch.path().join("barman-py");
                let py_home = py_dir.join("home");
                for d in [&py_dir, &py_home] {
                    fs::create_dir_all(d)?;
                    barman_testkit::chown_to(d, SERVER_OS_USER)?;
                    barman_testkit::chmod(d, 0o700)?;
                }
                let conf = py_dir.join("barman.conf");
                fs::write(
                    &conf,
                    format!(
                        "[barman]\nbarman_home = {}\nbarman_user = {SERVER_OS_USER}\n\
                         log_file = {}\nlog_level = INFO\n\n{}",
                        py_home.display(),
                        py_dir.join("barman.log").display(),
                        py_servers.replace("{conninfo}", &pg.conninfo())
                    ),
                )?;
                barman_testkit::chown_to(&conf, SERVER_OS_USER)?;
                barman_testkit::chmod(&conf, 0o600)?;
                Some(WalPeers {
                    peers,
                    pgbr,
                    sshd: py_sshd,
                    conf,
                    home: py_home,
                })
            }
        };
        let fixture = Self {
            sshd,
            pg,
            home,
            segments,
            segment_bytes: SEGMENT_BYTES,
            ids,
            pg_home,
            peers,
            scratch,
        };
        fixture.reset_status()?;
        let mut chown = Command::new("chown");
        chown
            .args(["-R", &format!("{SERVER_OS_USER}:")])
            .arg(&pgdata);
        barman_testkit::run(&mut chown)?;
        barman_testkit::chmod(&pgdata, 0o700)?;
        fixture.free_cluster_wal()?;
        Ok(fixture)
    }

    /// The directory the archive commands run in (PostgreSQL's cwd is its
    /// data directory, and `%p` is relative to it).
    pub fn pgdata(&self) -> PathBuf {
        self.scratch.path().join("pgdata")
    }

    /// The directory holding the staged `barman`, `barman-wal-archive` and
    /// the `ssh` wrapper (first on the commands' `PATH`).
    pub fn bin(&self) -> PathBuf {
        self.scratch.path().join("bin")
    }

    /// The directory holding the connection-sharing `ssh` wrapper (put
    /// before [`bin`](Self::bin) on `PATH` by the `-mux` variants).
    pub fn mux_bin(&self) -> PathBuf {
        self.scratch.path().join("bin-mux")
    }

    /// Stops the shared ssh connection of the `-mux` variants, if one is
    /// up (`ssh -O exit`, as `postgres`; the master exits on its own after
    /// 60 idle seconds or when sshd stops anyway).
    pub fn stop_mux(&self) {
        let line = format!(
            "PATH={}:$PATH ssh -O exit -p {} {SERVER_OS_USER}@127.0.0.1",
            self.mux_bin().display(),
            self.sshd.port()
        );
        let _ = self
            .shell(&line)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The tail of the sshd log (for error messages).
    pub fn sshd_log(&self) -> String {
        let text = fs::read_to_string(self.sshd.log_path()).unwrap_or_default();
        let start = text.len().saturating_sub(2048);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }

    /// A fresh empty directory `<scratch>/<name>` owned by `postgres`, mode
    /// 0700 (an output directory, a prefetch cache).
    pub fn fresh_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.scratch.path().join(name);
        remove_dir(&dir)?;
        fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        barman_testkit::chown_to(&dir, SERVER_OS_USER)?;
        barman_testkit::chmod(&dir, 0o700)?;
        Ok(dir)
    }

    /// The path of `<scratch>/<name>` (not created).
    pub fn scratch_path(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    /// Puts every input segment back to `archive_status/<seg>.ready`, as
    /// PostgreSQL leaves them before archiving.
    pub fn reset_status(&self) -> Result<()> {
        let status = self.pgdata().join(WAL_DIR).join("archive_status");
        for seg in &self.segments {
            let done = status.join(format!("{seg}.done"));
            let ready = status.join(format!("{seg}.ready"));
            if done.exists() {
                fs::rename(&done, &ready).with_context(|| format!("rename {}", done.display()))?;
            } else if !ready.exists() {
                fs::write(&ready, "").with_context(|| format!("create {}", ready.display()))?;
                barman_testkit::chown_to(&ready, SERVER_OS_USER)?;
            }
        }
        Ok(())
    }

    /// Renames `<seg>.ready` to `<seg>.done`, as PostgreSQL does after a
    /// successful `archive_command`.
    pub fn mark_done(&self, seg: &str) -> Result<()> {
        let status = self.pgdata().join(WAL_DIR).join("archive_status");
        let ready = status.join(format!("{seg}.ready"));
        fs::rename(&ready, status.join(format!("{seg}.done")))
            .with_context(|| format!("rename {}", ready.display()))
    }

    /// `/bin/sh -c line` as `postgres` in [`pgdata`](Self::pgdata), with the
    /// small environment an `archive_command` sees — how PostgreSQL runs it
    /// (`system()`).
    pub fn shell(&self, line: &str) -> Command {
        let mut cmd = self.as_postgres("/bin/sh");
        cmd.arg("-c").arg(line).current_dir(self.pgdata());
        cmd
    }

    /// `barman -c CONF args...` as `postgres` (Barman's side: `archive-wal`).
    pub fn barman(&self, args: &[&str]) -> Command {
        let mut cmd = self.as_postgres(self.bin().join("barman"));
        cmd.arg("-c").arg(self.home.conf()).args(args);
        cmd.current_dir(&self.pg_home);
        cmd
    }

    /// A command run as `postgres` with a clean environment and no stdin.
    pub fn as_postgres(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        barman_testkit::server_user_command(program, self.ids, &self.pg_home, &self.bin())
    }

    /// Lets the cluster drop the WAL it kept for us (the copies are made):
    /// `wal_keep_size = 0`, small `max_wal_size`, then a checkpoint.
    fn free_cluster_wal(&self) -> Result<()> {
        for sql in [
            "ALTER SYSTEM SET wal_keep_size = 0",
            "ALTER SYSTEM SET min_wal_size = '32MB'",
            "ALTER SYSTEM SET max_wal_size = '64MB'",
            "SELECT pg_reload_conf()",
            "CHECKPOINT",
            "SELECT pg_switch_wal()",
            "CHECKPOINT",
        ] {
            self.pg.psql(sql)?;
        }
        Ok(())
    }
}

/// The completed segments in the cluster's `pg_wal` (names before the one
/// being written), in order.
fn completed(pg: &PgCluster) -> Result<Vec<SegmentName>> {
    let current: SegmentName = pg
        .psql("SELECT pg_walfile_name(pg_current_wal_lsn())")?
        .parse()
        .context("pg_walfile_name")?;
    let dir = pg.wal_dir();
    let mut names: Vec<SegmentName> = fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|s: &SegmentName| *s < current)
        .collect();
    names.sort();
    Ok(names)
}

/// Runs `pgbench -i -s scale` until more than `count` segments are
/// complete, switches WAL, and returns the last `count` completed ones
/// (checked to be consecutive).
fn generate(pg: &PgCluster, count: usize, scale: u32) -> Result<Vec<SegmentName>> {
    let mut round = 0;
    while completed(pg)?.len() <= count {
        round += 1;
        if round > 1000 {
            bail!("pgbench -i -s {scale} produced too few WAL segments after 1000 rounds");
        }
        eprintln!(
            "generating WAL: pgbench -i -s {scale}, round {round} ({} segments so far, {count} wanted)",
            completed(pg)?.len()
        );
        pg.pgbench_init(scale)?;
    }
    pg.switch_wal()?;
    let all = completed(pg)?;
    let chosen = all[all.len() - count..].to_vec();
    for pair in chosen.windows(2) {
        ensure!(
            pair[0].checked_next(WalSegmentSize::DEFAULT) == Some(pair[1]),
            "segments {} and {} in pg_wal are not consecutive",
            pair[0],
            pair[1]
        );
    }
    Ok(chosen)
}

/// Writes `<scratch>/client/id_ed25519` (the sshd's client key, owned by
/// `postgres`) and two wrappers running `/usr/bin/ssh` with that key and
/// without host-key checks (`barman-wal-archive` runs the `ssh` it finds on
/// `PATH`, as Barman's script does):
///
/// * `<scratch>/bin/ssh`: one connection per call, Barman's default;
/// * `<scratch>/bin-mux/ssh`: the same plus connection sharing
///   (`ControlMaster=auto`, `ControlPath=<scratch>/client/cm/%C`,
///   `ControlPersist=60`), what an `~/.ssh/config` tuned for archiving does.
fn write_ssh_wrappers(scratch: &Path, sshd: &Sshd) -> Result<()> {
    let client = scratch.join("client");
    let control = client.join("cm");
    fs::create_dir_all(&control)?;
    for dir in [&client, &control] {
        barman_testkit::chown_to(dir, SERVER_OS_USER)?;
        barman_testkit::chmod(dir, 0o700)?;
    }
    let key = client.join("id_ed25519");
    fs::copy(sshd.client_key(), &key).context("copy the ssh client key")?;
    barman_testkit::chown_to(&key, SERVER_OS_USER)?;
    barman_testkit::chmod(&key, 0o600)?;
    let common = format!(
        "-i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
         -o IdentitiesOnly=yes -o LogLevel=ERROR",
        key.display()
    );
    let mux = format!(
        "{common} -o ControlMaster=auto -o ControlPath={}/%C -o ControlPersist=60",
        control.display()
    );
    for (dir, options) in [("bin", common), ("bin-mux", mux)] {
        let dir = scratch.join(dir);
        fs::create_dir_all(&dir)?;
        barman_testkit::chmod(&dir, 0o755)?;
        let wrapper = dir.join("ssh");
        fs::write(
            &wrapper,
            format!("#!/bin/sh\nexec /usr/bin/ssh {options} \"$@\"\n"),
        )
        .with_context(|| format!("write {}", wrapper.display()))?;
        barman_testkit::chmod(&wrapper, 0o755)?;
    }
    Ok(())
}

/// Writes `<scratch>/bin-py/ssh`: the ssh wrapper with the key of the
/// sshd in front of Barman (Python).
fn write_py_ssh_wrapper(scratch: &Path, sshd: &Sshd) -> Result<()> {
    let key = scratch.join("client").join("id_ed25519_py");
    fs::copy(sshd.client_key(), &key).context("copy the ssh client key")?;
    barman_testkit::chown_to(&key, SERVER_OS_USER)?;
    barman_testkit::chmod(&key, 0o600)?;
    let dir = scratch.join("bin-py");
    fs::create_dir_all(&dir)?;
    barman_testkit::chmod(&dir, 0o755)?;
    let wrapper = dir.join("ssh");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec /usr/bin/ssh -i {} -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=yes \
             -o LogLevel=ERROR \"$@\"\n",
            key.display()
        ),
    )
    .with_context(|| format!("write {}", wrapper.display()))?;
    barman_testkit::chmod(&wrapper, 0o755)?;
    Ok(())
}

/// The home directory of `user` from `/etc/passwd`.
pub fn home_of(user: &str) -> Result<PathBuf> {
    let passwd = fs::read_to_string("/etc/passwd").context("read /etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[0] == user)
        .map(|f| PathBuf::from(f[5]))
        .with_context(|| format!("no `{user}` in /etc/passwd"))
}

/// Removes a directory tree if it exists.
pub fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", dir.display())),
    }
}
