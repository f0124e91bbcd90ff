//! The replication-protocol client (`barman_core::replication`) against a
//! real PostgreSQL 15: authentication, commands, slots, WAL streaming,
//! timeline switches and BASE_BACKUP.
//!
//! Each scenario runs against PostgreSQL 15 (or the server in
//! `BARMAN_TEST_PG_BIN`) and, in `pg13::` and `pg17::`, against the
//! npm-packaged 13 and 17 that `scripts/install-test-deps.sh` installs in
//! `/opt/pgNN` (13: the pre-15 BASE_BACKUP syntax, one CopyOut per
//! tablespace, no READ_REPLICATION_SLOT; 17: manifest version 2). The
//! scenarios follow the server's major where the protocol differs. A
//! missing `/opt/pgNN` fails those tests naming the install script.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use barman_core::replication::{
    ArchiveFile, BaseBackupOptions, BaseBackupSink, Error, ReplicationConfig,
    ReplicationConnection, StreamMessage, WalStream,
};
use barman_testkit::{PgCluster, PgClusterBuilder};
use barman_wal::{Lsn, SegmentName, TimelineId, WalSegmentSize};

const SEGMENT: u64 = 16 * 1024 * 1024;

/// The server binaries a scenario runs on.
#[derive(Debug, Clone, Copy)]
enum Server {
    /// PostgreSQL 15, or `BARMAN_TEST_PG_BIN`.
    Default,
    /// `/opt/pg<major>` (scripts/install-test-deps.sh).
    Embedded(u32),
}

impl Server {
    fn builder(self) -> PgClusterBuilder {
        match self {
            Self::Default => PgClusterBuilder::default(),
            Self::Embedded(major) => PgClusterBuilder::default().embedded(major),
        }
    }
}

/// One `#[test]` per scenario on `$server`.
macro_rules! scenarios {
    ($server:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                super::$name($server);
            }
        )*
    };
}

macro_rules! all_scenarios {
    ($server:expr) => {
        scenarios!(
            $server;
            authentication_methods_and_commands,
            replication_slots,
            streaming_wal_status_updates_and_synchronous_commit,
            stop_streaming_and_follow_a_timeline_switch,
            base_backup_verifies_with_pg_verifybackup,
        );
    };
}

/// PostgreSQL 15 (or `BARMAN_TEST_PG_BIN`).
mod pg15 {
    all_scenarios!(super::Server::Default);
}

/// PostgreSQL 13 from /opt/pg13.
mod pg13 {
    all_scenarios!(super::Server::Embedded(13));
}

/// PostgreSQL 17 from /opt/pg17.
mod pg17 {
    all_scenarios!(super::Server::Embedded(17));
}

/// A replication connection to `pg` over TCP; `extra` is appended to the conninfo.
fn connect(pg: &PgCluster, extra: &str) -> Result<ReplicationConnection, Error> {
    let conninfo = format!("host=127.0.0.1 port={} user=postgres {extra}", pg.port());
    ReplicationConnection::connect(&ReplicationConfig::from_conninfo(&conninfo)?)
}

/// Puts `lines` before the existing `pg_hba.conf` rules (first match wins) and reloads.
fn prepend_hba(pg: &PgCluster, lines: &str) {
    let path = pg.data_dir().join("pg_hba.conf");
    let old = fs::read_to_string(&path).unwrap();
    fs::write(&path, format!("{lines}\n{old}")).unwrap();
    pg.psql("SELECT pg_reload_conf()").unwrap();
}

