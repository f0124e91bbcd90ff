//! The listing commands on a real PostgreSQL 15: two local-rsync backups with
//! WAL archived between them and after; `list-backups`, `show-backup`,
//! `list-files`, `status`, `list-processes` (a running `barman receive-wal`)
//! and `check-wal-archive`, console and `-f json`. Expected values come from
//! the catalog files (backup.info, xlog.db), the disk, `date` and PostgreSQL
//! itself, through Barman's rules (BARMAN-BEHAVIOUR.md §1.4, §4.1).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use barman_core::shared::human_size as pretty;
use serde_json::Value;

use crate::archiving::ok;
use crate::backup::{Bench, files};
use crate::receive_wal::Receiver;

/// xlog.db of `pg`: name → stored size, plain segments only.
fn archived_segments(bench: &Bench) -> BTreeMap<String, u64> {
    let text = fs::read_to_string(bench.setup.dir("wals").join("pg-xlog.db")).unwrap();
    text.lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let name = cols.next()?;
            let size = cols.next()?.parse().ok()?;
            (name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| (name.to_owned(), size))
        })
        .collect()
}

/// The stored size of the archived segments whose names pass `keep`.
fn sum_where(segments: &BTreeMap<String, u64>, keep: impl Fn(&str) -> bool) -> u64 {
    segments
        .iter()
        .filter(|(n, _)| keep(n))
        .map(|(_, s)| s)
        .sum()
}

