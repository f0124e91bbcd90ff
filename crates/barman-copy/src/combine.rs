//! Restores a chain of PostgreSQL 17+ incremental backups as one data
//! directory, as `pg_combinebackup` would write it, without a staging copy.
//!
//! A chain is a full backup (the root) followed by incremental backups, each
//! taken against the one before; the last one is the leaf. In an incremental
//! backup, relation files are stored as `INCREMENTAL.<name>` files: a header
//! (magic, block count, truncation block length, the block numbers, padded to
//! a page boundary when there are blocks) followed by the blocks that changed.
//!
//! [`plan`] reads the leaf's `INCREMENTAL.*` headers (to know every output
//! file's size) and looks the older versions up in the older backups; the
//! [`Combined`] it returns holds the output [`Manifest`] and, per output file
//! that is not a plain copy of a leaf file, where its bytes come from.
//! [`Combined::open`] then streams one reconstructed file block by block
//! (the algorithm of PostgreSQL's `src/bin/pg_combinebackup/reconstruct.c`),
//! verifying every byte taken from a source against that source backup's
//! manifest before handing it out: per-page fingerprints of full files read
//! as they are read, whole-file blake3 of the other sources before the first
//! byte. A mismatch makes the read fail, so a destination never installs the
//! file. [`crate::restore::restore_combined`] restores with it.
//!
//! `data/backup_label` is the leaf's without its `INCREMENTAL FROM LSN:` and
//! `INCREMENTAL FROM TLI:` lines (pg_combinebackup's `write_backup_label`).
//! Everything else the leaf lists is restored from the leaf as is; files
//! only older backups hold are not restored.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::entry::{EntryKind, RelPath};
use crate::hash::{FileHash, PageHash, PageHashes};
use crate::manifest::{Manifest, ManifestEntry};
use crate::{Error, Result};

/// The name prefix of incremental relation files.
pub const INCREMENTAL_PREFIX: &str = "INCREMENTAL.";
/// The first four bytes of an incremental file (little-endian).
pub const INCREMENTAL_MAGIC: u32 = 0xd3ae_1f0d;
/// Blocks per relation segment (`RELSEG_SIZE`): the most blocks an
/// incremental file can hold, and the largest truncation block length.
pub const RELSEG_SIZE: u32 = 131_072;
/// PostgreSQL's block size (`BLCKSZ`), as a `u64`.
const BLCKSZ: u64 = crate::hash::PAGE_SIZE as u64;
/// The backup label, rewritten.
const BACKUP_LABEL: &str = "data/backup_label";
/// The largest backup label accepted (it is read whole).
const MAX_LABEL: u64 = 1 << 20;
/// Lines of the backup label that the combined directory does not keep.
const LABEL_DROPPED: [&str; 2] = ["INCREMENTAL FROM LSN: ", "INCREMENTAL FROM TLI: "];

/// One backup of a chain: its directory (`base/<id>`, holding `data/` and
/// one tree per tablespace) and its manifest.
#[derive(Debug, Clone, Copy)]
pub struct ChainMember<'a> {
    /// The backup's directory.
    pub dir: &'a Path,
    /// The backup's manifest.
    pub manifest: &'a Manifest,
}

/// The fixed part of an incremental file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncrementalHeader {
    /// Blocks the file holds.
    pub num_blocks: u32,
    /// The relation segment's length in blocks when the backup was taken
    /// (blocks past it in older backups are truncated away).
    pub truncation_block_length: u32,
}

impl IncrementalHeader {
    /// Bytes before the first block: 12 plus 4 per block number, rounded up
    /// to a whole block when the file holds blocks.
    pub fn header_length(&self) -> u64 {
        let raw = 12 + 4 * u64::from(self.num_blocks);
        if self.num_blocks > 0 {
            raw.next_multiple_of(BLCKSZ)
        } else {
            raw
        }
    }

    /// The smallest valid size of the file: header and blocks.
    pub fn min_file_size(&self) -> u64 {
        self.header_length() + u64::from(self.num_blocks) * BLCKSZ
    }
}

