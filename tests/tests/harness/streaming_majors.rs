//! `barman receive-wal` and a `backup_method = postgres` backup against
//! PostgreSQL 13 (the pre-15 BASE_BACKUP syntax, one CopyOut per
//! tablespace, no READ_REPLICATION_SLOT) and 17 (from /opt/pgNN, see
//! `scripts/install-test-deps.sh`), streaming-only (`archive_mode = off`):
//! the backup is recovered on the same major from the streamed WAL alone
//! and has exactly the rows committed before the last archived segment.

use std::time::Instant;

use barman_testkit::PgCluster;

use crate::archiving::{LocalSetup, ok};
use crate::backup::Bench;
use crate::receive_wal::{
    Receiver, SLOT, assert_contiguous, configure, names_in, next_seg, run_timed, streaming_dir,
    switch_and_stream, wait_streaming, xlogdb_segments,
};
use crate::recover::{Dest, backup_id, recover, start, wait_promoted};

fn backup_and_receive_wal_on(major: u32) {
    let t0 = Instant::now();
    let setup = LocalSetup::new();
    let pg = PgCluster::builder()
        .embedded(major)
        .conf("wal_keep_size = '256MB'")
        .start()
        .unwrap_or_else(|e| panic!("start PostgreSQL {major}: {e}"));
    configure(
        &setup,
        &pg,
        "pg",
        "create_slot = auto\nimmediate_checkpoint = true",
    );
    let rx = Receiver::start(&setup, "pg");
    wait_streaming(&pg, &rx);
    // create_slot = auto made the slot (checked without READ_REPLICATION_SLOT on 13).
    assert_eq!(
        pg.psql(&format!(
            "SELECT active FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
        ))
        .unwrap(),
        "t",
        "{}",
        rx.output()
    );
    pg.psql("CREATE TABLE marks (id int PRIMARY KEY)").unwrap();
    pg.psql("INSERT INTO marks VALUES (1)").unwrap();
    let ts = pg.server_owned_dir("ts1").unwrap();
    pg.psql(&format!(
        "CREATE TABLESPACE ts1 LOCATION '{}'",
        ts.display()
    ))
    .unwrap();
    pg.psql("CREATE TABLE in_ts TABLESPACE ts1 AS SELECT generate_series(1, 5000) AS id")
        .unwrap();

    let bench = Bench::from_cluster(setup, pg);
    let id = backup_id(&bench.backup(&[]));
    let info = bench.info(&id);
    assert_eq!(info["mode"], "postgres", "{info:?}");
    assert_eq!(info["version"].parse::<u32>().unwrap() / 10_000, major);
    assert!(bench.backup_dir(&id).join("data/backup_label").is_file());
    bench.pg.psql("INSERT INTO marks VALUES (2)").unwrap();
    let streaming = streaming_dir(&bench.setup, "pg");
    let last = switch_and_stream(&bench.pg, &streaming, &rx);

    // A restart resumes from the .partial.
    let (st, text) = run_timed(
        &bench.setup,
        &["receive-wal", "--stop", "pg"],
        std::time::Duration::from_secs(20),
    );
    assert!(st.success(), "--stop: {text}");
    drop(rx);
    let resume = next_seg(&last);
    assert!(names_in(&streaming).contains(&format!("{resume}.partial")));
    let rx = Receiver::start(&bench.setup, "pg");
    wait_streaming(&bench.pg, &rx);
    assert!(
        rx.output().contains(&format!("({resume})")),
        "restart not from the .partial {resume}: {}",
        rx.output()
    );
    bench.pg.psql("INSERT INTO marks VALUES (3)").unwrap();
    let last = switch_and_stream(&bench.pg, &streaming, &rx);
    ok(&bench.setup.run(&["archive-wal", "pg"]), "archive-wal");
    let names = xlogdb_segments(&bench.setup, "pg");
    assert_contiguous(&names, &last);
    assert!(
        names[0] <= info["begin_wal"],
        "{names:?} from {}",
        info["begin_wal"]
    );

    // Recovered on the same major from the streamed WAL alone.
    let dest = Dest::new(&format!("pg{major}"));
    let (d, t) = (dest.data_arg(), dest.ts_arg());
    let doc = recover(&bench, &[&id, &d, "--tablespace", &t], &[]);
    assert_eq!(doc["backup_id"], id.as_str());
    let server = start(&bench, &dest, "");
    wait_promoted(&server);
    assert_eq!(
        server
            .psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM marks")
            .unwrap(),
        "1,2,3"
    );
    assert_eq!(server.psql("SELECT count(*) FROM in_ts").unwrap(), "5000");
    let major_of = server.psql("SHOW server_version_num").unwrap();
    assert_eq!(major_of.parse::<u32>().unwrap() / 10_000, major);
    drop(server);

    // --reset restarts from the slot's position (read through conninfo on 13).
    let limit = std::time::Duration::from_secs(20);
    let (st, text) = run_timed(&bench.setup, &["receive-wal", "--stop", "pg"], limit);
    assert!(st.success(), "--stop: {text}");
    drop(rx);
    let want = bench
        .pg
        .psql(&format!(
            "SELECT pg_walfile_name(restart_lsn) FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
        ))
        .unwrap();
    let (st, text) = run_timed(&bench.setup, &["receive-wal", "--reset", "pg"], limit);
    assert!(st.success(), "--reset: {text}");
    let partials: Vec<String> = names_in(&streaming)
        .into_iter()
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert_eq!(partials, [format!("{want}.partial")], "{text}");
    eprintln!(
        "postgres {major}: backup + receive-wal + recovery in {:?}",
        t0.elapsed()
    );
}

#[test]
fn postgres_13_backup_and_receive_wal_recover() {
    backup_and_receive_wal_on(13);
}

#[test]
fn postgres_17_backup_and_receive_wal_recover() {
    backup_and_receive_wal_on(17);
}