/// `date` renders a backup.info time (`2026-12-01 22:10:00.123456+00:00`).
fn date(time: &str, format: &str) -> String {
    let out = Command::new("date")
        .args(["-d", time, format])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn json(bench: &Bench, args: &[&str]) -> Value {
    let mut all = vec!["-f", "json"];
    all.extend_from_slice(args);
    let text = ok(&bench.setup.run(&all), &args.join(" "));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn console(bench: &Bench, args: &[&str]) -> String {
    ok(&bench.setup.run(args), &args.join(" "))
}

fn stdout_lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

#[test]
fn listings_of_two_backups_with_wal_between_them() {
    let bench = Bench::new("backup_method = local-rsync\nreuse_backup = link\n", 1);
    let pg = &bench.pg;
    let first = bench.backup(&["--wait"])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // WAL between the backups: three segments' worth of changes.
    for _ in 0..3 {
        pg.psql("INSERT INTO in_ts SELECT g, g FROM generate_series(1000000, 1020000) g ON CONFLICT (id) DO UPDATE SET n = in_ts.n + 1")
            .unwrap();
        bench.flush_wal();
    }
    let second = bench.backup(&["--wait"])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    pg.psql("UPDATE in_ts SET n = n + 1").unwrap();
    bench.flush_wal();
    assert!(first < second);
    let (info1, info2) = (bench.info(&first), bench.info(&second));
    let segments = archived_segments(&bench);
    let (begin1, end1) = (info1["begin_wal"].as_str(), info1["end_wal"].as_str());
    let (begin2, end2) = (info2["begin_wal"].as_str(), info2["end_wal"].as_str());
    assert!(end1 < begin2, "WAL between the backups: {end1} {begin2}");
    assert!(
        segments.keys().any(|n| n.as_str() > end2),
        "WAL after the second backup"
    );

    // --- list-backups: newest first; Size = size + its own WALs, WAL Size =
    // the WALs after it up to the next backup's end_wal (or the archive's end).
    let size = |info: &BTreeMap<String, String>, begin: &str, end: &str| {
        info["size"].parse::<u64>().unwrap() + sum_where(&segments, |n| n >= begin && n <= end)
    };
    let size1 = size(&info1, begin1, end1);
    let size2 = size(&info2, begin2, end2);
    let wal1 = sum_where(&segments, |n| n > end1 && n <= end2);
    let wal2 = sum_where(&segments, |n| n > end2);
    let ctime = |info: &BTreeMap<String, String>| date(&info["end_time"], "+%a %b %e %H:%M:%S %Y");
    let expected = vec![
        format!(
            "pg {second} - R - {} - Size: {} - WAL Size: {}",
            ctime(&info2),
            pretty(size2),
            pretty(wal2)
        ),
        format!(
            "pg {first} - R - {} - Size: {} - WAL Size: {}",
            ctime(&info1),
            pretty(size1),
            pretty(wal1)
        ),
    ];
    assert_eq!(
        stdout_lines(&console(&bench, &["list-backups", "pg"])),
        expected
    );
    let doc = json(&bench, &["list-backups", "pg"]);
    let rows = doc["pg"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, (id, info, size, wal)) in rows.iter().zip([
        (&second, &info2, size2, wal2),
        (&first, &info1, size1, wal1),
    ]) {
        assert_eq!(row["backup_id"], id.as_str());
        assert_eq!(row["status"], "DONE");
        assert_eq!(row["backup_type"], "rsync");
        assert_eq!(row["retention_status"], "-");
        assert_eq!(row["size_bytes"], size);
        assert_eq!(row["wal_size_bytes"], wal);
        assert_eq!(row["end_time_timestamp"], date(&info["end_time"], "+%s"));
    }
    assert_eq!(
        console(&bench, &["list-backups", "--minimal", "pg"]),
        format!("{second}\n{first}\n")
    );

    // --- show-backup
    let doc = json(&bench, &["show-backup", "pg", &first]);
    let b = &doc["pg"];
    let base = &b["base_backup_information"];
    assert_eq!(b["backup_id"], first.as_str());
    assert_eq!(b["status"], "DONE");
    assert_eq!(b["system_id"], pg.system_identifier().unwrap().to_string());
    assert_eq!(b["pgdata_directory"], pg.data_dir().display().to_string());
    assert_eq!(b["server_information"]["data_checksums"], "on");
    assert_eq!(base["begin_wal"], begin1);
    assert_eq!(base["end_wal"], end1);
    assert_eq!(base["begin_lsn"], info1["begin_xlog"].as_str());
    assert_eq!(base["end_lsn"], info1["end_xlog"].as_str());
    assert_eq!(base["timeline"], 1);
    let own: Vec<&String> = segments
        .keys()
        .filter(|n| n.as_str() >= begin1 && n.as_str() <= end1)
        .collect();
    assert_eq!(base["wal_num"], own.len());
    assert_eq!(
        base["backup_size_bytes"],
        info1["deduplicated_size"].parse::<u64>().unwrap()
    );
    assert_eq!(
        base["begin_time_timestamp"],
        date(&info1["begin_time"], "+%s")
    );
    assert_eq!(b["tablespaces"][0]["name"], "ts1");
    let oid = b["tablespaces"][0]["oid"].as_u64().unwrap();
    let catalog = &b["catalog_information"];
    assert_eq!(
        catalog["previous_backup"],
        "- (this is the oldest base backup)"
    );
    assert_eq!(catalog["next_backup"], second.as_str());
    assert_eq!(catalog["retention_policy"], "not enforced");
    let wal = &b["wal_information"];
    let until_next: Vec<&String> = segments
        .keys()
        .filter(|n| n.as_str() > end1 && n.as_str() <= end2)
        .collect();
    assert_eq!(wal["no_of_files"], until_next.len());
    assert_eq!(wal["disk_usage_bytes"], wal1);
    assert_eq!(wal["last_available"], end2);
    let doc = json(&bench, &["show-backup", "pg", "last"]);
    assert_eq!(doc["pg"]["backup_id"], second.as_str());
    assert_eq!(
        doc["pg"]["catalog_information"]["previous_backup"],
        first.as_str()
    );
    assert_eq!(
        doc["pg"]["wal_information"]["last_available"],
        segments.keys().last().unwrap().as_str()
    );
    let text = console(&bench, &["show-backup", "pg", &first]);
    for line in [
        format!("Backup {first}:"),
        "  Status                 : DONE".to_owned(),
        format!("    Begin WAL            : {begin1}"),
        format!("    End WAL              : {end1}"),
        format!("    Number of files      : {}", until_next.len()),
        format!("    Next Backup          : {second}"),
        format!(
            "    ts1                  : {} (oid: {oid})",
            b["tablespaces"][0]["location"].as_str().unwrap()
        ),
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}`:\n{text}");
    }

    // --- list-files: paths that exist, as Barman's targets define them.
    let dir = bench.backup_dir(&first);
    let on_disk: BTreeSet<PathBuf> = files(&dir).keys().map(|rel| dir.join(rel)).collect();
    let data: Vec<PathBuf> = console(&bench, &["list-files", "--target", "data", "pg", &first])
        .lines()
        .map(PathBuf::from)
        .collect();
    assert_eq!(data.iter().cloned().collect::<BTreeSet<_>>(), on_disk);
    assert_eq!(data.len(), on_disk.len(), "no path twice");
    assert!(data.contains(&dir.join("data/PG_VERSION")));
    assert!(
        data.iter()
            .any(|p| p.starts_with(dir.join(oid.to_string()))),
        "tablespace files"
    );
    let wals_dir = bench.setup.dir("wals");
    let wal_path = |n: &str| wals_dir.join(&n[..16]).join(n);
    let standalone: Vec<PathBuf> = console(&bench, &["list-files", "pg", &first])
        .lines()
        .map(PathBuf::from)
        .collect();
    assert_eq!(standalone[..data.len()], data[..]);
    let needed: Vec<PathBuf> = own.iter().map(|n| wal_path(n)).collect();
    assert_eq!(standalone[data.len()..], needed[..]);
    let wal_files: Vec<PathBuf> = console(&bench, &["list-files", "--target", "wal", "pg", &first])
        .lines()
        .map(PathBuf::from)
        .collect();
    let expected: Vec<PathBuf> = segments
        .keys()
        .filter(|n| n.as_str() >= begin1 && n.as_str() <= end2)
        .map(|n| wal_path(n))
        .collect();
    assert_eq!(wal_files, expected);
    assert!(wal_files.iter().all(|p| p.is_file()), "{wal_files:?}");
    let doc = json(&bench, &["list-files", "--target", "full", "pg", &first]);
    let full: Vec<PathBuf> = doc["_INFO"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| PathBuf::from(v.as_str().unwrap()))
        .collect();
    assert_eq!(full, [data.clone(), wal_files].concat());

    // --- status, against what PostgreSQL says.
    let text = console(&bench, &["status", "pg"]);
    let current = pg
        .psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        .unwrap();
    let version = pg.psql("SHOW server_version").unwrap();
    let version = version.split_whitespace().next().unwrap();
    let archived = pg
        .psql("SELECT last_archived_wal FROM pg_stat_archiver")
        .unwrap();
    let status: BTreeMap<String, String> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.strip_prefix('\t')?.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(text.starts_with("Server pg:\n"), "{text}");
    assert_eq!(status["Description"], "backup test");
    assert_eq!(status["PostgreSQL version"], version);
    assert_eq!(status["Cluster state"], "in production");
    assert_eq!(
        status["PostgreSQL Data directory"],
        pg.data_dir().display().to_string()
    );
    assert_eq!(status["Current WAL segment"], current);
    assert_eq!(
        status["PostgreSQL 'archive_command' setting"],
        bench.setup.archive_command()
    );
    assert!(
        status["Last archived WAL"].starts_with(&format!("{archived}, at ")),
        "{text}"
    );
    // The archiver's failures as pg_stat_archiver counts them (the first
    // segment may have failed before barman.conf had the server).
    let failures = pg
        .psql("SELECT failed_count || '|' || coalesce(last_failed_wal, '') || '|' || coalesce(last_failed_time::text, '') FROM pg_stat_archiver")
        .unwrap();
    let mut f = failures.split('|');
    let (count, wal, time) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
    let expected = if count == "0" {
        "0".to_owned()
    } else {
        format!("{count} ({wal} at {})", date(time, "+%a %b %e %H:%M:%S %Y"))
    };
    assert_eq!(status["Failures of WAL archiver"], expected);
    assert_eq!(status["Passive node"], "False");
    assert_eq!(status["Retention policies"], "not enforced");
    assert_eq!(status["No. of available backups"], "2");
    assert_eq!(status["First available backup"], first);
    assert_eq!(status["Last available backup"], second);
    assert_eq!(status["Minimum redundancy requirements"], "satisfied (2/0)");
    assert!(status["Current data size"].ends_with("MiB"), "{text}");
    let doc = json(&bench, &["status", "pg"]);
    assert_eq!(doc["pg"]["current_xlog"]["message"], current);
    assert_eq!(
        doc["pg"]["current_xlog"]["description"],
        "Current WAL segment"
    );
    assert_eq!(doc["pg"]["last_backup"]["message"], second.as_str());

    // --- check-wal-archive: this archive is in use; an unused server's is not.
    let out = bench.setup.run(&["check-wal-archive", "pg"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("WAL archive check failed for server pg: Expected empty archive"),
        "{out:?}"
    );
    let conf = fs::read_to_string(bench.setup.home.conf()).unwrap()
        + &format!(
            "\n[fresh]\nconninfo = {}\narchiver = on\n\n[stream]\nconninfo = {c}\nstreaming_conninfo = {c}\n\
             backup_method = postgres\narchiver = off\nstreaming_archiver = on\nslot_name = listings\ncreate_slot = auto\n",
            pg.conninfo(),
            c = pg.conninfo()
        );
    fs::write(bench.setup.home.conf(), conf).unwrap();
    assert_eq!(
        console(&bench, &["check-wal-archive", "fresh"]),
        "Server fresh:\n - WAL archive check for server fresh passed\n"
    );
    let doc = json(&bench, &["check-wal-archive", "--timeline", "2", "pg"]);
    assert_eq!(doc["pg"], "WAL archive check for server pg passed");

    // --- list-processes: a running receive-wal holds its lock.
    assert_eq!(
        console(&bench, &["list-processes", "stream"]),
        "No active subprocesses found for server stream.\n"
    );
    let receiver = Receiver::start(&bench.setup, "stream");
    let expected = format!(
        "Active subprocesses for server stream:\n{} receive-wal\n",
        receiver.pid()
    );
    let start = Instant::now();
    loop {
        let text = console(&bench, &["list-processes", "stream"]);
        if text == expected {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "list-processes: {text}\nreceive-wal: {}",
            receiver.output()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let doc = json(&bench, &["list-processes", "stream"]);
    assert_eq!(
        doc["stream"],
        serde_json::json!([{"name": "receive-wal", "pid": receiver.pid()}])
    );
    // Another server's locks are not this one's.
    assert_eq!(
        json(&bench, &["list-processes", "pg"])["pg"],
        serde_json::json!([])
    );
    drop(receiver);
    assert_eq!(
        console(&bench, &["list-processes", "stream"]),
        "No active subprocesses found for server stream.\n"
    );
}
