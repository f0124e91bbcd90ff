//! `barman-wal-archive` and `barman-wal-restore` run as PostgreSQL runs them,
//! against a fake `ssh` put first on `PATH`.
//!
//! The fake (a `/bin/sh` script) records each call in `FAKE_SSH_DIR`: its
//! arguments one per line in `args.<pid>` and its standard input in
//! `stdin.<pid>`. It then behaves as the remote `barman` would:
//!
//! - `get-wal --peek ...`: prints `FAKE_SSH_DIR/peek`;
//! - `get-wal --test ...` / `put-wal --test ...`: prints `test ok`;
//! - `get-wal ... NAME`: prints `FAKE_SSH_DIR/wals/NAME`, or exits 1 when it
//!   does not exist;
//! - `put-wal`: exits 1 when its input contains `FAKE_SSH_FAIL_MATCH`.
//!
//! With `FAKE_SSH_NOREAD` set it exits at once, without reading its input
//! (as ssh does when it cannot connect).
//!
//! and finally exits with `FAKE_SSH_EXIT` (default 0).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use barman_testkit::catalog::names_in;
use barman_wal::{Compression, CompressionLevel};
use md5::Md5;
use sha2::{Digest, Sha256};

const FAKE_SSH: &str = r#"#!/bin/sh
log="$FAKE_SSH_DIR"
for a in "$@"; do printf '%s\n' "$a" >> "$log/args.$$.tmp"; done
if [ -n "$FAKE_SSH_NOREAD" ]; then mv "$log/args.$$.tmp" "$log/args.$$"; exit "${FAKE_SSH_EXIT:-0}"; fi
cat > "$log/stdin.$$"
mv "$log/args.$$.tmp" "$log/args.$$"
for last in "$@"; do :; done
case "$last" in
  *--peek*)
    [ -f "$log/peek" ] && cat "$log/peek" ;;
  *--test*)
    echo "test ok" ;;
  *get-wal*)
    wal=${last##* }
    if [ -f "$log/wals/$wal" ]; then cat "$log/wals/$wal"; else echo "not found: $wal" >&2; exit 1; fi ;;
  *put-wal*)
    if [ -n "$FAKE_SSH_FAIL_MATCH" ] && grep -qa "$FAKE_SSH_FAIL_MATCH" "$log/stdin.$$"; then exit 1; fi ;;
esac
exit "${FAKE_SSH_EXIT:-0}"
"#;

const SEG1: &str = "000000010000000000000001";
const SEG2: &str = "000000010000000000000002";
const SEG3: &str = "000000010000000000000003";
const SEG4: &str = "000000010000000000000004";
const SEG5: &str = "000000010000000000000005";

/// One recorded ssh call.
#[derive(Debug)]
struct Call {
    args: Vec<String>,
    stdin: Vec<u8>,
}

impl Call {
    /// The remote command (the last argument).
    fn remote(&self) -> &str {
        self.args.last().map_or("", String::as_str)
    }

    /// The tar members sent on stdin, in order.
    fn members(&self) -> Vec<Member> {
        let mut archive = tar::Archive::new(self.stdin.as_slice());
        archive
            .entries()
            .expect("a tar stream")
            .map(|e| {
                let mut e = e.expect("a tar entry");
                let header = e.header().clone();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                Member {
                    name: e.path().unwrap().to_string_lossy().into_owned(),
                    mode: header.mode().unwrap(),
                    mtime: header.mtime().unwrap(),
                    regular: header.entry_type().is_file(),
                    data,
                }
            })
            .collect()
    }

    /// The name of the WAL member (the first one).
    fn wal_name(&self) -> String {
        self.members()[0].name.clone()
    }
}

#[derive(Debug)]
struct Member {
    name: String,
    mode: u32,
    mtime: u64,
    regular: bool,
    data: Vec<u8>,
}

