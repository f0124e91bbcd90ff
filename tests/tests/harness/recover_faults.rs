//! `barman recover` refusals and faults: invalid requests refused before any
//! file is written, a non-empty destination, an unknown or failed backup, a
//! missing WAL segment, a corrupted file in the backup, an unreachable ssh
//! host. Each one exits non-zero with a message naming the problem and
//! leaves the catalog (backup.info, xlog.db, wals/, base/) byte for byte as
//! it was.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;

use barman_testkit::catalog::is_segment;
use barman_testkit::{SERVER_OS_USER, chown_to, free_port};

use crate::backup::Bench;
use crate::recover::{
    Dest, LOCAL_RSYNC, Run, archived_path, num, recover, recover_raw, tree, tree_diff, xlogdb_names,
};

/// The catalog of server `pg`: `meta/`, `wals/` (with xlog.db) and `base/`,
/// every file by content.
#[derive(PartialEq, Eq)]
struct Catalog(BTreeMap<String, BTreeMap<String, String>>);

impl Catalog {
    fn take(bench: &Bench) -> Self {
        Self(
            ["meta", "wals", "base"]
                .into_iter()
                .map(|d| (d.to_owned(), tree(&bench.setup.dir(d))))
                .collect(),
        )
    }

    fn assert_same(&self, bench: &Bench, what: &str) {
        let now = Self::take(bench);
        for (dir, before) in &self.0 {
            let diff = tree_diff(before, &now.0[dir]);
            assert!(diff.is_empty(), "{what}: {dir}/ changed: {diff:#?}");
        }
    }
}

fn backup(bench: &Bench) -> String {
    let doc = bench.backup(&["--wait", "--wait-timeout", "60"]);
    doc["backup_id"].as_str().unwrap().to_owned()
}

/// The run failed, with one of `needles` (lower case) in its stderr.
fn assert_refused(run: &Run, what: &str, needles: &[&str], exit_1: bool) {
    assert!(!run.status.success(), "{what}: succeeded: {}", run.both());
    if exit_1 {
        assert_eq!(run.status.code(), Some(1), "{what}: {}", run.both());
    }
    let lower = run.stderr.to_lowercase();
    assert!(
        needles.iter().any(|n| lower.contains(&n.to_lowercase())),
        "{what}: stderr names none of {needles:?}: {}",
        run.both()
    );
    eprintln!("{what}: {} ({:?})", run.stderr.trim(), run.elapsed);
}

/// DEST (and the relocated ts1) absent, or present and empty.
fn assert_nothing_written(dest: &Dest, what: &str) {
    for dir in [dest.data(), dest.ts()] {
        if let Ok(entries) = fs::read_dir(&dir) {
            let left: Vec<String> = entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .take(20)
                .collect();
            assert!(
                left.is_empty(),
                "{what}: files written into {}: {left:?}",
                dir.display()
            );
        }
    }
}

/// A refusal: what, backup id, options, stderr names one of, exit code must be 1.
type Refusal<'a> = (&'a str, &'a str, Vec<&'a str>, Vec<&'a str>, bool);

