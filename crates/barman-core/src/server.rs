//! Glue between a server's configuration and the operations: its WAL codec,
//! what its WAL files must match, archive-wal options, its streaming
//! (replication) connection.

use std::time::{Duration, Instant};

use barman_wal::{Codec, Compression, CustomFilter};

use crate::archive::{ArchiveOptions, PutWalOptions, Stopped, WalExpectations};
use crate::clock::Clock;
use crate::hooks::ServerHooks;
use crate::{Error, Result};
use barman_catalog::Identity;
use barman_config::{GlobalConfig, ServerConfig};
use barman_pg::postgres::PgConnection;
use barman_pg::replication::{ReplicationConfig, ReplicationConnection};

/// The server's WAL compression (`compression`, `compression_level`,
/// `custom_*`), `None` when WAL files are stored as received.
pub fn wal_codec(server: &ServerConfig) -> Result<Option<Codec>> {
    match server.compression {
        None => Ok(None),
        Some(Compression::Custom) => {
            let (Some(c), Some(d)) = (
                server.custom_compression_filter.as_deref(),
                server.custom_decompression_filter.as_deref(),
            ) else {
                return Err(Error::Catalog(barman_catalog::Error::InvalidCatalogValue {
                    what: "compression",
                    value: "custom".into(),
                    reason: format!(
                        "server `{}`: custom compression needs custom_compression_filter and custom_decompression_filter",
                        server.name
                    ),
                }));
            };
            let mut filter = CustomFilter::new(c, d);
            if let Some(magic) = server.custom_compression_magic_bytes() {
                filter = filter.with_magic(magic);
            }
            Ok(Some(Codec::custom(filter)))
        }
        Some(c) => Ok(Some(Codec::builtin(c, server.compression_level)?)),
    }
}

/// What the server's WAL files must match, from `identity.json`.
pub fn wal_expectations(server: &ServerConfig) -> Result<WalExpectations> {
    let identity = server.catalog().identity()?;
    Ok(WalExpectations {
        system_identifier: identity.and_then(|i| i.systemid.parse().ok()),
        segment_size: None,
    })
}

/// The server's `identity.json`; when it does not exist yet and the server
/// answers on `conninfo`, it is read from PostgreSQL and written (so that
/// every later WAL file is checked against it). `None` when neither is
/// available.
pub fn ensure_identity(server: &ServerConfig) -> Result<Option<Identity>> {
    let catalog = server.catalog();
    if let Some(id) = catalog.identity()? {
        return Ok(Some(id));
    }
    let Some(conninfo) = server.conninfo.as_deref() else {
        return Ok(None);
    };
    let pg = match PgConnection::connect(conninfo, "barman") {
        Ok(pg) => pg,
        Err(e) => {
            tracing::warn!(
                "cannot read the system identifier of `{}`: {e}",
                server.name
            );
            return Ok(None);
        }
    };
    let sysid = pg.system_identifier()?;
    let version = pg.server_version_num()? / 10000;
    let identity = Identity::new(sysid.to_string(), version.to_string());
    barman_catalog::fs::create_dir_secure(catalog.layout().backup_directory())?;
    identity.write(&catalog.layout().identity_path())?;
    tracing::info!(
        "wrote {} (system identifier {sysid})",
        catalog.layout().identity_path().display()
    );
    Ok(Some(identity))
}

/// put-wal options for `server`.
pub fn put_wal_options(server: &ServerConfig) -> Result<PutWalOptions> {
    Ok(PutWalOptions {
        expectations: wal_expectations(server)?,
        codec: wal_codec(server)?,
    })
}

/// archive-wal options for `server`, with `expectations` (see
/// [`ensure_identity`]).
pub fn archive_options(
    global: &GlobalConfig,
    server: &ServerConfig,
    expectations: WalExpectations,
) -> Result<ArchiveOptions> {
    Ok(ArchiveOptions {
        server: server.name.clone(),
        lock_directory: global.barman_lock_directory.clone(),
        codec: wal_codec(server)?,
        expectations,
        incoming: server.archiver,
        incoming_batch_size: server.archiver_batch_size,
        streaming: server.streaming_archiver,
        streaming_batch_size: server.streaming_archiver_batch_size,
    })
}

/// archive-wal options for `server` with the system identifier to check
/// against, from `identity.json` or, when missing, from the server (see
/// [`ensure_identity`]). The flag says whether an identifier was found.
pub fn archive_setup(
    global: &GlobalConfig,
    server: &ServerConfig,
) -> Result<(ArchiveOptions, bool)> {
    server.refuse_not_implemented()?;
    let identity = ensure_identity(server)?;
    let expectations = WalExpectations {
        system_identifier: identity.as_ref().and_then(|i| i.systemid.parse().ok()),
        segment_size: None,
    };
    let found = expectations.system_identifier.is_some();
    Ok((archive_options(global, server, expectations)?, found))
}

