//! `barman receive-wal` follows a timeline switch: it streams from a hot
//! standby (cascading), the standby is promoted, and the new timeline's
//! history file and segments arrive in `streaming/` and then in the archive.

use std::fs;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use barman_testkit::catalog::names_in;
use barman_testkit::{DataDirServer, PgCluster, run};

use crate::archiving::{LocalSetup, ok};
use crate::replication_status::as_server_user;

/// A background `barman receive-wal`, killed by pid on drop.
struct Streaming(Child);

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `streaming/` holds a name for which `want` is true.
fn wait_for(
    dir: &std::path::Path,
    what: &str,
    want: impl Fn(&str) -> bool,
    log: &dyn Fn() -> String,
) {
    let start = Instant::now();
    while !names_in(dir).iter().any(|n| want(n)) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} never reached {}: {:?}\nbarman log:\n{}",
            dir.display(),
            names_in(dir),
            log()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn receive_wal_follows_a_promotion_to_the_new_timeline() {
    let setup = LocalSetup::new();
    let pg = PgCluster::builder().start().expect("start PostgreSQL 15");
    let root = pg.server_owned_dir("standby").unwrap();
    let data = root.join("data");
    run(as_server_user(&pg, "pg_basebackup", &root)
        .args(["-d", &pg.conninfo(), "-D"])
        .arg(&data)
        .args(["-X", "stream", "-c", "fast", "-N"]))
    .expect("pg_basebackup");
    fs::write(data.join("standby.signal"), "").unwrap();
    let standby = DataDirServer::start(
        pg.pg_bin(),
        &data,
        &format!("hot_standby = on\nprimary_conninfo = '{}'", pg.conninfo()),
    )
    .expect("start the standby");
    let standby_conninfo = pg.conninfo().replace(
        &format!("port={}", pg.port()),
        &format!("port={}", standby.port()),
    );
    assert_ne!(
        standby_conninfo,
        pg.conninfo(),
        "conninfo has no port= to rewrite"
    );
    let conf = fs::read_to_string(setup.home.conf()).unwrap()
        + &format!(
            "[pg]\ndescription = timeline test\nconninfo = {standby_conninfo}\nstreaming_conninfo = {standby_conninfo}\narchiver = off\nstreaming_archiver = on\n"
        );
    fs::write(setup.home.conf(), conf).unwrap();
    let streaming = setup.dir("streaming");
    let log = || setup.home.log();

    let child = setup
        .command(&["receive-wal", "pg"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start receive-wal");
    let receiver = Streaming(child);

    // Timeline 1: a completed segment streamed through the standby.
    pg.psql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000)")
        .unwrap();
    pg.switch_wal().unwrap();
    pg.psql("INSERT INTO t VALUES (1001)").unwrap();
    wait_for(
        &streaming,
        "a complete timeline-1 segment",
        |n| n.len() == 24 && n.starts_with("00000001"),
        &log,
    );

    // Promote the standby: timeline 2.
    standby.psql("SELECT pg_promote()").unwrap();
    let start = Instant::now();
    while standby.psql("SELECT pg_is_in_recovery()").unwrap() != "f" {
        assert!(start.elapsed() < Duration::from_secs(30), "promotion");
        thread::sleep(Duration::from_millis(100));
    }
    standby.psql("INSERT INTO t VALUES (2001)").unwrap();
    standby.psql("SELECT pg_switch_wal()").unwrap();
    standby.psql("INSERT INTO t VALUES (2002)").unwrap();
    wait_for(
        &streaming,
        "00000002.history",
        |n| n == "00000002.history",
        &log,
    );
    wait_for(
        &streaming,
        "a complete timeline-2 segment",
        |n| n.len() == 24 && n.starts_with("00000002"),
        &log,
    );
    let history = fs::read_to_string(streaming.join("00000002.history")).unwrap();
    assert_eq!(
        history,
        fs::read_to_string(data.join("pg_wal/00000002.history")).unwrap(),
        "the streamed history file is the server's"
    );
    // Every complete segment is full size; the old timeline's last one
    // stays .partial.
    for name in names_in(&streaming) {
        if name.len() == 24 {
            assert_eq!(
                fs::metadata(streaming.join(&name)).unwrap().len(),
                16 << 20,
                "{name}"
            );
        }
    }
    assert!(
        names_in(&streaming)
            .iter()
            .any(|n| n.starts_with("00000001") && n.ends_with(".partial")),
        "{:?}",
        names_in(&streaming)
    );
    drop(receiver);

    // archive-wal takes the history file and the completed segments.
    ok(&setup.run(&["archive-wal", "pg"]), "archive-wal");
    let xlogdb = fs::read_to_string(setup.dir("wals").join("pg-xlog.db")).unwrap();
    assert!(
        xlogdb.lines().any(|l| l.starts_with("00000002.history\t")),
        "{xlogdb}"
    );
    assert!(
        xlogdb
            .lines()
            .any(|l| l.starts_with("00000002") && !l.starts_with("00000002.history")),
        "{xlogdb}"
    );
}