/// An [`Error::Incremental`] about `path`.
fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Incremental {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads and validates the header of incremental file `file` (`path`, of
/// `size` bytes), calling `each(index, block_number)` for every block number
/// in file order; block numbers are read a block's worth at a time.
fn read_header(
    file: &File,
    path: &Path,
    size: u64,
    mut each: impl FnMut(u32, u32) -> Result<()>,
) -> Result<IncrementalHeader> {
    let mut fixed = [0u8; 12];
    read_at(file, path, &mut fixed, 0)?;
    let word = |i: usize| u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
    let (magic, num_blocks, truncation_block_length) = (word(0), word(4), word(8));
    if magic != INCREMENTAL_MAGIC {
        return Err(bad(
            path,
            format!("bad incremental magic number (0x{magic:x}, expected 0x{INCREMENTAL_MAGIC:x})"),
        ));
    }
    if num_blocks > RELSEG_SIZE {
        return Err(bad(
            path,
            format!("block count {num_blocks} in excess of segment size {RELSEG_SIZE}"),
        ));
    }
    if truncation_block_length > RELSEG_SIZE {
        return Err(bad(
            path,
            format!(
                "truncation block length {truncation_block_length} in excess of segment size {RELSEG_SIZE}"
            ),
        ));
    }
    let header = IncrementalHeader {
        num_blocks,
        truncation_block_length,
    };
    if size < header.min_file_size() {
        return Err(bad(
            path,
            format!(
                "truncated incremental file: {size} bytes, its header announces {} blocks ({} bytes)",
                num_blocks,
                header.min_file_size()
            ),
        ));
    }
    let mut chunk = vec![0u8; crate::hash::PAGE_SIZE];
    let mut index = 0_u32;
    while index < num_blocks {
        let count = (num_blocks - index).min(2048);
        let bytes = &mut chunk[..4 * count as usize];
        read_at(file, path, bytes, 12 + 4 * u64::from(index))?;
        for number in bytes.chunks_exact(4) {
            each(
                index,
                u32::from_le_bytes([number[0], number[1], number[2], number[3]]),
            )?;
            index += 1;
        }
    }
    Ok(header)
}

/// `read_exact_at`, a short file being an [`Error::Incremental`].
fn read_at(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            bad(
                path,
                format!("file too short: no {} bytes at offset {offset}", buf.len()),
            )
        } else {
            Error::io(path, e)
        }
    })
}

/// The output path of `path` when it is an incremental file that is
/// reconstructed: `INCREMENTAL.<name>` in `base/<...>`, `global`,
/// `pg_tblspc/<...>` of the data tree, or anywhere in a tablespace tree
/// (pg_combinebackup's `is_incremental_dir`).
fn reconstructed_path(path: &RelPath) -> Result<Option<RelPath>> {
    let Some(name) = path.file_name().strip_prefix(INCREMENTAL_PREFIX) else {
        return Ok(None);
    };
    let Some(parent) = path.parent() else {
        return Ok(None);
    };
    if name.is_empty() {
        return Ok(None);
    }
    let dir = parent.in_tree();
    let in_incremental_dir = parent.tree() != "data"
        || dir.starts_with("base/")
        || dir == "global"
        || dir.starts_with("pg_tblspc/");
    if !in_incremental_dir {
        return Ok(None);
    }
    parent.join(name).map(Some)
}

