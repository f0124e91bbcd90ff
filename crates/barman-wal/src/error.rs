//! The crate's error type.

/// Errors returned by `barman-wal`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A compression algorithm name that Barman does not know.
    #[error("unknown compression algorithm `{name}` (allowed: {allowed})")]
    UnknownCompression {
        /// The name given.
        name: String,
        /// The allowed names, comma separated.
        allowed: &'static str,
    },
    /// A compression level that is neither low/medium/high nor an integer.
    #[error("invalid compression level `{value}` (allowed: low, medium, high or an integer)")]
    InvalidCompressionLevel {
        /// The value given.
        value: String,
    },
    /// `custom_compression_magic` is not a `0x…` hexadecimal byte string.
    #[error("invalid custom compression magic `{value}` (expected hex bytes such as 0x1f8b)")]
    InvalidCustomMagic {
        /// The value given.
        value: String,
    },
    /// [`Compression::Custom`](crate::Compression::Custom) was asked for a
    /// stream without its filter commands.
    #[error(
        "custom compression needs custom_compression_filter and custom_decompression_filter \
         (use CustomFilter / Codec::Custom)"
    )]
    CustomFilterRequired,
    /// A compression library could not set up its stream.
    #[error("cannot initialise {compression} stream")]
    CodecInit {
        /// The algorithm.
        compression: crate::Compression,
        /// The library's error.
        #[source]
        source: std::io::Error,
    },
    /// A custom filter command could not be started.
    #[error("cannot start compression filter `{command}`")]
    FilterSpawn {
        /// The shell command.
        command: String,
        /// Why spawning failed.
        #[source]
        source: std::io::Error,
    },
    /// A custom filter command exited unsuccessfully.
    #[error(
        "compression filter `{command}` failed ({status}){}",
        stderr_suffix(stderr)
    )]
    FilterFailed {
        /// The shell command.
        command: String,
        /// The exit status, as printed by the OS (`exit status: 1`, `signal: 9`).
        status: String,
        /// The start of the command's standard error (bounded), trimmed.
        stderr: String,
    },
    // --- WAL naming (lsn, timeline, segment, file_name, history, header) ---
    /// A string that is not an LSN in PostgreSQL's `X/Y` text form.
    #[error("invalid LSN `{input}` (expected X/Y, each 1 to 8 hexadecimal digits)")]
    InvalidLsn {
        /// The text given.
        input: String,
    },
    /// A timeline ID that is not a positive 32-bit number.
    #[error("invalid timeline `{input}`: {reason}")]
    InvalidTimeline {
        /// The text (or number) given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A WAL segment size PostgreSQL does not allow.
    #[error("invalid WAL segment size {bytes} bytes (must be a power of two from 1 MiB to 1 GiB)")]
    InvalidSegmentSize {
        /// The size given, in bytes.
        bytes: u64,
    },
    /// A string that is not a 24-hex-digit WAL segment name.
    #[error("invalid WAL segment name `{input}`: {reason}")]
    InvalidSegmentName {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file name that is not one of the WAL file names Barman archives.
    #[error("invalid WAL file name `{input}`: {reason}")]
    InvalidWalFileName {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A malformed line in a timeline history (`.history`) file.
    #[error("invalid timeline history, line {line}: {reason} (`{text}`)")]
    InvalidHistory {
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Fewer bytes than a long WAL page header needs.
    #[error("WAL page header too short: {found} bytes, expected at least {expected}")]
    HeaderTooShort {
        /// Bytes needed.
        expected: usize,
        /// Bytes available.
        found: usize,
    },
    /// The WAL page header could not be read.
    #[error("cannot read WAL page header")]
    HeaderRead {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A WAL long page header field that is invalid or not what was expected.
    #[error("invalid WAL page header: {field} is {found}, expected {expected}")]
    InvalidHeader {
        /// The header field (`xlp_magic`, `xlp_sysid`, …).
        field: &'static str,
        /// What was expected.
        expected: String,
        /// What the header holds.
        found: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
