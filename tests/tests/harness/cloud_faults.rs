//! Faults of the object store, as Barman's tools meet them: wrong
//! credentials (each tool's exit status compared with real barman-cloud's
//! on the same emulator), and a store that dies in the middle of a backup
//! and comes back (the backup is marked FAILED in its backup.info and no
//! multipart upload is left behind).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barman_testkit::object_storage::{
    AZURITE_ACCOUNT, Azurite, FaultProxy, Moto, S3_ENV, barman_cloud_tool, venv_bin,
};
use barman_testkit::{PgCluster, SERVER_OS_USER, barman_bin, stage_binary};

use crate::cloud_wal::{bucket, status, text};

/// A WAL-like file to archive.
fn segment(dir: &Path) -> String {
    let path = dir.join("000000010000000000000001");
    std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
    path.display().to_string()
}

/// Runs each invocation with our tool and real barman-cloud's, with `env`
/// and the provider's `options` first; both fail, with the same status.
fn same_failures(env: &[(&str, String)], options: &[&str], url: &str, wal: &str, work: &Path) {
    let restored = work.join("restored").display().to_string();
    let dest = work.join("recovery").display().to_string();
    let invocations: Vec<(&str, Vec<&str>)> = vec![
        ("barman-cloud-wal-archive", vec![url, "srv", wal]),
        ("barman-cloud-wal-archive", vec!["-t", url, "srv", wal]),
        (
            "barman-cloud-wal-restore",
            vec![url, "srv", "000000010000000000000001", &restored],
        ),
        ("barman-cloud-check-wal-archive", vec![url, "srv"]),
        ("barman-cloud-backup-list", vec![url, "srv"]),
        ("barman-cloud-backup-list", vec!["-t", url, "srv"]),
        ("barman-cloud-backup-show", vec![url, "srv", "latest"]),
        (
            "barman-cloud-backup-keep",
            vec!["-s", url, "srv", "20201010T101010"],
        ),
        (
            "barman-cloud-backup-delete",
            vec!["-r", "REDUNDANCY 1", url, "srv"],
        ),
        ("barman-cloud-restore", vec![url, "srv", "latest", &dest]),
    ];
    let run = |program: &Path, args: &[&str]| {
        Command::new(program)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(options)
            .args(args)
            .output()
            .unwrap()
    };
    for (name, args) in invocations {
        let theirs = run(&barman_cloud_tool(name).expect("barman[cloud]"), &args);
        let ours = run(&barman_bin(name).unwrap(), &args);
        assert_ne!(status(&ours), 0, "{name} {args:?}: {}", text(&ours));
        assert_eq!(
            status(&ours),
            status(&theirs),
            "{name} {args:?}\nours: {}\ntheirs: {}",
            text(&ours),
            text(&theirs)
        );
        let said = String::from_utf8_lossy(&ours.stderr).to_string();
        assert!(
            said.contains("403") || said.contains("privileges") || said.contains("authenticat"),
            "{name} {args:?}: the refusal is told: {said}"
        );
    }
}

#[test]
fn wrong_credentials_fail_with_barman_clouds_exit_statuses() {
    let work = tempfile::tempdir().unwrap();
    let wal = segment(work.path());
    // S3: moto checking signatures, and keys its IAM does not know.
    let moto = Moto::start_checking_credentials()
        .expect("moto_server (scripts/install-test-deps.sh installs it)");
    let env: Vec<(&str, String)> = S3_ENV.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    same_failures(
        &env,
        &["--endpoint-url", &moto.endpoint()],
        "s3://bucket/pfx",
        &wal,
        work.path(),
    );
    // Azure: the right account, a wrong key.
    let azurite = Azurite::start().expect("azurite (scripts/install-test-deps.sh installs it)");
    azurite.create_container("wrongkey").unwrap();
    let wrong = azurite
        .connection_string()
        .replacen("AccountKey=E", "AccountKey=X", 1);
    assert!(wrong.contains(AZURITE_ACCOUNT) && wrong != azurite.connection_string());
    same_failures(
        &[("AZURE_STORAGE_CONNECTION_STRING", wrong)],
        &["--cloud-provider", "azure-blob-storage"],
        &azurite.url("wrongkey", "pfx"),
        &wal,
        work.path(),
    );
}