/// The backup label without the lines pg_combinebackup drops (each line
/// with its newline).
pub fn rewrite_backup_label(label: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(label.len());
    for line in label.split_inclusive(|&b| b == b'\n') {
        if !LABEL_DROPPED.iter().any(|p| line.starts_with(p.as_bytes())) {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Where one older version of a reconstructed file is.
#[derive(Debug, Clone, Copy)]
struct Older {
    /// Index of the backup in the chain.
    member: usize,
    /// The full file (else `INCREMENTAL.<name>`).
    full: bool,
}

/// How an output file is produced.
#[derive(Debug)]
enum Plan {
    /// Reconstructed from the leaf's incremental file `incremental` and
    /// the older versions `older` (leaf's parent first, a full file last).
    Reconstruct {
        incremental: RelPath,
        block_length: u32,
        older: Vec<Older>,
    },
    /// Bytes verified at plan time (the rewritten backup label).
    Bytes(Vec<u8>),
}

/// The combined restore of a chain: the output manifest and, per file that
/// is not copied from the leaf as is, how it is produced. Made by [`plan`].
#[derive(Debug)]
pub struct Combined<'a> {
    chain: Vec<ChainMember<'a>>,
    manifest: Manifest,
    plans: BTreeMap<RelPath, Plan>,
}

/// Plans the combined restore of `chain[0]` = root (full backup) ..
/// `chain[n-1]` = leaf: reads the leaf's `INCREMENTAL.*` headers and
/// backup label, and the older versions' sizes (older incremental files
/// are read when restoring).
///
/// # Errors
///
/// [`Error::Incremental`] for an empty chain, a malformed incremental file
/// of the leaf, a file that no older backup holds (neither full nor
/// incremental), an incremental file where the root should hold the full
/// file, a leaf holding both `x` and `INCREMENTAL.x`; [`Error::Checksum`]
/// for a source missing from its backup's manifest or of another size, or
/// a backup label that does not match the leaf's manifest; I/O errors.
pub fn plan<'a>(chain: &[ChainMember<'a>]) -> Result<Combined<'a>> {
    let Some((leaf, older)) = chain.split_last() else {
        return Err(bad(Path::new(""), "empty backup chain"));
    };
    let mut manifest = Manifest::default();
    let mut plans = BTreeMap::new();
    for entry in leaf.manifest.iter() {
        if entry.kind != EntryKind::File {
            manifest.insert(entry.clone());
            continue;
        }
        if let Some(output) = reconstructed_path(&entry.path)? {
            if leaf.manifest.get(&output).is_some() {
                return Err(bad(
                    &entry.path.under(leaf.dir),
                    format!("the backup holds both {output} and its incremental file"),
                ));
            }
            let source = entry.path.under(leaf.dir);
            let (file, size) = open_sized(&source, entry)?;
            let mut max_block: Option<u32> = None;
            let header = read_header(&file, &source, size, |_, b| {
                max_block = max_block.max(Some(b));
                Ok(())
            })?;
            let block_length = header
                .truncation_block_length
                .max(max_block.map_or(0, |b| b.saturating_add(1)));
            if older.is_empty() {
                // The chain is the full backup alone.
                return Err(bad(
                    &source,
                    "full backup contains unexpected incremental file",
                ));
            }
            let older = walk(older, &output, &entry.path)?;
            let mut out = entry.clone();
            out.path = output.clone();
            out.size = u64::from(block_length) * BLCKSZ;
            out.blake3 = None;
            out.pages = None;
            manifest.insert(out);
            plans.insert(
                output,
                Plan::Reconstruct {
                    incremental: entry.path.clone(),
                    block_length,
                    older,
                },
            );
        } else if entry.path.as_str() == BACKUP_LABEL {
            let source = entry.path.under(leaf.dir);
            if entry.size > MAX_LABEL {
                return Err(bad(&source, format!("larger than {MAX_LABEL} bytes")));
            }
            let (mut file, _) = open_sized(&source, entry)?;
            let mut label = Vec::new();
            file.read_to_end(&mut label)
                .map_err(|e| Error::io(&source, e))?;
            let actual = FileHash(*blake3::hash(&label).as_bytes());
            check_hash(&source, entry, actual)?;
            let rewritten = rewrite_backup_label(&label);
            let mut out = entry.clone();
            out.size = rewritten.len() as u64;
            out.blake3 = None;
            out.pages = None;
            manifest.insert(out);
            plans.insert(entry.path.clone(), Plan::Bytes(rewritten));
        } else {
            manifest.insert(entry.clone());
        }
    }
    Ok(Combined {
        chain: chain.to_vec(),
        manifest,
        plans,
    })
}

