//! `barman check` hardening (issue 18, items 13 and 15) on a real
//! PostgreSQL 15 whose `archive_command` is `barman put-wal`:
//!
//! * a freshly configured server is not `WAL archive: FAILED` while WAL
//!   files wait in `incoming/`, nor when nothing waits yet: check archives
//!   what waits, else switches a WAL and archives it (timeout
//!   `check_timeout / 3`), as Barman 3.20's `check_archive`; FAILED only
//!   when no WAL arrives in time;
//! * `check --nagios` prints the Nagios status line (and its detail lines)
//!   and nothing else: no `WARNING:` lines, no log lines on stderr.

use std::fs;
use std::time::{Duration, Instant};

use barman_testkit::PgCluster;
use barman_testkit::catalog::{names_in, xlog_names};

use crate::archiving::LocalSetup;

/// The names listed in `server`'s xlog.db (none when it does not exist).
pub(crate) fn xlogdb(setup: &LocalSetup, server: &str) -> Vec<String> {
    let path = setup
        .home
        .server_dir(server)
        .join("wals")
        .join(format!("{server}-xlog.db"));
    xlog_names(&fs::read_to_string(path).unwrap_or_default())
}

/// `barman ARGS` as postgres: (exit code, stdout, stderr, seconds taken).
fn barman(setup: &LocalSetup, args: &[&str]) -> (i32, String, String, f64) {
    let start = Instant::now();
    let out = setup.run(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        start.elapsed().as_secs_f64(),
    )
}

/// A PostgreSQL 15 archiving into `[pg]` through `barman put-wal`, and
/// the `[pg]` section (nothing archived yet).
fn fresh(setup: &LocalSetup, archive_command: Option<&str>) -> PgCluster {
    let command = archive_command.map_or_else(|| setup.archive_command(), str::to_owned);
    let pg = PgCluster::builder()
        .archive_command(command)
        .start()
        .unwrap();
    setup.configure(&pg, "");
    pg
}

