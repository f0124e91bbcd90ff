//! `PgCluster`: start, options, port collisions, stop/restart, drop.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use barman_testkit::{PgCluster, pid_alive};

#[test]
fn psql_reports_results_and_errors() {
    let pg = PgCluster::start().expect("start PostgreSQL 15");
    assert_eq!(pg.psql("SELECT 1 + 1").unwrap(), "2");
    assert_eq!(
        pg.psql("SHOW server_version_num").unwrap()[..2].to_owned(),
        "15"
    );
    assert_eq!(pg.psql("SHOW listen_addresses").unwrap(), "127.0.0.1");
    assert_eq!(pg.psql("SHOW wal_level").unwrap(), "replica");
    assert_eq!(
        pg.psql("SHOW unix_socket_directories").unwrap(),
        pg.socket_dir().display().to_string()
    );
    assert!(
        pg.socket_dir()
            .join(format!(".s.PGSQL.{}", pg.port()))
            .exists()
    );
    assert_eq!(
        pg.conninfo(),
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            pg.port()
        )
    );
    let err = pg
        .psql("SELECT no_such_function()")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no_such_function"), "{err}");

    pg.pgbench_init(1).expect("pgbench -i");
    assert_eq!(
        pg.psql("SELECT count(*) FROM pgbench_accounts").unwrap(),
        "100000"
    );
    let report = pg.pgbench_run(2, 1).expect("pgbench run");
    assert!(
        report.contains("number of transactions actually processed"),
        "{report}"
    );
}

#[test]
fn builder_options_and_taken_port() {
    // Hold a port so the first start attempt collides and the builder retries.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let pg = PgCluster::builder()
        .port(taken_port)
        .data_checksums(true)
        .archive_command("/bin/true")
        .conf("work_mem = '7MB'")
        .start()
        .expect("start PostgreSQL 15 despite the taken port");
    assert_ne!(pg.port(), taken_port);
    assert_eq!(pg.psql("SHOW data_checksums").unwrap(), "on");
    assert_eq!(pg.psql("SHOW archive_mode").unwrap(), "on");
    assert_eq!(pg.psql("SHOW archive_command").unwrap(), "/bin/true");
    assert_eq!(pg.psql("SHOW work_mem").unwrap(), "7MB");
    let log = fs::read_to_string(pg.log_path()).unwrap();
    assert!(
        log.contains("could not bind") || log.contains("Address already in use"),
        "{log}"
    );
    drop(taken);
}

#[test]
fn archive_command_runs_a_staged_binary_as_the_server_user() {
    let pg = PgCluster::builder()
        .archive_command("/bin/false")
        .start()
        .expect("start PostgreSQL 15");
    // A script in a directory only the test user can read, like a build dir under /root.
    let private = tempfile::tempdir().unwrap();
    fs::set_permissions(private.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let script = private.path().join("archive.sh");
    fs::write(
        &script,
        "#!/bin/sh\ncp \"$1\" \"$2.tmp\" && mv \"$2.tmp\" \"$2\"\n",
    )
    .unwrap();
    let staged = pg.stage_binary(&script).unwrap();
    assert!(staged.starts_with(pg.dir()));
    let archive = pg.server_owned_dir("archive").unwrap();
    pg.psql(&format!(
        "ALTER SYSTEM SET archive_command = '{} %p {}/%f'",
        staged.display(),
        archive.display()
    ))
    .unwrap();
    pg.psql("SELECT pg_reload_conf()").unwrap();
    pg.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        .unwrap();
    let segment = pg.switch_wal().unwrap();
    let archived = archive.join(&segment);
    wait_for(&archived, Duration::from_secs(30));
    assert_eq!(
        fs::metadata(&archived).unwrap().len(),
        fs::metadata(pg.wal_dir().join(&segment)).unwrap().len()
    );
}

#[test]
fn stop_restart_and_drop_end_the_server() {
    let mut pg = PgCluster::start().expect("start PostgreSQL 15");
    let pid = pg.pid().expect("running server has a pid");
    assert!(pid_alive(pid));
    pg.stop().expect("pg_ctl stop");
    assert!(!pid_alive(pid));
    assert!(pg.pid().is_none());
    assert!(pg.psql("SELECT 1").is_err());

    pg.restart().expect("start again");
    let pid = pg.pid().expect("restarted server has a pid");
    assert!(pid_alive(pid));
    assert_eq!(pg.psql("SELECT 1").unwrap(), "1");

    let dir = pg.dir().to_path_buf();
    let port = pg.port();
    drop(pg);
    assert!(!pid_alive(pid), "postmaster {pid} survived drop");
    assert!(!dir.exists(), "{} survived drop", dir.display());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

fn wait_for(path: &Path, timeout: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < timeout,
            "{} did not appear within {timeout:?}",
            path.display()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A major `scripts/install-test-deps.sh` does not install fails naming
/// the script (13 and 17 start in `replication::pg13`/`pg17`).
#[test]
fn a_missing_embedded_major_fails_naming_the_install_script() {
    let err = PgCluster::builder().embedded(9).start().unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, barman_testkit::Error::MissingBinary { .. })
            && text.contains("scripts/install-test-deps.sh")
            && text.contains("/opt/pg9"),
        "{text}"
    );
}
