//! Synthetic incremental chains, backed up by the executor (so manifests
//! carry page fingerprints as real backups do), restored combined, and
//! compared with a simple in-memory model of pg_combinebackup.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use proptest::prelude::*;

use super::*;
use crate::progress::NoProgress;
use crate::restore::{LocalDestination, RestoreOptions, RestoreReport, restore_combined};
use crate::source::Roots;

/// A backup's content: path (tree first: `data/...`, `16390/...`) → bytes.
type Files = BTreeMap<String, Vec<u8>>;

const PAGE: usize = crate::hash::PAGE_SIZE;
const TS: &str = "16390/PG_17_202406281/5";

/// A recognisable page: `seed` says which backup, `b` which block.
fn page(seed: u8, b: u32) -> Vec<u8> {
    (0..PAGE)
        .map(|i| u8::try_from((usize::from(seed) * 31 + b as usize * 7 + i) % 251).unwrap())
        .collect()
}

/// A full relation file of `n` blocks.
fn full(seed: u8, n: u32) -> Vec<u8> {
    (0..n).flat_map(|b| page(seed, b)).collect()
}

/// An incremental file in PostgreSQL's format; `blocks` in file order.
fn incremental(truncation: u32, blocks: &[(u32, Vec<u8>)]) -> Vec<u8> {
    incremental_raw(INCREMENTAL_MAGIC, truncation, blocks)
}

fn incremental_raw(magic: u32, truncation: u32, blocks: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&u32::try_from(blocks.len()).unwrap().to_le_bytes());
    out.extend_from_slice(&truncation.to_le_bytes());
    for (b, _) in blocks {
        out.extend_from_slice(&b.to_le_bytes());
    }
    if !blocks.is_empty() {
        out.resize(out.len().next_multiple_of(PAGE), 0);
    }
    for (_, data) in blocks {
        out.extend_from_slice(data);
    }
    out
}

/// Blocks `numbers` of backup `seed`, in that order.
fn blocks(seed: u8, numbers: &[u32]) -> Vec<(u32, Vec<u8>)> {
    numbers.iter().map(|&b| (b, page(seed, b))).collect()
}

/// Parses an incremental file (the model's own, trusting reader).
fn parse(bytes: &[u8]) -> (u32, Vec<(u32, Vec<u8>)>) {
    let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    let (n, truncation) = (word(4) as usize, word(8));
    let mut header = 12 + 4 * n;
    if n > 0 {
        header = header.next_multiple_of(PAGE);
    }
    let list = (0..n)
        .map(|i| {
            let at = header + i * PAGE;
            (word(12 + 4 * i), bytes[at..at + PAGE].to_vec())
        })
        .collect();
    (truncation, list)
}

/// The model: what pg_combinebackup writes for `output` (incremental name
/// `inc`) from `chain` (root first).
fn model(chain: &[&Files], output: &str, inc: &str) -> Result<Vec<u8>, String> {
    let (leaf, older) = chain.split_last().unwrap();
    let (truncation, latest) = parse(&leaf[inc]);
    let len = latest
        .iter()
        .map(|(b, _)| b + 1)
        .max()
        .unwrap_or(0)
        .max(truncation);
    let mut out: Vec<Option<Vec<u8>>> = vec![None; len as usize];
    for (b, data) in latest {
        out[b as usize] = Some(data);
    }
    let mut found_full = false;
    for files in older.iter().rev() {
        if let Some(full) = files.get(output) {
            for b in 0..truncation as usize {
                if out[b].is_none() && (b + 1) * PAGE <= full.len() {
                    out[b] = Some(full[b * PAGE..(b + 1) * PAGE].to_vec());
                }
            }
            found_full = true;
            break;
        } else if let Some(bytes) = files.get(inc) {
            for (b, data) in parse(bytes).1 {
                if b < truncation && out[b as usize].is_none() {
                    out[b as usize] = Some(data);
                }
            }
        } else {
            return Err(format!("{output} missing"));
        }
    }
    if !found_full {
        return Err("full backup contains unexpected incremental file".to_owned());
    }
    Ok(out
        .into_iter()
        .flat_map(|b| b.unwrap_or_else(|| vec![0; PAGE]))
        .collect())
}

/// The incremental name of `path`.
fn inc_name(path: &str) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap();
    format!("{dir}/INCREMENTAL.{name}")
}