/// A temporary world: the fake ssh, its log, a pg_wal directory.
struct World {
    root: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        let ssh = bin.join("ssh");
        fs::write(&ssh, FAKE_SSH).unwrap();
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(root.path().join("log/wals")).unwrap();
        fs::create_dir_all(root.path().join("pg_wal/archive_status")).unwrap();
        Self { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn log(&self) -> PathBuf {
        self.path("log")
    }

    fn command(&self, bin: &str) -> Command {
        let mut cmd = Command::cargo_bin(bin).unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.path("bin")];
        paths.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(paths).unwrap())
            .env("FAKE_SSH_DIR", self.log())
            .env_remove("FAKE_SSH_EXIT")
            .env_remove("FAKE_SSH_FAIL_MATCH")
            .env_remove("FAKE_SSH_NOREAD")
            .timeout(Duration::from_secs(60));
        cmd
    }

    /// `barman-wal-archive` with a prefetch cache inside the world.
    fn archive(&self) -> Command {
        let mut cmd = self.command("barman-wal-archive");
        cmd.arg("--prefetch-cache-dir").arg(self.path("cache"));
        cmd
    }

    /// `barman-wal-restore` with a spool inside the world.
    fn restore(&self) -> Command {
        let mut cmd = self.command("barman-wal-restore");
        cmd.arg("--spool-dir").arg(self.path("spool"));
        cmd
    }

    /// Writes a WAL segment (and its `.ready` file) into pg_wal.
    fn segment(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.path("pg_wal").join(name);
        fs::write(&path, content).unwrap();
        fs::write(
            self.path("pg_wal/archive_status")
                .join(format!("{name}.ready")),
            b"",
        )
        .unwrap();
        path
    }

    /// Makes `name` available to the fake `get-wal`.
    fn serve(&self, name: &str, content: &[u8]) {
        fs::write(self.log().join("wals").join(name), content).unwrap();
    }

    /// Every recorded call, in no particular order.
    fn calls(&self) -> Vec<Call> {
        let mut calls = BTreeMap::new();
        for entry in fs::read_dir(self.log()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            // The fake writes `args.<pid>.tmp` and renames it when the call is done.
            if let Some(pid) = name.strip_prefix("args.").filter(|p| !p.contains('.')) {
                let args = fs::read_to_string(self.log().join(&name)).unwrap();
                let stdin = fs::read(self.log().join(format!("stdin.{pid}"))).unwrap_or_default();
                calls.insert(
                    pid.to_owned(),
                    Call {
                        args: args.lines().map(str::to_owned).collect(),
                        stdin,
                    },
                );
            }
        }
        calls.into_values().collect()
    }

    /// Forgets the recorded calls.
    fn clear_calls(&self) {
        for entry in fs::read_dir(self.log()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() && entry.file_name() != "peek" {
                fs::remove_file(entry.path()).unwrap();
            }
        }
    }
}

/// Deterministic, poorly compressible-but-not-random test data.
fn wal_bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Runs of zeros so every codec (lz4 too) really compresses.
            if i % 16 < 8 { x.to_le_bytes()[0] } else { 0 }
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn md5_hex(data: &[u8]) -> String {
    hex(&Md5::digest(data))
}

fn decompress(data: &[u8]) -> Vec<u8> {
    let compression = barman_wal::detect(data).expect("compressed data");
    let mut out = Vec::new();
    compression
        .reader(data)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------- archive

#[test]
fn archive_streams_wal_and_sha256sums_to_put_wal() {
    let w = World::new();
    let content = wal_bytes(40_000, 1);
    let wal = w.segment(SEG1, &content);
    let mtime = fs::metadata(&wal).unwrap().mtime();

    w.archive()
        .args([
            "-U",
            "pguser",
            "--port",
            "2222",
            "-c",
            "/etc/barman/my barman.conf",
        ])
        .args(["backup-host", "pg"])
        .arg(&wal)
        .assert()
        .success();

    let calls = w.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].args,
        [
            "-q",
            "-T",
            "-p",
            "2222",
            "pguser@backup-host",
            "barman '--config=/etc/barman/my barman.conf' put-wal pg"
        ]
    );
    let members = calls[0].members();
    assert_eq!(members.len(), 2, "{members:?}");
    assert_eq!(members[0].name, SEG1);
    assert!(members[0].regular);
    assert_eq!(members[0].mode, 0o600);
    assert_eq!(members[0].mtime, u64::try_from(mtime).unwrap());
    assert!(
        members[0].data == content,
        "WAL member differs from the file"
    );
    assert_eq!(members[1].name, "SHA256SUMS");
    assert_eq!(
        String::from_utf8(members[1].data.clone()).unwrap(),
        format!("{} *{SEG1}\n", sha256_hex(&content))
    );
}