/// Writes a little WAL, switches, and waits until put-wal has delivered
/// the segment into the `incoming/` directory of each of `servers`; its name.
pub(crate) fn deliver(setup: &LocalSetup, pg: &PgCluster, servers: &[&str]) -> String {
    pg.psql("CREATE TABLE IF NOT EXISTS t18 (i int); INSERT INTO t18 VALUES (1)")
        .unwrap();
    let name = pg.switch_wal().unwrap();
    let start = Instant::now();
    for server in servers {
        let path = setup.home.server_dir(server).join("incoming").join(&name);
        while !path.is_file() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{name} never reached {server}'s incoming/; server log:\n{}",
                fs::read_to_string(pg.log_path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    name
}

fn archived_count(pg: &PgCluster) -> u64 {
    pg.psql("SELECT archived_count FROM pg_stat_archiver")
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn check_archives_the_wals_waiting_in_incoming_before_judging_the_archive() {
    let setup = LocalSetup::new();
    let pg = fresh(&setup, None);
    let waiting = deliver(&setup, &pg, &["pg"]);
    assert!(xlogdb(&setup, "pg").is_empty());

    let (code, out, err, _) = barman(&setup, &["check", "pg"]);
    assert!(!out.contains("WAL archive"), "{out}\n{err}");
    assert_eq!(code, 0, "{out}\n{err}");
    // What waited was archived by the check, as Barman's check_archive does.
    assert!(xlogdb(&setup, "pg").contains(&waiting), "{out}");
    assert!(
        setup
            .dir("wals")
            .join(&waiting[..16])
            .join(&waiting)
            .is_file(),
        "{waiting} is not in wals/"
    );
    assert!(!names_in(&setup.dir("incoming")).contains(&waiting));
}

#[test]
fn check_switches_a_wal_when_nothing_waits_and_archives_it() {
    let setup = LocalSetup::new();
    let pg = fresh(&setup, None);
    // A fresh cluster: no segment completed, nothing delivered.
    assert_eq!(archived_count(&pg), 0);
    assert!(names_in(&setup.dir("incoming")).is_empty());

    let (code, out, err, _) = barman(&setup, &["check", "pg"]);
    assert!(!out.contains("WAL archive"), "{out}\n{err}");
    assert_eq!(code, 0, "{out}\n{err}");
    // The check switched a WAL, PostgreSQL archived it through put-wal,
    // and the check filed it.
    assert!(archived_count(&pg) >= 1);
    let names = xlogdb(&setup, "pg");
    assert!(!names.is_empty(), "nothing archived:\n{out}");
    assert!(
        names.iter().all(|n| n.len() == 24),
        "unexpected archive content {names:?}"
    );
}

#[test]
fn check_fails_the_wal_archive_only_when_no_wal_arrives_within_a_third_of_the_timeout() {
    let setup = LocalSetup::new();
    // PostgreSQL "archives" (exit 0) but nothing reaches barman.
    let pg = fresh(&setup, Some("/bin/true"));
    let (code, out, err, secs) = barman(&setup, &["check", "--check-timeout", "9", "pg"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("\tWAL archive: FAILED (please make sure WAL shipping is setup)\n"),
        "{out}"
    );
    // The check switched a WAL (PostgreSQL "archived" it) and waited for
    // it for 9 / 3 = 3 seconds before failing; not forever.
    assert!(archived_count(&pg) >= 1);
    assert!(secs >= 3.0, "the check did not wait for a WAL: {secs:.1}s");
    assert!(secs < 60.0, "the check took {secs:.1}s");
    assert!(xlogdb(&setup, "pg").is_empty());
}

#[test]
fn check_nagios_prints_the_status_line_and_nothing_else() {
    let setup = LocalSetup::new();
    let pg = fresh(&setup, None);
    deliver(&setup, &pg, &["pg"]);
    // No log file (logging would go to stderr), an option barman-rs warns
    // about, and a second server whose PostgreSQL is down.
    let conf = fs::read_to_string(setup.home.conf()).unwrap();
    let conf: String = conf
        .lines()
        .filter(|l| !l.starts_with("log_file"))
        .flat_map(|l| [l, "\n"])
        .collect();
    let down = barman_testkit::free_port().unwrap();
    fs::write(
        setup.home.conf(),
        format!(
            "{conf}an_option_nobody_knows = 1\n\n[down]\ndescription = down\n\
             conninfo = host=127.0.0.1 port={down} user=postgres dbname=postgres connect_timeout=3\n\
             backup_method = postgres\narchiver = on\n"
        ),
    )
    .unwrap();
    // The console check shows the warning (it is no Nagios run).
    let (_, _, err, _) = barman(&setup, &["check", "pg"]);
    assert!(err.contains("WARNING: "), "{err}");

    let (code, out, err, _) = barman(&setup, &["check", "--nagios", "pg"]);
    assert_eq!(err, "", "stderr of check --nagios pg");
    assert_eq!(
        out, "BARMAN OK - Ready to serve the Espresso backup for pg|pg=0B pg_wals=0B\n",
        "{err}"
    );
    assert_eq!(code, 0);

    let (code, out, err, _) = barman(&setup, &["check", "--nagios", "all"]);
    assert_eq!(err, "", "stderr of check --nagios all");
    assert_eq!(code, 2, "{out}");
    let mut lines = out.lines();
    let status = lines.next().unwrap();
    assert!(
        status.starts_with("BARMAN CRITICAL - 1 server out of 2 have issues * down FAILED: "),
        "{out}"
    );
    assert!(status.contains("PostgreSQL"), "{out}");
    assert!(
        status.ends_with("|down=0B down_wals=0B pg=0B pg_wals=0B"),
        "{out}"
    );
    let details: Vec<&str> = lines.collect();
    assert!(!details.is_empty(), "{out}");
    for line in &details {
        assert!(
            line.starts_with("down.") && line.contains(": FAILED"),
            "not a Nagios detail line: {line}\n{out}"
        );
    }

    // An unknown server: Barman's global-error status, still nothing on stderr.
    let (code, out, err, _) = barman(&setup, &["check", "--nagios", "nosuch"]);
    assert_eq!(err, "", "stderr of check --nagios nosuch");
    assert_eq!(out, "BARMAN CRITICAL - Global configuration errors\n");
    assert_eq!(code, 2);
}
