//! A [`Source`] served by an agent: a child process (`ssh … barman agent`)
//! or any pair of byte streams.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use crate::entry::{Entry, EntryKind, FileMeta, RelPath};
use crate::exclusion::Exclusions;
use crate::hash::PageHashes;
use crate::protocol::{
    CHUNK, ErrorReply, ExclusionSet, FrameKind, FrameReader, FrameWriter, MAGIC, MAX_LIST_BYTES,
    MAX_LIST_ENTRIES, MAX_PREVIOUS_PAGES, Message, Summary, VERSION, read_full,
};
use crate::source::{ByteSink, PageChunk, PageDeltaEnd, PageSink, Roots, Source, SourceFactory};
use crate::{Error, Result};

/// Lines of the agent's stderr kept for error messages.
const STDERR_LINES: usize = 20;

/// The longest stderr line kept (and logged); the rest of a longer line is
/// read and dropped.
const STDERR_LINE_MAX: usize = 1024;

/// How long to wait for a child whose output ended to exit.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// How long [`Drop`] lets the agent exit on its own after closing its input.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// ssh options [`with_ssh_keepalive`] adds: the client asks the server for
/// a sign of life after 30 s without traffic and gives up after 4
/// unanswered asks (two minutes), so a dead network or host ends the
/// session instead of hanging it.
pub const SSH_KEEPALIVE_OPTIONS: &str = "-o ServerAliveInterval=30 -o ServerAliveCountMax=4";

/// A session's input stream.
type BoxedRead = Box<dyn Read + Send>;

/// A session's output stream.
type BoxedWrite = Box<dyn Write + Send>;

/// How an agent session is opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// Ask for zstd-compressed data frames.
    pub compress: bool,
    /// The inactivity timeout of a child session (`None`: none): when the
    /// client waits on the agent and the agent neither sends a byte nor
    /// accepts one for this long, the session fails and the child is
    /// killed. Time the client spends on its own work does not count.
    pub timeout: Option<Duration>,
    /// Ask the agent to refuse roots that are symbolic links (the roots are
    /// real directories the client knows, such as a passive node's copy of
    /// the primary's backup directory).
    pub no_root_links: bool,
}

/// The inactivity timeout of one child session: waits (`poll(2)`) on a
/// non-blocking pipe that has nothing to read, or no room to write.
#[derive(Debug, Clone)]
struct Idle {
    limit: Duration,
    expired: Arc<AtomicBool>,
}

impl Idle {
    /// Waits until `fd` is ready for `flags`, at most the limit; a timeout
    /// is an [`io::ErrorKind::TimedOut`] error (and marks the session).
    fn wait(&self, fd: impl AsFd, flags: PollFlags, what: &str) -> io::Result<()> {
        let deadline = Instant::now() + self.limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.expired.store(true, Ordering::SeqCst);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{what} for {} s (agent_timeout); the agent or its connection is stalled",
                        self.limit.as_secs_f64()
                    ),
                ));
            }
            let timeout = Timespec::try_from(left).map_err(io::Error::other)?;
            let mut fds = [PollFd::new(&fd, flags)];
            match poll(&mut fds, Some(&timeout)) {
                // Ready, or the peer end closed: the next read or write says.
                Ok(n) if n > 0 => return Ok(()),
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The child's stdout, non-blocking, read with an inactivity timeout.
struct TimedReader {
    inner: ChildStdout,
    idle: Idle,
}

impl Read for TimedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.idle
                        .wait(&self.inner, PollFlags::IN, "no data from the agent")?;
                }
                other => return other,
            }
        }
    }
}

/// The child's stdin, non-blocking, written with an inactivity timeout.
struct TimedWriter {
    inner: ChildStdin,
    idle: Idle,
}

impl Write for TimedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.inner.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.idle
                        .wait(&self.inner, PollFlags::OUT, "the agent read nothing")?;
                }
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads one line of `reader` into `line` (without its newline), keeping at
/// most `max` bytes of it; the rest of a longer line is read and dropped.
/// `false` at the end of the stream.
fn read_bounded_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<bool> {
    line.clear();
    let mut any = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(any);
        }
        any = true;
        let (text, used, end) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = max.saturating_sub(line.len()).min(text.len());
        line.extend_from_slice(&text[..room]);
        reader.consume(used);
        if end {
            return Ok(true);
        }
    }
}

