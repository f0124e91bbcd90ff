//! The agent served in a thread over pipes gives what the local source
//! gives, sends only what changed, and keeps sessions usable after a
//! per-request error.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread::JoinHandle;

use barman_copy::hash::{Hasher, PAGE_SIZE, PageHashes};
use barman_copy::source::PageChunk;
use barman_copy::{
    AgentSource, Entry, Error, Exclusions, LocalSource, Mtime, RelPath, Roots, Source, serve,
};

/// A data directory in a temporary directory.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        let tree = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        tree.write("PG_VERSION", b"17\n");
        tree.write("base/5/16384", &pseudo_random(3 * PAGE_SIZE, 1));
        tree.write("global/pg_control", &[7u8; 8192]);
        tree.write("pg_wal/000000010000000000000001", &[1u8; 100]);
        tree.write("postmaster.pid", b"42\n");
        tree
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn write(&self, path: &str, bytes: &[u8]) {
        let path = self.data().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn roots(&self) -> Roots {
        Roots::from([("data".to_owned(), self.data())])
    }
}

/// Deterministic incompressible bytes.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn rel(path: &str) -> RelPath {
    RelPath::new(path).unwrap()
}

/// An agent serving in a thread, connected by two pipes.
fn agent(roots: &Roots, compress: bool) -> (AgentSource, JoinHandle<barman_copy::Result<()>>) {
    let (agent_in, client_out) = std::io::pipe().unwrap();
    let (client_in, agent_out) = std::io::pipe().unwrap();
    let thread = std::thread::spawn(move || serve(agent_in, agent_out));
    let source = AgentSource::over(client_in, client_out, roots, compress).unwrap();
    (source, thread)
}

fn finish(source: AgentSource, thread: JoinHandle<barman_copy::Result<()>>) {
    drop(source);
    thread.join().unwrap().unwrap();
}

fn read_all(source: &mut dyn Source, path: &str) -> barman_copy::Result<Vec<u8>> {
    let mut out = Vec::new();
    let n = source.read(&rel(path), &mut |chunk| {
        out.extend_from_slice(chunk);
        Ok(())
    })?;
    assert_eq!(n, out.len() as u64);
    Ok(out)
}

/// Whether the listing of `data` holds `path`.
fn lists(source: &mut dyn Source, path: &str) -> bool {
    source
        .list("data", &Exclusions::postgres_default())
        .unwrap()
        .iter()
        .any(|e| e.path.as_str() == path)
}

fn pages(
    source: &mut dyn Source,
    path: &str,
    previous: &PageHashes,
) -> (Vec<(u64, Vec<u8>)>, u64, u64) {
    let mut chunks = Vec::new();
    let end = source
        .changed_pages(
            &rel(path),
            previous,
            &mut |PageChunk::Pages { first, data }| {
                chunks.push((first, data.to_vec()));
                Ok(())
            },
        )
        .unwrap();
    (chunks, end.size, end.pages_sent)
}

fn pages_error(source: &mut dyn Source, path: &str) -> Error {
    source
        .changed_pages(&rel(path), &PageHashes::default(), &mut |_| Ok(()))
        .unwrap_err()
}

fn page_hashes(data: &[u8]) -> PageHashes {
    let mut hasher = Hasher::new(true);
    hasher.update(data);
    hasher.finish().1.unwrap()
}

fn signature(data: &[u8]) -> Vec<u8> {
    let options = fast_rsync::SignatureOptions {
        block_size: 1024,
        crypto_hash_size: 8,
    };
    fast_rsync::Signature::calculate(data, options).into_serialized()
}

fn delta(source: &mut dyn Source, path: &str, signature: &[u8]) -> barman_copy::Result<Vec<u8>> {
    let mut out = Vec::new();
    let n = source.rsync_delta(&rel(path), signature, &mut |chunk| {
        out.extend_from_slice(chunk);
        Ok(())
    })?;
    assert_eq!(n, out.len() as u64);
    Ok(out)
}

