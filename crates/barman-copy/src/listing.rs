//! Listing a tree with PostgreSQL's base-backup exclusions.

use std::path::Path;

use crate::Result;
use crate::entry::Entry;
use crate::exclusion::Exclusions;

/// Lists the tree rooted at `root` (named `tree`: entry paths are
/// `tree/...`, the root itself is the entry `tree`) without following
/// symbolic links, applying `exclusions` to paths relative to `root`.
/// Directories whose contents are excluded are kept (empty). Entries that
/// vanish while listing are skipped. Sorted by path.
pub fn list_tree(_root: &Path, _tree: &str, _exclusions: &Exclusions) -> Result<Vec<Entry>> {
    todo!("helper")
}