/// The agent process behind a session, and the tail of its stderr.
struct AgentChild {
    child: Child,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_done: mpsc::Receiver<()>,
    /// Set when the inactivity timeout expired.
    expired: Arc<AtomicBool>,
}

impl AgentChild {
    /// Starts `command` with piped stdin, stdout and stderr; stderr lines
    /// are logged (`tracing`, debug) and the last ones kept. With a
    /// `timeout`, stdin and stdout are made non-blocking and every wait on
    /// them is bounded by it.
    fn spawn(
        mut command: Command,
        timeout: Option<Duration>,
    ) -> Result<(Self, BoxedRead, BoxedWrite)> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| {
            Error::Session(format!(
                "cannot start the agent `{}`: {e}",
                command.get_program().to_string_lossy()
            ))
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Session("the agent's pipes are missing".into()));
        };
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let (done_tx, stderr_done) = mpsc::channel();
        let kept = Arc::clone(&lines);
        let spawned = std::thread::Builder::new()
            .name("barman-agent-stderr".into())
            .spawn(move || {
                let mut reader = BufReader::new(stderr);
                let mut line = Vec::new();
                while read_bounded_line(&mut reader, &mut line, STDERR_LINE_MAX).unwrap_or(false) {
                    let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                    tracing::debug!(target: "barman_copy::agent", "agent: {text}");
                    let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                    if kept.len() == STDERR_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(text);
                }
                drop(done_tx);
            });
        let expired = Arc::new(AtomicBool::new(false));
        let this = Self {
            child,
            stderr: lines,
            stderr_done,
            expired: Arc::clone(&expired),
        };
        if let Err(e) = spawned {
            drop(this);
            return Err(Error::Session(format!("cannot start a thread: {e}")));
        }
        let Some(limit) = timeout else {
            return Ok((this, Box::new(stdout), Box::new(stdin)));
        };
        let nonblocking = rustix::io::ioctl_fionbio(&stdout, true)
            .and_then(|()| rustix::io::ioctl_fionbio(&stdin, true));
        if let Err(e) = nonblocking {
            drop(this);
            return Err(Error::Session(format!(
                "cannot make the agent's pipes non-blocking: {e}"
            )));
        }
        let idle = Idle { limit, expired };
        let reader = TimedReader {
            inner: stdout,
            idle: idle.clone(),
        };
        let writer = TimedWriter { inner: stdin, idle };
        Ok((this, Box::new(reader), Box::new(writer)))
    }

    /// The last lines of stderr (waiting a little for it to end).
    fn stderr_tail(&self) -> String {
        let _ = self.stderr_done.recv_timeout(Duration::from_millis(500));
        let lines = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.is_empty() {
            "(empty)".to_owned()
        } else {
            lines.iter().cloned().collect::<Vec<_>>().join(" / ")
        }
    }

    /// Waits up to `limit` for the child to exit.
    fn wait_for(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => return None,
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentChild {
    fn drop(&mut self) {
        if self.wait_for(CLOSE_WAIT).is_none() {
            self.kill();
        }
    }
}

/// A session with an agent: a [`Source`] for backups, plus the write
/// operations of recovery (push).
pub struct AgentSource {
    reader: FrameReader<BoxedRead>,
    writer: FrameWriter<BoxedWrite>,
    child: Option<AgentChild>,
    compressed: bool,
    broken: Option<String>,
    /// Paths of whole-file `read` requests sent ahead by
    /// [`Source::read_ahead`] whose replies are not read yet, oldest first.
    ahead: VecDeque<String>,
    /// The most entries and bytes accepted in one listing.
    list_limits: (u64, u64),
}

/// At most this many whole-file reads are in flight in one session.
const MAX_AHEAD: usize = 64;

impl std::fmt::Debug for AgentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSource")
            .field("wire_bytes", &self.reader.bytes_read())
            .field("compressed", &self.compressed)
            .field("child", &self.child.as_ref().map(|c| c.child.id()))
            .field("broken", &self.broken)
            .field("ahead", &self.ahead.len())
            .finish_non_exhaustive()
    }
}

