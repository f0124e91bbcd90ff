//! PostgreSQL 17+ block-level incremental backups (`barman backup
//! --incremental`, `backup_method = postgres`, `summarize_wal = on`) on
//! PostgreSQL 17 (npm server) and 18 (the complete PyPI build): a full
//! backup taken under pgbench load, three incremental backups after more
//! pgbench work, recovered (the chain combined while it streams into the
//! destination) to a point after the third increment and to a point
//! between the first and second, with exactly the primary's rows at those
//! points and `pg_amcheck` clean; on 18 the combined data directory is
//! compared file by file with `pg_combinebackup`'s output for the same
//! chain. Then the bad input: `--incremental` where it cannot work, a
//! parent without WAL summaries, a missing or corrupted `INCREMENTAL.*`
//! file or parent file, a broken chain.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use barman_testkit::{DataDirServer, PG18_BIN, PgClusterBuilder, run};

use crate::archiving::ok;
use crate::backup::{Bench, SNAPSHOT_SQL};
use crate::recover::{Dest, backup_id, recover, start, wait_paused};

/// A bench on PostgreSQL `major` (17 or 18) with WAL summaries on.
fn bench_on(major: u32, summarize: bool) -> Bench {
    let bench = Bench::with_cluster("backup_method = postgres\n", 1, |b: PgClusterBuilder| {
        let b = if major == 18 {
            b.pg18()
        } else {
            b.embedded(major)
        };
        b.conf(format!(
            "summarize_wal = {}",
            if summarize { "on" } else { "off" }
        ))
    });
    bench.pg.psql("CREATE EXTENSION amcheck").unwrap();
    bench
        .pg
        .psql("CREATE TABLE marks (id int PRIMARY KEY, at text)")
        .unwrap();
    bench
}

/// `barman -f json backup pg ARGS` as it ran (no success expected).
fn try_backup(bench: &Bench, args: &[&str]) -> Output {
    let mut all = vec!["backup"];
    all.extend_from_slice(args);
    all.push("pg");
    bench.setup.run(&all)
}

/// pgbench in the background for `seconds` (the load a backup runs under).
fn pgbench_in_background(bench: &Bench, seconds: u32) -> Child {
    bench
        .pg
        .client_command("pgbench")
        .args([
            "-n",
            "-c",
            "2",
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "postgres",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The primary's rows now and a recovery target just after them (the
/// primary is idle meanwhile, so the state at the target is exactly this).
fn snapshot_and_target(bench: &Bench, mark: u32) -> (String, String) {
    let pg = &bench.pg;
    pg.psql(&format!("INSERT INTO marks VALUES ({mark}, 'mark')"))
        .unwrap();
    let rows = pg
        .psql(&format!(
            "SELECT ({SNAPSHOT_SQL}) || ' marks ' || (SELECT string_agg(id::text, ',' ORDER BY id) FROM marks)"
        ))
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let target = pg
        .psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'")
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    (rows, target)
}

fn rows_of(server: &DataDirServer) -> String {
    server
        .psql(&format!(
            "SELECT ({SNAPSHOT_SQL}) || ' marks ' || (SELECT string_agg(id::text, ',' ORDER BY id) FROM marks)"
        ))
        .unwrap()
}

/// `pg_amcheck` (PostgreSQL 18's client) over every database of `server`:
/// heap and B-tree checks, no corruption reported.
fn amcheck_clean(server: &DataDirServer) {
    let out = Command::new(Path::new(PG18_BIN).join("pg_amcheck"))
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args([
            "-U",
            "postgres",
            "--all",
            "--heapallindexed",
            "--no-dependent-indexes",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "pg_amcheck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Files below `root` (relative paths) with their contents' blake3.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(
                    rel,
                    blake3::hash(&fs::read(&path).unwrap()).to_hex().to_string(),
                );
            }
        }
    }
    out
}

/// Runs PostgreSQL 18's `pg_combinebackup` over the chain `ids` (root
/// first) of the catalog, each backup staged as pg_basebackup lays it out
/// (its data directory with `pg_tblspc/<oid>` links to its tablespace
/// trees); returns the output's data directory and tablespace directory.
fn pg_combinebackup(bench: &Bench, ids: &[&str], work: &Path) -> (PathBuf, PathBuf) {
    let mut dirs = Vec::new();
    let mut oid = String::new();
    for id in ids {
        let src = bench.backup_dir(id);
        let staged = work.join(id);
        run(Command::new("cp")
            .arg("-a")
            .arg(src.join("data"))
            .arg(&staged))
        .unwrap();
        for entry in fs::read_dir(&src).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.bytes().all(|b| b.is_ascii_digit()) {
                fs::create_dir_all(staged.join("pg_tblspc")).unwrap();
                symlink(src.join(&name), staged.join("pg_tblspc").join(&name)).unwrap();
                oid = name;
            }
        }
        dirs.push(staged);
    }
    let out = work.join("combined");
    let out_ts = work.join("combined_ts");
    let leaf = bench.backup_dir(ids[ids.len() - 1]).join(&oid);
    let mut cmd = Command::new(Path::new(PG18_BIN).join("pg_combinebackup"));
    cmd.arg("-o")
        .arg(&out)
        .arg(format!(
            "--tablespace-mapping={}={}",
            leaf.display(),
            out_ts.display()
        ))
        .args(&dirs);
    let result = cmd.output().unwrap();
    assert!(
        result.status.success(),
        "pg_combinebackup: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    (out, out_ts)
}

/// The combined data directory barman-rs recovered equals pg_combinebackup's:
/// every relation file (base/, global/, the tablespace) and backup_label.
fn assert_same_as_pg_combinebackup(dest: &Dest, combined: &Path, combined_ts: &Path) {
    let ours = tree(&dest.data());
    let theirs = tree(combined);
    let pick = |t: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        t.iter()
            .filter(|(p, _)| {
                p.starts_with("base/") || p.starts_with("global/") || *p == "backup_label"
            })
            .map(|(p, h)| (p.clone(), h.clone()))
            .collect()
    };
    let (a, b) = (pick(&ours), pick(&theirs));
    assert!(a.len() > 100, "too few files compared: {}", a.len());
    let differ: Vec<&String> = a
        .keys()
        .chain(b.keys())
        .filter(|p| a.get(*p) != b.get(*p))
        .collect();
    assert!(
        differ.is_empty(),
        "differ from pg_combinebackup: {differ:?}"
    );
    let (ts_a, ts_b) = (tree(&dest.ts()), tree(combined_ts));
    assert!(!ts_a.is_empty());
    assert_eq!(ts_a, ts_b, "tablespace differs from pg_combinebackup's");
}