/// How [`archive_until`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveWait {
    /// The awaited condition held after an archive-wal run.
    Done,
    /// A run stopped at a file (a pre-archive hook's ABORT_STOP, SIGINT or
    /// SIGTERM).
    Stopped(Stopped),
    /// The timeout passed first.
    TimedOut,
}

/// Runs archive-wal for `server` (with its archive hooks) until `done()`
/// holds after a run, a run stops, or `timeout` passes: at least one run,
/// then one every 100 ms, as Barman's `wait_for_wal`. A busy archive-wal
/// lock (another archiver is at work) counts as a run that did nothing.
pub fn archive_until(
    global: &GlobalConfig,
    server: &ServerConfig,
    hooks: &ServerHooks,
    clock: &dyn Clock,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<ArchiveWait> {
    const POLL: Duration = Duration::from_millis(100);
    let start = Instant::now();
    let layout = server.layout();
    loop {
        let (options, _) = archive_setup(global, server)?;
        match crate::archive::archive_wal(&layout, &options, clock, &mut hooks.archive_observer()) {
            Ok(report) => {
                if let Some(stopped) = report.stopped {
                    return Ok(ArchiveWait::Stopped(stopped));
                }
            }
            Err(Error::Catalog(barman_catalog::Error::LockBusy { .. })) => {}
            Err(e) => return Err(e),
        }
        if done() {
            return Ok(ArchiveWait::Done);
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(ArchiveWait::TimedOut);
        }
        std::thread::sleep(POLL.min(left));
    }
}

/// The conninfo used for streaming: `wal_streaming_conninfo`, else
/// `streaming_conninfo`, else `conninfo`.
pub fn streaming_conninfo(server: &ServerConfig) -> Result<&str> {
    server
        .effective_wal_streaming_conninfo()
        .or(server.streaming_conninfo.as_deref())
        .or(server.conninfo.as_deref())
        .ok_or_else(|| {
            Error::BackupRefused(format!(
                "server `{}` has no streaming_conninfo or conninfo",
                server.name
            ))
        })
}

/// A replication connection to `server` through [`streaming_conninfo`],
/// as `application_name` unless the conninfo names one.
///
/// # Errors
///
/// [`Error::ReplicationDisabled`] when PostgreSQL refuses every
/// replication connection (`max_wal_senders = 0`, as `wal_level =
/// minimal` requires); the connection's error otherwise.
pub fn connect_as(server: &ServerConfig, application_name: &str) -> Result<ReplicationConnection> {
    let mut config = ReplicationConfig::from_conninfo(streaming_conninfo(server)?)?;
    if config.application_name.is_none() {
        config.application_name = Some(application_name.to_owned());
    }
    ReplicationConnection::connect(&config).map_err(|e| {
        // SQLSTATE 53300 (too_many_connections), "number of requested
        // standby connections exceeds max_wal_senders (currently 0)".
        let text = e.to_string();
        if e.code() == Some("53300") && text.contains("max_wal_senders (currently 0)") {
            Error::ReplicationDisabled {
                server: server.name.clone(),
                detail: text,
            }
        } else {
            e.into()
        }
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::clock::SystemClock;
    use barman_config::Config;

    #[test]
    fn archive_until_runs_until_done_or_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        // PostgreSQL refuses connections: no system identifier to check.
        let text = format!(
            "[barman]\nbarman_home = {}\n\n[pg]\nconninfo = host=127.0.0.1 port=1\narchiver = on\n",
            home.display()
        );
        let config = Config::parse_str(&text, Path::new("/etc/barman.conf")).unwrap();
        let server = config.server("pg").unwrap();
        server.layout().ensure().unwrap();
        let hooks = ServerHooks::none();
        let wait = |timeout, done: &mut dyn FnMut() -> bool| {
            archive_until(config.global(), server, &hooks, &SystemClock, timeout, done).unwrap()
        };

        let mut runs = 0;
        let start = Instant::now();
        let end = wait(Duration::from_millis(350), &mut || {
            runs += 1;
            false
        });
        assert_eq!(end, ArchiveWait::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(350));
        assert!(runs >= 2, "{runs} run(s)");

        let mut runs = 0;
        let end = wait(Duration::ZERO, &mut || {
            runs += 1;
            false
        });
        assert_eq!((end, runs), (ArchiveWait::TimedOut, 1));

        let mut runs = 0;
        let end = wait(Duration::from_secs(60), &mut || {
            runs += 1;
            true
        });
        assert_eq!((end, runs), (ArchiveWait::Done, 1));
    }
}
