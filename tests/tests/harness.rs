//! End-to-end tests: the harness fixtures themselves, then real-server scenarios.
//!
//! Needs PostgreSQL 15, PostgreSQL 13 and 17 in /opt/pg13 and /opt/pg17,
//! OpenSSH and the openssl CLI (`scripts/install-test-deps.sh` installs them
//! all); a missing
//! binary fails the test with the package to install — nothing is skipped.
//! Modules live in `tests/harness/` (one test binary for the whole crate).

#[path = "harness/archiving.rs"]
mod archiving;
#[path = "harness/backup.rs"]
mod backup;
#[path = "harness/backup_faults.rs"]
mod backup_faults;
#[path = "harness/cloud_archive.rs"]
mod cloud_archive;
#[path = "harness/cloud_faults.rs"]
mod cloud_faults;
#[path = "harness/cloud_format.rs"]
mod cloud_format;
#[path = "harness/cloud_hooks.rs"]
mod cloud_hooks;
#[path = "harness/cloud_wal.rs"]
mod cloud_wal;
#[path = "harness/cluster.rs"]
mod cluster;
#[path = "harness/compressed.rs"]
mod compressed;
#[path = "harness/hardening_check.rs"]
mod hardening_check;
#[path = "harness/hardening_cron.rs"]
mod hardening_cron;
#[path = "harness/hardening_fs.rs"]
mod hardening_fs;
#[path = "harness/hardening_peer.rs"]
mod hardening_peer;
#[path = "harness/hardening_shell.rs"]
mod hardening_shell;
#[path = "harness/hooks.rs"]
mod hooks;
#[path = "harness/incremental.rs"]
mod incremental;
#[path = "harness/interop_3x.rs"]
mod interop_3x;
#[path = "harness/listings.rs"]
mod listings;
#[path = "harness/passive.rs"]
mod passive;
#[path = "harness/postgres_backup.rs"]
mod postgres_backup;
#[path = "harness/receive_wal.rs"]
mod receive_wal;
#[path = "harness/receive_wal_sync_recovery.rs"]
mod receive_wal_sync_recovery;
#[path = "harness/receive_wal_timeline.rs"]
mod receive_wal_timeline;
#[path = "harness/recover.rs"]
mod recover;
#[path = "harness/recover_faults.rs"]
mod recover_faults;
#[path = "harness/replication.rs"]
mod replication;
#[path = "harness/replication_status.rs"]
mod replication_status;
#[path = "harness/retention.rs"]
mod retention;
#[path = "harness/sshd.rs"]
mod sshd;
#[path = "harness/streaming_bad_input.rs"]
mod streaming_bad_input;
#[path = "harness/streaming_checks.rs"]
mod streaming_checks;
#[path = "harness/streaming_majors.rs"]
mod streaming_majors;
#[path = "harness/tls.rs"]
mod tls;
#[path = "harness/wal_header.rs"]
mod wal_header;