/// Backs `files` up with the executor into `root/<name>`.
fn backup(root: &Path, name: &str, files: &Files) -> (PathBuf, Manifest) {
    let src = root.join(format!("src-{name}"));
    fs::create_dir_all(src.join("data")).unwrap();
    fs::create_dir_all(src.join("16390")).unwrap();
    for (path, bytes) in files {
        let at = src.join(path);
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        fs::write(at, bytes).unwrap();
    }
    crate::restore::tests::back_up(&src.join("data"), &src.join("16390"), root.join(name))
}

/// Backs every member of `chain` up.
fn backups(root: &Path, chain: &[&Files]) -> Vec<(PathBuf, Manifest)> {
    chain
        .iter()
        .enumerate()
        .map(|(i, files)| backup(root, &format!("b{i}"), files))
        .collect()
}

fn members(backups: &[(PathBuf, Manifest)]) -> Vec<ChainMember<'_>> {
    backups
        .iter()
        .map(|(dir, manifest)| ChainMember { dir, manifest })
        .collect()
}

fn dest_roots(root: &Path) -> Roots {
    [
        ("data".to_owned(), root.join("dest")),
        ("16390".to_owned(), root.join("newts")),
    ]
    .into()
}

/// Plans and restores `backups` combined into `root/dest`, `root/newts`.
fn restore_chain(root: &Path, backups: &[(PathBuf, Manifest)]) -> Result<RestoreReport> {
    let chain = members(backups);
    let combined = plan(&chain)?;
    restore_combined(
        &combined,
        &LocalDestination::new(dest_roots(root)),
        &RestoreOptions {
            jobs: 2,
            ..RestoreOptions::default()
        },
        &NoProgress,
        &AtomicBool::new(false),
    )
}

/// Every regular file restored, by manifest-style path.
fn restored(root: &Path) -> Files {
    let mut out = Files::new();
    for (tree, dir) in dest_roots(root) {
        if !dir.exists() {
            continue;
        }
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let entry = entry.unwrap();
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    let rel = entry.path().strip_prefix(&dir).unwrap().to_owned();
                    out.insert(
                        format!("{tree}/{}", rel.display()),
                        fs::read(entry.path()).unwrap(),
                    );
                }
            }
        }
    }
    out
}

/// What the combined directory must hold, by the model.
fn expected(chain: &[&Files]) -> Files {
    let leaf = chain.last().unwrap();
    let mut out = Files::new();
    for (path, bytes) in *leaf {
        let rel = RelPath::new(path.as_str()).unwrap();
        if let Some(output) = reconstructed_path(&rel).unwrap() {
            out.insert(
                output.to_string(),
                model(chain, output.as_str(), path).unwrap(),
            );
        } else if path == "data/backup_label" {
            let text = String::from_utf8(bytes.clone()).unwrap();
            let kept: String = text
                .split_inclusive('\n')
                .filter(|l| !l.starts_with("INCREMENTAL FROM"))
                .collect();
            out.insert(path.clone(), kept.into_bytes());
        } else {
            out.insert(path.clone(), bytes.clone());
        }
    }
    out
}

fn common(files: &mut Files, label: &str) {
    files.insert("data/PG_VERSION".into(), b"17\n".to_vec());
    files.insert("data/global/pg_control".into(), vec![1; PAGE]);
    files.insert("data/backup_label".into(), label.as_bytes().to_vec());
}

