//! Our barman-cloud-backup writes the tars real barman-cloud writes: both
//! back up the same PostgreSQL 15 cluster (with a tablespace and a
//! directory of odd files: a long name, a name that is not ASCII, one that
//! is not UTF-8, hard and symbolic links, a FIFO, ids beyond the ustar
//! fields, mtimes on a half second) into one moto bucket in the same run,
//! and the objects are compared: keys, compression framing, every tar
//! header field by field (PAX records included), the archive's end and
//! record padding, and backup.info.
//!
//! What cannot be equal and is not compared: the gzip MTIME (the time the
//! tar was opened), the mtime of files PostgreSQL writes between the two
//! backups (pg_control, relation files at the checkpoint, ...) and the
//! checksum of those headers, the contents of such files, the
//! `backup_label` text (LSNs, times, id) and the backup.info values that
//! are times, WAL positions, the label or copy statistics.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use barman_testkit::object_storage::Moto;
use barman_testkit::{PgCluster, SERVER_OS_USER, barman_bin, chown_to, run, stage_binary};
use barman_wal::Compression;

use crate::cloud_wal::{as_server_user, barman_cloud_backup, bucket, keys_of, status, text};

/// One member of a tar as it lies in the archive.
#[derive(Debug)]
struct Raw {
    /// The `x` header block before the member, if any.
    pax_block: Option<[u8; 512]>,
    /// Its records, in order.
    pax: Vec<(String, Vec<u8>)>,
    /// The ustar header block.
    header: [u8; 512],
    /// The member's name (the `path` record, else the header's).
    name: Vec<u8>,
    /// The data of a regular file.
    data: Vec<u8>,
}

