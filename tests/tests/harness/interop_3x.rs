//! Interoperability with real Barman 3.x (PyPI, in the test venv) on one
//! catalog, both directions, for the backups of Barman 3.x's postgres
//! method: incremental chains (PostgreSQL 18, whose `pg_basebackup` and
//! `pg_combinebackup` Barman drives). Real Barman lists, shows, recovers
//! and deletes (with its chain) a barman-rs incremental chain; barman-rs
//! lists, recovers and deletes Barman's.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output};

use barman_testkit::{PG18_BIN, PgClusterBuilder, SERVER_OS_USER};

use crate::archiving::ok;
use crate::backup::{Bench, SNAPSHOT_SQL};
use crate::recover::{Dest, backup_id, recover, start, wait_promoted};

/// Real Barman, installed by `scripts/install-test-deps.sh`.
const REAL_BARMAN: &str = "/opt/barman-rs-test-venv/bin/barman";

/// A PostgreSQL 18 bench (WAL summaries on) whose `barman.conf` real Barman
/// reads too: `barman_user = postgres`, `path_prefix` to PostgreSQL 18's
/// client tools.
pub(crate) fn bench_for_real_barman(server_conf: &str) -> Bench {
    let bench = Bench::with_cluster(
        &format!("backup_method = postgres\npath_prefix = {PG18_BIN}\n{server_conf}"),
        1,
        |b: PgClusterBuilder| b.pg18().conf("summarize_wal = on"),
    );
    let conf = bench.setup.home.conf();
    let text = fs::read_to_string(conf).unwrap().replacen(
        "[barman]\n",
        &format!("[barman]\nbarman_user = {SERVER_OS_USER}\n"),
        1,
    );
    fs::write(conf, text).unwrap();
    bench
}

/// `barman -c CONF ARGS` of real Barman, as `postgres`.
pub(crate) fn real_barman(bench: &Bench, args: &[&str]) -> Output {
    assert!(
        Path::new(REAL_BARMAN).is_file(),
        "{REAL_BARMAN} missing: run scripts/install-test-deps.sh"
    );
    let (uid, gid) = barman_testkit::user_ids(SERVER_OS_USER).unwrap();
    Command::new(REAL_BARMAN)
        .arg("-c")
        .arg(bench.setup.home.conf())
        .args(args)
        .uid(uid)
        .gid(gid)
        .current_dir("/tmp")
        .env("PATH", format!("{PG18_BIN}:/usr/bin:/bin"))
        .output()
        .unwrap()
}

/// Real Barman's output of `args`, which must succeed.
pub(crate) fn real_ok(bench: &Bench, args: &[&str]) -> String {
    let out = real_barman(bench, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "real barman {args:?} failed: {text}\nlog:\n{}",
        bench.setup.home.log()
    );
    text
}

/// The id of the newest backup in real Barman's `list-backups` text.
fn newest_id(listing: &str) -> String {
    listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .max()
        .unwrap()
        .to_owned()
}

pub(crate) fn rows(bench: &Bench) -> String {
    bench.pg.psql(SNAPSHOT_SQL).unwrap()
}