fn full_and_three_increments(major: u32) {
    let bench = bench_on(major, true);
    // The full backup, under pgbench load.
    let load = pgbench_in_background(&bench, 6);
    std::thread::sleep(Duration::from_secs(1));
    let full = backup_id(&bench.backup(&[]));
    let load = load.wait_with_output().unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let info = bench.info(&full);
    assert_eq!(info["summarize_wal"], "on", "{info:?}");
    assert_eq!(info["parent_backup_id"], "None");

    // Three increments, each after more pgbench work; the first under load.
    bench.pg.pgbench_run(2, 3).unwrap();
    let load = pgbench_in_background(&bench, 4);
    std::thread::sleep(Duration::from_secs(1));
    let first = backup_id(&bench.backup(&["--incremental", "latest-full"]));
    assert!(load.wait_with_output().unwrap().status.success());
    bench.pg.pgbench_run(2, 2).unwrap();
    let (rows_between, target_between) = snapshot_and_target(&bench, 1);
    bench.pg.pgbench_run(2, 2).unwrap();
    let second = backup_id(&bench.backup(&["--incremental", "latest"]));
    bench.pg.pgbench_run(2, 3).unwrap();
    let third = backup_id(&bench.backup(&["--incremental", &second]));
    bench.pg.pgbench_run(2, 2).unwrap();
    let (rows_after, target_after) = snapshot_and_target(&bench, 2);
    bench.pg.pgbench_run(2, 1).unwrap();
    bench.flush_wal();

    // The catalog: the chain's links both ways, INCREMENTAL files stored.
    let chain = [&full, &first, &second, &third];
    for pair in chain.windows(2) {
        let child = bench.info(pair[1]);
        assert_eq!(&child["parent_backup_id"], pair[0], "{child:?}");
        assert_eq!(&bench.info(pair[0])["children_backup_ids"], pair[1]);
        let incremental = fs::read_dir(bench.backup_dir(pair[1]).join("data/base"))
            .unwrap()
            .flat_map(|db| fs::read_dir(db.unwrap().path()).unwrap())
            .filter(|f| {
                f.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("INCREMENTAL.")
            })
            .count();
        assert!(
            incremental > 100,
            "{}: {incremental} INCREMENTAL files",
            pair[1]
        );
        let size: u64 = child["size"].parse().unwrap();
        let full_size: u64 = bench.info(&full)["size"].parse().unwrap();
        assert!(
            size < full_size,
            "increment {size} bytes vs full {full_size}"
        );
    }
    assert_eq!(bench.info(&third)["children_backup_ids"], "None");
    let listing = ok(&bench.setup.run(&["list-backups", "pg"]), "list-backups");
    for id in chain {
        let kind = if id == &full { " - F - " } else { " - I - " };
        assert!(
            listing
                .lines()
                .any(|l| l.contains(id.as_str()) && l.contains(kind)),
            "{id}{kind}: {listing}"
        );
    }
    let show = ok(
        &bench.setup.run(&["show-backup", "pg", &third]),
        "show-backup",
    );
    assert!(
        show.contains(&format!("Root Backup          : {full}")),
        "{show}"
    );
    assert!(show.contains("Backup chain size    : 4"), "{show}");

    // Recovery of the third increment to a point after it: the chain is
    // combined on the way; on 18 it equals pg_combinebackup's output.
    let dest = Dest::new(&format!("incremental{major}"));
    let (d, t) = (dest.data_arg(), dest.ts_arg());
    let doc = recover(
        &bench,
        &[
            &third,
            &d,
            "--tablespace",
            &t,
            "--target-time",
            &target_after,
        ],
        &[],
    );
    assert_eq!(doc["backup_id"], third.as_str());
    if major == 18 {
        let work = tempfile::Builder::new()
            .prefix("barman-e2e-combine-")
            .tempdir_in("/tmp")
            .unwrap();
        let ids: Vec<&str> = chain.iter().map(|s| s.as_str()).collect();
        let (combined, combined_ts) = pg_combinebackup(&bench, &ids, work.path());
        assert_same_as_pg_combinebackup(&dest, &combined, &combined_ts);
    }
    let server = start(&bench, &dest, "");
    wait_paused(&server);
    assert_eq!(rows_of(&server), rows_after);
    amcheck_clean(&server);
    drop(server);

    // Recovery of the first increment to a point between it and the second.
    let dest = Dest::new(&format!("incremental{major}-between"));
    let (d, t) = (dest.data_arg(), dest.ts_arg());
    recover(
        &bench,
        &[
            &first,
            &d,
            "--tablespace",
            &t,
            "--target-time",
            &target_between,
        ],
        &[],
    );
    let server = start(&bench, &dest, "");
    wait_paused(&server);
    assert_eq!(rows_of(&server), rows_between);
    amcheck_clean(&server);
}

