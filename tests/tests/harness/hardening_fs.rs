//! Issue 18, items 2, 8 and 12, end to end: no write through links planted
//! in a recovery destination (locally and through `barman agent` over a
//! real sshd), no temporary file left by an agent session that dies
//! mid-upload, and a data directory restored with a mode PostgreSQL
//! accepts.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barman_copy::protocol::{FrameWriter, MAGIC, Message, VERSION};
use barman_copy::{Mtime, Roots};
use barman_testkit::{SERVER_OS_USER, Sshd, chmod, chown_to};

use crate::archiving::ClientSide;
use crate::backup::Bench;
use crate::recover::{
    Dest, LOCAL_RSYNC, RemoteBench, backup_id, comparable, data_digest, num, recover, recover_raw,
    start, tree_diff, wait_promoted,
};

/// Where planted links point: files outside every destination, writable
/// by `postgres` (so a restore following a link would overwrite them).
struct Victims {
    dir: tempfile::TempDir,
}

impl Victims {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("barman-e2e-victims-")
            .tempdir_in("/tmp")
            .unwrap();
        chown_to(dir.path(), SERVER_OS_USER).unwrap();
        Self { dir }
    }

    /// A new victim file `name`.
    fn file(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, format!("victim {name}\n")).unwrap();
        chown_to(&path, SERVER_OS_USER).unwrap();
        chmod(&path, 0o644).unwrap();
        path
    }

    /// Every file here with its content: all must stay as they were made.
    fn contents(&self) -> BTreeMap<String, String> {
        fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    String::from_utf8_lossy(&fs::read(e.path()).unwrap()).into_owned(),
                )
            })
            .collect()
    }

    fn assert_untouched(&self, label: &str) {
        for (name, text) in self.contents() {
            assert_eq!(
                text,
                format!("victim {name}\n"),
                "{label}: {name} outside the destination was written"
            );
        }
    }
}

/// Plants symbolic links at the temporary names earlier versions used
/// (`.<name>.barman-tmp`) for files the recovery writes, pointing at new
/// victims: at the top of the data directory, and in `global/` too unless
/// `top_only`. `dest`'s data directory is created (owned by `postgres`).
fn plant(dest: &Dest, victims: &Victims, label: &str, top_only: bool) -> usize {
    dest.make_data_dir();
    let data = dest.data();
    let mut names = vec![
        "PG_VERSION",
        "postgresql.conf",
        "pg_hba.conf",
        "postgresql.auto.conf",
    ];
    if !top_only {
        let global = data.join("global");
        fs::create_dir(&global).unwrap();
        chown_to(&global, SERVER_OS_USER).unwrap();
        chmod(&global, 0o700).unwrap();
        names.extend(["global/pg_control", "global/1262"]);
    }
    for name in &names {
        let path = data.join(name);
        let link = path.with_file_name(format!(
            ".{}.barman-tmp",
            path.file_name().unwrap().to_str().unwrap()
        ));
        let victim = victims.file(&format!("{label}-{}", name.replace('/', "-")));
        symlink(&victim, &link).unwrap();
    }
    names.len()
}

/// Names under `root` that are temporary files of barman-rs.
fn temp_files(root: &Path) -> Vec<String> {
    crate::recover::tree(root)
        .into_keys()
        .filter(|path| {
            let name = path.rsplit('/').next().unwrap_or(path);
            name.starts_with('.') && name.ends_with(".barman-tmp")
        })
        .collect()
}

/// Asserts that `dest` holds what the plain recovery `reference` holds.
fn assert_same_recovery(label: &str, reference: &Dest, dest: &Dest) {
    let (want, got) = (comparable(reference), comparable(dest));
    let diff = tree_diff(&want.0, &got.0);
    assert!(diff.is_empty(), "{label}: data differs: {diff:#?}");
    let diff = tree_diff(&want.1, &got.1);
    assert!(diff.is_empty(), "{label}: ts1 differs: {diff:#?}");
}

/// Local and remote (`--remote-ssh-command` through a loopback sshd)
/// recoveries into destinations holding symbolic links planted at
/// `.<name>.barman-tmp`, pointing outside: nothing outside is written,
/// `--delta-restore` gives exactly the plain recovery (the links removed)
/// and PostgreSQL starts on it; a remote recovery without
/// `--delta-restore` refuses the destination as not empty, as a local one
/// does.
#[test]
fn planted_temp_links_in_recovery_destinations_are_never_written_through() {
    let remote = RemoteBench::new();
    let reference = remote.local_recovery("fs-reference");
    let (bench, id, ssh, env) = (&remote.bench, &remote.id, &remote.ssh, &remote.env);
    let victims = Victims::new();

    for (label, over_ssh) in [("local-delta", false), ("remote-delta", true)] {
        let dest = Dest::new(label);
        let planted = plant(&dest, &victims, label, false);
        let (d, ts) = (dest.data_arg(), dest.ts_arg());
        let mut args = vec![
            id.as_str(),
            d.as_str(),
            "--tablespace",
            ts.as_str(),
            "--delta-restore",
        ];
        if over_ssh {
            args.extend(["--remote-ssh-command", ssh.as_str(), "-j", "2"]);
        }
        let doc = recover(bench, &args, env);
        eprintln!("{label}: {doc}");
        victims.assert_untouched(label);
        assert!(
            num(&doc, "files_removed") >= planted as u64,
            "{label}: the planted links were not removed: {doc}"
        );
        assert_eq!(temp_files(&dest.data()), Vec::<String>::new(), "{label}");
        assert_same_recovery(label, &reference, &dest);
        if over_ssh {
            let server = start(bench, &dest, "");
            wait_promoted(&server);
            assert_eq!(
                data_digest(|sql| server.psql(sql).unwrap()),
                remote.expected
            );
        }
    }

    // Without --delta-restore: refused (the planted links make the
    // destination non-empty), nothing written anywhere.
    let dest = Dest::new("remote-plain");
    plant(&dest, &victims, "remote-plain", true);
    let before = crate::recover::tree(&dest.data());
    let (d, ts) = (dest.data_arg(), dest.ts_arg());
    let run = recover_raw(
        bench,
        &[id, &d, "--tablespace", &ts, "--remote-ssh-command", ssh],
        env,
    );
    assert!(!run.status.success(), "{}", run.both());
    assert!(
        run.stderr.contains("not empty") && run.stderr.contains(".barman-tmp"),
        "{}",
        run.both()
    );
    victims.assert_untouched("remote-plain");
    assert_eq!(crate::recover::tree(&dest.data()), before);
    assert!(!dest.ts().exists(), "a refused recovery created ts1");
    assert_eq!(victims.contents().len(), 6 + 6 + 4);
}

