//! Barman's configuration model: `barman.conf` and its included files
//! (Python `ConfigParser` INI with interpolation), typed global and server
//! options with Barman's defaults, strict errors, and the table of options
//! accepted but not implemented ([`NOT_IMPLEMENTED`]), refused rather than
//! ignored. No PostgreSQL access and no async runtime.
//!
//! [`Config::load`] reads a barman.conf and the `*.conf` files of its
//! `configuration_files_directory`; [`Config::parse_str`] parses a text (no
//! includes). Parsing follows Python's `ConfigParser` (non-strict) as Barman
//! uses it; see [`ServerConfig`] and [`GlobalConfig`] for the typed options.
//!
//! Unlike Barman, an invalid value is an error naming file, line, option and
//! the allowed values; all invalid values are reported together. Unknown
//! options and deprecated ones are warnings, kept in [`Config::warnings`].

#![deny(missing_docs)]

mod backup_compression;
mod ctx;
mod error;
mod global;
mod ini;
mod json;
mod keys;
mod log_format;
mod not_implemented;
mod resolve;
mod server;
mod url_dirs;
mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use backup_compression::{
    BackupCompressionSettings, SERVER_COMPRESSION_MIN_VERSION,
    file_extension as backup_compression_extension,
};
pub use global::{DEFAULT_BARMAN_HOME, DEFAULT_LOG_FORMAT, GlobalConfig};
pub use ini::Origin;
pub use log_format::{LogField, LogFormat, LogFormatError, LogRecord, MAX_LOG_FORMAT_WIDTH};
pub use not_implemented::{ACCEPTED_AND_IGNORED, NOT_IMPLEMENTED};
pub use server::{HOOK_SCRIPT_KEYS, ServerConfig};
pub use values::human_duration;
pub use values::{
    BackupCompression, BackupCompressionFormat, BackupCompressionLocation, BackupMethod,
    BackupOption, CombineMode, CreateSlot, Encryption, LogLevel, MAX_BANDWIDTH_LIMIT_KBPS,
    RecoveryOption, RetentionPolicyMode, ReuseBackup, StagingLocation, WalRetentionPolicy,
    parse_hex_magic,
};

pub use error::{Error, Result};
use ini::Ini;
use keys::{GLOBAL_KEYS, Scope, is_raw_key, server_key};
use resolve::{DEFAULT, GLOBAL, get};

/// Server names that cannot be used.
pub const RESERVED_SERVER_NAMES: [&str; 2] = ["barman", "all"];

/// Characters a shell interprets, refused in server names.
const SHELL_CHARACTERS: &str = "|&;<>()$`\\\"'*?[]{}#~!^";

/// Why `name` cannot be a server name, or `None` when it can. A server
/// name becomes a directory name (`<barman_home>/<name>`), part of lock
/// and WAL catalogue file names, and a word of the shell commands barman
/// writes (`restore_command`) or runs over ssh; so, unlike Barman (which
/// takes any section name), it may not be empty, `.` or `..`, start with
/// `-`, or contain `/`, whitespace, control characters or characters a
/// shell interprets (`|&;<>()$`\"'*?[]{}#~!^`). Letters, digits, `-`,
/// `_`, `.` and the other punctuation are fine.
pub fn server_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a server name cannot be empty".to_owned());
    }
    if name == "." || name == ".." {
        return Some(format!("`{name}` names a directory"));
    }
    if name.starts_with('-') {
        return Some("it starts with `-` (commands would read it as an option)".to_owned());
    }
    let bad = name.chars().find(|&c| {
        c == '/' || c.is_whitespace() || c.is_control() || SHELL_CHARACTERS.contains(c)
    })?;
    let what = match bad {
        '/' => "`/` (a path separator)".to_owned(),
        c if c.is_whitespace() || c.is_control() => {
            format!("{c:?} (whitespace or a control character)")
        }
        c => format!("`{c}` (a shell metacharacter)"),
    };
    Some(format!(
        "it contains {what}; a server name is used in directory names and shell commands: \
         use letters, digits, `-`, `_` and `.`"
    ))
}

/// A model: a section with `model = true`, whose options override a server
/// of the same `cluster` when the model is active.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ModelConfig {
    /// The section name.
    pub name: String,
    /// `cluster` (required).
    pub cluster: String,
    /// The options as written (interpolated, quotes stripped), `model` excluded.
    pub options: BTreeMap<String, String>,
    /// Where the section starts.
    pub origin: Origin,
}

