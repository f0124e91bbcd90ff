//! Logging through `tracing`, in Barman's log format:
//! `2026-11-22 04:15:10,123 [4242] barman.cli INFO: message`.

use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Mutex;

use std::io::Write as _;

use anyhow::Result;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Barman's log line layout.
struct BarmanFormat;

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
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG | Level::TRACE => "DEBUG",
        };
        let target = meta.target().replace('_', "-").replace("::", ".");
        write!(
            writer,
            "{},{:03} [{}] {} {}: ",
            now.strftime("%Y-%m-%d %H:%M:%S"),
            now.subsec_nanosecond() / 1_000_000,
            std::process::id(),
            target,
            level
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
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
/// mode 0600), else stderr.
pub fn init(log_file: Option<&Path>, level: Level) -> Result<()> {
    install(log_file, level, true)
}

/// [`init`] for `check --nagios`, where nothing but the Nagios status may
/// reach the terminal: to `log_file` only, never to stderr (no log file,
/// or one that cannot be opened, means no logging).
pub fn init_without_stderr(log_file: Option<&Path>, level: Level) -> Result<()> {
    install(log_file, level, false)
}

fn install(log_file: Option<&Path>, level: Level, stderr: bool) -> Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .event_format(BarmanFormat);
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
            .event_format(BarmanFormat)
            .with_writer(std::io::stderr)
            .try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
