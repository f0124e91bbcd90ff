//! `log_format` (`[barman]`): the log file's lines follow the configured
//! Python logging format, field by field; a format Python's logging could
//! not render is a configuration error that stops every command before
//! anything is written.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// A `barman.conf` with `log_format = {format}` (written as in the file,
/// so `%%` for each `%`), logging WARNING and above to `<dir>/barman.log`;
/// `[pg]` sets no backup strategy, so every command logs Barman's
/// "No backup strategy set" warning.
fn write_conf(dir: &Path, format: &str) -> std::path::PathBuf {
    let conf = dir.join("barman.conf");
    fs::write(
        &conf,
        format!(
            "[barman]\nbarman_home = {}\nlog_file = {}\nlog_level = WARNING\nlog_format = {format}\n\n\
             [pg]\ndescription = test\nconninfo = host=localhost\n",
            dir.join("home").display(),
            dir.join("barman.log").display(),
        ),
    )
    .unwrap();
    conf
}

/// The line of `src/output.rs` that logs a warning (`Output::warning`).
fn warning_line() -> usize {
    let source =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/output.rs")).unwrap();
    let lines: Vec<usize> = source
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(r#"tracing::warn!("{msg}");"#))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 1, "Output::warning's log statement moved");
    lines[0]
}

#[test]
fn log_file_lines_follow_the_configured_log_format() {
    let dir = tempfile::tempdir().unwrap();
    // Every field Python's LogRecord offers, with flags, width and
    // precision; `%%%%` in the file is a literal `%` in the log.
    let conf = write_conf(
        dir.path(),
        "%%(asctime)s|%%(created).6f|%%(msecs)03d|%%(levelname)-8s|%%(levelname).4s|\
         %%(levelno)4d|%%(name)s|%%(process)d|%%(processName)s|%%(thread)d|%%(threadName)s|\
         %%(funcName)s|%%(module)s|%%(filename)s|%%(lineno)d|%%(pathname)s|\
         %%(relativeCreated)d|%%(taskName)s|%%%%|%%(message)r",
    );
    let before = jiff::Timestamp::now();
    let child = Command::new(env!("CARGO_BIN_EXE_barman"))
        .arg("-c")
        .arg(&conf)
        .arg("list-servers")
        .env_remove("HOME")
        .env("TZ", "UTC")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let after = jiff::Timestamp::now();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let log = fs::read_to_string(dir.path().join("barman.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "one warning, one line: {log}");
    let f: Vec<&str> = lines[0].splitn(20, '|').collect();
    assert_eq!(f.len(), 20, "{log}");

    // Time fields: Python's asctime (`YYYY-MM-DD HH:MM:SS,mmm`, local
    // time: TZ=UTC here), created (seconds, `.6f`), msecs (`03d`): all
    // one instant, taken while barman ran.
    let (stamp, asctime_ms) = f[0].split_once(',').unwrap();
    assert_eq!(asctime_ms, f[2], "asctime's milliseconds are msecs");
    assert_eq!(f[2].len(), 3, "{}", f[2]);
    let asctime = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", stamp)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        + jiff::SignedDuration::from_millis(f[2].parse().unwrap());
    let (secs, micros) = f[1].split_once('.').unwrap();
    assert_eq!(micros.len(), 6, "{}", f[1]);
    let created =
        jiff::Timestamp::new(secs.parse().unwrap(), micros.parse::<i32>().unwrap() * 1000).unwrap();
    // asctime truncates to the millisecond, created rounds to the microsecond.
    let gap = created.duration_since(asctime);
    assert!(
        gap >= jiff::SignedDuration::from_micros(-1)
            && gap < jiff::SignedDuration::from_micros(1001),
        "asctime {} and created {} are not one instant",
        f[0],
        f[1]
    );
    assert!(
        before.as_second() <= created.as_second() && created.as_second() <= after.as_second(),
        "{log}"
    );

    let line = warning_line();
    let rest = &f[3..];
    assert_eq!(
        rest,
        [
            "WARNING ",
            "WARN",
            "  30",
            "barman.output",
            &pid.to_string(),
            "MainProcess",
            // The main thread's kernel thread id is the process id.
            &pid.to_string(),
            "MainThread",
            "(unknown function)",
            "output",
            "output.rs",
            &line.to_string(),
            "crates/barman-cli/src/output.rs",
            rest[13], // relativeCreated, checked below
            "None",
            "%",
            // Python's repr: double quotes around a text holding `'`.
            "\"No backup strategy set for server 'pg' (using default 'concurrent_backup').\"",
        ],
        "{log}"
    );
    let relative: u64 = rest[13].parse().unwrap();
    assert!(relative < 60_000, "relativeCreated {relative} ms");
}

#[test]
fn default_log_format_is_barmans() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(
        dir.path(),
        "%%(asctime)s [%%(process)s] %%(name)s %%(levelname)s: %%(message)s",
    );
    let without = dir.path().join("without.conf");
    fs::write(
        &without,
        fs::read_to_string(&conf)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("log_format"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    for c in [&conf, &without] {
        let child = Command::new(env!("CARGO_BIN_EXE_barman"))
            .arg("-c")
            .arg(c)
            .arg("list-servers")
            .env_remove("HOME")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(child.wait_with_output().unwrap().status.success());
        let log = fs::read_to_string(dir.path().join("barman.log")).unwrap();
        let last = log.lines().last().unwrap();
        // `2026-11-22 04:15:10,123 [4242] barman.output WARNING: ...`
        let (stamp, rest) = last.split_at(23);
        assert!(
            jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", &stamp[..19]).is_ok()
                && stamp.as_bytes()[19] == b','
                && stamp[20..].bytes().all(|b| b.is_ascii_digit()),
            "{last}"
        );
        assert_eq!(
            rest,
            format!(
                " [{pid}] barman.output WARNING: No backup strategy set for server 'pg' \
                 (using default 'concurrent_backup')."
            ),
            "{}",
            c.display()
        );
    }
}

#[test]
fn bad_log_format_fails_every_command_and_writes_nothing() {
    // (value as written in barman.conf, what the error says)
    let cases = [
        ("%%(asctime)s %%(user)s", "unknown field `user`"),
        ("%%(levelname)-8", "incomplete"),
        ("%%(message)z", "unsupported conversion"),
        ("%%(levelname)d", "`%(levelname)d`"),
        ("%%(asctime)s %%s", "`%s`"),
        ("no field at all", "no `%(field)`"),
        ("%%(message)*s", "`*`"),
        ("%%(message)99999s", "width"),
        // Barman reads log_format with ConfigParser's interpolation:
        // each `%` is written `%%`.
        ("%(asctime)s %(message)s", "%%"),
    ];
    for (value, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        let conf = write_conf(dir.path(), value);
        for args in [
            &["list-servers"][..],
            &["diagnose"],
            &["cron"],
            &["backup", "all"],
            &["check", "all"],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_barman"))
                .arg("-c")
                .arg(&conf)
                .args(args)
                .env_remove("HOME")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{value} {args:?}: {stderr}");
            let location = format!("{}:5: [barman] log_format", conf.display());
            assert!(
                stderr.contains(&location),
                "{value} {args:?}: no {location} in {stderr}"
            );
            assert!(stderr.contains(reason), "{value} {args:?}: {stderr}");
            // The value, as the formatter reads it (interpolated).
            assert!(
                stderr.contains(&value.replace("%%", "%")),
                "{value} {args:?}: {stderr}"
            );
            assert!(out.stdout.is_empty(), "{value} {args:?}");
            let mut left: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            left.sort();
            assert_eq!(
                left,
                ["barman.conf"],
                "{value} {args:?}: files were written"
            );
        }
    }
}