#[test]
fn postgres_17_full_and_three_incremental_backups_recover_exact_rows() {
    full_and_three_increments(17);
}

#[test]
fn postgres_18_incremental_chain_combines_as_pg_combinebackup_does() {
    full_and_three_increments(18);
}

/// `--incremental` where it cannot work is refused before anything is
/// written, with Barman's messages: PostgreSQL 15, `summarize_wal = off`,
/// a parent taken with summaries off, `backup_method = rsync`, an unknown
/// parent.
#[test]
fn incremental_backups_are_refused_where_they_cannot_work() {
    let refused = |bench: &Bench, args: &[&str], message: &str| {
        let before = barman_testkit::catalog::backup_ids(&bench.setup.dir("meta")).unwrap();
        let out = try_backup(bench, args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{args:?} succeeded: {text}");
        assert!(text.contains(message), "{args:?}: {text}");
        assert_eq!(
            barman_testkit::catalog::backup_ids(&bench.setup.dir("meta")).unwrap(),
            before,
            "{args:?} changed the catalog"
        );
    };
    // PostgreSQL 17 with summaries off: neither now nor for the parent.
    let bench = bench_on(17, false);
    let full = backup_id(&bench.backup(&[]));
    assert_eq!(bench.info(&full)["summarize_wal"], "off");
    refused(
        &bench,
        &["--incremental", &full],
        "failed to start backup: 'summarize_wal' option has to be enabled in the Postgres server to perform an incremental backup using the Postgres backup method",
    );
    bench
        .pg
        .psql("ALTER SYSTEM SET summarize_wal = on")
        .unwrap();
    bench.pg.psql("SELECT pg_reload_conf()").unwrap();
    refused(
        &bench,
        &["--incremental", "latest"],
        &format!(
            "failed to start backup: Backup ID {full} is not eligible as a parent for an incremental backup because WAL summaries were not enabled when that backup was taken."
        ),
    );
    refused(
        &bench,
        &["--incremental", "nosuchname"],
        "Unknown backup 'nosuchname' for server 'pg'",
    );
    drop(bench);

    // PostgreSQL 15.
    let bench = Bench::new("backup_method = postgres\n", 1);
    let full = backup_id(&bench.backup(&[]));
    refused(
        &bench,
        &["--incremental", &full],
        "failed to start backup: Postgres version 17 or greater is required for incremental backups using the Postgres backup method",
    );
    drop(bench);

    // backup_method = rsync (local-rsync through the agent here).
    let bench = Bench::new("backup_method = local-rsync\n", 1);
    let full = backup_id(&bench.backup(&[]));
    refused(
        &bench,
        &["--incremental", &full],
        "failed to start backup: Backup using the `--incremental` flag is available only for 'backup_method = postgres'.",
    );
}

/// Recovery of a chain whose files are damaged or missing fails naming
/// the file, installs nothing under its name, and leaves the catalog as it
/// was: a missing and a corrupted `INCREMENTAL.*` file, a corrupted parent
/// file, a parent deleted by hand (broken chain).
#[test]
fn damaged_chains_fail_recovery_naming_the_file() {
    let bench = bench_on(17, true);
    let full = backup_id(&bench.backup(&[]));
    bench.pg.pgbench_run(2, 2).unwrap();
    let inc = backup_id(&bench.backup(&["--incremental", &full]));
    bench.flush_wal();
    let meta_before = tree(&bench.setup.dir("meta"));

    // The largest INCREMENTAL file of the increment and its full file.
    let mut incs: Vec<(u64, PathBuf)> = Vec::new();
    let base = bench.backup_dir(&inc).join("data/base");
    for db in fs::read_dir(&base).unwrap() {
        for f in fs::read_dir(db.unwrap().path()).unwrap() {
            let f = f.unwrap();
            if f.file_name().to_string_lossy().starts_with("INCREMENTAL.") {
                incs.push((f.metadata().unwrap().len(), f.path()));
            }
        }
    }
    incs.sort();
    let (_, victim) = incs.last().unwrap().clone();
    let rel = victim
        .strip_prefix(bench.backup_dir(&inc))
        .unwrap()
        .to_path_buf();
    let out_rel = rel
        .to_string_lossy()
        .replace("INCREMENTAL.", "")
        .trim_start_matches("data/")
        .to_owned();
    let parent_file = bench
        .backup_dir(&full)
        .join(rel.to_string_lossy().replace("INCREMENTAL.", ""));
    assert!(parent_file.is_file(), "{}", parent_file.display());

    let fails = |what: &str, names: &str| {
        let dest = Dest::new("damaged-chain");
        let out = bench.setup.run(&[
            "recover",
            "pg",
            &inc,
            &dest.data_arg(),
            "--tablespace",
            &dest.ts_arg(),
        ]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{what}: recovery succeeded: {text}");
        assert!(text.contains(names), "{what}: `{names}` not named: {text}");
        assert!(
            !dest.data().join(&out_rel).exists(),
            "{what}: {out_rel} installed"
        );
        assert_eq!(
            tree(&bench.setup.dir("meta")),
            meta_before,
            "{what}: catalog changed"
        );
    };
    let flip = |path: &Path, at: u64| {
        let mut bytes = fs::read(path).unwrap();
        let i = usize::try_from(at).unwrap().min(bytes.len() - 1);
        bytes[i] ^= 0x55;
        fs::write(path, bytes).unwrap();
    };
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();

    // A corrupted INCREMENTAL file (a byte of its last block).
    let len = fs::metadata(&victim).unwrap().len();
    flip(&victim, len - 100);
    fails("corrupted INCREMENTAL file", &name);
    flip(&victim, len - 100);

    // A missing INCREMENTAL file.
    let saved = victim.with_extension("saved");
    fs::rename(&victim, &saved).unwrap();
    fails("missing INCREMENTAL file", &name);
    fs::rename(&saved, &victim).unwrap();

    // A corrupted block of the parent's full file.
    let parent_name = parent_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    flip(&parent_file, 8192 + 17);
    fails("corrupted parent file", &parent_name);
    flip(&parent_file, 8192 + 17);

    // A broken chain: the parent deleted by hand.
    let moved = bench.setup.dir("base").join(format!("{full}.moved"));
    fs::rename(bench.backup_dir(&full), &moved).unwrap();
    fails("parent deleted by hand", &full);
    fs::rename(&moved, bench.backup_dir(&full)).unwrap();

    // Everything back in place: the recovery works.
    let dest = Dest::new("repaired-chain");
    let (d, t) = (dest.data_arg(), dest.ts_arg());
    recover(&bench, &[&inc, &d, "--tablespace", &t], &[]);
    assert!(dest.data().join(&out_rel).is_file());
}

/// `barman delete` of the root removes the whole tree, leaves first;
/// `keep` refuses an increment.
#[test]
fn deleting_the_root_removes_the_chain_and_keep_refuses_increments() {
    let bench = bench_on(17, true);
    let full = backup_id(&bench.backup(&[]));
    let first = backup_id(&bench.backup(&["--incremental", &full]));
    let second = backup_id(&bench.backup(&["--incremental", &first]));
    let out = bench.setup.run(&["keep", "pg", &first, "--target", "full"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is an incremental backup"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bench.setup.run(&["delete", "pg", &full]);
    ok(&out, "delete");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "Backup {full} has incremental backups which depend on it"
        )),
        "{text}"
    );
    let order: Vec<usize> = [&second, &first, &full]
        .iter()
        .map(|id| {
            text.find(&format!("Deleting backup {id}"))
                .unwrap_or(usize::MAX)
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "leaves first: {text}"
    );
    for id in [&full, &first, &second] {
        assert!(!bench.backup_dir(id).exists(), "{id} left");
    }
}

/// Retention counts chain roots only and gives a root's status to its
/// whole chain: with `REDUNDANCY 1` and a newer full backup, the older
/// chain (root and increments) is OBSOLETE, and `cron` removes all of it.
#[test]
fn retention_gives_the_roots_status_to_its_chain_and_cron_removes_it() {
    let bench = Bench::with_cluster(
        "backup_method = postgres\nretention_policy = REDUNDANCY 1\nminimum_redundancy = 1\n",
        1,
        |b: PgClusterBuilder| b.embedded(17).conf("summarize_wal = on"),
    );
    let wait = ["--wait", "--wait-timeout", "60"];
    let old_root = backup_id(&bench.backup(&wait));
    let mut args = wait.to_vec();
    args.extend(["--incremental", old_root.as_str()]);
    let old_inc = backup_id(&bench.backup(&args));
    let new_root = backup_id(&bench.backup(&wait));
    let mut args = wait.to_vec();
    args.extend(["--incremental", new_root.as_str()]);
    let new_inc = backup_id(&bench.backup(&args));
    let listing = ok(&bench.setup.run(&["list-backups", "pg"]), "list-backups");
    for id in [&old_root, &old_inc] {
        assert!(
            listing
                .lines()
                .any(|l| l.contains(id.as_str()) && l.contains("OBSOLETE")),
            "{id} not OBSOLETE: {listing}"
        );
    }
    for id in [&new_root, &new_inc] {
        assert!(
            listing
                .lines()
                .any(|l| l.contains(id.as_str()) && !l.contains("OBSOLETE")),
            "{id}: {listing}"
        );
    }
    ok(&bench.setup.run(&["cron"]), "cron");
    for id in [&old_root, &old_inc] {
        assert!(!bench.backup_dir(id).exists(), "{id} left by cron");
    }
    for id in [&new_root, &new_inc] {
        assert!(bench.backup_dir(id).exists(), "{id} removed by cron");
    }
    assert_eq!(
        bench.info(&new_root)["children_backup_ids"],
        new_inc.as_str()
    );
}

/// A remote recovery (`--remote-ssh-command`, `barman agent` on the other
/// side of a loopback sshd, two jobs) combines the chain on the way too:
/// the same files as the local recovery, and the started server has the
/// primary's rows.
#[test]
fn remote_recovery_of_a_chain_over_ssh_matches_the_local_one() {
    let sshd = barman_testkit::Sshd::builder()
        .user(barman_testkit::SERVER_OS_USER)
        .start()
        .expect("start sshd");
    let client = crate::archiving::ClientSide::new(&sshd);
    let bench = bench_on(17, true);
    let full = backup_id(&bench.backup(&[]));
    bench.pg.pgbench_run(2, 2).unwrap();
    let inc = backup_id(&bench.backup(&["--incremental", &full]));
    bench.pg.pgbench_run(2, 1).unwrap();
    let expected = bench.pg.psql(SNAPSHOT_SQL).unwrap();
    bench.flush_wal();

    let local = Dest::new("chain-local");
    recover(
        &bench,
        &[&inc, &local.data_arg(), "--tablespace", &local.ts_arg()],
        &[],
    );
    let remote = Dest::new("chain-remote");
    let ssh = format!(
        "{} -p {} {}@127.0.0.1",
        client.bin("ssh").display(),
        sshd.port(),
        barman_testkit::SERVER_OS_USER
    );
    let env = [(
        "BARMAN_AGENT_COMMAND".to_owned(),
        format!("{} agent", client.bin("barman").display()),
    )];
    let doc = recover(
        &bench,
        &[
            &inc,
            &remote.data_arg(),
            "--tablespace",
            &remote.ts_arg(),
            "--remote-ssh-command",
            &ssh,
            "-j",
            "2",
        ],
        &env,
    );
    assert_eq!(doc["backup_id"], inc.as_str());
    assert_eq!(
        crate::recover::comparable(&remote),
        crate::recover::comparable(&local),
        "remote and local recoveries of the chain differ"
    );
    let server = start(&bench, &remote, "");
    crate::recover::wait_promoted(&server);
    assert_eq!(server.psql(SNAPSHOT_SQL).unwrap(), expected);
    drop(server);
    client.stop_master(sshd.port());
}

/// Incremental and compressed together, as Barman allows: a chain of
/// tar-format backups (zstd, compressed by us; then an increment gzip-
/// compressed by PostgreSQL) recovered with exact rows. The tar members
/// are unpacked into `--staging-path` (the one case a staging copy is
/// needed: combining reads blocks by position), which is empty afterwards.
#[test]
fn compressed_incremental_chains_recover_exact_rows() {
    let bench = Bench::with_cluster(
        "backup_method = postgres\nbackup_compression = zstd\nbackup_compression_format = tar\nbackup_compression_location = client\n",
        1,
        |b: PgClusterBuilder| b.embedded(17).conf("summarize_wal = on"),
    );
    bench.pg.psql("CREATE EXTENSION amcheck").unwrap();
    bench
        .pg
        .psql("CREATE TABLE marks (id int PRIMARY KEY, at text)")
        .unwrap();
    let full = backup_id(&bench.backup(&[]));
    bench.pg.pgbench_run(2, 2).unwrap();
    let first = backup_id(&bench.backup(&["--incremental", &full]));
    // The next increment compressed by the server, gzip.
    let conf = bench.setup.home.conf();
    let text = fs::read_to_string(conf)
        .unwrap()
        .replace("backup_compression = zstd", "backup_compression = gzip")
        .replace(
            "backup_compression_location = client",
            "backup_compression_location = server",
        );
    fs::write(conf, text).unwrap();
    bench.pg.pgbench_run(2, 2).unwrap();
    let second = backup_id(&bench.backup(&["--incremental", &first]));
    bench.pg.pgbench_run(2, 1).unwrap();
    let (rows, _) = snapshot_and_target(&bench, 1);
    bench.flush_wal();
    for (id, compression, archive) in [
        (&full, "zstd", "data/base.tar.zst"),
        (&first, "zstd", "data/base.tar.zst"),
        (&second, "gzip", "data/base.tar.gz"),
    ] {
        let info = bench.info(id);
        assert_eq!(info["compression"], compression, "{id}: {info:?}");
        assert!(
            bench.backup_dir(id).join(archive).is_file(),
            "{id}: {archive}"
        );
        assert!(bench.backup_dir(id).join("data/backup_manifest").is_file());
    }
    assert_eq!(bench.info(&second)["parent_backup_id"], first.as_str());

    let staging = tempfile::Builder::new()
        .prefix("barman-e2e-staging-")
        .tempdir_in("/tmp")
        .unwrap();
    barman_testkit::chown_to(staging.path(), barman_testkit::SERVER_OS_USER).unwrap();
    let dest = Dest::new("compressed-chain");
    let (d, t) = (dest.data_arg(), dest.ts_arg());
    let staging_arg = staging.path().display().to_string();
    recover(
        &bench,
        &[
            &second,
            &d,
            "--tablespace",
            &t,
            "--staging-path",
            &staging_arg,
        ],
        &[],
    );
    assert_eq!(
        fs::read_dir(staging.path()).unwrap().count(),
        0,
        "the staging directory was not emptied"
    );
    let server = start(&bench, &dest, "");
    crate::recover::wait_promoted(&server);
    assert_eq!(rows_of(&server), rows);
    amcheck_clean(&server);
}
