//! Glue between a server's configuration and the operations: its WAL codec,
//! what its WAL files must match, archive-wal options.

use barman_wal::{Codec, Compression, CustomFilter};

use crate::archive::{ArchiveOptions, PutWalOptions, WalExpectations};
use crate::catalog::Identity;
use crate::config::{GlobalConfig, ServerConfig};
use crate::postgres::PgConnection;
use crate::{Error, Result};

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
                return Err(Error::InvalidCatalogValue {
                    what: "compression",
                    value: "custom".into(),
                    reason: format!(
                        "server `{}`: custom compression needs custom_compression_filter and custom_decompression_filter",
                        server.name
                    ),
                });
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
    crate::fs::create_dir_secure(catalog.layout().backup_directory())?;
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
