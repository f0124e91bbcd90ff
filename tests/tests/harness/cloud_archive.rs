//! `barman-cloud-wal-archive --parallel N` (a barman-rs option): a backlog
//! of ready segments is archived ahead of PostgreSQL's requests, every
//! segment once and intact, the later calls answered from their markers.

use std::fs;
use std::time::Duration;

use barman_testkit::object_storage::{Azurite, Moto, S3_ENV, barman_cloud_tool, venv_bin};
use barman_testkit::{PgCluster, SERVER_OS_USER, barman_bin, chown_to, stage_binary};

use crate::archiving::wait_archived;
use crate::cloud_wal::{bucket, status, text};

#[test]
fn parallel_archiving_uploads_a_backlog_ahead_every_segment_once_and_intact() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("ahead").unwrap();
    let work = tempfile::Builder::new()
        .prefix("barman-e2e-cloud-ahead-")
        .tempdir_in("/tmp")
        .unwrap();
    barman_testkit::chmod(work.path(), 0o755).unwrap();
    let archive = stage_binary(
        &barman_bin("barman-cloud-wal-archive").unwrap(),
        work.path(),
    )
    .unwrap();
    let logs = work.path().join("logs");
    fs::create_dir(&logs).unwrap();
    chown_to(&logs, SERVER_OS_USER).unwrap();
    // A backlog: archiving fails until the command is switched.
    let pg = PgCluster::builder()
        .archive_command("/bin/false")
        .start()
        .expect("start PostgreSQL 15");
    let copies = work.path().join("copies");
    fs::create_dir(&copies).unwrap();
    let mut names = Vec::new();
    for i in 0..12 {
        pg.psql(&format!(
            "CREATE TABLE IF NOT EXISTS t (x int); INSERT INTO t SELECT generate_series(1, {})",
            1000 + i
        ))
        .unwrap();
        let name = pg.switch_wal().unwrap();
        fs::copy(pg.wal_dir().join(&name), copies.join(&name)).unwrap();
        names.push(name);
    }
    let env: Vec<String> = S3_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let cache = logs.join("cache");
    let log = logs.join("archive.log");
    let command = format!(
        "env {} {} -v --parallel 3 --prefetch-cache-dir {} --endpoint-url {} s3://ahead/pg main %p 2>>{}",
        env.join(" "),
        archive.display(),
        cache.display(),
        moto.endpoint(),
        log.display()
    );
    pg.psql(&format!("ALTER SYSTEM SET archive_command = '{command}'"))
        .unwrap();
    pg.psql("SELECT pg_reload_conf()").unwrap();
    wait_archived(&pg, names.last().unwrap(), Duration::from_secs(120));

    let said = fs::read_to_string(&log).unwrap();
    let ahead = said
        .matches("was archived ahead by an earlier call")
        .count();
    assert!(
        ahead >= names.len() / 2,
        "{ahead} of {} calls answered from markers:\n{said}",
        names.len()
    );
    // Every segment once, intact.
    let store = bucket(&moto, "s3://ahead/pg");
    let keys: Vec<String> = store
        .list("pg/main/wals/")
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    for name in &names {
        let found: Vec<&String> = keys.iter().filter(|k| k.ends_with(name.as_str())).collect();
        assert_eq!(found.len(), 1, "{name}: {keys:?}");
        let mut content = Vec::new();
        store.get(found[0], &mut content).unwrap();
        assert!(
            content == fs::read(copies.join(name)).unwrap(),
            "{name} archived with other bytes"
        );
    }
    // Every marker was consumed by PostgreSQL's later call.
    let left: Vec<_> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "markers left: {left:?}");
    // A bad option value is refused before anything is archived.
    let out = std::process::Command::new(&archive)
        .args(["--parallel", "many", "s3://ahead/pg", "main"])
        .output()
        .unwrap();
    assert_eq!(status(&out), 3, "{}", text(&out));
}

/// The committed blocks of blob `name` in `container` (none for a blob
/// written by one PUT), with the Azure SDK of the test virtualenv.
fn committed_blocks(azurite: &Azurite, container: &str, name: &str) -> Vec<u64> {
    let out = std::process::Command::new(venv_bin("python").unwrap())
        .env("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())
        .arg("-c")
        .arg(format!(
            "import os\nfrom azure.storage.blob import BlobClient\nb = BlobClient.from_connection_string(os.environ['AZURE_STORAGE_CONNECTION_STRING'], '{container}', '{name}')\nprint(' '.join(str(x.size) for x in b.get_block_list('committed')[0]))\n"
        ))
        .output()
        .unwrap();
    assert_eq!(status(&out), 0, "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn azure_upload_options_shape_the_blocks_and_both_tools_restore_them() {
    let azurite = Azurite::start().expect("azurite (scripts/install-test-deps.sh installs it)");
    azurite.create_container("tuned").unwrap();
    let work = tempfile::tempdir().unwrap();
    let wal = work.path().join("000000010000000000000042");
    let content: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11).to_le_bytes()[0])
        .collect();
    fs::write(&wal, &content).unwrap();
    let url = azurite.url("tuned", "pfx");
    let run = |program: &std::path::Path, args: &[&str]| {
        std::process::Command::new(program)
            .env(
                "AZURE_STORAGE_CONNECTION_STRING",
                azurite.connection_string(),
            )
            .args(["--cloud-provider", "azure-blob-storage"])
            .args(args)
            .output()
            .unwrap()
    };
    let ours = barman_bin("barman-cloud-wal-archive").unwrap();
    let blob = "pfx/srv/wals/0000000100000000/000000010000000000000042";
    // Default: one PUT, no blocks.
    let out = run(&ours, &[&url, "srv", wal.to_str().unwrap()]);
    assert_eq!(status(&out), 0, "{}", text(&out));
    assert_eq!(committed_blocks(&azurite, "tuned", blob), Vec::<u64>::new());
    // Barman's options: 1 MiB blocks above 1 MiB, two at a time.
    let out = run(
        &ours,
        &[
            "--max-single-put-size",
            "1MB",
            "--max-block-size",
            "1MB",
            "--max-concurrency",
            "2",
            &url,
            "srv2",
            wal.to_str().unwrap(),
        ],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let blocks = committed_blocks(&azurite, "tuned", &blob.replace("/srv/", "/srv2/"));
    assert_eq!(blocks, vec![1u64 << 20; 16]);
    for restorer in [
        barman_bin("barman-cloud-wal-restore").unwrap(),
        barman_cloud_tool("barman-cloud-wal-restore").expect("barman[cloud]"),
    ] {
        let dest = work.path().join("restored");
        let _ = fs::remove_file(&dest);
        let out = run(
            &restorer,
            &[
                &url,
                "srv2",
                "000000010000000000000042",
                dest.to_str().unwrap(),
            ],
        );
        assert_eq!(status(&out), 0, "{}", text(&out));
        assert!(
            fs::read(&dest).unwrap() == content,
            "{}",
            restorer.display()
        );
    }
    // They are Azure's options: refused with another provider.
    let out = std::process::Command::new(&ours)
        .args([
            "--max-block-size",
            "1MB",
            "s3://b/p",
            "srv",
            wal.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(status(&out), 3, "{}", text(&out));
    assert!(
        text(&out).contains("--max-block-size applies to"),
        "{}",
        text(&out)
    );
}
