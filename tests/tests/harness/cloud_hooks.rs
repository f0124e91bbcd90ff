//! The barman-cloud tools as barman-rs hook scripts, as Barman's users run
//! them: `pre_archive_retry_script = barman-cloud-wal-archive ...` copies
//! each WAL into the bucket as it is archived (`BARMAN_FILE`), and
//! `post_backup_retry_script = barman-cloud-backup ...` uploads each backup
//! just taken (`BARMAN_BACKUP_DIR`, its backup.info verbatim). Real
//! barman-cloud and our tools then restore the uploaded backup, and
//! PostgreSQL replays the uploaded WALs to exactly the rows of the backup.

use std::fs;
use std::time::Duration;

use barman_testkit::object_storage::{Moto, S3_ENV, barman_cloud_tool};
use barman_testkit::{DataDirServer, SERVER_OS_USER, barman_bin, chown_to, stage_binary};

use crate::backup::{Bench, SNAPSHOT_SQL};
use crate::cloud_wal::{bucket, status, text, tree_of};

#[test]
fn hooks_upload_the_backups_and_wals_barman_takes_and_both_tools_restore_them() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("hooked").unwrap();
    let staged = tempfile::Builder::new()
        .prefix("barman-e2e-cloud-hooks-")
        .tempdir_in("/tmp")
        .unwrap();
    barman_testkit::chmod(staged.path(), 0o755).unwrap();
    let ours = |name: &str| stage_binary(&barman_bin(name).unwrap(), staged.path()).unwrap();
    let env: Vec<String> = S3_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let prefix = format!("env {} ", env.join(" "));
    let endpoint = moto.endpoint();
    let conf = format!(
        "backup_method = local-rsync\nreuse_backup = link\n\
         pre_archive_retry_script = {prefix}{} --endpoint-url {endpoint} --gzip s3://hooked/cloud pg\n\
         post_backup_retry_script = {prefix}{} --endpoint-url {endpoint} s3://hooked/cloud pg\n",
        ours("barman-cloud-wal-archive").display(),
        ours("barman-cloud-backup").display(),
    );
    let bench = Bench::new(&conf, 1);
    bench.flush_wal();
    let backup = bench.backup(&["--wait", "--wait-timeout", "60"]);
    let id = backup["backup_id"].as_str().unwrap().to_owned();
    let expected = bench.pg.psql(SNAPSHOT_SQL).unwrap();
    bench
        .pg
        .psql("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid < 100")
        .unwrap();
    bench.flush_wal();

    // The backup.info in the bucket is the server's, verbatim.
    let store = bucket(&moto, "s3://hooked/cloud");
    let mut uploaded = Vec::new();
    store
        .get(&format!("cloud/pg/base/{id}/backup.info"), &mut uploaded)
        .unwrap();
    let uploaded: std::collections::BTreeMap<String, String> = String::from_utf8(uploaded)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(uploaded, bench.info(&id));
    // Every WAL the server archived went to the bucket too.
    let wals: Vec<String> = store
        .list("cloud/pg/wals/")
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    let end_wal = &uploaded["end_wal"];
    assert!(
        wals.iter().any(|k| k.ends_with(&format!("/{end_wal}.gz"))),
        "{end_wal} not in {wals:?}"
    );

    // Both tools restore it (the tablespace relocated: the original is in
    // use), to the same files.
    let parent = tempfile::Builder::new()
        .prefix("barman-e2e-cloud-hooks-restore-")
        .tempdir_in("/tmp")
        .unwrap();
    chown_to(parent.path(), SERVER_OS_USER).unwrap();
    let restore = |program: &std::path::Path, name: &str| {
        let dest = parent.path().join(name);
        let ts = parent.path().join(format!("{name}-ts1"));
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", SERVER_OS_USER, "--", "env"])
            .args(&env)
            .arg(program)
            .args(["--endpoint-url", &endpoint, "s3://hooked/cloud", "pg", &id])
            .arg(&dest)
            .arg("--tablespace")
            .arg(format!("ts1:{}", ts.display()))
            .current_dir("/tmp");
        let out = cmd.output().unwrap();
        assert_eq!(status(&out), 0, "{}: {}", program.display(), text(&out));
        dest
    };
    let by_them = restore(
        &barman_cloud_tool("barman-cloud-restore").expect("barman[cloud]"),
        "theirs",
    );
    let by_us = restore(&ours("barman-cloud-restore"), "ours");
    // (The tablespace links point at each restore's own relocation.)
    let tree = |dir: &std::path::Path| {
        let mut files = tree_of(dir);
        for (path, content) in &mut files {
            if path.starts_with("pg_tblspc/") {
                *content = None;
            }
        }
        files
    };
    let (theirs_files, ours_files) = (tree(&by_them), tree(&by_us));
    assert!(ours_files.contains_key("backup_label"));
    assert_eq!(
        theirs_files.keys().collect::<Vec<_>>(),
        ours_files.keys().collect::<Vec<_>>()
    );
    assert!(theirs_files == ours_files, "the two restores differ");

    // PostgreSQL replays the bucket's WALs to the backup's consistent point.
    fs::write(by_us.join("recovery.signal"), "").unwrap();
    let restore_command = format!(
        "{prefix}{} --endpoint-url {endpoint} s3://hooked/cloud pg %f %p",
        ours("barman-cloud-wal-restore").display()
    );
    let mut recovered = DataDirServer::start(
        bench.pg.pg_bin(),
        &by_us,
        &format!(
            "archive_mode = off\nrestore_command = '{restore_command}'\nrecovery_target = 'immediate'\nrecovery_target_action = 'promote'\n"
        ),
    )
    .expect("start the restored copy");
    recovered
        .wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180))
        .unwrap();
    assert_eq!(
        recovered.psql(SNAPSHOT_SQL).unwrap(),
        expected,
        "log:\n{}",
        recovered.log()
    );
    recovered.stop();
}

