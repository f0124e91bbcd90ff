//! The passive node's side of `sync-info`: running it on the primary
//! through `primary_ssh_command`, the "self-recovery" retry, and the two
//! state files, `<backup_directory>/primary.info` (the primary's last
//! answer) and `<wals_directory>/sync-wals.info` (`last_name\tlast_position`
//! of the last WAL synchronisation).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::info::{PrimaryInfo, json_part};
use super::{SyncContext, passive_ssh};
use crate::event::Event;
use crate::shell::quote;
use crate::{Error, Result};
use barman_catalog::fs::{FILE_MODE, create_dir_secure, read_optional, write_atomic};
use barman_config::ServerConfig;

/// The file holding the primary's last `sync-info`.
pub const PRIMARY_INFO_FILE: &str = "primary.info";

/// The file holding the position of the last WAL synchronisation.
pub const SYNC_WALS_INFO_FILE: &str = "sync-wals.info";

/// How long the primary's `sync-info` may take.
const SYNC_INFO_TIMEOUT: Duration = Duration::from_secs(600);

/// The largest `sync-info` answer accepted (256 MiB: the JSON of millions
/// of WALs); a longer one is refused and the command killed.
const SYNC_INFO_MAX_STDOUT: usize = 256 << 20;

/// How much of the primary's stderr is kept (its last 64 KiB, for the
/// error message).
const SYNC_INFO_MAX_STDERR: usize = 64 << 10;

/// Where a passive node stands in the primary's xlog.db.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncWalsInfo {
    /// The primary's last WAL when WALs were last synchronised.
    pub last_wal: Option<String>,
    /// Where its line started in the primary's xlog.db.
    pub last_position: Option<u64>,
}

/// `<backup_directory>/primary.info`.
pub fn primary_info_path(server: &ServerConfig) -> PathBuf {
    server.backup_directory.join(PRIMARY_INFO_FILE)
}

/// `<wals_directory>/sync-wals.info`.
pub fn sync_wals_info_path(server: &ServerConfig) -> PathBuf {
    server.wals_directory.join(SYNC_WALS_INFO_FILE)
}

/// Reads `sync-wals.info`; a missing file is "nothing synchronised yet".
/// A file that does not hold a WAL name and a position is ignored with a
/// warning (the next `sync-info` then asks for everything).
pub fn load_sync_wals_info(server: &ServerConfig) -> Result<SyncWalsInfo> {
    let path = sync_wals_info_path(server);
    let Some(text) = read_optional(&path)? else {
        return Ok(SyncWalsInfo::default());
    };
    let line = text.lines().next().unwrap_or("");
    let (name, position) = line.split_once('\t').unwrap_or((line, ""));
    let name = name.trim();
    if name.is_empty() {
        return Ok(SyncWalsInfo::default());
    }
    if name.parse::<barman_wal::WalFileName>().is_err() {
        tracing::warn!("{}: `{name}` is not a WAL name: ignored", path.display());
        return Ok(SyncWalsInfo::default());
    }
    Ok(SyncWalsInfo {
        last_wal: Some(name.to_owned()),
        last_position: position.trim().parse().ok(),
    })
}

/// Writes `sync-wals.info` atomically: `last_name\tlast_position`, no newline, as Barman.
pub fn write_sync_wals_info(server: &ServerConfig, info: &PrimaryInfo) -> Result<()> {
    let text = format!("{}\t{}", info.last_name, info.last_position);
    write_atomic(&sync_wals_info_path(server), text.as_bytes(), FILE_MODE)
        .map_err(crate::Error::from)
}

/// Reads and validates `primary.info`.
pub fn load_primary_info(server: &ServerConfig) -> Result<PrimaryInfo> {
    let path = primary_info_path(server);
    let text = read_optional(&path)?.ok_or_else(|| Error::Sync {
        server: server.name.clone(),
        message: format!(
            "{} does not exist: run `barman cron` or `barman sync-info --primary {}` first",
            path.display(),
            server.name
        ),
    })?;
    PrimaryInfo::parse(&text, &server.name)
}

