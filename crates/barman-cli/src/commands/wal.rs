//! WAL commands: `put-wal`, `archive-wal`, `get-wal`, `switch-wal`,
//! `rebuild-xlogdb`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use barman_core::Error;
use barman_core::archive::{self, ErrorKind, Outcome, Received, Source};
use barman_core::clock::SystemClock;
use barman_core::config::{Config, ServerConfig};
use barman_core::hooks::HookSetup;
use barman_core::postgres::PgConnection;
use barman_core::server::{self as srv, ArchiveWait};
use barman_wal::{Compression, CompressionLevel, WalFileName};
use serde_json::json;

use super::select_servers;
use crate::exit::Exit;
use crate::output::Output;

fn server<'c>(config: &'c Config, name: &str, out: &mut Output) -> Option<&'c ServerConfig> {
    let s = config.server(name);
    if s.is_none() {
        out.error(&format!("Unknown server '{name}'"));
    }
    s
}

/// Where an SSH client came from (logged by put-wal and get-wal, as Barman does).
fn ssh_client() -> String {
    std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|c| c.split_whitespace().next().map(str::to_owned))
        .map_or_else(String::new, |ip| format!(" from {ip}"))
}

/// `barman put-wal SERVER [WAL_PATH]`.
pub fn put_wal(
    config: &Config,
    name: &str,
    test: bool,
    wal_path: Option<&Path>,
    out: &mut Output,
) -> Result<()> {
    let Some(server) = server(config, name, out) else {
        return Ok(());
    };
    if server.is_passive() {
        out.error(
            &Error::PassiveServer {
                server: name.into(),
                action: "put-wal",
            }
            .to_string(),
        );
        return Ok(());
    }
    if test {
        out.line(&format!("Ready to accept WAL files for the server {name}"))?;
        return Ok(());
    }
    let options = srv::put_wal_options(server)?;
    let layout = server.layout();
    let received = if let Some(path) = wal_path {
        vec![archive::put_wal_file(
            path,
            &layout,
            &options,
            &SystemClock,
        )?]
    } else {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            anyhow::bail!(
                "put-wal reads a tar stream from standard input (sent by barman-wal-archive); \
                 to archive a local file use `barman put-wal {name} WAL_PATH`"
            );
        }
        archive::put_wal_stream(stdin.lock(), &layout, &options, &SystemClock)?
    };
    for r in &received {
        tracing::info!(
            "Received WAL file {} ({} bytes) for server {name}{}",
            r.name,
            r.size,
            ssh_client()
        );
        if let Received::ReplacedDuplicate(moved) = &r.outcome {
            out.warning(&format!(
                "a different {} was waiting in incoming/ and was moved to {}",
                r.name,
                moved.display()
            ));
        }
    }
    Ok(())
}

