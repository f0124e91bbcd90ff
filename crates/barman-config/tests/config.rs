//! Configuration model: parsing rules, inheritance, includes, errors, JSON.

use std::path::{Path, PathBuf};
use std::time::Duration;

use barman_config::Error;
use barman_config::{BackupMethod, BackupOption, Config, RecoveryOption, ReuseBackup};
use barman_retention::RetentionPolicy;
use barman_wal::{Compression, CompressionLevel};

const FILE: &str = "/etc/barman.conf";

fn parse(text: &str) -> Config {
    Config::parse_str(text, Path::new(FILE)).unwrap_or_else(|e| panic!("parse failed: {e}"))
}

fn parse_err(text: &str) -> String {
    match Config::parse_str(text, Path::new(FILE)) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

#[test]
fn fixture_json_equals_barman_diagnose() {
    let cfg = Config::load(&fixture("barman.conf")).unwrap();
    let text = std::fs::read_to_string(fixture("diagnose.json")).unwrap();
    // Barman printed a warning line before the JSON document.
    let diag: serde_json::Value = serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
    let ours = cfg.server("pg").unwrap().to_json();
    let theirs = &diag["servers"]["pg"]["config"];
    let (o, t) = (ours.as_object().unwrap(), theirs.as_object().unwrap());
    for (k, v) in t {
        assert_eq!(o.get(k), Some(v), "key {k}");
    }
    for k in o.keys() {
        assert!(t.contains_key(k), "extra key {k}");
    }
    assert_eq!(&ours, theirs);
    assert_eq!(&cfg.global().to_json(), &diag["global"]["config"]);
    assert!(
        cfg.warnings()
            .iter()
            .any(|w| w.contains("No backup strategy set for server 'pg'")),
        "{:?}",
        cfg.warnings()
    );
    let servers: Vec<&str> = cfg.servers().map(|s| s.name.as_str()).collect();
    assert_eq!(servers, ["pg"]);
    assert_eq!(cfg.path(), fixture("barman.conf"));
}

#[test]
fn typed_values_from_the_fixture() {
    let cfg = Config::load(&fixture("barman.conf")).unwrap();
    let pg = cfg.server("pg").unwrap();
    assert_eq!(
        pg.description.as_deref(),
        Some("bars test server pg"),
        "quotes stripped"
    );
    assert_eq!(pg.backup_method, BackupMethod::LocalRsync);
    assert_eq!(pg.reuse_backup, Some(ReuseBackup::Link));
    assert!(pg.archiver && !pg.streaming_archiver);
    assert_eq!(pg.backup_directory, Path::new("/srv/demo/home/pg"));
    assert_eq!(pg.xlogdb_directory, Path::new("/srv/demo/home/pg/wals"));
    assert_eq!(cfg.global().barman_user, "postgres");
    assert_eq!(
        cfg.global().barman_lock_directory,
        Path::new("/srv/demo/home")
    );
    assert!(!pg.is_passive());
}

#[test]
fn syntax_separators_comments_case_continuations() {
    let cfg = parse(
        "# comment\n; other comment\n[barman]\nBARMAN_HOME: /h\n\n[pg]\nConnInfo = host=a\n  dbname=b\n\
         description = 'single quoted'\nssh_command = \"ssh pg\" \nssh_command = ssh pg2\n",
    );
    let pg = cfg.server("pg").unwrap();
    assert_eq!(cfg.global().barman_home, Path::new("/h"));
    assert_eq!(pg.conninfo.as_deref(), Some("host=a\ndbname=b"));
    assert_eq!(
        pg.streaming_conninfo, pg.conninfo,
        "streaming_conninfo defaults to conninfo"
    );
    assert_eq!(pg.description.as_deref(), Some("single quoted"));
    assert_eq!(pg.ssh_command.as_deref(), Some("ssh pg2"), "later key wins");
}

#[test]
fn duplicate_sections_merge() {
    let cfg = parse(
        "[barman]\nbarman_home = /h\n[pg]\nconninfo = a\nparallel_jobs = 2\n[pg]\nparallel_jobs = 4\n",
    );
    let pg = cfg.server("pg").unwrap();
    assert_eq!(pg.conninfo.as_deref(), Some("a"));
    assert_eq!(pg.parallel_jobs, 4);
}

/// `agent_timeout` (barman-rs only): 600 s by default, global or per
/// server, 0 for none, a bad value refused naming the option; never in
/// Barman's `diagnose` keys.
#[test]
fn agent_timeout_is_a_global_option_with_a_default() {
    let cfg = parse(
        "[barman]\nbarman_home = /h\nagent_timeout = 90\n\
         [a]\nconninfo = a\n\
         [b]\nconninfo = b\nagent_timeout = 0\n\
         [c]\nconninfo = c\nagent_timeout =\n",
    );
    let a = cfg.server("a").unwrap();
    assert_eq!(a.agent_timeout, 90);
    assert_eq!(a.agent_timeout(), Some(std::time::Duration::from_secs(90)));
    assert_eq!(cfg.server("b").unwrap().agent_timeout(), None);
    assert_eq!(cfg.server("c").unwrap().agent_timeout, 600);
    assert!(a.to_json().get("agent_timeout").is_none());
    let e = parse_err("[barman]\nbarman_home = /h\n[pg]\nconninfo = x\nagent_timeout = soon\n");
    assert!(e.contains("agent_timeout"), "{e}");
}

#[test]
fn syntax_errors_have_file_and_line() {
    let e = parse_err("conninfo = x\n[pg]\n");
    assert!(e.starts_with("/etc/barman.conf:1:"), "{e}");
    let e = parse_err("[barman]\nbarman_home = /h\njust words\n");
    assert!(e.starts_with("/etc/barman.conf:3:"), "{e}");
}

#[test]
fn inheritance_only_for_global_scope_and_empty_cancels() {
    let cfg = parse(
        "[barman]\nbarman_home = /h\ncompression = gzip\nretention_policy = REDUNDANCY 3\n\
         ssh_command = ssh x\nkeepalive_interval = 10\n\
         [a]\nconninfo = a\n\
         [b]\nconninfo = b\ncompression =\nretention_policy = None\n",
    );
    let a = cfg.server("a").unwrap();
    assert_eq!(a.compression, Some(Compression::Gzip));
    assert_eq!(a.retention_policy, Some(RetentionPolicy::Redundancy(3)));
    assert_eq!(a.ssh_command, None, "ssh_command is server-only");
    assert_eq!(
        a.keepalive_interval, 60,
        "keepalive_interval is server-only"
    );
    let b = cfg.server("b").unwrap();
    assert_eq!(b.compression, None, "empty value cancels inheritance");
    assert_eq!(b.retention_policy, None, "None cancels inheritance");
    assert!(
        cfg.warnings()
            .iter()
            .any(|w| w.contains(":5: [barman] ssh_command") && w.contains("server-only"))
    );
}

#[test]
fn defaults_match_barman() {
    let cfg = parse("[barman]\nbarman_home = /h\n[pg]\nconninfo = c\n");
    let pg = cfg.server("pg").unwrap();
    assert!(pg.active && !pg.disabled);
    assert_eq!(pg.cluster, "pg");
    assert_eq!(pg.backup_method, BackupMethod::Rsync);
    assert_eq!(
        pg.backup_options.iter().copied().collect::<Vec<_>>(),
        [BackupOption::ConcurrentBackup]
    );
    assert_eq!(pg.reuse_backup, None);
    assert_eq!(pg.parallel_jobs, 1);
    assert_eq!(
        (
            pg.parallel_jobs_start_batch_period,
            pg.parallel_jobs_start_batch_size
        ),
        (1, 10)
    );
    assert_eq!(
        (pg.basebackup_retry_times, pg.basebackup_retry_sleep),
        (0, 30)
    );
    assert_eq!(pg.check_timeout, 30);
    assert_eq!(pg.compression_level, CompressionLevel::Medium);
    assert_eq!(pg.minimum_redundancy, 0);
    assert_eq!(pg.streaming_archiver_name, "barman_receive_wal");
    assert_eq!(pg.streaming_backup_name, "barman_streaming_backup");
    assert!(
        pg.archiver,
        "legacy rule: no archiver configured -> archiver on"
    );
    assert_eq!(pg.basebackups_directory, Path::new("/h/pg/base"));
    assert_eq!(pg.incoming_wals_directory, Path::new("/h/pg/incoming"));
    assert_eq!(pg.streaming_wals_directory, Path::new("/h/pg/streaming"));
    assert_eq!(pg.errors_directory, Path::new("/h/pg/errors"));
    let g = cfg.global();
    assert_eq!(g.barman_user, "barman");
    assert!(g.lock_directory_cleanup);
    assert_eq!(g.config_changes_queue, Path::new("/h/cfg_changes.queue"));
    assert_eq!(g.log_level, barman_config::LogLevel::Info);
}

#[test]
fn streaming_archiver_alone_disables_legacy_archiver() {
    let cfg = parse(
        "[barman]\nbarman_home = /h\n[pg]\nconninfo = c\nstreaming_archiver = on\nslot_name = barman\n",
    );
    let pg = cfg.server("pg").unwrap();
    assert!(pg.streaming_archiver && !pg.archiver);
    assert_eq!(pg.slot_name.as_deref(), Some("barman"));
}

#[test]
fn interpolation() {
    let cfg = parse(
        "[barman]\nbarman_home = /h\nbase = /data\n\
         [pg]\nconninfo = c\nbackup_directory = %(base)s/%(name)s\nwals_directory = %(backup_directory)s/w\n\
         description = 100%% %(barman_home)s\n",
    );
    let pg = cfg.server("pg").unwrap();
    assert_eq!(pg.backup_directory, Path::new("/data/pg"));
    assert_eq!(pg.wals_directory, Path::new("/data/pg/w"));
    assert_eq!(
        pg.xlogdb_directory,
        Path::new("/data/pg/w"),
        "xlogdb_directory defaults to wals_directory"
    );
    assert_eq!(pg.basebackups_directory, Path::new("/data/pg/base"));
    assert_eq!(pg.description.as_deref(), Some("100% /h"));
    let e = parse_err("[barman]\nbarman_home = /h\n[pg]\nconninfo = %(nope)s\n");
    assert!(
        e.contains("/etc/barman.conf:4:") && e.contains("nope"),
        "{e}"
    );
}

#[test]
fn inherited_value_interpolates_per_server() {
    let cfg = parse(
        "[barman]\nbarman_home = /h\nslot_name = barman_%(name)s\n[a]\nconninfo = x\n[b]\nconninfo = y\n",
    );
    assert_eq!(
        cfg.server("a").unwrap().slot_name.as_deref(),
        Some("barman_a")
    );
    assert_eq!(
        cfg.server("b").unwrap().slot_name.as_deref(),
        Some("barman_b")
    );
}

#[test]
fn passive_node() {
    let cfg = parse("[barman]\nbarman_home = /h\n[pg]\nprimary_ssh_command = ssh primary\n");
    assert!(cfg.server("pg").unwrap().is_passive());
}

fn assert_value_error(option_line: &str, line: usize, option: &str, allowed_part: &str) {
    let text = format!("[barman]\nbarman_home = /h\n[pg]\nconninfo = c\n{option_line}\n");
    let e = parse_err(&text);
    assert!(
        e.contains(&format!("{FILE}:{line}:")),
        "file:line missing in: {e}"
    );
    assert!(e.contains(option), "option missing in: {e}");
    assert!(
        e.contains("allowed") && e.contains(allowed_part),
        "allowed values missing in: {e}"
    );
}

#[test]
fn invalid_values_are_errors_with_file_line_option_allowed() {
    assert_value_error(
        "retention_policy = REDUNDANCY x",
        5,
        "retention_policy",
        "REDUNDANCY n",
    );
    assert_value_error("reuse_backup = maybe", 5, "reuse_backup", "off, copy, link");
    assert_value_error("compression = rar", 5, "compression", "gzip");
    assert_value_error("parallel_jobs = 0", 5, "parallel_jobs", ">= 1");
    assert_value_error("slot_name = Bad-Name", 5, "slot_name", "^[0-9a-z_]+$");
    assert_value_error(
        "last_backup_maximum_age = 3 fortnights",
        5,
        "last_backup_maximum_age",
        "week",
    );
    assert_value_error(
        "backup_options = concurrent_backup,exclusive_backup",
        5,
        "backup_options",
        "not both concurrent_backup and exclusive_backup",
    );
    assert_value_error(
        "immediate_checkpoint = maybe",
        5,
        "immediate_checkpoint",
        "true",
    );
    assert_value_error("backup_method = tape", 5, "backup_method", "local-rsync");
    assert_value_error(
        "custom_compression_magic = 1f8b",
        5,
        "custom_compression_magic",
        "0x",
    );
    assert_value_error(
        "last_backup_minimum_size = 10X",
        5,
        "last_backup_minimum_size",
        "Gi",
    );
    assert_value_error(
        "wal_retention_policy = base",
        5,
        "wal_retention_policy",
        "main",
    );
    assert_value_error("create_slot = sometimes", 5, "create_slot", "auto, manual");
}

#[test]
fn exact_error_format() {
    let e = parse_err("[barman]\nbarman_home = /h\n\n\n\n\n\n\n\n\n\n[pg]\nreuse_backup = maybe\n");
    assert_eq!(
        e,
        "/etc/barman.conf:13: [pg] reuse_backup = maybe: invalid value (allowed: off, copy, link)"
    );
    let err =
        Config::parse_str("[barman]\n[pg]\nreuse_backup = maybe\n", Path::new(FILE)).unwrap_err();
    match err {
        Error::ConfigValue {
            file,
            line,
            section,
            option,
            value,
            ..
        } => {
            assert_eq!((file.as_path(), line), (Path::new(FILE), 3));
            assert_eq!(
                (section.as_str(), option.as_str(), &*value),
                ("pg", "reuse_backup", "maybe")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn all_invalid_values_are_reported_together() {
    let e = parse_err(
        "[barman]\nbarman_home = /h\nlog_level = loud\n[pg]\nreuse_backup = maybe\ncompression = rar\n[other]\nparallel_jobs = 0\n",
    );
    for needle in [
        ":3: [barman] log_level",
        ":5: [pg] reuse_backup",
        ":6: [pg] compression",
        ":8: [other] parallel_jobs",
    ] {
        assert!(e.contains(needle), "{needle} missing in: {e}");
    }
    let pos: Vec<usize> = [":3:", ":5:", ":6:", ":8:"]
        .iter()
        .map(|n| e.find(n).unwrap())
        .collect();
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "errors sorted by line: {e}"
    );
}

#[test]
fn inherited_invalid_value_reported_once_at_its_line() {
    let e = parse_err("[barman]\ncompression = rar\n[a]\nconninfo = a\n[b]\nconninfo = b\n");
    assert!(
        e.starts_with("/etc/barman.conf:2: [barman] compression = rar"),
        "{e}"
    );
}

#[test]
fn rules() {
    let e = parse_err("[barman]\n[pg]\ncompression = custom\n");
    assert!(
        e.contains(":3:") && e.contains("custom_compression_filter"),
        "{e}"
    );
    let cfg = parse(
        "[barman]\n[pg]\ncompression = custom\ncustom_compression_filter = gzip -c\n\
         custom_decompression_filter = gzip -dc\ncustom_compression_magic = 0x1F8B\n",
    );
    let pg = cfg.server("pg").unwrap();
    assert_eq!(pg.custom_compression_magic_bytes(), Some(vec![0x1f, 0x8b]));
    assert!(
        cfg.warnings()
            .iter()
            .any(|w| w.contains("custom_compression_filter") && w.contains("deprecated"))
    );
    let e = parse_err("[barman]\n[all]\nconninfo = x\n");
    assert!(e.contains(":2:") && e.contains("reserved"), "{e}");
}

#[test]
fn unknown_option_is_a_warning_with_file_line() {
    let cfg = parse(
        "[barman]\nbarman_home = /h\nfoo = 1\n[pg]\nconninfo = c\nbackup_metod = rsync\naws_region = eu\n",
    );
    let w = cfg.warnings();
    assert!(
        w.iter()
            .any(|w| w.starts_with("/etc/barman.conf:3: [barman] foo")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.starts_with("/etc/barman.conf:6: [pg] backup_metod")),
        "{w:?}"
    );
    assert!(
        !w.iter().any(|w| w.contains("aws_region")),
        "cloud options are accepted: {w:?}"
    );
    let pg = cfg.server("pg").unwrap();
    assert_eq!(pg.extra.get("aws_region").map(String::as_str), Some("eu"));
    assert_eq!(pg.to_json()["aws_region"], "eu");
}

#[test]
fn typed_option_parsing() {
    let cfg = parse(
        "[barman]\nbarman_home = /h\n[pg]\nconninfo = c\nbackup_method = postgres\n\
         backup_options = external_configuration\nrecovery_options = get-wal, delta-restore\n\
         bandwidth_limit = 1000\ntablespace_bandwidth_limit = tbs1:100 tbs2:200\n\
         last_backup_maximum_age = 1 week\nlast_wal_maximum_age = 2 hours\nlast_backup_minimum_size = 2Gi\n\
         compression_level = 5\nminimum_redundancy = 2\nretention_policy = recovery window of 4 weeks\n\
         immediate_checkpoint = yes\nnetwork_compression = ON\n",
    );
    let pg = cfg.server("pg").unwrap();
    assert_eq!(pg.backup_method, BackupMethod::Postgres);
    assert!(
        pg.backup_options
            .contains(&BackupOption::ExternalConfiguration)
    );
    assert!(pg.backup_options.contains(&BackupOption::ConcurrentBackup));
    assert_eq!(pg.recovery_options.len(), 2);
    assert!(pg.recovery_options.contains(&RecoveryOption::DeltaRestore));
    assert_eq!(pg.bandwidth_limit, Some(1000));
    assert_eq!(pg.tablespace_bandwidth_limit.as_ref().unwrap()["tbs2"], 200);
    assert_eq!(
        pg.last_backup_maximum_age,
        Some(Duration::from_secs(7 * 86_400))
    );
    assert_eq!(pg.last_wal_maximum_age, Some(Duration::from_secs(7200)));
    assert_eq!(pg.last_backup_minimum_size, Some(2 << 30));
    assert_eq!(pg.compression_level, CompressionLevel::Level(5));
    assert!(pg.immediate_checkpoint && pg.network_compression);
    let j = pg.to_json();
    assert_eq!(j["last_backup_maximum_age"], "7 days");
    assert_eq!(j["last_backup_minimum_size"], 2_147_483_648_u64);
    assert_eq!(j["tablespace_bandwidth_limit"]["tbs1"], 100);
    assert_eq!(j["retention_policy"], "RECOVERY WINDOW OF 4 WEEKS");
    assert_eq!(j["compression_level"], 5);
    assert_eq!(j["recovery_options"], "delta-restore,get-wal");
}

#[test]
fn models_are_kept_aside() {
    let cfg = parse(
        "[barman]\nbarman_home = /h\n[pg]\nconninfo = c\n[pg:switch]\nmodel = true\ncluster = pg\nconninfo = d\n",
    );
    assert!(cfg.server("pg:switch").is_none());
    let m = cfg.model("pg:switch").unwrap();
    assert_eq!(m.cluster, "pg");
    assert_eq!(m.options["conninfo"], "d");
    assert_eq!(cfg.models().count(), 1);
    let e = parse_err("[barman]\n[m]\nmodel = true\n");
    assert!(e.contains(":2:") && e.contains("cluster"), "{e}");
}

#[test]
fn missing_file_names_the_path() {
    let e = Config::load(Path::new("/nonexistent/barman.conf")).unwrap_err();
    assert!(matches!(e, Error::ConfigNotFound { .. }));
    assert!(e.to_string().contains("/nonexistent/barman.conf"));
}

#[test]
fn includes_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let inc = dir.path().join("barman.d");
    std::fs::create_dir(&inc).unwrap();
    let main = dir.path().join("barman.conf");
    std::fs::write(
        &main,
        format!(
            "[barman]\nbarman_home = /h\nconfiguration_files_directory = {}\n",
            inc.display()
        ),
    )
    .unwrap();
    std::fs::write(inc.join("20-b.conf"), "[pg]\nconninfo = second\n").unwrap();
    std::fs::write(
        inc.join("10-a.conf"),
        "[pg]\nconninfo = first\ndescription = from a\n",
    )
    .unwrap();
    std::fs::write(inc.join("30-c.conf"), "[other]\nconninfo = o\nbogus = 1\n").unwrap();
    std::fs::write(inc.join("ignored.txt"), "[x]\n").unwrap();
    std::fs::create_dir(inc.join("dir.conf")).unwrap();
    let cfg = Config::load(&main).unwrap();
    let pg = cfg.server("pg").unwrap();
    assert_eq!(pg.conninfo.as_deref(), Some("second"), "later file wins");
    assert_eq!(pg.description.as_deref(), Some("from a"));
    assert_eq!(
        cfg.servers().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["other", "pg"]
    );
    assert!(cfg.server("x").is_none());
    let w = cfg.warnings();
    assert!(
        w.iter()
            .any(|w| w.contains("dir.conf") && w.contains("not a file")),
        "{w:?}"
    );
    let bogus = format!("{}:3: [other] bogus", inc.join("30-c.conf").display());
    assert!(w.iter().any(|w| w.starts_with(&bogus)), "{w:?}");

    // An invalid value in an included file names that file.
    std::fs::write(inc.join("40-d.conf"), "[d]\nreuse_backup = maybe\n").unwrap();
    let e = Config::load(&main).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}:2: [d] reuse_backup",
            inc.join("40-d.conf").display()
        )),
        "{e}"
    );

    // A non-empty [barman] section in an included file is fatal.
    std::fs::write(inc.join("40-d.conf"), "[barman]\ncompression = gzip\n").unwrap();
    let e = Config::load(&main).unwrap_err().to_string();
    assert!(e.contains("40-d.conf") && e.contains("[barman]"), "{e}");
    // An empty one is fine.
    std::fs::write(inc.join("40-d.conf"), "[barman]\n").unwrap();
    assert!(Config::load(&main).is_ok());
}