impl AgentSource {
    /// Starts `command` (for example `ssh -q postgres@pg barman agent`, see
    /// [`ssh_command`]) and opens a session serving `roots` (tree name →
    /// absolute path on the agent's host). `compress` asks for zstd on the
    /// wire. The child's stderr is relayed to `tracing` (debug) and its last
    /// lines are quoted when it dies. Dropping the source closes the
    /// session, then kills the child if it has not exited within a second.
    pub fn spawn(command: Command, roots: &Roots, compress: bool) -> Result<Self> {
        let options = SessionOptions {
            compress,
            ..SessionOptions::default()
        };
        Self::spawn_with(command, roots, &options)
    }

    /// [`spawn`](Self::spawn) with every [`SessionOptions`]: an inactivity
    /// timeout, roots that must not be links.
    pub fn spawn_with(command: Command, roots: &Roots, options: &SessionOptions) -> Result<Self> {
        let (child, stdout, stdin) = AgentChild::spawn(command, options.timeout)?;
        Self::start(stdout, stdin, Some(child), roots, options)
    }

    /// Opens a session over a pair of streams connected to an agent
    /// ([`crate::agent::serve`] in a thread, a socket…).
    pub fn over(
        reader: impl Read + Send + 'static,
        writer: impl Write + Send + 'static,
        roots: &Roots,
        compress: bool,
    ) -> Result<Self> {
        let options = SessionOptions {
            compress,
            ..SessionOptions::default()
        };
        Self::over_with(reader, writer, roots, &options)
    }

    /// [`over`](Self::over) with [`SessionOptions`] (the timeout applies to
    /// child sessions only).
    pub fn over_with(
        reader: impl Read + Send + 'static,
        writer: impl Write + Send + 'static,
        roots: &Roots,
        options: &SessionOptions,
    ) -> Result<Self> {
        Self::start(Box::new(reader), Box::new(writer), None, roots, options)
    }

    fn start(
        reader: BoxedRead,
        writer: BoxedWrite,
        child: Option<AgentChild>,
        roots: &Roots,
        options: &SessionOptions,
    ) -> Result<Self> {
        let mut this = Self {
            reader: FrameReader::new(reader),
            writer: FrameWriter::new(writer),
            child,
            compressed: false,
            broken: None,
            ahead: VecDeque::new(),
            list_limits: (MAX_LIST_ENTRIES, MAX_LIST_BYTES),
        };
        match this.handshake(roots, options) {
            Ok(result) => result.map(|()| this),
            Err(e) => Err(this.fail(e)),
        }
    }

    fn handshake(&mut self, roots: &Roots, options: &SessionOptions) -> Result<Result<()>> {
        let compress = options.compress;
        self.writer.message(&Message::Hello {
            magic: MAGIC.to_owned(),
            version: VERSION,
            capabilities: vec!["zstd".to_owned()],
            roots: roots.clone(),
            compress,
            no_root_links: options.no_root_links,
        })?;
        // A dead child shows up on the read side, with its exit status.
        let _ = self.writer.flush();
        let frame = next_frame(&mut self.reader)?;
        match frame.kind {
            FrameKind::Error => {
                let reply: ErrorReply = frame.json()?;
                return Ok(Err(reply.into_error()));
            }
            FrameKind::Message => {}
            _ => return Err(Error::Protocol("expected the agent's welcome".into())),
        }
        let Message::Welcome {
            version,
            compress: agreed,
            ..
        } = frame.json()?
        else {
            return Err(Error::Protocol("expected the agent's welcome".into()));
        };
        if version != VERSION {
            return Ok(Err(Error::Protocol(format!(
                "protocol version mismatch: the agent speaks version {version}, this client \
                 speaks version {VERSION}; install the same barman-rs release on both hosts"
            ))));
        }
        if agreed && compress {
            self.writer.compress()?;
            self.reader.allow_compressed()?;
            self.compressed = true;
        }
        Ok(Ok(()))
    }

    /// Whether data frames are zstd-compressed in this session.
    pub fn compressed(&self) -> bool {
        self.compressed
    }