/// Runs archive-wal for one server, printing as Barman does. `Ok(false)`
/// when another archive-wal holds the lock.
fn archive_one(
    config: &Config,
    server: &ServerConfig,
    hook_setup: &HookSetup,
    out: &mut Output,
) -> Result<bool> {
    let name = &server.name;
    if server.is_passive() {
        out.error(
            &Error::PassiveServer {
                server: name.clone(),
                action: "archive-wal",
            }
            .to_string(),
        );
        return Ok(true);
    }
    let (options, identified) = srv::archive_setup(config.global(), server)?;
    if !identified {
        out.warning(&format!(
            "server {name}: no identity.json and PostgreSQL not reachable: \
             the system identifier of WAL files is not checked"
        ));
    }
    let hooks = hook_setup.server(server)?;
    let report = match archive::archive_wal(
        &server.layout(),
        &options,
        &SystemClock,
        &mut hooks.archive_observer(),
    ) {
        Ok(r) => r,
        Err(e) if e.is_lock_busy() => {
            out.line(&format!(
                "Another archive-wal process is already running on server {name}. Skipping to the next server"
            ))?;
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    };
    let mut json_files = Vec::new();
    for source in [Source::Incoming, Source::Streaming] {
        let enabled = match source {
            Source::Incoming => server.archiver,
            Source::Streaming => server.streaming_archiver,
        };
        if !enabled {
            continue;
        }
        let files: Vec<_> = report
            .processed
            .iter()
            .filter(|p| p.source == source)
            .collect();
        if files.is_empty() {
            out.line(&format!(
                "No xlog segments found from {} for {name}.",
                source.label()
            ))?;
            continue;
        }
        out.line(&format!(
            "Processing xlog segments from {} for {name}",
            source.label()
        ))?;
        for p in files {
            match &p.outcome {
                Outcome::Archived(_) | Outcome::AlreadyArchived { .. } => {
                    out.line(&format!("\t{}", p.name))?;
                }
                Outcome::Rejected {
                    kind,
                    reason,
                    moved_to,
                } => {
                    let what = match kind {
                        ErrorKind::Duplicate => "Duplicate WAL file with different content",
                        ErrorKind::Unknown => "Invalid or unknown file",
                    };
                    out.error(&format!(
                        "{what} `{}` from {} of server {name}: {reason}; moved to {}",
                        p.name,
                        source.label(),
                        moved_to.display()
                    ));
                }
            }
            json_files.push(json!({
                "name": p.name,
                "source": match p.source { Source::Incoming => "incoming", Source::Streaming => "streaming" },
                "outcome": match &p.outcome {
                    Outcome::Archived(_) => "archived",
                    Outcome::AlreadyArchived { .. } => "already_archived",
                    Outcome::Rejected { kind, .. } => kind.suffix(),
                },
            }));
        }
    }
    if let Some(stopped) = &report.stopped {
        let dir = match stopped.source {
            Source::Incoming => "incoming",
            Source::Streaming => "streaming",
        };
        let text = format!(
            "archiving of {} for server {name} stopped: {}; it stays in {dir}/",
            stopped.name, stopped.reason
        );
        // Barman exits 0 when a hook asks to stop; an interrupted run fails.
        if stopped.interrupted {
            out.error(&text);
        } else {
            out.warning(&text);
        }
    }
    out.json_result(
        name,
        json!({
            "processed": json_files,
            "stopped": report.stopped.as_ref().map(|s| json!({"name": s.name, "reason": s.reason})),
        }),
    );
    Ok(true)
}

/// `barman archive-wal SERVER...`.
pub fn archive_wal(config: &Config, names: &[String], out: &mut Output) -> Result<()> {
    let servers = select_servers(config, names, out);
    let hook_setup = super::interruptible_hooks(config, &servers)?;
    for server in servers {
        if !server.active || server.disabled {
            out.line(&format!("Skipping inactive server {}", server.name))?;
            continue;
        }
        if let Err(e) = archive_one(config, server, &hook_setup, out) {
            out.error(&format!("archive-wal {}: {e:#}", server.name));
        }
    }
    Ok(())
}

/// Arguments of get-wal.
#[derive(Debug)]
pub struct GetWalArgs<'a> {
    /// The server.
    pub server: &'a str,
    /// The WAL name.
    pub wal_name: &'a str,
    /// `-o DIR`.
    pub output_directory: Option<&'a Path>,
    /// `-P`.
    pub partial: bool,
    /// `-p N`.
    pub peek: Option<usize>,
    /// `-t`.
    pub test: bool,
    /// `--keep-compression`.
    pub keep_compression: bool,
    /// Deprecated `-z`/`-j`/`-x`: compress the output.
    pub recompress: Option<Compression>,
}

/// The deprecated output compression flags of get-wal.
pub fn recompression(gzip: bool, bzip2: bool, xz: bool) -> Option<Compression> {
    if gzip {
        Some(Compression::Gzip)
    } else if bzip2 {
        Some(Compression::Bzip2)
    } else if xz {
        Some(Compression::Xz)
    } else {
        None
    }
}

