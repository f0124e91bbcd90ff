//! Writes the seed corpus of every target under `fuzz/corpus/` (run from
//! the repository: `cargo run -p barman-fuzz --example make_corpus`).
//!
//! Seeds are small real samples: the Barman 3.20.1 fixture catalog and
//! configuration (when `../shared/fixtures/barman-3.20.1` or
//! `BARMAN_FIXTURES` exists), the head of a real PostgreSQL 15 WAL segment
//! (`corpus/wal_header/pg15-segment-head`, kept in the corpus), agent
//! sessions recorded between a real client and a real agent, put-wal
//! streams written like `barman-wal-archive`'s, and replication server
//! messages encoded as PostgreSQL sends them.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use barman_copy::{AgentSource, Roots};
use barman_wal::{Compression, CompressionLevel};
use sha2::{Digest, Sha256};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let fixtures = std::env::var_os("BARMAN_FIXTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/barman-3.20.1"),
        PathBuf::from,
    );
    let segment_head = std::fs::read(root.join("wal_header/pg15-segment-head"))?;
    agent(&root)?;
    put_wal(&root, &segment_head)?;
    catalog(&root, &fixtures)?;
    conf(&root, &fixtures)?;
    wal(&root)?;
    replication(&root)?;
    Ok(())
}

fn seed(root: &Path, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn prefixed(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend_from_slice(bytes);
    out
}

/// A writer that keeps a copy of what passes through it.
struct Tee<W> {
    inner: W,
    copy: Arc<Mutex<Vec<u8>>>,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.copy
            .lock()
            .expect("tee lock")
            .extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A session between a real client making the fuzz target's requests and
/// a real agent: (what the client sent, what the agent sent).
fn record_session(compress: bool) -> Result<(Vec<u8>, Vec<u8>)> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    barman_fuzz::populate_data_dir(&data)?;
    std::fs::write(data.join("base/1/113"), b"another file")?;
    let (client_side, agent_side) = UnixStream::pair()?;
    let sent = Arc::new(Mutex::new(Vec::new()));
    let replied = Arc::new(Mutex::new(Vec::new()));
    let agent_out = Tee {
        inner: agent_side.try_clone()?,
        copy: Arc::clone(&replied),
    };
    let agent = std::thread::spawn(move || barman_copy::serve(agent_side, agent_out));
    let client_out = Tee {
        inner: client_side.try_clone()?,
        copy: Arc::clone(&sent),
    };
    let roots = Roots::from([("data".to_owned(), data)]);
    let mut source = AgentSource::over(client_side, client_out, &roots, compress)?;
    barman_fuzz::client_requests(&mut source);
    drop(source);
    let _ = agent.join();
    let sent = sent.lock().expect("lock").clone();
    let replied = replied.lock().expect("lock").clone();
    Ok((sent, replied))
}

fn agent(root: &Path) -> Result<()> {
    for (compress, suffix) in [(false, "plain"), (true, "zstd")] {
        let (sent, replied) = record_session(compress)?;
        let bit = if compress { 2 } else { 0 };
        seed(root, "agent_serve", &format!("session-{suffix}"), &sent)?;
        seed(
            root,
            "agent_client",
            &format!("frames-{suffix}"),
            &prefixed(bit, &replied),
        )?;
        seed(
            root,
            "agent_client",
            &format!("session-{suffix}"),
            &prefixed(bit | 1, &replied),
        )?;
    }
    Ok(())
}

/// A 1 MiB segment: the real head, then zeros.
fn segment(head: &[u8]) -> Vec<u8> {
    let mut wal = head.to_vec();
    wal.resize(1 << 20, 0);
    wal
}

fn compressed(compression: Compression, plain: &[u8]) -> Result<Vec<u8>> {
    let encoder = compression.writer(Vec::new(), CompressionLevel::High)?;
    let (_, out) = barman_wal::compress(&mut &plain[..], encoder)?;
    Ok(out)
}

/// A put-wal stream: the members, then the checksum member, like
/// `barman-wal-archive` writes it.
fn stream(members: &[(&str, &[u8])], md5: bool) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut sums = String::new();
    for (name, content) in members {
        let mut header = tar::Header::new_ustar();
        header.set_path(name)?;
        header.set_size(content.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder.append(&header, *content)?;
        let digest = if md5 {
            hex(&md5::Md5::digest(content))
        } else {
            hex(&Sha256::digest(content))
        };
        let _ = writeln!(sums, "{digest} *{name}");
    }
    let mut header = tar::Header::new_ustar();
    header.set_path(if md5 { "MD5SUMS" } else { "SHA256SUMS" })?;
    header.set_size(sums.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append(&header, sums.as_bytes())?;
    Ok(builder.into_inner()?)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn put_wal(root: &Path, head: &[u8]) -> Result<()> {
    let wal = segment(head);
    let gz = compressed(Compression::Gzip, &wal)?;
    let zst = compressed(Compression::Zstd, &wal)?;
    let name = "000000010000000000000006";
    let history = b"1\t0/6000000\tno recovery target specified\n";
    let label = b"START WAL LOCATION: 0/6000028 (file 000000010000000000000006)\n\
STOP WAL LOCATION: 0/6000100 (file 000000010000000000000006)\n";
    seed(
        root,
        "put_wal",
        "gzip-segment",
        &prefixed(0, &stream(&[(name, &gz)], false)?),
    )?;
    seed(
        root,
        "put_wal",
        "zstd-segment-checked",
        &prefixed(2, &stream(&[(name, &zst)], false)?),
    )?;
    seed(
        root,
        "put_wal",
        "truncated-segment-md5",
        &prefixed(0, &stream(&[(name, &head[..512])], true)?),
    )?;
    seed(
        root,
        "put_wal",
        "history-and-label",
        &prefixed(
            0,
            &stream(
                &[
                    ("00000002.history", history),
                    ("000000010000000000000006.00000028.backup", label),
                ],
                false,
            )?,
        ),
    )?;
    // Round trip mode: two files (a history, a label) through the CLI's writer.
    let mut described = vec![1, 2, 40];
    described.extend_from_slice(&history[..40]);
    described.extend_from_slice(&[3, 1]);
    described.extend_from_slice(&label[..64]);
    seed(root, "put_wal", "cli-writer", &prefixed(1, &described))?;
    seed(root, "put_wal", "cli-writer-md5", &prefixed(5, &described))?;
    Ok(())
}

fn catalog(root: &Path, fixtures: &Path) -> Result<()> {
    let catalog = fixtures.join("catalog/pg");
    if catalog.is_dir() {
        for id in ["20261122T041510", "20261122T041536"] {
            let info = std::fs::read(catalog.join(format!("meta/{id}-backup.info")))?;
            seed(
                root,
                "backup_info",
                &format!("{id}-backup.info"),
                &prefixed(0, &info),
            )?;
        }
        let sync = std::fs::read(fixtures.join("outputs/sync-info.json"))?;
        seed(root, "backup_info", "sync-info.json", &prefixed(2, &sync))?;
        let xlog = std::fs::read(catalog.join("wals/pg-xlog.db"))?;
        seed(root, "xlog_db", "barman-3.20.1-xlog.db", &xlog)?;
    }
    for (name, literal) in [
        (
            "tablespaces",
            "[('tbs1', 16387, '/srv/tbs1'), ('tbs2', 16388, '/srv/tbs2')]",
        ),
        (
            "copy_stats",
            "{'total_time': 1.234567, 'number_of_workers': 2, 'analysis_time': 0, 'copy_time': 1e-05}",
        ),
        (
            "label",
            "'START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\\nLABEL: \\xe9t\\u00e9\\n'",
        ),
        (
            "nested",
            "{None: (True, False, -3, 0x1f, [u'a', r'b\\c', \"q'\"])}",
        ),
    ] {
        seed(
            root,
            "backup_info",
            &format!("literal-{name}"),
            &prefixed(1, literal.as_bytes()),
        )?;
    }
    seed(
        root,
        "xlog_db",
        "old-columns-and-torn-tail",
        b"000000010000000000000001\t16777216\t1700000000.123\n\
00000002.history\t42\t1700000001.5\tNone\n\
000000010000000000000002.00000028.backup\t300\t1700000002\tgzip\tNone\n\
0000000100000000000000",
    )?;
    Ok(())
}

fn conf(root: &Path, fixtures: &Path) -> Result<()> {
    if let Ok(text) = std::fs::read(fixtures.join("barman.conf")) {
        seed(root, "barman_conf", "barman-3.20.1.conf", &text)?;
    }
    seed(
        root,
        "barman_conf",
        "interpolation-models",
        b"[DEFAULT]\nport = 5432\n\n[barman]\nbarman_home = /var/lib/barman\n\
compression = gzip\n; a comment\n\n\
[pg]\ndescription = \"main: %(port)s\"\nconninfo = host=pg port=%(port)s user=barman dbname=postgres\n\
streaming_conninfo = postgresql://streaming_barman@pg:5432/postgres?sslmode=prefer\n\
backup_method = postgres\nstreaming_archiver = on\nslot_name = barman\n\
retention_policy = RECOVERY WINDOW OF 7 DAYS\nbasebackups_directory = %(barman_home)s/%(name)s/base\n\
post_backup_script = /bin/echo\n  continued line\n\n\
[pg:switchover]\nmodel = true\ncluster = pg\nconninfo = host=pg2\n",
    )?;
    Ok(())
}

fn wal(root: &Path) -> Result<()> {
    let history = b"1\t0/3000000\tno recovery target specified\n\n2\t0/5000060\tbefore 2026-11-22 04:15:10+00\n";
    seed(root, "wal_header", "history", history)?;
    seed(
        root,
        "wal_header",
        "backup-label",
        b"START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\nSTOP WAL LOCATION: 0/3000100 (file 000000010000000000000003)\nCHECKPOINT LOCATION: 0/3000060\n",
    )?;
    seed(
        root,
        "wal_header",
        "file-name",
        b"000000010000000000000003.00000028.backup",
    )?;
    seed(root, "wal_header", "lsn", b"16/B374D848")?;
    let head = std::fs::read(root.join("wal_header/pg15-segment-head"))?;
    for (compression, name) in [
        (Compression::Gzip, "gzip"),
        (Compression::Bzip2, "bzip2"),
        (Compression::Xz, "xz"),
        (Compression::Zstd, "zstd"),
        (Compression::Lz4, "lz4"),
        (Compression::Snappy, "snappy"),
    ] {
        seed(
            root,
            "wal_header",
            &format!("head-{name}"),
            &compressed(compression, &head[..256])?,
        )?;
    }
    Ok(())
}

/// One backend message.
fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = u32::try_from(body.len() + 4).expect("a small message");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// RowDescription with text columns.
fn row_description(names: &[&str]) -> Vec<u8> {
    let mut body = u16::try_from(names.len())
        .expect("few")
        .to_be_bytes()
        .to_vec();
    for name in names {
        cstr(&mut body, name);
        body.extend_from_slice(&0u32.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes());
        body.extend_from_slice(&25u32.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes());
    }
    msg(b'T', &body)
}

fn data_row(values: &[Option<&[u8]>]) -> Vec<u8> {
    let mut body = u16::try_from(values.len())
        .expect("few")
        .to_be_bytes()
        .to_vec();
    for value in values {
        match value {
            Some(v) => {
                body.extend_from_slice(&i32::try_from(v.len()).expect("small").to_be_bytes());
                body.extend_from_slice(v);
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    msg(b'D', &body)
}

fn complete(tag: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, tag);
    msg(b'C', &body)
}

fn ready() -> Vec<u8> {
    msg(b'Z', b"I")
}

fn error(code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, v) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(t);
        cstr(&mut body, v);
    }
    body.push(0);
    msg(b'E', &body)
}

/// Authentication (`auth` is the request), parameters, key data, ready.
fn startup(auth: &[u8], version: &str) -> Vec<u8> {
    let mut out = msg(b'R', auth);
    if auth != 0u32.to_be_bytes() {
        out.extend(msg(b'R', &0u32.to_be_bytes()));
    }
    let mut param = Vec::new();
    cstr(&mut param, "server_version");
    cstr(&mut param, version);
    out.extend(msg(b'S', &param));
    let mut key = 4242u32.to_be_bytes().to_vec();
    key.extend_from_slice(&7u32.to_be_bytes());
    out.extend(msg(b'K', &key));
    out.extend(ready());
    out
}

fn copy_response(tag: u8) -> Vec<u8> {
    msg(tag, &[0, 0, 0])
}

fn small_tar() -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o700);
    dir.set_size(0);
    dir.set_cksum();
    builder.append_data(&mut dir, "base/", io::empty())?;
    let mut file = tar::Header::new_ustar();
    file.set_mode(0o600);
    file.set_mtime(1_700_000_000);
    file.set_size(3);
    file.set_cksum();
    builder.append_data(&mut file, "PG_VERSION", &b"15\n"[..])?;
    let mut link = tar::Header::new_ustar();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    builder.append_link(&mut link, "pg_tblspc/16384", "/srv/ts")?;
    Ok(builder.into_inner()?)
}

fn replication(root: &Path) -> Result<()> {
    let trust = 0u32.to_be_bytes();
    let mut md5 = 5u32.to_be_bytes().to_vec();
    md5.extend_from_slice(b"salt");
    let mut sasl = 10u32.to_be_bytes().to_vec();
    sasl.extend_from_slice(b"SCRAM-SHA-256\0\0");

    // Commands.
    let mut out = startup(&md5, "15.4 (Debian 15.4-1)");
    out.extend(row_description(&[
        "systemid", "timeline", "xlogpos", "dbname",
    ]));
    out.extend(data_row(&[
        Some(b"7716417279500560395"),
        Some(b"1"),
        Some(b"0/6000148"),
        None,
    ]));
    out.extend(complete("IDENTIFY_SYSTEM"));
    out.extend(ready());
    out.extend(row_description(&["filename", "content"]));
    out.extend(data_row(&[
        Some(b"00000002.history"),
        Some(b"1\t0/3000000\tno recovery target specified\n"),
    ]));
    out.extend(complete("TIMELINE_HISTORY"));
    out.extend(ready());
    out.extend(row_description(&[
        "slot_type",
        "restart_lsn",
        "restart_tli",
    ]));
    out.extend(data_row(&[
        Some(b"physical"),
        Some(b"0/6000000"),
        Some(b"1"),
    ]));
    out.extend(complete("READ_REPLICATION_SLOT"));
    out.extend(ready());
    out.extend(row_description(&["wal_segment_size"]));
    out.extend(data_row(&[Some(b"1MB")]));
    out.extend(complete("SHOW"));
    out.extend(ready());
    out.extend(complete("CREATE_REPLICATION_SLOT"));
    out.extend(ready());
    out.extend(error("42704", "replication slot \"barman\" does not exist"));
    out.extend(ready());
    seed(root, "replication", "commands-md5", &prefixed(0, &out))?;
    let mut cleartext = startup(&3u32.to_be_bytes(), "17.2");
    cleartext.extend(error("28P01", "password authentication failed"));
    seed(
        root,
        "replication",
        "cleartext-refused",
        &prefixed(0, &cleartext),
    )?;
    let mut scram = msg(b'R', &sasl);
    let mut first = 11u32.to_be_bytes().to_vec();
    first.extend_from_slice(b"r=nonce,s=c2FsdA==,i=4096");
    scram.extend(msg(b'R', &first));
    seed(root, "replication", "scram", &prefixed(0, &scram))?;

    // START_REPLICATION, WAL, keepalive, end of timeline.
    let mut out = startup(&trust, "15.4");
    out.extend(copy_response(b'W'));
    let mut wal = vec![b'w'];
    wal.extend_from_slice(&0x0100_0000u64.to_be_bytes());
    wal.extend_from_slice(&0x0100_0010u64.to_be_bytes());
    wal.extend_from_slice(&7i64.to_be_bytes());
    wal.extend_from_slice(b"walbytes");
    out.extend(msg(b'd', &wal));
    let mut keepalive = vec![b'k'];
    keepalive.extend_from_slice(&0x0100_0010u64.to_be_bytes());
    keepalive.extend_from_slice(&7i64.to_be_bytes());
    keepalive.push(1);
    out.extend(msg(b'd', &keepalive));
    out.extend(msg(b'c', &[]));
    out.extend(row_description(&["next_tli", "next_tli_startpos"]));
    out.extend(data_row(&[Some(b"2"), Some(b"0/1000010")]));
    out.extend(complete("START_STREAMING"));
    out.extend(complete("START_REPLICATION"));
    out.extend(ready());
    out.extend(row_description(&[
        "systemid", "timeline", "xlogpos", "dbname",
    ]));
    out.extend(data_row(&[
        Some(b"7716417279500560395"),
        Some(b"2"),
        Some(b"0/1000010"),
        None,
    ]));
    out.extend(complete("IDENTIFY_SYSTEM"));
    out.extend(ready());
    seed(root, "replication", "stream", &prefixed(1, &out))?;

    // BASE_BACKUP, 15+ (typed copy stream).
    let tar = small_tar()?;
    let begin = |out: &mut Vec<u8>| {
        out.extend(row_description(&["recptr", "tli"]));
        out.extend(data_row(&[Some(b"0/6000028"), Some(b"1")]));
        out.extend(complete("SELECT"));
        out.extend(row_description(&["spcoid", "spclocation", "size"]));
        out.extend(data_row(&[None, None, Some(b"30000")]));
        out.extend(data_row(&[Some(b"16384"), Some(b"/srv/ts"), Some(b"12")]));
        out.extend(complete("SELECT"));
    };
    let end = |out: &mut Vec<u8>| {
        out.extend(row_description(&["recptr", "tli"]));
        out.extend(data_row(&[Some(b"0/6000100"), Some(b"1")]));
        out.extend(complete("SELECT"));
        out.extend(complete("BASE_BACKUP"));
        out.extend(ready());
    };
    let mut out = startup(&trust, "15.4");
    begin(&mut out);
    out.extend(copy_response(b'H'));
    for (name, location) in [("base.tar", ""), ("16384.tar", "/srv/ts")] {
        let mut announce = vec![b'n'];
        cstr(&mut announce, name);
        cstr(&mut announce, location);
        out.extend(msg(b'd', &announce));
        let mut chunk = vec![b'd'];
        chunk.extend_from_slice(&tar);
        out.extend(msg(b'd', &chunk));
        let mut progress = vec![b'p'];
        progress.extend_from_slice(&1024u64.to_be_bytes());
        out.extend(msg(b'd', &progress));
    }
    out.extend(msg(b'd', b"m"));
    out.extend(msg(b'd', b"d{\"PostgreSQL-Backup-Manifest-Version\": 1}"));
    out.extend(msg(b'c', &[]));
    end(&mut out);
    seed(root, "replication", "base-backup-15", &prefixed(2, &out))?;

    // BASE_BACKUP before 15: a copy stream per tablespace.
    let mut out = startup(&trust, "14.9");
    begin(&mut out);
    for _ in 0..2 {
        out.extend(copy_response(b'H'));
        out.extend(msg(b'd', &tar));
        out.extend(msg(b'c', &[]));
    }
    end(&mut out);
    seed(root, "replication", "base-backup-14", &prefixed(3, &out))?;
    Ok(())
}