#[test]
fn archive_defaults_user_barman_and_no_port_or_config() {
    let w = World::new();
    let wal = w.segment(SEG1, b"x");
    w.archive()
        .args(["host", "my server"])
        .arg(&wal)
        .assert()
        .success();
    let calls = w.calls();
    assert_eq!(
        calls[0].args,
        ["-q", "-T", "barman@host", "barman put-wal 'my server'"]
    );
}

#[test]
fn archive_md5_sends_md5sums() {
    let w = World::new();
    let content = wal_bytes(5000, 2);
    let wal = w.segment(SEG1, &content);
    w.archive()
        .args(["--md5", "host", "pg"])
        .arg(&wal)
        .assert()
        .success();
    let members = w.calls()[0].members();
    assert_eq!(members[1].name, "MD5SUMS");
    assert_eq!(
        String::from_utf8(members[1].data.clone()).unwrap(),
        format!("{} *{SEG1}\n", md5_hex(&content))
    );
}

#[test]
fn archive_compresses_with_each_codec() {
    let cases = [
        ("-z", Compression::Gzip),
        ("--gzip", Compression::Gzip),
        ("-j", Compression::Bzip2),
        ("--bzip2", Compression::Bzip2),
        ("--xz", Compression::Xz),
        ("--zstd", Compression::Zstd),
        ("--lz4", Compression::Lz4),
        ("--snappy", Compression::Snappy),
    ];
    for (flag, compression) in cases {
        let w = World::new();
        let content = wal_bytes(100_000, 3);
        let wal = w.segment(SEG1, &content);
        w.archive()
            .args([flag, "host", "pg"])
            .arg(&wal)
            .assert()
            .success();
        let calls = w.calls();
        assert_eq!(calls.len(), 1, "{flag}");
        let members = calls[0].members();
        let sent = &members[0].data;
        assert_eq!(members[0].name, SEG1, "{flag}");
        assert_eq!(barman_wal::detect(sent), Some(compression), "{flag}");
        assert!(sent.len() < content.len(), "{flag}: not compressed");
        assert!(decompress(sent) == content, "{flag}: round trip differs");
        assert_eq!(
            String::from_utf8(members[1].data.clone()).unwrap(),
            format!("{} *{SEG1}\n", sha256_hex(sent)),
            "{flag}: the digest is of the member as sent"
        );
    }
}