/// Our barman-cloud-backup staged where the server's OS user can run it,
/// and a pgbench cluster (scale 5: an uncompressed PGDATA tar of several
/// parts, long enough to be cut in the middle).
fn backup_under_test() -> (tempfile::TempDir, std::path::PathBuf, PgCluster) {
    let staged = tempfile::Builder::new()
        .prefix("barman-e2e-cloud-faults-")
        .tempdir_in("/tmp")
        .unwrap();
    barman_testkit::chmod(staged.path(), 0o755).unwrap();
    let backup = stage_binary(&barman_bin("barman-cloud-backup").unwrap(), staged.path()).unwrap();
    let pg = PgCluster::builder()
        .archive_command("/bin/true")
        .start()
        .expect("start PostgreSQL 15");
    pg.pgbench_init(5).unwrap();
    (staged, backup, pg)
}

#[test]
fn a_store_dying_mid_backup_leaves_a_failed_backup_and_no_multipart_upload() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("dying").unwrap();
    let proxy = FaultProxy::start(moto.port()).unwrap();
    let (_staged, backup, pg) = backup_under_test();
    let port = pg.port().to_string();
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", SERVER_OS_USER, "--", "env"]);
    for (k, v) in S3_ENV {
        cmd.arg(format!("{k}={v}"));
    }
    // Uncompressed and throttled: several 5 MiB parts, over seconds.
    let child = cmd
        .arg(&backup)
        .args(["--endpoint-url", &proxy.endpoint()])
        .args([
            "--max-bandwidth",
            "8MB",
            "-J",
            "2",
            "--immediate-checkpoint",
        ])
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
        .args(["s3://dying/pg", "main"])
        .current_dir("/tmp")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while moto.multipart_uploads("dying").unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no multipart upload started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !moto.multipart_uploads("dying").unwrap().is_empty(),
        "the upload ended before the cut"
    );
    // The endpoint dies for a few seconds, then comes back.
    proxy.cut();
    std::thread::sleep(Duration::from_secs(4));
    proxy.restore();
    let out = child.wait_with_output().unwrap();
    assert_eq!(status(&out), 1, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Backup failed uploading data"),
        "{}",
        text(&out)
    );
    // The bucket on moto itself (not through the proxy).
    let bucket = bucket(&moto, "s3://dying/pg");
    let infos: Vec<String> = bucket
        .list("pg/main/base/")
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.ends_with("/backup.info"))
        .collect();
    assert_eq!(infos.len(), 1, "{infos:?}");
    let mut info = Vec::new();
    bucket.get(&infos[0], &mut info).unwrap();
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("status=FAILED"), "{info}");
    assert!(info.contains("error=failure uploading data"), "{info}");
    assert_eq!(
        moto.multipart_uploads("dying").unwrap(),
        Vec::<String>::new(),
        "multipart uploads left behind"
    );
    // Our listing and barman-cloud's show it FAILED.
    for list in [
        barman_bin("barman-cloud-backup-list").unwrap(),
        barman_cloud_tool("barman-cloud-backup-list").expect("barman[cloud]"),
    ] {
        let out = Command::new(&list)
            .envs(S3_ENV)
            .args(["--endpoint-url", &moto.endpoint(), "s3://dying/pg", "main"])
            .output()
            .unwrap();
        assert_eq!(status(&out), 0, "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("FAILED"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn a_named_aws_profile_gives_the_keys_as_with_barman_cloud() {
    let (moto, id, secret) = Moto::start_with_one_user("profiled")
        .expect("moto_server (scripts/install-test-deps.sh installs it)");
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        format!("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[backups]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[profile backups]\nregion = us-east-1\n[profile assumed]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = backups\n",
    )
    .unwrap();
    let wal = segment(home.path());
    let url = "s3://profiled/pfx";
    // Wrong keys in the environment: the named profile's replace them.
    let run = |program: &Path, args: &[&str]| {
        Command::new(program)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home.path())
            .env("AWS_ACCESS_KEY_ID", "wrong")
            .env("AWS_SECRET_ACCESS_KEY", "wrong")
            .args(["--endpoint-url", &moto.endpoint()])
            .args(args)
            .output()
            .unwrap()
    };
    for tool in [
        barman_bin("barman-cloud-wal-archive").unwrap(),
        barman_cloud_tool("barman-cloud-wal-archive").expect("barman[cloud]"),
    ] {
        // The environment's keys are refused by this moto...
        let out = run(&tool, &[url, "srv", &wal]);
        assert_eq!(status(&out), 4, "{}", text(&out));
        // ... the profile's are taken, and an unknown profile is an error.
        let out = run(&tool, &["-P", "backups", url, "srv", &wal]);
        assert_eq!(status(&out), 0, "{}", text(&out));
        let out = run(&tool, &["--profile", "nosuch", url, "srv", &wal]);
        assert_eq!(status(&out), 4, "{}", text(&out));
        assert!(
            text(&out).contains("The config profile (nosuch) could not be found"),
            "{}",
            text(&out)
        );
    }
    // What barman-rs cannot do with a profile is refused, named.
    let ours = barman_bin("barman-cloud-backup-list").unwrap();
    let out = run(&ours, &["-P", "assumed", url, "srv"]);
    assert_eq!(status(&out), 4, "{}", text(&out));
    assert!(text(&out).contains("role_arn"), "{}", text(&out));
    let out = run(&ours, &["-P", "backups", url, "srv"]);
    assert_eq!(status(&out), 0, "{}", text(&out));
}

