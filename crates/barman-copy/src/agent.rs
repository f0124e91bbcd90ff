//! The agent: serves one session of the agent protocol on the PostgreSQL
//! host (`barman agent`, started by ssh with the session on its stdin and
//! stdout).
//!
//! Everything the agent logs goes through `tracing` (the CLI sends it to
//! stderr, which the client relays); stdout carries frames only.

use std::io::{Read, Write};

use crate::entry::RelPath;
use crate::hash::PageHashes;
use crate::local::{self, NewFile};
use crate::protocol::{
    AGENT_CAPABILITIES, CHUNK, ErrorKind, ErrorReply, FrameKind, FrameReader, FrameWriter, MAGIC,
    MAX_PREVIOUS_PAGES, MAX_SIGNATURE, Message, Summary, VERSION,
};
use crate::source::{PageChunk, Roots};
use crate::{Error, Result};

/// Serves one agent session: reads requests from `input`, writes replies to
/// `output`, until `input` ends.
///
/// Returns `Ok(())` when the client closes the session (end of `input`
/// between requests, including before the handshake). Returns an error when
/// the session cannot go on: a bad handshake (wrong magic or protocol
/// version), a malformed frame or message, or `output` gone; an `error`
/// frame tells the client why first, when it still can. Errors of one
/// request (a vanished file, a refused path, an I/O error) are replied as
/// `error` frames and the session goes on.
pub fn serve(input: impl Read, output: impl Write) -> Result<()> {
    let mut reader = FrameReader::new(input);
    let mut writer = FrameWriter::new(output);
    let result = match handshake(&mut reader, &mut writer) {
        Ok(Some(roots)) => {
            let mut agent = Agent {
                roots,
                reader,
                writer,
            };
            let result = agent.run();
            writer = agent.writer;
            result
        }
        Ok(None) => return Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        tracing::error!("agent session ends: {e}");
        if !writer.failed() && writer.error(e).is_ok() {
            let _ = writer.flush();
        }
    }
    result
}

/// Reads the `hello`, answers `welcome`; `None` if the input is empty.
fn handshake<R: Read, W: Write>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
) -> Result<Option<Roots>> {
    let Some(frame) = reader.next_frame()? else {
        return Ok(None);
    };
    if frame.kind != FrameKind::Message {
        return Err(Error::Protocol("expected a hello message".into()));
    }
    let Message::Hello {
        magic,
        version,
        capabilities,
        roots,
        compress,
        no_root_links,
    } = frame.json()?
    else {
        return Err(Error::Protocol("expected a hello message".into()));
    };
    if magic != MAGIC {
        return Err(Error::Protocol(format!(
            "bad magic {magic:?}: the peer is not a barman-rs client"
        )));
    }
    if version != VERSION {
        let message = format!(
            "protocol version mismatch: the client speaks version {version}, this agent speaks \
             version {VERSION}; install the same barman-rs release on both hosts"
        );
        let reply = ErrorReply {
            kind: ErrorKind::Version,
            ..ErrorReply::from_error(&Error::Protocol(message.clone()))
        };
        writer.json(FrameKind::Error, &reply)?;
        writer.flush()?;
        return Err(Error::Protocol(message));
    }
    for (tree, root) in &roots {
        let one_component = RelPath::new(tree.as_str()).is_ok_and(|p| p.parent().is_none());
        let reason = if !one_component {
            "a tree name must be one path component"
        } else if !root.is_absolute() {
            "a root must be an absolute path"
        } else if no_root_links && std::fs::symlink_metadata(root).is_ok_and(|m| m.is_symlink()) {
            "a root must not be a symbolic link"
        } else {
            continue;
        };
        return Err(Error::UnsafePath {
            path: format!("{tree} = {}", root.display()),
            reason,
        });
    }
    let compress = compress && capabilities.iter().any(|c| c == "zstd");
    tracing::debug!(?roots, compress, "agent session starts");
    writer.message(&Message::Welcome {
        version: VERSION,
        capabilities: AGENT_CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
        compress,
    })?;
    writer.flush()?;
    if compress {
        writer.compress()?;
        reader.allow_compressed()?;
    }
    Ok(Some(roots))
}

/// One session after the handshake.
struct Agent<R: Read, W: Write> {
    roots: Roots,
    reader: FrameReader<R>,
    writer: FrameWriter<W>,
}