#[test]
fn agent_gives_what_the_local_source_gives() {
    for compress in [false, true] {
        let tree = Tree::new();
        let old = pseudo_random(3 * PAGE_SIZE, 1);
        let mut new = old.clone();
        new[PAGE_SIZE + 5] ^= 0xff;
        new.extend_from_slice(&[9u8; 100]);
        tree.write("base/5/16384", &new);
        std::os::unix::fs::symlink("/nowhere", tree.data().join("link")).unwrap();

        let mut local = LocalSource::new(tree.roots());
        let (mut remote, thread) = agent(&tree.roots(), compress);
        assert_eq!(remote.compressed(), compress);

        for rules in [Exclusions::postgres_default(), Exclusions::none()] {
            let a: Vec<Entry> = local.list("data", &rules).unwrap();
            let b = remote.list("data", &rules).unwrap();
            assert_eq!(a, b);
            assert!(a.iter().any(|e| e.path.as_str() == "data/link"));
        }
        let listed = remote
            .list("data", &Exclusions::postgres_default())
            .unwrap();
        assert!(
            !listed
                .iter()
                .any(|e| e.path.as_str() == "data/postmaster.pid")
        );

        for path in [
            "data/PG_VERSION",
            "data/base/5/16384",
            "data/global/pg_control",
        ] {
            assert_eq!(
                read_all(&mut local, path).unwrap(),
                read_all(&mut remote, path).unwrap()
            );
        }

        let previous = page_hashes(&old);
        let a = pages(&mut local, "data/base/5/16384", &previous);
        let b = pages(&mut remote, "data/base/5/16384", &previous);
        assert_eq!(a, b);
        // Page 1 changed and page 3 (short) is new: two runs.
        assert_eq!(a.2, 2);
        assert_eq!(a.1, new.len() as u64);
        assert_eq!(a.0[0].0, 1);
        assert_eq!(a.0[0].1, new[PAGE_SIZE..2 * PAGE_SIZE]);
        assert_eq!(a.0[1].0, 3);
        assert_eq!(a.0[1].1, new[3 * PAGE_SIZE..]);

        let sig = signature(&old);
        let a = delta(&mut local, "data/base/5/16384", &sig).unwrap();
        let b = delta(&mut remote, "data/base/5/16384", &sig).unwrap();
        assert_eq!(a, b);
        let mut rebuilt = Vec::new();
        fast_rsync::apply(&old, &b, &mut rebuilt).unwrap();
        assert_eq!(rebuilt, new);

        finish(remote, thread);
    }
}

#[test]
fn page_delta_sends_only_changed_pages() {
    let tree = Tree::new();
    let size = 4 << 20;
    let old = pseudo_random(size, 7);
    let mut new = old.clone();
    let changed = [3usize, 100, 101, 250, 511];
    for page in changed {
        new[page * PAGE_SIZE + 17] ^= 0x55;
    }
    tree.write("base/5/16400", &new);
    let (mut remote, thread) = agent(&tree.roots(), false);
    let before = remote.wire_bytes();
    let (chunks, end_size, sent) = pages(&mut remote, "data/base/5/16400", &page_hashes(&old));
    assert_eq!(sent, changed.len() as u64);
    assert_eq!(end_size, size as u64);
    let firsts: Vec<u64> = chunks.iter().map(|c| c.0).collect();
    assert_eq!(firsts, [3, 100, 250, 511]);
    assert_eq!(chunks[1].1.len(), 2 * PAGE_SIZE);
    let wire = remote.wire_bytes();
    assert!(wire < size as u64 / 20, "{wire} bytes on the wire");
    assert!(wire - before >= (changed.len() * PAGE_SIZE) as u64);
    finish(remote, thread);
}

#[test]
fn compression_reduces_wire_bytes() {
    let tree = Tree::new();
    let text: Vec<u8> = b"INSERT INTO t VALUES (42, 'barman');\n"
        .iter()
        .copied()
        .cycle()
        .take(4 << 20)
        .collect();
    tree.write("base/5/16500", &text);
    let mut wire = Vec::new();
    for compress in [false, true] {
        let (mut remote, thread) = agent(&tree.roots(), compress);
        assert_eq!(read_all(&mut remote, "data/base/5/16500").unwrap(), text);
        wire.push(remote.wire_bytes());
        finish(remote, thread);
    }
    assert!(wire[0] > 4 << 20);
    assert!(wire[1] < wire[0] / 10, "{wire:?}");
}