/// Refusals of the request itself (targets, backup id, destination, ssh):
/// non-zero, the problem named, nothing written, the catalog untouched.
#[test]
fn invalid_requests_are_refused_before_writing_anything() {
    let bench = Bench::new(LOCAL_RSYNC, 1);
    let id = backup(&bench);
    bench.flush_wal();
    let catalog = Catalog::take(&bench);
    let dest = Dest::new("refused");
    let (d, ts) = (dest.data_arg(), dest.ts_arg());
    let closed = free_port().unwrap();
    let unreachable = format!(
        "/usr/bin/ssh -o BatchMode=yes -o StrictHostKeyChecking=no \
         -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 -p {closed} {SERVER_OS_USER}@127.0.0.1"
    );

    // (what, backup id, options, stderr names one of, exit code must be 1)
    let cases: Vec<Refusal> = vec![
        (
            "target time before the end of the backup",
            &id,
            vec!["--target-time", "2000-01-01 00:00:00+00:00"],
            vec!["before"],
            true,
        ),
        (
            "unknown backup id",
            "20000101T000000",
            vec![],
            vec!["20000101T000000", "unknown backup", "no backup"],
            true,
        ),
        (
            "last-failed",
            "last-failed",
            vec![],
            vec!["last-failed", "failed"],
            false,
        ),
        (
            "two targets (xid and name)",
            &id,
            vec!["--target-xid", "1000", "--target-name", "x"],
            vec!["target"],
            false,
        ),
        (
            "two targets (time and immediate)",
            &id,
            vec![
                "--target-time",
                "2100-01-01 00:00:00+00:00",
                "--target-immediate",
            ],
            vec!["target"],
            false,
        ),
        (
            "two targets (lsn and name)",
            &id,
            vec!["--target-lsn", "0/3000000", "--target-name", "x"],
            vec!["target"],
            false,
        ),
        (
            "--target-action without a target",
            &id,
            vec!["--target-action", "promote"],
            vec!["target"],
            false,
        ),
        (
            "--exclusive without a target",
            &id,
            vec!["--exclusive"],
            vec!["exclusive"],
            false,
        ),
        (
            "--exclusive with a restore point",
            &id,
            vec!["--exclusive", "--target-name", "x"],
            vec!["exclusive"],
            false,
        ),
        (
            "ssh unreachable",
            &id,
            vec!["--remote-ssh-command", &unreachable],
            vec!["ssh", "connect", "agent"],
            true,
        ),
    ];
    for (what, backup_id, options, needles, exit_1) in cases {
        let mut args = vec![backup_id, d.as_str(), "--tablespace", ts.as_str()];
        args.extend(options.iter().copied());
        let run = recover_raw(&bench, &args, &[]);
        assert_refused(&run, what, &needles, exit_1);
        assert!(!dest.data().exists(), "{what}: DEST created");
        assert!(!dest.ts().exists(), "{what}: tablespace directory created");
        catalog.assert_same(&bench, what);
    }

    // The `restore` alias refuses the same way.
    let mut all = vec!["restore", "pg", "20000101T000000", d.as_str()];
    all.extend(["--tablespace", ts.as_str()]);
    let run = crate::recover::barman_run(&bench, &all, &[], std::time::Duration::from_secs(60));
    assert_refused(
        &run,
        "restore alias, unknown backup",
        &["20000101T000000", "unknown backup", "no backup"],
        true,
    );
    assert!(!dest.data().exists());

    // A non-empty DEST without --delta-restore.
    dest.make_data_dir();
    let keep = dest.data().join("keep.me");
    fs::write(&keep, "precious").unwrap();
    chown_to(&keep, SERVER_OS_USER).unwrap();
    let run = recover_raw(&bench, &[&id, &d, "--tablespace", &ts], &[]);
    assert_refused(&run, "non-empty destination", &["not empty"], true);
    assert_eq!(
        fs::read_dir(dest.data()).unwrap().count(),
        1,
        "DEST changed"
    );
    assert_eq!(fs::read_to_string(&keep).unwrap(), "precious");
    assert!(!dest.ts().exists());
    catalog.assert_same(&bench, "non-empty destination");
}

