//! `barman replication-status` against a real PostgreSQL 15 primary with two
//! streaming clients: a hot standby made by `pg_basebackup` (on a slot) and
//! a `pg_receivewal` WAL streamer (on another slot). Console, `--minimal`,
//! `--target`, `--source wal-host` and `-f json`; a server without clients
//! (the standby itself), a passive server, an unreachable one.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use barman_testkit::{
    BarmanHome, DataDirServer, PgCluster, SERVER_OS_USER, free_port, is_root, run, user_ids,
};
use serde_json::Value;

use crate::archiving::ok;

/// A tool of the cluster's bin directory, run as the server's OS user in `cwd`.
pub(crate) fn as_server_user(pg: &PgCluster, tool: &str, cwd: &Path) -> Command {
    let mut cmd = Command::new(pg.pg_bin().join(tool));
    if is_root().unwrap() {
        let (uid, gid) = user_ids(SERVER_OS_USER).unwrap();
        cmd.uid(uid).gid(gid);
    }
    cmd.current_dir(cwd);
    cmd
}

/// A `pg_receivewal` streaming in the background, killed by pid on drop.
struct Receiver(Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(pg: &PgCluster, sql: &str, expected: &str) {
    let start = Instant::now();
    loop {
        let got = pg.psql(sql).unwrap_or_default();
        if got == expected {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "`{sql}` gave `{got}`, not `{expected}`; log:\n{}",
            std::fs::read_to_string(pg.log_path()).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The numbered block of the client whose application name is `app`.
fn block<'a>(text: &'a str, app: &str) -> &'a str {
    text.split("\n\n")
        .find(|b| b.contains(&format!("Application name: {app}\n")))
        .unwrap_or_else(|| panic!("no client `{app}` in:\n{text}"))
}

fn is_lsn(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.split_once('/').is_some_and(|(h, l)| {
            u32::from_str_radix(h, 16).is_ok() && u32::from_str_radix(l, 16).is_ok()
        })
    })
}