/// The command run on the primary: `barman [-c CONFIG] sync-info SERVER
/// [LAST_WAL [LAST_POS]]` (`-c` with `forward_config_path`).
pub fn remote_sync_info_command(
    server: &ServerConfig,
    config_path: Option<&Path>,
    position: &SyncWalsInfo,
) -> String {
    let mut command = String::from("barman");
    if server.forward_config_path
        && let Some(path) = config_path
    {
        command.push_str(" -c ");
        command.push_str(&quote(&path.display().to_string()));
    }
    command.push_str(" sync-info ");
    command.push_str(&quote(&server.name));
    if let Some(wal) = &position.last_wal {
        command.push(' ');
        command.push_str(&quote(wal));
        if let Some(pos) = position.last_position {
            command.push(' ');
            command.push_str(&pos.to_string());
        }
    }
    command
}

/// `barman sync-info --primary SERVER`: runs `sync-info` on the primary
/// from the position of `sync-wals.info`; when the primary answers with
/// exit status 1 (it cannot answer from that position) asks again without
/// it ("self-recovery"). The answer is validated, then saved atomically
/// to `primary.info`. Returns it, and whether self-recovery happened.
pub fn primary_node_info(
    server: &ServerConfig,
    ctx: &mut SyncContext<'_>,
) -> Result<(PrimaryInfo, bool)> {
    let ssh = passive_ssh(server, "sync-info --primary")?;
    let mut position = load_sync_wals_info(server)?;
    let mut recovered = false;
    let text = loop {
        let remote = remote_sync_info_command(server, ctx.config_path, &position);
        tracing::debug!("primary sync-info of `{}`: {remote}", server.name);
        let line = crate::shell::ssh_line(&barman_copy::remote::with_ssh_keepalive(ssh), &remote);
        let limits = (SYNC_INFO_MAX_STDOUT, SYNC_INFO_MAX_STDERR);
        let (code, stdout, stderr) =
            run_captured(ctx.spawner.shell(&line), SYNC_INFO_TIMEOUT, limits).map_err(
                |message| Error::PrimaryInfo {
                    server: server.name.clone(),
                    message,
                },
            )?;
        match code {
            Some(0) => break stdout,
            Some(1) if position.last_wal.is_some() => {
                ctx.observer.event(&Event::SyncInfoOutOfSync {
                    server: server.name.clone(),
                });
                tracing::info!("primary answered: {}", stderr.trim());
                position = SyncWalsInfo::default();
                recovered = true;
            }
            other => {
                let status =
                    other.map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}"));
                return Err(Error::PrimaryInfo {
                    server: server.name.clone(),
                    message: format!("{status}: {}", last_lines(&stderr)),
                });
            }
        }
    };
    let info = PrimaryInfo::parse(&text, &server.name)?;
    let json = json_part(&text).unwrap_or(&text);
    create_dir_secure(&server.backup_directory)?;
    write_atomic(&primary_info_path(server), json.as_bytes(), FILE_MODE)?;
    Ok((info, recovered))
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        "(no output)".to_owned()
    } else {
        tail.join(" / ")
    }
}

/// Runs `command` with stdin closed, collecting stdout and stderr; kills it
/// after `timeout`. Returns the exit code (`None`: killed by a signal).
/// `limits` bound what is kept: stdout beyond `limits.0` bytes is an error
/// (the command is killed at once), stderr keeps its last `limits.1` bytes.
///
/// Once the command has exited its output is taken as it is after a short
/// grace: an ssh multiplexing master it started in the background may keep
/// the pipes open for a long time.
fn run_captured(
    mut command: Command,
    timeout: Duration,
    limits: (usize, usize),
) -> std::result::Result<(Option<i32>, String, String), String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run primary_ssh_command: {e}"))?;
    let stdout = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn Read + Send>);
    let stderr = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn Read + Send>);
    let out = Captured::start(stdout, Keep::Head(limits.0));
    let err = Captured::start(stderr, Keep::Tail(limits.1));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if out.overflowed() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the answer exceeds {} bytes: refused", limits.0));
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s", timeout.as_secs()));
            }
            Err(e) => return Err(format!("cannot wait for primary_ssh_command: {e}")),
        }
    };
    let (stdout, overflowed) = out.finish();
    if overflowed {
        return Err(format!("the answer exceeds {} bytes: refused", limits.0));
    }
    Ok((status.code(), stdout, err.finish().0))
}

