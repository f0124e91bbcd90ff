//! Test fixtures of barman-rs, shared by the crate tests, the end-to-end
//! tests (`tests/`) and the benchmarks (`benches/`): real PostgreSQL
//! clusters, a loopback sshd, a throw-away PKI, logging hook scripts and
//! readers of catalog files. Dev-only (`publish = false`); it depends on no
//! barman-rs crate, so any crate's tests may use it.
//!
//! * [`PgCluster`] — `initdb` + `pg_ctl start` in a temporary directory on a
//!   free 127.0.0.1 port (PostgreSQL 15 from `/usr/lib/postgresql/15/bin` by
//!   default, `BARMAN_TEST_PG_BIN` or [`PgClusterBuilder::pg_bin`] for other
//!   majors, [`PgClusterBuilder::embedded`] for the 13 and 17 that
//!   `scripts/install-test-deps.sh` installs in `/opt/pgNN`). When the tests run as root the server runs as the `postgres` OS
//!   user through `runuser`; otherwise as the current user.
//! * [`Sshd`] — `sshd -D` with fresh host and client keys, key-only. As root it
//!   can log in any user (e.g. `postgres`, the usual target of Barman's
//!   `ssh_command`); as non-root only the current user.
//! * [`TestPki`] — a throw-away CA (the `openssl` CLI) issuing server and
//!   client certificates, for clusters started with
//!   [`PgClusterBuilder::ssl`] and `hostssl` lines ([`PgClusterBuilder::hba`]).
//! * [`stage_binary`] — copies a binary under test where the `postgres` user may
//!   run it (an `archive_command` cannot reach a build directory under `/root`).
//! * [`hooks`] — a hook script that logs every run with its `BARMAN_*`
//!   variables ([`hooks::log_script`]), and the reader of that log
//!   ([`hooks::take_runs`] → [`hooks::HookRun`]).
//! * [`object_storage`] — `moto_server` (S3) on loopback and the real
//!   barman-cloud tools, from the test virtualenv.
//! * [`catalog`] — a catalog read as plain files: sorted directory listings,
//!   the backup ids of `meta/`, the names `xlog.db` lists.
//!
//! Every fixture cleans up by pid on drop. A missing binary is an [`Error`]
//! naming the package to install, and tests `.expect()` it: they fail, never skip.
//! `scripts/install-test-deps.sh` installs everything.
//!
//! ```no_run
//! # fn main() -> barman_testkit::Result<()> {
//! let pg = barman_testkit::PgCluster::builder()
//!     .archive_command("/bin/true")
//!     .start()?;
//! pg.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")?;
//! let segment = pg.switch_wal()?;
//! assert!(pg.wal_dir().join(&segment).exists());
//! # Ok(()) }
//! ```

mod barman;
pub mod catalog;
mod error;
pub mod hooks;
pub mod object_storage;
mod pg;
mod process;
mod sshd;
mod tls;

pub use barman::{BarmanHome, DataDirServer, barman_bin, target_bin_dir};
pub use error::{Error, Result};
pub use pg::{
    DEFAULT_PG_BIN, PG_BIN_ENV, PG18_BIN, PgCluster, PgClusterBuilder, embedded_pg_bin,
    server_major,
};
pub use process::{
    SERVER_OS_USER, chmod, chown_to, current_user, free_port, is_root, output, pid_alive, run,
    server_user_command, stage_binary, user_ids,
};
pub use sshd::{Sshd, SshdBuilder};
pub use tls::{CertPair, OPENSSL, TestPki};