/// Opens `source`, which must have `entry`'s size.
fn open_sized(source: &Path, entry: &ManifestEntry) -> Result<(File, u64)> {
    let file = File::open(source).map_err(|e| Error::io(source, e))?;
    let size = file.metadata().map_err(|e| Error::io(source, e))?.len();
    if size != entry.size {
        return Err(Error::Checksum {
            path: source.display().to_string(),
            expected: format!("{} bytes", entry.size),
            actual: format!("{size} bytes"),
        });
    }
    Ok((file, size))
}

/// [`Error::Checksum`] unless `actual` is `entry`'s blake3.
fn check_hash(source: &Path, entry: &ManifestEntry, actual: FileHash) -> Result<()> {
    match entry.blake3 {
        Some(expected) if expected == actual => Ok(()),
        Some(expected) => Err(Error::Checksum {
            path: source.display().to_string(),
            expected: expected.to_hex(),
            actual: actual.to_hex(),
        }),
        // A backup taken by Barman: no manifest of ours, nothing to
        // verify against (the recovery warns about it).
        None => Ok(()),
    }
}

/// The size of the regular file at `path`, `None` when there is none.
fn regular_size(path: &Path) -> Result<Option<u64>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The manifest entry of `path` in `member`, which must list it as a
/// regular file (of `size` bytes, when given).
fn listed<'m>(
    member: &ChainMember<'m>,
    path: &RelPath,
    size: Option<u64>,
) -> Result<&'m ManifestEntry> {
    let source = path.under(member.dir);
    match member.manifest.get(path) {
        Some(entry) if entry.kind == EntryKind::File && size.is_none_or(|s| s == entry.size) => {
            Ok(entry)
        }
        Some(entry) if entry.kind == EntryKind::File => Err(Error::Checksum {
            path: source.display().to_string(),
            expected: format!("{} bytes", entry.size),
            actual: format!("{} bytes", size.unwrap_or(0)),
        }),
        _ => Err(Error::Checksum {
            path: source.display().to_string(),
            expected: "an entry in the backup's manifest".to_owned(),
            actual: "none".to_owned(),
        }),
    }
}

