//! The rule tables: PostgreSQL's `basebackup.c` (`excludeFiles`,
//! `excludeDirContents`, the `pgsql_tmp` and `.DS_Store` checks, temporary
//! relations, `pg_wal`) and Barman's additions for its rsync copy.

use std::borrow::Cow;

use super::{Matcher, Rule};

/// `(name, reason)` of entries left out at any depth (`excludeFiles`).
const EXCLUDED_FILES: [(&str, &str); 7] = [
    (
        "postgresql.auto.conf.tmp",
        "temporary file written while ALTER SYSTEM rewrites postgresql.auto.conf",
    ),
    (
        "current_logfiles.tmp",
        "temporary file written while the logging collector updates current_logfiles",
    ),
    (
        "backup_label",
        "belongs to another backup; the backup's own backup_label is written from pg_backup_stop()",
    ),
    (
        "tablespace_map",
        "belongs to another backup; the backup's own tablespace_map is written from pg_backup_stop()",
    ),
    (
        "backup_manifest",
        "the manifest of the backup this server was restored from, wrong for a new backup",
    ),
    (
        "postmaster.pid",
        "lock file of the running postmaster; a restored server must not find it",
    ),
    (
        "postmaster.opts",
        "command line of the running postmaster, rewritten at every start",
    ),
];

/// `(name, reason)` of directories kept empty at any depth (`excludeDirContents`).
const EXCLUDED_DIR_CONTENTS: [(&str, &str); 7] = [
    (
        "pg_stat_tmp",
        "temporary statistics files (also where extensions such as pg_stat_statements write)",
    ),
    (
        "pg_replslot",
        "replication slots are not useful on a restored server, even one restored as a primary",
    ),
    (
        "pg_dynshmem",
        "dynamic shared memory segments, removed at startup",
    ),
    ("pg_notify", "LISTEN/NOTIFY queue, removed at startup"),
    (
        "pg_serial",
        "serializable transaction state, kept only for debugging and not needed to start",
    ),
    ("pg_snapshots", "exported snapshots, removed at startup"),
    ("pg_subtrans", "subtransaction status, zeroed at startup"),
];

fn rule(result: crate::Result<Rule>) -> Rule {
    // The tables above hold fixed, valid single-component names.
    result.expect("built-in exclusion rules are valid")
}

/// barman-rs's own temporary files: a file being written when the
/// destination was copied (a killed restore or backup left it), never part
/// of a backup.
pub(super) fn barman_temp_rule() -> Rule {
    rule(Rule::exclude(
        Matcher::BarmanTemp,
        "temporary file of barman-rs, left by an interrupted restore or copy",
    ))
}

/// The rules of PostgreSQL's base backup, in the order `sendDir()` applies them.
pub(super) fn postgres_rules() -> Vec<Rule> {
    let mut rules = vec![
        rule(Rule::exclude(
            Matcher::NamePrefix(Cow::Borrowed("pgsql_tmp")),
            "temporary files and directories of running queries (sorts, hashes, temporary tablespaces)",
        )),
        rule(Rule::exclude(
            Matcher::Name(Cow::Borrowed(".DS_Store")),
            "macOS Finder metadata",
        )),
    ];
    rules.extend(
        EXCLUDED_FILES
            .into_iter()
            .map(|(name, reason)| rule(Rule::exclude(Matcher::Name(Cow::Borrowed(name)), reason))),
    );
    rules.push(rule(Rule::exclude(
        Matcher::NamePrefix(Cow::Borrowed("pg_internal.init")),
        "relation cache init file (and its temporary copies), rebuilt at startup",
    )));
    rules.push(rule(Rule::exclude(
        Matcher::TempRelation,
        "temporary relation of a session; it cannot survive a restart",
    )));
    rules.extend(EXCLUDED_DIR_CONTENTS.into_iter().map(|(name, reason)| {
        rule(Rule::exclude_contents(
            Matcher::Name(Cow::Borrowed(name)),
            reason,
        ))
    }));
    rules.push(rule(
        Rule::exclude_contents(
            Matcher::TopLevel(Cow::Borrowed("pg_wal")),
            "WAL segments come from the WAL archive; archive_status/ and summaries/ are kept empty",
        )
        .and_then(|r| r.keep_empty_subdirs(["archive_status", "summaries"])),
    ));
    rules.push(rule(
        Rule::exclude_contents(
            Matcher::TopLevel(Cow::Borrowed("pg_xlog")),
            "WAL directory before PostgreSQL 10: segments come from the WAL archive; archive_status/ is kept empty",
        )
        .and_then(|r| r.keep_empty_subdirs(["archive_status"])),
    ));
    rules
}

/// What Barman's rsync copy leaves out beyond PostgreSQL's rules
/// (`PGDATA_EXCLUDE_LIST` and `EXCLUDE_LIST` in `barman/postgres_plumbing.py`).
pub(super) fn barman_rsync_rules() -> Vec<Rule> {
    vec![
        rule(Rule::exclude_contents(
            Matcher::TopLevel(Cow::Borrowed("pg_log")),
            "server log files (log directory before PostgreSQL 10)",
        )),
        rule(Rule::exclude_contents(
            Matcher::TopLevel(Cow::Borrowed("log")),
            "server log files",
        )),
        rule(Rule::exclude(
            Matcher::Name(Cow::Borrowed("recovery.conf")),
            "recovery settings of the source server; recovery writes its own",
        )),
        rule(Rule::exclude(
            Matcher::Name(Cow::Borrowed("standby.signal")),
            "a standby source must not make the restored server a standby; recovery decides",
        )),
    ]
}
