//! `barman check`'s streaming checks (issue 6 item 5) and `barman cron`
//! supervising `receive-wal` (issues 6 and 7) on a streaming-only
//! PostgreSQL 15: the slot missing, present but inactive, and active while
//! the receive-wal cron started runs; receive-wal running or not; cron
//! stopping it once `streaming_archiver` is turned off.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use barman_testkit::pid_alive;
use serde_json::Value;

use crate::archiving::{LocalSetup, ok};
use crate::receive_wal::{SLOT, cluster, configure};

/// `barman check pg`: its console lines.
fn check(setup: &LocalSetup) -> (i32, String) {
    let out = setup.run(&["check", "pg"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn line<'a>(text: &'a str, check: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("{check}:")))
        .unwrap_or_else(|| panic!("no `{check}` line in:\n{text}"))
}

/// Kills a receive-wal cron started, whatever happens to the test.
struct Reaper(Option<u32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[test]
fn check_reports_slot_and_receive_wal_and_cron_supervises_it() {
    let setup = LocalSetup::new();
    let pg = cluster(&[]);
    configure(&setup, &pg, "pg", "");

    // No slot yet, nothing running.
    let (code, out) = check(&setup);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        line(&out, "replication slot").trim(),
        format!(
            "replication slot: FAILED (replication slot '{SLOT}' doesn't exist. Please execute 'barman receive-wal --create-slot pg')"
        )
    );
    assert_eq!(
        line(&out, "receive-wal running").trim(),
        "receive-wal running: FAILED (See the Barman log file for more details)"
    );
    for ok_line in [
        "PostgreSQL: OK",
        "PostgreSQL streaming: OK",
        "wal_level: OK",
        "max_wal_senders: OK",
        "streaming protocol compatible: OK",
    ] {
        assert!(
            out.contains(&format!("\t{ok_line}")),
            "missing `{ok_line}` in:\n{out}"
        );
    }

    // A slot nobody streams from: present but not active.
    ok(
        &setup.run(&["receive-wal", "--create-slot", "pg"]),
        "receive-wal --create-slot",
    );
    let (_, out) = check(&setup);
    assert_eq!(
        line(&out, "replication slot").trim(),
        format!("replication slot: FAILED (slot '{SLOT}' not active: is 'receive-wal' running?)")
    );

    // cron starts receive-wal in the background.
    let cron = ok(&setup.run(&["-f", "json", "cron"]), "cron");
    let doc: Value = serde_json::from_str(cron.trim()).unwrap();
    let pid = doc["cron"]["servers"][0]["receive_wal_started"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(|| panic!("cron did not start receive-wal: {doc}"));
    let _reaper = Reaper(Some(pid));
    let start = Instant::now();
    loop {
        let (code, out) = check(&setup);
        let streaming = line(&out, "receive-wal running").ends_with(": OK")
            && line(&out, "replication slot").ends_with(": OK");
        if streaming {
            // Everything passes once a WAL is archived (the WAL archive check).
            pg.switch_wal().unwrap();
            let archived = ok(&setup.run(&["archive-wal", "pg"]), "archive-wal");
            eprintln!("archive-wal: {archived}");
            if check(&setup).0 == 0 {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "receive-wal never became healthy (exit {code}):\n{out}\nlog:\n{}",
            setup.home.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(pid_alive(pid));
    // A second cron leaves the running one alone.
    let cron = ok(&setup.run(&["-f", "json", "cron"]), "second cron");
    let doc: Value = serde_json::from_str(cron.trim()).unwrap();
    assert!(
        doc["cron"]["servers"][0]["receive_wal_started"].is_null(),
        "{doc}"
    );
    assert!(pid_alive(pid));

    // streaming_archiver turned off: cron stops it.
    let conf = fs::read_to_string(setup.home.conf()).unwrap();
    fs::write(
        setup.home.conf(),
        conf.replace("streaming_archiver = on", "streaming_archiver = off"),
    )
    .unwrap();
    let cron = ok(
        &setup.run(&["-f", "json", "cron"]),
        "cron after turning it off",
    );
    let doc: Value = serde_json::from_str(cron.trim()).unwrap();
    assert_eq!(
        doc["cron"]["servers"][0]["receive_wal_stopped"],
        Value::from(pid),
        "{doc}"
    );
    let start = Instant::now();
    while pid_alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "receive-wal {pid} still running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, out) = check(&setup);
    // With streaming_archiver off, a slot left behind is a warning, not a failure.
    assert_eq!(
        line(&out, "replication slot").trim(),
        format!(
            "replication slot: OK (WARNING: slot '{SLOT}' is initialised but not required by the current config)"
        )
    );
    assert!(!out.contains("receive-wal running"), "{out}");
}
