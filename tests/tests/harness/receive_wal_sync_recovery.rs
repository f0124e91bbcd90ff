//! Synchronous WAL streaming judged by recovery: with
//! `synchronous_standby_names = 'barman_receive_wal'` a commit returns only
//! once `barman receive-wal` has flushed its WAL, so after a `kill -9` of
//! receive-wal in the middle of a segment, a restart, and a crash of the
//! primary, barman's copy alone (the archived segments and the newest
//! `streaming/<segment>.partial`) must recover every acknowledged commit.
//!
//! The committer is an independent client (one `psql` session, one row per
//! transaction) that records an id only after its COMMIT returned; the
//! recovered servers are compared with that list, row for row.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use barman_testkit::{DEFAULT_PG_BIN, PgCluster};

use crate::archiving::{LocalSetup, ok};
use crate::backup::Bench;
use crate::receive_wal::{
    APP, Receiver, SEGMENT, cluster, configure, names_in, next_seg, slot_active_sql, streaming_dir,
    wait_complete, wait_for, wait_streaming, wait_sync,
};
use crate::recover::{Dest, backup_id, recover, start, wait_promoted};

/// One `psql` session committing `INSERT INTO acked VALUES (n)` for n = 1,
/// 2, ... (autocommit: one transaction each), one at a time; `n` is
/// recorded once psql has printed the `\echo` that follows the INSERT, i.e.
/// once the COMMIT returned.
struct Committer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u32>>>,
    handle: Option<JoinHandle<Result<(), String>>>,
}