/// A segment the recovery needs is missing — its file only (xlog.db still
/// lists it), or file and xlog.db line: the recovery fails before copying
/// anything, naming the first missing segment; once the archive is whole
/// again the same recovery succeeds.
#[test]
fn a_missing_wal_fails_naming_the_first_missing_segment() {
    let bench = Bench::new(LOCAL_RSYNC, 1);
    let id = backup(&bench);
    for i in 0..3 {
        bench
            .pg
            .psql(&format!("UPDATE in_ts SET n = n + {i} WHERE id <= 1000"))
            .unwrap();
        bench.flush_wal();
    }
    let info = bench.info(&id);
    let segments: Vec<String> = xlogdb_names(&bench)
        .into_iter()
        .filter(|n| is_segment(n))
        .collect();
    let after_end: Vec<&String> = segments
        .iter()
        .filter(|n| n.as_str() > info["end_wal"].as_str())
        .collect();
    assert!(
        after_end.len() >= 2,
        "end_wal {}, archive {segments:?}",
        info["end_wal"]
    );
    let spare = tempfile::tempdir().unwrap();

    // 1. The file of the first segment after the backup's end is gone
    //    (later segments exist: the gap is certain); xlog.db still lists it.
    let victim = after_end[0].clone();
    let victim_path = archived_path(&bench, &victim);
    let saved = spare.path().join(&victim);
    fs::rename(&victim_path, &saved).unwrap();
    let catalog = Catalog::take(&bench);
    let dest = Dest::new("missing-file");
    let run = recover_raw(
        &bench,
        &[&id, &dest.data_arg(), "--tablespace", &dest.ts_arg()],
        &[],
    );
    assert_refused(&run, "segment file missing", &[&victim], true);
    assert_nothing_written(&dest, "segment file missing");
    catalog.assert_same(&bench, "segment file missing");
    fs::rename(&saved, &victim_path).unwrap();

    // 2. begin_wal gone from wals/ and from xlog.db: even an `immediate`
    //    recovery cannot reach consistency.
    let begin = info["begin_wal"].clone();
    let begin_path = archived_path(&bench, &begin);
    let saved = spare.path().join(&begin);
    fs::rename(&begin_path, &saved).unwrap();
    let xlogdb = bench.setup.dir("wals").join("pg-xlog.db");
    let original = fs::read(&xlogdb).unwrap();
    let text = String::from_utf8(original.clone()).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{begin}\t")))
        .fold(String::new(), |mut acc, l| {
            acc.push_str(l);
            acc.push('\n');
            acc
        });
    assert_ne!(without, text, "{begin} not in xlog.db");
    fs::write(&xlogdb, without).unwrap();
    let catalog = Catalog::take(&bench);
    let dest = Dest::new("missing-begin");
    let run = recover_raw(
        &bench,
        &[
            &id,
            &dest.data_arg(),
            "--tablespace",
            &dest.ts_arg(),
            "--target-immediate",
        ],
        &[],
    );
    assert_refused(&run, "begin_wal missing", &[&begin], true);
    assert_nothing_written(&dest, "begin_wal missing");
    catalog.assert_same(&bench, "begin_wal missing");
    fs::rename(&saved, &begin_path).unwrap();
    fs::write(&xlogdb, original).unwrap();

    // The archive whole again: the same recovery works.
    let dest = Dest::new("whole-again");
    let doc = recover(
        &bench,
        &[&id, &dest.data_arg(), "--tablespace", &dest.ts_arg()],
        &[],
    );
    assert!(num(&doc, "wals") >= 4, "{doc}");
    assert!(dest.data().join("pg_wal").join(&victim).is_file());
}

/// A relation file of the backup altered in place (same size, same mtime):
/// the recovery fails naming that file; the catalog keeps it as it is.
#[test]
fn a_corrupted_backup_file_fails_the_recovery_naming_it() {
    let bench = Bench::new(LOCAL_RSYNC, 1);
    let id = backup(&bench);
    bench.flush_wal();
    let rel = bench
        .pg
        .psql("SELECT pg_relation_filepath('pgbench_accounts')")
        .unwrap();
    let victim = bench.backup_dir(&id).join("data").join(&rel);
    flip_bytes(&victim, 8192 * 5 + 300);

    let catalog = Catalog::take(&bench);
    for jobs in ["1", "2"] {
        let dest = Dest::new("corrupt");
        let run = recover_raw(
            &bench,
            &[
                &id,
                &dest.data_arg(),
                "--tablespace",
                &dest.ts_arg(),
                "-j",
                jobs,
            ],
            &[],
        );
        assert_refused(&run, &format!("corrupted {rel}, -j {jobs}"), &[&rel], true);
        catalog.assert_same(&bench, "corrupted file");
        eprintln!(
            "left in DEST after the failure: {} entries",
            fs::read_dir(dest.data()).map_or(0, Iterator::count)
        );
    }
}

/// Inverts 16 bytes at `offset`, keeping the size and the mtime.
fn flip_bytes(path: &Path, offset: u64) {
    let meta = fs::metadata(path).unwrap();
    assert!(meta.len() > offset + 16, "{} too small", path.display());
    let mtime = meta.modified().unwrap();
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut buf = [0u8; 16];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut buf).unwrap();
    for b in &mut buf {
        *b ^= 0xFF;
    }
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&buf).unwrap();
    f.set_modified(mtime).unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(fs::metadata(path).unwrap().len(), meta.len());
    assert_eq!(fs::metadata(path).unwrap().modified().unwrap(), mtime);
}