#[test]
fn real_barman_and_barman_rs_use_each_others_incremental_chains() {
    let bench = bench_for_real_barman("");
    // Our chain: a full backup and an increment.
    let ours_full = backup_id(&bench.backup(&[]));
    bench.pg.pgbench_run(2, 2).unwrap();
    let ours_inc = backup_id(&bench.backup(&["--incremental", &ours_full]));
    bench.pg.pgbench_run(2, 1).unwrap();
    let rows_now = rows(&bench);
    bench.flush_wal();

    // Real Barman lists and shows it as a chain.
    let listing = real_ok(&bench, &["list-backups", "pg"]);
    for (id, kind) in [(&ours_full, " - F - "), (&ours_inc, " - I - ")] {
        assert!(
            listing
                .lines()
                .any(|l| l.contains(id.as_str()) && l.contains(kind)),
            "{id}{kind}: {listing}"
        );
    }
    let show = real_ok(&bench, &["show-backup", "pg", &ours_inc]);
    assert!(show.contains("Parent Backup"), "{show}");
    assert!(show.contains(&ours_full), "{show}");
    // ... and recovers it with pg_combinebackup, to the same rows.
    let dest = Dest::new("real-barman-recovers-ours");
    let staging = tempfile::Builder::new()
        .prefix("barman-e2e-staging-")
        .tempdir_in("/tmp")
        .unwrap();
    barman_testkit::chown_to(staging.path(), SERVER_OS_USER).unwrap();
    let (d, t) = (dest.data_arg(), dest.ts_arg());
    real_ok(
        &bench,
        &[
            "recover",
            "--local-staging-path",
            &staging.path().display().to_string(),
            "--tablespace",
            &t,
            "pg",
            &ours_inc,
            &d,
        ],
    );
    let server = start(&bench, &dest, "");
    wait_promoted(&server);
    assert_eq!(server.psql(SNAPSHOT_SQL).unwrap(), rows_now);
    drop(server);

    // Real Barman's chain (pg_basebackup --incremental).
    let text = real_ok(&bench, &["backup", "pg"]);
    let theirs_full = newest_id(&real_ok(&bench, &["list-backups", "pg"]));
    assert!(text.contains(&theirs_full), "{text}");
    bench.pg.pgbench_run(2, 2).unwrap();
    real_ok(&bench, &["backup", "--incremental", &theirs_full, "pg"]);
    let theirs_inc = newest_id(&real_ok(&bench, &["list-backups", "pg"]));
    assert_ne!(theirs_inc, theirs_full);
    bench.pg.pgbench_run(2, 1).unwrap();
    let rows_theirs = rows(&bench);
    bench.flush_wal();
    // barman-rs lists it as a chain and recovers it (combined, no manifest
    // of ours to verify against: warned).
    let listing = ok(&bench.setup.run(&["list-backups", "pg"]), "list-backups");
    for (id, kind) in [(&theirs_full, " - F - "), (&theirs_inc, " - I - ")] {
        assert!(
            listing
                .lines()
                .any(|l| l.contains(id.as_str()) && l.contains(kind)),
            "{id}{kind}: {listing}"
        );
    }
    let dest = Dest::new("barman-rs-recovers-theirs");
    let (d, t) = (dest.data_arg(), dest.ts_arg());
    recover(
        &bench,
        &[&theirs_inc, &d, "--tablespace", &t, "--get-wal"],
        &[],
    );
    let server = start(&bench, &dest, "");
    wait_promoted(&server);
    assert_eq!(server.psql(SNAPSHOT_SQL).unwrap(), rows_theirs);
    drop(server);

    // Deletes, both ways, each with its chain.
    real_ok(&bench, &["delete", "pg", &ours_full]);
    ok(&bench.setup.run(&["delete", "pg", &theirs_full]), "delete");
    for id in [&ours_full, &ours_inc, &theirs_full, &theirs_inc] {
        assert!(!bench.backup_dir(id).exists(), "{id} left");
    }
    let listing = real_ok(&bench, &["list-backups", "pg"]);
    assert!(listing.trim().is_empty(), "{listing}");
}

/// Compressed (tar, gzip) backups of the postgres method, both ways: real
/// Barman lists, shows, recovers and deletes ours; barman-rs lists,
/// recovers and deletes Barman's.
#[test]
fn real_barman_and_barman_rs_use_each_others_compressed_backups() {
    let bench = bench_for_real_barman(
        "backup_compression = gzip\nbackup_compression_format = tar\nbackup_compression_location = client\n",
    );
    let ours = backup_id(&bench.backup(&[]));
    assert!(bench.backup_dir(&ours).join("data/base.tar.gz").is_file());
    bench.pg.pgbench_run(2, 1).unwrap();
    let rows_ours = rows(&bench);
    bench.flush_wal();

    let listing = real_ok(&bench, &["list-backups", "pg"]);
    assert!(listing.contains(&ours), "{listing}");
    let show = real_ok(&bench, &["show-backup", "pg", &ours]);
    assert!(show.contains("gzip"), "{show}");
    let dest = Dest::new("real-barman-recovers-our-tar");
    let (d, t) = (dest.data_arg(), dest.ts_arg());
    real_ok(&bench, &["recover", "--tablespace", &t, "pg", &ours, &d]);
    let server = start(&bench, &dest, "");
    wait_promoted(&server);
    assert_eq!(server.psql(SNAPSHOT_SQL).unwrap(), rows_ours);
    drop(server);

    // Real Barman's compressed backup (pg_basebackup --format=tar --compress=client-gzip).
    real_ok(&bench, &["backup", "pg"]);
    let theirs = newest_id(&real_ok(&bench, &["list-backups", "pg"]));
    assert_ne!(theirs, ours);
    assert_eq!(bench.info(&theirs)["compression"], "gzip");
    assert!(bench.backup_dir(&theirs).join("data/base.tar.gz").is_file());
    bench.pg.pgbench_run(2, 1).unwrap();
    let rows_theirs = rows(&bench);
    bench.flush_wal();
    let listing = ok(&bench.setup.run(&["list-backups", "pg"]), "list-backups");
    assert!(listing.contains(&theirs), "{listing}");
    let dest = Dest::new("barman-rs-recovers-their-tar");
    let (d, t) = (dest.data_arg(), dest.ts_arg());
    recover(&bench, &[&theirs, &d, "--tablespace", &t], &[]);
    let server = start(&bench, &dest, "");
    wait_promoted(&server);
    assert_eq!(server.psql(SNAPSHOT_SQL).unwrap(), rows_theirs);
    drop(server);

    real_ok(&bench, &["delete", "pg", &ours]);
    ok(&bench.setup.run(&["delete", "pg", &theirs]), "delete");
    for id in [&ours, &theirs] {
        assert!(!bench.backup_dir(id).exists(), "{id} left");
    }
}
