//! [`ShellRunner`]: runs hook scripts with `/bin/sh -c`, as Barman's
//! `Command(script, shell=True)` does.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use super::{ProcessRunner, ScriptCommand, ScriptOutput, ScriptStatus, StopReason};
use crate::capture::{Captured, OutputLimit};

/// The real [`ProcessRunner`]: `/bin/sh -c SCRIPT`.
///
/// * The script inherits this process's environment plus the `BARMAN_*`
///   variables; with a `path_prefix`, `PATH` becomes `prefix:PATH` (the PATH
///   set with [`base_path`](Self::base_path), else the inherited one).
/// * stdin is `/dev/null`; stdout and stderr are read as they come, each kept
///   within the command's [`OutputLimit`], so a hook printing without end
///   neither blocks on a full pipe nor grows memory.
/// * The shell runs in a new process group, so that stopping a hook stops
///   what it started too. A terminal's Ctrl-C therefore reaches only the
///   embedding program: it sets the cancel flag (for instance with
///   `signal_hook::flag::register` on SIGINT and SIGTERM) and the runner
///   sends SIGTERM to the hook's process group, then SIGKILL after the
///   [`grace`](Self::grace) period. The same happens when the timeout passes.
/// * When the shell has exited but something it left in the background still
///   holds its output open, the runner waits at most the grace period for the
///   output to end, then returns what it has (the reading threads finish when
///   the pipes close). A stopped hook's group is killed outright.
#[derive(Debug, Clone)]
pub struct ShellRunner {
    shell: OsString,
    base_path: Option<OsString>,
    grace: Duration,
    poll: Duration,
}

impl Default for ShellRunner {
    fn default() -> Self {
        Self {
            shell: "/bin/sh".into(),
            base_path: None,
            grace: Duration::from_secs(5),
            poll: Duration::from_millis(20),
        }
    }
}

impl ShellRunner {
    /// `/bin/sh`, the inherited PATH, a 5 s grace period, polling every 20 ms.
    pub fn new() -> Self {
        Self::default()
    }

    /// The PATH that `path_prefix` is prepended to (default: the one this
    /// process inherited, read when a hook starts).
    #[must_use]
    pub fn base_path(mut self, path: impl Into<OsString>) -> Self {
        self.base_path = Some(path.into());
        self
    }

    /// Time between SIGTERM and SIGKILL when a hook is stopped, and the
    /// longest wait for a finished hook's output to end.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How often the cancel flag, the timeout and the child are checked
    /// (at most; the first checks come sooner, from 1 ms doubling up to it).
    #[must_use]
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    fn command(&self, cmd: &ScriptCommand<'_>) -> Command {
        let mut command = Command::new(&self.shell);
        command
            .arg("-c")
            .arg(cmd.script)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(prefix) = cmd.path_prefix {
            let base = self
                .base_path
                .clone()
                .or_else(|| std::env::var_os("PATH"))
                .unwrap_or_default();
            let mut path = OsString::from(prefix);
            path.push(":");
            path.push(base);
            command.env("PATH", path);
        }
        command
    }

    /// Waits for `child`, stopping its group when the cancel flag or the
    /// timeout says so.
    fn wait(
        &self,
        child: &mut Child,
        group: Pid,
        cmd: &ScriptCommand<'_>,
    ) -> io::Result<(ExitStatus, Option<StopReason>)> {
        let started = Instant::now();
        let mut stop: Option<(StopReason, Instant)> = None;
        let mut killed = false;
        // Short hooks (one per WAL, say) are seen to end within a millisecond
        // or two; longer ones are checked every `poll`.
        let mut pause = Duration::from_millis(1).min(self.poll);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok((status, stop.map(|(reason, _)| reason)));
            }
            match stop {
                None => {
                    let reason = if cmd.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                        Some(StopReason::Cancelled)
                    } else if cmd.timeout.is_some_and(|t| started.elapsed() >= t) {
                        Some(StopReason::TimedOut)
                    } else {
                        None
                    };
                    if let Some(reason) = reason {
                        tracing::warn!(
                            hook = %cmd.point,
                            script = cmd.script,
                            "stopping hook script ({}): SIGTERM to its process group",
                            match reason {
                                StopReason::Cancelled => "interrupted",
                                StopReason::TimedOut => "timed out",
                            }
                        );
                        signal_group(group, Signal::TERM);
                        stop = Some((reason, Instant::now()));
                    }
                }
                Some((_, since)) if !killed && since.elapsed() >= self.grace => {
                    tracing::warn!(
                        hook = %cmd.point,
                        script = cmd.script,
                        "hook script still running {:?} after SIGTERM: SIGKILL",
                        self.grace
                    );
                    signal_group(group, Signal::KILL);
                    killed = true;
                }
                Some(_) => {}
            }
            thread::sleep(pause);
            pause = (pause * 2).min(self.poll);
        }
    }
}

