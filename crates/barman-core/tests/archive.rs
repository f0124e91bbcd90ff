//! WAL archiving on real files: put-wal streams, archive-wal's checks,
//! duplicates, rejections, crash leftovers, rebuild-xlogdb and get-wal.
//!
//! Segments here are synthetic but well-formed (a PostgreSQL 15 long page
//! header, 1 MiB segment size); the end-to-end crate archives real WAL.

#![allow(clippy::cast_possible_truncation)]

use std::fs;
use std::io::{Cursor, Read};
use std::os::unix::fs::PermissionsExt;

use barman_core::archive::{
    self, ErrorKind, NoObserver, Outcome, PutWalOptions, Received, WalExpectations,
};
use barman_core::catalog::XlogDb;
use barman_core::clock::FixedClock;
use barman_testkit::catalog::names_in;
use barman_wal::{Codec, Compression, CompressionLevel, WalFileName};
use sha2::{Digest, Sha256};

mod support;

use support::{Env, SEG, SYSID, env, name, options, put, segment, xlog};

fn clock() -> FixedClock {
    FixedClock("2026-11-27T10:00:00Z".parse().unwrap())
}

fn plain(env: &Env, name: &str, codec: Option<&Codec>) -> Vec<u8> {
    let w: WalFileName = name.parse().unwrap();
    let loc = archive::locate(&env.layout, &w, false, codec)
        .unwrap()
        .unwrap();
    let mut v = Vec::new();
    archive::write_wal(&loc, false, codec, &mut v).unwrap();
    v
}

#[test]
fn archives_every_codec_byte_identical() {
    for comp in [
        None,
        Some(Compression::Gzip),
        Some(Compression::Bzip2),
        Some(Compression::Xz),
        Some(Compression::Zstd),
        Some(Compression::Lz4),
        Some(Compression::Snappy),
    ] {
        let env = env();
        let codec = comp.map(|c| Codec::builtin(c, CompressionLevel::Low).unwrap());
        for i in 1..=3 {
            put(&env, &name(i), &segment(&name(i), SYSID));
        }
        put(
            &env,
            "00000002.history",
            b"1\t0/3000000\tno recovery target specified\n",
        );
        let report = archive::archive_wal(
            &env.layout,
            &options(&env, codec.clone()),
            &clock(),
            &mut NoObserver,
        )
        .unwrap();
        assert_eq!(report.processed.len(), 4, "{comp:?}");
        assert!(
            report
                .processed
                .iter()
                .all(|p| matches!(p.outcome, Outcome::Archived(_))),
            "{report:?}"
        );
        assert_eq!(
            xlog(&env),
            [
                "000000010000000000000001",
                "000000010000000000000002",
                "000000010000000000000003",
                "00000002.history"
            ]
        );
        for i in 1..=3 {
            assert_eq!(
                plain(&env, &name(i), codec.as_ref()),
                segment(&name(i), SYSID)
            );
            let stored = fs::read(
                env.layout
                    .wals_directory()
                    .join("0000000100000000")
                    .join(name(i)),
            )
            .unwrap();
            assert_eq!(
                barman_wal::detect(&stored),
                comp.filter(|_| true),
                "{comp:?}"
            );
        }
        let entries = XlogDb::new(env.layout.xlogdb_path("pg")).read().unwrap();
        assert_eq!(
            entries[0].compression.as_deref(),
            comp.map(Compression::name)
        );
        assert!(
            env.layout
                .wals_directory()
                .join("00000002.history")
                .is_file()
        );
        assert!(names_in(env.layout.incoming_directory()).is_empty());
        // Modes: archived files 0600.
        let m = fs::metadata(
            env.layout
                .wals_directory()
                .join("0000000100000000")
                .join(name(1)),
        )
        .unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }
}