/// Root (full) → middle (incremental) → leaf (incremental), covering every
/// case of the algorithm.
fn three_levels() -> [Files; 3] {
    let mut root = Files::new();
    common(&mut root, "START WAL LOCATION: 0/2000028\nLABEL: full\n");
    for (path, n) in [
        ("data/base/5/100", 6),
        ("data/base/5/200", 4),
        ("data/base/5/300", 3),
        ("data/base/5/400", 2),
        ("data/base/5/500", 3),
        ("data/base/5/1000", 2),
        ("data/global/600", 2),
    ] {
        root.insert(path.into(), full(1, n));
    }
    root.insert(format!("{TS}/700"), full(1, 3));

    let mut middle = Files::new();
    common(
        &mut middle,
        "START WAL LOCATION: 0/4000028\nINCREMENTAL FROM LSN: 0/2000028\nINCREMENTAL FROM TLI: 1\n",
    );
    for (path, truncation, numbers) in [
        ("data/base/5/100", 6, &[4, 1][..]),
        ("data/base/5/200", 4, &[3]),
        ("data/base/5/300", 3, &[]),
        ("data/base/5/400", 2, &[]),
        ("data/base/5/500", 3, &[]),
        ("data/global/600", 2, &[0]),
    ] {
        middle.insert(inc_name(path), incremental(truncation, &blocks(2, numbers)));
    }
    middle.insert(
        inc_name(&format!("{TS}/700")),
        incremental(3, &blocks(2, &[2])),
    );
    // A relation created after the full backup.
    middle.insert("data/base/5/800".into(), full(2, 2));

    let mut leaf = Files::new();
    common(
        &mut leaf,
        "START WAL LOCATION: 0/6000028\nINCREMENTAL FROM LSN: 0/4000028\nINCREMENTAL FROM TLI: 1\nLABEL: leaf",
    );
    for (path, truncation, numbers) in [
        // Unsorted; block 4 from the middle, 2 and 3 from the root.
        ("data/base/5/100", 6, &[5, 1, 0][..]),
        // Truncated: the middle's block 3 is past the truncation.
        ("data/base/5/200", 2, &[]),
        // Extended past the truncation by a leaf block; block 3 zeros.
        ("data/base/5/300", 3, &[4]),
        // Zero-filled gap: blocks 2..5 exist nowhere.
        ("data/base/5/400", 5, &[]),
        // Whole-copy shortcut.
        ("data/base/5/500", 3, &[]),
        // Full file in the middle of the chain.
        ("data/base/5/800", 3, &[2]),
        ("data/global/600", 2, &[1]),
    ] {
        leaf.insert(inc_name(path), incremental(truncation, &blocks(3, numbers)));
    }
    leaf.insert(
        inc_name(&format!("{TS}/700")),
        incremental(3, &blocks(3, &[0])),
    );
    // Not in a directory whose incremental files are reconstructed.
    leaf.insert(
        "data/pg_stuff/INCREMENTAL.foo".into(),
        b"kept as is".to_vec(),
    );
    leaf.insert("data/base/INCREMENTAL.900".into(), vec![5; 100]);
    [root, middle, leaf]
}

#[test]
fn a_three_level_chain_restores_as_the_model_says() {
    let tmp = tempfile::tempdir().unwrap();
    let [root, middle, leaf] = three_levels();
    let chain = [&root, &middle, &leaf];
    let backups = backups(tmp.path(), &chain);
    let report = restore_chain(tmp.path(), &backups).unwrap();
    let want = expected(&chain);
    let got = restored(tmp.path());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &want {
        assert!(got[path] == *bytes, "{path} differs from the model");
    }
    // Spot checks of the model itself.
    let at = |path: &str, b: usize| got[path][b * PAGE..(b + 1) * PAGE].to_vec();
    assert_eq!(got["data/base/5/100"].len(), 6 * PAGE);
    assert_eq!(at("data/base/5/100", 0), page(3, 0));
    assert_eq!(at("data/base/5/100", 1), page(3, 1));
    assert_eq!(at("data/base/5/100", 2), page(1, 2));
    assert_eq!(at("data/base/5/100", 4), page(2, 4));
    assert_eq!(at("data/base/5/100", 5), page(3, 5));
    assert_eq!(got["data/base/5/200"], full(1, 2));
    assert_eq!(got["data/base/5/300"].len(), 5 * PAGE);
    assert_eq!(at("data/base/5/300", 3), vec![0; PAGE]);
    assert_eq!(at("data/base/5/300", 4), page(3, 4));
    assert_eq!(got["data/base/5/400"][..2 * PAGE], full(1, 2));
    assert!(got["data/base/5/400"][2 * PAGE..].iter().all(|&b| b == 0));
    assert_eq!(got["data/base/5/500"], full(1, 3));
    assert_eq!(at("data/base/5/800", 0), page(2, 0));
    assert_eq!(at("data/base/5/800", 2), page(3, 2));
    assert_eq!(at(&format!("{TS}/700"), 0), page(3, 0));
    assert_eq!(at(&format!("{TS}/700"), 2), page(2, 2));
    assert_eq!(
        got["data/backup_label"],
        b"START WAL LOCATION: 0/6000028\nLABEL: leaf"
    );
    assert_eq!(got["data/pg_stuff/INCREMENTAL.foo"], b"kept as is");
    assert!(!got.contains_key("data/base/5/1000"));
    // 8 reconstructed files and the label; everything verified.
    assert_eq!(report.files_combined, 9, "{report:?}");
    assert_eq!(report.files_unverified, 0, "{report:?}");
    assert_eq!(report.files, want.len() as u64, "{report:?}");
}

