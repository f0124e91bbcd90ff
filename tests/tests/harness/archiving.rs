//! Continuous WAL archiving end to end: PostgreSQL's `archive_command` runs
//! `barman-wal-archive`, which pushes every segment through a loopback sshd
//! into `barman put-wal`; `barman archive-wal` files them; `get-wal` /
//! `barman-wal-restore` serve them back to a standby's `restore_command`.
//! `pg_waldump` and the original files in `pg_wal` are the outside judges.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use barman_testkit::catalog::names_in;
use barman_testkit::{
    BarmanHome, DataDirServer, PgCluster, SERVER_OS_USER, Sshd, barman_bin, chown_to, is_root, run,
    stage_binary,
};

/// (server, server-side compression, barman-wal-archive options; `{cache}`
/// is a directory the `postgres` user owns)
const SERVERS: [(&str, &str, &str); 5] = [
    ("pg_none", "", ""),
    ("pg_gzip", "gzip", "--gzip"),
    ("pg_bzip2", "bzip2", ""),
    ("pg_zstd", "zstd", "--zstd"),
    (
        "pg_lz4",
        "lz4",
        "--parallel 4 --prefetch-cache-dir {cache}/prefetch",
    ),
];

/// What the client side (run as `postgres` by PostgreSQL) needs: the
/// staged client binaries and an `ssh` wrapper carrying the test key.
pub(crate) struct ClientSide {
    dir: tempfile::TempDir,
}