    /// Marks the session unusable after a transport or protocol error and
    /// says what happened to the agent process, if there is one.
    fn fail(&mut self, error: Error) -> Error {
        self.broken = Some(error.to_string());
        let Some(child) = self.child.as_mut() else {
            return error;
        };
        if child.expired.load(Ordering::SeqCst) {
            // A stalled agent will not exit by itself.
            child.kill();
            return Error::Session(format!(
                "{}; the agent was killed; agent stderr: {}",
                session_message(error),
                child.stderr_tail()
            ));
        }
        if let Error::Protocol(message) = error {
            child.kill();
            return Error::Protocol(format!("{message}; agent stderr: {}", child.stderr_tail()));
        }
        if let Some(status) = child.wait_for(EXIT_WAIT) {
            Error::Session(format!(
                "agent exited: {status}, stderr: {}",
                child.stderr_tail()
            ))
        } else {
            child.kill();
            Error::Session(format!("{error}; agent stderr: {}", child.stderr_tail()))
        }
    }

    /// Sends `message` (then `upload`'s bytes as data frames and an `end`
    /// frame, if any) and reads the reply, passing its data to `on_data`.
    fn request(
        &mut self,
        message: &Message,
        upload: Option<&mut dyn Read>,
        on_data: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<Summary> {
        self.usable()?;
        let outcome = self
            .drain_ahead()
            .and_then(|()| self.exchange(message, upload, on_data));
        match outcome {
            Ok(result) => result,
            Err(e) => Err(self.fail(e)),
        }
    }

    /// An error if an earlier failure broke the session.
    fn usable(&self) -> Result<()> {
        match &self.broken {
            Some(why) => Err(Error::Session(format!(
                "the agent session is unusable after an earlier failure: {why}"
            ))),
            None => Ok(()),
        }
    }

    /// Reads and drops the replies of the reads sent ahead that nobody
    /// asked for (the caller changed its mind): replies come in request
    /// order, so they must be consumed before the next request's.
    fn drain_ahead(&mut self) -> Result<()> {
        while let Some(path) = self.ahead.pop_front() {
            tracing::debug!(path, "dropping the reply of an unused read-ahead");
            // A replied error (the file vanished…) concerns nobody now.
            let _ = self.reply(&mut |_| Ok(()))?;
        }
        Ok(())
    }

    /// The reply of the read of `path` sent ahead, if it is the oldest one
    /// in flight.
    fn read_sent_ahead(&mut self, path: &str, sink: ByteSink<'_>) -> Option<Result<Summary>> {
        if self.ahead.front().map(String::as_str) != Some(path) || self.broken.is_some() {
            return None;
        }
        self.ahead.pop_front();
        Some(match self.reply(sink) {
            Ok(result) => result,
            Err(e) => Err(self.fail(e)),
        })
    }

    /// The outer error breaks the session; the inner one is the request's.
    fn exchange(
        &mut self,
        message: &Message,
        upload: Option<&mut dyn Read>,
        on_data: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<Result<Summary>> {
        self.writer.message(message)?;
        let mut upload_error = None;
        if let Some(upload) = upload {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match read_full(upload, &mut buf) {
                    Ok(n) => {
                        self.writer.data(&buf[..n])?;
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(e) => {
                        upload_error = Some(Error::io("(data sent to the agent)", e));
                        break;
                    }
                }
            }
            match &upload_error {
                None => self.writer.end(&Summary::default())?,
                Some(e) => self.writer.error(e)?,
            }
        }
        self.writer.flush()?;
        let reply = self.reply(on_data)?;
        Ok(match upload_error {
            Some(e) => Err(e),
            None => reply,
        })
    }

    /// Reads a reply: data frames, then `end` or `error`. After an error of
    /// `on_data`, the rest of the reply is read and dropped, except after an
    /// [`Error::Protocol`], which breaks the session.
    fn reply(&mut self, on_data: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<Result<Summary>> {
        let mut failed = None;
        loop {
            let frame = next_frame(&mut self.reader)?;
            match frame.kind {
                FrameKind::Data => {
                    if failed.is_none() {
                        match on_data(frame.payload) {
                            Ok(()) => {}
                            // The peer broke the protocol (or a limit):
                            // the rest of the reply is not worth reading.
                            Err(e @ Error::Protocol(_)) => return Err(e),
                            Err(e) => failed = Some(e),
                        }
                    }
                }
                FrameKind::End => {
                    let summary: Summary = frame.json()?;
                    return Ok(failed.map_or(Ok(summary), Err));
                }
                FrameKind::Error => {
                    let reply: ErrorReply = frame.json()?;
                    return Ok(Err(failed.unwrap_or_else(|| reply.into_error())));
                }
                FrameKind::Message | FrameKind::Zdata => {
                    return Err(Error::Protocol("unexpected message in a reply".into()));
                }
            }
        }
    }

    /// A request without data either way.
    fn simple(&mut self, message: &Message) -> Result<()> {
        self.request(message, None, &mut |_| {
            Err(Error::Protocol("unexpected data in a reply".into()))
        })
        .map(|_| ())
    }

    /// Streams `length` bytes (to the end when `None`) of a file from
    /// `offset`; returns the bytes received.
    pub fn read_range(
        &mut self,
        path: &RelPath,
        offset: u64,
        length: Option<u64>,
        sink: ByteSink<'_>,
    ) -> Result<u64> {
        if offset == 0
            && length.is_none()
            && let Some(result) = self.read_sent_ahead(path.as_str(), sink)
        {
            return required(result?.size, "size");
        }
        let message = Message::Read {
            path: path.to_string(),
            offset,
            length,
        };
        let summary = self.request(&message, None, sink)?;
        required(summary.size, "size")
    }

    /// Writes a file of `meta.size` bytes read from `data` on the agent's
    /// host: temporary file, fsync, rename, with `meta`'s mode and mtime.
    /// The parent directory is not fsynced: call [`fsync`](Self::fsync) on
    /// it.
    pub fn write_file(
        &mut self,
        path: &RelPath,
        meta: FileMeta,
        data: &mut dyn Read,
    ) -> Result<()> {
        self.upload(path, meta, data, false)
    }

    /// [`write_file`](Self::write_file) without the file's fsync: the caller
    /// makes the whole file system durable at the end with
    /// [`syncfs`](Self::syncfs).
    pub fn write_file_unsynced(
        &mut self,
        path: &RelPath,
        meta: FileMeta,
        data: &mut dyn Read,
    ) -> Result<()> {
        self.upload(path, meta, data, true)
    }

    fn upload(
        &mut self,
        path: &RelPath,
        meta: FileMeta,
        data: &mut dyn Read,
        no_fsync: bool,
    ) -> Result<()> {
        let FileMeta { size, mode, mtime } = meta;
        let message = Message::WriteFile {
            path: path.to_string(),
            size,
            mode,
            mtime,
            no_fsync,
        };
        let mut limited = data.take(size);
        self.request(&message, Some(&mut limited), &mut |_| {
            Err(Error::Protocol("unexpected data in a reply".into()))
        })
        .map(|_| ())
    }

    /// Creates a directory (and missing parents) with `mode`.
    pub fn mkdir(&mut self, path: &RelPath, mode: u32) -> Result<()> {
        self.simple(&Message::Mkdir {
            path: path.to_string(),
            mode,
        })
    }

    /// Creates (or replaces) a symbolic link to `target`.
    pub fn symlink(&mut self, path: &RelPath, target: &str) -> Result<()> {
        self.simple(&Message::Symlink {
            path: path.to_string(),
            target: target.to_owned(),
        })
    }

    /// Removes a file, a link or a directory tree (nothing there is fine).
    pub fn remove(&mut self, path: &RelPath) -> Result<()> {
        self.simple(&Message::Remove {
            path: path.to_string(),
        })
    }

    /// Bytes sent to the agent so far (on the wire, after compression).
    pub fn bytes_sent(&self) -> u64 {
        self.writer.bytes_written()
    }

    /// fsyncs a file or directory.
    pub fn fsync(&mut self, path: &RelPath) -> Result<()> {
        self.simple(&Message::Fsync {
            path: path.to_string(),
            filesystem: false,
        })
    }

    /// `syncfs` on the agent's host: the whole file system holding `path`
    /// (a tree root, say) is made durable.
    pub fn syncfs(&mut self, path: &RelPath) -> Result<()> {
        self.simple(&Message::Fsync {
            path: path.to_string(),
            filesystem: true,
        })
    }
}

/// The next frame; the end of the stream is an error.
fn next_frame(reader: &mut FrameReader<BoxedRead>) -> Result<crate::protocol::Frame<'_>> {
    reader
        .next_frame()?
        .ok_or_else(|| Error::Session("the agent closed the session".into()))
}

fn required(value: Option<u64>, name: &str) -> Result<u64> {
    value.ok_or_else(|| Error::Protocol(format!("the agent's reply lacks `{name}`")))
}

/// An entry of the listing of `tree` must be inside it, and the tree root
/// itself a directory: a peer listing anything else (a file of another
/// tree, a root that is a link) is refused.
fn check_listed(tree: &str, entry: &Entry) -> Result<()> {
    let path = &entry.path;
    if path.tree() != tree {
        return Err(Error::Protocol(format!(
            "the agent listed `{path}`, outside the requested tree `{tree}`"
        )));
    }
    if path.parent().is_none() && entry.kind != EntryKind::Dir {
        return Err(Error::Protocol(format!(
            "the agent listed the root of tree `{tree}` as something other than a directory"
        )));
    }
    Ok(())
}

/// The text of a session error, without its `agent session:` prefix.
fn session_message(error: Error) -> String {
    match error {
        Error::Session(message) => message,
        other => other.to_string(),
    }
}

impl Source for AgentSource {
    fn list(&mut self, tree: &str, exclusions: &Exclusions) -> Result<Vec<Entry>> {
        let exclusions = ExclusionSet::of(exclusions).ok_or_else(|| {
            Error::Protocol(
                "only the postgres, barman_rsync and empty exclusion sets can be sent to an agent"
                    .into(),
            )
        })?;
        let message = Message::List {
            tree: tree.to_owned(),
            exclusions,
        };
        // Checked as the entries arrive: a peer cannot make the client
        // hold more than this, however long it talks.
        let (max_entries, max_bytes) = self.list_limits;
        let mut entries = Vec::new();
        let mut bytes = 0u64;
        let summary = self.request(&message, None, &mut |batch| {
            bytes += batch.len() as u64;
            if bytes > max_bytes {
                return Err(Error::Protocol(format!(
                    "the listing of `{tree}` exceeds {max_bytes} bytes"
                )));
            }
            for line in batch.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if entries.len() as u64 >= max_entries {
                    return Err(Error::Protocol(format!(
                        "the listing of `{tree}` exceeds {max_entries} entries"
                    )));
                }
                let entry: Entry = serde_json::from_slice(line)
                    .map_err(|e| Error::Protocol(format!("bad entry from the agent: {e}")))?;
                check_listed(tree, &entry)?;
                entries.push(entry);
            }
            Ok(())
        })?;
        if required(summary.entries, "entries")? != entries.len() as u64 {
            return Err(Error::Protocol("entry count mismatch in a listing".into()));
        }
        Ok(entries)
    }

    fn read(&mut self, path: &RelPath, sink: ByteSink<'_>) -> Result<u64> {
        self.read_range(path, 0, None, sink)
    }

    /// Sends the whole-file `read` requests of `paths` now (up to 64 in
    /// flight), so that the agent streams each file right after the one
    /// before instead of waiting a round trip for each request.
    fn read_ahead(&mut self, paths: &[&RelPath]) {
        if self.usable().is_err() {
            return;
        }
        let mut sent = false;
        for path in paths {
            if self.ahead.len() >= MAX_AHEAD {
                break;
            }
            if self.ahead.iter().any(|p| p == path.as_str()) {
                continue;
            }
            let message = Message::Read {
                path: path.to_string(),
                offset: 0,
                length: None,
            };
            if let Err(e) = self.writer.message(&message) {
                // The next request reports the broken session.
                let _ = self.fail(e);
                return;
            }
            self.ahead.push_back(path.to_string());
            sent = true;
        }
        if sent && let Err(e) = self.writer.flush() {
            let _ = self.fail(e);
        }
    }

    fn changed_pages(
        &mut self,
        path: &RelPath,
        previous: &PageHashes,
        sink: PageSink<'_>,
    ) -> Result<PageDeltaEnd> {
        let pages = previous.0.len() as u64;
        if pages > MAX_PREVIOUS_PAGES {
            return Err(Error::Protocol(format!(
                "{path}: {pages} page fingerprints exceed the protocol's limit of \
                 {MAX_PREVIOUS_PAGES}; copy the file whole"
            )));
        }
        let message = Message::ChangedPages {
            path: path.to_string(),
            pages,
        };
        let hashes = previous.to_bytes();
        let summary = self.request(&message, Some(&mut hashes.as_slice()), &mut |payload| {
            let (first, data) = payload
                .split_first_chunk::<8>()
                .ok_or_else(|| Error::Protocol("short page frame".into()))?;
            sink(PageChunk::Pages {
                first: u64::from_be_bytes(*first),
                data,
            })
        })?;
        Ok(PageDeltaEnd {
            size: required(summary.size, "size")?,
            pages_sent: required(summary.pages_sent, "pages_sent")?,
        })
    }

    fn rsync_delta(&mut self, path: &RelPath, signature: &[u8], sink: ByteSink<'_>) -> Result<u64> {
        let message = Message::RsyncDelta {
            path: path.to_string(),
            signature_len: signature.len() as u64,
        };
        let mut upload = signature;
        let summary = self.request(&message, Some(&mut upload), sink)?;
        required(summary.size, "size")
    }

    fn wire_bytes(&self) -> u64 {
        self.reader.bytes_read()
    }
}

impl Drop for AgentSource {
    fn drop(&mut self) {
        if self.child.is_some() {
            // Closing the agent's stdin ends the session cleanly; the child
            // is then waited for, or killed (AgentChild's drop). A broken
            // session (a stalled agent) is not flushed to.
            if self.broken.is_none() {
                let _ = self.writer.flush();
            }
            drop(std::mem::replace(
                self.writer.get_mut(),
                Box::new(io::sink()),
            ));
        }
    }
}

/// A command running `remote_command` through `ssh_command` (a shell
/// fragment such as Barman's `ssh_command = ssh -q postgres@pg`):
/// `sh -c 'exec <ssh_command> "$@"' barman-agent <remote_command>`, so that
/// ssh gets `remote_command` as one argument for the remote shell.
pub fn ssh_command(ssh_command: &str, remote_command: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("exec {ssh_command} \"$@\""))
        .arg("barman-agent")
        .arg(remote_command);
    command
}