/// What a [`Captured`] stream keeps.
#[derive(Debug, Clone, Copy)]
enum Keep {
    /// The first bytes, up to this many; more is an overflow.
    Head(usize),
    /// The last bytes, about this many.
    Tail(usize),
}

/// One output stream of a child, read by a thread into a shared buffer
/// bounded by its [`Keep`].
struct Captured {
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    overflow: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Captured {
    fn start(stream: Option<Box<dyn Read + Send>>, keep: Keep) -> Self {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let overflow = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, done) = std::sync::mpsc::channel();
        let shared = std::sync::Arc::clone(&buf);
        let flag = std::sync::Arc::clone(&overflow);
        std::thread::spawn(move || {
            if let Some(mut s) = stream {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = s.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    let mut kept = shared
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    match keep {
                        Keep::Head(limit) => {
                            let room = (limit + 1).saturating_sub(kept.len()).min(n);
                            kept.extend_from_slice(&chunk[..room]);
                            if kept.len() > limit {
                                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                                break;
                            }
                        }
                        Keep::Tail(limit) => {
                            kept.extend_from_slice(&chunk[..n]);
                            if kept.len() > 2 * limit {
                                let cut = kept.len() - limit;
                                kept.drain(..cut);
                            }
                        }
                    }
                }
            }
            let _ = tx.send(());
        });
        Self {
            buf,
            overflow,
            done,
        }
    }

    /// Whether more than a [`Keep::Head`] limit arrived.
    fn overflowed(&self) -> bool {
        self.overflow.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The text read, after the stream ended or a two-second grace, and
    /// whether it overflowed.
    fn finish(self) -> (String, bool) {
        let _ = self.done.recv_timeout(Duration::from_secs(2));
        let bytes = self
            .buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (
            String::from_utf8_lossy(&bytes).into_owned(),
            self.overflowed(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 300 MB of stderr without a newline and an endless answer: what
    /// is kept stays within the limits (an answer over its limit is
    /// refused at once, not read to its end).
    #[test]
    fn sync_info_output_is_bounded() {
        let mut noisy = Command::new("sh");
        noisy.arg("-c").arg(
            "head -c 300000000 /dev/zero | tr '\\0' e >&2; printf '\\nlast words' >&2; \
             printf '{\"ok\": true}'",
        );
        let (code, stdout, stderr) =
            run_captured(noisy, Duration::from_secs(120), (1 << 20, 64 << 10)).unwrap();
        assert_eq!(code, Some(0));
        assert_eq!(stdout, "{\"ok\": true}");
        assert!(
            stderr.len() <= 128 << 10,
            "{} bytes of stderr kept",
            stderr.len()
        );
        assert!(
            stderr.ends_with("last words"),
            "{}",
            &stderr[stderr.len() - 20..]
        );

        let mut endless = Command::new("sh");
        endless.arg("-c").arg("exec cat /dev/zero");
        let started = Instant::now();
        let err = run_captured(endless, Duration::from_secs(120), (1 << 20, 64 << 10)).unwrap_err();
        assert!(err.contains("exceeds 1048576 bytes"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
    }

    /// The command the primary's shell reads, words quoted where needed.
    #[test]
    fn remote_command_words_are_quoted() {
        let config = barman_config::Config::parse_str(
            "[barman]\nbarman_home = /h\n[pg]\nprimary_ssh_command = ssh p\nforward_config_path = true\n",
            Path::new("/etc/barman.conf"),
        )
        .unwrap();
        let server = config.server("pg").unwrap();
        let position = SyncWalsInfo {
            last_wal: Some("000000010000000000000002".into()),
            last_position: Some(57),
        };
        let conf = Path::new("/etc/my barman's.conf");
        let command = remote_sync_info_command(server, Some(conf), &position);
        assert_eq!(
            command,
            r"barman -c '/etc/my barman'\''s.conf' sync-info pg 000000010000000000000002 57"
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("barman() {{ printf '[%s]' \"$@\"; }}; {command}"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "[-c][/etc/my barman's.conf][sync-info][pg][000000010000000000000002][57]"
        );
    }
}