#[test]
fn the_plan_manifest_lists_outputs_with_their_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let [root, middle, leaf] = three_levels();
    let backups = backups(tmp.path(), &[&root, &middle, &leaf]);
    let chain = members(&backups);
    let combined = plan(&chain).unwrap();
    assert_eq!(combined.reconstructed(), 8);
    let m = combined.manifest();
    let get = |p: &str| m.get(&RelPath::new(p).unwrap());
    assert!(get("data/base/5/INCREMENTAL.100").is_none());
    let out = get("data/base/5/100").unwrap();
    assert_eq!(
        (out.size, out.blake3, out.pages.is_some()),
        (6 * 8192, None, false)
    );
    assert_eq!(get("data/base/5/300").unwrap().size, 5 * 8192);
    assert!(
        get("data/pg_stuff/INCREMENTAL.foo")
            .unwrap()
            .blake3
            .is_some()
    );
    assert!(get("data/backup_label").unwrap().blake3.is_none());
    assert!(combined.is_planned(&RelPath::new("data/backup_label").unwrap()));
    assert!(!combined.is_planned(&RelPath::new("data/PG_VERSION").unwrap()));
}

#[test]
fn delta_restore_rewrites_reconstructed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let [root, middle, leaf] = three_levels();
    let chain = [&root, &middle, &leaf];
    let backups = backups(tmp.path(), &chain);
    restore_chain(tmp.path(), &backups).unwrap();
    fs::write(tmp.path().join("dest/base/5/100"), "stale").unwrap();
    let members = members(&backups);
    let combined = plan(&members).unwrap();
    let report = restore_combined(
        &combined,
        &LocalDestination::new(dest_roots(tmp.path())),
        &RestoreOptions {
            delta: true,
            ..RestoreOptions::default()
        },
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(report.files_combined, 9, "{report:?}");
    assert_eq!(restored(tmp.path()), expected(&chain));
}

/// A root with `data/base/5/100` (3 blocks) and a leaf with `leaf_inc` as
/// its incremental file, plus the common files.
fn two_levels(leaf_inc: Vec<u8>) -> [Files; 2] {
    let mut root = Files::new();
    common(&mut root, "LABEL: full\n");
    root.insert("data/base/5/100".into(), full(1, 3));
    let mut leaf = Files::new();
    common(&mut leaf, "INCREMENTAL FROM LSN: 0/1\n");
    leaf.insert("data/base/5/INCREMENTAL.100".into(), leaf_inc);
    [root, leaf]
}

/// Restores a chain expected to fail; checks that nothing was installed
/// at `output` and no temporary file is left; returns the error.
fn fails(tmp: &Path, backups: &[(PathBuf, Manifest)], output: &str) -> Error {
    let err = restore_chain(tmp, backups).unwrap_err();
    let dest = tmp.join("dest");
    assert!(!dest.join(output).exists(), "{output} installed ({err})");
    let dir = dest.join(Path::new(output).parent().unwrap());
    if dir.exists() {
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| barman_fs::is_temp_name(n))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
    err
}

