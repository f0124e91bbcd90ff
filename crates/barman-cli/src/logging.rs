//! Logging through `tracing`, each line laid out by the configured
//! `log_format` (Barman's default:
//! `2026-11-22 04:15:10,123 [4242] barman.cli INFO: message`).

use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use std::io::Write as _;

use anyhow::Result;
use barman_core::config::{LogFormat, LogLevel, LogRecord};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Lays out each event by the parsed `log_format`.
struct BarmanFormat {
    format: LogFormat,
    /// When logging started (`relativeCreated`).
    start: Instant,
}

impl<S, N> FormatEvent<S, N> for BarmanFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = jiff::Zoned::now();
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warning,
            Level::INFO => LogLevel::Info,
            Level::DEBUG | Level::TRACE => LogLevel::Debug,
        };
        let name = meta.target().replace('_', "-").replace("::", ".");
        // The message and the event's other fields, as tracing writes them
        // (no ANSI styling: this is a log file).
        let mut message = String::new();
        ctx.field_format()
            .format_fields(Writer::new(&mut message), event)?;
        let current = std::thread::current();
        let thread = thread_id();
        let thread_name = python_thread_name(current.name(), thread);
        let record = LogRecord {
            time: &now,
            relative_created_ms: self.start.elapsed().as_secs_f64() * 1000.0,
            name: &name,
            level,
            message: &message,
            pathname: meta.file(),
            lineno: meta.line(),
            process: std::process::id(),
            thread,
            thread_name: &thread_name,
        };
        let mut line = String::new();
        self.format.render(&record, &mut line);
        writeln!(writer, "{line}")
    }
}

/// `%(thread)d`: the kernel id of the calling thread (the process id for
/// the main thread).
fn thread_id() -> u64 {
    u64::from(
        rustix::thread::gettid()
            .as_raw_nonzero()
            .get()
            .unsigned_abs(),
    )
}

/// `%(threadName)s`: Python's `MainThread` for the main thread, a named
/// thread's name, else `Thread-<id>`.
fn python_thread_name(rust_name: Option<&str>, id: u64) -> String {
    match rust_name {
        Some("main") => "MainThread".to_owned(),
        Some(name) => name.to_owned(),
        None => format!("Thread-{id}"),
    }
}

/// Maps Barman's level names to tracing levels (unknown names mean INFO).
pub fn parse_level(name: &str) -> Level {
    match name.trim().to_ascii_uppercase().as_str() {
        "DEBUG" => Level::DEBUG,
        "WARNING" | "WARN" => Level::WARN,
        "ERROR" | "CRITICAL" => Level::ERROR,
        _ => Level::INFO,
    }
}

/// Installs the subscriber: to `log_file` when set (appending; created with
/// mode 0600), else stderr; each line laid out by `format`.
pub fn init(log_file: Option<&Path>, level: Level, format: &LogFormat) -> Result<()> {
    install(log_file, level, format, true)
}

/// [`init`] for `check --nagios`, where nothing but the Nagios status may
/// reach the terminal: to `log_file` only, never to stderr (no log file,
/// or one that cannot be opened, means no logging).
pub fn init_without_stderr(
    log_file: Option<&Path>,
    level: Level,
    format: &LogFormat,
) -> Result<()> {
    install(log_file, level, format, false)
}

fn install(log_file: Option<&Path>, level: Level, format: &LogFormat, stderr: bool) -> Result<()> {
    let event_format = || BarmanFormat {
        format: format.clone(),
        start: Instant::now(),
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .event_format(event_format());
    let file = match log_file {
        // Created 0600 like the catalog files (whatever the umask): a log
        // line may name hosts, paths and users.
        Some(path) => match OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
        {
            Ok(f) => Some(f),
            Err(_) if !stderr => None,
            Err(e) => {
                // As Barman: a log file we may not open (put-wal run over ssh
                // by another user, say) must not stop the command.
                let _ = writeln!(
                    std::io::stderr(),
                    "WARNING: cannot open log file `{}` ({e}); logging to standard error",
                    path.display()
                );
                None
            }
        },
        None => None,
    };
    match file {
        Some(file) => builder.with_writer(Mutex::new(file)).try_init(),
        None if !stderr => return Ok(()),
        // On stderr only warnings and errors, unless debugging was asked for.
        None => tracing_subscriber::fmt()
            .with_max_level(if level >= Level::DEBUG {
                level
            } else {
                level.min(Level::WARN)
            })
            .with_ansi(false)
            .event_format(event_format())
            .with_writer(std::io::stderr)
            .try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_names_are_pythons() {
        assert_eq!(python_thread_name(Some("main"), 7), "MainThread");
        assert_eq!(python_thread_name(Some("copy-1"), 7), "copy-1");
        assert_eq!(python_thread_name(None, 7), "Thread-7");
    }

    #[test]
    fn each_thread_has_its_id() {
        // (The main thread's id is the process id: tests/cli/log_format.rs.)
        let here = thread_id();
        assert_ne!(here, 0);
        let other = std::thread::spawn(thread_id).join().unwrap();
        assert_ne!(here, other);
    }
}