/// A tool, its environment, extra arguments and barman-cloud's exit status.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<&'a str>, i32);

#[test]
fn hook_misuse_fails_as_barman_clouds_does() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("hooked").unwrap();
    let work = tempfile::tempdir().unwrap();
    let info = work.path().join("backup.info");
    fs::write(&info, "status=DONE\nversion=150000\n").unwrap();
    let dir = work.path().display().to_string();
    let info = info.display().to_string();
    let backup_env = |status: &str, phase: &str| -> Vec<(&'static str, String)> {
        vec![
            ("BARMAN_HOOK", "backup_script".to_owned()),
            ("BARMAN_PHASE", phase.to_owned()),
            ("BARMAN_STATUS", status.to_owned()),
            ("BARMAN_BACKUP_DIR", dir.clone()),
            ("BARMAN_BACKUP_ID", "20261207T101010".to_owned()),
            ("BARMAN_BACKUP_INFO_PATH", info.clone()),
        ]
    };
    let cases: Vec<Case> = vec![
        // A backup that is not DONE stops the hook chain: 63.
        (
            "barman-cloud-backup",
            backup_env("FAILED", "post"),
            vec![],
            63,
        ),
        // Not a post-backup hook.
        ("barman-cloud-backup", backup_env("DONE", "pre"), vec![], 4),
        // No name for a backup Barman took.
        (
            "barman-cloud-backup",
            backup_env("DONE", "post"),
            vec!["-n", "x"],
            4,
        ),
        // Not a pre-archive hook.
        (
            "barman-cloud-wal-archive",
            vec![
                ("BARMAN_HOOK", "archive_script".to_owned()),
                ("BARMAN_PHASE", "post".to_owned()),
                ("BARMAN_FILE", format!("{dir}/000000010000000000000001")),
            ],
            vec![],
            1,
        ),
    ];
    for (name, env, extra, expected) in cases {
        for program in [
            barman_bin(name).unwrap(),
            barman_cloud_tool(name).expect("barman[cloud]"),
        ] {
            let out = std::process::Command::new(&program)
                .envs(S3_ENV)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .args(["--endpoint-url", &moto.endpoint()])
                .args(&extra)
                .args(["s3://hooked/cloud", "pg"])
                .output()
                .unwrap();
            assert_eq!(
                status(&out),
                expected,
                "{} {env:?} {extra:?}: {}",
                program.display(),
                text(&out)
            );
        }
    }
    // Nothing was uploaded.
    assert!(bucket(&moto, "s3://hooked").list("").unwrap().is_empty());
}