#[test]
fn malformed_leaf_incremental_files_are_refused_naming_them() {
    let ok = incremental(3, &blocks(3, &[1, 0]));
    let mut truncated = ok.clone();
    truncated.truncate(ok.len() - 1);
    let mut too_many = ok.clone();
    too_many[4..8].copy_from_slice(&(RELSEG_SIZE + 1).to_le_bytes());
    let mut too_long = ok.clone();
    too_long[8..12].copy_from_slice(&(RELSEG_SIZE + 1).to_le_bytes());
    for (bytes, message) in [
        (
            incremental_raw(0xdead_beef, 3, &blocks(3, &[1])),
            "bad incremental magic",
        ),
        (too_many, "in excess of segment size"),
        (too_long, "truncation block length"),
        (truncated, "truncated incremental file"),
        (vec![1, 2, 3], "file too short"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let [root, leaf] = two_levels(bytes);
        let backups = backups(tmp.path(), &[&root, &leaf]);
        let err = fails(tmp.path(), &backups, "base/5/100");
        assert!(matches!(err, Error::Incremental { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(message), "{text}");
        assert!(text.contains("b1/data/base/5/INCREMENTAL.100"), "{text}");
    }
}

#[test]
fn a_malformed_older_incremental_file_fails_before_installing() {
    let tmp = tempfile::tempdir().unwrap();
    let [root, mut middle, mut leaf] = three_levels();
    middle.insert(
        "data/base/5/INCREMENTAL.100".into(),
        incremental_raw(0x0bad_f00d, 6, &blocks(2, &[4])),
    );
    leaf.retain(|p, _| !p.contains("INCREMENTAL.") || p.ends_with("INCREMENTAL.100"));
    let backups = backups(tmp.path(), &[&root, &middle, &leaf]);
    let err = fails(tmp.path(), &backups, "base/5/100");
    assert!(
        err.to_string().contains("b1/data/base/5/INCREMENTAL.100"),
        "{err}"
    );
    assert!(err.to_string().contains("magic"), "{err}");
}

#[test]
fn a_file_missing_from_the_chain_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let [mut root, leaf] = two_levels(incremental(3, &blocks(3, &[1])));
    root.remove("data/base/5/100");
    let backups = backups(tmp.path(), &[&root, &leaf]);
    let err = fails(tmp.path(), &backups, "base/5/100");
    assert!(matches!(err, Error::Incremental { .. }), "{err}");
    assert!(err.to_string().contains("b0/data/base/5/100"), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn an_incremental_file_in_the_full_backup_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let [mut root, leaf] = two_levels(incremental(3, &blocks(3, &[1])));
    root.remove("data/base/5/100");
    root.insert(
        "data/base/5/INCREMENTAL.100".into(),
        incremental(3, &blocks(1, &[0])),
    );
    let backups = backups(tmp.path(), &[&root, &leaf]);
    let err = fails(tmp.path(), &backups, "base/5/100");
    let text = err.to_string();
    assert!(
        text.contains("full backup contains unexpected incremental file"),
        "{text}"
    );
    assert!(text.contains("b0/data/base/5/INCREMENTAL.100"), "{text}");
}

#[test]
fn a_lone_full_backup_or_a_doubled_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let [_, mut leaf] = two_levels(incremental(3, &blocks(3, &[1])));
    let lone = backups(tmp.path(), &[&leaf]);
    let err = plan(&members(&lone)).unwrap_err();
    assert!(
        err.to_string().contains("unexpected incremental file"),
        "{err}"
    );
    assert!(
        err.to_string().contains("b0/data/base/5/INCREMENTAL.100"),
        "{err}"
    );
    leaf.insert("data/base/5/100".into(), full(3, 1));
    let tmp = tempfile::tempdir().unwrap();
    let [root, _] = two_levels(Vec::new());
    let both = backups(tmp.path(), &[&root, &leaf]);
    let err = plan(&members(&both)).unwrap_err();
    assert!(err.to_string().contains("both data/base/5/100"), "{err}");
    assert!(plan(&[]).is_err());
}

#[test]
fn a_source_missing_from_its_manifest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let [root, leaf] = two_levels(incremental(3, &blocks(3, &[1])));
    let mut backups = backups(tmp.path(), &[&root, &leaf]);
    backups[0]
        .1
        .entries
        .remove(&RelPath::new("data/base/5/100").unwrap());
    let err = fails(tmp.path(), &backups, "base/5/100");
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("b0/data/base/5/100"), "{err}");
}

/// Flips one byte of backup file `path` (under the backup's directory).
fn corrupt(dir: &Path, path: &str, at: usize) {
    let file = dir.join(path);
    let mut bytes = fs::read(&file).unwrap();
    bytes[at] ^= 0xff;
    fs::write(&file, bytes).unwrap();
}

#[test]
fn a_corrupted_page_of_a_full_source_fails_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let [root, leaf] = two_levels(incremental(3, &blocks(3, &[1])));
    let backups = backups(tmp.path(), &[&root, &leaf]);
    // Block 2 is read from the root: its fingerprint no longer matches.
    corrupt(&backups[0].0, "data/base/5/100", 2 * PAGE + 5);
    let err = fails(tmp.path(), &backups, "base/5/100");
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    assert!(
        err.to_string().contains("b0/data/base/5/100 (page 2)"),
        "{err}"
    );
    // A corrupted block the reconstruction does not read is no concern.
    let tmp = tempfile::tempdir().unwrap();
    let backups = self::backups(tmp.path(), &[&root, &leaf]);
    corrupt(&backups[0].0, "data/base/5/100", PAGE + 5);
    restore_chain(tmp.path(), &backups).unwrap();
}

