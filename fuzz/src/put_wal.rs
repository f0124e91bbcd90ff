//! The put-wal tar stream: what `barman put-wal` reads from
//! `barman-wal-archive` on the PostgreSQL host.

use std::path::Path;

use barman_core::archive::{PutWalOptions, WalExpectations, put_wal_stream};
use barman_core::clock::FixedClock;
use barman_core::{Error, ServerLayout};
use barman_wal::WalSegmentSize;
use barman_wal::put_wal_stream as stream;

/// The system identifier of the seeds' WAL (a PostgreSQL 15 cluster made
/// with `initdb --wal-segsize=1`).
const SYSTEM_IDENTIFIER: u64 = 7_716_417_279_500_560_395;

/// Names the round trip mode sends.
const NAMES: [&str; 5] = [
    "000000010000000000000001",
    "000000010000000000000002.partial",
    "00000002.history",
    "000000010000000000000001.00000028.backup",
    "000000020000000100000003",
];

/// A put-wal stream, received into `incoming/` of a fresh sandbox. The
/// first byte chooses the mode: bit 0 clear, the rest is the stream as
/// sent; bit 0 set, the rest describes WAL files that the CLI's own writer
/// (`barman_wal::put_wal_stream`, what `barman-wal-archive` sends) turns into a stream, which must
/// never be refused as a malformed stream or for a bad checksum (bit 2:
/// `MD5SUMS` instead of `SHA256SUMS`). Bit 1 makes the archive expect the
/// seeds' system identifier and a 1 MiB segment size.
///
/// Whatever the stream, a failed put-wal leaves nothing in `incoming/`.
pub fn put_wal(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let sandbox = crate::sandbox();
    let layout = ServerLayout::new(sandbox.path().join("pg"));
    let expectations = if mode & 2 == 0 {
        WalExpectations::default()
    } else {
        WalExpectations {
            system_identifier: Some(SYSTEM_IDENTIFIER),
            segment_size: Some(WalSegmentSize::new(1 << 20).expect("1 MiB segments")),
        }
    };
    let options = PutWalOptions {
        expectations,
        codec: None,
    };
    let clock = FixedClock(jiff::Timestamp::from_second(1_700_000_000).expect("a timestamp"));
    if mode & 1 == 0 {
        let result = put_wal_stream(rest, &layout, &options, &clock);
        if result.is_err() {
            assert_empty(layout.incoming_directory());
        }
        return;
    }
    let stream = written_by_the_cli(rest, mode & 4 != 0);
    match put_wal_stream(&stream[..], &layout, &options, &clock) {
        Err(e @ Error::PutWalStream(_)) => panic!("the CLI's stream is refused: {e}"),
        Err(e @ Error::WalRejected { .. }) if e.to_string().contains("bad checksum") => {
            panic!("the CLI's checksum is refused: {e}")
        }
        Err(_) => assert_empty(layout.incoming_directory()),
        Ok(_) => {}
    }
}

/// The stream `barman-wal-archive` sends for the files `data` describes:
/// a count, then for each file a name index and a content length (in
/// 64-byte units); a name already sent is skipped.
fn written_by_the_cli(data: &[u8], md5: bool) -> Vec<u8> {
    let (count, mut rest) = data.split_first().map_or((0, data), |(c, r)| (*c, r));
    let mut files = Vec::new();
    for _ in 0..=count % 3 {
        let (&name, after) = rest.split_first().unwrap_or((&0, &[]));
        let (&len, after) = after.split_first().unwrap_or((&0, &[]));
        let len = (usize::from(len) * 64).min(after.len());
        let name = NAMES[usize::from(name) % NAMES.len()];
        // One file per name: the checksum file has one line per name.
        if files.iter().all(|(n, _)| *n != name) {
            files.push((name, &after[..len]));
        }
        rest = &after[len..];
    }
    let members = files
        .iter()
        .map(|(name, content)| stream::Member {
            name,
            size: content.len() as u64,
            mtime: 1_700_000_000,
            uid: 0,
            gid: 0,
            content: *content,
        })
        .collect();
    let hash = if md5 {
        stream::HashKind::Md5
    } else {
        stream::HashKind::Sha256
    };
    let mut out = Vec::new();
    assert!(
        stream::write_stream(&mut out, members, hash).is_ok(),
        "writing a stream into memory failed"
    );
    out
}

fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "a failed put-wal left files in incoming/: {left:?}"
    );
}