impl Committer {
    fn start(pg: &PgCluster) -> Self {
        let mut child = Command::new(format!("{DEFAULT_PG_BIN}/psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &pg.port().to_string()])
            .args(["-U", "postgres", "-d", "postgres"])
            .env_remove("PGPASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn psql");
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (flag, list) = (Arc::clone(&stop), Arc::clone(&acked));
        let handle = thread::spawn(move || {
            let mut stdin = child.stdin.take().unwrap();
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            let mut n = 0;
            let result = loop {
                if flag.load(Ordering::SeqCst) {
                    break Ok(());
                }
                n += 1;
                if let Err(e) = write!(stdin, "INSERT INTO acked VALUES ({n});\n\\echo ack {n}\n")
                    .and_then(|()| stdin.flush())
                {
                    break Err(format!("writing to psql: {e}"));
                }
                line.clear();
                match stdout.read_line(&mut line) {
                    Ok(0) => break Err("psql exited".to_owned()),
                    Ok(_) if line.trim() == format!("ack {n}") => list.lock().unwrap().push(n),
                    Ok(_) => break Err(format!("psql printed {line:?}")),
                    Err(e) => break Err(format!("reading from psql: {e}")),
                }
            };
            drop(stdin);
            let out = child.wait_with_output();
            result.map_err(|e| {
                let stderr = out.map_or_else(
                    |e| e.to_string(),
                    |o| String::from_utf8_lossy(&o.stderr).into_owned(),
                );
                format!("{e}; psql stderr: {stderr}")
            })
        });
        Self {
            stop,
            acked,
            handle: Some(handle),
        }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until at least `n` commits were acknowledged.
    fn wait_for(&self, n: usize, why: impl Fn() -> String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.count() < n {
            assert!(
                !self.handle.as_ref().is_some_and(JoinHandle::is_finished),
                "the committer stopped after {} commits\n{}",
                self.count(),
                why()
            );
            assert!(
                Instant::now() < deadline,
                "only {} commits acknowledged, waiting for {n}\n{}",
                self.count(),
                why()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops after the commit in flight; returns every acknowledged id.
    fn finish(mut self) -> Vec<u32> {
        self.stop.store(true, Ordering::SeqCst);
        let result = self.handle.take().unwrap().join().unwrap();
        assert_eq!(result, Ok(()), "committer");
        self.acked.lock().unwrap().clone()
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The ids in `acked` on a recovered server.
fn recovered_ids(server: &barman_testkit::DataDirServer) -> Vec<u32> {
    let text = server
        .psql("SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM acked")
        .unwrap();
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

fn lsn_offset_in_segment(pg: &PgCluster) -> u64 {
    let lsn = pg.psql("SELECT pg_current_wal_lsn()").unwrap();
    let (_, low) = lsn.split_once('/').unwrap();
    u64::from_str_radix(low, 16).unwrap() % SEGMENT
}

#[test]
fn synchronous_commits_survive_a_killed_receiver_and_a_crashed_primary() {
    let t0 = Instant::now();
    let setup = LocalSetup::new();
    let pg = cluster(&[
        &format!("synchronous_standby_names = '{APP}'"),
        "synchronous_commit = on",
    ]);
    configure(
        &setup,
        &pg,
        "pg",
        "create_slot = auto\nimmediate_checkpoint = true",
    );
    let mut rx = Receiver::start(&setup, "pg");
    wait_streaming(&pg, &rx);
    wait_sync(&pg, &rx);
    pg.psql("CREATE TABLE acked (id int PRIMARY KEY)").unwrap();
    let bench = Bench::from_cluster(setup, pg);
    let id = backup_id(&bench.backup(&[]));
    let setup = &bench.setup;
    let streaming = streaming_dir(setup, "pg");

    // Commits flow, across a segment switch.
    let committer = Committer::start(&bench.pg);
    committer.wait_for(30, || rx.output());
    let switched = bench.pg.switch_wal().unwrap();
    wait_complete(&streaming, &switched, &rx, Duration::from_secs(30));
    let current = next_seg(&switched);
    committer.wait_for(committer.count() + 30, || rx.output());

    // kill -9 in the middle of the segment being written.
    assert!(
        names_in(&streaming).contains(&format!("{current}.partial")),
        "{:?}",
        names_in(&streaming)
    );
    assert_ne!(lsn_offset_in_segment(&bench.pg), 0);
    rx.signal("KILL");
    assert!(
        rx.wait(Duration::from_secs(10)).is_some(),
        "kill -9 ignored"
    );
    let at_kill = committer.count();
    // With no synchronous standby the next commit waits.
    wait_for(
        &bench.pg,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
        "1",
        Duration::from_secs(20),
        || rx.output(),
    );
    assert!(
        committer.count() <= at_kill + 1,
        "commits were acknowledged with receive-wal killed"
    );
    wait_for(
        &bench.pg,
        &slot_active_sql(),
        "false",
        Duration::from_secs(20),
        || rx.output(),
    );

    // Restarted: the blocked commit returns, more follow in the same segment.
    let mut rx = Receiver::start(setup, "pg");
    wait_streaming(&bench.pg, &rx);
    committer.wait_for(at_kill + 60, || rx.output());
    assert_eq!(
        bench
            .pg
            .psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
            .unwrap(),
        current,
        "the killed segment was switched out: its tail would not be the .partial"
    );
    let acked = committer.finish();
    assert!(acked.len() >= 120, "{} commits", acked.len());

    // The primary crashes: only barman's copy of the WAL is left to judge.
    let mut pg = bench.pg;
    pg.stop_immediate().unwrap();
    let bench = Bench::from_cluster(bench.setup, pg);
    let setup = &bench.setup;
    let st = rx.wait(Duration::from_secs(30));
    assert!(
        st.is_some_and(|s| !s.success()),
        "receive-wal after the primary crashed: {st:?}\n{}",
        rx.output()
    );
    drop(rx);
    let partial = format!("{current}.partial");
    let left = names_in(&streaming);
    assert!(left.contains(&partial), "streaming/: {left:?}");
    assert!(!left.contains(&current), "streaming/: {left:?}");
    ok(&setup.run(&["archive-wal", "pg"]), "archive-wal");
    assert_eq!(
        names_in(&streaming),
        std::slice::from_ref(&partial),
        "after archive-wal"
    );
    let tail = std::fs::read(streaming.join(&partial)).unwrap();

    // 1. restore_command = barman get-wal -P: the .partial is served last.
    let dest = Dest::new("sync-get-wal");
    let doc = recover(&bench, &[&id, &dest.data_arg(), "--get-wal"], &[]);
    let command = doc["restore_command"].as_str().unwrap_or_default();
    assert!(command.contains(" get-wal -P pg "), "{doc}");
    let server = start(&bench, &dest, "");
    wait_promoted(&server);
    assert_eq!(
        recovered_ids(&server),
        acked,
        "get-wal -P recovery; log:\n{}",
        server.log()
    );
    drop(server);

    // 2. Staged with --partial-wal: the .partial goes into pg_wal under
    //    its segment's name.
    let dest = Dest::new("sync-partial");
    let doc = recover(&bench, &[&id, &dest.data_arg(), "--partial-wal"], &[]);
    assert!(doc["restore_command"].is_null(), "{doc}");
    let staged = std::fs::read(dest.data().join("pg_wal").join(&current)).unwrap();
    assert!(
        staged == tail,
        "pg_wal/{current} is not the streamed .partial"
    );
    assert!(
        dest.data()
            .join("pg_wal/archive_status")
            .join(format!("{current}.done"))
            .is_file()
    );
    let server = start(&bench, &dest, "");
    wait_promoted(&server);
    assert_eq!(
        recovered_ids(&server),
        acked,
        "--partial-wal recovery; log:\n{}",
        server.log()
    );
    drop(server);

    // 3. Without the .partial, the commits of the killed segment are lost:
    //    the .partial is what holds them.
    let dest = Dest::new("sync-no-partial");
    recover(&bench, &[&id, &dest.data_arg()], &[]);
    assert!(!dest.data().join("pg_wal").join(&current).exists());
    let server = start(&bench, &dest, "");
    wait_promoted(&server);
    let without = recovered_ids(&server);
    assert!(
        without.len() < acked.len() && acked.starts_with(&without),
        "{} of {} commits without the .partial",
        without.len(),
        acked.len()
    );
    assert!(
        without.len() >= 30,
        "the segment switched out before the kill is archived"
    );
    eprintln!(
        "synchronous recovery: {} commits, {} only in the .partial, {:?}",
        acked.len(),
        acked.len() - without.len(),
        t0.elapsed()
    );
}