#[test]
fn archive_compression_level_is_accepted_and_flags_conflict() {
    let w = World::new();
    let content = wal_bytes(100_000, 4);
    let wal = w.segment(SEG1, &content);
    w.archive()
        .args(["--zstd", "--compression-level", "19", "host", "pg"])
        .arg(&wal)
        .assert()
        .success();
    let sent = w.calls()[0].members()[0].data.clone();
    assert!(decompress(&sent) == content);

    let out = w
        .archive()
        .args(["-z", "-j", "host", "pg"])
        .arg(&wal)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = w
        .archive()
        .args(["-z", "--compression-level", "fast", "host", "pg"])
        .arg(&wal)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn archive_test_runs_put_wal_test_without_input() {
    let w = World::new();
    let out = w
        .archive()
        .args(["-t", "-c", "/etc/barman.conf", "host", "pg", "ignored"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("test ok"));
    let calls = w.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].remote(),
        "barman --config=/etc/barman.conf put-wal --test pg"
    );
    assert!(calls[0].stdin.is_empty());

    let out = w
        .archive()
        .env("FAKE_SSH_EXIT", "1")
        .args(["--test", "host", "pg", "ignored"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn archive_exit_codes() {
    let w = World::new();
    let wal = w.segment(SEG1, b"data");
    for (ssh_exit, expected) in [("255", 3), ("1", 1), ("4", 4)] {
        let out = w
            .archive()
            .env("FAKE_SSH_EXIT", ssh_exit)
            .args(["host", "pg"])
            .arg(&wal)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(expected), "ssh exit {ssh_exit}");
        assert!(stderr_of(&out).contains("ERROR: "), "{}", stderr_of(&out));
    }
}

#[test]
fn archive_connection_failure_before_reading_input_exits_3() {
    let w = World::new();
    // Larger than a pipe buffer: the writes fail with EPIPE.
    let wal = w.segment(SEG1, &wal_bytes(4 << 20, 5));
    let out = w
        .archive()
        .env("FAKE_SSH_NOREAD", "1")
        .env("FAKE_SSH_EXIT", "255")
        .args(["host", "pg"])
        .arg(&wal)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("Connection problem with ssh"));

    // The remote refused early with its own status: that status wins.
    let out = w
        .archive()
        .env("FAKE_SSH_NOREAD", "1")
        .env("FAKE_SSH_EXIT", "1")
        .args(["--xz", "host", "pg"])
        .arg(&wal)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
}

#[test]
fn archive_local_errors_exit_2_without_ssh() {
    let w = World::new();
    let out = w
        .archive()
        .args(["host", "pg"])
        .arg(w.path("pg_wal/000000010000000000000009"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).starts_with("ERROR: "),
        "{}",
        stderr_of(&out)
    );

    let out = w
        .archive()
        .args(["host", "pg"])
        .arg(w.path("pg_wal"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("WAL_PATH cannot be a directory"));

    let out = w
        .archive()
        .args(["--port", "notaport", "host", "pg", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = w.archive().args(["host"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    assert!(w.calls().is_empty());
}

#[test]
fn archive_version_and_help() {
    let w = World::new();
    let out = w.command("barman-wal-archive").arg("-V").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("barman-wal-archive "));
    let out = w
        .command("barman-wal-archive")
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--parallel") && help.contains("marker"),
        "{help}"
    );
}

#[test]
fn archive_parallel_pushes_ahead_and_skips_later_calls() {
    use std::fmt::Write as _;
    let w = World::new();
    let contents: Vec<Vec<u8>> = (0..5u32)
        .map(|i| wal_bytes(3000 + i as usize * 10, 10 + i))
        .collect();
    let names = [SEG1, SEG2, SEG3, SEG4, SEG5];
    let paths: Vec<PathBuf> = names
        .iter()
        .zip(&contents)
        .map(|(n, c)| w.segment(n, c))
        .collect();
    // Not a plain segment: never pushed ahead.
    fs::write(w.path("pg_wal/archive_status/00000002.history.ready"), b"").unwrap();

    // The call for SEG1 pushes SEG1 and every plain ready segment after it
    // (at most 3 × 8 - 1), in 3 ssh sessions; each session's stream holds
    // its WAL files, then one checksum member listing them.
    w.archive()
        .args(["-p", "3", "host", "pg"])
        .arg(&paths[0])
        .assert()
        .success();
    let calls = w.calls();
    assert_eq!(calls.len(), 3, "one ssh session per parallel slot");
    let mut pushed = Vec::new();
    for call in &calls {
        let members = call.members();
        let (sums, wals) = members.split_last().unwrap();
        assert!(!wals.is_empty());
        let mut lines = String::new();
        for m in wals {
            let i = names.iter().position(|n| *n == m.name).unwrap();
            assert!(m.data == contents[i]);
            let _ = writeln!(lines, "{} *{}", sha256_hex(&contents[i]), names[i]);
            pushed.push(m.name.clone());
        }
        assert_eq!(sums.name, "SHA256SUMS");
        assert_eq!(sums.data, lines.into_bytes());
    }
    pushed.sort();
    assert_eq!(pushed, names);
    // Sessions run concurrently and the log is keyed by pid, so their order
    // says nothing; the session that carries the caller's WAL starts with it.
    let leader = calls
        .iter()
        .find(|c| c.members().iter().any(|m| m.name == SEG1))
        .expect("a session carries the caller's WAL");
    assert_eq!(
        leader.wal_name(),
        SEG1,
        "the caller's WAL leads its session"
    );
    let cache = w.path("cache");
    assert_eq!(fs::metadata(&cache).unwrap().mode() & 0o777, 0o700);
    assert_eq!(names_in(&cache), [SEG2, SEG3, SEG4, SEG5]);
    for marker in [SEG2, SEG3, SEG4, SEG5] {
        assert_eq!(
            fs::metadata(cache.join(marker)).unwrap().mode() & 0o777,
            0o600
        );
    }

    // The call for SEG2 returns at once, without ssh, and consumes the marker.
    w.clear_calls();
    w.archive()
        .args(["-p", "3", "host", "pg"])
        .arg(&paths[1])
        .assert()
        .success();
    assert!(w.calls().is_empty(), "SEG2 was pushed again");
    assert_eq!(names_in(&cache), [SEG3, SEG4, SEG5]);

    // SEG3 changed since it was pushed ahead: pushed again, alone (SEG4 and
    // SEG5 are still in the cache unchanged).
    let mut changed = contents[2].clone();
    changed.extend_from_slice(b"more");
    fs::OpenOptions::new()
        .append(true)
        .open(&paths[2])
        .unwrap()
        .write_all(b"more")
        .unwrap();
    w.archive()
        .args(["-p", "3", "host", "pg"])
        .arg(&paths[2])
        .assert()
        .success();
    let calls = w.calls();
    assert_eq!(calls.len(), 1);
    let members = calls[0].members();
    assert_eq!(members.len(), 2, "SEG3 and its checksum member");
    assert_eq!(members[0].name, SEG3);
    assert!(members[0].data == changed);
    assert_eq!(names_in(&cache), [SEG4, SEG5]);
}

#[test]
fn archive_parallel_failed_extra_leaves_no_marker() {
    let w = World::new();
    let p1 = w.segment(SEG1, b"one");
    let p2 = w.segment(SEG2, b"two");
    w.segment(SEG3, b"three");

    let out = w
        .archive()
        .env("FAKE_SSH_FAIL_MATCH", SEG2)
        .args(["-p", "3", "host", "pg"])
        .arg(&p1)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "X's result only: {}",
        stderr_of(&out)
    );
    assert_eq!(w.calls().len(), 3);
    assert_eq!(names_in(&w.path("cache")), [SEG3]);

    // PostgreSQL asks for SEG2: it is pushed (SEG3 is not, it has a marker).
    w.clear_calls();
    w.archive()
        .args(["-p", "3", "host", "pg"])
        .arg(&p2)
        .assert()
        .success();
    let calls = w.calls();
    assert_eq!(calls.iter().map(Call::wal_name).collect::<Vec<_>>(), [SEG2]);
}

#[test]
fn archive_parallel_main_failure_is_reported() {
    let w = World::new();
    let p1 = w.segment(SEG1, b"one");
    w.segment(SEG2, b"two");
    let out = w
        .archive()
        .env("FAKE_SSH_FAIL_MATCH", SEG1)
        .args(["-p", "2", "host", "pg"])
        .arg(&p1)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // The extra went through and is remembered.
    assert_eq!(names_in(&w.path("cache")), [SEG2]);
}

#[test]
fn archive_parallel_ignores_an_untrusted_cache_dir() {
    let w = World::new();
    let p1 = w.segment(SEG1, b"one");
    w.segment(SEG2, b"two");
    let cache = w.path("cache");
    fs::create_dir(&cache).unwrap();
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
    // A planted marker claiming SEG1 was already pushed.
    let meta = fs::metadata(&p1).unwrap();
    fs::write(
        cache.join(SEG1),
        format!("{} {} {}\n", meta.len(), meta.mtime(), meta.mtime_nsec()),
    )
    .unwrap();

    let out = w
        .archive()
        .args(["-p", "2", "host", "pg"])
        .arg(&p1)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr_of(&out).contains("WARNING"), "{}", stderr_of(&out));
    let calls = w.calls();
    assert_eq!(calls.iter().map(Call::wal_name).collect::<Vec<_>>(), [SEG1]);
}

#[test]
fn archive_parallel_history_file_is_pushed_alone() {
    let w = World::new();
    let history = w.segment("00000002.history", b"1\t0/3000000\tno recovery target\n");
    w.segment(SEG1, b"one");
    w.archive()
        .args(["-p", "4", "host", "pg"])
        .arg(&history)
        .assert()
        .success();
    let calls = w.calls();
    assert_eq!(
        calls.iter().map(Call::wal_name).collect::<Vec<_>>(),
        ["00000002.history"]
    );
}

// ---------------------------------------------------------------- restore

#[test]
fn restore_fetches_into_wal_dest() {
    let w = World::new();
    let content = wal_bytes(50_000, 20);
    w.serve(SEG1, &content);
    let dest = w.path("pg_wal/RECOVERYXLOG");

    w.restore()
        .args(["-U", "pguser", "--port", "2222", "-c", "/etc/barman.conf"])
        .args(["backup-host", "pg", SEG1])
        .arg(&dest)
        .assert()
        .success();

    assert!(fs::read(&dest).unwrap() == content);
    let calls = w.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].args,
        [
            "-q",
            "-T",
            "-p",
            "2222",
            "pguser@backup-host",
            &format!("barman --config=/etc/barman.conf get-wal pg {SEG1}")
        ]
    );
    assert_eq!(
        names_in(&w.path("pg_wal")),
        ["RECOVERYXLOG", "archive_status"]
    );
}