/// `ssh_command` (a shell fragment such as `ssh -q postgres@pg`) with
/// [`SSH_KEEPALIVE_OPTIONS`] appended when it is a plain `ssh` invocation:
/// its program is `ssh` (or a path ending in `/ssh`) and it holds no `--`
/// and no shell operator or comment. Anything else (a wrapper
/// script of another name, a pipeline) is returned unchanged.
///
/// The options go after the user's own (ssh reads options after the
/// destination too), and ssh keeps the first value it reads for an option:
/// an `-o ServerAliveInterval=…` in `ssh_command` wins. They do override
/// the same options in `ssh_config` files, which ssh reads after its
/// command line.
pub fn with_ssh_keepalive(ssh_command: &str) -> String {
    let mut words = ssh_command.split_whitespace();
    let is_ssh = words
        .next()
        .is_some_and(|program| program == "ssh" || program.ends_with("/ssh"));
    let plain = !ssh_command.chars().any(|c| {
        matches!(
            c,
            ';' | '&' | '|' | '#' | '`' | '(' | ')' | '<' | '>' | '\n'
        )
    }) && !ssh_command.split_whitespace().any(|w| w == "--");
    if is_ssh && plain {
        format!("{} {SSH_KEEPALIVE_OPTIONS}", ssh_command.trim_end())
    } else {
        ssh_command.to_owned()
    }
}

