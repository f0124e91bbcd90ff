//! The chain of an incremental backup (PostgreSQL 17+): its members found
//! in the catalog (parents walked from the leaf), and the staging of the
//! tar-format (compressed) members, whose files the combination needs to
//! read by block: only those are unpacked, into
//! `<staging>/barman-decompress<pid>/<id>/` (Barman's name), and removed
//! when the recovery ends. Plain members are read where they are.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use barman_catalog::{BackupId, BackupInfo, Catalog, Tablespace};
use barman_copy::{LocalDestination, Manifest, Progress};
use barman_wal::Compression;

use super::{Warning, backup_manifest, listing_manifest, refuse, untar};
use crate::{Error, Result};

/// One backup of a chain.
#[derive(Debug, Clone)]
pub(super) struct Member {
    /// Its id.
    pub id: BackupId,
    /// Its directory in the catalog.
    pub dir: PathBuf,
    /// Its manifest (for a tar-format member: of the stored archives).
    pub manifest: Manifest,
    /// A tar-format member: its stream algorithm and archive suffix.
    pub compressed: Option<(Option<Compression>, &'static str)>,
    /// Its tablespaces (the trees of its directory).
    pub tablespaces: Vec<Tablespace>,
}

/// The chain of incremental backup `leaf`, root first. A parent missing
/// from the catalog or whose directory is gone (a chain broken by hand),
/// a loop of parents, or an unknown compression are refused, naming the
/// backup.
pub(super) fn backup_chain(
    catalog: &Catalog,
    leaf: &BackupInfo,
    tablespaces: &[Tablespace],
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Member>> {
    let broken = |id: &BackupId, reason: String| {
        refuse(format!(
            "backup {} of server `{}` cannot be restored: its backup chain is broken: {reason} (backup {id})",
            leaf.backup_id(),
            catalog.server_name()
        ))
    };
    let mut chain = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut current = leaf.clone();
    loop {
        let id = current.backup_id().clone();
        if !seen.insert(id.clone()) {
            return Err(broken(&id, "the parents loop".to_owned()));
        }
        let dir = catalog.layout().backup_dir(&id);
        if !dir.is_dir() {
            return Err(broken(
                &id,
                format!("the directory {} is missing", dir.display()),
            ));
        }
        let compressed = current
            .compression()
            .map(|c| {
                untar::codec_of(c).ok_or_else(|| broken(&id, format!("unknown compression `{c}`")))
            })
            .transpose()?;
        let member_tablespaces = current
            .tablespaces()?
            .unwrap_or_else(|| tablespaces.to_vec());
        // Not checked as a plain backup: members hold INCREMENTAL files,
        // combined later.
        let manifest = backup_manifest(catalog, &id, &dir, &member_tablespaces, false, warnings)?;
        chain.push(Member {
            id: id.clone(),
            dir,
            manifest,
            compressed,
            tablespaces: member_tablespaces,
        });
        let Some(parent) = current.parent_backup_id()? else {
            break;
        };
        current = catalog.backup(&parent).map_err(|_| {
            broken(
                &parent,
                format!("parent backup {parent} of {id} is not in the catalog"),
            )
        })?;
    }
    chain.reverse();
    Ok(chain)
}

/// The chain as [`barman_copy::combine`] takes it.
pub(super) fn members(chain: &[Member]) -> Vec<barman_copy::combine::ChainMember<'_>> {
    chain
        .iter()
        .map(|m| barman_copy::combine::ChainMember {
            dir: &m.dir,
            manifest: &m.manifest,
        })
        .collect()
}

/// A chain ready to combine: plain members where they are, tar-format
/// members unpacked into a staging directory (removed on drop).
#[derive(Debug)]
pub(super) struct Staged {
    chain: Vec<(PathBuf, Manifest)>,
    staging: Option<PathBuf>,
}

impl Staged {
    /// The members as [`barman_copy::combine`] takes them.
    pub fn members(&self) -> Vec<barman_copy::combine::ChainMember<'_>> {
        self.chain
            .iter()
            .map(|(dir, manifest)| barman_copy::combine::ChainMember { dir, manifest })
            .collect()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(dir) = &self.staging
            && let Err(e) = std::fs::remove_dir_all(dir)
        {
            tracing::warn!("cannot remove the staging directory {}: {e}", dir.display());
        }
    }
}

/// Unpacks the tar-format members of `chain` under `root` (each archive's
/// blake3 checked when our manifest has it); the unpacked files are
/// listed as the member's manifest (no checksums of their own: their
/// archive's was checked).
pub(super) fn stage(
    chain: &[Member],
    root: &Path,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Staged> {
    let mut staged = Staged {
        chain: Vec::new(),
        staging: None,
    };
    for member in chain {
        let Some((compression, extension)) = member.compressed else {
            staged
                .chain
                .push((member.dir.clone(), member.manifest.clone()));
            continue;
        };
        let base = if let Some(dir) = &staged.staging {
            dir.clone()
        } else {
            if !root.is_absolute() {
                return Err(refuse(format!(
                    "the staging path `{}` must be an absolute path",
                    root.display()
                )));
            }
            let dir = root.join(format!("barman-decompress{}", std::process::id()));
            barman_catalog::fs::create_dir_secure(&dir)?;
            staged.staging = Some(dir.clone());
            dir
        };
        let dir = base.join(member.id.as_str());
        let mut roots = barman_copy::Roots::new();
        roots.insert("data".to_owned(), dir.join("data"));
        let oids: Vec<u32> = member.tablespaces.iter().map(|t| t.oid).collect();
        for oid in &oids {
            roots.insert(oid.to_string(), dir.join(oid.to_string()));
        }
        for root in roots.values() {
            std::fs::create_dir_all(root).map_err(|e| Error::io("cannot create", root, e))?;
        }
        let archives = untar::archives(&member.manifest, &member.dir, extension, &oids)?;
        let mut session: Box<dyn barman_copy::Destination> = Box::new(LocalDestination::new(roots));
        untar::unpack(
            session.as_mut(),
            &member.dir,
            compression,
            &archives,
            progress,
            cancel,
        )?;
        let manifest = listing_manifest(&dir, &member.tablespaces)?;
        staged.chain.push((dir, manifest));
    }
    Ok(staged)
}
