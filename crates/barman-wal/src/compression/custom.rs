//! Barman's custom compression: external shell filters
//! (`custom_compression_filter`, `custom_decompression_filter`,
//! `custom_compression_magic`; deprecated in Barman 3.17 but still read).
//!
//! Barman runs `FILTER > "$2" < "$1"`; we run the command with its standard
//! input and output piped and stream through it, so the file is never held
//! in memory. Spawning is behind [`FilterSpawner`] so callers can change the
//! environment (`path_prefix`) or tests can fake it.

use std::fmt;
use std::io::{self, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};

use super::{Decoder, Encoder};
use crate::error::{Error, Result};

mod process;

pub(super) use process::{FilterReader, FilterWriter};

/// The custom filter commands of a server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomFilter {
    /// Shell command compressing its standard input to its standard output
    /// (`custom_compression_filter`).
    pub compress: String,
    /// Shell command decompressing its standard input to its standard output
    /// (`custom_decompression_filter`).
    pub decompress: String,
    /// The magic bytes starting a compressed file
    /// (`custom_compression_magic`), used by
    /// [`detect_custom`](super::detect_custom); `None` when not configured.
    pub magic: Option<Vec<u8>>,
}

impl CustomFilter {
    /// A filter pair without magic bytes.
    pub fn new(compress: impl Into<String>, decompress: impl Into<String>) -> Self {
        Self {
            compress: compress.into(),
            decompress: decompress.into(),
            magic: None,
        }
    }

    /// Sets the magic bytes (see [`parse_magic`](Self::parse_magic)).
    #[must_use]
    pub fn with_magic(mut self, magic: Vec<u8>) -> Self {
        self.magic = Some(magic);
        self
    }

    /// Parses `custom_compression_magic`: hexadecimal bytes, with or without
    /// a `0x` prefix, an even number of digits, at least one byte.
    ///
    /// ```
    /// use barman_wal::CustomFilter;
    /// assert_eq!(CustomFilter::parse_magic("0x28b52ffd")?, vec![0x28, 0xb5, 0x2f, 0xfd]);
    /// assert!(CustomFilter::parse_magic("0x1f8").is_err());
    /// # Ok::<(), barman_wal::Error>(())
    /// ```
    pub fn parse_magic(value: &str) -> Result<Vec<u8>> {
        let invalid = || Error::InvalidCustomMagic {
            value: value.to_owned(),
        };
        let t = value.trim();
        let hex = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        if hex.is_empty()
            || !hex.len().is_multiple_of(2)
            || !hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(invalid());
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| invalid()))
            .collect()
    }

    /// Whether `prefix` starts with the configured magic (false without one).
    pub fn matches(&self, prefix: &[u8]) -> bool {
        self.magic
            .as_deref()
            .is_some_and(|m| !m.is_empty() && prefix.starts_with(m))
    }

    /// Starts [`compress`](Self::compress) with `spawner`; bytes written to
    /// the returned [`Encoder`] go to the command's standard input and its
    /// standard output is copied into `inner` by a helper thread.
    /// [`Encoder::finish`] waits for the command and fails with
    /// [`Error::FilterFailed`] (inside the [`io::Error`]) on a non-zero exit.
    pub fn writer<W>(&self, spawner: &dyn FilterSpawner, inner: W) -> Result<Encoder<W>>
    where
        W: Write + Send + 'static,
    {
        Ok(Encoder::custom(FilterWriter::start(
            &self.compress,
            spawner,
            inner,
        )?))
    }

    /// Starts [`decompress`](Self::decompress) with `spawner`; a helper
    /// thread feeds `inner` to the command's standard input, reads return its
    /// standard output. The command's exit status is checked when its output
    /// ends.
    pub fn reader<R>(&self, spawner: &dyn FilterSpawner, inner: R) -> Result<Decoder<R>>
    where
        R: Read + Send + 'static,
    {
        Ok(Decoder::custom(FilterReader::start(
            &self.decompress,
            spawner,
            inner,
        )?))
    }
}

/// Starts a filter command. Implement it to run filters differently (another
/// shell, extra environment such as Barman's `path_prefix`) or to fake them
/// in tests; [`ShellSpawner`] is the real thing.
pub trait FilterSpawner: fmt::Debug + Send + Sync {
    /// Starts `command` with piped standard input, output and error.
    fn spawn(&self, command: &str) -> io::Result<FilterProcess>;
}

/// A running filter: its three pipes and a handle to wait for it.
pub struct FilterProcess {
    /// The command's standard input (closed by dropping it).
    pub stdin: Box<dyn Write + Send>,
    /// The command's standard output.
    pub stdout: Box<dyn Read + Send>,
    /// The command's standard error, if captured (its start is quoted in
    /// [`Error::FilterFailed`]).
    pub stderr: Option<Box<dyn Read + Send>>,
    /// Waits for or stops the command.
    pub child: Box<dyn FilterChild>,
}

impl fmt::Debug for FilterProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterProcess").finish_non_exhaustive()
    }
}

/// The process side of a [`FilterProcess`].
pub trait FilterChild: Send {
    /// Waits for the command to exit.
    fn wait(&mut self) -> io::Result<ExitStatus>;
    /// Stops the command (used when a stream is abandoned).
    fn kill(&mut self) -> io::Result<()>;
}

impl FilterChild for Child {
    fn wait(&mut self) -> io::Result<ExitStatus> {
        Child::wait(self)
    }

    fn kill(&mut self) -> io::Result<()> {
        Child::kill(self)
    }
}

/// Runs filters as `sh -c COMMAND` (Barman runs them through the shell too).
#[derive(Debug, Clone, Default)]
pub struct ShellSpawner {
    envs: Vec<(String, String)>,
}

impl ShellSpawner {
    /// A spawner that runs `sh -c` with the current environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an environment variable for the commands (e.g. a `PATH` with
    /// Barman's `path_prefix` prepended).
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }
}

impl FilterSpawner for ShellSpawner {
    fn spawn(&self, command: &str) -> io::Result<FilterProcess> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let missing = || io::Error::other("child pipe missing after spawn");
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let stderr = child.stderr.take().ok_or_else(missing)?;
        Ok(FilterProcess {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: Some(Box::new(stderr)),
            child: Box::new(child),
        })
    }
}
