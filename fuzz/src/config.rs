//! `barman.conf`: the INI reader, `%(name)s` interpolation, the option
//! resolution of every server and model, and the conninfo strings.

use std::path::Path;

use barman_core::config::Config;
use barman_core::replication::ReplicationConfig;

/// A `barman.conf`; for every server it defines, its conninfo strings are
/// parsed as a replication connection would (with an empty environment).
pub fn barman_conf(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = Config::parse_str(&text, Path::new("/etc/barman.conf")) else {
        return;
    };
    let _ = config.warnings().len();
    let _ = config.models().count();
    for server in config.servers() {
        let _ = server.layout();
        let _ = server.custom_compression_magic_bytes();
        for conninfo in [
            server.conninfo.as_deref(),
            server.streaming_conninfo.as_deref(),
            server.effective_wal_conninfo(),
            server.effective_wal_streaming_conninfo(),
            server.primary_conninfo.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            if let Ok(replication) = ReplicationConfig::parse_with_env(conninfo, &|_| None) {
                let _ = replication.target();
            }
        }
    }
}
