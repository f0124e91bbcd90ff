//! `barman receive-wal` end to end against a real PostgreSQL 15 with
//! `archive_mode = off`: WAL reaches the catalog only through our
//! replication client streaming into `streaming/`, then `archive-wal`.
//! The server's own `pg_wal` files and `pg_waldump` are the outside judges.
//!
//! receive-wal runs in the background as `postgres`; a [`Receiver`] guard
//! kills it by pid whatever happens to the test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use barman_testkit::catalog::{is_segment, read_names};
use barman_testkit::{PgCluster, SERVER_OS_USER, chown_to};

use crate::archiving::{LocalSetup, ok};

pub(crate) const SEGMENT: u64 = 16 * 1024 * 1024;
pub(crate) const SLOT: &str = "barman";
pub(crate) const APP: &str = "barman_receive_wal";

/// A cluster with no archiving; `wal_keep_size` keeps the server's copies of
/// the streamed segments so that they can be compared byte for byte.
pub(crate) fn cluster(extra: &[&str]) -> PgCluster {
    let mut b = PgCluster::builder().conf("wal_keep_size = '1GB'");
    for line in extra {
        b = b.conf(*line);
    }
    b.start().expect("start PostgreSQL 15")
}

/// Appends a streaming-only `[name]` section to barman.conf.
pub(crate) fn configure(setup: &LocalSetup, pg: &PgCluster, name: &str, extra: &str) {
    let streaming = if extra.contains("streaming_conninfo") {
        String::new()
    } else {
        format!("streaming_conninfo = {}\n", pg.conninfo())
    };
    configure_with(setup, name, &pg.conninfo(), &format!("{streaming}{extra}"));
}

/// Appends a streaming-only `[name]` section (slot [`SLOT`]) with this SQL
/// `conninfo`; `extra` holds `streaming_conninfo` and any other line.
pub(crate) fn configure_with(setup: &LocalSetup, name: &str, conninfo: &str, extra: &str) {
    let text = fs::read_to_string(setup.home.conf()).unwrap()
        + &format!(
            "[{name}]\ndescription = receive-wal test\nconninfo = {conninfo}\n\
             backup_method = postgres\narchiver = off\n\
             streaming_archiver = on\nslot_name = {SLOT}\n{extra}\n\n"
        );
    fs::write(setup.home.conf(), text).unwrap();
}

pub(crate) fn streaming_dir(setup: &LocalSetup, server: &str) -> PathBuf {
    setup.home.server_dir(server).join("streaming")
}