#[test]
fn rejects_truncated_foreign_junk_and_duplicates() {
    let env = env();
    let opts = options(
        &env,
        Some(Codec::builtin(Compression::Zstd, CompressionLevel::Low).unwrap()),
    );
    put(&env, &name(1), &segment(&name(1), SYSID));
    archive::archive_wal(&env.layout, &opts, &clock(), &mut NoObserver).unwrap();

    let mut truncated = segment(&name(2), SYSID);
    truncated.truncate(SEG / 2);
    put(&env, &name(2), &truncated);
    put(&env, &name(3), &segment(&name(3), SYSID + 1)); // another cluster
    put(&env, "junk.txt", b"hello");
    put(&env, "00000003.history", b"this is not a history file\n");
    let mut dup = segment(&name(1), SYSID);
    dup[5000] ^= 0xFF;
    put(&env, &name(1), &dup);
    put(&env, &format!("{}.tmp", name(4)), b"being written by cp"); // skipped
    // A wrongly named segment: the header says it is segment 5.
    put(&env, &name(6), &segment(&name(5), SYSID));

    let report = archive::archive_wal(&env.layout, &opts, &clock(), &mut NoObserver).unwrap();
    let rejected: Vec<(String, ErrorKind, String)> = report
        .rejected()
        .map(|p| match &p.outcome {
            Outcome::Rejected { kind, reason, .. } => (p.name.clone(), *kind, reason.clone()),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(rejected.len(), 6, "{rejected:?}");
    let find = |n: &str| rejected.iter().find(|r| r.0 == n).unwrap().clone();
    assert_eq!(find(&name(1)).1, ErrorKind::Duplicate);
    assert!(
        find(&name(2)).2.contains("truncated"),
        "{:?}",
        find(&name(2))
    );
    assert!(
        find(&name(3)).2.contains("another cluster"),
        "{:?}",
        find(&name(3))
    );
    assert_eq!(find("junk.txt").1, ErrorKind::Unknown);
    assert!(find("00000003.history").2.contains("history"));
    assert!(
        find(&name(6)).2.contains("xlp_pageaddr"),
        "{:?}",
        find(&name(6))
    );

    // The archived segment is untouched; nothing else entered the archive.
    assert_eq!(
        plain(&env, &name(1), opts.codec.as_ref()),
        segment(&name(1), SYSID)
    );
    assert_eq!(xlog(&env), [name(1)]);
    assert_eq!(
        names_in(&env.layout.wals_directory().join("0000000100000000")),
        [name(1)]
    );
    // Everything rejected is kept in errors/, with Barman's names.
    let errors = names_in(env.layout.errors_directory());
    assert_eq!(errors.len(), 6);
    assert!(
        errors.contains(&format!("{}.20261127T100000Z.duplicate", name(1))),
        "{errors:?}"
    );
    assert!(errors.contains(&"junk.txt.20261127T100000Z.unknown".to_owned()));
    assert_eq!(
        fs::read(
            env.layout
                .errors_directory()
                .join(format!("{}.20261127T100000Z.duplicate", name(1)))
        )
        .unwrap(),
        dup
    );
    // Only the .tmp file is left in incoming.
    assert_eq!(
        names_in(env.layout.incoming_directory()),
        [format!("{}.tmp", name(4))]
    );
}

#[test]
fn same_content_twice_is_archived_once() {
    let env = env();
    let opts = options(
        &env,
        Some(Codec::builtin(Compression::Gzip, CompressionLevel::Low).unwrap()),
    );
    put(&env, &name(1), &segment(&name(1), SYSID));
    archive::archive_wal(&env.layout, &opts, &clock(), &mut NoObserver).unwrap();
    put(&env, &name(1), &segment(&name(1), SYSID));
    let r = archive::archive_wal(&env.layout, &opts, &clock(), &mut NoObserver).unwrap();
    assert_eq!(
        r.processed[0].outcome,
        Outcome::AlreadyArchived { line_added: false }
    );
    assert_eq!(xlog(&env), [name(1)]);
}

#[test]
fn rerun_after_interruptions_completes_xlogdb_and_cleans_temps() {
    let env = env();
    let opts = options(&env, None);
    // Simulate a run killed after installing segment 1 (no xlog.db line, source still there),
    // one killed while appending segment 0's line, and a leftover temporary.
    put(&env, &name(0), &segment(&name(0), SYSID));
    archive::archive_wal(&env.layout, &opts, &clock(), &mut NoObserver).unwrap();
    let db = env.layout.xlogdb_path("pg");
    let mut text = fs::read_to_string(&db).unwrap();
    text.push_str("000000010000000000000001\t104857"); // half a line
    fs::write(&db, &text).unwrap();
    let hash = env.layout.wals_directory().join("0000000100000000");
    fs::write(hash.join(name(1)), segment(&name(1), SYSID)).unwrap();
    put(&env, &name(1), &segment(&name(1), SYSID));
    fs::write(
        hash.join(format!(".{}.999.0.tmp", name(2))),
        b"partial compressed",
    )
    .unwrap();
    put(&env, &name(2), &segment(&name(2), SYSID));

    let r = archive::archive_wal(&env.layout, &opts, &clock(), &mut NoObserver).unwrap();
    assert!(r.repaired_xlogdb_bytes > 0);
    assert_eq!(
        r.processed[0].outcome,
        Outcome::AlreadyArchived { line_added: true }
    );
    assert!(matches!(r.processed[1].outcome, Outcome::Archived(_)));
    assert_eq!(xlog(&env), [name(0), name(1), name(2)]);
    assert_eq!(names_in(&hash), [name(0), name(1), name(2)]);
    assert!(names_in(env.layout.incoming_directory()).is_empty());
}

#[test]
fn batch_size_and_lock() {
    let env = env();
    let mut opts = options(&env, None);
    opts.incoming_batch_size = 2;
    for i in 1..=5 {
        put(&env, &name(i), &segment(&name(i), SYSID));
    }
    let r = archive::archive_wal(&env.layout, &opts, &clock(), &mut NoObserver).unwrap();
    assert_eq!(r.processed.len(), 2);
    assert_eq!(xlog(&env), [name(1), name(2)]);
    // A held archive-wal lock: the run is refused, nothing happens.
    let _held = barman_core::catalog::try_acquire(
        &env.locks,
        &barman_core::catalog::LockKind::ArchiveWal("pg".into()),
    )
    .unwrap();
    let err = archive::archive_wal(&env.layout, &opts, &clock(), &mut NoObserver).unwrap_err();
    assert!(err.is_lock_busy(), "{err}");
}

#[test]
fn streaming_directory_follows_the_partial_rules() {
    let env = env();
    let mut opts = options(&env, None);
    opts.incoming = false;
    opts.streaming = true;
    let s = env.layout.streaming_directory();
    fs::write(s.join(name(1)), segment(&name(1), SYSID)).unwrap();
    fs::write(s.join(name(2)), segment(&name(2), SYSID)).unwrap();
    fs::write(
        s.join(format!("{}.partial", name(3))),
        segment(&name(3), SYSID),
    )
    .unwrap();
    archive::archive_wal(&env.layout, &opts, &clock(), &mut NoObserver).unwrap();
    assert_eq!(xlog(&env), [name(1), name(2)]);
    assert_eq!(names_in(s), [format!("{}.partial", name(3))]);
}

#[test]
fn rebuild_xlogdb_matches_what_archive_wal_wrote() {
    let env = env();
    let opts = options(
        &env,
        Some(Codec::builtin(Compression::Lz4, CompressionLevel::Low).unwrap()),
    );
    for i in 1..=4 {
        put(&env, &name(i), &segment(&name(i), SYSID));
    }
    put(&env, "00000002.history", b"1\t0/3000000\treason\n");
    archive::archive_wal(&env.layout, &opts, &clock(), &mut NoObserver).unwrap();
    let before = XlogDb::new(env.layout.xlogdb_path("pg")).read().unwrap();
    fs::remove_file(env.layout.xlogdb_path("pg")).unwrap();
    let rebuilt =
        archive::rebuild_xlogdb(&env.layout, "pg", &env.locks, opts.codec.as_ref()).unwrap();
    assert_eq!(rebuilt, before);
    assert_eq!(
        XlogDb::new(env.layout.xlogdb_path("pg")).read().unwrap(),
        before
    );
}

#[test]
fn get_wal_peek_and_partial() {
    let env = env();
    let opts = options(
        &env,
        Some(Codec::builtin(Compression::Zstd, CompressionLevel::Low).unwrap()),
    );
    for i in [1, 2, 3, 5] {
        put(&env, &name(i), &segment(&name(i), SYSID));
    }
    archive::archive_wal(&env.layout, &opts, &clock(), &mut NoObserver).unwrap();
    let start: WalFileName = name(1).parse().unwrap();
    assert_eq!(
        archive::peek(&env.layout, &start, 10, opts.codec.as_ref()).unwrap(),
        [name(1), name(2), name(3)]
    );
    assert_eq!(
        archive::peek(&env.layout, &start, 2, opts.codec.as_ref())
            .unwrap()
            .len(),
        2
    );
    let missing: WalFileName = name(4).parse().unwrap();
    assert!(
        archive::peek(&env.layout, &missing, 3, None)
            .unwrap()
            .is_empty()
    );
    // --partial finds streaming/<seg>.partial.
    let p = env
        .layout
        .streaming_directory()
        .join(format!("{}.partial", name(6)));
    fs::write(&p, segment(&name(6), SYSID)).unwrap();
    let six: WalFileName = name(6).parse().unwrap();
    assert!(
        archive::locate(&env.layout, &six, false, None)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        archive::locate(&env.layout, &six, true, None)
            .unwrap()
            .unwrap()
            .path,
        p
    );
    // --keep-compression serves the stored bytes.
    let loc = archive::locate(&env.layout, &start, false, opts.codec.as_ref())
        .unwrap()
        .unwrap();
    let mut raw = Vec::new();
    archive::write_wal(&loc, true, None, &mut raw).unwrap();
    assert_eq!(barman_wal::detect(&raw), Some(Compression::Zstd));
}

// ---- put-wal ----

fn sha256_hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(b).iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn tar_stream(files: &[(&str, &[u8])], sums: Option<(&str, String)>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (n, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        b.append_data(&mut h, n, *data).unwrap();
    }
    if let Some((n, text)) = sums {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        b.append_data(&mut h, n, text.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn put_opts() -> PutWalOptions {
    PutWalOptions {
        expectations: WalExpectations {
            system_identifier: Some(SYSID),
            segment_size: None,
        },
        codec: None,
    }
}

#[test]
fn put_wal_stream_stores_durably_and_verifies() {
    let env = env();
    let seg = segment(&name(1), SYSID);
    let sums = format!("{} *{}\n", sha256_hex(&seg), name(1));
    let stream = tar_stream(&[(&name(1), &seg)], Some(("SHA256SUMS", sums)));
    let got =
        archive::put_wal_stream(Cursor::new(&stream), &env.layout, &put_opts(), &clock()).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].outcome, Received::Stored);
    assert_eq!(
        fs::read(env.layout.incoming_directory().join(name(1))).unwrap(),
        seg
    );
    // Same stream again: idempotent.
    let got =
        archive::put_wal_stream(Cursor::new(&stream), &env.layout, &put_opts(), &clock()).unwrap();
    assert_eq!(got[0].outcome, Received::AlreadyPresent);

    // A gzip-compressed member (barman-wal-archive -z) is checked through its compression.
    let mut gz = Compression::Gzip
        .writer(Vec::new(), CompressionLevel::Low)
        .unwrap();
    std::io::Write::write_all(&mut gz, &segment(&name(2), SYSID)).unwrap();
    let gz = gz.finish().unwrap();
    let stream = tar_stream(
        &[(&format!("./{}", name(2)), &gz)],
        Some((
            "MD5SUMS",
            format!("{:x} *{}\n", md5::Md5::digest(&gz), name(2)),
        )),
    );
    archive::put_wal_stream(Cursor::new(&stream), &env.layout, &put_opts(), &clock()).unwrap();
    assert_eq!(
        fs::read(env.layout.incoming_directory().join(name(2))).unwrap(),
        gz
    );
}

#[test]
fn put_wal_refuses_bad_streams_and_leaves_nothing() {
    let env = env();
    let seg = segment(&name(1), SYSID);
    let good_sum = format!("{} *{}\n", sha256_hex(&seg), name(1));
    let mut bad_sum = good_sum.clone();
    bad_sum.replace_range(0..4, "0000");
    let mut truncated = seg.clone();
    truncated.truncate(1000);
    let foreign = segment(&name(1), 42);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (tar_stream(&[(&name(1), &seg)], Some(("SHA256SUMS", bad_sum))), "bad checksum"),
        (tar_stream(&[(&name(1), &seg)], None), "no checksum file"),
        (tar_stream(&[("notawal", &seg)], Some(("SHA256SUMS", good_sum.clone()))), "not a WAL file name"),
        (
            tar_stream(
                &[(&name(1), &truncated)],
                Some(("SHA256SUMS", format!("{} *{}\n", sha256_hex(&truncated), name(1)))),
            ),
            "truncated",
        ),
        (
            tar_stream(
                &[(&name(1), &foreign)],
                Some(("SHA256SUMS", format!("{} *{}\n", sha256_hex(&foreign), name(1)))),
            ),
            "another cluster",
        ),
        (b"definitely not a tar stream, but long enough to fill one header block of 512 bytes? no".to_vec(), "tar"),
        (tar_stream(&[(&name(1), &seg)], Some(("SHA256SUMS", good_sum.clone())))[..5000].to_vec(), "ended"),
    ];
    for (stream, expect) in cases {
        let err = archive::put_wal_stream(Cursor::new(&stream), &env.layout, &put_opts(), &clock())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "expected `{expect}` in: {err}");
        assert!(
            names_in(env.layout.incoming_directory()).is_empty(),
            "{expect}: incoming not empty: {:?}",
            names_in(env.layout.incoming_directory())
        );
    }
}

#[test]
fn put_wal_replaces_a_different_waiting_file_keeping_it_in_errors() {
    let env = env();
    let mut old = segment(&name(1), SYSID);
    old[100] ^= 1;
    put(&env, &name(1), &old);
    let seg = segment(&name(1), SYSID);
    let stream = tar_stream(
        &[(&name(1), &seg)],
        Some(("SHA256SUMS", format!("{} *{}\n", sha256_hex(&seg), name(1)))),
    );
    let got =
        archive::put_wal_stream(Cursor::new(&stream), &env.layout, &put_opts(), &clock()).unwrap();
    let Received::ReplacedDuplicate(moved) = &got[0].outcome else {
        panic!("{got:?}");
    };
    assert_eq!(fs::read(moved).unwrap(), old);
    assert_eq!(
        fs::read(env.layout.incoming_directory().join(name(1))).unwrap(),
        seg
    );
}

#[test]
fn put_wal_file_local_mode() {
    let env = env();
    let src = env.layout.backup_directory().join(name(7));
    fs::write(&src, segment(&name(7), SYSID)).unwrap();
    let r = archive::put_wal_file(&src, &env.layout, &put_opts(), &clock()).unwrap();
    assert_eq!(r.outcome, Received::Stored);
    let mut f = fs::File::open(env.layout.incoming_directory().join(name(7))).unwrap();
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    assert_eq!(v, segment(&name(7), SYSID));
}
