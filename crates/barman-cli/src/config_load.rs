//! Finding and loading the configuration file, as Barman does: `-c FILE`, else the
//! first existing of `~/.barman.conf`, `/etc/barman.conf`, `/etc/barman/barman.conf`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use barman_core::config::Config;

/// The candidate locations, in Barman's order.
pub fn default_locations(home: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(h) = home {
        v.push(h.join(".barman.conf"));
    }
    v.push(PathBuf::from("/etc/barman.conf"));
    v.push(PathBuf::from("/etc/barman/barman.conf"));
    v
}

/// Resolves which configuration file to read.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!(
                "configuration file `{}` does not exist or is not a file",
                p.display()
            );
        }
        return Ok(p.to_path_buf());
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let candidates = default_locations(home.as_deref());
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            format!(
                "no configuration file found (looked for {}; use -c FILE)",
                list.join(", ")
            )
        })
}

/// Locates and loads the configuration.
pub fn load(explicit: Option<&Path>) -> Result<Config> {
    let path = locate(explicit)?;
    Ok(Config::load(&path)?)
}