/// A loaded configuration: global options, servers, models and warnings.
#[derive(Debug, Clone)]
pub struct Config {
    path: PathBuf,
    global: GlobalConfig,
    servers: BTreeMap<String, ServerConfig>,
    models: BTreeMap<String, ModelConfig>,
    warnings: Vec<String>,
}

impl Config {
    /// Reads `path`, then every `*.conf` of `configuration_files_directory` in
    /// sorted order. An included file with a non-empty `[barman]` section is an error.
    pub fn load(path: &Path) -> Result<Config> {
        let text = read(path)?;
        let mut ini = Ini::parse(&text, path)?;
        let mut warnings = Vec::new();
        include_directory(&mut ini, path, &mut warnings)?;
        Self::from_ini(&ini, path, warnings)
    }

    /// Parses `text` as if read from `origin_path` (used in messages). Does not
    /// read `configuration_files_directory`.
    pub fn parse_str(text: &str, origin_path: &Path) -> Result<Config> {
        let ini = Ini::parse(text, origin_path)?;
        Self::from_ini(&ini, origin_path, Vec::new())
    }

    /// The main configuration file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The global options.
    pub fn global(&self) -> &GlobalConfig {
        &self.global
    }

    /// The server called `name`.
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.get(name)
    }

    /// All servers, sorted by name.
    pub fn servers(&self) -> impl Iterator<Item = &ServerConfig> {
        self.servers.values()
    }

    /// All models, sorted by name.
    pub fn models(&self) -> impl Iterator<Item = &ModelConfig> {
        self.models.values()
    }

    /// The model called `name`.
    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.get(name)
    }

    /// Warnings (unknown or deprecated options, skipped includes), each with `file:line`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn from_ini(ini: &Ini, path: &Path, mut warnings: Vec<String>) -> Result<Config> {
        let mut errors = Vec::new();
        let global = GlobalConfig::from_ini(ini, &mut errors);
        let mut vars = BTreeMap::new();
        vars.insert(
            "barman_home".to_owned(),
            global.barman_home.to_string_lossy().into_owned(),
        );
        vars.insert(
            "barman_lock_directory".to_owned(),
            global.barman_lock_directory.to_string_lossy().into_owned(),
        );
        let mut servers = BTreeMap::new();
        let mut models = BTreeMap::new();
        for section in &ini.sections {
            if section.name == GLOBAL || section.name == DEFAULT {
                check_options(section, &mut warnings);
                continue;
            }
            let here = |message: String| Error::ConfigRule {
                file: section.origin.file.clone(),
                line: section.origin.line,
                section: section.name.clone(),
                message,
            };
            if RESERVED_SERVER_NAMES.contains(&section.name.as_str()) {
                errors.push(here(format!(
                    "`{}` is a reserved name and cannot be a server",
                    section.name
                )));
                continue;
            }
            check_options(section, &mut warnings);
            let is_model = section
                .entries
                .get("model")
                .is_some_and(|e| values::parse_bool(&e.value) == Ok(true));
            if !is_model && let Some(problem) = server_name_problem(&section.name) {
                errors.push(here(format!(
                    "invalid server name {:?}: {problem}",
                    section.name
                )));
                continue;
            }
            let mut section_vars = vars.clone();
            section_vars.insert("name".to_owned(), section.name.clone());
            if let Some(e) = section.entries.get("model") {
                match values::parse_bool(&e.value) {
                    Ok(true) => {
                        match model(ini, section, &section_vars) {
                            Ok(m) => {
                                models.insert(m.name.clone(), m);
                            }
                            Err(e) => errors.push(e),
                        }
                        continue;
                    }
                    Ok(false) => {}
                    Err(allowed) => {
                        errors.push(Error::ConfigValue {
                            file: e.origin.file.clone(),
                            line: e.origin.line,
                            section: section.name.clone(),
                            option: "model".to_owned(),
                            value: e.value.as_str().into(),
                            allowed: allowed.into(),
                        });
                        continue;
                    }
                }
            }
            let resolved = resolve::resolve_server(ini, section, vars.clone(), &mut errors);
            let mut ctx = ctx::Ctx {
                r: &resolved,
                file: path,
                name: &section.name,
                errors: &mut errors,
                warnings: &mut warnings,
            };
            let server = server::build(&mut ctx, &global.barman_home);
            servers.insert(server.name.clone(), server);
        }
        let mut seen = std::collections::BTreeSet::new();
        errors.retain(|e| seen.insert(e.to_string()));
        errors.sort_by(|a, b| error_location(a).cmp(&error_location(b)));
        match errors.len() {
            0 => Ok(Config {
                path: path.to_path_buf(),
                global,
                servers,
                models,
                warnings,
            }),
            1 => Err(errors.remove(0)),
            _ => Err(Error::ConfigErrors(errors)),
        }
    }
}

