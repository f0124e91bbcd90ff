//! `backup_method = postgres` with `backup_compression` (tar format): gzip,
//! lz4 and zstd compressed by us (client) and by PostgreSQL 15 (server),
//! each taken under pgbench load, recovered (one over ssh through the
//! agent) and started with the primary's exact rows; a damaged archive
//! fails the recovery naming it, with nothing left installed; bad option
//! combinations are refused with Barman's messages.

use std::fs;
use std::path::Path;

use barman_testkit::{SERVER_OS_USER, Sshd};

use crate::archiving::ClientSide;
use crate::backup::{Bench, SNAPSHOT_SQL};
use crate::recover::{Dest, backup_id, recover, recover_raw, start, wait_promoted};

/// The variants: (backup_compression, location, extra options, suffix).
const CASES: [(&str, &str, &str, &str); 6] = [
    ("gzip", "client", "backup_compression_level = 5", "tar.gz"),
    ("lz4", "client", "", "tar.lz4"),
    (
        "zstd",
        "client",
        "backup_compression_level = 3\nbackup_compression_workers = 2",
        "tar.zst",
    ),
    ("gzip", "server", "", "tar.gz"),
    ("lz4", "server", "backup_compression_level = 1", "tar.lz4"),
    (
        "zstd",
        "server",
        "backup_compression_workers = 1",
        "tar.zst",
    ),
];