/// The older versions of `output` (incremental name `incremental`) in
/// `older` (root first), walked from the leaf's parent down to the first
/// full file.
fn walk(older: &[ChainMember<'_>], output: &RelPath, incremental: &RelPath) -> Result<Vec<Older>> {
    let mut found = Vec::new();
    for (member, backup) in older.iter().enumerate().rev() {
        if let Some(size) = regular_size(&output.under(backup.dir))? {
            listed(backup, output, Some(size))?;
            found.push(Older { member, full: true });
            return Ok(found);
        }
        let source = incremental.under(backup.dir);
        let Some(size) = regular_size(&source)? else {
            return Err(bad(
                &output.under(backup.dir),
                format!(
                    "missing from an older backup of the chain (nor is {} there)",
                    source.display()
                ),
            ));
        };
        listed(backup, incremental, Some(size))?;
        found.push(Older {
            member,
            full: false,
        });
    }
    let root = older
        .first()
        .map_or_else(PathBuf::new, |m| incremental.under(m.dir));
    Err(bad(
        &root,
        "full backup contains unexpected incremental file",
    ))
}

impl<'a> Combined<'a> {
    /// The manifest of the combined directory: the leaf's entries, each
    /// reconstructed `INCREMENTAL.x` replaced by `x` with its reconstructed
    /// size, and without checksums for the files this plan produces.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The leaf backup's directory (files not planned are copied from it).
    pub fn leaf_dir(&self) -> &'a Path {
        self.chain.last().map_or(Path::new(""), |m| m.dir)
    }

    /// How many output files are reconstructed from incremental files.
    pub fn reconstructed(&self) -> usize {
        self.plans
            .values()
            .filter(|p| matches!(p, Plan::Reconstruct { .. }))
            .count()
    }

    /// Whether output file `path` is produced by this plan (not copied
    /// from the leaf as is).
    pub fn is_planned(&self, path: &RelPath) -> bool {
        self.plans.contains_key(path)
    }

    /// A reader of output file `path`, `None` when the file is copied from
    /// the leaf as is. Opening verifies (whole-file blake3 against their
    /// manifests) the sources that are not checked page by page while
    /// read; `stop` is polled meanwhile.
    ///
    /// # Errors
    ///
    /// [`Error::Checksum`] naming a source that does not match its
    /// manifest; [`Error::Incremental`] for a malformed incremental file;
    /// [`Error::Cancelled`] once `stop` says so; I/O errors.
    pub fn open(
        &self,
        path: &RelPath,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<CombinedReader<'_>>> {
        let Some(plan) = self.plans.get(path) else {
            return Ok(None);
        };
        let blocks = match plan {
            Plan::Bytes(bytes) => {
                return Ok(Some(CombinedReader {
                    output: Output::Bytes(bytes),
                    block: Vec::new(),
                    block_pos: 0,
                    error: None,
                }));
            }
            Plan::Reconstruct {
                incremental,
                block_length,
                older,
            } => self.open_blocks(path, incremental, *block_length, older, stop)?,
        };
        Ok(Some(CombinedReader {
            output: Output::Blocks(Box::new(blocks)),
            block: vec![0; crate::hash::PAGE_SIZE],
            block_pos: crate::hash::PAGE_SIZE,
            error: None,
        }))
    }

    /// Opens and verifies the sources of one reconstructed file and maps
    /// every output block to its source.
    fn open_blocks(
        &self,
        output: &RelPath,
        incremental: &RelPath,
        block_length: u32,
        older: &[Older],
        stop: &dyn Fn() -> bool,
    ) -> Result<Blocks<'_>> {
        let leaf_index = self.chain.len() - 1;
        let mut map = vec![Slot::ZERO; block_length as usize];
        let mut sources: Vec<OpenSource<'_>> = Vec::with_capacity(older.len() + 1);
        let mut from_incremental = false;

        // The leaf's incremental file: every block it holds.
        let (mut latest, size) = self.open_incremental(leaf_index, incremental, stop)?;
        let mut max_block: Option<u32> = None;
        let header = read_header(&latest.file, &latest.name, size, |index, b| {
            max_block = max_block.max(Some(b));
            let slot = map
                .get_mut(b as usize)
                .ok_or_else(|| bad(&latest.name, "changed since the restore was planned"))?;
            *slot = Slot { source: 0, index };
            Ok(())
        })?;
        let length = header
            .truncation_block_length
            .max(max_block.map_or(0, |b| b.saturating_add(1)));
        if length != block_length {
            return Err(bad(&latest.name, "changed since the restore was planned"));
        }
        from_incremental |= header.num_blocks > 0;
        let truncation = header.truncation_block_length;
        latest.header_length = header.header_length();
        sources.push(latest);

        // The older versions, leaf's parent first, down to a full file.
        let mut stream = None;
        for older in older {
            let source_index = u32::try_from(sources.len()).unwrap_or(u32::MAX);
            if !older.full {
                let (mut opened, size) = self.open_incremental(older.member, incremental, stop)?;
                let header = read_header(&opened.file, &opened.name, size, |index, b| {
                    if b < truncation && map[b as usize].is_zero() {
                        map[b as usize] = Slot {
                            source: source_index,
                            index,
                        };
                        from_incremental = true;
                    }
                    Ok(())
                })?;
                opened.header_length = header.header_length();
                sources.push(opened);
                continue;
            }
            let member = &self.chain[older.member];
            let name = output.under(member.dir);
            let entry = listed(member, output, None)?;
            let (file, size) = open_sized(&name, entry)?;
            let blocks = size / BLCKSZ;
            // pg_combinebackup copies the file whole when nothing else is
            // needed and it has the right length: the same bytes, read in
            // order, so a file without page fingerprints is hashed as read.
            let whole = !from_incremental && size == u64::from(truncation) * BLCKSZ;
            let pages = match &entry.pages {
                Some(pages) if pages.0.len() as u64 == size.div_ceil(BLCKSZ) => Some(pages),
                Some(pages) => {
                    return Err(Error::Checksum {
                        path: name.display().to_string(),
                        expected: format!("{} page fingerprints", size.div_ceil(BLCKSZ)),
                        actual: format!("{} in the manifest", pages.0.len()),
                    });
                }
                None => None,
            };
            if pages.is_none() {
                if whole {
                    // Without a blake3 (a backup taken by Barman) there is
                    // nothing to verify.
                    stream = entry
                        .blake3
                        .map(|expected| (source_index, blake3::Hasher::new(), expected));
                } else {
                    verify_whole(&file, &name, entry, stop)?;
                }
            }
            for b in 0..truncation {
                if u64::from(b) < blocks && map[b as usize].is_zero() {
                    map[b as usize] = Slot {
                        source: source_index,
                        index: b,
                    };
                }
            }
            sources.push(OpenSource {
                file,
                name,
                header_length: 0,
                pages,
            });
        }
        Ok(Blocks {
            sources,
            map,
            next: 0,
            stream,
        })
    }

    /// Opens incremental file `path` of chain member `member`, verifying
    /// its whole-file blake3 against that backup's manifest; returns it
    /// (its header length still 0) and its size.
    fn open_incremental(
        &self,
        member: usize,
        path: &RelPath,
        stop: &dyn Fn() -> bool,
    ) -> Result<(OpenSource<'_>, u64)> {
        let backup = &self.chain[member];
        let name = path.under(backup.dir);
        let entry = listed(backup, path, None)?;
        let (file, size) = open_sized(&name, entry)?;
        verify_whole(&file, &name, entry, stop)?;
        let source = OpenSource {
            file,
            name,
            header_length: 0,
            pages: None,
        };
        Ok((source, size))
    }
}