/// Frames of an agent session that starts uploading `data/big` (64 MiB
/// announced) and sends the first 4 MiB of it.
fn upload_start(root: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = FrameWriter::new(&mut bytes);
    let roots: Roots = Roots::from([("data".to_owned(), root.to_path_buf())]);
    writer
        .message(&Message::Hello {
            magic: MAGIC.to_owned(),
            version: VERSION,
            capabilities: vec![],
            roots,
            compress: false,
            no_root_links: false,
        })
        .unwrap();
    writer
        .message(&Message::WriteFile {
            path: "data/big".to_owned(),
            size: 64 << 20,
            mode: 0o600,
            mtime: Mtime {
                secs: 1_700_000_000,
                nanos: 0,
            },
            no_fsync: false,
        })
        .unwrap();
    let chunk = vec![0x5a_u8; 256 << 10];
    for _ in 0..16 {
        writer.data(&chunk).unwrap();
    }
    writer.flush().unwrap();
    drop(writer);
    bytes
}

/// Waits until `done` holds, for at most `timeout`.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

/// `barman agent` on the far side of a real ssh session receives part of
/// a file; the session dies (the ssh client killed): the agent removes
/// its temporary file, nothing is left in the destination.
#[test]
fn an_agent_session_dying_mid_upload_leaves_no_temporary_file() {
    let sshd = Sshd::builder()
        .user(SERVER_OS_USER)
        .start()
        .expect("start sshd");
    let client = ClientSide::new(&sshd);
    let root = tempfile::Builder::new()
        .prefix("barman-e2e-agent-dies-")
        .tempdir_in("/tmp")
        .unwrap();
    chown_to(root.path(), SERVER_OS_USER).unwrap();
    chmod(root.path(), 0o700).unwrap();

    let line = sshd.ssh_command();
    let mut words = line.split_whitespace();
    let mut ssh = Command::new(words.next().unwrap())
        .args(words)
        .arg(format!("{} agent", client.bin("barman").display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = ssh.stdin.take().unwrap();
    stdin.write_all(&upload_start(root.path())).unwrap();
    stdin.flush().unwrap();
    let listing = || -> Vec<String> {
        fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    let started = wait_until(Duration::from_secs(60), || {
        let names = listing();
        names.len() == 1
            && names[0].ends_with(".barman-tmp")
            && fs::metadata(root.path().join(&names[0])).is_ok_and(|m| m.len() == 4 << 20)
    });
    assert!(started, "the upload did not start: {:?}", listing());

    // The session dies: the client side is killed.
    ssh.kill().unwrap();
    ssh.wait().unwrap();
    drop(stdin);
    let cleaned = wait_until(Duration::from_secs(30), || listing().is_empty());
    assert!(
        cleaned,
        "left in the destination after the session died: {:?}",
        listing()
    );
}

/// A backup whose data directory root is 0755 (PostgreSQL's data directory
/// chmod'ed while the server runs) recovers to a 0700 root, and PostgreSQL
/// starts on it with the primary's data.
#[test]
fn a_0755_data_root_recovers_to_0700_and_postgres_starts() {
    let bench = Bench::new(LOCAL_RSYNC, 1);
    let pg = &bench.pg;
    chmod(pg.data_dir(), 0o755).unwrap();
    let backed_up = bench.backup(&["--wait", "--wait-timeout", "60"]);
    chmod(pg.data_dir(), 0o700).unwrap();
    let id = backup_id(&backed_up);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&bench.backup_dir(&id).join("data")), 0o755);
    let expected = data_digest(|sql| pg.psql(sql).unwrap());
    bench.flush_wal();

    let dest = Dest::new("root-mode");
    recover(
        &bench,
        &[&id, &dest.data_arg(), "--tablespace", &dest.ts_arg()],
        &[],
    );
    assert_eq!(mode(&dest.data()), 0o700);
    let server = start(&bench, &dest, "");
    wait_promoted(&server);
    assert_eq!(data_digest(|sql| server.psql(sql).unwrap()), expected);
}