/// Opens [`AgentSource`]s by starting an agent process per session.
pub struct AgentFactory {
    /// Builds the command starting one agent (called once per session).
    pub command: Box<dyn Fn() -> Command + Send + Sync>,
    /// Tree name → absolute path on the agent's host.
    pub roots: Roots,
    /// Compression, inactivity timeout, root links.
    pub options: SessionOptions,
}

impl std::fmt::Debug for AgentFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentFactory")
            .field("command", &(self.command)())
            .field("roots", &self.roots)
            .field("options", &self.options)
            .finish()
    }
}

impl AgentFactory {
    /// A factory starting `command()` for each session.
    pub fn new(
        command: impl Fn() -> Command + Send + Sync + 'static,
        roots: Roots,
        compress: bool,
    ) -> Self {
        Self {
            command: Box::new(command),
            roots,
            options: SessionOptions {
                compress,
                ..SessionOptions::default()
            },
        }
    }

    /// A factory running `remote_command` (normally `barman agent`) through
    /// `ssh_command` (see [`ssh_command`]).
    pub fn ssh(ssh: &str, remote_command: &str, roots: Roots, compress: bool) -> Self {
        let (ssh, remote) = (ssh.to_owned(), remote_command.to_owned());
        Self::new(move || ssh_command(&ssh, &remote), roots, compress)
    }