#[test]
fn a_corrupted_whole_copy_source_fails_before_its_last_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let [mut root, leaf] = two_levels(incremental(3, &[]));
    let mut backups = backups(tmp.path(), &[&root, &leaf]);
    // Without page fingerprints the shortcut hashes the source as read.
    backups[0]
        .1
        .entries
        .get_mut(&RelPath::new("data/base/5/100").unwrap())
        .unwrap()
        .pages = None;
    corrupt(&backups[0].0, "data/base/5/100", PAGE + 1);
    let err = fails(tmp.path(), &backups, "base/5/100");
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("b0/data/base/5/100"), "{err}");
    // Untouched, it restores.
    root.insert("data/base/5/100".into(), full(1, 3));
    let tmp = tempfile::tempdir().unwrap();
    let backups = self::backups(tmp.path(), &[&root, &leaf]);
    restore_chain(tmp.path(), &backups).unwrap();
    assert_eq!(
        fs::read(tmp.path().join("dest/base/5/100")).unwrap(),
        full(1, 3)
    );
}

#[test]
fn corrupted_incremental_sources_fail_on_their_blake3() {
    for (member, path) in [
        (1, "data/base/5/INCREMENTAL.100"),
        (2, "data/base/5/INCREMENTAL.100"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let [root, middle, leaf] = three_levels();
        let backups = backups(tmp.path(), &[&root, &middle, &leaf]);
        // A byte of a block, past the header the plan reads.
        corrupt(&backups[member].0, path, PAGE + 3);
        let err = fails(tmp.path(), &backups, "base/5/100");
        assert!(matches!(err, Error::Checksum { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("b{member}/{path}")),
            "{err}"
        );
    }
}

#[test]
fn the_backup_label_is_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let [root, leaf] = two_levels(incremental(3, &[]));
    let backups = backups(tmp.path(), &[&root, &leaf]);
    corrupt(&backups[1].0, "data/backup_label", 0);
    let err = restore_chain(tmp.path(), &backups).unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("b1/data/backup_label"), "{err}");
    assert!(!tmp.path().join("dest/backup_label").exists());
}

#[test]
fn backup_label_lines_are_dropped_as_pg_combinebackup_does() {
    assert_eq!(
        rewrite_backup_label(
            b"START WAL LOCATION: 0/1\nINCREMENTAL FROM LSN: 0/2\nX\nINCREMENTAL FROM TLI: 1"
        ),
        b"START WAL LOCATION: 0/1\nX\n"
    );
    assert_eq!(
        rewrite_backup_label(b"A\n INCREMENTAL FROM LSN: 0/2\n"),
        b"A\n INCREMENTAL FROM LSN: 0/2\n"
    );
}

#[test]
fn only_incremental_directories_are_reconstructed() {
    let out = |p: &str| {
        reconstructed_path(&RelPath::new(p).unwrap())
            .unwrap()
            .map(|p| p.to_string())
    };
    assert_eq!(
        out("data/base/5/INCREMENTAL.1"),
        Some("data/base/5/1".into())
    );
    assert_eq!(
        out("data/global/INCREMENTAL.1"),
        Some("data/global/1".into())
    );
    assert_eq!(
        out("data/pg_tblspc/16390/PG_17/5/INCREMENTAL.1"),
        Some("data/pg_tblspc/16390/PG_17/5/1".into())
    );
    assert_eq!(
        out("16390/PG_17/5/INCREMENTAL.1"),
        Some("16390/PG_17/5/1".into())
    );
    assert_eq!(out("16390/INCREMENTAL.1"), Some("16390/1".into()));
    assert_eq!(out("data/INCREMENTAL.1"), None);
    assert_eq!(out("data/base/INCREMENTAL.1"), None);
    assert_eq!(out("data/pg_wal/INCREMENTAL.1"), None);
    assert_eq!(out("data/base/5/INCREMENTAL."), None);
    assert_eq!(out("data/base/5/1"), None);
}