/// The outcome of one request: the outer error ends the session, the inner
/// one is replied.
type Outcome = Result<Result<Summary>>;

impl<R: Read, W: Write> Agent<R, W> {
    fn run(&mut self) -> Result<()> {
        loop {
            let message: Message = match self.reader.next_frame()? {
                None => return Ok(()),
                Some(frame) if frame.kind == FrameKind::Message => frame.json()?,
                Some(frame) => {
                    return Err(Error::Protocol(format!(
                        "expected a request, got a `{}` frame",
                        char::from(frame.kind.byte())
                    )));
                }
            };
            tracing::debug!(?message, "request");
            let outcome = self.handle(message)?;
            if self.writer.failed() {
                return Err(outcome
                    .err()
                    .unwrap_or_else(|| Error::Session("writing to the client failed".into())));
            }
            match outcome {
                Ok(summary) => self.writer.end(&summary)?,
                Err(e) => {
                    if matches!(e, Error::Vanished { .. }) {
                        tracing::info!("{e}");
                    } else {
                        tracing::warn!("{e}");
                    }
                    self.writer.error(&e)?;
                }
            }
            // Replies to pipelined requests go out together: the client
            // writes whole frames and flushes before it waits for a reply,
            // so buffered input is a request we can answer first.
            if !self.reader.has_buffered() {
                self.writer.flush()?;
            }
        }
    }

    fn handle(&mut self, message: Message) -> Outcome {
        let roots = &self.roots;
        let done = |r: Result<()>| Ok(r.map(|()| Summary::default()));
        match message {
            Message::Hello { .. } | Message::Welcome { .. } => Err(Error::Protocol(
                "unexpected handshake message inside a session".into(),
            )),
            Message::List { tree, exclusions } => Ok(self.list(&tree, &exclusions.rules())),
            Message::Read {
                path,
                offset,
                length,
            } => Ok(self.read(&path, offset, length)),
            Message::ChangedPages { path, pages } => self.changed_pages(&path, pages),
            Message::RsyncDelta {
                path,
                signature_len,
            } => self.rsync_delta(&path, signature_len),
            Message::WriteFile {
                path,
                size,
                mode,
                mtime,
                no_fsync,
            } => {
                // Whatever ends the request early (its own error, the
                // session breaking mid-upload) drops `file`, which removes
                // its temporary file.
                let mut file = RelPath::new(path).and_then(|p| NewFile::create(roots, &p, mode));
                let (_, failed) = receive(&mut self.reader, size, &mut |chunk| match &mut file {
                    Ok(f) => f.write(chunk),
                    Err(_) => Ok(()),
                })?;
                Ok(match (file, failed) {
                    (Ok(f), None) if no_fsync => f
                        .finish_unsynced(size, mode, mtime)
                        .map(|()| Summary::default()),
                    (Ok(f), None) => f.finish(size, mode, mtime).map(|()| Summary::default()),
                    (Ok(_), Some(e)) | (Err(e), _) => Err(e),
                })
            }
            Message::Mkdir { path, mode } => {
                done(RelPath::new(path).and_then(|p| local::mkdir(roots, &p, mode)))
            }
            Message::Symlink { path, target } => {
                done(RelPath::new(path).and_then(|p| local::symlink(roots, &p, &target)))
            }
            Message::Remove { path } => {
                done(RelPath::new(path).and_then(|p| local::remove(roots, &p).map(|_| ())))
            }
            Message::Fsync { path, filesystem } => done(RelPath::new(path).and_then(|p| {
                if filesystem {
                    local::syncfs(roots, &p)
                } else {
                    local::fsync(roots, &p)
                }
            })),
        }
    }