/// `barman get-wal SERVER WAL_NAME`.
pub fn get_wal(config: &Config, args: &GetWalArgs<'_>, out: &mut Output) -> Result<()> {
    let Some(server) = server(config, args.server, out) else {
        return Ok(());
    };
    if args.test {
        out.line(&format!(
            "Ready to retrieve WAL files from the server {}",
            args.server
        ))?;
        return Ok(());
    }
    let Ok(name) = args.wal_name.parse::<WalFileName>() else {
        out.error_with(
            &format!("'{}' is not a valid WAL file name", args.wal_name),
            Exit::BadInput,
        );
        return Ok(());
    };
    let codec = srv::wal_codec(server)?;
    let layout = server.layout();
    if let Some(n) = args.peek {
        let names = archive::peek(&layout, &name, n.max(1), codec.as_ref())?;
        if out.format() == crate::args::Format::Json {
            out.json_result("wals", json!(names));
        } else {
            let mut stdout = std::io::stdout().lock();
            for n in &names {
                writeln!(stdout, "{n}")?;
            }
        }
        return Ok(());
    }
    if let Some(dir) = args.output_directory
        && !dir.is_dir()
    {
        out.error_with(
            &format!("Destination directory '{}' does not exist", dir.display()),
            Exit::BadInput,
        );
        return Ok(());
    }
    // A file found in incoming/ or streaming/ may be moved into the archive
    // before it is opened: look again (Barman's get-wal does the same).
    let mut attempts = 0;
    loop {
        let Some(located) = archive::locate(&layout, &name, args.partial, codec.as_ref())? else {
            out.error(&format!(
                "WAL file {} not found in server {}",
                args.wal_name, args.server
            ));
            return Ok(());
        };
        tracing::info!(
            "Sending WAL '{}' for server '{}'{}",
            located
                .path
                .file_name()
                .map_or_else(|| args.wal_name.into(), |n| n.to_string_lossy()),
            args.server,
            ssh_client()
        );
        match send_wal(&located, &name, args, codec.as_ref()) {
            Err(Send::Vanished(e)) if attempts < 3 => {
                tracing::info!(
                    "Skipping vanished WAL file '{}': {e}",
                    located.path.display()
                );
                attempts += 1;
            }
            Err(Send::Vanished(e) | Send::Core(e)) => {
                if args.output_directory.is_some() {
                    out.error_with(&format!("cannot write the WAL file: {e}"), Exit::BadInput);
                    return Ok(());
                }
                return Err(e.into());
            }
            Err(Send::Other(e)) => return Err(e),
            Ok(()) => return Ok(()),
        }
    }
}

/// Why serving a WAL file failed.
enum Send {
    /// The file was gone when it was opened (nothing was written).
    Vanished(barman_core::Error),
    /// Reading or writing it failed.
    Core(barman_core::Error),
    /// Writing the output failed.
    Other(anyhow::Error),
}

impl From<barman_core::Error> for Send {
    fn from(e: barman_core::Error) -> Self {
        if archive::vanished(&e) {
            Self::Vanished(e)
        } else {
            Self::Core(e)
        }
    }
}

