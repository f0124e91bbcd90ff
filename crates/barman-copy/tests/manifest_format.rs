//! `Manifest::read` / `Manifest::write`: the JSON Lines format and its errors.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use barman_copy::hash::{FileHash, PageHash, PageHashes};
use barman_copy::{Entry, EntryKind, Error, Manifest, ManifestEntry, Mtime, RelPath};

fn entry(path: &str, kind: EntryKind, size: u64) -> ManifestEntry {
    ManifestEntry::new(Entry {
        path: RelPath::new(path).unwrap(),
        kind,
        size,
        mtime: Mtime {
            secs: 1_700_000_000,
            nanos: 123_456_789,
        },
        mode: 0o600,
    })
}

fn sample() -> Manifest {
    let mut m = Manifest::default();
    m.insert(entry("data", EntryKind::Dir, 0));
    m.insert(entry("data/base", EntryKind::Dir, 0));
    let mut rel = entry("data/base/16384", EntryKind::File, 16384);
    rel.blake3 = Some(FileHash([7; 32]));
    rel.pages = Some(PageHashes(vec![PageHash([1; 16]), PageHash([2; 16])]));
    m.insert(rel);
    let mut version = entry("data/PG_VERSION", EntryKind::File, 3);
    version.blake3 = Some(FileHash([9; 32]));
    m.insert(version);
    m.insert(entry(
        "data/pg_tblspc/16385",
        EntryKind::Symlink {
            target: "/srv/ts".to_owned(),
        },
        0,
    ));
    m
}

#[test]
fn round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("manifest");
    let m = sample();
    m.write(&path).unwrap();
    assert_eq!(Manifest::read(&path).unwrap(), m);

    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["manifest"], "temporary file left behind");

    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    let header: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(header["barman_manifest"], 1);
    assert_eq!(header["entries"], 5);
    assert!(
        header["created_by"]
            .as_str()
            .unwrap()
            .starts_with("barman-rs ")
    );
    let paths: Vec<String> = lines[1..]
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["path"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert!(text.ends_with('\n'));
}

#[test]
fn overwrite_and_empty_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("manifest");
    sample().write(&path).unwrap();
    let empty = Manifest::default();
    empty.write(&path).unwrap();
    let read = Manifest::read(&path).unwrap();
    assert!(read.is_empty());
    assert_eq!(read.len(), 0);
}

#[test]
fn helpers() {
    let m = sample();
    assert_eq!(m.len(), 5);
    assert!(!m.is_empty());
    assert_eq!(m.total_size(), 16384 + 3);
    let paths: Vec<&str> = m.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "data",
            "data/PG_VERSION",
            "data/base",
            "data/base/16384",
            "data/pg_tblspc/16385"
        ]
    );
}

#[test]
fn write_to_missing_directory_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let err = sample()
        .write(&tmp.path().join("no/such/dir/manifest"))
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn missing_file_is_an_io_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("manifest");
    assert!(matches!(
        Manifest::read(&path),
        Err(Error::Io { path: p, .. }) if p == path
    ));
}

const HEADER: &str = r#"{"barman_manifest":1,"created_by":"barman-rs test","entries":2}"#;
const DIR: &str =
    r#"{"path":"data","type":"dir","size":0,"mtime":{"secs":1,"nanos":0},"mode":448}"#;
const FILE: &str =
    r#"{"path":"data/PG_VERSION","type":"file","size":3,"mtime":{"secs":1,"nanos":0},"mode":384}"#;

/// Writes `text` as a manifest, reads it, and returns the error's line and message.
fn bad(text: &str) -> (usize, String) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("manifest");
    fs::write(&path, text).unwrap();
    match Manifest::read(&path) {
        Err(err @ Error::Manifest { .. }) => {
            let shown = err.to_string();
            let Error::Manifest {
                path: p,
                line,
                message,
            } = err
            else {
                unreachable!()
            };
            assert_eq!(p, path);
            assert!(
                shown.starts_with(&format!("{}:{line}: ", path.display())),
                "{shown}"
            );
            (line, message)
        }
        other => panic!("expected a manifest error for {text:?}, got {other:?}"),
    }
}

#[test]
fn good_text_parses() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("manifest");
    fs::write(&path, format!("{HEADER}\n{DIR}\n{FILE}\n")).unwrap();
    let m = Manifest::read(&path).unwrap();
    assert_eq!(m.len(), 2);
    let file = m.get(&RelPath::new("data/PG_VERSION").unwrap()).unwrap();
    assert_eq!(file.kind, EntryKind::File);
    assert_eq!(file.mode, 0o600);
    assert_eq!(file.blake3, None);
    // Unknown header fields and a missing final newline are accepted.
    let header = r#"{"barman_manifest":1,"created":"2024-01-01T00:00:00Z","entries":1}"#;
    fs::write(&path, format!("{header}\n{DIR}")).unwrap();
    assert_eq!(Manifest::read(&path).unwrap().len(), 1);
}

#[test]
fn header_errors() {
    let cases = [
        (String::new(), "missing header"),
        (format!("{DIR}\n{FILE}\n"), "invalid header"),
        ("not json\n".to_owned(), "invalid header"),
        (
            "{\"barman_manifest\":2,\"entries\":0}\n".to_owned(),
            "version 2",
        ),
    ];
    for (text, expected) in cases {
        let (line, message) = bad(&text);
        assert_eq!(line, 1, "{text:?}");
        assert!(message.contains(expected), "{text:?}: {message}");
    }
}

#[test]
fn bad_entry_json() {
    let (line, message) = bad(&format!("{HEADER}\n{DIR}\n{{\"path\":\n"));
    assert_eq!(line, 3);
    assert!(message.contains("bad entry"), "{message}");
    // A valid JSON object that is not an entry.
    let (line, _) = bad(&format!("{HEADER}\n{{\"path\":\"data\"}}\n{FILE}\n"));
    assert_eq!(line, 2);
    // An unsafe path.
    let escape = DIR.replace("\"data\"", "\"data/../../etc\"");
    let (line, message) = bad(&format!("{HEADER}\n{escape}\n{FILE}\n"));
    assert_eq!(line, 2);
    assert!(message.contains("unsafe path"), "{message}");
    // A blank line.
    let (line, _) = bad(&format!("{HEADER}\n{DIR}\n\n{FILE}\n"));
    assert_eq!(line, 3);
}

#[test]
fn duplicate_path() {
    let (line, message) = bad(&format!("{HEADER}\n{FILE}\n{FILE}\n"));
    assert_eq!(line, 3);
    assert!(
        message.contains("duplicate path data/PG_VERSION"),
        "{message}"
    );
}

#[test]
fn count_mismatch() {
    let (line, message) = bad(&format!("{HEADER}\n{DIR}\n"));
    assert_eq!(line, 2);
    assert!(message.contains("2 entries"), "{message}");
    let (_, message) = bad(&format!(
        "{HEADER}\n{DIR}\n{FILE}\n{}\n",
        FILE.replace("PG_VERSION", "x")
    ));
    assert!(message.contains("holds 3"), "{message}");
}