/// Waits until `sql` returns `want` (at most 10 s).
fn wait_for(pg: &PgCluster, sql: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = pg.psql(sql).unwrap();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{sql}` returned `{got}`, not `{want}`"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn authentication_methods_and_commands(server: Server) {
    let pg = server
        .builder()
        .conf("password_encryption = 'scram-sha-256'")
        .start()
        .expect("start PostgreSQL");
    pg.psql(
        "CREATE ROLE rep_scram LOGIN REPLICATION PASSWORD 'scram-secret'; \
         SET password_encryption = 'md5'; \
         CREATE ROLE rep_md5 LOGIN REPLICATION PASSWORD 'md5-secret'; \
         CREATE ROLE rep_clear LOGIN REPLICATION PASSWORD 'clear-secret'",
    )
    .unwrap();
    prepend_hba(
        &pg,
        "host replication rep_scram 127.0.0.1/32 scram-sha-256\n\
         host replication rep_md5 127.0.0.1/32 md5\n\
         host replication rep_clear 127.0.0.1/32 password",
    );
    let port = pg.port();
    let systemid = pg
        .psql("SELECT system_identifier FROM pg_control_system()")
        .unwrap();

    // Trust over TCP and over the unix socket; commands on the session.
    let mut conn = connect(&pg, "application_name=e2e_trust").unwrap();
    let version_num: u32 = pg.psql("SHOW server_version_num").unwrap().parse().unwrap();
    assert_eq!(conn.server_version(), version_num);
    if let Server::Embedded(major) = server {
        assert_eq!((pg.major(), version_num / 10_000), (major, major));
    }
    assert_eq!(conn.parameter("integer_datetimes"), Some("on"));
    let id = conn.identify_system().unwrap();
    assert_eq!(id.systemid, systemid);
    assert_eq!(id.timeline, 1);
    assert_eq!(id.dbname, None);
    let flushed: Lsn = pg
        .psql("SELECT pg_current_wal_flush_lsn()")
        .unwrap()
        .parse()
        .unwrap();
    assert!(id.xlogpos <= flushed && id.xlogpos > Lsn::ZERO);
    assert_eq!(
        conn.simple_query("SHOW wal_segment_size").unwrap(),
        vec![vec![Some("16MB".to_owned())]]
    );
    assert_eq!(
        pg.psql("SELECT application_name FROM pg_stat_activity WHERE backend_type = 'walsender'")
            .unwrap(),
        "e2e_trust"
    );
    // Timeline 1 has no history file: a server error that leaves the session usable.
    let err = conn.timeline_history(1).unwrap_err();
    assert_eq!(err.code(), Some("58P01"), "{err}");
    assert!(!err.is_disconnect());
    let err = conn.simple_query("NOT A COMMAND").unwrap_err();
    assert_eq!(err.code(), Some("0A000"), "{err}");
    assert_eq!(conn.identify_system().unwrap().systemid, systemid);

    let socket = format!(
        "host={} port={port} user=postgres",
        pg.socket_dir().display()
    );
    let mut conn =
        ReplicationConnection::connect(&ReplicationConfig::from_conninfo(&socket).unwrap())
            .expect("connect over the unix socket");
    assert_eq!(conn.identify_system().unwrap().systemid, systemid);

    // SCRAM-SHA-256 (key=value and URI), md5, cleartext.
    for conninfo in [
        format!("host=127.0.0.1 port={port} user=rep_scram password=scram-secret"),
        format!("postgresql://rep_scram:scram-secret@127.0.0.1:{port}/?application_name=uri"),
        format!("host=127.0.0.1 port={port} user=rep_md5 password=md5-secret"),
        format!("host=127.0.0.1 port={port} user=rep_clear password=clear-secret"),
    ] {
        let config = ReplicationConfig::from_conninfo(&conninfo).unwrap();
        let mut conn = ReplicationConnection::connect(&config)
            .unwrap_or_else(|e| panic!("{}: {e}", config.user));
        assert_eq!(conn.identify_system().unwrap().systemid, systemid);
    }
    assert_eq!(
        pg.psql(
            "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'rep_scram'"
        )
        .unwrap(),
        "t"
    );

    // Wrong and missing passwords: authentication errors without the password.
    for (user, password) in [("rep_scram", "wrong-scram-pw"), ("rep_md5", "wrong-md5-pw")] {
        let conninfo = format!("host=127.0.0.1 port={port} user={user} password={password}");
        let err =
            ReplicationConnection::connect(&ReplicationConfig::from_conninfo(&conninfo).unwrap())
                .unwrap_err();
        let text = err.to_string();
        assert!(err.is_auth_failure(), "{text}");
        assert_eq!(err.code(), Some("28P01"), "{text}");
        assert!(text.contains("authentication failed"), "{text}");
        assert!(!text.contains(password), "{text}");
    }
    let mut config =
        ReplicationConfig::from_conninfo(&format!("host=127.0.0.1 port={port} user=rep_scram"))
            .unwrap();
    config.password = None;
    let err = ReplicationConnection::connect(&config).unwrap_err();
    assert!(matches!(err, Error::Auth(_)), "{err}");

    // Nothing listens: a connection error naming the target.
    let free = barman_testkit::free_port().unwrap();
    let err = ReplicationConnection::connect(
        &ReplicationConfig::from_conninfo(&format!("host=127.0.0.1 port={free} user=u")).unwrap(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{free}")),
        "{err}"
    );
}

fn replication_slots(server: Server) {
    let pg = server.builder().start().expect("start PostgreSQL");
    let mut conn = connect(&pg, "").unwrap();

    let has_read_slot = conn.server_version() >= 150_000;

    conn.create_physical_slot("e2e_reserved", true).unwrap();
    let restart = pg
        .psql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'e2e_reserved'")
        .unwrap();
    assert!(!restart.is_empty(), "RESERVE_WAL sets restart_lsn");
    if has_read_slot {
        let pos = conn
            .read_replication_slot("e2e_reserved")
            .unwrap()
            .expect("the slot exists");
        assert_eq!(pos.timeline, Some(1));
        assert_eq!(pos.restart_lsn.map(|l| l.to_string()), Some(restart));
    } else {
        let err = conn.read_replication_slot("e2e_reserved").unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
    }
    let err = conn.create_physical_slot("e2e_reserved", true).unwrap_err();
    assert!(
        matches!(err, Error::SlotExists { ref name } if name == "e2e_reserved"),
        "{err}"
    );
    assert_eq!(err.code(), Some("42710"));

    conn.create_physical_slot("e2e_lazy", false).unwrap();
    if has_read_slot {
        let pos = conn.read_replication_slot("e2e_lazy").unwrap().unwrap();
        assert_eq!(pos.restart_lsn, None);
        assert_eq!(conn.read_replication_slot("e2e_none").unwrap(), None);
    }
    conn.drop_slot("e2e_reserved", false).unwrap();
    conn.drop_slot("e2e_lazy", true).unwrap();
    let err = conn.drop_slot("e2e_reserved", false).unwrap_err();
    assert!(
        matches!(err, Error::SlotMissing { ref name } if name == "e2e_reserved"),
        "{err}"
    );
    assert!(matches!(
        conn.create_physical_slot("Bad-Name", false),
        Err(Error::InvalidSlotName { .. })
    ));
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_replication_slots")
            .unwrap(),
        "0"
    );
    // Still usable after the errors.
    conn.identify_system().unwrap();
}

/// Streams until one segment starting at `from` was received, reporting
/// every message as written and flushed; returns the bytes.
fn receive_segment(stream: &mut WalStream, from: Lsn) -> Vec<u8> {
    let mut data = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (data.len() as u64) < SEGMENT {
        assert!(
            Instant::now() < deadline,
            "only {} bytes received",
            data.len()
        );
        match stream.next(Duration::from_millis(500)).unwrap() {
            Some(StreamMessage::XLogData {
                start, data: bytes, ..
            }) => {
                assert_eq!(start, from + data.len() as u64, "WAL arrives in order");
                data.extend_from_slice(&bytes);
                let pos = start + bytes.len() as u64;
                stream.send_status(pos, pos, Lsn::ZERO, false).unwrap();
            }
            Some(StreamMessage::Keepalive { .. }) | None => {}
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
    data.truncate(usize::try_from(SEGMENT).unwrap());
    data
}

fn streaming_wal_status_updates_and_synchronous_commit(server: Server) {
    let pg = server
        .builder()
        .conf("wal_sender_timeout = '2s'")
        .start()
        .expect("start PostgreSQL");
    pg.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g")
        .unwrap();
    let mut conn = connect(&pg, "application_name=e2e_receiver").unwrap();
    let id = conn.identify_system().unwrap();
    conn.create_physical_slot("e2e_stream", true).unwrap();
    let size = WalSegmentSize::DEFAULT;
    let start = id.xlogpos.segment_start(size);
    let mut stream = conn
        .start_physical(Some("e2e_stream"), start, id.timeline)
        .unwrap();

    // A whole segment, byte for byte what pg_wal holds.
    let switched = pg.switch_wal().unwrap();
    let name = SegmentName::from_lsn(TimelineId::new(id.timeline).unwrap(), start, size);
    assert_eq!(switched, name.to_string());
    let began = Instant::now();
    let segment = receive_segment(&mut stream, start);
    let elapsed = began.elapsed();
    let on_disk = fs::read(pg.wal_dir().join(&switched)).unwrap();
    assert!(
        segment == on_disk,
        "streamed {switched} differs from pg_wal"
    );
    eprintln!("streamed one 16 MiB segment in {elapsed:?}");
    let end = start + SEGMENT;
    wait_for(
        &pg,
        &format!(
            "SELECT flush_lsn >= '{end}' FROM pg_stat_replication WHERE application_name = 'e2e_receiver'"
        ),
        "t",
    );
    assert_eq!(
        pg.psql(&format!(
            "SELECT restart_lsn >= '{end}' FROM pg_replication_slots"
        ))
        .unwrap(),
        "t"
    );

    // Idle: keepalives ask for a reply within wal_sender_timeout / 2; answering
    // keeps the connection past the timeout (2 s).
    let idle = Instant::now();
    let mut asked = false;
    while !asked || idle.elapsed() < Duration::from_secs(3) {
        assert!(
            idle.elapsed() < Duration::from_secs(10),
            "no keepalive asked for a reply"
        );
        if let Some(StreamMessage::Keepalive {
            reply_requested: true,
            wal_end,
        }) = stream.next(Duration::from_millis(200)).unwrap()
        {
            assert!(wal_end >= end);
            asked = true;
            stream.send_status(end, end, Lsn::ZERO, false).unwrap();
        }
    }

    // Synchronous standby: a commit waits for our flush report.
    pg.psql("ALTER SYSTEM SET synchronous_standby_names = 'e2e_receiver'")
        .unwrap();
    pg.psql("SELECT pg_reload_conf()").unwrap();
    wait_for(
        &pg,
        "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'e2e_receiver'",
        "sync",
    );
    let port = pg.port();
    let committer = thread::spawn(move || {
        let out = std::process::Command::new("/usr/lib/postgresql/15/bin/psql")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .args([
                "-d",
                "postgres",
                "-X",
                "-q",
                "-c",
                "INSERT INTO t VALUES (-1)",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    // Report writes only: the commit must stay blocked.
    let (written, _) = receive_for(&mut stream, end, Duration::from_secs(1), false);
    assert!(written > end, "the commit's WAL arrived");
    assert!(
        !committer.is_finished(),
        "the commit did not wait for the flush report"
    );
    // Report the flush: the commit returns.
    let (pos, _) = receive_for(&mut stream, written, Duration::from_millis(200), true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !committer.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the commit still waits after the flush report"
        );
        stream.next(Duration::from_millis(100)).unwrap();
        stream.send_status(pos, pos, Lsn::ZERO, false).unwrap();
    }
    committer.join().unwrap();
    pg.psql("ALTER SYSTEM RESET synchronous_standby_names")
        .unwrap();
    pg.psql("SELECT pg_reload_conf()").unwrap();

    // The walsender is terminated: an error, not a hang.
    pg.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_replication \
         WHERE application_name = 'e2e_receiver'",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        assert!(
            Instant::now() < deadline,
            "no error after the walsender was terminated"
        );
        match stream.next(Duration::from_millis(200)) {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(err.is_disconnect(), "{err}");
    assert!(matches!(stream.next(Duration::ZERO), Err(Error::Broken)));
}

/// Receives for `duration` from `from`, reporting what arrived as written
/// and, with `flush`, flushed; returns the position reached.
fn receive_for(stream: &mut WalStream, from: Lsn, duration: Duration, flush: bool) -> (Lsn, usize) {
    let deadline = Instant::now() + duration;
    let mut pos = from;
    let mut messages = 0;
    while Instant::now() < deadline {
        match stream.next(Duration::from_millis(50)).unwrap() {
            Some(StreamMessage::XLogData { start, data, .. }) => {
                pos = start + data.len() as u64;
                messages += 1;
            }
            Some(StreamMessage::Keepalive { .. }) | None => {}
            Some(other) => panic!("unexpected {other:?}"),
        }
        let flushed = if flush { pos } else { from };
        stream.send_status(pos, flushed, Lsn::ZERO, false).unwrap();
    }
    (pos, messages)
}

fn stop_streaming_and_follow_a_timeline_switch(server: Server) {
    let mut pg = server.builder().start().expect("start PostgreSQL");
    let size = WalSegmentSize::DEFAULT;

    // Stop a stream cleanly and reuse the connection.
    let mut conn = connect(&pg, "").unwrap();
    let id = conn.identify_system().unwrap();
    let start = id.xlogpos.segment_start(size);
    let mut stream = conn.start_physical(None, start, 0).unwrap();
    let (pos, _) = receive_for(&mut stream, start, Duration::from_millis(300), true);
    assert!(pos > start);
    let mut conn = stream.into_connection().unwrap();
    assert_eq!(conn.identify_system().unwrap().timeline, 1);
    drop(conn);

    // Promote the cluster after starting it as a standby: timeline 2.
    pg.psql("CREATE TABLE before_switch AS SELECT 1 AS x")
        .unwrap();
    pg.stop().unwrap();
    fs::write(pg.data_dir().join("standby.signal"), "").unwrap();
    pg.restart().unwrap();
    pg.psql("SELECT pg_promote(true, 30)").unwrap();
    wait_for(&pg, "SELECT pg_is_in_recovery()", "f");
    pg.psql("CREATE TABLE after_switch AS SELECT 2 AS x")
        .unwrap();

    let mut conn = connect(&pg, "").unwrap();
    let id = conn.identify_system().unwrap();
    assert_eq!(id.timeline, 2);
    let (name, content) = conn.timeline_history(2).unwrap();
    assert_eq!(name, "00000002.history");
    assert_eq!(content, fs::read(pg.wal_dir().join(&name)).unwrap());
    let text = String::from_utf8(content).unwrap();
    let switch: Lsn = text
        .split('\t')
        .nth(1)
        .expect("history line: tli, switch point, reason")
        .parse()
        .unwrap();

    // Streaming timeline 1 ends at the switch point and names timeline 2.
    let start = switch.segment_start(size);
    let mut stream = conn.start_physical(None, start, 1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pos = start;
    let (next_timeline, next_start) = loop {
        assert!(Instant::now() < deadline, "timeline 1 did not end");
        match stream.next(Duration::from_millis(500)).unwrap() {
            Some(StreamMessage::XLogData { start, data, .. }) => {
                pos = start + data.len() as u64;
            }
            Some(StreamMessage::EndOfTimeline {
                next_timeline,
                next_start,
            }) => break (next_timeline, next_start),
            Some(StreamMessage::Keepalive { .. }) | None => {}
        }
    };
    assert_eq!((next_timeline, next_start), (2, switch));
    assert!(pos >= switch, "streamed up to {pos}, switch at {switch}");
    assert!(stream.next(Duration::ZERO).is_err());
    let conn = stream.into_connection().unwrap();
    let mut stream = conn
        .start_physical(None, next_start.segment_start(size), next_timeline)
        .unwrap();
    let (pos, _) = receive_for(
        &mut stream,
        next_start.segment_start(size),
        Duration::from_millis(300),
        true,
    );
    assert!(pos > next_start);
}

/// A base-backup sink writing plain files: the main archive into
/// `<root>/data`, tablespace `oid` into `<root>/tblspc/<oid>` with
/// `data/pg_tblspc/<oid>` linking to it, as `pg_basebackup -Fp` lays them out.
struct DirSink {
    root: PathBuf,
    current: PathBuf,
    archives: Vec<Option<u32>>,
    files: usize,
    progress_calls: usize,
    last_progress: (u64, Option<u64>),
    fail_after: Option<usize>,
}

impl DirSink {
    fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            current: root.to_owned(),
            archives: Vec::new(),
            files: 0,
            progress_calls: 0,
            last_progress: (0, None),
            fail_after: None,
        }
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }
}

impl BaseBackupSink for DirSink {
    fn begin_archive(
        &mut self,
        tablespace: Option<u32>,
        _location: Option<&str>,
    ) -> io::Result<()> {
        self.archives.push(tablespace);
        self.current = match tablespace {
            None => self.data(),
            Some(oid) => {
                let dir = self.root.join("tblspc").join(oid.to_string());
                fs::create_dir_all(self.data().join("pg_tblspc"))?;
                std::os::unix::fs::symlink(
                    &dir,
                    self.data().join("pg_tblspc").join(oid.to_string()),
                )?;
                dir
            }
        };
        fs::create_dir_all(&self.current)
    }

    fn file(&mut self, file: ArchiveFile<'_>, data: &mut dyn Read) -> io::Result<()> {
        if self.fail_after == Some(self.files) {
            return Err(io::Error::other("sink refuses more files"));
        }
        let dest = self.current.join(file.path);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut out = fs::File::create(&dest)?;
        let copied = io::copy(data, &mut out)?;
        assert_eq!(copied, file.size, "{}", file.path);
        fs::set_permissions(&dest, fs::Permissions::from_mode(file.mode & 0o7777))?;
        self.files += 1;
        Ok(())
    }

    fn directory(&mut self, path: &str, mode: u32) -> io::Result<()> {
        let dest = self.current.join(path);
        if !dest.exists() {
            fs::create_dir_all(&dest)?;
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode & 0o7777))?;
        }
        Ok(())
    }

    fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        std::os::unix::fs::symlink(target, self.current.join(path))
    }

    fn end_archive(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn manifest(&mut self, data: &mut dyn Read) -> io::Result<()> {
        let mut file = fs::File::create(self.data().join("backup_manifest"))?;
        io::copy(data, &mut file).map(drop)
    }

    fn progress(&mut self, done: u64, total: Option<u64>) {
        self.progress_calls += 1;
        self.last_progress = (done, total);
    }
}

fn base_backup_verifies_with_pg_verifybackup(server: Server) {
    let pg = server.builder().start().expect("start PostgreSQL");
    let ts_dir = pg.server_owned_dir("ts1").unwrap();
    pg.psql(&format!(
        "CREATE TABLESPACE ts1 LOCATION '{}'",
        ts_dir.display()
    ))
    .unwrap();
    pg.psql(
        "CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g",
    )
    .unwrap();
    let ts_oid: u32 = pg
        .psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'")
        .unwrap()
        .parse()
        .unwrap();

    let mut conn = connect(&pg, "application_name=e2e_backup").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sink = DirSink::new(dir.path());
    let options = BaseBackupOptions {
        label: "e2e 'quoted' label".into(),
        fast: true,
        max_rate_kbps: Some(1_048_576),
        wait: false,
        ..BaseBackupOptions::default()
    };
    let began = Instant::now();
    let result = conn.base_backup(&options, &mut sink).unwrap();
    eprintln!(
        "BASE_BACKUP of {} bytes in {:?}",
        result.bytes,
        began.elapsed()
    );
    assert_eq!((result.start_timeline, result.end_timeline), (1, 1));
    assert!(result.start_lsn <= result.end_lsn);
    assert_eq!(sink.archives, [Some(ts_oid), None]);
    let main = result.tablespaces.iter().find(|t| t.oid.is_none()).unwrap();
    assert!(main.location.is_none() && main.size_kb.is_some());
    let ts = result
        .tablespaces
        .iter()
        .find(|t| t.oid == Some(ts_oid))
        .unwrap();
    assert_eq!(ts.location.as_deref(), Some(ts_dir.to_str().unwrap()));
    assert!(sink.files > 500 && sink.progress_calls > sink.files);
    let (done, total) = sink.last_progress;
    assert!(done > 0 && total.is_some(), "{:?}", sink.last_progress);

    let label = fs::read_to_string(sink.data().join("backup_label")).unwrap();
    assert!(
        label.contains(&format!("START WAL LOCATION: {}", result.start_lsn)),
        "{label}"
    );
    assert!(label.contains("LABEL: e2e 'quoted' label"), "{label}");
    let map = fs::read_to_string(sink.data().join("tablespace_map")).unwrap();
    assert_eq!(map.trim(), format!("{ts_oid} {}", ts_dir.display()));
    let manifest = fs::read_to_string(sink.data().join("backup_manifest")).unwrap();
    assert!(manifest.starts_with("{ \"PostgreSQL-Backup-Manifest-Version\": "));
    // PostgreSQL 15's pg_verifybackup reads manifests of version 1 (13 to 16).
    if conn.server_version() < 170_000 {
        let out = std::process::Command::new("/usr/lib/postgresql/15/bin/pg_verifybackup")
            .arg("-n")
            .arg(sink.data())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_verifybackup: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The session is usable afterwards.
    conn.identify_system().unwrap();

    // A sink failure stops the backup with that error; the connection is
    // unusable and the server ends the backup.
    let dir = tempfile::tempdir().unwrap();
    let mut sink = DirSink::new(dir.path());
    sink.fail_after = Some(10);
    let err = conn.base_backup(&options, &mut sink).unwrap_err();
    assert!(matches!(err, Error::Sink(_)), "{err}");
    assert!(matches!(conn.identify_system(), Err(Error::Broken)));
    drop(conn);
    wait_for(&pg, "SELECT count(*) FROM pg_stat_progress_basebackup", "0");

    // A server error: MAX_RATE out of range; the session stays usable.
    let mut conn = connect(&pg, "").unwrap();
    let bad = BaseBackupOptions {
        max_rate_kbps: Some(1),
        ..options
    };
    let err = conn
        .base_backup(&bad, &mut DirSink::new(dir.path()))
        .unwrap_err();
    assert!(err.code().is_some(), "{err}");
    conn.identify_system().unwrap();
}