/// Appends `lines` to the `[pg]` section (the configuration's last; a
/// later value of an option wins).
fn set_options(bench: &Bench, lines: &str) {
    let path = bench.setup.home.conf();
    let text = fs::read_to_string(path).unwrap() + lines + "\n";
    fs::write(path, text).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn compressed_backups_recover_with_exact_rows() {
    let bench = Bench::new("backup_method = postgres\n", 1);
    let pg = &bench.pg;
    pg.psql("CREATE TABLE marks (id int PRIMARY KEY)").unwrap();

    // Six backups, each under pgbench load, a marker row after each.
    let mut ids = Vec::new();
    for (n, (algorithm, location, extra, suffix)) in CASES.iter().enumerate() {
        set_options(
            &bench,
            &format!(
                "backup_compression = {algorithm}\nbackup_compression_location = {location}\n\
                 backup_compression_level = \nbackup_compression_workers = \n{extra}"
            ),
        );
        let doc = std::thread::scope(|s| {
            let load = s.spawn(|| pg.pgbench_run(2, 3).unwrap());
            let doc = bench.backup(&[]);
            load.join().unwrap();
            doc
        });
        let id = backup_id(&doc);
        let info = bench.info(&id);
        assert!(
            ["WAITING_FOR_WALS", "DONE"].contains(&info["status"].as_str()),
            "{info:?}"
        );
        assert_eq!(info["compression"], *algorithm, "{info:?}");
        let dir = bench.backup_dir(&id);
        let data = names(&dir.join("data"));
        let oid = names(&dir)
            .into_iter()
            .find(|n| n.chars().all(|c| c.is_ascii_digit()))
            .expect("the tablespace's directory");
        assert!(names(&dir.join(&oid)).is_empty(), "{oid}/ is not empty");
        assert_eq!(
            data,
            [
                format!("{oid}.{suffix}"),
                "backup_manifest".to_owned(),
                format!("base.{suffix}"),
            ],
            "{algorithm}/{location}"
        );
        // Our manifest has the archives' blake3.
        let manifest = fs::read_to_string(dir.join("manifest")).unwrap();
        assert!(
            manifest.contains(&format!("data/base.{suffix}")),
            "{manifest}"
        );
        pg.psql(&format!("INSERT INTO marks VALUES ({n})")).unwrap();
        ids.push(id);
    }
    let expected = pg.psql(SNAPSHOT_SQL).unwrap();
    bench.flush_wal();

    // One recovered over ssh through the agent, the others locally.
    let sshd = Sshd::builder()
        .user(SERVER_OS_USER)
        .start()
        .expect("start sshd");
    let client = ClientSide::new(&sshd);
    let ssh = format!(
        "{} -p {} {SERVER_OS_USER}@127.0.0.1",
        client.bin("ssh").display(),
        sshd.port()
    );
    let env = [(
        "BARMAN_AGENT_COMMAND".to_owned(),
        format!("{} agent", client.bin("barman").display()),
    )];
    for (n, id) in ids.iter().enumerate() {
        let (algorithm, location, ..) = CASES[n];
        let dest = Dest::new(&format!("{algorithm}-{location}"));
        let (d, ts) = (dest.data_arg(), dest.ts_arg());
        let mut args = vec![id.as_str(), d.as_str(), "--tablespace", ts.as_str()];
        let remote = n == 5;
        if remote {
            args.extend(["--remote-ssh-command", ssh.as_str()]);
        }
        let doc = recover(&bench, &args, if remote { &env } else { &[] });
        assert_eq!(doc["backup_id"], id.as_str());
        assert!(!dest.data().join("tablespace_map").exists());
        assert!(!dest.data().join("backup_manifest").exists());
        assert!(dest.data().join("backup_label").is_file());
        assert!(
            fs::read_link(
                dest.data().join("pg_tblspc").join(
                    names(&bench.backup_dir(id))
                        .into_iter()
                        .find(|n| n.chars().all(|c| c.is_ascii_digit()))
                        .unwrap()
                )
            )
            .unwrap()
                == dest.ts()
        );
        let server = start(&bench, &dest, "");
        wait_promoted(&server);
        assert_eq!(
            server.psql(SNAPSHOT_SQL).unwrap(),
            expected,
            "{algorithm}/{location}"
        );
        assert_eq!(
            server
                .psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM marks")
                .unwrap(),
            "0,1,2,3,4,5"
        );
    }
    client.stop_master(sshd.port());

    // A damaged byte in base.tar.gz: the recovery fails naming it and
    // leaves nothing installed (the tablespace unpacked first is removed).
    let base = bench.backup_dir(&ids[0]).join("data/base.tar.gz");
    let mut bytes = fs::read(&base).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    fs::write(&base, bytes).unwrap();
    let dest = Dest::new("damaged");
    let (d, ts) = (dest.data_arg(), dest.ts_arg());
    let run = recover_raw(&bench, &[&ids[0], &d, "--tablespace", &ts], &[]);
    assert!(!run.status.success(), "{}", run.both());
    assert!(run.stderr.contains("base.tar.gz"), "{}", run.both());
    for dir in [dest.data(), dest.ts()] {
        assert!(
            !dir.exists() || names(&dir).is_empty(),
            "{} holds {:?}",
            dir.display(),
            names(&dir)
        );
    }
    // --delta-restore is refused.
    let run = recover_raw(
        &bench,
        &[&ids[1], &d, "--tablespace", &ts, "--delta-restore"],
        &[],
    );
    assert!(!run.status.success(), "{}", run.both());
    assert!(run.stderr.contains("delta restore"), "{}", run.both());

    // Bad combinations: check says configuration FAILED, backup refuses.
    set_options(
        &bench,
        "backup_compression = lz4\nbackup_compression_workers = 2",
    );
    let out = bench.setup.run(&["check", "pg"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(
            "configuration: FAILED (backup_compression_workers is not compatible with compression lz4)"
        ),
        "{text}"
    );
    let out = bench.setup.run(&["backup", "pg"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        text.contains("backup_compression_workers is not compatible"),
        "{text}"
    );
    set_options(
        &bench,
        "backup_compression_workers = \nbackup_compression = gzip\nbackup_compression_format = plain\nbackup_compression_location = client",
    );
    let out = bench.setup.run(&["check", "pg"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("backup_compression_format plain is not compatible with backup_compression_location client"),
        "{text}"
    );
    // Plain format with server compression: an ordinary plain backup.
    set_options(&bench, "backup_compression_location = server");
    let doc = bench.backup(&["--wait", "--wait-timeout", "60"]);
    let id = backup_id(&doc);
    let info = bench.info(&id);
    assert_eq!(info["compression"], "None", "{info:?}");
    assert!(bench.backup_dir(&id).join("data/PG_VERSION").is_file());
}