#[test]
fn symlinks_inside_the_tree_are_not_followed() {
    let tree = Tree::new();
    std::os::unix::fs::symlink("/etc", tree.data().join("evil")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", tree.data().join("evil_file")).unwrap();
    let mut local = LocalSource::new(tree.roots());
    let (mut remote, thread) = agent(&tree.roots(), false);
    for source in [&mut local as &mut dyn Source, &mut remote] {
        for (path, expected) in [
            ("data/evil/passwd", "symlink escapes the tree"),
            ("data/evil_file", "is a symbolic link"),
            ("pg_tblspc/passwd", "unknown tree"),
        ] {
            match read_all(source, path) {
                Err(Error::UnsafePath { reason, .. }) => assert_eq!(reason, expected),
                other => panic!("{path}: {other:?}"),
            }
        }
        let err = pages_error(source, "data/evil/passwd");
        assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
    }
    // The session is still usable.
    assert_eq!(read_all(&mut remote, "data/PG_VERSION").unwrap(), b"17\n");
    finish(remote, thread);
}

#[test]
fn vanished_file_keeps_the_session_usable() {
    let tree = Tree::new();
    tree.write("base/5/16600", b"soon gone");
    let (mut remote, thread) = agent(&tree.roots(), true);
    assert!(lists(&mut remote, "data/base/5/16600"));
    fs::remove_file(tree.data().join("base/5/16600")).unwrap();
    let err = read_all(&mut remote, "data/base/5/16600").unwrap_err();
    assert!(
        matches!(&err, Error::Vanished { path } if path == "data/base/5/16600"),
        "{err}"
    );
    let err = pages_error(&mut remote, "data/base/5/16600");
    assert!(matches!(err, Error::Vanished { .. }), "{err}");
    assert_eq!(read_all(&mut remote, "data/PG_VERSION").unwrap(), b"17\n");
    finish(remote, thread);
}

#[test]
fn sink_errors_do_not_break_the_session() {
    let tree = Tree::new();
    tree.write("base/5/16700", &pseudo_random(3 << 20, 3));
    let (mut remote, thread) = agent(&tree.roots(), false);
    let err = remote
        .read(&rel("data/base/5/16700"), &mut |_| Err(Error::Cancelled))
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(read_all(&mut remote, "data/PG_VERSION").unwrap(), b"17\n");
    finish(remote, thread);
}

#[test]
fn rsync_delta_refuses_large_files_and_bad_signatures() {
    let tree = Tree::new();
    let big = tree.data().join("base/5/big");
    fs::File::create(&big)
        .unwrap()
        .set_len(barman_copy::local::MAX_RSYNC_DELTA_FILE + 1)
        .unwrap();
    let mut local = LocalSource::new(tree.roots());
    let (mut remote, thread) = agent(&tree.roots(), false);
    let sig = signature(b"whatever");
    for source in [&mut local as &mut dyn Source, &mut remote] {
        let err = delta(source, "data/base/5/big", &sig).unwrap_err();
        assert!(matches!(err, Error::DeltaTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("page delta"), "{err}");
        let mut zero_block = sig.clone();
        zero_block[4..8].copy_from_slice(&[0; 4]);
        for bad in [&b"junk"[..], &zero_block] {
            let err = delta(source, "data/PG_VERSION", bad).unwrap_err();
            assert!(matches!(err, Error::Protocol(_)), "{err}");
        }
    }
    assert_eq!(read_all(&mut remote, "data/PG_VERSION").unwrap(), b"17\n");
    finish(remote, thread);
}

#[test]
fn custom_exclusions_are_refused_for_an_agent() {
    let tree = Tree::new();
    let (mut remote, thread) = agent(&tree.roots(), false);
    let mut rules = Exclusions::none();
    rules.push(barman_copy::Rule::exclude(barman_copy::Matcher::Name("x".into()), "test").unwrap());
    let err = remote.list("data", &rules).unwrap_err();
    assert!(err.to_string().contains("exclusion"), "{err}");
    let err = remote.list("nope", &Exclusions::none()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsafePath {
                reason: "unknown tree",
                ..
            }
        ),
        "{err}"
    );
    finish(remote, thread);
}

#[test]
fn push_operations_write_under_the_root() {
    let tree = Tree::new();
    let (mut remote, thread) = agent(&tree.roots(), true);
    remote.mkdir(&rel("data/restored/sub"), 0o700).unwrap();
    let content = pseudo_random(3 << 20, 9);
    let mtime = Mtime {
        secs: 1_700_000_000,
        nanos: 0,
    };
    let path = rel("data/restored/sub/file");
    remote
        .write_file(
            &path,
            barman_copy::FileMeta {
                size: content.len() as u64,
                mode: 0o640,
                mtime,
            },
            &mut content.as_slice(),
        )
        .unwrap();
    let local = tree.data().join("restored/sub/file");
    assert_eq!(fs::read(&local).unwrap(), content);
    let meta = fs::metadata(&local).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!(Mtime::of(&meta), mtime);
    remote.fsync(&rel("data/restored/sub")).unwrap();
    remote.fsync(&path).unwrap();

    // A short upload is refused and leaves no file behind.
    let err = remote
        .write_file(
            &rel("data/restored/short"),
            barman_copy::FileMeta {
                size: 10,
                mode: 0o600,
                mtime,
            },
            &mut &b"abc"[..],
        )
        .unwrap_err();
    assert!(err.to_string().contains("announced 10 bytes"), "{err}");
    assert!(!tree.data().join("restored/short").exists());
    assert!(fs::read_dir(tree.data().join("restored")).unwrap().count() == 1);

    remote
        .symlink(&rel("data/restored/link"), "/tablespaces/16385")
        .unwrap();
    remote
        .symlink(&rel("data/restored/link"), "/tablespaces/16386")
        .unwrap();
    assert_eq!(
        fs::read_link(tree.data().join("restored/link")).unwrap(),
        Path::new("/tablespaces/16386")
    );
    // Writing through the link is refused.
    let err = remote
        .mkdir(&rel("data/restored/link/x"), 0o700)
        .unwrap_err();
    assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
    let err = remote
        .write_file(
            &rel("data/restored/link/x"),
            barman_copy::FileMeta {
                size: 0,
                mode: 0o600,
                mtime,
            },
            &mut &b""[..],
        )
        .unwrap_err();
    assert!(matches!(err, Error::UnsafePath { .. }), "{err}");

    remote.remove(&rel("data/restored/link")).unwrap();
    remote.remove(&rel("data/restored")).unwrap();
    remote.remove(&rel("data/restored")).unwrap();
    assert!(!tree.data().join("restored").exists());
    let err = remote.remove(&rel("data")).unwrap_err();
    assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
    assert!(tree.data().join("PG_VERSION").exists());
    finish(remote, thread);
}

#[test]
fn reads_sent_ahead_give_each_file_whatever_order_the_reads_come_in() {
    for compress in [false, true] {
        let tree = Tree::new();
        let big = pseudo_random(3 << 20, 9);
        tree.write("base/5/16800", &big);
        tree.write("base/5/16801", b"soon gone");
        let (mut remote, thread) = agent(&tree.roots(), compress);
        let control = fs::read(tree.data().join("global/pg_control")).unwrap();
        let relation = fs::read(tree.data().join("base/5/16384")).unwrap();
        let paths = [
            "data/PG_VERSION",
            "data/base/5/16800",
            "data/base/5/16801",
            "data/global/pg_control",
            "data/base/5/16384",
        ]
        .map(rel);
        fs::remove_file(tree.data().join("base/5/16801")).unwrap();
        remote.read_ahead(&paths.iter().collect::<Vec<_>>());
        // Announcing again what is in flight sends nothing twice.
        remote.read_ahead(&paths[..2].iter().collect::<Vec<_>>());

        // In the announced order, a vanished file in the middle included.
        assert_eq!(read_all(&mut remote, "data/PG_VERSION").unwrap(), b"17\n");
        assert!(read_all(&mut remote, "data/base/5/16800").unwrap() == big);
        let err = read_all(&mut remote, "data/base/5/16801").unwrap_err();
        assert!(matches!(err, Error::Vanished { .. }), "{err}");
        // Out of order: the replies in flight are dropped, the file is
        // asked for again.
        assert_eq!(
            read_all(&mut remote, "data/base/5/16384").unwrap(),
            relation
        );
        assert_eq!(
            read_all(&mut remote, "data/global/pg_control").unwrap(),
            control
        );

        // Another request after reads sent ahead and never read.
        remote.read_ahead(&paths[..2].iter().collect::<Vec<_>>());
        assert!(lists(&mut remote, "data/base/5/16800"));
        // A range read is not a whole-file read: it is asked for itself.
        remote.read_ahead(&paths[1..2].iter().collect::<Vec<_>>());
        let mut head = Vec::new();
        remote
            .read_range(&paths[1], 10, Some(100), &mut |c| {
                head.extend_from_slice(c);
                Ok(())
            })
            .unwrap();
        assert!(head == big[10..110]);
        assert!(read_all(&mut remote, "data/base/5/16800").unwrap() == big);
        finish(remote, thread);
    }
}