    /// Sets the sessions' inactivity timeout (`None` or zero: none).
    #[must_use]
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// Makes the agent refuse roots that are symbolic links.
    #[must_use]
    pub fn no_root_links(mut self) -> Self {
        self.options.no_root_links = true;
        self
    }

    /// Starts an agent and opens a session with it.
    pub fn session(&self) -> Result<AgentSource> {
        AgentSource::spawn_with((self.command)(), &self.roots, &self.options)
    }
}

impl SourceFactory for AgentFactory {
    fn open(&self) -> Result<Box<dyn Source>> {
        Ok(Box::new(self.session()?))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A hostile agent in a thread that answers a `list` with entries of
    /// tree `data` forever (or `count` of them, then an honest `end`).
    fn endless_lister(count: Option<u64>) -> AgentSource {
        let (agent_in, client_out) = std::io::pipe().unwrap();
        let (client_in, agent_out) = std::io::pipe().unwrap();
        std::thread::spawn(move || {
            let mut reader = FrameReader::new(agent_in);
            let mut writer = FrameWriter::new(agent_out);
            let _hello = reader.next_frame();
            let welcome = Message::Welcome {
                version: VERSION,
                capabilities: vec![],
                compress: false,
            };
            writer.message(&welcome)?;
            writer.flush()?;
            let _list = reader.next_frame();
            let mut sent = 0u64;
            while count.is_none_or(|c| sent < c) {
                let mut batch = Vec::new();
                for _ in 0..1000 {
                    let line = format!(
                        "{{\"path\":\"data/f{sent}\",\"type\":\"file\",\"size\":0,\
                         \"mtime\":{{\"secs\":0,\"nanos\":0}},\"mode\":384}}\n"
                    );
                    batch.extend_from_slice(line.as_bytes());
                    sent += 1;
                }
                writer.data_frame(&[&batch])?;
            }
            writer.end(&Summary {
                entries: Some(sent),
                ..Summary::default()
            })?;
            writer.flush()
        });
        let roots = Roots::from([("data".to_owned(), "/nonexistent".into())]);
        AgentSource::over(client_in, client_out, &roots, false).unwrap()
    }

    /// The listing is bounded while it arrives: an endless one fails at
    /// the limit (it is not read to its end first), a long one too.
    #[test]
    fn listings_are_bounded_as_they_arrive() {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut source = endless_lister(None);
            source.list_limits = (50_000, MAX_LIST_BYTES);
            let _ = tx.send(source.list("data", &Exclusions::none()).map(|e| e.len()));
        });
        let result = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("an endless listing is still being read");
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::Protocol(m) if m.contains("exceeds 50000 entries")),
            "{err}"
        );

        let mut source = endless_lister(Some(20_000));
        source.list_limits = (10_000, MAX_LIST_BYTES);
        let err = source.list("data", &Exclusions::none()).unwrap_err();
        assert!(
            matches!(&err, Error::Protocol(m) if m.contains("10000 entries")),
            "{err}"
        );

        let mut source = endless_lister(Some(20_000));
        source.list_limits = (MAX_LIST_ENTRIES, 100_000);
        let err = source.list("data", &Exclusions::none()).unwrap_err();
        assert!(
            matches!(&err, Error::Protocol(m) if m.contains("100000 bytes")),
            "{err}"
        );

        let mut source = endless_lister(Some(20_000));
        assert_eq!(
            source.list("data", &Exclusions::none()).unwrap().len(),
            20_000
        );
    }

    #[test]
    fn stderr_lines_are_read_within_a_bound() {
        let text = format!("short\n{}\nlast", "x".repeat(10_000));
        let mut reader = BufReader::with_capacity(64, text.as_bytes());
        let mut line = Vec::new();
        let mut lines = Vec::new();
        while read_bounded_line(&mut reader, &mut line, 100).unwrap() {
            assert!(line.capacity() < 1024, "{}", line.capacity());
            lines.push(String::from_utf8(line.clone()).unwrap());
        }
        assert_eq!(
            lines,
            ["short".to_owned(), "x".repeat(100), "last".to_owned()]
        );
    }
}