/// Runs Python `code` with the Azure SDK of the test virtualenv against
/// `azurite` (`svc` is the service client); its standard output.
fn azure_py(azurite: &Azurite, code: &str) -> String {
    let out = Command::new(venv_bin("python").unwrap())
        .env(
            "AZURE_STORAGE_CONNECTION_STRING",
            azurite.connection_string(),
        )
        .arg("-c")
        .arg(format!(
            "import os\nfrom azure.storage.blob import BlobServiceClient\nsvc = BlobServiceClient.from_connection_string(os.environ['AZURE_STORAGE_CONNECTION_STRING'])\n{code}\n"
        ))
        .output()
        .unwrap();
    assert_eq!(status(&out), 0, "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn azurite_killed_mid_backup_and_restarted_holds_a_failed_backup_and_no_uncommitted_blocks() {
    let mut azurite = Azurite::start().expect("azurite (scripts/install-test-deps.sh installs it)");
    azurite.create_container("dying").unwrap();
    let (_staged, backup, pg) = backup_under_test();
    let port = pg.port().to_string();
    let url = azurite.url("dying", "pg");
    // Every blob, committed or not: `name committed?`.
    let blobs = |azurite: &Azurite| {
        azure_py(
            azurite,
            "c = svc.get_container_client('dying')\nfor b in c.list_blobs(include=['uncommittedblobs']):\n    print(b.name)",
        )
    };
    let child = Command::new("runuser")
        .args(["-u", SERVER_OS_USER, "--", "env"])
        .arg(format!(
            "AZURE_STORAGE_CONNECTION_STRING={}",
            azurite.connection_string()
        ))
        .arg(&backup)
        .args(["--cloud-provider", "azure-blob-storage"])
        .args(["--max-bandwidth", "8MB", "--immediate-checkpoint"])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            &url,
            "main",
        ])
        .current_dir("/tmp")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The PGDATA tar's blocks are going up (it is committed at its end).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !blobs(&azurite).lines().any(|b| b.ends_with("/data.tar")) {
        assert!(Instant::now() < deadline, "the PGDATA tar never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    // Azurite dies (SIGKILL) and comes back over its directory.
    azurite.kill();
    std::thread::sleep(Duration::from_secs(3));
    azurite.restart().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(status(&out), 1, "{}", text(&out));
    let left = blobs(&azurite);
    assert!(
        !left.lines().any(|b| b.contains(".tar")),
        "a tar (committed or its uncommitted blocks) was left: {left}"
    );
    let info_names: Vec<&str> = left
        .lines()
        .filter(|b| b.ends_with("/backup.info"))
        .collect();
    assert_eq!(info_names.len(), 1, "{left}");
    let info = azure_py(
        &azurite,
        &format!(
            "print(svc.get_blob_client('dying', '{}').download_blob().readall().decode())",
            info_names[0]
        ),
    );
    assert!(info.contains("status=FAILED"), "{info}");
}