/// Hashes `file` whole and compares with `entry`'s blake3.
fn verify_whole(
    file: &File,
    name: &Path,
    entry: &ManifestEntry,
    stop: &dyn Fn() -> bool,
) -> Result<()> {
    if entry.blake3.is_none() {
        // A backup taken by Barman: nothing to verify against.
        return Ok(());
    }
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0_u64;
    loop {
        if stop() {
            return Err(Error::Cancelled);
        }
        let n = match file.read_at(&mut buf, offset) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(name, e)),
        };
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    if offset != entry.size {
        return Err(Error::Checksum {
            path: name.display().to_string(),
            expected: format!("{} bytes", entry.size),
            actual: format!("{offset} bytes"),
        });
    }
    check_hash(name, entry, FileHash(*hasher.finalize().as_bytes()))
}

/// Where one output block comes from: block `index` of source `source`
/// (`source == u32::MAX`: a zero-filled block).
#[derive(Debug, Clone, Copy)]
struct Slot {
    source: u32,
    index: u32,
}

impl Slot {
    const ZERO: Self = Self {
        source: u32::MAX,
        index: 0,
    };

    fn is_zero(self) -> bool {
        self.source == u32::MAX
    }
}

/// A source file of a reconstruction.
#[derive(Debug)]
struct OpenSource<'a> {
    file: File,
    /// Its path, for errors.
    name: PathBuf,
    /// Offset of block index 0 (0 for a full file).
    header_length: u64,
    /// Page fingerprints to check each block read against (full files).
    pages: Option<&'a PageHashes>,
}

/// The state of a reconstruction being streamed.
#[derive(Debug)]
struct Blocks<'a> {
    sources: Vec<OpenSource<'a>>,
    map: Vec<Slot>,
    /// The next output block.
    next: usize,
    /// The source hashed as read (whole-file copy without page
    /// fingerprints): its index, the hasher, the expected hash.
    stream: Option<(u32, blake3::Hasher, FileHash)>,
}

/// What a [`CombinedReader`] yields.
#[derive(Debug)]
enum Output<'a> {
    Bytes(&'a [u8]),
    Blocks(Box<Blocks<'a>>),
}

/// Streams one output file of a [`Combined`] restore, block by block,
/// verifying each source block before handing it out. A read fails (and
/// [`take_error`](Self::take_error) tells why) when a source does not
/// match its manifest.
#[derive(Debug)]
pub struct CombinedReader<'a> {
    output: Output<'a>,
    block: Vec<u8>,
    block_pos: usize,
    error: Option<Error>,
}

impl CombinedReader<'_> {
    /// The error that made a read fail, if any.
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