#[test]
fn restore_partial_and_keep_compression_options() {
    let w = World::new();
    w.serve(SEG1, b"plain");
    let dest = w.path("pg_wal/RECOVERYXLOG");
    w.restore()
        .args(["-P", "--keep-compression", "host", "pg", SEG1])
        .arg(&dest)
        .assert()
        .success();
    assert_eq!(
        w.calls()[0].remote(),
        format!("barman get-wal -P --keep-compression pg {SEG1}")
    );
    assert_eq!(fs::read(&dest).unwrap(), b"plain");
}

#[test]
fn restore_decompresses_what_keep_compression_sends() {
    for compression in Compression::BUILTIN {
        let w = World::new();
        let content = wal_bytes(60_000, 21);
        let mut enc = compression
            .writer(Vec::new(), CompressionLevel::Low)
            .unwrap();
        enc.write_all(&content).unwrap();
        w.serve(SEG1, &enc.finish().unwrap());
        let dest = w.path("pg_wal/RECOVERYXLOG");
        w.restore()
            .args(["--keep-compression", "host", "pg", SEG1])
            .arg(&dest)
            .assert()
            .success();
        assert!(fs::read(&dest).unwrap() == content, "{compression}");
    }
}

#[test]
fn restore_deprecated_compression_flags_are_accepted() {
    let w = World::new();
    w.serve(SEG1, b"wal");
    let dest = w.path("pg_wal/RECOVERYXLOG");
    let out = w
        .restore()
        .args(["-z", "host", "pg", SEG1])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr_of(&out).contains("deprecated"));
    assert_eq!(w.calls()[0].remote(), format!("barman get-wal pg {SEG1}"));
    assert_eq!(fs::read(&dest).unwrap(), b"wal");
}

