//! The barman-cloud WAL tools against S3 (moto on loopback), as a user
//! runs them: PostgreSQL archives through `barman-cloud-wal-archive` under
//! pgbench load, a copy taken with `pg_basebackup` recovers to a restore
//! point through `barman-cloud-wal-restore` (with prefetch), and PostgreSQL
//! on the result holds exactly the rows of that point. Then the same bucket
//! format with real Barman's barman-cloud tools, both ways, and the exit
//! statuses Barman's tools use.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use barman_cloud::layout::Layout;
use barman_cloud::store::{Bucket, StoreOptions};
use barman_cloud::url::{CloudUrl, Provider};
use barman_testkit::object_storage::{Azurite, GcsEmulator, Moto, S3_ENV, barman_cloud_tool};
use barman_testkit::{
    DataDirServer, PgCluster, SERVER_OS_USER, barman_bin, chown_to, run, stage_binary,
};

use crate::archiving::wait_archived;

/// Our three tools, staged where `postgres` can run them.
struct Tools {
    dir: tempfile::TempDir,
}

impl Tools {
    fn stage() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("barman-e2e-cloud-")
            .tempdir_in("/tmp")
            .unwrap();
        barman_testkit::chmod(dir.path(), 0o755).unwrap();
        for b in [
            "barman-cloud-wal-archive",
            "barman-cloud-wal-restore",
            "barman-cloud-check-wal-archive",
            "barman-cloud-restore",
        ] {
            stage_binary(
                &barman_bin(b).expect("build the barman binaries"),
                dir.path(),
            )
            .unwrap();
        }
        Self { dir }
    }

    fn path(&self, tool: &str) -> PathBuf {
        self.dir.path().join(tool)
    }

    /// `env AWS_...=... TOOL --endpoint-url EP`, for a PostgreSQL `*_command`.
    fn command_prefix(&self, tool: &str, moto: &Moto) -> String {
        let env: Vec<String> = S3_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "env {} {} --endpoint-url {}",
            env.join(" "),
            self.path(tool).display(),
            moto.endpoint()
        )
    }
}

/// Runs `program args` with the emulator's credentials.
fn tool(program: &Path, moto: &Moto, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.envs(S3_ENV)
        .arg("--endpoint-url")
        .arg(moto.endpoint())
        .args(args);
    cmd.output().expect("run the tool")
}

pub(crate) fn status(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The bucket, opened with the library (as an embedder does, with
/// explicit credentials), to look at the objects.
pub(crate) fn bucket(moto: &Moto, url: &str) -> Bucket {
    let url = CloudUrl::parse(url, Provider::AwsS3).unwrap();
    let options = StoreOptions {
        endpoint_url: Some(moto.endpoint()),
        s3_access_key: Some((S3_ENV[0].1.to_owned(), S3_ENV[1].1.to_owned())),
        ..StoreOptions::default()
    };
    Bucket::open(&url, &options).unwrap()
}

#[test]
fn pitr_from_a_bucket_archived_under_load_recovers_the_exact_rows() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("pgarchive").unwrap();
    let tools = Tools::stage();
    let archive = format!(
        "{} --zstd s3://pgarchive/cluster main %p",
        tools.command_prefix("barman-cloud-wal-archive", &moto)
    );
    let pg = PgCluster::builder()
        .archive_command(&archive)
        .start()
        .expect("start PostgreSQL 15");
    pg.pgbench_init(2).unwrap();

    // The base copy, without WAL: everything must come from the bucket.
    let parent = tempfile::Builder::new()
        .prefix("barman-e2e-cloud-pitr-")
        .tempdir_in("/tmp")
        .unwrap();
    chown_to(parent.path(), SERVER_OS_USER).unwrap();
    let data = parent.path().join("data");
    pg.base_copy(&data).expect("pg_basebackup");

    // Load, then the restore point, then changes that must not be recovered.
    pg.pgbench_run(2, 6).unwrap();
    pg.psql("CREATE TABLE marker AS SELECT g FROM generate_series(1, 4321) g")
        .unwrap();
    let expected = pg
        .psql("SELECT sum(abalance) || '/' || (SELECT count(*) FROM pgbench_history) || '/' || (SELECT count(*) FROM marker) FROM pgbench_accounts")
        .unwrap();
    pg.psql("SELECT pg_create_restore_point('before_the_damage')")
        .unwrap();
    pg.psql(
        "DELETE FROM marker WHERE g > 100; UPDATE pgbench_accounts SET abalance = abalance + 1",
    )
    .unwrap();
    let last = pg.switch_wal().unwrap();
    wait_archived(&pg, &last, Duration::from_secs(300));
    let failed = pg
        .psql("SELECT failed_count FROM pg_stat_archiver")
        .unwrap();
    assert_eq!(
        failed,
        "0",
        "archive_command failures; log:\n{}",
        fs::read_to_string(pg.log_path()).unwrap_or_default()
    );

    // The objects: zstd-compressed segments under their hash directories.
    let objects = bucket(&moto, "s3://pgarchive/cluster")
        .list("cluster/main/wals/")
        .unwrap();
    assert!(objects.len() >= 3, "{objects:?}");
    for o in &objects {
        let (name, ext) =
            Layout::parse_wal_key(&o.key).unwrap_or_else(|| panic!("not a WAL key: {}", o.key));
        assert_eq!(ext, Some("zst"), "{}", o.key);
        let dir = name.archive_subdir().unwrap();
        assert_eq!(o.key, format!("cluster/main/wals/{dir}/{name}.zst"));
        let zstd_magic = {
            let mut bytes = Vec::new();
            bucket(&moto, "s3://pgarchive/cluster")
                .get(&o.key, &mut bytes)
                .unwrap();
            bytes[..4].to_vec()
        };
        assert_eq!(zstd_magic, [0x28, 0xb5, 0x2f, 0xfd], "{}", o.key);
    }

    // check-wal-archive: this archive is not empty.
    let check = tool(
        &tools.path("barman-cloud-check-wal-archive"),
        &moto,
        &["s3://pgarchive/cluster", "main"],
    );
    assert_eq!(status(&check), 1, "{}", text(&check));
    assert!(
        text(&check).contains("Expected empty archive"),
        "{}",
        text(&check)
    );
    let check = tool(
        &tools.path("barman-cloud-check-wal-archive"),
        &moto,
        &["--timeline", "2", "s3://pgarchive/cluster", "main"],
    );
    assert_eq!(status(&check), 0, "{}", text(&check));

    // Recovery to the restore point, WALs from the bucket, 3 at a time.
    let spool = parent.path().join("spool");
    let restore = format!(
        "{} -p 3 --spool-dir {} s3://pgarchive/cluster main %f %p",
        tools.command_prefix("barman-cloud-wal-restore", &moto),
        spool.display()
    );
    fs::write(data.join("recovery.signal"), "").unwrap();
    let t0 = Instant::now();
    let mut recovered = DataDirServer::start(
        pg.pg_bin(),
        &data,
        &format!(
            "archive_mode = off\nrestore_command = '{restore}'\nrecovery_target_name = 'before_the_damage'\nrecovery_target_action = 'promote'\n"
        ),
    )
    .expect("start the recovered copy");
    recovered
        .wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180))
        .unwrap();
    eprintln!("recovery from the bucket: {:?}", t0.elapsed());
    let got = recovered
        .psql("SELECT sum(abalance) || '/' || (SELECT count(*) FROM pgbench_history) || '/' || (SELECT count(*) FROM marker) FROM pgbench_accounts")
        .unwrap();
    assert_eq!(
        got,
        expected,
        "rows at the restore point; log:\n{}",
        recovered.log()
    );
    let log = recovered.log();
    assert!(
        log.contains("recovery stopping at restore point \"before_the_damage\""),
        "{log}"
    );
    recovered.stop();
}

/// Real WAL segments to carry: copies of the files a cluster switched.
fn real_segments(pg: &PgCluster, count: usize, into: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    while files.len() < count {
        pg.psql(
            "CREATE TABLE IF NOT EXISTS t (x int); INSERT INTO t SELECT generate_series(1, 2000)",
        )
        .unwrap();
        let seg = pg.switch_wal().unwrap();
        let src = pg.wal_dir().join(&seg);
        let dst = into.join(&seg);
        if !dst.exists() {
            fs::copy(&src, &dst).unwrap();
            files.push(dst);
        }
    }
    files
}