impl Raw {
    fn name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    fn record(&self, key: &str) -> Option<&[u8]> {
        self.pax
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    fn type_flag(&self) -> u8 {
        self.header[156]
    }
}

/// A NUL-terminated field.
fn field(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// An octal number field.
fn octal(bytes: &[u8]) -> u64 {
    let text = std::str::from_utf8(field(bytes)).unwrap().trim();
    if text.is_empty() {
        0
    } else {
        u64::from_str_radix(text, 8).unwrap()
    }
}

/// The members of a tar, and where its end-of-archive blocks start.
fn parse_tar(bytes: &[u8]) -> (Vec<Raw>, usize) {
    let block = |at: usize| -> [u8; 512] { bytes[at..at + 512].try_into().unwrap() };
    let mut members = Vec::new();
    let mut at = 0;
    loop {
        let mut header = block(at);
        if header.iter().all(|&b| b == 0) {
            return (members, at);
        }
        let mut pax_block = None;
        let mut pax = Vec::new();
        if header[156] == b'x' {
            let size = usize::try_from(octal(&header[124..136])).unwrap();
            let mut records = &bytes[at + 512..at + 512 + size];
            while !records.is_empty() {
                let space = records.iter().position(|&b| b == b' ').unwrap();
                let len: usize = std::str::from_utf8(&records[..space])
                    .unwrap()
                    .parse()
                    .unwrap();
                let record = &records[space + 1..len - 1];
                let eq = record.iter().position(|&b| b == b'=').unwrap();
                pax.push((
                    String::from_utf8(record[..eq].to_vec()).unwrap(),
                    record[eq + 1..].to_vec(),
                ));
                assert_eq!(records[len - 1], b'\n');
                records = &records[len..];
            }
            pax_block = Some(header);
            at += 512 + size.next_multiple_of(512);
            header = block(at);
        }
        // The checksum is the sum of the block with its field as spaces.
        let mut spaced = header;
        spaced[148..156].copy_from_slice(b"        ");
        let sum: u64 = spaced.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(octal(&header[148..156]), sum, "checksum at {at}");
        let name = pax
            .iter()
            .find(|(k, _)| k == "path")
            .map_or_else(|| field(&header[..100]).to_vec(), |(_, v)| v.clone());
        let size = usize::try_from(octal(&header[124..136])).unwrap();
        let data = if header[156] == b'0' {
            bytes[at + 512..at + 512 + size].to_vec()
        } else {
            Vec::new()
        };
        at += 512 + size.next_multiple_of(512);
        members.push(Raw {
            pax_block,
            pax,
            header,
            name,
            data,
        });
    }
}

/// The fields of a ustar header block: name, offset, length.
const FIELDS: [(&str, usize, usize); 17] = [
    ("name", 0, 100),
    ("mode", 100, 8),
    ("uid", 108, 8),
    ("gid", 116, 8),
    ("size", 124, 12),
    ("mtime", 136, 12),
    ("chksum", 148, 8),
    ("typeflag", 156, 1),
    ("linkname", 157, 100),
    ("magic", 257, 6),
    ("version", 263, 2),
    ("uname", 265, 32),
    ("gname", 297, 32),
    ("devmajor", 329, 8),
    ("devminor", 337, 8),
    ("prefix", 345, 155),
    ("padding", 500, 12),
];

/// Fails naming every field (but `skip`) in which two header blocks
/// differ, with both values.
fn assert_same_fields(a: &[u8; 512], b: &[u8; 512], skip: &[&str], context: &str) {
    let differ: Vec<String> = FIELDS
        .iter()
        .filter(|(name, at, len)| !skip.contains(name) && a[*at..at + len] != b[*at..at + len])
        .map(|(name, at, len)| {
            format!(
                "{name}: barman-cloud \"{}\", barman-rs \"{}\"",
                a[*at..at + len].escape_ascii(),
                b[*at..at + len].escape_ascii()
            )
        })
        .collect();
    assert!(differ.is_empty(), "{context}: {}", differ.join("; "));
}

/// Python's `round()` of the float in a PAX `mtime` record.
fn rounded(mtime: &[u8]) -> u64 {
    let value: f64 = std::str::from_utf8(mtime).unwrap().parse().unwrap();
    // A float as Python's `str()` prints it: digits, a dot, digits.
    let text = std::str::from_utf8(mtime).unwrap();
    assert!(
        text.split_once('.').is_some_and(|(a, b)| !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())),
        "{text}"
    );
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let r = value.round_ties_even() as u64;
    r
}

/// Files whose contents (so sizes) PostgreSQL cannot change between the
/// two backups of an idle cluster: the odd files and the configuration.
fn fixed_contents(name: &str) -> bool {
    name.starts_with("extra/")
        || matches!(
            name,
            "./PG_VERSION" | "./postgresql.conf" | "./pg_hba.conf" | "./pg_ident.conf"
        )
}

/// Compares one tar of theirs and ours, member for member; the number of
/// members.
fn compare_tars(what: &str, theirs: &[u8], ours: &[u8]) -> usize {
    for (who, tar) in [("barman-cloud", theirs), ("barman-rs", ours)] {
        assert_eq!(tar.len() % 10240, 0, "{what} {who}: padded to a record");
    }
    let (t, t_end) = parse_tar(theirs);
    let (o, o_end) = parse_tar(ours);
    let t_names: Vec<String> = t.iter().map(Raw::name).collect();
    let o_names: Vec<String> = o.iter().map(Raw::name).collect();
    if t_names != o_names {
        let first = t_names
            .iter()
            .zip(&o_names)
            .position(|(a, b)| a != b)
            .unwrap_or(t_names.len().min(o_names.len()));
        let from = first.saturating_sub(3);
        panic!(
            "{what}: members differ from #{first} ({} vs {} members)\nbarman-cloud: {:?}\nbarman-rs:    {:?}",
            t_names.len(),
            o_names.len(),
            &t_names[from..(first + 5).min(t_names.len())],
            &o_names[from..(first + 5).min(o_names.len())],
        );
    }
    let mut mtimes_differ = Vec::new();
    for (a, b) in t.iter().zip(&o) {
        let name = a.name();
        let volatile_size = name == "backup_label";
        // The PAX records: the same keys in the same order, the same
        // values but for mtime.
        let keys = |m: &Raw| m.pax.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(keys(a), keys(b), "{what} {name}: PAX keys");
        for ((key, va), (_, vb)) in a.pax.iter().zip(&b.pax) {
            if key != "mtime" {
                assert_eq!(va, vb, "{what} {name}: PAX {key}");
            }
        }
        // The x header: all but its size (the mtime's digits) and checksum.
        assert_eq!(
            a.pax_block.is_some(),
            b.pax_block.is_some(),
            "{what} {name}"
        );
        if let (Some(pa), Some(pb)) = (&a.pax_block, &b.pax_block) {
            assert_eq!(field(&pa[..100]), b"././@PaxHeader", "{what} {name}");
            assert_same_fields(
                pa,
                pb,
                &["size", "chksum"],
                &format!("{what} {name}: x header"),
            );
        }
        // The ustar header: every field but mtime and checksum (and the
        // size of backup_label), magic and version `ustar\0` `00`.
        let (ha, hb) = (&a.header, &b.header);
        assert_eq!(&ha[257..265], b"ustar\x0000", "{what} {name}: magic");
        let skip: &[&str] = if volatile_size {
            &["mtime", "chksum", "size"]
        } else {
            &["mtime", "chksum"]
        };
        assert_same_fields(ha, hb, skip, &format!("{what} {name}: header"));
        // The ustar mtime is the PAX mtime rounded half to even.
        for m in [a, b] {
            if let Some(mtime) = m.record("mtime") {
                assert_eq!(octal(&m.header[136..148]), rounded(mtime), "{what} {name}");
            }
        }
        let same_mtime = a.record("mtime") == b.record("mtime") && ha[136..148] == hb[136..148];
        if same_mtime && !volatile_size {
            // Then nothing differs, the checksums included.
            assert_same_fields(ha, hb, &[], &format!("{what} {name}: whole header"));
            if let (Some(pa), Some(pb)) = (&a.pax_block, &b.pax_block) {
                assert_same_fields(pa, pb, &[], &format!("{what} {name}: whole x header"));
            }
        } else {
            mtimes_differ.push(name.clone());
        }
        if fixed_contents(&name) {
            assert_eq!(a.data, b.data, "{what} {name}: contents");
            assert!(same_mtime, "{what} {name}: mtime of an unchanged file");
        }
    }
    // The end: two zero blocks then zeros up to the record, the same length.
    for (who, tar, end) in [("barman-cloud", theirs, t_end), ("barman-rs", ours, o_end)] {
        assert!(tar[end..].iter().all(|&b| b == 0), "{what} {who}");
        assert!(tar.len() - end >= 1024, "{what} {who}: two zero blocks");
        assert!(
            tar.len() - end < 1024 + 10240,
            "{what} {who}: one record at most"
        );
    }
    assert_eq!(theirs.len(), ours.len(), "{what}: archive length");
    eprintln!(
        "{what}: {} members alike; mtime changed between the backups (not compared) for {}: {:?}",
        t.len(),
        mtimes_differ.len(),
        mtimes_differ
    );
    t.len()
}

/// What both backups of the same cluster must show whatever the writer.
fn check_members(what: &str, tar: &[u8], data: bool) {
    let (members, _) = parse_tar(tar);
    let by_name: BTreeMap<String, &Raw> = members.iter().map(|m| (m.name(), m)).collect();
    if !data {
        assert!(
            members.iter().all(|m| m.name().starts_with("PG_15_")),
            "{what}"
        );
        return;
    }
    let names: Vec<String> = members.iter().map(Raw::name).collect();
    assert_eq!(names[0], "./", "{what}");
    assert_eq!(
        &names[names.len() - 2..],
        ["global/pg_control", "backup_label"],
        "{what}"
    );
    let label = members.last().unwrap();
    assert!(
        label.pax_block.is_none(),
        "{what}: backup_label has no x header"
    );
    assert_eq!(
        (
            octal(&label.header[100..108]),
            octal(&label.header[108..116])
        ),
        (0o644, 0),
        "{what}"
    );
    assert_eq!(octal(&label.header[136..148]), 0, "{what}");
    assert!(
        members[..members.len() - 1]
            .iter()
            .all(|m| m.record("mtime").is_some()),
        "{what}: every member but backup_label carries a float mtime"
    );
    let long = names
        .iter()
        .find(|n| n.starts_with("extra/dddd") && n.ends_with("ffff"))
        .unwrap_or_else(|| panic!("{what}: {names:?}"));
    assert!(by_name[long].record("path").is_some(), "{what}");
    assert!(by_name["extra/café"].record("path").is_some(), "{what}");
    let binary = members
        .iter()
        .find(|m| m.name == b"extra/\xff\xfe")
        .unwrap_or_else(|| panic!("{what}: {names:?}"));
    assert_eq!(binary.pax[0].0, "hdrcharset", "{what}");
    assert_eq!(
        by_name["extra/half"].record("mtime"),
        Some(&b"1700000000.5"[..])
    );
    assert_eq!(
        by_name["extra/whole"].record("mtime"),
        Some(&b"1700000000.0"[..])
    );
    assert_eq!(by_name["extra/bigid"].record("uid"), Some(&b"3000000"[..]));
    assert_eq!(
        field(&by_name["extra/foreign"].header[265..297]),
        b"",
        "{what}"
    );
    assert_eq!(field(&by_name["extra/hard1"].header[265..297]), b"postgres");
    assert_eq!(by_name["extra/fifo"].type_flag(), b'6', "{what}");
    assert_eq!(by_name["extra/link"].type_flag(), b'2', "{what}");
    assert!(
        by_name["extra/longlink"].record("linkpath").is_some(),
        "{what}"
    );
    let hard: Vec<u8> = ["extra/hard1", "extra/hard2"]
        .iter()
        .map(|n| by_name[*n].type_flag())
        .collect();
    assert!(hard == b"01" || hard == b"10", "{what}: one hard link");
    // A link to a directory is neither a member nor followed.
    assert!(!by_name.contains_key("extra/dirlink"), "{what}");
    assert!(!names.iter().any(|n| n.starts_with("extra/dirlink/")));
    // Barman's rules: WAL contents, postmaster.pid out; the temp-relation
    // pattern (its `[0-9]` is a literal) keeps `t3_16384`.
    assert!(by_name.contains_key("pg_wal/"), "{what}");
    assert!(!names.iter().any(|n| n.starts_with("pg_wal/0")), "{what}");
    assert!(!by_name.contains_key("pg_wal/archive_status/"), "{what}");
    assert!(!by_name.contains_key("./postmaster.pid"), "{what}");
    assert!(by_name.contains_key("extra/5/t3_16384"), "{what}");
}

/// The key of a tar or backup.info below `base/<id>/`, the id replaced.
fn relative(key: &str, server: &str) -> String {
    let rest = key
        .strip_prefix(&format!("pg/{server}/"))
        .unwrap_or_else(|| panic!("{key}"));
    let parts: Vec<&str> = rest.split('/').collect();
    assert_eq!(parts.len(), 3, "{key}");
    assert_eq!(parts[0], "base", "{key}");
    format!("base/<id>/{}", parts[2])
}

/// `key=value` lines of a backup.info.
fn info_fields(bytes: &[u8]) -> Vec<(String, String)> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Compares the two servers' backups (one each): keys, backup.info, tars.
fn compare_backups(moto: &Moto, theirs: &str, ours: &str, ext: &str, before: u64) {
    let store = bucket(moto, "s3://format");
    let keys = |server: &str| keys_of(moto, "format", &format!("pg/{server}"));
    let (tk, ok) = (keys(theirs), keys(ours));
    let rel = |ks: &[String], server: &str| {
        let mut r: Vec<String> = ks.iter().map(|k| relative(k, server)).collect();
        r.sort();
        r
    };
    // Ours has one object more: the checksum manifest barman-cloud ignores.
    let manifest = "base/<id>/barman-rs.manifest.json".to_owned();
    let mut ours_keys = rel(&ok, ours);
    assert!(ours_keys.contains(&manifest), "{ok:?}");
    ours_keys.retain(|k| *k != manifest);
    assert_eq!(rel(&tk, theirs), ours_keys, "object keys");
    assert!(
        rel(&tk, theirs).contains(&format!("base/<id>/data.tar.{ext}")),
        "{tk:?}"
    );
    let get = |key: &str| {
        let mut bytes = Vec::new();
        store.get(key, &mut bytes).unwrap();
        bytes
    };
    let find = |ks: &[String], server: &str, rel_key: &str| {
        ks.iter()
            .find(|k| relative(k, server) == rel_key)
            .unwrap()
            .clone()
    };

    // backup.info: the same fields in the same order; the same values but
    // for those of the moment each backup ran: its id and times, its WAL
    // positions (one backup after the other), the label that holds them,
    // and the copy statistics (durations; their keys are compared).
    let t_info = info_fields(&get(&find(&tk, theirs, "base/<id>/backup.info")));
    let o_info = info_fields(&get(&find(&ok, ours, "base/<id>/backup.info")));
    let names = |f: &[(String, String)]| f.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(names(&t_info), names(&o_info), "backup.info field names");
    let differ = [
        "backup_id",
        "begin_time",
        "end_time",
        "begin_wal",
        "end_wal",
        "begin_xlog",
        "end_xlog",
        "begin_offset",
        "end_offset",
        "backup_label",
        "copy_stats",
    ];
    for ((key, tv), (_, ov)) in t_info.iter().zip(&o_info) {
        if !differ.contains(&key.as_str()) {
            assert_eq!(tv, ov, "backup.info {key}");
        }
    }
    let value = |f: &[(String, String)], k: &str| {
        f.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    for k in [
        "status",
        "compression",
        "mode",
        "server_name",
        "backup_name",
    ] {
        eprintln!("backup.info {k}: {}", value(&t_info, k));
    }
    // copy_stats: the same keys.
    let stat_keys = |v: String| {
        v.split('\'')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        stat_keys(value(&t_info, "copy_stats")),
        stat_keys(value(&o_info, "copy_stats")),
        "copy_stats keys"
    );

    // The tars.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for rel_key in rel(&tk, theirs) {
        if rel_key.ends_with("backup.info") {
            continue;
        }
        let t_bytes = get(&find(&tk, theirs, &rel_key));
        let o_bytes = get(&find(&ok, ours, &rel_key));
        let compression = match ext {
            "gz" => Compression::Gzip,
            "lz4" => Compression::Lz4,
            other => panic!("{other}"),
        };
        let unpack = |bytes: &[u8]| {
            let mut plain = Vec::new();
            compression
                .reader(bytes)
                .unwrap()
                .read_to_end(&mut plain)
                .unwrap();
            plain
        };
        let (t_tar, o_tar) = (unpack(&t_bytes), unpack(&o_bytes));
        if compression == Compression::Gzip {
            for (who, gz, tar) in [
                ("barman-cloud", &t_bytes, &t_tar),
                ("barman-rs", &o_bytes, &o_tar),
            ] {
                // MTIME: when the tar was opened.
                let mtime = u64::from(u32::from_le_bytes(gz[4..8].try_into().unwrap()));
                assert!(
                    (before..=now).contains(&mtime),
                    "{rel_key} {who}: gzip MTIME {mtime} not in {before}..{now}"
                );
                // One member: its ISIZE is the whole tar's length.
                let isize = u32::from_le_bytes(gz[gz.len() - 4..].try_into().unwrap());
                assert_eq!(u64::from(isize), tar.len() as u64 % (1 << 32), "{who}");
            }
            // ID, CM, FLG; XFL, OS; the (empty) FNAME.
            assert_eq!(t_bytes[..4], o_bytes[..4], "{rel_key}: gzip ID, CM, FLG");
            assert_eq!(t_bytes[8..11], o_bytes[8..11], "{rel_key}: XFL, OS, FNAME");
            assert_eq!(t_bytes[..4], [0x1f, 0x8b, 8, 8]);
            assert_eq!(t_bytes[8..11], [2, 255, 0]);
        } else {
            // Magic, FLG, BD, HC; the end mark without a checksum.
            assert_eq!(t_bytes[..7], o_bytes[..7], "{rel_key}: lz4 frame header");
            assert_eq!(t_bytes[t_bytes.len() - 4..], [0, 0, 0, 0]);
            assert_eq!(o_bytes[o_bytes.len() - 4..], [0, 0, 0, 0]);
        }
        let what = format!("{rel_key} ({theirs} / {ours})");
        let data = rel_key.contains("/data.");
        check_members(&format!("{what} barman-cloud"), &t_tar, data);
        check_members(&format!("{what} barman-rs"), &o_tar, data);
        compare_tars(&what, &t_tar, &o_tar);
    }
}

/// The odd files, in `PGDATA/extra`.
fn odd_files(data_dir: &Path) {
    let extra = data_dir.join("extra");
    let long_dir = extra.join("d".repeat(40));
    fs::create_dir_all(&long_dir).unwrap();
    fs::create_dir_all(extra.join("empty")).unwrap();
    fs::create_dir_all(extra.join("5")).unwrap();
    fs::write(long_dir.join("f".repeat(80)), "long name\n").unwrap();
    fs::write(extra.join("café"), "utf-8 name\n").unwrap();
    fs::write(
        extra.join(std::ffi::OsStr::from_bytes(b"\xff\xfe")),
        "not utf-8\n",
    )
    .unwrap();
    fs::write(extra.join("5/t3_16384"), "temp relation?\n").unwrap();
    fs::write(extra.join("hard1"), "two names\n").unwrap();
    fs::hard_link(extra.join("hard1"), extra.join("hard2")).unwrap();
    std::os::unix::fs::symlink("../PG_VERSION", extra.join("link")).unwrap();
    std::os::unix::fs::symlink(format!("/{}", "t".repeat(120)), extra.join("longlink")).unwrap();
    std::os::unix::fs::symlink("../base", extra.join("dirlink")).unwrap();
    run(Command::new("mkfifo").arg(extra.join("fifo"))).unwrap();
    for (name, time) in [("half", "@1700000000.5"), ("whole", "@1700000000")] {
        fs::write(extra.join(name), name).unwrap();
        run(Command::new("touch")
            .args(["-h", "-d", time])
            .arg(extra.join(name)))
        .unwrap();
    }
    fs::write(extra.join("foreign"), "no user, no group\n").unwrap();
    fs::write(extra.join("bigid"), "ids beyond 7 octal digits\n").unwrap();
    run(Command::new("chown")
        .args(["-R", &format!("{SERVER_OS_USER}:")])
        .arg(&extra))
    .unwrap();
    run(Command::new("chown")
        .args(["-h", "54321:54321"])
        .arg(extra.join("foreign")))
    .unwrap();
    run(Command::new("chown")
        .args(["-h", "3000000:3000000"])
        .arg(extra.join("bigid")))
    .unwrap();
}

#[test]
fn our_tars_match_barman_clouds_member_for_member() {
    let started = Instant::now();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let moto = Moto::start().expect("moto_server (scripts/install-test-deps.sh installs it)");
    moto.create_bucket("format").unwrap();
    let staged = tempfile::Builder::new()
        .prefix("barman-e2e-format-")
        .tempdir_in("/tmp")
        .unwrap();
    barman_testkit::chmod(staged.path(), 0o755).unwrap();
    let ours_tool = stage_binary(
        &barman_bin("barman-cloud-backup").expect("build the barman binaries"),
        staged.path(),
    )
    .unwrap();
    // An idle cluster (no autovacuum) so that the two backups see the
    // same files.
    let pg = PgCluster::builder()
        .archive_command("true")
        .conf("autovacuum = off")
        .start()
        .expect("start PostgreSQL 15");
    let ts = pg.server_owned_dir("ts1").unwrap();
    chown_to(&ts, SERVER_OS_USER).unwrap();
    pg.psql(&format!(
        "CREATE TABLESPACE ts1 LOCATION '{}'",
        ts.display()
    ))
    .unwrap();
    pg.psql("CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g FROM generate_series(1, 1000) g")
        .unwrap();
    odd_files(pg.data_dir());
    pg.psql("CHECKPOINT").unwrap();
    let port = pg.port().to_string();
    let connection = ["-h", "127.0.0.1", "-p", &port, "-U", "postgres"];

    let mut timings = Vec::new();
    for (flag, ext) in [("--gzip", "gz"), ("--lz4", "lz4")] {
        let theirs = format!("theirs-{ext}");
        let ours = format!("ours-{ext}");
        let common = [flag, "--immediate-checkpoint", "-n", "same-name"];
        let t0 = Instant::now();
        let out = barman_cloud_backup(
            &moto,
            &pg,
            &[&common[..], &["s3://format/pg", &theirs]].concat(),
        );
        assert_eq!(status(&out), 0, "barman-cloud {flag}: {}", text(&out));
        let t1 = Instant::now();
        let out = as_server_user(
            &ours_tool,
            &moto,
            &[&common[..], &connection[..], &["s3://format/pg", &ours]].concat(),
        );
        assert_eq!(status(&out), 0, "barman-rs {flag}: {}", text(&out));
        let t2 = Instant::now();
        compare_backups(&moto, &theirs, &ours, ext, before);
        timings.push(format!(
            "{flag}: barman-cloud {:.1?}, barman-rs {:.1?}, comparison {:.1?}",
            t1 - t0,
            t2 - t1,
            t2.elapsed()
        ));
    }
    eprintln!("{}; total {:.1?}", timings.join("; "), started.elapsed());
}