#[test]
fn restore_not_found_exits_1_and_leaves_nothing() {
    let w = World::new();
    let dest = w.path("pg_wal/RECOVERYXLOG");
    let out = w
        .restore()
        .args(["host", "pg", SEG1])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("ERROR: "));
    assert_eq!(names_in(&w.path("pg_wal")), ["archive_status"]);
}

#[test]
fn restore_failure_after_partial_output_leaves_nothing() {
    let w = World::new();
    w.serve(SEG1, &wal_bytes(30_000, 22));
    let dest = w.path("pg_wal/RECOVERYXLOG");
    for (ssh_exit, expected) in [("1", 1), ("255", 2), ("5", 5)] {
        let out = w
            .restore()
            .env("FAKE_SSH_EXIT", ssh_exit)
            .args(["host", "pg", SEG1])
            .arg(&dest)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(expected), "ssh exit {ssh_exit}");
        assert_eq!(
            names_in(&w.path("pg_wal")),
            ["archive_status"],
            "ssh exit {ssh_exit}"
        );
    }
}

#[test]
fn restore_corrupt_compressed_data_is_a_local_error() {
    let w = World::new();
    let mut data = vec![0x28, 0xb5, 0x2f, 0xfd]; // zstd magic, then garbage
    data.extend_from_slice(&[0xff; 100]);
    w.serve(SEG1, &data);
    let dest = w.path("pg_wal/RECOVERYXLOG");
    let out = w
        .restore()
        .args(["host", "pg", SEG1])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(names_in(&w.path("pg_wal")), ["archive_status"]);
}

