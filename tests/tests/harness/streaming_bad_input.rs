//! Streaming against a server that cannot stream: PostgreSQL 15 with
//! `wal_level = minimal` and `max_wal_senders = 0` (`archive_mode = off`).
//! `barman receive-wal` and a `backup_method = postgres` backup refuse with
//! a message naming the setting, exit non-zero and leave nothing in the
//! catalog that looks like WAL or a backup.
//!
//! The other bad inputs of issue 6 are in `receive_wal.rs`: a wrong
//! password (`receive_wal_bad_password_and_dropped_connection`), a missing
//! slot with `create_slot = manual` (`receive_wal_slot_commands_reset_and_stop`)
//! and a connection dropped mid-stream (the walsender terminated, in the
//! same test as the password).

use std::fs;
use std::time::Duration;

use barman_testkit::PgCluster;

use crate::archiving::LocalSetup;
use crate::receive_wal::{configure, names_in, run_timed, streaming_dir};

/// Every file under `dir` (relative paths), sorted; empty when `dir` is absent.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn receive_wal_and_postgres_backup_refuse_a_server_without_replication() {
    let setup = LocalSetup::new();
    let pg = PgCluster::builder()
        .conf("wal_level = minimal")
        .conf("max_wal_senders = 0")
        .start()
        .expect("start PostgreSQL 15 with wal_level = minimal");
    assert_eq!(pg.psql("SHOW wal_level").unwrap(), "minimal");
    pg.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS id")
        .unwrap();
    configure(&setup, &pg, "pg", "create_slot = auto");
    let limit = Duration::from_secs(30);

    // receive-wal: refused, naming the settings; nothing streamed.
    let (st, text) = run_timed(&setup, &["receive-wal", "pg"], limit);
    assert!(!st.success(), "receive-wal succeeded: {text}");
    assert!(
        text.contains("max_wal_senders") && text.contains("wal_level"),
        "the message does not name the cause: {text}"
    );
    let streaming = streaming_dir(&setup, "pg");
    let left: Vec<String> = if streaming.exists() {
        names_in(&streaming)
    } else {
        Vec::new()
    };
    assert!(
        left.is_empty(),
        "streaming/ after a refused receive-wal: {left:?}"
    );
    eprintln!("receive-wal refused: {}", text.trim());
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_replication_slots")
            .unwrap(),
        "0"
    );
    // The slot commands fail the same way.
    let (st, text) = run_timed(&setup, &["receive-wal", "--create-slot", "pg"], limit);
    assert!(!st.success(), "--create-slot succeeded: {text}");
    assert!(text.contains("max_wal_senders"), "{text}");

    // backup_method = postgres: refused before a backup is recorded.
    let (st, text) = run_timed(&setup, &["backup", "pg"], limit);
    assert!(!st.success(), "backup succeeded: {text}");
    assert!(
        text.contains("wal_level") && text.contains("minimal"),
        "the message does not name wal_level: {text}"
    );
    let server_dir = setup.home.server_dir("pg");
    let base = files_under(&server_dir.join("base"));
    let meta = files_under(&server_dir.join("meta"));
    assert!(
        base.is_empty() && meta.is_empty(),
        "base/ {base:?} meta/ {meta:?}"
    );
    eprintln!("backup refused: {}", text.trim());
    let wals = files_under(&server_dir.join("wals"));
    assert!(
        wals.iter().all(|f| f.ends_with("xlog.db")),
        "wals/ after the refusals: {wals:?}"
    );
}