/// A background `barman receive-wal SERVER`; killed (SIGKILL) on drop.
pub(crate) struct Receiver {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    pub(crate) fn start(setup: &LocalSetup, server: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("stdout");
        let err = dir.path().join("stderr");
        let child = setup
            .command(&["receive-wal", server])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn barman receive-wal");
        Self {
            child,
            out,
            err,
            _dir: dir,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn output(&self) -> String {
        format!(
            "stdout: {}\nstderr: {}",
            fs::read_to_string(&self.out).unwrap_or_default(),
            fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    pub(crate) fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} {}", self.pid());
    }

    /// Waits for the process to exit on its own.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `barman args` as postgres with a time limit (killed past it).
pub(crate) fn run_timed(
    setup: &LocalSetup,
    args: &[&str],
    timeout: Duration,
) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = setup
        .command(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "barman {args:?} did not finish in {timeout:?}: {}",
                fs::read_to_string(&out).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    (status, fs::read_to_string(&out).unwrap_or_default())
}

/// Waits until `sql` returns `want`.
pub(crate) fn wait_for(
    pg: &PgCluster,
    sql: &str,
    want: &str,
    timeout: Duration,
    why: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = pg.psql(sql).unwrap();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{sql}` returned `{got}`, not `{want}`, after {timeout:?}\n{}",
            why()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn slot_active(pg: &PgCluster) -> String {
    pg.psql(&slot_active_sql()).unwrap()
}

pub(crate) fn wait_streaming(pg: &PgCluster, rx: &Receiver) {
    wait_for(
        pg,
        &format!(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = '{APP}' AND state = 'streaming'"
        ),
        "1",
        Duration::from_secs(20),
        || rx.output(),
    );
}

/// Waits until receive-wal is the synchronous standby.
pub(crate) fn wait_sync(pg: &PgCluster, rx: &Receiver) {
    wait_for(
        pg,
        &format!("SELECT sync_state FROM pg_stat_replication WHERE application_name = '{APP}'"),
        "sync",
        Duration::from_secs(20),
        || rx.output(),
    );
}

/// (timeline, log, seg) of a segment name.
fn parse_seg(name: &str) -> (u32, u32, u32) {
    assert_eq!(name.len(), 24, "{name}");
    let p = |r: std::ops::Range<usize>| u32::from_str_radix(&name[r], 16).unwrap();
    (p(0..8), p(8..16), p(16..24))
}

pub(crate) fn next_seg(name: &str) -> String {
    let (t, l, s) = parse_seg(name);
    // 16 MiB segments: 0x100 per log file.
    let (l, s) = if s == 0xff { (l + 1, 0) } else { (l, s + 1) };
    format!("{t:08X}{l:08X}{s:08X}")
}

/// Segment names recorded in the server's xlog.db, in order.
pub(crate) fn xlogdb_segments(setup: &LocalSetup, server: &str) -> Vec<String> {
    let wals = setup.home.server_dir(server).join("wals");
    let mut names = Vec::new();
    for e in fs::read_dir(&wals).unwrap() {
        let e = e.unwrap();
        let f = e.file_name().to_string_lossy().into_owned();
        if f.ends_with("xlog.db") {
            for line in fs::read_to_string(e.path()).unwrap().lines() {
                let name = line.split('\t').next().unwrap().to_owned();
                if is_segment(&name) {
                    names.push(name);
                }
            }
        }
    }
    names.sort();
    names
}

fn archived_path(setup: &LocalSetup, server: &str, name: &str) -> PathBuf {
    setup
        .home
        .server_dir(server)
        .join("wals")
        .join(&name[..16])
        .join(name)
}

/// Every entry name directly in `dir` (which must exist), sorted.
pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    read_names(dir).unwrap()
}

/// Waits until `streaming/` holds `segment` as a complete file.
pub(crate) fn wait_complete(dir: &Path, segment: &str, rx: &Receiver, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !dir.join(segment).exists() {
        assert!(
            Instant::now() < deadline,
            "{segment} not in streaming/ after {timeout:?}: {:?}\n{}",
            names_in(dir),
            rx.output()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Switches WAL, writes a little into the next segment and waits until
/// `streaming/` holds the switched-out segment complete and the next one as
/// `.partial` (archive-wal holds back the newest complete segment when no
/// `.partial` exists, as Barman does). Returns the switched-out segment.
pub(crate) fn switch_and_stream(pg: &PgCluster, dir: &Path, rx: &Receiver) -> String {
    let last = pg.switch_wal().unwrap();
    pg.psql(
        "CREATE TABLE IF NOT EXISTS after_switch (id int); INSERT INTO after_switch VALUES (1)",
    )
    .unwrap();
    wait_complete(dir, &last, rx, Duration::from_secs(30));
    wait_complete(
        dir,
        &format!("{}.partial", next_seg(&last)),
        rx,
        Duration::from_secs(30),
    );
    last
}

/// The archived segments are a gap-free run ending at `last`; returns them.
pub(crate) fn assert_contiguous(names: &[String], last: &str) {
    assert!(!names.is_empty(), "nothing archived");
    for w in names.windows(2) {
        assert_eq!(
            next_seg(&w[0]),
            w[1],
            "gap or duplicate in the archived WAL: {names:?}"
        );
    }
    assert_eq!(names.last().unwrap(), last, "archived: {names:?}");
}

/// Every archived segment equals the server's copy when the server still
/// has it; returns how many were compared.
fn compare_with_server(
    setup: &LocalSetup,
    server: &str,
    pg: &PgCluster,
    names: &[String],
) -> usize {
    let mut compared = 0;
    for name in names {
        let archived = fs::read(archived_path(setup, server, name)).unwrap();
        assert_eq!(archived.len() as u64, SEGMENT, "{name} size");
        if let Ok(original) = fs::read(pg.wal_dir().join(name)) {
            assert!(
                archived == original,
                "archived {name} differs from the server's pg_wal copy"
            );
            compared += 1;
        }
    }
    compared
}

/// `pg_waldump --stats` over the archived range (files copied into one dir).
fn waldump(setup: &LocalSetup, server: &str, pg: &PgCluster, names: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for n in names {
        fs::copy(archived_path(setup, server, n), dir.path().join(n)).unwrap();
    }
    let dump = Command::new(pg.pg_bin().join("pg_waldump"))
        .arg("-p")
        .arg(dir.path())
        .arg("--stats")
        .arg(names.first().unwrap())
        .arg(names.last().unwrap())
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "pg_waldump {}..{}: {}",
        names.first().unwrap(),
        names.last().unwrap(),
        String::from_utf8_lossy(&dump.stderr)
    );
    String::from_utf8_lossy(&dump.stdout).into_owned()
}

pub(crate) fn current_segment(pg: &PgCluster) -> String {
    pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        .unwrap()
}

#[test]
fn receive_wal_streaming_only_archives_every_segment() {
    let t0 = Instant::now();
    let setup = LocalSetup::new();
    let pg = cluster(&[]);
    configure(&setup, &pg, "pg", "create_slot = auto");
    let first_expected = current_segment(&pg);
    assert_eq!(slot_active(&pg), "missing");

    let mut rx = Receiver::start(&setup, "pg");
    wait_streaming(&pg, &rx);
    // create_slot = auto made the slot, and it is in use by us.
    assert_eq!(slot_active(&pg), "true", "{}", rx.output());
    assert_eq!(
        pg.psql(&format!(
            "SELECT s.slot_name FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE r.application_name = '{APP}'"
        ))
        .unwrap(),
        SLOT
    );

    pg.pgbench_init(1).unwrap();
    pg.pgbench_run(2, 3).unwrap();
    pg.switch_wal().unwrap();
    pg.psql("CREATE TABLE filler AS SELECT generate_series(1, 1000) AS id")
        .unwrap();
    let streaming = streaming_dir(&setup, "pg");
    let last = switch_and_stream(&pg, &streaming, &rx);
    assert!(rx.running(), "receive-wal exited: {}", rx.output());

    // Complete segments in streaming/ are whole.
    for n in names_in(&streaming) {
        let len = fs::metadata(streaming.join(&n)).unwrap().len();
        assert_eq!(len, SEGMENT, "{n} in streaming/ is {len} bytes");
    }

    ok(&setup.run(&["archive-wal", "pg"]), "archive-wal");
    let names = xlogdb_segments(&setup, "pg");
    assert_contiguous(&names, &last);
    assert!(
        names[0] <= first_expected,
        "streaming started at {} after the position at start {first_expected}",
        names[0]
    );
    assert!(names.len() >= 3, "{names:?}");
    let compared = compare_with_server(&setup, "pg", &pg, &names);
    assert!(
        compared >= 1,
        "no archived segment left in pg_wal to compare"
    );
    let stats = waldump(&setup, "pg", &pg, &names);
    assert!(stats.contains("Heap"), "{stats}");

    // archive-wal held back exactly the segment being written.
    let left = names_in(&streaming);
    assert_eq!(
        left,
        vec![format!("{}.partial", next_seg(&last))],
        "streaming/ after archive-wal"
    );
    assert_eq!(
        fs::metadata(streaming.join(&left[0])).unwrap().len(),
        SEGMENT
    );

    // --stop ends the running receiver cleanly.
    let (st, text) = run_timed(
        &setup,
        &["receive-wal", "--stop", "pg"],
        Duration::from_secs(10),
    );
    assert!(st.success(), "--stop: {text}");
    assert!(text.contains("Stopped"), "--stop: {text}");
    let st = rx.wait(Duration::from_secs(10));
    assert!(st.is_some(), "receive-wal still runs after --stop");
    assert!(st.unwrap().success(), "{:?}: {}", st, rx.output());
    wait_for(
        &pg,
        &slot_active_sql(),
        "false",
        Duration::from_secs(10),
        || rx.output(),
    );

    // While receive-wal is down the slot keeps its position (the server
    // retains the WAL); a restart resumes from the .partial, with no gap.
    let restart_sql =
        format!("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '{SLOT}'");
    let held = pg.psql(&restart_sql).unwrap();
    pg.psql("CREATE TABLE while_down AS SELECT generate_series(1, 100000) AS id")
        .unwrap();
    pg.switch_wal().unwrap();
    pg.psql("CHECKPOINT").unwrap();
    assert_eq!(
        pg.psql(&restart_sql).unwrap(),
        held,
        "slot moved while receive-wal was down"
    );
    let resume = next_seg(&last);
    let rx = Receiver::start(&setup, "pg");
    wait_streaming(&pg, &rx);
    assert!(
        rx.output().contains(&format!("({resume})")),
        "restart not from the .partial {resume}: {}",
        rx.output()
    );
    let last = switch_and_stream(&pg, &streaming, &rx);
    ok(
        &setup.run(&["archive-wal", "pg"]),
        "archive-wal after restart",
    );
    let names = xlogdb_segments(&setup, "pg");
    assert_contiguous(&names, &last);
    assert!(names.contains(&resume));
    compare_with_server(&setup, "pg", &pg, &names);
    waldump(&setup, "pg", &pg, &names);
    assert_ne!(pg.psql(&restart_sql).unwrap(), held, "slot did not advance");
    eprintln!("streaming-only: {:?}", t0.elapsed());
}

/// Spawns `psql -c sql` (as root over TCP, trust) in the background.
fn psql_background(pg: &PgCluster, sql: &str) -> Child {
    Command::new(pg.pg_bin().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args([
            "-p",
            &pg.port().to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-c", sql])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn timed_psql(pg: &PgCluster, sql: &str) -> Duration {
    let t = Instant::now();
    pg.psql(sql).unwrap();
    t.elapsed()
}

#[test]
fn receive_wal_as_synchronous_standby_blocks_and_resumes_commits() {
    let t0 = Instant::now();
    let setup = LocalSetup::new();
    let pg = cluster(&[]);
    configure(&setup, &pg, "pg", "create_slot = auto");
    let mut rx = Receiver::start(&setup, "pg");
    wait_streaming(&pg, &rx);
    pg.psql("CREATE TABLE t (id int)").unwrap();
    pg.pgbench_init(1).unwrap();
    pg.psql(&format!(
        "ALTER SYSTEM SET synchronous_standby_names = '{APP}'"
    ))
    .unwrap();
    pg.psql("ALTER SYSTEM SET synchronous_commit = on").unwrap();
    pg.psql("SELECT pg_reload_conf()").unwrap();
    wait_sync(&pg, &rx);
    let took = timed_psql(&pg, "INSERT INTO t VALUES (1)");
    assert!(
        took < Duration::from_secs(3),
        "synchronous commit took {took:?}"
    );
    // Several small commits in a row: each waits for our flush report.
    let t = Instant::now();
    for i in 2..=11 {
        pg.psql(&format!("INSERT INTO t VALUES ({i})")).unwrap();
    }
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "10 sync commits took {:?}",
        t.elapsed()
    );

    // SIGTERM: receive-wal stops; commits block.
    rx.signal("TERM");
    let st = rx.wait(Duration::from_secs(10));
    assert!(st.is_some(), "receive-wal ignored SIGTERM: {}", rx.output());
    assert!(
        st.unwrap().success(),
        "{st:?} after SIGTERM: {}",
        rx.output()
    );
    wait_for(
        &pg,
        &format!("SELECT count(*) FROM pg_stat_replication WHERE application_name = '{APP}'"),
        "0",
        Duration::from_secs(10),
        || rx.output(),
    );
    let mut blocked = ChildGuard(psql_background(&pg, "INSERT INTO t VALUES (100)"));
    thread::sleep(Duration::from_secs(2));
    assert!(
        blocked.0.try_wait().unwrap().is_none(),
        "a synchronous commit completed with no synchronous standby"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
            .unwrap(),
        "1"
    );

    // Restarted: the blocked commit completes.
    let mut rx = Receiver::start(&setup, "pg");
    let deadline = Instant::now() + Duration::from_secs(15);
    let st = loop {
        if let Some(st) = blocked.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the blocked commit did not complete after restarting receive-wal: {}",
            rx.output()
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert!(st.success(), "blocked INSERT failed");
    assert_eq!(
        pg.psql("SELECT count(*) FROM t WHERE id = 100").unwrap(),
        "1"
    );

    // kill -9 in the middle of a segment, under a stream of commits.
    wait_streaming(&pg, &rx);
    let load = ChildGuard(psql_background(
        &pg,
        "DO $$ BEGIN FOR i IN 1000..1400 LOOP INSERT INTO t VALUES (i); COMMIT; END LOOP; END $$",
    ));
    thread::sleep(Duration::from_millis(300));
    rx.signal("KILL");
    assert!(rx.wait(Duration::from_secs(5)).is_some());
    drop(rx);
    wait_for(
        &pg,
        &slot_active_sql(),
        "false",
        Duration::from_secs(10),
        String::new,
    );
    let rx = Receiver::start(&setup, "pg");
    wait_streaming(&pg, &rx);
    let mut load = load;
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        if let Some(st) = load.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "load did not finish: {}",
            rx.output()
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert!(st.success(), "load failed");
    // pgbench proceeds with every commit waiting for our flush reports.
    let report = pg.pgbench_run(2, 2).unwrap();
    let tx: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split('/').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("pgbench report: {report}"));
    assert!(
        tx >= 20,
        "only {tx} synchronous pgbench transactions in 2 s"
    );
    eprintln!("synchronous pgbench: {tx} transactions in 2 s");
    for i in 2000..2020 {
        pg.psql(&format!("INSERT INTO t VALUES ({i})")).unwrap();
    }
    assert_eq!(
        pg.psql("SELECT count(*) FROM t").unwrap(),
        (11 + 1 + 401 + 20).to_string()
    );
    pg.pgbench_init(1).unwrap();
    let streaming = streaming_dir(&setup, "pg");
    let mut rx = rx;
    let last = switch_and_stream(&pg, &streaming, &rx);
    ok(&setup.run(&["archive-wal", "pg"]), "archive-wal");
    let names = xlogdb_segments(&setup, "pg");
    assert_contiguous(&names, &last);
    let compared = compare_with_server(&setup, "pg", &pg, &names);
    assert!(compared >= 1);
    waldump(&setup, "pg", &pg, &names);
    let left = names_in(&streaming);
    assert_eq!(
        left,
        vec![format!("{}.partial", next_seg(&last))],
        "streaming/ left"
    );
    assert!(rx.running(), "{}", rx.output());
    eprintln!("synchronous: {:?}", t0.elapsed());
}

pub(crate) fn slot_active_sql() -> String {
    format!(
        "SELECT coalesce((SELECT active::text FROM pg_replication_slots WHERE slot_name = '{SLOT}'), 'missing')"
    )
}

#[test]
fn receive_wal_slot_commands_reset_and_stop() {
    let t0 = Instant::now();
    let setup = LocalSetup::new();
    let pg = cluster(&[]);
    configure(&setup, &pg, "pg", "create_slot = manual");
    let limit = Duration::from_secs(20);

    // Missing slot with create_slot = manual: refused, naming the slot.
    let (st, text) = run_timed(&setup, &["receive-wal", "pg"], limit);
    assert!(
        !st.success(),
        "receive-wal without its slot succeeded: {text}"
    );
    assert!(text.contains(&format!("'{SLOT}'")), "{text}");
    assert_eq!(slot_active(&pg), "missing");

    let (st, text) = run_timed(&setup, &["receive-wal", "--create-slot", "pg"], limit);
    assert!(st.success(), "--create-slot: {text}");
    assert_eq!(slot_active(&pg), "false");
    assert_eq!(
        pg.psql(&format!(
            "SELECT slot_type || ' ' || (restart_lsn IS NOT NULL)::text FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
        ))
        .unwrap(),
        "physical true"
    );
    let (st, text) = run_timed(&setup, &["receive-wal", "--create-slot", "pg"], limit);
    assert!(!st.success(), "second --create-slot succeeded: {text}");
    let (st, text) = run_timed(
        &setup,
        &["receive-wal", "--create-slot", "--if-not-exists", "pg"],
        limit,
    );
    assert!(st.success(), "--create-slot --if-not-exists: {text}");
    let (st, text) = run_timed(&setup, &["receive-wal", "--drop-slot", "pg"], limit);
    assert!(st.success(), "--drop-slot: {text}");
    assert_eq!(slot_active(&pg), "missing");
    let (st, text) = run_timed(&setup, &["receive-wal", "--drop-slot", "pg"], limit);
    assert!(
        !st.success(),
        "--drop-slot of a missing slot succeeded: {text}"
    );

    // --reset: older .partial files go, one empty marker at the slot's position.
    let (st, text) = run_timed(&setup, &["receive-wal", "--create-slot", "pg"], limit);
    assert!(st.success(), "--create-slot: {text}");
    pg.switch_wal().unwrap();
    pg.psql("CREATE TABLE x AS SELECT 1").unwrap();
    let streaming = streaming_dir(&setup, "pg");
    fs::create_dir_all(&streaming).unwrap();
    chown_to(&setup.home.server_dir("pg"), SERVER_OS_USER).unwrap();
    chown_to(&streaming, SERVER_OS_USER).unwrap();
    let old = streaming.join("000000010000000000000001.partial");
    fs::write(&old, vec![0u8; 4096]).unwrap();
    chown_to(&old, SERVER_OS_USER).unwrap();
    let (st, text) = run_timed(&setup, &["receive-wal", "--reset", "pg"], limit);
    assert!(st.success(), "--reset: {text}");
    let want = pg
        .psql(&format!(
            "SELECT pg_walfile_name(restart_lsn) FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
        ))
        .unwrap();
    let left = names_in(&streaming);
    assert_eq!(
        left,
        vec![format!("{want}.partial")],
        "after --reset: {text}"
    );
    assert_eq!(fs::metadata(streaming.join(&left[0])).unwrap().len(), 0);

    // --stop with nothing running.
    let (st, text) = run_timed(&setup, &["receive-wal", "--stop", "pg"], limit);
    assert!(st.success(), "--stop: {text}");
    assert!(text.contains("No receive-wal process running"), "{text}");
    // --stop and --reset together are refused.
    let (st, text) = run_timed(&setup, &["receive-wal", "--stop", "--reset", "pg"], limit);
    assert!(!st.success(), "--stop --reset: {text}");
    eprintln!("slots: {:?}", t0.elapsed());
}

#[test]
fn receive_wal_bad_password_and_dropped_connection() {
    let t0 = Instant::now();
    let setup = LocalSetup::new();
    let pg = cluster(&["password_encryption = 'scram-sha-256'"]);
    pg.psql("CREATE ROLE rep LOGIN REPLICATION PASSWORD 'Right-Pa55'")
        .unwrap();
    let hba = pg.data_dir().join("pg_hba.conf");
    let old = fs::read_to_string(&hba).unwrap();
    fs::write(
        &hba,
        format!("host replication rep 127.0.0.1/32 scram-sha-256\n{old}"),
    )
    .unwrap();
    pg.psql("SELECT pg_reload_conf()").unwrap();
    let rep = |pw: &str| format!("host=127.0.0.1 port={} user=rep password={pw}", pg.port());
    for (name, pw) in [("bad", "Wr0ng-Secret-xyz"), ("pg", "Right-Pa55")] {
        configure(
            &setup,
            &pg,
            name,
            &format!("create_slot = auto\nstreaming_conninfo = {}", rep(pw)),
        );
    }

    // Wrong password: clear error, no password echoed.
    let (st, text) = run_timed(&setup, &["receive-wal", "bad"], Duration::from_secs(20));
    assert!(
        !st.success(),
        "receive-wal with a wrong password succeeded: {text}"
    );
    assert!(
        text.to_lowercase().contains("authentication"),
        "no mention of authentication: {text}"
    );
    assert!(
        !text.contains("Wr0ng-Secret-xyz"),
        "password printed: {text}"
    );
    assert!(
        !setup.home.log().contains("Wr0ng-Secret-xyz"),
        "password in barman.log"
    );
    assert_eq!(slot_active(&pg), "missing");

    // SCRAM with the right password streams; then the walsender is killed.
    let mut rx = Receiver::start(&setup, "pg");
    wait_streaming(&pg, &rx);
    assert_eq!(
        pg.psql(&format!(
            "SELECT usename FROM pg_stat_replication WHERE application_name = '{APP}'"
        ))
        .unwrap(),
        "rep"
    );
    pg.pgbench_init(1).unwrap();
    pg.psql("CREATE TABLE tail AS SELECT generate_series(1, 20000) AS id")
        .unwrap();
    // Let the stream catch up with the server, then cut it.
    let lsn = pg.psql("SELECT pg_current_wal_lsn()").unwrap();
    wait_for(
        &pg,
        &format!(
            "SELECT flush_lsn >= '{lsn}' FROM pg_stat_replication WHERE application_name = '{APP}'"
        ),
        "t",
        Duration::from_secs(20),
        || rx.output(),
    );
    let current = current_segment(&pg);
    assert_eq!(
        pg.psql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication WHERE application_name = '{APP}'"
        ))
        .unwrap(),
        "1"
    );
    let st = rx.wait(Duration::from_secs(15));
    assert!(
        st.is_some(),
        "receive-wal survived the dropped connection: {}",
        rx.output()
    );
    assert!(
        !st.unwrap().success(),
        "receive-wal exited 0 after the connection dropped: {}",
        rx.output()
    );
    let streaming = streaming_dir(&setup, "pg");
    let left = names_in(&streaming);
    assert!(
        left.contains(&format!("{current}.partial")),
        "the segment being written ({current}) is not .partial: {left:?}"
    );
    assert!(
        !left.contains(&current),
        "the interrupted segment {current} was renamed complete: {left:?}"
    );
    let mut complete = 0;
    for n in &left {
        let data = fs::read(streaming.join(n)).unwrap();
        assert_eq!(data.len() as u64, SEGMENT, "{n} is {} bytes", data.len());
        if is_segment(n) {
            assert!(*n < current, "{n} complete beyond {current}");
            let original = fs::read(pg.wal_dir().join(n)).unwrap();
            assert!(data == original, "{n} differs from pg_wal");
            complete += 1;
        }
    }
    assert!(complete >= 1, "no complete segment streamed: {left:?}");

    // A restart resumes the interrupted segment and completes it exactly.
    let rx = Receiver::start(&setup, "pg");
    wait_streaming(&pg, &rx);
    let last = switch_and_stream(&pg, &streaming, &rx);
    assert!(last >= current);
    ok(&setup.run(&["archive-wal", "pg"]), "archive-wal");
    let names = xlogdb_segments(&setup, "pg");
    assert_contiguous(&names, &last);
    assert!(names.contains(&current), "{names:?}");
    let original = fs::read(pg.wal_dir().join(&current)).unwrap();
    assert!(
        fs::read(archived_path(&setup, "pg", &current)).unwrap() == original,
        "the resumed segment {current} differs from pg_wal"
    );
    compare_with_server(&setup, "pg", &pg, &names);
    waldump(&setup, "pg", &pg, &names);
    eprintln!("bad input: {:?}", t0.elapsed());
}