impl ProcessRunner for ShellRunner {
    fn run(&self, cmd: &ScriptCommand<'_>) -> io::Result<ScriptOutput> {
        let mut child = self.command(cmd).spawn()?;
        let group = Pid::from_child(&child);
        let readers = Readers::start(&mut child, cmd.output_limit);
        let waited = self.wait(&mut child, group, cmd);
        let (status, stopped) = match waited {
            Ok(done) => done,
            Err(e) => {
                signal_group(group, Signal::KILL);
                let _ = child.wait();
                return Err(e);
            }
        };
        if stopped.is_some() {
            // Whatever the hook left behind goes too.
            signal_group(group, Signal::KILL);
        }
        let (stdout, stderr, complete) = readers.finish(self.grace);
        if !complete {
            tracing::warn!(
                hook = %cmd.point,
                script = cmd.script,
                "hook script exited but its output is still open (a background process?); \
                 not waiting for it"
            );
        }
        let status = match status.code() {
            Some(code) => ScriptStatus::Exited(code),
            None => ScriptStatus::Signaled(status.signal().unwrap_or(0)),
        };
        let mut output = ScriptOutput::new(status).stdout(stdout).stderr(stderr);
        output.stopped = stopped;
        Ok(output)
    }
}

/// Sends `signal` to the process group; a group that is gone already is fine.
fn signal_group(group: Pid, signal: Signal) {
    if let Err(e) = kill_process_group(group, signal)
        && e != rustix::io::Errno::SRCH
    {
        tracing::warn!("cannot signal hook process group {group:?}: {e}");
    }
}

/// The two threads draining stdout and stderr into shared, bounded captures.
struct Readers {
    captures: [Arc<Mutex<Captured>>; 2],
    done: mpsc::Receiver<()>,
    running: usize,
}

impl Readers {
    fn start(child: &mut Child, limit: OutputLimit) -> Self {
        let (tx, done) = mpsc::channel();
        let captures = [
            Arc::new(Mutex::new(Captured::new(limit))),
            Arc::new(Mutex::new(Captured::new(limit))),
        ];
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        let mut running = 0;
        for (stream, capture) in streams.into_iter().zip(&captures) {
            let Some(mut stream) = stream else { continue };
            let (tx, capture) = (tx.clone(), Arc::clone(capture));
            running += 1;
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => lock(&capture).push(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                let _ = tx.send(());
            });
        }
        Self {
            captures,
            done,
            running,
        }
    }

    /// Both captures as they are once the streams ended, or after `grace`;
    /// `false` when a stream was still open then.
    fn finish(self, grace: Duration) -> (Captured, Captured, bool) {
        let deadline = Instant::now() + grace;
        let mut ended = 0;
        while ended < self.running {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                break;
            }
            ended += 1;
        }
        let [stdout, stderr] = &self.captures;
        (
            lock(stdout).clone(),
            lock(stderr).clone(),
            ended == self.running,
        )
    }
}

/// Locks a capture; a reader that panicked leaves it usable.
fn lock(capture: &Mutex<Captured>) -> std::sync::MutexGuard<'_, Captured> {
    capture
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
