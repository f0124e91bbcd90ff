//! The `barman` binary run as a user runs it, against configuration files and a
//! copy of a real Barman 3.20.1 catalog (tests/fixtures, copied from shared/).

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

#[path = "cli/hardening_catalog.rs"]
mod hardening_catalog;
#[path = "cli/listings.rs"]
mod listings;
#[path = "cli/log_format.rs"]
mod log_format;
#[path = "cli/sync_info.rs"]
mod sync_info;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/barman-3.20.1")
        .join(rel)
}

fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// A temp dir with the fixture catalog as barman_home and a barman.conf
/// pointing at it (the fixture's paths rewritten).
fn fixture_setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    copy_dir(&fixture("catalog"), &home);
    let conf = fs::read_to_string(fixture("barman.conf"))
        .unwrap()
        .replace("/srv/demo/home", home.to_str().unwrap())
        .replace(
            "/srv/demo/barman.log",
            dir.path().join("barman.log").to_str().unwrap(),
        );
    let path = dir.path().join("barman.conf");
    fs::write(&path, conf).unwrap();
    (dir, path)
}

fn barman() -> Command {
    let mut c = Command::cargo_bin("barman").unwrap();
    c.env_remove("HOME");
    c
}

fn barman_output(conf: &Path, args: &[&str]) -> (i32, String, String) {
    let out = barman().arg("-c").arg(conf).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Barman's JSON outputs in the fixture start with a WARNING line.
fn fixture_json(name: &str) -> Value {
    let text = fs::read_to_string(fixture(&format!("outputs/{name}"))).unwrap();
    let start = text.find('{').unwrap();
    serde_json::from_str(&text[start..]).unwrap()
}

#[test]
fn list_servers_matches_barman() {
    let (_dir, conf) = fixture_setup();
    let (code, stdout, stderr) = barman_output(&conf, &["list-servers"]);
    assert_eq!(code, 0, "{stderr}");
    let expected = fs::read_to_string(fixture("outputs/list-servers.txt")).unwrap();
    // Barman's capture has the WARNING (stderr) first, then the result line.
    let expected_line = expected.lines().last().unwrap();
    assert_eq!(stdout.trim_end(), expected_line);
    assert!(
        stderr.contains("WARNING: No backup strategy set for server 'pg'"),
        "{stderr}"
    );

    let (code, stdout, _) = barman_output(&conf, &["list-servers", "--minimal"]);
    assert_eq!((code, stdout.as_str()), (0, "pg\n"));

    let (code, stdout, _) = barman_output(&conf, &["-f", "json", "list-servers"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["pg"]["description"], "bars test server pg");
    assert_eq!(
        v["_WARNING"][0],
        fixture_json("list-backups.json")["_WARNING"][0]
    );
}

#[test]
fn diagnose_matches_barman_for_config_catalog_and_wals() {
    let (dir, conf) = fixture_setup();
    let (code, stdout, stderr) = barman_output(&conf, &["diagnose"]);
    assert_eq!(code, 0, "{stderr}");
    let ours: Value = serde_json::from_str(&stdout).unwrap();
    let mut barman = fixture_json("diagnose.json");
    // Rewrite Barman's paths to this test's home.
    let home = dir.path().join("home");
    let text = barman
        .to_string()
        .replace("/srv/demo/home", home.to_str().unwrap())
        .replace(
            "/srv/demo/barman.log",
            dir.path().join("barman.log").to_str().unwrap(),
        );
    barman = serde_json::from_str(&text).unwrap();
    assert_eq!(ours["global"]["config"], barman["global"]["config"]);
    assert_eq!(
        ours["servers"]["pg"]["config"],
        barman["servers"]["pg"]["config"]
    );
    assert_eq!(
        ours["servers"]["pg"]["backups"],
        barman["servers"]["pg"]["backups"]
    );
    assert_eq!(
        ours["servers"]["pg"]["wals"],
        barman["servers"]["pg"]["wals"]
    );
    assert_eq!(ours["models"], barman["models"]);
    // Diagnose is read-only: the catalog is unchanged.
    let info = fs::read(home.join("pg/meta/20261122T041510-backup.info")).unwrap();
    assert_eq!(
        info,
        fs::read(fixture("catalog/pg/meta/20261122T041510-backup.info")).unwrap()
    );
}

#[test]
fn show_servers_prints_config_and_rejects_unknown_server() {
    let (_dir, conf) = fixture_setup();
    let (code, stdout, _) = barman_output(&conf, &["show-servers", "pg"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("Server pg:\n"), "{stdout}");
    assert!(stdout.contains("\treuse_backup: link\n"), "{stdout}");
    assert!(
        stdout.contains("\tbackup_method: local-rsync\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\tretention_policy: None\n"), "{stdout}");

    let (code, _, stderr) = barman_output(&conf, &["show-servers", "nosuch"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("Unknown server 'nosuch'"), "{stderr}");

    let (code, stdout, _) = barman_output(&conf, &["-f", "json", "show-servers", "all"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["pg"]["conninfo"],
        "host=127.0.0.1 port=55510 user=postgres dbname=postgres"
    );
}

/// Every bad value makes every command exit non-zero, naming file:line, the
/// option and the allowed values, and nothing is written under barman_home.
#[test]
fn bad_config_values_fail_every_command_and_write_nothing() {
    let cases = [
        (
            "retention_policy = REDUNDANCY x",
            "retention_policy",
            "RECOVERY WINDOW OF n",
        ),
        ("reuse_backup = maybe", "reuse_backup", "off, copy, link"),
        ("compression = rar", "compression", "gzip"),
    ];
    for (line, option, allowed) in cases {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let conf = dir.path().join("barman.conf");
        fs::write(
            &conf,
            format!(
                "[barman]\nbarman_home = {}\nlog_file = {}/log\n\n[pg]\ndescription = test\nconninfo = host=localhost\nbackup_method = postgres\n{line}\n",
                home.display(),
                dir.path().display()
            ),
        )
        .unwrap();
        for args in [
            &["list-servers"][..],
            &["show-servers", "all"],
            &["diagnose"],
        ] {
            let (code, stdout, stderr) = barman_output(&conf, args);
            assert_ne!(code, 0, "{line} {args:?}");
            let location = format!("{}:9", conf.display());
            assert!(
                stderr.contains(&location),
                "{line}: no {location} in {stderr}"
            );
            assert!(
                stderr.contains(option) && stderr.contains(allowed),
                "{line}: {stderr}"
            );
            assert!(stdout.is_empty(), "{line}: {stdout}");
            assert!(!home.exists(), "{line}: barman_home was created");
        }
    }
}

/// A server section whose name is a path or shell text (`pg data; touch
/// pwned`, `../x`) fails every command, naming file, line and section,
/// before anything is written under barman_home.
#[test]
fn hostile_server_names_fail_every_command_and_write_nothing() {
    for name in ["pg data; touch pwned", "../escaped", "$(touch pwned)"] {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let conf = dir.path().join("barman.conf");
        fs::write(
            &conf,
            format!(
                "[barman]\nbarman_home = {}\nlog_file = {}/log\n\n[{name}]\ndescription = test\nconninfo = host=localhost\nbackup_method = postgres\n",
                home.display(),
                dir.path().display()
            ),
        )
        .unwrap();
        for args in [
            &["list-servers"][..],
            &["cron"],
            &["check", "all"],
            &["backup", "all"],
            &["receive-wal", name],
            &["archive-wal", name],
            &["recover", name, "latest", "/tmp/nowhere"],
        ] {
            let (code, stdout, stderr) = barman_output(&conf, args);
            assert_ne!(code, 0, "{name} {args:?}");
            let location = format!("{}:5: [{name}]", conf.display());
            assert!(
                stderr.contains(&location) && stderr.contains("invalid server name"),
                "{name} {args:?}: {stderr}"
            );
            assert!(stdout.is_empty(), "{name} {args:?}: {stdout}");
            assert!(!home.exists(), "{name} {args:?}: barman_home was created");
        }
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["barman.conf"], "{name}: files were written");
    }
}

#[test]
fn config_discovery_follows_barman() {
    // -c naming a missing file is an error naming it.
    let (code, _, stderr) = barman_output(Path::new("/nonexistent/barman.conf"), &["list-servers"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent/barman.conf"), "{stderr}");

    // ~/.barman.conf is found through HOME (when /etc has none).
    if !Path::new("/etc/barman.conf").exists() && !Path::new("/etc/barman/barman.conf").exists() {
        let (dir, conf) = fixture_setup();
        fs::copy(&conf, dir.path().join(".barman.conf")).unwrap();
        let out = barman()
            .env("HOME", dir.path())
            .arg("list-servers")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "pg - bars test server pg\n"
        );

        let empty = tempfile::tempdir().unwrap();
        let out = barman()
            .env("HOME", empty.path())
            .arg("list-servers")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("no configuration file found"), "{err}");
    }
}

#[test]
fn logs_go_to_log_file_and_version_prints() {
    let (dir, conf) = fixture_setup();
    let (code, _, _) = barman_output(&conf, &["list-servers"]);
    assert_eq!(code, 0);
    let log = fs::read_to_string(dir.path().join("barman.log")).unwrap();
    assert!(log.contains("WARNING: No backup strategy set"), "{log}");

    let out = barman().arg("-v").output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with(env!("CARGO_PKG_VERSION"))
    );
}