/// The most output blocks one read gathers (1 MiB): runs of consecutive
/// blocks of one source are read with one `pread`, and the destination
/// gets large writes instead of one per 8 KiB block.
const MAX_RUN_BLOCKS: usize = 128;

impl Blocks<'_> {
    /// Fills `out` (a whole number of blocks, at most the blocks left)
    /// with the next output blocks, each verified before it is handed
    /// out; consecutive blocks of one source are read at once.
    fn fill(&mut self, out: &mut [u8]) -> Result<()> {
        let bs = crate::hash::PAGE_SIZE;
        let count = out.len() / bs;
        let mut i = 0;
        while i < count {
            let first = self.next + i;
            let slot = self.map[first];
            let mut run = 1;
            while i + run < count {
                let next = self.map[first + run];
                let follows = if slot.is_zero() {
                    next.is_zero()
                } else {
                    next.source == slot.source
                        && u64::from(next.index) == u64::from(slot.index) + run as u64
                };
                if !follows {
                    break;
                }
                run += 1;
            }
            let chunk = &mut out[i * bs..(i + run) * bs];
            if slot.is_zero() {
                chunk.fill(0);
            } else {
                self.read_run(slot, first, chunk)?;
            }
            i += run;
        }
        self.next += count;
        Ok(())
    }

    /// Reads the run of blocks of `slot`'s source starting at output block
    /// `first` into `chunk`, checking each page's fingerprint and feeding
    /// the whole-file hash of a source copied whole.
    fn read_run(&mut self, slot: Slot, first: usize, chunk: &mut [u8]) -> Result<()> {
        let bs = crate::hash::PAGE_SIZE;
        let source = &self.sources[slot.source as usize];
        let offset = source.header_length + u64::from(slot.index) * BLCKSZ;
        read_at(&source.file, &source.name, chunk, offset)?;
        for (k, block) in chunk.chunks(bs).enumerate() {
            let index = slot.index as usize + k;
            if let Some(pages) = source.pages {
                let actual = PageHash::of(block);
                let expected = pages.0.get(index).copied();
                if expected != Some(actual) {
                    return Err(Error::Checksum {
                        path: format!("{} (page {index})", source.name.display()),
                        expected: expected
                            .map_or_else(|| "no fingerprint".to_owned(), |p| hex::encode(p.0)),
                        actual: hex::encode(actual.0),
                    });
                }
            }
            if let Some((stream_source, hasher, expected)) = &mut self.stream
                && *stream_source == slot.source
            {
                hasher.update(block);
                if first + k + 1 == self.map.len() {
                    let actual = FileHash(*hasher.finalize().as_bytes());
                    if actual != *expected {
                        return Err(Error::Checksum {
                            path: source.name.display().to_string(),
                            expected: expected.to_hex(),
                            actual: actual.to_hex(),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

impl Read for CombinedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Err(io::Error::other("combined reconstruction failed"));
        }
        let blocks = match &mut self.output {
            Output::Bytes(bytes) => return bytes.read(buf),
            Output::Blocks(blocks) => blocks,
        };
        if self.block_pos == self.block.len() {
            let left = blocks.map.len() - blocks.next;
            if left == 0 {
                return Ok(0);
            }
            let bs = crate::hash::PAGE_SIZE;
            // Whole blocks straight into the caller's buffer when it has
            // room for them; else one block through our own.
            let direct = (buf.len() / bs).min(left).min(MAX_RUN_BLOCKS);
            let outcome = if direct > 0 {
                blocks.fill(&mut buf[..direct * bs]).map(|()| direct * bs)
            } else {
                blocks.fill(&mut self.block).map(|()| {
                    self.block_pos = 0;
                    0
                })
            };
            match outcome {
                Ok(0) => {}
                Ok(n) => return Ok(n),
                Err(e) => {
                    let message = e.to_string();
                    self.error = Some(e);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, message));
                }
            }
        }
        let n = buf.len().min(self.block.len() - self.block_pos);
        buf[..n].copy_from_slice(&self.block[self.block_pos..self.block_pos + n]);
        self.block_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