    fn list(&mut self, tree: &str, exclusions: &crate::Exclusions) -> Result<Summary> {
        let entries = local::list(&self.roots, tree, exclusions)?;
        let mut batch = Vec::with_capacity(CHUNK + 4096);
        for entry in &entries {
            serde_json::to_writer(&mut batch, entry)
                .map_err(|e| Error::Protocol(format!("cannot encode an entry: {e}")))?;
            batch.push(b'\n');
            if batch.len() >= CHUNK {
                self.writer.data_frame(&[&batch])?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            self.writer.data_frame(&[&batch])?;
        }
        Ok(Summary {
            entries: Some(entries.len() as u64),
            ..Summary::default()
        })
    }

    fn read(&mut self, path: &str, offset: u64, length: Option<u64>) -> Result<Summary> {
        let path = RelPath::new(path)?;
        let writer = &mut self.writer;
        let size = local::read_file(&self.roots, &path, offset, length, &mut |chunk| {
            writer.data_frame(&[chunk])
        })?;
        Ok(Summary {
            size: Some(size),
            ..Summary::default()
        })
    }

    fn changed_pages(&mut self, path: &str, pages: u64) -> Outcome {
        if pages > MAX_PREVIOUS_PAGES {
            return Err(Error::Protocol(format!(
                "{pages} page fingerprints exceed the limit of {MAX_PREVIOUS_PAGES}"
            )));
        }
        let bytes = receive_exactly(&mut self.reader, pages * 16, "page fingerprints")?;
        let previous = PageHashes::from_bytes(&bytes)
            .ok_or_else(|| Error::Protocol("bad page fingerprints".into()))?;
        let writer = &mut self.writer;
        let result = RelPath::new(path).and_then(|path| {
            local::changed_pages(&self.roots, &path, &previous, &mut |chunk| {
                let PageChunk::Pages { first, data } = chunk;
                writer.data_frame(&[&first.to_be_bytes(), data])
            })
        });
        Ok(result.map(|end| Summary {
            size: Some(end.size),
            pages_sent: Some(end.pages_sent),
            ..Summary::default()
        }))
    }

    fn rsync_delta(&mut self, path: &str, signature_len: u64) -> Outcome {
        if signature_len > MAX_SIGNATURE {
            return Err(Error::Protocol(format!(
                "a signature of {signature_len} bytes exceeds the limit of {MAX_SIGNATURE}"
            )));
        }
        let signature = receive_exactly(&mut self.reader, signature_len, "signature")?;
        let writer = &mut self.writer;
        let result = RelPath::new(path).and_then(|path| {
            local::rsync_delta(&self.roots, &path, &signature, &mut |chunk| {
                writer.data_frame(&[chunk])
            })
        });
        Ok(result.map(|(delta, _)| Summary {
            size: Some(delta),
            ..Summary::default()
        }))
    }
}

/// Reads a request's data frames into memory: exactly `len` bytes (at most
/// [`MAX_SIGNATURE`] or [`MAX_PREVIOUS_PAGES`] fingerprints: the callers
/// check `len` first), or the session breaks.
fn receive_exactly<R: Read>(reader: &mut FrameReader<R>, len: u64, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let (got, _) = receive(reader, len, &mut |chunk| {
        bytes.extend_from_slice(chunk);
        Ok(())
    })?;
    if got != len {
        return Err(Error::Protocol(format!(
            "announced {len} bytes of {what}, received {got}"
        )));
    }
    Ok(bytes)
}

/// Reads a request's data frames up to its `end` frame, passing each to
/// `on_chunk` (after its first error, data is read and dropped). Returns the
/// bytes received and `on_chunk`'s first error, or the client's own error
/// when it aborted the request with an `error` frame. More than `limit`
/// bytes, or a frame of another kind, breaks the session.
fn receive<R: Read>(
    reader: &mut FrameReader<R>,
    limit: u64,
    on_chunk: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<(u64, Option<Error>)> {
    let mut total = 0u64;
    let mut failed = None;
    loop {
        let frame = reader.next_frame()?.ok_or_else(|| {
            Error::Session("the client closed the session in the middle of a request".into())
        })?;
        match frame.kind {
            FrameKind::Data => {
                total += frame.payload.len() as u64;
                if total > limit {
                    return Err(Error::Protocol(format!(
                        "the client sent more than the {limit} bytes it announced"
                    )));
                }
                if failed.is_none()
                    && let Err(e) = on_chunk(frame.payload)
                {
                    failed = Some(e);
                }
            }
            FrameKind::End => return Ok((total, failed)),
            FrameKind::Error => {
                let reply: ErrorReply = frame.json()?;
                let aborted = Error::Agent(format!("aborted by the client: {}", reply.message));
                return Ok((total, Some(failed.unwrap_or(aborted))));
            }
            FrameKind::Message | FrameKind::Zdata => {
                return Err(Error::Protocol(
                    "a request arrived before the previous one's data ended".into(),
                ));
            }
        }
    }
}