#[test]
fn restore_dest_errors_exit_3_without_ssh() {
    let w = World::new();
    w.serve(SEG1, b"wal");
    let out = w
        .restore()
        .args(["host", "pg", SEG1])
        .arg(w.path("pg_wal"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr_of(&out).contains("WAL_DEST cannot be a directory"));

    let out = w
        .restore()
        .args(["host", "pg", SEG1])
        .arg(w.path("missing/RECOVERYXLOG"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(w.calls().is_empty());
}

#[test]
fn restore_bad_arguments_exit_2() {
    let w = World::new();
    let dest = w.path("pg_wal/RECOVERYXLOG");
    let out = w.restore().args(["host", "pg", SEG1]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = w
        .restore()
        .args(["host", "pg", "../etc/passwd"])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(w.calls().is_empty());
}

#[test]
fn restore_sleeps_after_a_failure() {
    let w = World::new();
    let dest = w.path("pg_wal/RECOVERYXLOG");
    let start = Instant::now();
    let out = w
        .restore()
        .args(["-s", "1", "host", "pg", SEG1])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert!(stderr_of(&out).contains("Sleeping for 1 seconds."));
}

#[test]
fn restore_test_runs_get_wal_test() {
    let w = World::new();
    let out = w
        .restore()
        .args(["-t", "host", "pg", "ignored", "ignored"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("test ok"));
    assert_eq!(
        w.calls()[0].remote(),
        "barman get-wal --test pg dummy_wal_name"
    );

    let out = w
        .restore()
        .env("FAKE_SSH_EXIT", "2")
        .args(["-t", "host", "pg", "ignored", "ignored"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn restore_delivers_a_spooled_file_without_ssh() {
    let w = World::new();
    let spool = w.path("spool");
    fs::create_dir(&spool).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(spool.join(SEG2), b"prefetched").unwrap();
    let dest = w.path("pg_wal/RECOVERYXLOG");
    w.restore()
        .args(["host", "pg", SEG2])
        .arg(&dest)
        .assert()
        .success();
    assert_eq!(fs::read(&dest).unwrap(), b"prefetched");
    assert!(names_in(&spool).is_empty());
    assert!(w.calls().is_empty());
    assert_eq!(
        names_in(&w.path("pg_wal")),
        ["RECOVERYXLOG", "archive_status"]
    );
}

#[test]
fn restore_moves_a_spooled_file_across_file_systems() {
    let w = World::new();
    // /dev/shm is a tmpfs on Linux: a rename from there fails with EXDEV and
    // the file is copied instead. (Elsewhere this checks the rename path.)
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() { shm } else { w.root.path() };
    let outer = tempfile::tempdir_in(base).unwrap();
    let spool = outer.path().join("spool");
    fs::create_dir(&spool).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o700)).unwrap();
    let content = wal_bytes(200_000, 6);
    fs::write(spool.join(SEG3), &content).unwrap();
    let dest = w.path("pg_wal/RECOVERYXLOG");
    w.command("barman-wal-restore")
        .arg("--spool-dir")
        .arg(&spool)
        .args(["host", "pg", SEG3])
        .arg(&dest)
        .assert()
        .success();
    assert!(fs::read(&dest).unwrap() == content);
    assert!(names_in(&spool).is_empty());
    assert!(w.calls().is_empty());
    assert_eq!(
        names_in(&w.path("pg_wal")),
        ["RECOVERYXLOG", "archive_status"]
    );
}

#[test]
fn restore_ignores_an_untrusted_spool() {
    let w = World::new();
    let spool = w.path("spool");
    fs::create_dir(&spool).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o777)).unwrap();
    fs::write(spool.join(SEG2), b"planted").unwrap();
    w.serve(SEG2, b"genuine");
    let dest = w.path("pg_wal/RECOVERYXLOG");
    let out = w
        .restore()
        .args(["host", "pg", SEG2])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr_of(&out).contains("WARNING"));
    assert_eq!(fs::read(&dest).unwrap(), b"genuine");
}

#[test]
fn restore_parallel_prefetches_into_the_spool() {
    let w = World::new();
    let contents: Vec<Vec<u8>> = (0..4).map(|i| wal_bytes(20_000, 30 + i)).collect();
    for (name, content) in [SEG1, SEG2, SEG3, SEG4].iter().zip(&contents) {
        w.serve(name, content);
    }
    fs::write(w.log().join("peek"), format!("{SEG1}\n{SEG2}\n{SEG3}\n")).unwrap();
    let dest = w.path("pg_wal/RECOVERYXLOG");

    w.restore()
        .args(["-p", "3", "host", "pg", SEG1])
        .arg(&dest)
        .assert()
        .success();
    assert!(fs::read(&dest).unwrap() == contents[0]);
    let spool = w.path("spool");
    assert_eq!(names_in(&spool), [SEG2, SEG3]);
    assert!(fs::read(spool.join(SEG2)).unwrap() == contents[1]);
    assert!(fs::read(spool.join(SEG3)).unwrap() == contents[2]);
    assert_eq!(fs::metadata(&spool).unwrap().mode() & 0o777, 0o700);
    let mut remotes: Vec<String> = w.calls().iter().map(|c| c.remote().to_owned()).collect();
    remotes.sort();
    assert_eq!(
        remotes,
        [
            format!("barman get-wal --peek 3 pg {SEG1}"),
            format!("barman get-wal pg {SEG1}"),
            format!("barman get-wal pg {SEG2}"),
            format!("barman get-wal pg {SEG3}"),
        ]
    );

    // The next request is served from the spool.
    w.clear_calls();
    w.restore()
        .args(["-p", "3", "host", "pg", SEG2])
        .arg(&dest)
        .assert()
        .success();
    assert!(fs::read(&dest).unwrap() == contents[1]);
    assert!(w.calls().is_empty());
    assert_eq!(names_in(&spool), [SEG3]);
}

#[test]
fn restore_parallel_failed_prefetch_leaves_nothing_in_the_spool() {
    let w = World::new();
    w.serve(SEG1, b"one");
    // SEG2 is listed by peek but get-wal fails for it.
    fs::write(w.log().join("peek"), format!("{SEG1}\n{SEG2}\n")).unwrap();
    let dest = w.path("pg_wal/RECOVERYXLOG");
    let out = w
        .restore()
        .args(["-p", "2", "host", "pg", SEG1])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(fs::read(&dest).unwrap(), b"one");
    assert!(names_in(&w.path("spool")).is_empty());
}

#[test]
fn restore_parallel_peek_not_listing_the_wal_exits_1() {
    let w = World::new();
    w.serve(SEG2, b"two");
    fs::write(w.log().join("peek"), format!("{SEG2}\n")).unwrap();
    let dest = w.path("pg_wal/RECOVERYXLOG");
    let out = w
        .restore()
        .args(["-p", "2", "host", "pg", SEG1])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("not available"));
    assert_eq!(names_in(&w.path("pg_wal")), ["archive_status"]);
    assert_eq!(w.calls().len(), 1, "only the peek ran");
}

#[test]
fn restore_parallel_ssh_failure_on_peek_exits_2() {
    let w = World::new();
    let dest = w.path("pg_wal/RECOVERYXLOG");
    let out = w
        .restore()
        .env("FAKE_SSH_EXIT", "255")
        .args(["-p", "2", "host", "pg", SEG1])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
