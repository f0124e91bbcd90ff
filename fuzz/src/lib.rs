//! Fuzz targets for the parsers of barman-rs that read untrusted bytes, and
//! a bounded runner for them (`runner`) that the test suite uses.
//!
//! Each target is a `fn(&[u8])` that feeds the bytes to a parser the way
//! barman-rs receives them, checks what must hold whatever the input (a
//! value read back after writing it is equal, a failed operation leaves
//! nothing behind), and panics otherwise. The parsers themselves must
//! never panic, hang or allocate without bound: every such finding is a
//! bug of the parser. `docs/fuzzing.md` says how to run a campaign with
//! AFL++ (`fuzz/afl/`) and what the campaigns found.

mod agent;
mod catalog;
mod config;
mod put_wal;
mod replication;
pub mod runner;
mod wal;

pub use agent::{agent_client, agent_serve, client_requests, populate_data_dir};
pub use catalog::{backup_info, xlog_db};
pub use config::barman_conf;
pub use put_wal::put_wal;
pub use replication::replication;
pub use wal::wal_header;

/// A fuzz target: its name (also its corpus directory under
/// `fuzz/corpus/`), its function, and tokens the bounded runner's
/// mutations insert.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The name.
    pub name: &'static str,
    /// The function.
    pub run: fn(&[u8]),
    /// Tokens of the format.
    pub tokens: &'static [&'static [u8]],
}

/// Every target.
pub const TARGETS: [Target; 8] = [
    Target {
        name: "agent_client",
        run: agent_client,
        tokens: &[
            b"M\0\0\0",
            b"D\0\0\0",
            b"Z\0\0\0",
            b"E\0\0\0\x02{}",
            b"X\0\0\0",
            b"\"op\":",
            b"\"size\":",
            b"\"kind\":\"unsafe_path\"",
            b"\n",
        ],
    },
    Target {
        name: "agent_serve",
        run: agent_serve,
        tokens: &[
            b"M\0\0\0",
            b"D\0\0\0",
            b"E\0\0\0\x02{}",
            b"\"op\":\"write_file\"",
            b"\"op\":\"remove\"",
            b"\"path\":\"data/",
            b"/../",
            b"\"size\":",
        ],
    },
    Target {
        name: "put_wal",
        run: put_wal,
        tokens: &[
            b"ustar\0",
            b"SHA256SUMS",
            b"MD5SUMS",
            b" *",
            b"000000010000000000000001",
            b".history",
            b"././@LongLink",
        ],
    },
    Target {
        name: "backup_info",
        run: backup_info,
        tokens: &[
            b"=",
            b"\n",
            b"None",
            b"status=DONE",
            b"'",
            b"\\x",
            b"\\u",
            b"(",
            b"[",
            b"{",
            b"\"backups\":",
        ],
    },
    Target {
        name: "xlog_db",
        run: xlog_db,
        tokens: &[
            b"\t",
            b"\n",
            b"None",
            b"000000010000000000000001",
            b".history",
            b"1e308",
            b"gzip",
        ],
    },
    Target {
        name: "barman_conf",
        run: barman_conf,
        tokens: &[
            b"[barman]\n",
            b"[pg]\n",
            b"[DEFAULT]\n",
            b"%(",
            b")s",
            b"%%",
            b" = ",
            b"\n  ",
            b"conninfo = ",
            b"model = true\n",
            b"cluster = ",
        ],
    },
    Target {
        name: "wal_header",
        run: wal_header,
        tokens: &[
            b"\x10\xd1",
            b"\x02\0",
            b"\0\0\x10\0",
            b"\0\x20\0\0",
            b"\x1f\x8b",
            b"\x28\xb5\x2f\xfd",
            b"BZh",
            b"\t0/",
            b"START WAL LOCATION",
        ],
    },
    Target {
        name: "replication",
        run: replication,
        tokens: &[
            b"R\0\0\0\x08\0\0\0\0",
            b"Z\0\0\0\x05I",
            b"S\0\0\0",
            b"T\0\0\0",
            b"D\0\0\0",
            b"W\0\0\0",
            b"d\0\0\0",
            b"c\0\0\0\x04",
            b"C\0\0\0",
            b"E\0\0\0",
            b"H\0\0\0",
            b"ustar\0",
        ],
    },
];

/// A fresh directory for one run of a target, in `/dev/shm` when it is
/// writable (fsync and syncfs cost nothing there), else in the usual
/// temporary directory; removed when dropped.
pub(crate) fn sandbox() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    tempfile::Builder::new()
        .prefix("barman-fuzz-")
        .tempdir_in(shm)
        .or_else(|_| tempfile::Builder::new().prefix("barman-fuzz-").tempdir())
        .expect("a temporary directory")
}
