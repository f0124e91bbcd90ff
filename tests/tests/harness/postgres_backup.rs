//! `backup_method = postgres`: BASE_BACKUP over our replication client into
//! plain files, then a point-in-time recovery of it with exact rows.

use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::backup::Bench;
use crate::recover::{Dest, backup_id, ids, recover, start, wait_paused};

/// A postgres-method backup under the same lifecycle as rsync backups:
/// DONE, PostgreSQL's own backup_manifest kept and verified by
/// `pg_verifybackup`, every file in barman's manifest; recovered to a time
/// between two marker rows it has exactly the rows before the target.
#[test]
fn postgres_method_backup_recovers_to_a_point_in_time() {
    let bench = Bench::new("backup_method = postgres\n", 1);
    let pg = &bench.pg;
    pg.psql("CREATE TABLE marks (id int PRIMARY KEY)").unwrap();
    pg.psql("INSERT INTO marks VALUES (1)").unwrap();
    let doc = bench.backup(&["--wait", "--wait-timeout", "60"]);
    let id = backup_id(&doc);
    let info = bench.info(&id);
    assert_eq!(info["status"], "DONE", "{info:?}");
    assert_eq!(info["mode"], "postgres", "{info:?}");
    let dir = bench.backup_dir(&id);
    for file in [
        "data/backup_label",
        "data/backup_manifest",
        "data/PG_VERSION",
        "manifest",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing from the backup");
    }
    // The tablespace arrived as its own tree (ts1: table in_ts).
    let oids: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(oids.len(), 1, "tablespace trees: {oids:?}");
    assert!(
        fs::read_to_string(dir.join("data/tablespace_map"))
            .unwrap()
            .starts_with(&oids[0])
    );
    // PostgreSQL's manifest checks the copy (WAL parsing skipped: the WAL
    // is in the archive, not in the backup).
    let out = Command::new(bench.pg.pg_bin().join("pg_verifybackup"))
        .args(["-n", "-m"])
        .arg(dir.join("data/backup_manifest"))
        .arg(dir.join("data"))
        .output()
        .unwrap();
    // pg_verifybackup reads tablespaces through pg_tblspc links, which a
    // barman backup keeps as trees: only the data directory's files are
    // checked, so missing tablespace files are expected in its report.
    let report = String::from_utf8_lossy(&out.stderr).to_string();
    for line in report.lines() {
        assert!(
            line.contains("pg_tblspc/")
                || line.contains("is present on disk but not in the manifest"),
            "pg_verifybackup: {report}"
        );
    }

    std::thread::sleep(Duration::from_millis(300));
    pg.psql("INSERT INTO marks VALUES (2)").unwrap();
    let target = pg
        .psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    pg.psql("INSERT INTO marks VALUES (3)").unwrap();
    bench.flush_wal();

    let dest = Dest::new("postgres-method");
    let (d, ts) = (dest.data_arg(), dest.ts_arg());
    let out = recover(
        &bench,
        &[&id, &d, "--tablespace", &ts, "--target-time", &target],
        &[],
    );
    assert_eq!(out["backup_id"], id.as_str());
    let server = start(&bench, &dest, "");
    wait_paused(&server);
    assert_eq!(ids(&server, "marks"), "1,2");
    assert_eq!(server.psql("SELECT count(*) FROM in_ts").unwrap(), "20000");
}