#[test]
fn our_tools_and_barman_cloud_read_each_others_wal_archives() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("interop").unwrap();
    let ours_archive = barman_bin("barman-cloud-wal-archive").unwrap();
    let ours_restore = barman_bin("barman-cloud-wal-restore").unwrap();
    let theirs_archive = barman_cloud_tool("barman-cloud-wal-archive").expect("barman[cloud]");
    let theirs_restore = barman_cloud_tool("barman-cloud-wal-restore").expect("barman[cloud]");
    let pg = PgCluster::builder()
        .archive_command("/bin/true")
        .start()
        .expect("start PostgreSQL 15");
    let work = tempfile::tempdir().unwrap();
    let segments = real_segments(&pg, 12, work.path());
    let codecs = ["", "-z", "-j", "--xz", "--zstd", "--lz4"];
    let url = "s3://interop/pfx";
    // Barman archives, we restore; we archive, Barman restores.
    for (i, segment) in segments.iter().enumerate() {
        let codec = codecs[i % codecs.len()];
        let (archiver, restorer, who) = if i < 6 {
            (&theirs_archive, &ours_restore, "barman-cloud → barman-rs")
        } else {
            (&ours_archive, &theirs_restore, "barman-rs → barman-cloud")
        };
        let mut args: Vec<&str> = Vec::new();
        if !codec.is_empty() {
            args.push(codec);
        }
        let seg = segment.to_str().unwrap();
        args.extend([url, "srv", seg]);
        let out = tool(archiver, &moto, &args);
        assert_eq!(status(&out), 0, "{who} {codec}: archive\n{}", text(&out));
        let name = segment.file_name().unwrap().to_str().unwrap();
        let dest = work.path().join(format!("restored-{name}"));
        let out = tool(restorer, &moto, &[url, "srv", name, dest.to_str().unwrap()]);
        assert_eq!(status(&out), 0, "{who} {codec}: restore\n{}", text(&out));
        assert!(
            fs::read(&dest).unwrap() == fs::read(segment).unwrap(),
            "{who} {codec}: {name} restored with different content"
        );
    }
    // Both wrote the same keys for the same names and codecs.
    let keys: Vec<String> = bucket(&moto, url)
        .list("pfx/srv/wals/")
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys.len(), segments.len(), "{keys:?}");
    for (i, segment) in segments.iter().enumerate() {
        let name = segment.file_name().unwrap().to_str().unwrap();
        let ext = ["", ".gz", ".bz2", ".xz", ".zst", ".lz4"][i % codecs.len()];
        let key = format!("pfx/srv/wals/{}/{name}{ext}", &name[..16]);
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    // Prefetch from an archive Barman wrote: 3 files per call into the spool.
    let spool = work.path().join("spool");
    let first = segments[0].file_name().unwrap().to_str().unwrap();
    let dest = work.path().join("prefetch-first");
    let out = tool(
        &ours_restore,
        &moto,
        &[
            "-p",
            "3",
            "--spool-dir",
            spool.to_str().unwrap(),
            url,
            "srv",
            first,
            dest.to_str().unwrap(),
        ],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let spooled: Vec<String> = fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(spooled.len(), 2, "{spooled:?}");
    for s in &segments[1..3] {
        let name = s.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            fs::read(spool.join(name)).unwrap(),
            fs::read(s).unwrap(),
            "{name} in the spool"
        );
    }
    // The next call takes the spooled file without the cloud (a dead endpoint).
    let second = segments[1].file_name().unwrap().to_str().unwrap();
    let dest = work.path().join("from-spool");
    let out = Command::new(&ours_restore)
        .envs(S3_ENV)
        .args([
            "--endpoint-url",
            "http://127.0.0.1:9",
            "--spool-dir",
            spool.to_str().unwrap(),
            url,
            "srv",
            second,
            dest.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(status(&out), 0, "{}", text(&out));
    assert_eq!(fs::read(&dest).unwrap(), fs::read(&segments[1]).unwrap());
    assert!(!spool.join(second).exists());
}

#[test]
fn exit_statuses_follow_barman_cloud() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("codes").unwrap();
    let archive = barman_bin("barman-cloud-wal-archive").unwrap();
    let restore = barman_bin("barman-cloud-wal-restore").unwrap();
    let check = barman_bin("barman-cloud-check-wal-archive").unwrap();
    let work = tempfile::tempdir().unwrap();
    let wal = work.path().join("000000010000000000000001");
    fs::write(&wal, vec![7u8; 1 << 20]).unwrap();
    let dest = work.path().join("dest");
    let d = dest.to_str().unwrap();

    // 0: the bucket is there; 1: it is not (-t).
    for program in [&archive, &check] {
        let out = tool(program, &moto, &["-t", "s3://codes/p", "srv"]);
        assert_eq!(status(&out), 0, "{}", text(&out));
    }
    let out = tool(&archive, &moto, &["-t", "s3://missing/p", "srv"]);
    assert_eq!(status(&out), 1, "{}", text(&out));
    // An empty archive passes the check.
    let out = tool(&check, &moto, &["s3://codes/p", "srv"]);
    assert_eq!(status(&out), 0, "{}", text(&out));
    // 1: the WAL is not in the archive, said in Barman's words.
    let out = tool(
        &restore,
        &moto,
        &["s3://codes/p", "srv", "000000010000000000000009", d],
    );
    assert_eq!(status(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("WAL file 000000010000000000000009 for server srv does not exist"),
        "{}",
        text(&out)
    );
    assert!(!dest.exists());
    // 3: command-line errors (an unknown option, a bad WAL name, a bad
    // tag, an option barman-rs does not implement yet).
    let bad_name = work.path().join("notawal");
    fs::write(&bad_name, b"x").unwrap();
    for (program, args) in [
        (
            &archive,
            vec![
                "--no-such-option",
                "s3://codes/p",
                "srv",
                wal.to_str().unwrap(),
            ],
        ),
        (
            &archive,
            vec!["s3://codes/p", "srv", bad_name.to_str().unwrap()],
        ),
        (
            &archive,
            vec![
                "s3://codes/p",
                "srv",
                wal.to_str().unwrap(),
                "--tags",
                "aws:x,1",
            ],
        ),
        (&restore, vec!["s3://codes/p", "srv", "garbage", d]),
        (&archive, vec!["gs://codes/p", "srv", wal.to_str().unwrap()]),
    ] {
        let out = tool(program, &moto, &args);
        assert_eq!(status(&out), 3, "{args:?}: {}", text(&out));
    }
    // An option barman-rs does not implement is refused (3), named.
    let out = tool(
        &archive,
        &moto,
        &[
            "--azure-credential",
            "azure-cli",
            "s3://codes/p",
            "srv",
            wal.to_str().unwrap(),
        ],
    );
    assert_eq!(status(&out), 3, "{}", text(&out));
    assert!(text(&out).contains("--azure-credential"), "{}", text(&out));
    // 4: archiving into a missing bucket.
    let out = tool(
        &archive,
        &moto,
        &["s3://missing/p", "srv", wal.to_str().unwrap()],
    );
    assert_eq!(status(&out), 4, "{}", text(&out));
    // 2: restoring from an endpoint that does not answer, within seconds.
    let t0 = Instant::now();
    let out = Command::new(&restore)
        .envs(S3_ENV)
        .args([
            "--endpoint-url",
            "http://127.0.0.1:9",
            "s3://codes/p",
            "srv",
            "000000010000000000000001",
            d,
        ])
        .output()
        .unwrap();
    assert_eq!(status(&out), 2, "{}", text(&out));
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    // --help and --version: 0 (there is no -h: barman-cloud-backup uses it for the host).
    for flag in ["--help", "--version"] {
        let out = Command::new(&archive).arg(flag).output().unwrap();
        assert_eq!(status(&out), 0, "{flag}: {}", text(&out));
    }
    // Archived, then restored byte for byte; the archive is no longer empty.
    let out = tool(
        &archive,
        &moto,
        &[
            "--lz4",
            "--tag",
            "env,test",
            "s3://codes/p",
            "srv",
            wal.to_str().unwrap(),
        ],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let out = tool(
        &restore,
        &moto,
        &["s3://codes/p", "srv", "000000010000000000000001", d],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    assert_eq!(fs::read(&dest).unwrap(), fs::read(&wal).unwrap());
    let out = tool(&check, &moto, &["s3://codes/p", "srv"]);
    assert_eq!(status(&out), 1, "{}", text(&out));
}

#[test]
fn a_segment_larger_than_one_put_goes_as_a_multipart_upload_and_restores_intact() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("big").unwrap();
    let archive = barman_bin("barman-cloud-wal-archive").unwrap();
    let restore = barman_bin("barman-cloud-wal-restore").unwrap();
    let theirs_restore = barman_cloud_tool("barman-cloud-wal-restore").expect("barman[cloud]");
    let work = tempfile::tempdir().unwrap();
    // A 64 MiB segment (initdb --wal-segsize=64), with varied content.
    let wal = work.path().join("000000010000000000000003");
    let content: Vec<u8> = (0..64u32 << 20)
        .map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect();
    fs::write(&wal, &content).unwrap();
    for (codec, ext) in [("", ""), ("--gzip", ".gz")] {
        let mut args = vec!["s3://big/p", "srv", wal.to_str().unwrap()];
        if !codec.is_empty() {
            args.insert(0, codec);
        }
        let out = tool(&archive, &moto, &args);
        assert_eq!(status(&out), 0, "{codec}: {}", text(&out));
        let listed = bucket(&moto, "s3://big/p").list("p/srv/wals/").unwrap();
        let key = format!("p/srv/wals/0000000100000000/000000010000000000000003{ext}");
        let object = listed
            .iter()
            .find(|o| o.key == key)
            .unwrap_or_else(|| panic!("{key} in {listed:?}"));
        if codec.is_empty() {
            assert_eq!(object.size, 64 << 20);
        }
        for (restorer, who) in [(&restore, "barman-rs"), (&theirs_restore, "barman-cloud")] {
            let dest = work.path().join(format!("dest-{who}{ext}"));
            let out = tool(
                restorer,
                &moto,
                &[
                    "s3://big/p",
                    "srv",
                    "000000010000000000000003",
                    dest.to_str().unwrap(),
                ],
            );
            assert_eq!(status(&out), 0, "{who} {codec}: {}", text(&out));
            assert!(
                fs::read(&dest).unwrap() == content,
                "{who} {codec}: restored content differs"
            );
        }
        bucket(&moto, "s3://big/p").delete(&[key]).unwrap();
    }
}

/// `store`'s bucket `pgwal` (which exists; `nosuch` does not) holds the
/// WALs our tools and real barman-cloud archive, a codec each, and each
/// side restores the other's intact; the probes and a missing WAL get
/// Barman's statuses. Returns the staged tools, the cluster and a work
/// directory the server's OS user owns.
fn wals_both_ways(store: &Store) -> (Tools, PgCluster, tempfile::TempDir) {
    let tools = Tools::stage();
    let work = tempfile::Builder::new()
        .prefix("barman-e2e-cloud-wals-")
        .tempdir_in("/tmp")
        .unwrap();
    chown_to(work.path(), SERVER_OS_USER).unwrap();
    let theirs = |name: &str| barman_cloud_tool(name).expect("barman[cloud]");
    let pg = PgCluster::builder()
        .archive_command("/bin/true")
        .start()
        .expect("start PostgreSQL 15");
    let url = store.url("pgwal", "pfx");
    let ours_archive = tools.path("barman-cloud-wal-archive");
    let out = store.run_as_server_user(&ours_archive, &["-t", &url, "srv"]);
    assert_eq!(status(&out), 0, "{}", text(&out));
    let nosuch = store.url("nosuch", "pfx");
    let out = store.run_as_server_user(&ours_archive, &["-t", &nosuch, "srv"]);
    assert_eq!(status(&out), 1, "{}", text(&out));
    let segments = real_segments(&pg, 4, work.path());
    for (i, segment) in segments.iter().enumerate() {
        let (archiver, restorer, codec) = if i % 2 == 0 {
            (
                ours_archive.clone(),
                theirs("barman-cloud-wal-restore"),
                "--zstd",
            )
        } else {
            (
                theirs("barman-cloud-wal-archive"),
                tools.path("barman-cloud-wal-restore"),
                "--gzip",
            )
        };
        chown_to(segment, SERVER_OS_USER).unwrap();
        let seg = segment.to_str().unwrap();
        let out = store.run_as_server_user(&archiver, &[codec, &url, "srv", seg]);
        assert_eq!(status(&out), 0, "{codec}: archive\n{}", text(&out));
        let name = segment.file_name().unwrap().to_str().unwrap();
        let dest = work.path().join(format!("restored-{name}"));
        let out = store.run_as_server_user(&restorer, &[&url, "srv", name, dest.to_str().unwrap()]);
        assert_eq!(status(&out), 0, "{codec}: restore\n{}", text(&out));
        assert!(
            fs::read(&dest).unwrap() == fs::read(segment).unwrap(),
            "{codec}: {name} restored with different content"
        );
    }
    let missing = work.path().join("missing");
    let out = store.run_as_server_user(
        &tools.path("barman-cloud-wal-restore"),
        &[
            &url,
            "srv",
            "0000000100000000000000FF",
            missing.to_str().unwrap(),
        ],
    );
    assert_eq!(status(&out), 1, "{}", text(&out));
    (tools, pg, work)
}

#[test]
fn azure_blob_storage_archives_interoperate_with_barman_cloud() {
    let azurite = Azurite::start().expect("azurite (scripts/install-test-deps.sh installs it)");
    azurite.create_container("pgwal").unwrap();
    wals_both_ways(&Store::Azure(azurite));
}

/// Every entry under `dir`: its path, and its content (files) or target
/// (symbolic links) or nothing (directories).
pub(crate) fn tree_of(dir: &Path) -> std::collections::BTreeMap<String, Option<Vec<u8>>> {
    let mut found = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let content = if meta.is_symlink() {
                Some(
                    fs::read_link(&path)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else if meta.is_dir() {
                pending.push(path);
                None
            } else {
                Some(fs::read(&path).unwrap())
            };
            found.insert(rel, content);
        }
    }
    found
}

#[test]
fn google_cloud_storage_buckets_interoperate_with_barman_cloud() {
    let store = Store::Gcs(
        GcsEmulator::start("pgwal")
            .expect("gcp-storage-emulator (scripts/install-test-deps.sh installs it)"),
    );
    let (tools, pg, work) = wals_both_ways(&store);
    let ours = |name: &str| stage_binary(&barman_bin(name).unwrap(), tools.dir.path()).unwrap();
    let theirs = |name: &str| barman_cloud_tool(name).expect("barman[cloud]");
    let url = store.url("pgwal", "pfx");
    let out = store.run_as_server_user(
        &ours("barman-cloud-backup-list"),
        &[&store.url("nosuch", "pfx"), "srv"],
    );
    assert_eq!(status(&out), 4, "{}", text(&out));
    // An object larger than one request goes as a resumable upload, in
    // chunks that are not a whole number of parts: intact for both.
    let big = work.path().join("000000010000000000000077");
    let content: Vec<u8> = (0..(40u32 << 20) + 100_001)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    fs::write(&big, &content).unwrap();
    chown_to(&big, SERVER_OS_USER).unwrap();
    let out = store.run_as_server_user(
        &ours("barman-cloud-wal-archive"),
        &[&url, "srv", big.to_str().unwrap()],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    for restorer in [
        theirs("barman-cloud-wal-restore"),
        ours("barman-cloud-wal-restore"),
    ] {
        let dest = work.path().join("big-restored");
        let _ = fs::remove_file(&dest);
        let out = store.run_as_server_user(
            &restorer,
            &[
                &url,
                "srv",
                "000000010000000000000077",
                dest.to_str().unwrap(),
            ],
        );
        assert_eq!(status(&out), 0, "{}", text(&out));
        assert!(
            fs::read(&dest).unwrap() == content,
            "{} restored other bytes",
            restorer.display()
        );
    }

    // Our backup, in parts: listed by barman-cloud, restored by it and by
    // us to the same files.
    let port = pg.port().to_string();
    let out = store.run_as_server_user(
        &ours("barman-cloud-backup"),
        &[
            "--gzip",
            "-S",
            "2MB",
            "-n",
            "on-gcs",
            "--immediate-checkpoint",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            &url,
            "srv",
        ],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let out = store.run_as_server_user(
        &theirs("barman-cloud-backup-list"),
        &["--format", "json", &url, "srv"],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let backups = listed["backups_list"].as_array().unwrap();
    assert_eq!(backups.len(), 1, "{listed}");
    assert_eq!(backups[0]["backup_name"], "on-gcs", "{listed}");
    assert_eq!(backups[0]["status"], "DONE", "{listed}");
    let by_them = work.path().join("by-barman-cloud");
    let out = store.run_as_server_user(
        &theirs("barman-cloud-restore"),
        &[&url, "srv", "on-gcs", by_them.to_str().unwrap()],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let by_us = work.path().join("by-us");
    let out = store.run_as_server_user(
        &ours("barman-cloud-restore"),
        &[&url, "srv", "on-gcs", by_us.to_str().unwrap()],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let (theirs_tree, ours_tree) = (tree_of(&by_them), tree_of(&by_us));
    assert!(ours_tree.contains_key("base") && ours_tree.contains_key("backup_label"));
    assert_eq!(
        theirs_tree.keys().collect::<Vec<_>>(),
        ours_tree.keys().collect::<Vec<_>>()
    );
    for (path, content) in &ours_tree {
        assert!(
            theirs_tree[path] == *content,
            "{path} differs between the two restores"
        );
    }
}

/// Runs real barman-cloud-backup as the server's OS user (it reads PGDATA).
pub(crate) fn barman_cloud_backup(moto: &Moto, pg: &PgCluster, args: &[&str]) -> Output {
    let tool = barman_cloud_tool("barman-cloud-backup").expect("barman[cloud]");
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", SERVER_OS_USER, "--", "env"]);
    for (k, v) in S3_ENV {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg(tool)
        .args(["--endpoint-url", &moto.endpoint()])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port().to_string(),
            "-U",
            "postgres",
        ])
        .args(args)
        .current_dir("/tmp");
    cmd.output().expect("run barman-cloud-backup")
}

#[test]
fn backups_taken_by_barman_cloud_are_listed_kept_and_restored_by_our_tools() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("backups").unwrap();
    let tools = Tools::stage();
    let archive = format!(
        "{} --gzip s3://backups/pg main %p",
        tools.command_prefix("barman-cloud-wal-archive", &moto)
    );
    let pg = PgCluster::builder()
        .archive_command(&archive)
        .start()
        .expect("start PostgreSQL 15");
    let ts = pg.server_owned_dir("ts1").unwrap();
    pg.psql(&format!(
        "CREATE TABLESPACE ts1 LOCATION '{}'",
        ts.display()
    ))
    .unwrap();
    pg.psql("CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g FROM generate_series(1, 20000) g")
        .unwrap();
    pg.pgbench_init(2).unwrap();

    // Two backups by real Barman: one split into 1 MB gzip parts, named.
    let out = barman_cloud_backup(
        &moto,
        &pg,
        &[
            "-z",
            "-S",
            "1MB",
            "--immediate-checkpoint",
            "-n",
            "nightly-one",
            "s3://backups/pg",
            "main",
        ],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    pg.pgbench_run(2, 3).unwrap();
    std::thread::sleep(Duration::from_secs(1)); // distinct backup ids (seconds)
    let out = barman_cloud_backup(
        &moto,
        &pg,
        &["--immediate-checkpoint", "s3://backups/pg", "main"],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));

    // The listings: ours prints Barman's bytes (console), the same JSON.
    let ours_list = barman_bin("barman-cloud-backup-list").unwrap();
    let theirs_list = barman_cloud_tool("barman-cloud-backup-list").expect("barman[cloud]");
    let ours = tool(&ours_list, &moto, &["s3://backups/pg", "main"]);
    let theirs = tool(&theirs_list, &moto, &["s3://backups/pg", "main"]);
    assert_eq!(status(&ours), 0, "{}", text(&ours));
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout).lines().count(),
        3,
        "{}",
        text(&ours)
    );
    let ours = tool(
        &ours_list,
        &moto,
        &["--format", "json", "s3://backups/pg", "main"],
    );
    let theirs = tool(
        &theirs_list,
        &moto,
        &["--format", "json", "s3://backups/pg", "main"],
    );
    let parse = |o: &Output| {
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", text(o)))
    };
    assert_eq!(parse(&ours), parse(&theirs));
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout),
        "the JSON document, byte for byte"
    );

    // show-backup: the same bytes as Barman's, console and JSON, by name,
    // by shortcut.
    let ours_show = barman_bin("barman-cloud-backup-show").unwrap();
    let theirs_show = barman_cloud_tool("barman-cloud-backup-show").expect("barman[cloud]");
    for id in ["nightly-one", "latest"] {
        for format in ["console", "json"] {
            let args = ["--format", format, "s3://backups/pg", "main", id];
            let ours = tool(&ours_show, &moto, &args);
            let theirs = tool(&theirs_show, &moto, &args);
            assert_eq!(status(&ours), 0, "{}", text(&ours));
            assert_eq!(
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&theirs.stdout),
                "show {id} --format {format}"
            );
        }
    }

    // Keep: ours writes the annotation Barman reads, and the reverse.
    let ours_keep = barman_bin("barman-cloud-backup-keep").unwrap();
    let theirs_keep = barman_cloud_tool("barman-cloud-backup-keep").expect("barman[cloud]");
    let out = tool(
        &ours_keep,
        &moto,
        &[
            "s3://backups/pg",
            "main",
            "nightly-one",
            "--target",
            "standalone",
        ],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let out = tool(
        &theirs_keep,
        &moto,
        &["-s", "s3://backups/pg", "main", "nightly-one"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Keep: standalone\n",
        "{}",
        text(&out)
    );
    let listed = tool(&theirs_list, &moto, &["s3://backups/pg", "main"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("KEEP:STANDALONE"),
        "{}",
        text(&listed)
    );
    let out = tool(
        &theirs_keep,
        &moto,
        &["-r", "s3://backups/pg", "main", "nightly-one"],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let out = tool(
        &ours_keep,
        &moto,
        &["-s", "s3://backups/pg", "main", "nightly-one"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Keep: nokeep\n",
        "{}",
        text(&out)
    );

    // Changes after the backups, all archived.
    pg.psql("CREATE TABLE after_backup AS SELECT g FROM generate_series(1, 777) g")
        .unwrap();
    let expected = pg
        .psql("SELECT sum(abalance) || '/' || (SELECT count(*) FROM pgbench_history) || '/' || (SELECT count(*) FROM in_ts) || '/' || (SELECT count(*) FROM after_backup) FROM pgbench_accounts")
        .unwrap();
    let last = pg.switch_wal().unwrap();
    wait_archived(&pg, &last, Duration::from_secs(300));

    // The first (split, gzip) backup restored by ours, its tablespace
    // relocated; then PostgreSQL replays every archived WAL from the bucket.
    let restore = barman_bin("barman-cloud-restore").unwrap();
    let parent = tempfile::Builder::new()
        .prefix("barman-e2e-cloud-restore-")
        .tempdir_in("/tmp")
        .unwrap();
    let dest = parent.path().join("data");
    let ts_dest = parent.path().join("ts-relocated");
    let out = tool(
        &restore,
        &moto,
        &[
            "--tablespace",
            &format!("ts1:{}", ts_dest.display()),
            "s3://backups/pg",
            "main",
            "nightly-one",
            dest.to_str().unwrap(),
        ],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    assert_eq!(
        fs::read_link(
            dest.join("pg_tblspc")
                .read_dir()
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path()
        )
        .unwrap(),
        ts_dest
    );
    assert!(dest.join("pg_wal").is_dir());
    // A second restore into the same, non-empty destination: refused (1).
    let out = tool(
        &restore,
        &moto,
        &[
            "s3://backups/pg",
            "main",
            "nightly-one",
            dest.to_str().unwrap(),
        ],
    );
    assert_eq!(status(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    // An unknown backup: 4, as Barman.
    let other = parent.path().join("other");
    let out = tool(
        &restore,
        &moto,
        &[
            "s3://backups/pg",
            "main",
            "nosuchname",
            other.to_str().unwrap(),
        ],
    );
    assert_eq!(status(&out), 4, "{}", text(&out));

    chown_to(parent.path(), SERVER_OS_USER).unwrap();
    run(Command::new("chown")
        .args(["-R", &format!("{SERVER_OS_USER}:")])
        .arg(parent.path()))
    .unwrap();
    let restore_command = format!(
        "{} s3://backups/pg main %f %p",
        tools.command_prefix("barman-cloud-wal-restore", &moto)
    );
    fs::write(dest.join("recovery.signal"), "").unwrap();
    let mut recovered = DataDirServer::start(
        pg.pg_bin(),
        &dest,
        &format!("archive_mode = off\nrestore_command = '{restore_command}'\n"),
    )
    .expect("start the restored copy");
    recovered
        .wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180))
        .unwrap();
    let got = recovered
        .psql("SELECT sum(abalance) || '/' || (SELECT count(*) FROM pgbench_history) || '/' || (SELECT count(*) FROM in_ts) || '/' || (SELECT count(*) FROM after_backup) FROM pgbench_accounts")
        .unwrap();
    assert_eq!(
        got,
        expected,
        "rows after replaying the archive; log:\n{}",
        recovered.log()
    );
    recovered.stop();

    // Our delete removes one of Barman's backups: its tars and backup.info
    // go (and the WALs only it needed), barman-cloud no longer lists it,
    // the other backup stays.
    let before = keys_of(&moto, "backups", "pg");
    let out = tool(
        &barman_bin("barman-cloud-backup-delete").unwrap(),
        &moto,
        &["-b", "nightly-one", "s3://backups/pg", "main"],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let after = keys_of(&moto, "backups", "pg");
    let gone: Vec<&String> = before.iter().filter(|k| !after.contains(k)).collect();
    assert!(
        gone.iter().any(|k| k.ends_with("/backup.info"))
            && gone.iter().any(|k| k.contains("/data.tar")),
        "{gone:?}"
    );
    assert!(
        gone.iter()
            .all(|k| k.contains("/base/") || k.contains("/wals/")),
        "{gone:?}"
    );
    let listed = tool(
        &theirs_list,
        &moto,
        &["--format", "json", "s3://backups/pg", "main"],
    );
    assert_eq!(status(&listed), 0, "{}", text(&listed));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<&str> = listed["backups_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backup_name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names.len(), 1, "{listed}");
    assert!(!names.contains(&"nightly-one"), "{listed}");
}

/// Runs a tool of ours as the server's OS user (barman-cloud-backup reads
/// PGDATA), with the emulator's credentials.
pub(crate) fn as_server_user(program: &Path, moto: &Moto, args: &[&str]) -> Output {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", SERVER_OS_USER, "--", "env"]);
    for (k, v) in S3_ENV {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg(program)
        .args(["--endpoint-url", &moto.endpoint()])
        .args(args)
        .current_dir("/tmp");
    cmd.output().expect("run the tool")
}

#[test]
fn our_backup_under_load_is_restored_by_barman_cloud_and_by_ours_to_the_exact_rows() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("ourbackups").unwrap();
    let tools = Tools::stage();
    let backup_tool = stage_binary(
        &barman_bin("barman-cloud-backup").unwrap(),
        tools.dir.path(),
    )
    .unwrap();
    let archive = format!(
        "{} --zstd s3://ourbackups/pg main %p",
        tools.command_prefix("barman-cloud-wal-archive", &moto)
    );
    let pg = PgCluster::builder()
        .archive_command(&archive)
        .start()
        .expect("start PostgreSQL 15");
    let ts = pg.server_owned_dir("ts1").unwrap();
    pg.psql(&format!(
        "CREATE TABLESPACE ts1 LOCATION '{}'",
        ts.display()
    ))
    .unwrap();
    pg.psql("CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g FROM generate_series(1, 30000) g")
        .unwrap();
    pg.pgbench_init(2).unwrap();

    // The backup while pgbench writes: gzip, split into 1 MB parts, tagged.
    let port = pg.port();
    let pgbench = std::thread::spawn({
        let bin = pg.pg_bin().join("pgbench");
        move || {
            run(Command::new(bin)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .args(["-n", "-c", "2", "-j", "2", "-T", "6", "postgres"]))
            .expect("pgbench")
        }
    });
    let port_text = port.to_string();
    let out = as_server_user(
        &backup_tool,
        &moto,
        &[
            "-z",
            "-S",
            "1MB",
            "-J",
            "3",
            "--immediate-checkpoint",
            "-n",
            "under-load",
            "-h",
            "127.0.0.1",
            "-p",
            &port_text,
            "-U",
            "postgres",
            "--tag",
            "env,test",
            "s3://ourbackups/pg",
            "main",
        ],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    pgbench.join().unwrap();
    pg.psql("CREATE TABLE after_backup AS SELECT g FROM generate_series(1, 555) g")
        .unwrap();
    let expected = pg
        .psql("SELECT sum(abalance) || '/' || (SELECT count(*) FROM pgbench_history) || '/' || (SELECT count(*) FROM in_ts) || '/' || (SELECT count(*) FROM after_backup) FROM pgbench_accounts")
        .unwrap();
    let last = pg.switch_wal().unwrap();
    wait_archived(&pg, &last, Duration::from_secs(300));

    // The objects: backup.info, the tablespace tar, several gzip data parts.
    let objects = bucket(&moto, "s3://ourbackups/pg")
        .list("pg/main/base/")
        .unwrap();
    let names: Vec<&str> = objects
        .iter()
        .map(|o| o.key.rsplit('/').next().unwrap())
        .collect();
    assert!(names.contains(&"backup.info"), "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.ends_with(".tar.gz") && n.starts_with(char::is_numeric)),
        "{names:?}"
    );
    assert!(
        names.contains(&"data.tar.gz") && names.contains(&"data_0001.tar.gz"),
        "{names:?}"
    );

    // Barman reads the catalog: listed DONE with its name, shown.
    let theirs_list = barman_cloud_tool("barman-cloud-backup-list").expect("barman[cloud]");
    let listed = tool(&theirs_list, &moto, &["s3://ourbackups/pg", "main"]);
    assert_eq!(status(&listed), 0, "{}", text(&listed));
    let listing = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listing
            .lines()
            .nth(1)
            .is_some_and(|l| l.ends_with("under-load          ") && !l.contains("FAILED")),
        "{listing}"
    );
    let theirs_show = barman_cloud_tool("barman-cloud-backup-show").expect("barman[cloud]");
    let shown = tool(
        &theirs_show,
        &moto,
        &["s3://ourbackups/pg", "main", "under-load"],
    );
    assert_eq!(status(&shown), 0, "{}", text(&shown));
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("Status                 : DONE"),
        "{}",
        text(&shown)
    );

    let restore_command = format!(
        "{} s3://ourbackups/pg main %f %p",
        tools.command_prefix("barman-cloud-wal-restore", &moto)
    );
    // Restored by Barman's barman-cloud-restore, then by ours: PostgreSQL
    // replays the archive and holds the exact rows.
    let theirs_restore = barman_cloud_tool("barman-cloud-restore").expect("barman[cloud]");
    let ours_restore = barman_bin("barman-cloud-restore").unwrap();
    for (who, restorer) in [
        ("barman-cloud", &theirs_restore),
        ("barman-rs", &ours_restore),
    ] {
        let parent = tempfile::Builder::new()
            .prefix("barman-e2e-cloud-ours-")
            .tempdir_in("/tmp")
            .unwrap();
        let dest = parent.path().join("data");
        let ts_dest = parent.path().join("ts");
        let out = tool(
            restorer,
            &moto,
            &[
                "--tablespace",
                &format!("ts1:{}", ts_dest.display()),
                "s3://ourbackups/pg",
                "main",
                "under-load",
                dest.to_str().unwrap(),
            ],
        );
        assert_eq!(status(&out), 0, "{who}: {}", text(&out));
        run(Command::new("chown")
            .args(["-R", &format!("{SERVER_OS_USER}:")])
            .arg(parent.path()))
        .unwrap();
        fs::write(dest.join("recovery.signal"), "").unwrap();
        let mut recovered = DataDirServer::start(
            pg.pg_bin(),
            &dest,
            &format!("archive_mode = off\nrestore_command = '{restore_command}'\n"),
        )
        .unwrap_or_else(|e| panic!("{who}: start the restored copy: {e}"));
        recovered
            .wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180))
            .unwrap();
        let got = recovered
            .psql("SELECT sum(abalance) || '/' || (SELECT count(*) FROM pgbench_history) || '/' || (SELECT count(*) FROM in_ts) || '/' || (SELECT count(*) FROM after_backup) FROM pgbench_accounts")
            .unwrap();
        assert_eq!(
            got,
            expected,
            "{who}: rows after replaying the archive; log:\n{}",
            recovered.log()
        );
        recovered.stop();
    }
}

/// The keys under `prefix/` in `bucket_name`, sorted.
pub(crate) fn keys_of(moto: &Moto, bucket_name: &str, prefix: &str) -> Vec<String> {
    bucket(moto, &format!("s3://{bucket_name}/{prefix}"))
        .list(&format!("{prefix}/"))
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

/// After the same deletions on the same catalog, barman-cloud's bucket
/// (`theirs`) and ours hold the same objects, but for our checksum
/// manifests: barman-cloud does not know them, so the manifests of the
/// backups it deleted stay behind (in directories without backup.info,
/// which both catalogs skip), while ours go with their backups. Every
/// backup left in ours keeps its manifest.
fn assert_same_objects_left(moto: &Moto, theirs: &str, ours: &str) -> Vec<String> {
    let (theirs, ours) = (keys_of(moto, theirs, "pg"), keys_of(moto, ours, "pg"));
    let manifest = |k: &str| k.ends_with("/barman-rs.manifest.json");
    let info_of = |k: &str| format!("{}/backup.info", k.rsplit_once('/').unwrap().0);
    let (orphans, kept): (Vec<&String>, Vec<&String>) = theirs
        .iter()
        .partition(|k| manifest(k) && !theirs.contains(&info_of(k)));
    assert_eq!(kept, ours.iter().collect::<Vec<_>>());
    for k in ours.iter().filter(|k| k.ends_with("/backup.info")) {
        let m = k.replace("/backup.info", "/barman-rs.manifest.json");
        assert!(ours.contains(&m), "{k} without its manifest: {ours:?}");
    }
    for orphan in &orphans {
        assert!(!ours.contains(orphan), "{orphan}");
    }
    theirs
}

/// Copies every object of bucket `from` into bucket `to`.
fn copy_bucket(moto: &Moto, from: &str, to: &str) {
    let source = bucket(moto, &format!("s3://{from}"));
    let target = bucket(moto, &format!("s3://{to}"));
    for object in source.list("").unwrap() {
        let mut bytes = Vec::new();
        source.get(&object.key, &mut bytes).unwrap();
        target.put(&object.key, &mut bytes.as_slice(), &[]).unwrap();
    }
}

/// A catalog of three backups (`round-1` to `round-3`, gzip) taken by
/// our barman-cloud-backup into `bucket_name/pg`, each after `switches`
/// archived WAL switches, and the WALs after the last; the cluster and the
/// staged tools its archive_command runs (keep them until the end).
fn three_backups(moto: &Moto, bucket_name: &str, switches: usize) -> (PgCluster, Tools) {
    let tools = Tools::stage();
    let backup_tool = stage_binary(
        &barman_bin("barman-cloud-backup").unwrap(),
        tools.dir.path(),
    )
    .unwrap();
    let url = format!("s3://{bucket_name}/pg");
    let archive = format!(
        "{} --gzip {url} main %p",
        tools.command_prefix("barman-cloud-wal-archive", moto)
    );
    let pg = PgCluster::builder()
        .archive_command(&archive)
        .start()
        .expect("start PostgreSQL 15");
    pg.pgbench_init(1).unwrap();
    let port = pg.port().to_string();
    for round in 1..=3 {
        for _ in 0..switches {
            pg.psql("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) SELECT 1, 1, 1, 1, now() FROM generate_series(1, 1000)").unwrap();
            pg.switch_wal().unwrap();
        }
        let name = format!("round-{round}");
        let out = as_server_user(
            &backup_tool,
            moto,
            &[
                "-z",
                "--immediate-checkpoint",
                "-n",
                &name,
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                &url,
                "main",
            ],
        );
        assert_eq!(status(&out), 0, "{}", text(&out));
        std::thread::sleep(Duration::from_secs(1));
    }
    let last = pg.switch_wal().unwrap();
    wait_archived(&pg, &last, Duration::from_secs(300));
    (pg, tools)
}

#[test]
fn retention_deletes_the_same_objects_as_barman_cloud() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    for b in ["theirs-bucket", "ours-bucket"] {
        moto.create_bucket(b).unwrap();
    }
    let _cluster = three_backups(&moto, "theirs-bucket", 3);
    // The same catalog in both buckets: Barman deletes in one, ours in
    // the other.
    copy_bucket(&moto, "theirs-bucket", "ours-bucket");
    let initial = keys_of(&moto, "theirs-bucket", "pg");
    assert_eq!(initial, keys_of(&moto, "ours-bucket", "pg"));

    let theirs = barman_cloud_tool("barman-cloud-backup-delete").expect("barman[cloud]");
    let ours = barman_bin("barman-cloud-backup-delete").unwrap();
    // -b refused by minimum redundancy and by a keep, the same way (1).
    for (program, bucket_name) in [(&theirs, "theirs-bucket"), (&ours, "ours-bucket")] {
        let url = format!("s3://{bucket_name}/pg");
        let out = tool(program, &moto, &["-b", "latest", "-m", "3", &url, "main"]);
        assert_eq!(status(&out), 1, "{}", text(&out));
        assert!(
            text(&out).contains("minimum redundancy = 3, current redundancy = 3"),
            "{}",
            text(&out)
        );
        // A dry run deletes nothing.
        let before = keys_of(&moto, bucket_name, "pg");
        let out = tool(
            program,
            &moto,
            &["-r", "REDUNDANCY 1", "--dry-run", &url, "main"],
        );
        assert_eq!(status(&out), 0, "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Skipping deletion of objects ["),
            "{}",
            text(&out)
        );
        assert_eq!(keys_of(&moto, bucket_name, "pg"), before);
    }
    // REDUNDANCY 2 with the oldest kept standalone, then REDUNDANCY 1, then
    // -b of the oldest remaining: the same objects remain in both buckets.
    let theirs_keep = barman_cloud_tool("barman-cloud-backup-keep").expect("barman[cloud]");
    let ours_keep = barman_bin("barman-cloud-backup-keep").unwrap();
    for (keep, program, bucket_name) in [
        (&theirs_keep, &theirs, "theirs-bucket"),
        (&ours_keep, &ours, "ours-bucket"),
    ] {
        let url = format!("s3://{bucket_name}/pg");
        let out = tool(
            keep,
            &moto,
            &["--target", "standalone", &url, "main", "round-1"],
        );
        assert_eq!(status(&out), 0, "{}", text(&out));
        for policy in ["REDUNDANCY 2", "REDUNDANCY 1"] {
            let out = tool(program, &moto, &["-r", policy, &url, "main"]);
            assert_eq!(status(&out), 0, "{policy}: {}", text(&out));
        }
    }
    let theirs_left = assert_same_objects_left(&moto, "theirs-bucket", "ours-bucket");
    // barman-cloud still lists its catalog, the orphaned manifest ignored.
    let out = tool(
        &barman_cloud_tool("barman-cloud-backup-list").expect("barman[cloud]"),
        &moto,
        &["--format", "json", "s3://theirs-bucket/pg", "main"],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        listed["backups_list"].as_array().unwrap().len(),
        2,
        "{listed}"
    );
    assert!(
        theirs_left.len() < initial.len(),
        "retention deleted nothing: {theirs_left:?}"
    );
    // round-2 (obsolete) went; round-1 stayed (kept), round-3 (newest) too.
    let backups_left = theirs_left
        .iter()
        .filter(|k| k.ends_with("/backup.info"))
        .count();
    assert_eq!(backups_left, 2, "{theirs_left:?}");
    for (keep, program, bucket_name) in [
        (&theirs_keep, &theirs, "theirs-bucket"),
        (&ours_keep, &ours, "ours-bucket"),
    ] {
        let url = format!("s3://{bucket_name}/pg");
        let out = tool(keep, &moto, &["-r", &url, "main", "round-1"]);
        assert_eq!(status(&out), 0, "{}", text(&out));
        let out = tool(program, &moto, &["-b", "oldest", &url, "main"]);
        assert_eq!(status(&out), 0, "{}", text(&out));
    }
    let final_theirs = assert_same_objects_left(&moto, "theirs-bucket", "ours-bucket");
    assert!(final_theirs.len() < theirs_left.len(), "{final_theirs:?}");
    // An unparsable policy: 3.
    let out = tool(
        &ours,
        &moto,
        &["-r", "REDUNDANCY many", "s3://ours-bucket/pg", "main"],
    );
    assert_eq!(status(&out), 3, "{}", text(&out));
}

/// Where a PITR scenario stores its objects: S3 (moto), Azure (Azurite)
/// or Google Cloud Storage (gcp-storage-emulator).
enum Store {
    S3(Moto),
    Azure(Azurite),
    Gcs(GcsEmulator),
}

impl Store {
    /// The environment and options our tools need for it.
    fn prefix_args(&self) -> (Vec<(String, String)>, Vec<String>) {
        match self {
            Store::S3(moto) => (
                S3_ENV
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                vec!["--endpoint-url".into(), moto.endpoint()],
            ),
            Store::Azure(azurite) => (
                vec![(
                    "AZURE_STORAGE_CONNECTION_STRING".into(),
                    azurite.connection_string(),
                )],
                vec!["--cloud-provider".into(), "azure-blob-storage".into()],
            ),
            Store::Gcs(gcs) => (
                vec![("STORAGE_EMULATOR_HOST".into(), gcs.host())],
                vec!["--cloud-provider".into(), "google-cloud-storage".into()],
            ),
        }
    }

    fn url(&self, container: &str, prefix: &str) -> String {
        match self {
            Store::S3(_) => format!("s3://{container}/{prefix}"),
            Store::Azure(azurite) => azurite.url(container, prefix),
            Store::Gcs(_) => format!("gs://{container}/{prefix}"),
        }
    }

    /// A PostgreSQL `*_command` running `tool` (quoted for the conf file).
    fn command(&self, tool: &Path) -> String {
        let (env, args) = self.prefix_args();
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!(
            "env {} {} {}",
            env.join(" "),
            tool.display(),
            args.join(" ")
        )
    }

    /// Runs `tool args` as the server's OS user.
    fn run_as_server_user(&self, tool: &Path, args: &[&str]) -> Output {
        let (env, extra) = self.prefix_args();
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", SERVER_OS_USER, "--", "env"]);
        for (k, v) in env {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.arg(tool).args(extra).args(args).current_dir("/tmp");
        cmd.output().expect("run the tool")
    }
}

/// The acceptance scenario of object storage on one store: archiving
/// under pgbench load, a gzip backup, a zstd backup split into parts, and
/// a PITR to a time between them from the first backup and the archive.
fn pitr_between_two_backups(store: &Store) {
    let tools = Tools::stage();
    let backup = stage_binary(
        &barman_bin("barman-cloud-backup").unwrap(),
        tools.dir.path(),
    )
    .unwrap();
    let url = store.url("pitr", "cluster");
    let archive = format!(
        "{} --zstd {url} main %p",
        store.command(&tools.path("barman-cloud-wal-archive"))
    );
    let pg = PgCluster::builder()
        .archive_command(&archive)
        .start()
        .expect("start PostgreSQL 15");
    pg.pgbench_init(2).unwrap();
    let port = pg.port().to_string();
    let load = |seconds: u32| {
        let port = pg.port();
        let bin = pg.pg_bin().join("pgbench");
        std::thread::spawn(move || {
            run(Command::new(bin)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .args([
                    "-n",
                    "-c",
                    "2",
                    "-j",
                    "2",
                    "-T",
                    &seconds.to_string(),
                    "postgres",
                ]))
            .expect("pgbench")
        })
    };
    let take = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--immediate-checkpoint",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            &url,
            "main",
        ]);
        let out = store.run_as_server_user(&backup, &all);
        assert_eq!(status(&out), 0, "{}", text(&out));
    };
    let running = load(4);
    take(&["-z", "-n", "gzip-backup"]);
    running.join().unwrap();
    // The target: a moment between the two backups, after a commit.
    pg.psql("CREATE TABLE at_target AS SELECT g FROM generate_series(1, 321) g")
        .unwrap();
    let expected = pg
        .psql("SELECT sum(abalance) || '/' || (SELECT count(*) FROM pgbench_history) || '/' || (SELECT count(*) FROM at_target) FROM pgbench_accounts")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let target_time = pg.psql("SELECT now()::text").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    pg.psql("DELETE FROM at_target; UPDATE pgbench_accounts SET abalance = abalance - 7")
        .unwrap();
    let running = load(3);
    take(&["--zstd", "-S", "1MB", "-n", "zstd-backup"]);
    running.join().unwrap();
    let last = pg.switch_wal().unwrap();
    wait_archived(&pg, &last, Duration::from_secs(300));

    let parent = tempfile::Builder::new()
        .prefix("barman-e2e-cloud-pitr2-")
        .tempdir_in("/tmp")
        .unwrap();
    chown_to(parent.path(), SERVER_OS_USER).unwrap();
    let dest = parent.path().join("data");
    let out = store.run_as_server_user(
        &tools.path("barman-cloud-restore"),
        &[&url, "main", "gzip-backup", dest.to_str().unwrap()],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    // `auto` chooses as Barman: with --target-time, the backup that ended
    // before it (the gzip one); without a target, the newest (the zstd one).
    let label = |dir: &Path| fs::read_to_string(dir.join("backup_label")).unwrap();
    let by_time = parent.path().join("auto-time");
    let out = store.run_as_server_user(
        &tools.path("barman-cloud-restore"),
        &[
            &url,
            "main",
            "auto",
            "--target-time",
            &target_time,
            by_time.to_str().unwrap(),
        ],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    assert_eq!(label(&by_time), label(&dest));
    let newest = parent.path().join("auto-newest");
    let out = store.run_as_server_user(
        &tools.path("barman-cloud-restore"),
        &[&url, "main", "auto", newest.to_str().unwrap()],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    assert_ne!(label(&newest), label(&dest));
    let out = store.run_as_server_user(
        &tools.path("barman-cloud-restore"),
        &[
            &url,
            "main",
            "auto",
            "--target-time",
            "2000-01-01 00:00:00+00:00",
            parent.path().join("none").to_str().unwrap(),
        ],
    );
    assert_eq!(status(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("Cannot find any candidate backup"),
        "{}",
        text(&out)
    );
    fs::write(dest.join("recovery.signal"), "").unwrap();
    let restore_command = format!(
        "{} {url} main %f %p",
        store.command(&tools.path("barman-cloud-wal-restore"))
    );
    let mut recovered = DataDirServer::start(
        pg.pg_bin(),
        &dest,
        &format!(
            "archive_mode = off\nrestore_command = '{restore_command}'\nrecovery_target_time = '{target_time}'\nrecovery_target_action = 'promote'\n"
        ),
    )
    .expect("start the restored copy");
    recovered
        .wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180))
        .unwrap();
    let got = recovered
        .psql("SELECT sum(abalance) || '/' || (SELECT count(*) FROM pgbench_history) || '/' || (SELECT count(*) FROM at_target) FROM pgbench_accounts")
        .unwrap();
    assert_eq!(
        got,
        expected,
        "rows at {target_time}; log:\n{}",
        recovered.log()
    );
    recovered.stop();
}

#[test]
fn pitr_between_a_gzip_and_a_split_zstd_backup_on_s3() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("pitr").unwrap();
    pitr_between_two_backups(&Store::S3(moto));
}

#[test]
fn pitr_between_a_gzip_and_a_split_zstd_backup_on_azure() {
    let azurite = Azurite::start().expect("azurite (scripts/install-test-deps.sh installs it)");
    azurite.create_container("pitr").unwrap();
    pitr_between_two_backups(&Store::Azure(azurite));
}

#[test]
fn pitr_between_a_gzip_and_a_split_zstd_backup_on_google_cloud_storage() {
    let gcs = GcsEmulator::start("pitr")
        .expect("gcp-storage-emulator (scripts/install-test-deps.sh installs it)");
    pitr_between_two_backups(&Store::Gcs(gcs));
}

#[test]
fn corrupted_objects_are_named_and_nothing_is_installed() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("damaged").unwrap();
    let tools = Tools::stage();
    let backup_tool = stage_binary(
        &barman_bin("barman-cloud-backup").unwrap(),
        tools.dir.path(),
    )
    .unwrap();
    let pg = PgCluster::builder()
        .archive_command("/bin/true")
        .start()
        .expect("start PostgreSQL 15");
    pg.pgbench_init(1).unwrap();
    let work = tempfile::tempdir().unwrap();
    let store = bucket(&moto, "s3://damaged/pg");

    // A WAL object whose gzip stream is damaged: restore fails naming it,
    // and nothing appears at WAL_DEST.
    let segment = real_segments(&pg, 1, work.path()).remove(0);
    let name = segment.file_name().unwrap().to_str().unwrap().to_owned();
    let archive = barman_bin("barman-cloud-wal-archive").unwrap();
    let out = tool(
        &archive,
        &moto,
        &[
            "--gzip",
            "s3://damaged/pg",
            "main",
            segment.to_str().unwrap(),
        ],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let key = format!("pg/main/wals/{}/{name}.gz", &name[..16]);
    let mut object = Vec::new();
    store.get(&key, &mut object).unwrap();
    let middle = object.len() / 2;
    object[middle..middle + 64].fill(0xAA);
    store.put(&key, &mut object.as_slice(), &[]).unwrap();
    let dest = work.path().join("wal-dest");
    let restore = barman_bin("barman-cloud-wal-restore").unwrap();
    let out = tool(
        &restore,
        &moto,
        &["s3://damaged/pg", "main", &name, dest.to_str().unwrap()],
    );
    assert_ne!(status(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains(&key),
        "the object is named: {}",
        text(&out)
    );
    assert!(!dest.exists(), "a damaged WAL was installed");
    assert!(
        fs::read_dir(work.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("barman-tmp")),
        "a temporary file was left"
    );

    // A backup whose second data part is damaged: restore fails naming
    // it and leaves the destination as it was (missing).
    let port = pg.port().to_string();
    let out = as_server_user(
        &backup_tool,
        &moto,
        &[
            "-z",
            "-S",
            "1MB",
            "--immediate-checkpoint",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "s3://damaged/pg",
            "main",
        ],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let part = store
        .list("pg/main/base/")
        .unwrap()
        .into_iter()
        .find(|o| o.key.ends_with("/data_0001.tar.gz"))
        .expect("a second data part");
    let mut object = Vec::new();
    store.get(&part.key, &mut object).unwrap();
    let middle = object.len() / 2;
    object[middle..middle + 256].fill(0x55);
    store.put(&part.key, &mut object.as_slice(), &[]).unwrap();
    let recovery_dir = work.path().join("restored");
    let restore_backup = barman_bin("barman-cloud-restore").unwrap();
    let out = tool(
        &restore_backup,
        &moto,
        &[
            "s3://damaged/pg",
            "main",
            "latest",
            recovery_dir.to_str().unwrap(),
        ],
    );
    assert_ne!(status(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains(&part.key),
        "the part is named: {}",
        text(&out)
    );
    assert!(
        !recovery_dir.exists(),
        "a damaged backup was left installed"
    );
    // An empty destination that existed stays, empty.
    fs::create_dir(&recovery_dir).unwrap();
    let out = tool(
        &restore_backup,
        &moto,
        &[
            "s3://damaged/pg",
            "main",
            "latest",
            recovery_dir.to_str().unwrap(),
        ],
    );
    assert_ne!(status(&out), 0, "{}", text(&out));
    assert_eq!(fs::read_dir(&recovery_dir).unwrap().count(), 0);

    // A tar altered consistently (no compression to fail, the tar format
    // has no data checksum): our checksum manifest catches the file, by
    // name, and nothing is installed; barman-cloud restores it unaware.
    let out = as_server_user(
        &backup_tool,
        &moto,
        &[
            "--immediate-checkpoint",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "s3://damaged/plain",
            "main",
        ],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    let keys: Vec<String> = store
        .list("plain/main/base/")
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    let data = keys
        .iter()
        .find(|k| k.ends_with("/data.tar"))
        .expect("data.tar");
    assert!(
        keys.iter().any(|k| k.ends_with("/barman-rs.manifest.json")),
        "{keys:?}"
    );
    let mut object = Vec::new();
    store.get(data, &mut object).unwrap();
    let at = tar::Archive::new(object.as_slice())
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().ends_with("PG_VERSION"))
        .map(|e| usize::try_from(e.raw_file_position()).unwrap())
        .expect("PG_VERSION in data.tar");
    assert_eq!(&object[at..at + 3], b"15\n");
    object[at + 1] = b'6';
    store.put(data, &mut object.as_slice(), &[]).unwrap();
    let tampered_dir = work.path().join("tampered");
    let out = tool(
        &restore_backup,
        &moto,
        &[
            "s3://damaged/plain",
            "main",
            "latest",
            tampered_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(status(&out), 4, "{}", text(&out));
    assert!(
        text(&out).contains("`PG_VERSION` differs from the backup's manifest"),
        "{}",
        text(&out)
    );
    assert!(
        !tampered_dir.exists(),
        "a tampered backup was left installed"
    );
    let out = tool(
        &barman_cloud_tool("barman-cloud-restore").expect("barman[cloud]"),
        &moto,
        &[
            "s3://damaged/plain",
            "main",
            "latest",
            tampered_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(status(&out), 0, "{}", text(&out));
    assert_eq!(fs::read(tampered_dir.join("PG_VERSION")).unwrap(), b"16\n");
}

#[test]
fn a_recovery_window_deletes_the_same_objects_as_barman_cloud() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    for b in ["window-theirs", "window-ours"] {
        moto.create_bucket(b).unwrap();
    }
    let _cluster = three_backups(&moto, "window-theirs", 2);
    // The first two backups ended 20 and 10 days ago.
    let store = bucket(&moto, "s3://window-theirs/pg");
    let infos: Vec<String> = keys_of(&moto, "window-theirs", "pg")
        .into_iter()
        .filter(|k| k.ends_with("/backup.info"))
        .collect();
    assert_eq!(infos.len(), 3, "{infos:?}");
    for (key, days) in infos.iter().zip([20, 10]) {
        let mut bytes = Vec::new();
        store.get(key, &mut bytes).unwrap();
        let then = jiff::Zoned::now()
            .with_time_zone(jiff::tz::TimeZone::UTC)
            .checked_sub(jiff::Span::new().days(days))
            .unwrap();
        let stamp = then.strftime("%Y-%m-%d %H:%M:%S.000000+00:00").to_string();
        let text: String = String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| {
                if l.starts_with("end_time=") {
                    format!("end_time={stamp}\n")
                } else if l.starts_with("begin_time=") {
                    format!("begin_time={stamp}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        store.put(key, &mut text.as_bytes(), &[]).unwrap();
    }
    copy_bucket(&moto, "window-theirs", "window-ours");
    let initial = keys_of(&moto, "window-theirs", "pg");
    let theirs = barman_cloud_tool("barman-cloud-backup-delete").expect("barman[cloud]");
    let ours = barman_bin("barman-cloud-backup-delete").unwrap();
    for (program, bucket_name) in [(&theirs, "window-theirs"), (&ours, "window-ours")] {
        let url = format!("s3://{bucket_name}/pg");
        let out = tool(
            program,
            &moto,
            &["-r", "RECOVERY WINDOW OF 7 DAYS", &url, "main"],
        );
        assert_eq!(status(&out), 0, "{}", text(&out));
    }
    let left = assert_same_objects_left(&moto, "window-theirs", "window-ours");
    assert!(left.len() < initial.len(), "nothing was deleted: {left:?}");
}

#[test]
fn max_bandwidth_bounds_the_upload_rate_of_a_backup() {
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("throttled").unwrap();
    let tools = Tools::stage();
    let backup_tool = stage_binary(
        &barman_bin("barman-cloud-backup").unwrap(),
        tools.dir.path(),
    )
    .unwrap();
    let pg = PgCluster::builder()
        .archive_command("/bin/true")
        .start()
        .expect("start PostgreSQL 15");
    pg.pgbench_init(1).unwrap();
    let port = pg.port().to_string();
    let t0 = std::time::Instant::now();
    let out = as_server_user(
        &backup_tool,
        &moto,
        &[
            "--lz4",
            "--max-bandwidth",
            "2MB",
            "--keepalive-interval",
            "1",
            "--immediate-checkpoint",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "s3://throttled/pg",
            "main",
        ],
    );
    let elapsed = t0.elapsed().as_secs_f64();
    assert_eq!(status(&out), 0, "{}", text(&out));
    let uploaded: u64 = bucket(&moto, "s3://throttled/pg")
        .list("pg/main/base/")
        .unwrap()
        .iter()
        .filter(|o| o.key.contains(".tar"))
        .map(|o| o.size)
        .sum();
    #[allow(clippy::cast_precision_loss)]
    let floor = uploaded as f64 / f64::from(2 << 20);
    assert!(
        uploaded > 2 << 20,
        "{uploaded} bytes: too little to measure"
    );
    assert!(
        elapsed >= floor * 0.9,
        "{uploaded} bytes in {elapsed:.2} s, faster than 2 MiB/s"
    );
}