#[test]
fn replication_status_shows_a_hot_standby_and_a_wal_streamer() {
    let started = Instant::now();
    let pg = PgCluster::builder()
        .conf("wal_receiver_status_interval = 1")
        .start()
        .expect("start PostgreSQL 15");

    // A hot standby on slot `standby_slot`, named `standby1`.
    let root = pg.server_owned_dir("standby").unwrap();
    let data = root.join("data");
    run(as_server_user(&pg, "pg_basebackup", &root)
        .args(["-d", &pg.conninfo(), "-D"])
        .arg(&data)
        .args([
            "-X",
            "stream",
            "-C",
            "-S",
            "standby_slot",
            "-c",
            "fast",
            "-N",
        ]))
    .expect("pg_basebackup");
    std::fs::write(data.join("standby.signal"), "").unwrap();
    let standby = DataDirServer::start(
        pg.pg_bin(),
        &data,
        &format!(
            "hot_standby = on\nprimary_slot_name = 'standby_slot'\n\
             primary_conninfo = '{} application_name=standby1'",
            pg.conninfo()
        ),
    )
    .expect("start the standby");

    // A WAL streamer on slot `rw_slot`, named `walstreamer`.
    let wal_dir = pg.server_owned_dir("receivewal").unwrap();
    let stream_conninfo = format!("{} application_name=walstreamer", pg.conninfo());
    run(as_server_user(&pg, "pg_receivewal", &wal_dir).args([
        "-d",
        &stream_conninfo,
        "--slot",
        "rw_slot",
        "--create-slot",
    ]))
    .expect("pg_receivewal --create-slot");
    let receiver = Receiver(
        as_server_user(&pg, "pg_receivewal", &wal_dir)
            .args(["-d", &stream_conninfo, "-D"])
            .arg(&wal_dir)
            .args(["--slot", "rw_slot", "-n", "-s", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pg_receivewal"),
    );
    pg.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g")
        .unwrap();
    wait_until(
        &pg,
        "SELECT string_agg(application_name || ':' || state, ',' ORDER BY application_name) \
         FROM pg_stat_replication",
        "standby1:streaming,walstreamer:streaming",
    );
    // Let both report a write of what they received (pg_receivewal
    // flushes at segment ends only).
    wait_until(
        &pg,
        "SELECT count(*) FROM pg_stat_replication \
         WHERE write_lsn = sent_lsn AND flush_lsn IS NOT NULL",
        "2",
    );
    let setup = started.elapsed();

    let down_port = free_port().unwrap();
    let down =
        format!("host=127.0.0.1 port={down_port} user=postgres dbname=postgres connect_timeout=5");
    let home = BarmanHome::new(
        &format!(
            "[pg]\nconninfo = {pg_ci}\narchiver = on\nbackup_options = concurrent_backup\n\n\
             [standby]\nconninfo = host=127.0.0.1 port={sport} user=postgres dbname=postgres\narchiver = on\nbackup_options = concurrent_backup\n\n\
             [down]\nconninfo = {down}\narchiver = on\nbackup_options = concurrent_backup\n\n\
             [walhost]\nconninfo = {down}\nwal_conninfo = {pg_ci}\narchiver = on\nbackup_options = concurrent_backup\n\n\
             [passive]\nconninfo = {pg_ci}\nprimary_ssh_command = ssh nowhere\narchiver = on\nbackup_options = concurrent_backup\n",
            pg_ci = pg.conninfo(),
            sport = standby.port()
        ),
        None,
    )
    .unwrap();
    let barman = |args: &[&str]| {
        let t = Instant::now();
        let out = home.barman(args).unwrap();
        (out, t.elapsed())
    };

    // Full console output.
    let (out, took) = barman(&["replication-status", "pg"]);
    let text = ok(&out, "replication-status pg");
    println!("--- barman replication-status pg ({took:?})\n{text}---");
    assert!(
        text.starts_with("Status of streaming clients for server 'pg':\n  Current LSN on master: "),
        "{text}"
    );
    assert!(
        text.contains("\n  Number of streaming clients: 2\n"),
        "{text}"
    );
    let sb = block(&text, "standby1");
    assert!(sb.contains(". Async standby\n"), "{sb}");
    assert!(sb.contains("Replication slot: standby_slot\n"), "{sb}");
    assert!(sb.contains("Communication   : TCP/IP\n"), "{sb}");
    assert!(sb.contains("IP Address      : 127.0.0.1 / Port: "), "{sb}");
    assert!(sb.contains("User name       : postgres\n"), "{sb}");
    assert!(sb.contains("Current state   : streaming (async)\n"), "{sb}");
    let ws = block(&text, "walstreamer");
    assert!(ws.contains(". Async WAL streamer\n"), "{ws}");
    assert!(ws.contains("Replication slot: rw_slot\n"), "{ws}");
    assert!(
        ws.contains("Sync stage      : ") && ws.contains("/3 "),
        "{ws}"
    );
    for (b, labels) in [
        (
            sb,
            &[
                "Sent LSN   : ",
                "Write LSN  : ",
                "Flush LSN  : ",
                "Replay LSN : ",
            ][..],
        ),
        (ws, &["Sent LSN   : ", "Write LSN  : ", "Flush LSN  : "][..]),
    ] {
        for label in labels {
            let line = b
                .lines()
                .find(|l| l.trim_start().starts_with(label))
                .unwrap_or_else(|| panic!("no `{label}` in:\n{b}"));
            assert!(line.contains(" (diff: ") && line.ends_with("B)"), "{line}");
        }
    }
    assert!(!ws.contains("Replay LSN"), "{ws}");

    // --minimal: one line per client.
    let (out, _) = barman(&["replication-status", "--minimal", "pg"]);
    let text = ok(&out, "replication-status --minimal");
    println!("--- barman replication-status --minimal pg\n{text}---");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("Streaming clients for master 'pg' (LSN @ "),
        "{text}"
    );
    assert!(
        lines[1..]
            .iter()
            .any(|l| l.contains(". W) postgres@127.0.0.1 S:") && l.contains(" P:0 AN:walstreamer")),
        "{text}"
    );
    assert!(
        lines[1..]
            .iter()
            .any(|l| l.contains(". A) postgres@127.0.0.1 S:")
                && l.contains(" R:")
                && l.ends_with(" P:0 AN:standby1")),
        "{text}"
    );

    // --target filters.
    let (out, _) = barman(&["replication-status", "--target", "wal-streamer", "pg"]);
    let text = ok(&out, "--target wal-streamer");
    assert!(
        text.starts_with("Status of WAL streamers for server 'pg':"),
        "{text}"
    );
    assert!(text.contains("Number of WAL streamers: 1\n"), "{text}");
    assert!(text.contains("Application name: walstreamer"), "{text}");
    assert!(!text.contains("standby1"), "{text}");
    let (out, _) = barman(&["replication-status", "--target", "hot-standby", "pg"]);
    let text = ok(&out, "--target hot-standby");
    assert!(
        text.contains("Number of hot standby servers: 1\n"),
        "{text}"
    );
    assert!(text.contains("Application name: standby1"), "{text}");
    assert!(!text.contains("walstreamer"), "{text}");

    // -f json: the same data under the server name.
    let (out, _) = barman(&["-f", "json", "replication-status", "pg"]);
    let doc: Value = serde_json::from_str(ok(&out, "-f json").trim()).unwrap();
    let pgdoc = &doc["pg"];
    assert!(is_lsn(&pgdoc["server_lsn"]), "{doc}");
    let clients = pgdoc["streaming_clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2, "{doc}");
    let by_app = |app: &str| {
        clients
            .iter()
            .find(|c| c["application_name"] == app)
            .unwrap_or_else(|| panic!("no {app} in {doc}"))
    };
    let sb = by_app("standby1");
    let ws = by_app("walstreamer");
    assert_eq!(sb["name"], "Async standby");
    assert_eq!(sb["replication_slot"], "standby_slot");
    assert_eq!(ws["name"], "Async WAL streamer");
    assert_eq!(ws["replication_slot"], "rw_slot");
    assert_eq!(ws["ip_address"], "127.0.0.1");
    assert!(ws["port"].is_i64() && ws["wal_sender_pid"].is_i64(), "{ws}");
    for (c, kinds) in [
        (sb, &["sent", "write", "flush", "replay"][..]),
        (ws, &["sent", "write", "flush"][..]),
    ] {
        for k in kinds {
            assert!(is_lsn(&c[format!("{k}_lsn")]), "{k}: {c}");
            let diff = c[format!("{k}_lsn_diff_bytes")].as_i64();
            assert!(diff.is_some_and(|d| d <= 0), "{k}: {c}");
            assert!(c[format!("{k}_lsn_diff")].as_str().unwrap().ends_with('B'));
        }
    }
    assert!(ws.get("replay_lsn").is_none(), "{ws}");
    let (out, _) = barman(&[
        "-f",
        "json",
        "replication-status",
        "--minimal",
        "--target",
        "wal-streamer",
        "pg",
    ]);
    let doc: Value = serde_json::from_str(ok(&out, "-f json --minimal").trim()).unwrap();
    let streamers = doc["pg"]["wal_streamers"].as_array().unwrap();
    assert_eq!(streamers.len(), 1, "{doc}");
    assert_eq!(streamers[0]["application_name"], "walstreamer");
    assert!(is_lsn(&streamers[0]["write_lsn"]), "{doc}");

    // --source wal-host uses wal_conninfo; backup-host the (dead) conninfo.
    let (out, _) = barman(&["replication-status", "--source", "wal-host", "walhost"]);
    let text = ok(&out, "--source wal-host");
    assert!(text.contains("Number of streaming clients: 2\n"), "{text}");

    // The standby has no clients of its own.
    let (out, _) = barman(&["replication-status", "standby"]);
    let text = ok(&out, "replication-status standby");
    println!("--- barman replication-status standby\n{text}---");
    assert!(text.contains("  No streaming clients attached"), "{text}");
    let (out, _) = barman(&["-f", "json", "replication-status", "standby"]);
    let doc: Value = serde_json::from_str(ok(&out, "json standby").trim()).unwrap();
    assert_eq!(
        doc["standby"]["standby_info"],
        "No streaming clients attached"
    );

    // Unreachable: an error naming the server, non-zero exit, quickly.
    for args in [
        &["replication-status", "down"][..],
        &["replication-status", "walhost"][..],
    ] {
        let (out, took) = barman(args);
        let err = String::from_utf8_lossy(&out.stderr);
        println!(
            "--- barman {} ({took:?}): exit {}\n{err}---",
            args.join(" "),
            out.status
        );
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("Unable to connect to server {}", args[1])),
            "{err}"
        );
        assert!(took < Duration::from_secs(8), "{took:?}");
    }

    // `all`: the passive server is skipped, the dead one fails the run.
    let (out, _) = barman(&["replication-status", "all"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("Skipping passive server 'passive'"), "{text}");
    assert!(
        text.contains("Status of streaming clients for server 'pg':"),
        "{text}"
    );
    assert!(
        text.find("server 'pg'").unwrap() < text.find("server 'standby'").unwrap(),
        "{text}"
    );
    drop(receiver);
    println!("setup {setup:?}, total {:?}", started.elapsed());
}
