//! What the integration tests share: synthetic WAL segments.

#![allow(clippy::cast_possible_truncation)]

use std::fs;
use std::path::PathBuf;

use barman_core::ServerLayout;
use barman_core::archive::{ArchiveOptions, WalExpectations};
use barman_core::catalog::XlogDb;
use barman_wal::Codec;

/// The segment size of the synthetic segments (1 MiB).
pub const SEG: usize = 1 << 20;
/// The system identifier they carry.
pub const SYSID: u64 = 7_300_000_000_000_000_001;

/// A well-formed 1 MiB segment `name` of cluster `sysid`, with some
/// pseudo-random content after the header.
pub fn segment(name: &str, sysid: u64) -> Vec<u8> {
    let seg: barman_wal::SegmentName = name.parse().unwrap();
    let mut b = vec![0u8; SEG];
    b[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
    b[2..4].copy_from_slice(&2u16.to_le_bytes());
    b[4..8].copy_from_slice(&seg.timeline().get().to_le_bytes());
    let addr = (u64::from(seg.log()) << 32) | (u64::from(seg.seg()) * SEG as u64);
    b[8..16].copy_from_slice(&addr.to_le_bytes());
    b[24..32].copy_from_slice(&sysid.to_le_bytes());
    b[32..36].copy_from_slice(&(SEG as u32).to_le_bytes());
    b[36..40].copy_from_slice(&8192u32.to_le_bytes());
    let mut x: u32 = seg.seg().wrapping_mul(2_654_435_761).wrapping_add(1);
    for (i, byte) in b[40..].iter_mut().enumerate() {
        if i % 64 < 8 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *byte = x as u8;
        }
    }
    b
}

/// The name of segment `i` of timeline 1.
pub fn name(i: u32) -> String {
    format!("0000000100000000{i:08X}")
}

/// A server layout (`pg`) and a lock directory in a temporary directory.
pub struct Env {
    _dir: tempfile::TempDir,
    /// The server's directories.
    pub layout: ServerLayout,
    /// The lock directory.
    pub locks: PathBuf,
}

/// A fresh [`Env`].
pub fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let layout = ServerLayout::new(dir.path().join("pg"));
    layout.ensure().unwrap();
    let locks = dir.path().to_path_buf();
    Env {
        _dir: dir,
        layout,
        locks,
    }
}

/// archive-wal options for `incoming/` with `codec`.
pub fn options(env: &Env, codec: Option<Codec>) -> ArchiveOptions {
    ArchiveOptions {
        server: "pg".into(),
        lock_directory: env.locks.clone(),
        codec,
        expectations: WalExpectations {
            system_identifier: Some(SYSID),
            segment_size: None,
        },
        incoming: true,
        incoming_batch_size: 0,
        streaming: false,
        streaming_batch_size: 0,
    }
}

/// Writes `bytes` as `incoming/NAME`.
pub fn put(env: &Env, name: &str, bytes: &[u8]) {
    fs::write(env.layout.incoming_directory().join(name), bytes).unwrap();
}

/// The names xlog.db lists.
pub fn xlog(env: &Env) -> Vec<String> {
    XlogDb::new(env.layout.xlogdb_path("pg"))
        .read()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}