/// Section names Barman would accept but that cannot name a directory or
/// sit in a shell command are configuration errors naming the file, line
/// and section; the names Barman users write stay valid.
#[test]
fn server_names_that_are_paths_or_shell_text_are_refused() {
    for name in [
        "pg data",
        "pg\tdata",
        "a/b",
        "..",
        ".",
        "-pg",
        "pg;reboot",
        "pg$(id)",
        "pg`id`",
        "it's",
        "pg|x",
        "pg&",
        "pg>x",
        "pg*",
        "pg{a,b}",
        "pg#1",
        "~pg",
        "pg\\x",
        "pg\"",
    ] {
        let e = parse_err(&format!(
            "[barman]\nbarman_home = /h\n[{name}]\nconninfo = x\n"
        ));
        assert!(e.contains(":3:"), "{name:?}: {e}");
        assert!(e.contains(&format!("[{name}]")), "{name:?}: {e}");
        assert!(e.contains("invalid server name"), "{name:?}: {e}");
    }
    let ok = [
        "pg",
        "pg-15_main",
        "db.example.com",
        "PG2",
        "pg+x@h:1",
        "main%1",
        "münchen",
    ];
    for name in ok {
        let cfg = parse(&format!(
            "[barman]\nbarman_home = /h\n[{name}]\nconninfo = x\n"
        ));
        assert!(cfg.server(name).is_some(), "{name}");
    }
    // A model is not a server: its name is not a path.
    let cfg = parse(
        "[barman]\nbarman_home = /h\n[pg]\nconninfo = x\n[pg fast]\nmodel = true\ncluster = pg\n",
    );
    assert!(cfg.model("pg fast").is_some());
}