impl ClientSide {
    pub(crate) fn new(sshd: &Sshd) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("barman-e2e-client-")
            .tempdir_in("/tmp")
            .unwrap();
        barman_testkit::chmod(dir.path(), 0o755).unwrap();
        for b in ["barman-wal-archive", "barman-wal-restore", "barman"] {
            stage_binary(
                &barman_bin(b).expect("build the barman binaries"),
                dir.path(),
            )
            .unwrap();
        }
        let key = dir.path().join("id_ed25519");
        fs::copy(sshd.client_key(), &key).unwrap();
        chown_to(&key, SERVER_OS_USER).unwrap();
        barman_testkit::chmod(&key, 0o600).unwrap();
        // One multiplexed connection for all the sessions (as a busy
        // archive host would configure it): every barman-wal-archive call
        // still runs its own `barman put-wal` through sshd, without paying
        // a key exchange each time.
        let sockets = dir.path().join("cm");
        fs::create_dir(&sockets).unwrap();
        chown_to(&sockets, SERVER_OS_USER).unwrap();
        barman_testkit::chmod(&sockets, 0o700).unwrap();
        let wrapper = dir.path().join("ssh");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -i {} -o StrictHostKeyChecking=no \
                 -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=yes \
                 -o LogLevel=ERROR -o ControlMaster=auto -o ControlPath={}/%C \
                 -o ControlPersist=30 \"$@\"\n",
                key.display(),
                sockets.display()
            ),
        )
        .unwrap();
        barman_testkit::chmod(&wrapper, 0o755).unwrap();
        Self { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A directory owned by `postgres` (ssh sockets, prefetch cache).
    pub(crate) fn private_dir(&self) -> PathBuf {
        self.dir.path().join("cm")
    }

    /// Stops the multiplexing master of `port`, if one runs.
    pub(crate) fn stop_master(&self, port: u16) {
        let _ = Command::new("runuser")
            .args(["-u", SERVER_OS_USER, "--"])
            .arg(self.bin("ssh"))
            .args(["-O", "exit", "-p", &port.to_string()])
            .arg(format!("{SERVER_OS_USER}@127.0.0.1"))
            .output();
    }

    pub(crate) fn bin(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn servers_conf(pg: &PgCluster) -> String {
    let mut text = String::new();
    for (name, comp, _) in SERVERS {
        let _ = write!(
            text,
            "[{name}]\ndescription = archive test {name}\nconninfo = {}\nbackup_method = postgres\narchiver = on\ncompression = {comp}\n\n",
            pg.conninfo()
        );
    }
    text
}

pub(crate) fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until PostgreSQL has archived `segment` and has nothing left to archive.
pub(crate) fn wait_archived(pg: &PgCluster, segment: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let last = pg
            .psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
            .unwrap();
        let ready = fs::read_dir(pg.wal_dir().join("archive_status"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".ready")
            })
            .count();
        if last.as_str() >= segment && ready == 0 {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "PostgreSQL did not archive {segment} in {timeout:?} (last archived: {last}, {ready} .ready); log:\n{}",
            fs::read_to_string(pg.log_path()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Names of the files under `wals/` (hash dirs and top level), xlog.db excluded.
fn archived_files(wals: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in fs::read_dir(wals).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            for f in fs::read_dir(e.path()).unwrap() {
                v.push(f.unwrap().file_name().to_string_lossy().into_owned());
            }
        } else if !name.ends_with("-xlog.db") {
            v.push(name);
        }
    }
    v.sort();
    v
}

fn xlogdb(home: &BarmanHome, server: &str) -> Vec<Vec<String>> {
    let path = home
        .server_dir(server)
        .join("wals")
        .join(format!("{server}-xlog.db"));
    fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

#[test]
fn archive_command_through_ssh_keeps_every_segment_for_every_codec_and_feeds_a_standby() {
    // The Barman side runs as `postgres` too (a plain account: root's shell
    // start-up files would dominate the timings), in a home it owns.
    let setup = LocalSetup::new();
    let home = &setup.home;
    let sshd = Sshd::builder()
        .user(SERVER_OS_USER)
        .config_line(format!(
            "SetEnv PATH={}:/usr/bin:/bin",
            setup.bin.path().display()
        ))
        .start()
        .expect("start sshd");
    let client = ClientSide::new(&sshd);

    // One push per server, in a script: PostgreSQL 15 expands
    // archive_command into a 1024-byte buffer, too short for five commands.
    let mut script = format!(
        "#!/bin/sh\nset -e\nPATH={}:/usr/bin:/bin\nexport PATH\n",
        client.path().display()
    );
    for (name, _, flag) in SERVERS {
        let flag = flag.replace("{cache}", client.private_dir().to_str().unwrap());
        let _ = writeln!(
            script,
            "barman-wal-archive -U {SERVER_OS_USER} --port {} -c {} {flag} 127.0.0.1 {name} \"$1\"",
            sshd.port(),
            home.conf().display()
        );
    }
    let script_path = client.private_dir().join("archive.sh");
    fs::write(&script_path, script).unwrap();
    chown_to(&script_path, SERVER_OS_USER).unwrap();
    barman_testkit::chmod(&script_path, 0o755).unwrap();
    let archive_command = format!("{} %p", script_path.display());
    let pg = PgCluster::builder()
        .archive_command(archive_command)
        .conf("wal_keep_size = '4GB'")
        .conf("max_wal_size = '4GB'")
        .conf("checkpoint_timeout = '30min'")
        .start()
        .expect("start PostgreSQL 15");
    // Now that the port is known, write the servers.
    let conf_text = fs::read_to_string(home.conf()).unwrap() + &servers_conf(&pg);
    fs::write(home.conf(), conf_text).unwrap();

    // A base copy for the standby, taken with PostgreSQL's own tool before
    // the load (without WAL: the standby must get every WAL from barman).
    pg.pgbench_init(2).unwrap();
    let standby_parent = tempfile::Builder::new()
        .prefix("barman-e2e-standby-")
        .tempdir_in("/tmp")
        .unwrap();
    chown_to(standby_parent.path(), SERVER_OS_USER).unwrap();
    let standby_dir = standby_parent.path().join("data");
    pg.base_copy(&standby_dir).expect("pg_basebackup");

    // Load: pgbench in the background while WAL switches close ≥ 55 segments.
    let port = pg.port();
    let pgbench = std::thread::spawn({
        let bin = pg.pg_bin().join("pgbench");
        move || {
            run(Command::new(bin)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .args(["-n", "-c", "2", "-j", "2", "-T", "12", "postgres"]))
            .expect("pgbench")
        }
    });
    let t0 = Instant::now();
    let mut switched = Vec::new();
    while !pgbench.is_finished() || switched.len() < 55 {
        std::thread::sleep(Duration::from_millis(150));
        let seg = pg.switch_wal().unwrap();
        if !seg.is_empty() && switched.last() != Some(&seg) {
            switched.push(seg);
        }
    }
    pgbench.join().unwrap();
    eprintln!("load: {:?}", t0.elapsed());
    let expected_sum = pg
        .psql("SELECT sum(abalance) || '/' || (SELECT count(*) FROM pgbench_history) FROM pgbench_accounts")
        .unwrap();
    let last = pg.switch_wal().unwrap();
    let t0 = Instant::now();
    wait_archived(&pg, &last, Duration::from_secs(600));
    eprintln!(
        "{} segments switched; archiving caught up {:?} after the load",
        switched.len(),
        t0.elapsed()
    );
    let failed: u64 = pg
        .psql("SELECT failed_count FROM pg_stat_archiver")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        failed,
        0,
        "archive_command failed {failed} times; log:\n{}",
        home.log()
    );

    let t0 = Instant::now();
    ok(
        &setup.run(&["archive-wal", "all"]),
        "barman archive-wal all",
    );
    eprintln!("archive-wal all: {:?}", t0.elapsed());
    let t0 = Instant::now();

    let sysid = pg.system_identifier().unwrap();
    let pg_wal = pg.wal_dir();
    for (server, comp, _) in SERVERS {
        let wals = home.server_dir(server).join("wals");
        let lines = xlogdb(home, server);
        let names: Vec<String> = lines.iter().map(|l| l[0].clone()).collect();
        let unique: BTreeSet<&String> = names.iter().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "{server}: duplicate xlog.db lines"
        );
        assert_eq!(
            archived_files(&wals),
            names,
            "{server}: xlog.db and wals/ differ"
        );
        let segments: Vec<&String> = names.iter().filter(|n| n.len() == 24).collect();
        assert!(
            segments.len() >= 50,
            "{server}: only {} segments archived",
            segments.len()
        );
        for l in &lines {
            assert_eq!(l.len(), 5, "{server}: {l:?}");
            let expected = if comp.is_empty() { "None" } else { comp };
            assert_eq!(l[3], expected, "{server}: compression column of {l:?}");
        }
        // identity.json written from the server.
        let identity = fs::read_to_string(home.server_dir(server).join("identity.json")).unwrap();
        assert!(identity.contains(&sysid.to_string()), "{identity}");
        // Every segment decompresses (through get-wal) to what PostgreSQL wrote.
        for seg in &segments {
            let out = setup.run(&["get-wal", server, seg]);
            assert!(out.status.success(), "get-wal {server} {seg}: {out:?}");
            let original = fs::read(pg_wal.join(seg)).unwrap();
            assert!(
                out.stdout == original,
                "{server}: {seg} differs from pg_wal ({} vs {} bytes)",
                out.stdout.len(),
                original.len()
            );
        }
        // Every switched segment is there.
        for seg in &switched {
            assert!(names.contains(seg), "{server}: {seg} missing");
        }
    }

    eprintln!("get-wal checks: {:?}", t0.elapsed());
    let t0 = Instant::now();
    // pg_waldump reads the whole archived range back (zstd server, via get-wal -o).
    let dump_dir = tempfile::tempdir().unwrap();
    chown_to(dump_dir.path(), SERVER_OS_USER).unwrap();
    let names: Vec<String> = xlogdb(home, "pg_zstd")
        .into_iter()
        .map(|l| l[0].clone())
        .filter(|n| n.len() == 24)
        .collect();
    for seg in &names {
        let out = home
            .barman(&[
                "get-wal",
                "-o",
                dump_dir.path().to_str().unwrap(),
                "pg_zstd",
                seg,
            ])
            .unwrap();
        ok(&out, "get-wal -o");
    }
    let first = names.first().unwrap();
    let last_seg = names.last().unwrap();
    let dump = Command::new(pg.pg_bin().join("pg_waldump"))
        .arg("-p")
        .arg(dump_dir.path())
        .args(["--stats", first, last_seg])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "pg_waldump {first}..{last_seg}: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(String::from_utf8_lossy(&dump.stdout).contains("Heap"));

    eprintln!("pg_waldump: {:?}", t0.elapsed());
    let t0 = Instant::now();
    // The standby replays everything from barman through barman-wal-restore
    // over ssh (with parallel prefetch), and sees the primary's final data.
    let restore = format!(
        "PATH={}:/usr/bin:/bin {} -U postgres --port {} -c {} --parallel 3 --spool-dir {} 127.0.0.1 pg_bzip2 %f %p",
        client.path().display(),
        client.bin("barman-wal-restore").display(),
        sshd.port(),
        home.conf().display(),
        standby_parent.path().join("spool").display()
    );
    fs::write(standby_dir.join("standby.signal"), "").unwrap();
    let standby = DataDirServer::start(
        pg.pg_bin(),
        &standby_dir,
        &format!(
            "archive_mode = off\nhot_standby = on\nrestore_command = '{restore}'\nprimary_conninfo = ''\n"
        ),
    )
    .expect("start the standby");
    // Replay proceeds segment by segment; wait for the primary's final state.
    standby
        .wait_for(
            "SELECT sum(abalance) || '/' || (SELECT count(*) FROM pgbench_history) FROM pgbench_accounts",
            &expected_sum,
            Duration::from_secs(300),
        )
        .expect("the standby replays the archive up to the primary's final state");
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()").unwrap(), "t");
    // The connection tests of both clients, over the same ssh.
    for (bin, expect) in [
        (
            "barman-wal-archive",
            "Ready to accept WAL files for the server pg_none",
        ),
        (
            "barman-wal-restore",
            "Ready to retrieve WAL files from the server pg_none",
        ),
    ] {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", SERVER_OS_USER, "--", "env"])
            .arg(format!("PATH={}:/usr/bin:/bin", client.path().display()))
            .arg(client.bin(bin))
            .args([
                "-t",
                "-U",
                SERVER_OS_USER,
                "--port",
                &sshd.port().to_string(),
                "-c",
            ])
            .arg(home.conf())
            .args(["127.0.0.1", "pg_none", "DUMMY"]);
        if bin == "barman-wal-restore" {
            cmd.arg("/tmp/unused-destination");
        }
        let text = ok(&cmd.output().unwrap(), bin);
        assert!(text.contains(expect), "{bin} -t: {text}");
    }
    client.stop_master(sshd.port());
    eprintln!("standby caught up: {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------
// One-host mode (`archive_command = 'barman put-wal SERVER %p'`), bad input,
// full disk, read-only directory, crash safety.
// ---------------------------------------------------------------------------

/// A barman binary the `postgres` user may run, and a barman home it owns.
pub(crate) struct LocalSetup {
    pub(crate) bin: tempfile::TempDir,
    pub(crate) home: BarmanHome,
}

impl LocalSetup {
    pub(crate) fn new() -> Self {
        assert!(is_root().unwrap(), "run the end-to-end tests as root");
        let bin = tempfile::Builder::new()
            .prefix("barman-e2e-bin-")
            .tempdir_in("/tmp")
            .unwrap();
        barman_testkit::chmod(bin.path(), 0o755).unwrap();
        stage_binary(&barman_bin("barman").expect("build barman"), bin.path()).unwrap();
        let home = BarmanHome::new("", Some(SERVER_OS_USER)).unwrap();
        Self { bin, home }
    }

    pub(crate) fn barman(&self) -> PathBuf {
        self.bin.path().join("barman")
    }

    pub(crate) fn archive_command(&self) -> String {
        format!(
            "{} -c {} put-wal pg %p",
            self.barman().display(),
            self.home.conf().display()
        )
    }

    pub(crate) fn configure(&self, pg: &PgCluster, compression: &str) {
        let text = fs::read_to_string(self.home.conf()).unwrap()
            + &format!(
                "[pg]\ndescription = local\nconninfo = {}\nbackup_method = postgres\narchiver = on\ncompression = {compression}\n",
                pg.conninfo()
            );
        fs::write(self.home.conf(), text).unwrap();
    }

    /// `barman -c CONF args` run as `postgres` (the pid is barman's own).
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        use std::os::unix::process::CommandExt as _;
        let (uid, gid) = barman_testkit::user_ids(SERVER_OS_USER).unwrap();
        let mut cmd = Command::new(self.barman());
        cmd.arg("-c").arg(self.home.conf()).args(args);
        cmd.uid(uid).gid(gid).current_dir("/tmp");
        cmd
    }

    pub(crate) fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
    }

    pub(crate) fn run_stdin(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        use std::io::Write as _;
        let mut child = self
            .command(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(input);
        child.wait_with_output().unwrap()
    }

    pub(crate) fn dir(&self, sub: &str) -> PathBuf {
        self.home.server_dir("pg").join(sub)
    }
}

fn archiver_failures(pg: &PgCluster) -> u64 {
    pg.psql("SELECT failed_count FROM pg_stat_archiver")
        .unwrap()
        .parse()
        .unwrap()
}

fn wait_failures(pg: &PgCluster, more_than: u64) {
    let start = Instant::now();
    while archiver_failures(pg) <= more_than {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "archive_command never failed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Unmounts a tmpfs on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A put-wal stream built by Python's tarfile exactly as Barman's
/// `barman-wal-archive` builds it (PAX tar, the WAL then `SHA256SUMS` with
/// `<digest> *<name>`); `corrupt` writes a wrong digest.
fn python_put_wal_stream(wal: &Path, corrupt: bool) -> Vec<u8> {
    let script = r#"
import hashlib, io, os, sys, tarfile
path, corrupt = sys.argv[1], sys.argv[2] == "1"
name = os.path.basename(path)
data = open(path, "rb").read()
digest = hashlib.sha256(data).hexdigest()
if corrupt:
    digest = ("0" if digest[0] != "0" else "1") + digest[1:]
out = io.BytesIO()
with tarfile.open(mode="w|", fileobj=out, format=tarfile.PAX_FORMAT) as tar:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = os.path.getmtime(path)
    tar.addfile(info, io.BytesIO(data))
    sums = ("%s *%s\n" % (digest, name)).encode()
    info = tarfile.TarInfo("SHA256SUMS")
    info.size = len(sums)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(sums))
sys.stdout.buffer.write(out.getvalue())
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(wal)
        .arg(if corrupt { "1" } else { "0" })
        .output()
        .expect("/usr/bin/python3 (apt-get install -y python3)");
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_nothing_is_lost() {
    let setup = LocalSetup::new();
    let pg = PgCluster::builder()
        .archive_command(setup.archive_command())
        .conf("wal_keep_size = '2GB'")
        .start()
        .expect("start PostgreSQL 15");
    setup.configure(&pg, "zstd");
    // archive-wal creates the catalog and identity.json from the server.
    ok(&setup.run(&["archive-wal", "pg"]), "first archive-wal");
    let incoming = setup.dir("incoming");
    fs::create_dir_all(&incoming).unwrap();
    chown_to(&incoming, SERVER_OS_USER).unwrap();

    // --- A full disk: a 4 MiB tmpfs cannot take a 16 MiB segment. ---
    let (uid, gid) = barman_testkit::user_ids(SERVER_OS_USER).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size=4m,uid={uid},gid={gid},mode=0700"),
            "tmpfs",
        ])
        .arg(&incoming)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mount a tmpfs (needs root with CAP_SYS_ADMIN)"
    );
    let mount = Mount(incoming.clone());
    pg.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g")
        .unwrap();
    let before = archiver_failures(&pg);
    let full_seg = pg.switch_wal().unwrap();
    wait_failures(&pg, before + 1);
    assert_eq!(
        pg.psql("SELECT coalesce(last_archived_wal, 'none') FROM pg_stat_archiver")
            .unwrap(),
        "none",
        "a WAL was acknowledged although the disk is full"
    );
    assert!(
        pg.wal_dir()
            .join(format!("archive_status/{full_seg}.ready"))
            .exists()
    );
    assert!(
        names_in(&incoming).is_empty(),
        "leftovers on the full disk: {:?}",
        names_in(&incoming)
    );
    let pg_log = fs::read_to_string(pg.log_path()).unwrap();
    assert!(pg_log.contains("No space left on device"), "{pg_log}");
    drop(mount);

    // --- A read-only incoming directory. ---
    barman_testkit::chmod(&incoming, 0o500).unwrap();
    let before = archiver_failures(&pg);
    pg.psql("SELECT pg_switch_wal()").unwrap();
    wait_failures(&pg, before);
    assert!(
        pg.wal_dir()
            .join(format!("archive_status/{full_seg}.ready"))
            .exists()
    );
    assert!(
        fs::read_to_string(pg.log_path())
            .unwrap()
            .contains("Permission denied")
    );
    barman_testkit::chmod(&incoming, 0o700).unwrap();
    pg.psql("INSERT INTO t SELECT g FROM generate_series(1, 1000) g")
        .unwrap();
    let seg = pg.switch_wal().unwrap();
    wait_archived(&pg, &seg, Duration::from_secs(120));
    assert!(
        incoming.join(&full_seg).is_file(),
        "the retried segment arrived"
    );
    ok(
        &setup.run(&["archive-wal", "pg"]),
        "archive-wal after the retries",
    );
    assert!(setup.dir("wals/0000000100000000").join(&full_seg).is_file());

    let scratch = tempfile::tempdir().unwrap();
    barman_testkit::chmod(scratch.path(), 0o755).unwrap();
    let scratch_file = |name: &str, bytes: &[u8]| {
        let p = scratch.path().join(name);
        fs::write(&p, bytes).unwrap();
        barman_testkit::chmod(&p, 0o644).unwrap();
        p
    };
    let original = fs::read(pg.wal_dir().join(&full_seg)).unwrap();

    // --- Barman's own stream format is accepted; a corrupted checksum is not. ---
    pg.psql("INSERT INTO t SELECT g FROM generate_series(1, 1000) g")
        .unwrap();
    let seg2 = pg.switch_wal().unwrap();
    wait_archived(&pg, &seg2, Duration::from_secs(120));
    ok(&setup.run(&["archive-wal", "pg"]), "archive-wal");
    let copy = scratch_file(&seg2, &fs::read(pg.wal_dir().join(&seg2)).unwrap());
    let out = setup.run_stdin(&["put-wal", "pg"], &python_put_wal_stream(&copy, true));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad checksum"), "{err}");
    assert!(names_in(&incoming).is_empty(), "{:?}", names_in(&incoming));
    let out = setup.run_stdin(&["put-wal", "pg"], &python_put_wal_stream(&copy, false));
    ok(&out, "put-wal of a Barman-format stream");
    assert_eq!(names_in(&incoming), std::slice::from_ref(&seg2));
    let out = setup.run(&["archive-wal", "pg"]);
    ok(&out, "archive-wal of an identical re-send");
    assert!(names_in(&incoming).is_empty());

    // --- A truncated segment. ---
    let truncated = scratch_file(&full_seg, &original[..original.len() / 2]);
    let out = setup.run(&["put-wal", "pg", truncated.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("truncated"),
        "{out:?}"
    );
    assert!(names_in(&incoming).is_empty());

    // --- A segment of another cluster. ---
    let other = PgCluster::start().expect("second cluster");
    // A name this archive does not hold, so the check under test is the cluster's.
    let mut foreign_name = String::new();
    for i in 0..8 {
        other
            .psql(&format!("CREATE TABLE x{i} AS SELECT 1"))
            .unwrap();
        foreign_name = other.switch_wal().unwrap();
        if ![&full_seg, &seg, &seg2].contains(&&foreign_name) {
            break;
        }
    }
    assert!(![&full_seg, &seg, &seg2].contains(&&foreign_name));
    let foreign = scratch_file(
        &foreign_name,
        &fs::read(other.wal_dir().join(&foreign_name)).unwrap(),
    );
    let out = setup.run(&["put-wal", "pg", foreign.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another cluster"),
        "{out:?}"
    );
    assert!(names_in(&incoming).is_empty());

    // --- Files that arrive in incoming/ by other means: archive-wal sorts them out. ---
    let drop_in = |name: &str, bytes: &[u8]| {
        let p = incoming.join(name);
        fs::write(&p, bytes).unwrap();
        chown_to(&p, SERVER_OS_USER).unwrap();
    };
    drop_in(&foreign_name, &fs::read(&foreign).unwrap());
    drop_in("junk.bin", b"not a WAL file");
    drop_in("00000005.history", b"this is not a history file");
    drop_in(
        "00000002.history",
        b"1\t0/5000000\tno recovery target specified\n",
    );
    let mut changed = original.clone();
    changed[1 << 20] ^= 0xFF;
    let dup = scratch_file(&full_seg, &changed);
    ok(
        &setup.run(&["put-wal", "pg", dup.to_str().unwrap()]),
        "put-wal of a changed duplicate",
    );
    let out = setup.run(&["archive-wal", "pg"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejections make archive-wal fail: {out:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Duplicate WAL file with different content"),
        "{err}"
    );
    assert!(err.contains("another cluster"), "{err}");
    assert!(err.contains("not a WAL file name"), "{err}");
    assert!(names_in(&incoming).is_empty(), "{:?}", names_in(&incoming));
    let errors = names_in(&setup.dir("errors"));
    let has = |prefix: &str, suffix: &str| {
        errors
            .iter()
            .any(|e| e.starts_with(prefix) && e.ends_with(suffix))
    };
    assert!(has(&full_seg, ".duplicate"), "{errors:?}");
    assert!(has(&foreign_name, ".unknown"), "{errors:?}");
    assert!(has("junk.bin.", ".unknown"), "{errors:?}");
    assert!(has("00000005.history.", ".unknown"), "{errors:?}");
    let dup_kept = errors.iter().find(|e| e.ends_with(".duplicate")).unwrap();
    assert_eq!(
        fs::read(setup.dir("errors").join(dup_kept)).unwrap(),
        changed,
        "the rejected duplicate is kept as sent"
    );
    // The archived segment is still the original; the history file is archived.
    let out = setup.run(&["get-wal", "pg", &full_seg]);
    assert!(
        out.status.success() && out.stdout == original,
        "archived segment changed"
    );
    let out = setup.run(&["get-wal", "pg", "00000002.history"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1\t0/5000000\tno recovery target specified\n"
    );
    assert!(setup.dir("wals/00000002.history").is_file());

    // --- get-wal's exit codes. ---
    assert_eq!(
        setup.run(&["get-wal", "pg", "nonsense"]).status.code(),
        Some(3)
    );
    assert_eq!(
        setup
            .run(&["get-wal", "pg", "0000000100000000000000FE"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        setup
            .run(&["get-wal", "-o", "/nonexistent/dir", "pg", &full_seg])
            .status
            .code(),
        Some(3)
    );

    // Nothing listed twice; xlog.db matches wals/.
    let home = &setup.home;
    let names: Vec<String> = xlogdb(home, "pg")
        .into_iter()
        .map(|l| l[0].clone())
        .collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len());
    assert_eq!(archived_files(&setup.dir("wals")), names);
    // rebuild-xlogdb gives the same catalogue.
    let before = fs::read_to_string(setup.dir("wals/pg-xlog.db")).unwrap();
    ok(&setup.run(&["rebuild-xlogdb", "pg"]), "rebuild-xlogdb");
    assert_eq!(
        fs::read_to_string(setup.dir("wals/pg-xlog.db")).unwrap(),
        before
    );
}

/// A small xorshift generator: the crash points vary per run; the seed is
/// printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn archive_wal_killed_at_random_points_loses_and_duplicates_nothing() {
    let setup = LocalSetup::new();
    let pg = PgCluster::builder()
        .initdb_arg("--wal-segsize=1")
        .archive_command(setup.archive_command())
        .conf("wal_keep_size = '1GB'")
        .conf("max_wal_size = '1GB'")
        .start()
        .expect("start PostgreSQL 15");
    setup.configure(&pg, "bzip2");
    pg.pgbench_init(5).unwrap();
    pg.pgbench_run(2, 3).unwrap();
    let last = pg.switch_wal().unwrap();
    wait_archived(&pg, &last, Duration::from_secs(300));
    let queued = names_in(&setup.dir("incoming"));
    assert!(
        queued.len() >= 60,
        "only {} segments to archive",
        queued.len()
    );

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let seed = u64::from(nanos) | 1;
    eprintln!("crash test seed: {seed}");
    let mut rng = Rng(seed);
    let mut interrupted = 0;
    for _ in 0..25 {
        let mut child = setup
            .command(&["archive-wal", "pg"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20 + rng.next() % 180));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    eprintln!(
        "{} segments, {interrupted} of 25 archive-wal runs killed mid-work",
        queued.len()
    );
    assert!(
        interrupted >= 10,
        "only {interrupted} runs were interrupted"
    );
    ok(&setup.run(&["archive-wal", "pg"]), "final archive-wal");

    assert!(names_in(&setup.dir("incoming")).is_empty());
    let lines = xlogdb(&setup.home, "pg");
    let names: Vec<String> = lines.iter().map(|l| l[0].clone()).collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "duplicate xlog.db lines: {names:?}"
    );
    assert_eq!(
        archived_files(&setup.dir("wals")),
        names,
        "xlog.db and wals/ differ (temporaries left?)"
    );
    for name in &queued {
        assert!(names.contains(name), "{name} lost");
        let out = setup.run(&["get-wal", "pg", name]);
        assert!(out.status.success(), "{out:?}");
        assert!(
            out.stdout == fs::read(pg.wal_dir().join(name)).unwrap(),
            "{name} differs"
        );
    }
    for l in &lines {
        assert_eq!(l[3], "bzip2", "{l:?}");
    }
}

#[test]
fn switch_wal_closes_and_archives_a_segment_and_test_modes_answer() {
    let setup = LocalSetup::new();
    let pg = PgCluster::builder()
        .archive_command(setup.archive_command())
        .start()
        .expect("start PostgreSQL 15");
    setup.configure(&pg, "gzip");
    pg.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        .unwrap();

    let text = ok(
        &setup.run(&["switch-wal", "--archive", "--archive-timeout", "60", "pg"]),
        "switch-wal --archive",
    );
    let closed = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("The WAL file ")
                .filter(|r| r.contains("has been closed on server 'pg'"))
                .and_then(|r| r.split_whitespace().next())
        })
        .unwrap_or_else(|| panic!("no closed WAL in: {text}"))
        .to_owned();
    assert!(
        text.contains(&format!("The WAL file {closed} has been archived")),
        "{text}"
    );
    assert!(setup.dir("wals/0000000100000000").join(&closed).is_file());
    let line = xlogdb(&setup.home, "pg");
    assert!(
        line.iter().any(|l| l[0] == closed && l[3] == "gzip"),
        "{line:?}"
    );

    // Nothing written since: no switch needed.
    let text = ok(&setup.run(&["switch-wal", "pg"]), "switch-wal");
    assert!(
        text.contains("No switch required for server 'pg'"),
        "{text}"
    );
    // --force checkpoints first, so an idle server switches too; JSON output.
    let out = setup.run(&["-f", "json", "switch-wal", "--force", "pg"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let forced = doc["pg"]["closed_wal"]
        .as_str()
        .expect("closed_wal")
        .to_owned();
    assert!(forced > closed, "{doc}");

    // Test modes used by barman-wal-archive -t / barman-wal-restore -t.
    let text = ok(&setup.run(&["put-wal", "-t", "pg"]), "put-wal -t");
    assert_eq!(text.trim(), "Ready to accept WAL files for the server pg");
    let text = ok(&setup.run(&["get-wal", "-t", "pg", "DUMMY"]), "get-wal -t");
    assert_eq!(
        text.trim(),
        "Ready to retrieve WAL files from the server pg"
    );

    // A server PostgreSQL does not answer for: a clear error, exit 1.
    let conf = fs::read_to_string(setup.home.conf()).unwrap()
        + "\n[down]\ndescription = nothing listens\nconninfo = host=127.0.0.1 port=1 user=postgres password=hunter2 connect_timeout=3\nbackup_method = postgres\n";
    fs::write(setup.home.conf(), conf).unwrap();
    let out = setup.run(&["switch-wal", "down"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains("hunter2"), "password leaked: {err}");
}