/// Writes a located WAL file where get-wal was asked to.
fn send_wal(
    located: &archive::Located,
    name: &WalFileName,
    args: &GetWalArgs<'_>,
    codec: Option<&barman_wal::Codec>,
) -> std::result::Result<(), Send> {
    // Opened first: a file gone meanwhile is retried before anything (a
    // compressor's header included) is written.
    std::fs::File::open(&located.path)
        .map_err(|e| barman_core::Error::io("cannot open", &located.path, e))?;
    if let Some(dir) = args.output_directory {
        archive::write_wal_to_dir(
            located,
            &name.to_string(),
            dir,
            args.keep_compression,
            codec,
        )?;
        return Ok(());
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    match args.recompress {
        Some(c) => {
            let mut enc = c
                .writer(&mut lock, CompressionLevel::Medium)
                .map_err(|e| Send::Other(e.into()))?;
            archive::write_wal(located, false, codec, &mut enc)?;
            enc.finish()
                .context("cannot write to standard output")
                .map_err(Send::Other)?;
        }
        None => {
            archive::write_wal(located, args.keep_compression, codec, &mut lock)?;
        }
    }
    lock.flush().map_err(|e| Send::Other(e.into()))?;
    Ok(())
}

/// `barman switch-wal SERVER...`.
pub fn switch_wal(
    config: &Config,
    names: &[String],
    force: bool,
    archive_flag: bool,
    timeout: u64,
    out: &mut Output,
) {
    for server in select_servers(config, names, out) {
        if let Err(e) = switch_one(config, server, force, archive_flag, timeout, out) {
            out.error(&format!("switch-wal {}: {e:#}", server.name));
        }
    }
}

fn switch_one(
    config: &Config,
    server: &ServerConfig,
    force: bool,
    archive_flag: bool,
    timeout: u64,
    out: &mut Output,
) -> Result<()> {
    let name = &server.name;
    let conninfo = server
        .conninfo
        .as_deref()
        .with_context(|| format!("server {name} has no conninfo"))?;
    let pg = PgConnection::connect(conninfo, "barman")?;
    if pg.is_in_recovery()? {
        out.error(&format!(
            "No switch performed because server '{name}' is a standby."
        ));
        return Ok(());
    }
    if force {
        pg.checkpoint()?;
    }
    let closed = pg.switch_wal()?;
    match &closed {
        Some(wal) => out.line(&format!(
            "The WAL file {wal} has been closed on server '{name}'"
        ))?,
        None => out.line(&format!("No switch required for server '{name}'"))?,
    }
    out.json_result(name, json!({ "closed_wal": closed }));
    if !archive_flag {
        return Ok(());
    }
    let Some(wal) = closed else {
        out.error(&format!(
            "No WAL file to wait for on server '{name}' (no switch happened; try --force)"
        ));
        return Ok(());
    };
    let wal_name: WalFileName = wal.parse()?;
    out.line(&format!(
        "Waiting for the WAL file {wal} from server '{name}' (max: {timeout} seconds)"
    ))?;
    let start = Instant::now();
    let layout = server.layout();
    let hooks = super::interruptible_hooks(config, &[server])?.server(server)?;
    let waited = srv::archive_until(
        config.global(),
        server,
        &hooks,
        &SystemClock,
        Duration::from_secs(timeout),
        || layout.wal_path(&wal_name).is_file(),
    )?;
    match waited {
        ArchiveWait::Done => out.line(&format!(
            "The WAL file {wal} has been archived in {:.1} seconds",
            start.elapsed().as_secs_f64()
        ))?,
        ArchiveWait::Stopped(stopped) => out.error(&format!(
            "archiving of {} for server {name} stopped: {}",
            stopped.name, stopped.reason
        )),
        ArchiveWait::TimedOut => out.error(&format!(
            "The WAL file {wal} has not been received in {timeout} seconds"
        )),
    }
    Ok(())
}

/// `barman rebuild-xlogdb SERVER...`.
pub fn rebuild_xlogdb(config: &Config, names: &[String], out: &mut Output) -> Result<()> {
    for server in select_servers(config, names, out) {
        let name = &server.name;
        out.line(&format!("Rebuilding xlogdb for server {name}"))?;
        let codec = srv::wal_codec(server)?;
        match archive::rebuild_xlogdb(
            &server.layout(),
            name,
            &config.global().barman_lock_directory,
            codec.as_ref(),
        ) {
            Ok(entries) => {
                let count = |f: fn(&WalFileName) -> bool| {
                    entries
                        .iter()
                        .filter(|e| e.name.parse::<WalFileName>().is_ok_and(|w| f(&w)))
                        .count()
                };
                let history = count(WalFileName::is_history);
                let labels = count(WalFileName::is_backup_label);
                let wals = entries.len() - history - labels;
                out.line(&format!(
                    "Done rebuilding xlogdb for server {name} (history: {history}, backup_labels: {labels}, wal_file: {wals})"
                ))?;
                out.json_result(
                    name,
                    json!({"history": history, "backup_labels": labels, "wal_file": wals}),
                );
            }
            Err(e) => out.error(&format!("rebuild-xlogdb {name}: {e}")),
        }
    }
    Ok(())
}