/// One level of a random chain for relation `data/base/5/100`.
#[derive(Debug, Clone)]
enum Level {
    /// The full file, this many blocks.
    Full(u32),
    /// An incremental file: truncation block length, block numbers.
    Incremental(u32, Vec<u32>),
}

fn level() -> impl Strategy<Value = Level> {
    prop_oneof![
        (0_u32..6).prop_map(Level::Full),
        (
            0_u32..8,
            proptest::sample::subsequence((0_u32..10).collect::<Vec<_>>(), 0..6).prop_shuffle()
        )
            .prop_map(|(t, b)| Level::Incremental(t, b)),
    ]
}

fn chain_strategy() -> impl Strategy<Value = Vec<Level>> {
    (
        0_u32..6,
        proptest::collection::vec(level(), 0..3),
        0_u32..8,
        proptest::sample::subsequence((0_u32..10).collect::<Vec<_>>(), 0..6).prop_shuffle(),
    )
        .prop_map(|(root, middle, t, b)| {
            let mut levels = vec![Level::Full(root)];
            levels.extend(middle);
            levels.push(Level::Incremental(t, b));
            levels
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_chains_restore_as_the_model_says(levels in chain_strategy()) {
        let chain: Vec<Files> = levels
            .iter()
            .enumerate()
            .map(|(i, level)| {
                let seed = u8::try_from(i + 1).unwrap();
                let mut files = Files::new();
                common(&mut files, "LABEL: x\n");
                match level {
                    Level::Full(n) => {
                        files.insert("data/base/5/100".into(), full(seed, *n));
                    }
                    Level::Incremental(t, numbers) => {
                        files.insert(
                            "data/base/5/INCREMENTAL.100".into(),
                            incremental(*t, &blocks(seed, numbers)),
                        );
                    }
                }
                files
            })
            .collect();
        let refs: Vec<&Files> = chain.iter().collect();
        let tmp = tempfile::tempdir().unwrap();
        let backups = backups(tmp.path(), &refs);
        let report = restore_chain(tmp.path(), &backups).unwrap();
        prop_assert_eq!(report.files_unverified, 0);
        let got = restored(tmp.path());
        let want = model(&refs, "data/base/5/100", "data/base/5/INCREMENTAL.100").unwrap();
        prop_assert!(got["data/base/5/100"] == want, "differs from the model: {:?}", levels);
    }
}

/// Sessions with agents served in threads over pipes (the remote
/// destination without ssh).
struct InProcessAgents {
    roots: Roots,
}

impl crate::restore::DestinationFactory for InProcessAgents {
    fn open(&self) -> Result<Box<dyn crate::restore::Destination>> {
        let (agent_in, client_out) = std::io::pipe().unwrap();
        let (client_in, agent_out) = std::io::pipe().unwrap();
        std::thread::spawn(move || crate::agent::serve(agent_in, agent_out));
        Ok(Box::new(crate::remote::AgentSource::over(
            client_in,
            client_out,
            &self.roots,
            true,
        )?))
    }
}

#[test]
fn through_an_agent_the_chain_restores_and_a_bad_source_installs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let [root, middle, leaf] = three_levels();
    let chain = [&root, &middle, &leaf];
    let backups = backups(tmp.path(), &chain);
    let run = || {
        let members = members(&backups);
        let combined = plan(&members)?;
        restore_combined(
            &combined,
            &InProcessAgents {
                roots: dest_roots(tmp.path()),
            },
            &RestoreOptions {
                jobs: 2,
                delta: true,
                ..RestoreOptions::default()
            },
            &NoProgress,
            &AtomicBool::new(false),
        )
    };
    let report = run().unwrap();
    assert_eq!(report.files_combined, 9, "{report:?}");
    assert_eq!(restored(tmp.path()), expected(&chain));
    // The destination keeps its file when a source turns out corrupted.
    fs::write(tmp.path().join("dest/base/5/100"), "kept").unwrap();
    corrupt(&backups[0].0, "data/base/5/100", 2 * PAGE + 9);
    let err = run().unwrap_err();
    assert!(
        err.to_string().contains("b0/data/base/5/100 (page 2)"),
        "{err}"
    );
    assert_eq!(
        fs::read(tmp.path().join("dest/base/5/100")).unwrap(),
        b"kept"
    );
}