/// The file and line an error points at, for sorting.
fn error_location(e: &Error) -> (Option<&Path>, usize) {
    match e {
        Error::ConfigValue { file, line, .. }
        | Error::ConfigRule { file, line, .. }
        | Error::ConfigSyntax { file, line, .. } => (Some(file.as_path()), *line),
        _ => (None, 0),
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::ConfigNotFound {
                path: path.to_path_buf(),
            }
        } else {
            Error::io("cannot read configuration file", path, e)
        }
    })
}

/// Merges the `*.conf` files of `configuration_files_directory` into `ini`.
fn include_directory(ini: &mut Ini, path: &Path, warnings: &mut Vec<String>) -> Result<()> {
    let Some((dir, origin)) = get(
        ini,
        GLOBAL,
        "configuration_files_directory",
        &BTreeMap::new(),
    )?
    else {
        return Ok(());
    };
    if dir.is_empty() {
        return Ok(());
    }
    let at = format!("{}:{}", origin.file.display(), origin.line);
    let dir = PathBuf::from(dir);
    if !dir.is_dir() {
        warnings.push(format!(
            "{at}: configuration_files_directory `{}` is not a directory",
            dir.display()
        ));
        return Ok(());
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("cannot list", &dir, e))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", &dir, e))?;
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "conf") {
            files.push(p);
        }
    }
    files.sort();
    for file in files {
        if !file.is_file() {
            warnings.push(format!(
                "{at}: discarding configuration file `{}` (not a file)",
                file.display()
            ));
            continue;
        }
        let included = Ini::parse(&read(&file)?, &file)?;
        if let Some(g) = included.section(GLOBAL)
            && !g.entries.is_empty()
        {
            return Err(Error::ConfigRule {
                file: file.clone(),
                line: g.origin.line,
                section: GLOBAL.to_owned(),
                message: format!(
                    "included file `{}` contains a non-empty [barman] section (only allowed in {})",
                    file.display(),
                    path.display()
                ),
            });
        }
        ini.merge(included);
    }
    Ok(())
}

/// Warns about unknown options and options in the wrong section.
fn check_options(section: &ini::Section, warnings: &mut Vec<String>) {
    let is_global = section.name == GLOBAL;
    for (key, e) in &section.entries {
        let at = format!(
            "{}:{}: [{}] {key}",
            e.origin.file.display(),
            e.origin.line,
            section.name
        );
        if section.name == DEFAULT || is_raw_key(key) {
            continue;
        }
        let msg = match (
            is_global,
            server_key(key),
            GLOBAL_KEYS.contains(&key.as_str()),
        ) {
            (true, _, true) | (false, Some(_), _) => continue,
            (true, Some(k), _) if k.scope == Scope::Global => continue,
            (true, Some(_), _) => "server-only option, ignored in [barman]",
            (false, None, true) => {
                "global option, ignored in a server section (set it in [barman])"
            }
            (false, None, false) if key == "model" => continue,
            (false, None, false) if key == "disabled" => "set by Barman itself, ignored",
            _ => "unknown option, ignored",
        };
        warnings.push(format!("{at}: {msg}"));
    }
}

fn model(
    ini: &Ini,
    section: &ini::Section,
    vars: &BTreeMap<String, String>,
) -> Result<ModelConfig> {
    let mut options = BTreeMap::new();
    for key in section.entries.keys().filter(|k| *k != "model") {
        if let Some((value, _)) = get(ini, &section.name, key, vars)? {
            options.insert(key.clone(), value);
        }
    }
    let Some(cluster) = options.get("cluster").filter(|c| !c.is_empty()).cloned() else {
        return Err(Error::ConfigRule {
            file: section.origin.file.clone(),
            line: section.origin.line,
            section: section.name.clone(),
            message: "a model (model = true) requires `cluster`".to_owned(),
        });
    };
    Ok(ModelConfig {
        name: section.name.clone(),
        cluster,
        options,
        origin: section.origin.clone(),
    })
}

/// Compiles and runs the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
