//! Streaming through a running filter command with helper threads, so that
//! neither side of the pipe can deadlock and nothing is held in memory.

use std::io::{self, Read, Write};
use std::process::ExitStatus;
use std::thread::{self, JoinHandle};

use super::{FilterChild, FilterSpawner};
use crate::compression::stream::copy_stream;
use crate::error::{Error, Result};

/// How much of a filter's standard error is kept for the error message.
const STDERR_LIMIT: usize = 4096;

fn spawn(command: &str, spawner: &dyn FilterSpawner) -> Result<super::FilterProcess> {
    spawner.spawn(command).map_err(|source| Error::FilterSpawn {
        command: command.to_owned(),
        source,
    })
}

/// Drains `stderr`, keeping its first [`STDERR_LIMIT`] bytes.
fn collect_stderr(stderr: Option<Box<dyn Read + Send>>) -> Option<JoinHandle<String>> {
    let mut stderr = stderr?;
    Some(thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = (&mut stderr)
            .take(STDERR_LIMIT as u64)
            .read_to_end(&mut kept);
        let _ = io::copy(&mut stderr, &mut io::sink());
        String::from_utf8_lossy(&kept).trim().to_owned()
    }))
}

fn panicked() -> io::Error {
    io::Error::other("compression filter helper thread panicked")
}

/// Waits for the command and turns a non-zero exit into
/// [`Error::FilterFailed`] (wrapped in an [`io::Error`]).
fn check_exit(
    command: &str,
    child: &mut dyn FilterChild,
    stderr: Option<JoinHandle<String>>,
) -> io::Result<ExitStatus> {
    let status = child.wait()?;
    let stderr = match stderr {
        Some(h) => h.join().map_err(|_| panicked())?,
        None => String::new(),
    };
    if status.success() {
        Ok(status)
    } else {
        Err(io::Error::other(Error::FilterFailed {
            command: command.to_owned(),
            status: status.to_string(),
            stderr,
        }))
    }
}

/// Compressing side: we write the command's stdin, a thread copies its
/// stdout into the destination.
pub(crate) struct FilterWriter<W> {
    command: String,
    stdin: Option<Box<dyn Write + Send>>,
    child: Box<dyn FilterChild>,
    stdout: Option<JoinHandle<io::Result<W>>>,
    stderr: Option<JoinHandle<String>>,
}

impl<W: Write + Send + 'static> FilterWriter<W> {
    pub(crate) fn start(command: &str, spawner: &dyn FilterSpawner, mut inner: W) -> Result<Self> {
        let process = spawn(command, spawner)?;
        let mut stdout = process.stdout;
        let copier = thread::spawn(move || {
            copy_stream(&mut stdout, &mut inner)?;
            inner.flush()?;
            Ok(inner)
        });
        Ok(Self {
            command: command.to_owned(),
            stdin: Some(process.stdin),
            child: process.child,
            stdout: Some(copier),
            stderr: collect_stderr(process.stderr),
        })
    }
}

impl<W> FilterWriter<W> {
    /// Closes the command's input, waits for its output to be copied and for
    /// it to exit; a failed exit wins over a copy error (it explains it).
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.stdin = None;
        let copied = match self.stdout.take() {
            Some(h) => h.join().map_err(|_| panicked())?,
            None => Err(io::Error::other("compression filter already finished")),
        };
        check_exit(&self.command, self.child.as_mut(), self.stderr.take())?;
        copied
    }

    /// A write failed: if the command died, report its exit instead of the
    /// bare broken pipe.
    fn explain(&mut self, err: io::Error) -> io::Error {
        if err.kind() != io::ErrorKind::BrokenPipe {
            return err;
        }
        self.stdin = None;
        if let Some(h) = self.stdout.take() {
            let _ = h.join();
        }
        match check_exit(&self.command, self.child.as_mut(), self.stderr.take()) {
            Ok(_) => err,
            Err(failed) => failed,
        }
    }

    fn stdin(&mut self) -> io::Result<&mut Box<dyn Write + Send>> {
        self.stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("compression filter already failed"))
    }

    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let res = self.stdin()?.write(buf);
        res.map_err(|e| self.explain(e))
    }

    pub(crate) fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let res = self.stdin()?.write_all(buf);
        res.map_err(|e| self.explain(e))
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        let res = self.stdin()?.flush();
        res.map_err(|e| self.explain(e))
    }
}

impl<W> Drop for FilterWriter<W> {
    fn drop(&mut self) {
        if self.stdout.is_some() {
            // Abandoned mid-stream: don't leave the command running.
            self.stdin = None;
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Decompressing side: a thread feeds the source into the command's stdin,
/// we read its stdout.
pub(crate) struct FilterReader {
    command: String,
    stdout: Box<dyn Read + Send>,
    child: Box<dyn FilterChild>,
    feeder: Option<JoinHandle<io::Result<()>>>,
    stderr: Option<JoinHandle<String>>,
    done: bool,
}

impl FilterReader {
    pub(crate) fn start<R>(command: &str, spawner: &dyn FilterSpawner, mut inner: R) -> Result<Self>
    where
        R: Read + Send + 'static,
    {
        let process = spawn(command, spawner)?;
        let mut stdin = process.stdin;
        let feeder = thread::spawn(move || {
            copy_stream(&mut inner, &mut stdin)?;
            stdin.flush()
        });
        Ok(Self {
            command: command.to_owned(),
            stdout: process.stdout,
            child: process.child,
            feeder: Some(feeder),
            stderr: collect_stderr(process.stderr),
            done: false,
        })
    }

    /// End of the command's output: check the feeder and the exit status.
    fn complete(&mut self) -> io::Result<()> {
        self.done = true;
        let fed = match self.feeder.take() {
            Some(h) => h.join().map_err(|_| panicked())?,
            None => Ok(()),
        };
        check_exit(&self.command, self.child.as_mut(), self.stderr.take())?;
        match fed {
            // The command succeeded without reading all its input: as with
            // Barman's `FILTER < file`, that is the command's business.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let n = self.stdout.read(buf)?;
        if n == 0 {
            self.complete()?;
        }
        Ok(n)
    }
}

impl Drop for FilterReader {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
