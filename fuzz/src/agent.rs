//! The agent protocol, both ways: what a client reads from an agent
//! ([`agent_client`]) and what an agent reads from a client
//! ([`agent_serve`]).

use std::io::{self, Cursor};
use std::path::{Component, Path, PathBuf};

use barman_copy::hash::{PageHash, PageHashes};
use barman_copy::protocol::{ErrorReply, FrameReader, FrameWriter, Message, Summary};
use barman_copy::{AgentSource, Entry, Exclusions, Mtime, RelPath, Roots, Source};

/// Bytes an agent sends to a client. The first byte chooses the mode: bit 0
/// clear, the frames are read with [`FrameReader`] and every payload is
/// decoded as each JSON type of the protocol (messages are re-encoded and
/// must read back equal); bit 0 set, they are the replies of an agent to
/// an [`AgentSource`] that makes one request of each kind. Bit 1 enables
/// zstd frames.
pub fn agent_client(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let compressed = mode & 2 != 0;
    if mode & 1 == 0 {
        frames(rest, compressed);
    } else {
        client_session(rest, compressed);
    }
}

fn frames(data: &[u8], compressed: bool) {
    let mut reader = FrameReader::new(data);
    if compressed {
        reader.allow_compressed().expect("a zstd decompressor");
    }
    while let Ok(Some(frame)) = reader.next_frame() {
        if let Ok(message) = frame.json::<Message>() {
            message_round_trip(&message);
        }
        let _ = frame.json::<Summary>();
        if let Ok(reply) = frame.json::<ErrorReply>() {
            let _ = reply.into_error().to_string();
        }
        for line in frame.payload.split(|b| *b == b'\n') {
            let _ = serde_json::from_slice::<Entry>(line);
        }
    }
}

/// A decoded message encodes to a frame that decodes to the same message.
fn message_round_trip(message: &Message) {
    let mut bytes = Vec::new();
    let mut writer = FrameWriter::new(&mut bytes);
    writer.message(message).expect("encode a decoded message");
    writer.flush().expect("flush into memory");
    drop(writer);
    let mut reader = FrameReader::new(&bytes[..]);
    let frame = reader
        .next_frame()
        .expect("read back a frame")
        .expect("a frame");
    let again: Message = frame.json().expect("decode a re-encoded message");
    assert_eq!(&again, message, "a message changes through encoding");
}

fn client_session(data: &[u8], compress: bool) {
    let roots = Roots::from([("data".to_owned(), PathBuf::from("/nonexistent/data"))]);
    if let Ok(mut source) =
        AgentSource::over(Cursor::new(data.to_vec()), io::sink(), &roots, compress)
    {
        client_requests(&mut source);
    }
}

/// The requests [`agent_client`] makes in its session mode: one of each
/// kind on tree `data` (public so that the seed corpus is recorded from a
/// real agent answering the same requests).
pub fn client_requests(source: &mut AgentSource) {
    let file = RelPath::new("data/base/1/112").expect("a valid path");
    let other = RelPath::new("data/base/1/113").expect("a valid path");
    let dir = RelPath::new("data/base/2").expect("a valid path");
    let mut ignore = |_: &[u8]| Ok(());
    let _ = source.list("data", &Exclusions::postgres_default());
    let _ = source.read(&file, &mut ignore);
    let _ = source.read_range(&file, 10, Some(50), &mut ignore);
    source.read_ahead(&[&file, &other]);
    let _ = source.read(&other, &mut ignore);
    let previous = PageHashes(vec![PageHash::of(&[0; 8192])]);
    let _ = source.changed_pages(&file, &previous, &mut |_| Ok(()));
    let _ = source.rsync_delta(&file, b"not a signature", &mut ignore);
    let mtime = Mtime {
        secs: 1_700_000_000,
        nanos: 0,
    };
    let meta = barman_copy::FileMeta {
        size: 3,
        mode: 0o600,
        mtime,
    };
    let _ = source.write_file(&other, meta, &mut &b"abc"[..]);
    let _ = source.mkdir(&dir, 0o700);
    let _ = source.symlink(&other, "112");
    let _ = source.remove(&other);
    let _ = source.fsync(&dir);
    let _ = source.syncfs(&dir);
    let _ = source.list("data", &Exclusions::none());
}

/// Bytes a client sends to an agent ([`barman_copy::serve`]), served in a
/// fresh sandbox directory holding a small data directory (tree `data`).
///
/// The input is confined before it is served: the roots of a `hello`
/// become directories of the sandbox (`trees/<name>`; a relative root stays
/// relative, the agent must refuse it) and a `symlink` to an absolute path
/// or through `..` points to `confined` instead, so that nothing the agent
/// does with the fuzzer's requests reaches outside the sandbox. Everything
/// else (frame kinds, lengths, the other messages, data) is served as is.
pub fn agent_serve(data: &[u8]) {
    let sandbox = crate::sandbox();
    let trees = sandbox.path().join("trees");
    populate_data_dir(&trees.join("data")).expect("populate the sandbox");
    let input = confine(data, &trees);
    let _ = barman_copy::serve(Cursor::new(input), io::sink());
}

/// Creates the small data directory [`agent_serve`] serves: a (short)
/// relation file, a version file, a control file and a link.
pub fn populate_data_dir(data: &Path) -> io::Result<()> {
    std::fs::create_dir_all(data.join("base/1"))?;
    std::fs::create_dir_all(data.join("global"))?;
    std::fs::write(data.join("base/1/112"), [7u8; 100])?;
    std::fs::write(data.join("PG_VERSION"), "15\n")?;
    std::fs::write(data.join("global/pg_control"), [1u8; 512])?;
    std::os::unix::fs::symlink("base", data.join("link"))
}

/// Rewrites the `hello` and `symlink` messages of a frame stream (see
/// [`agent_serve`]); the rest is copied byte for byte, a truncated last
/// frame included.
fn confine(data: &[u8], trees: &Path) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 256);
    let mut rest = data;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let end = 5 + len.min(rest.len() - 5);
        let rewritten = (rest[0] == b'M' && end == 5 + len)
            .then(|| confined_message(&rest[5..end], trees))
            .flatten();
        match rewritten {
            Some(payload) => {
                out.push(b'M');
                let len = u32::try_from(payload.len()).expect("a small message");
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&payload);
            }
            None => out.extend_from_slice(&rest[..end]),
        }
        rest = &rest[end..];
    }
    out.extend_from_slice(rest);
    out
}

/// The confined JSON of a `hello` or `symlink` message; `None` for anything
/// else.
fn confined_message(payload: &[u8], trees: &Path) -> Option<Vec<u8>> {
    let mut message = serde_json::from_slice::<Message>(payload).ok()?;
    match &mut message {
        Message::Hello { roots, .. } => {
            for (name, root) in roots.iter_mut() {
                *root = if !root.is_absolute() {
                    PathBuf::from("relative-root")
                } else if is_one_component(name) {
                    trees.join(name)
                } else {
                    trees.join("invalid-name")
                };
            }
        }
        Message::Symlink { target, .. } => {
            let escapes = Path::new(target.as_str())
                .components()
                .any(|c| matches!(c, Component::RootDir | Component::ParentDir));
            if escapes {
                "confined".clone_into(target);
            }
        }
        _ => return None,
    }
    serde_json::to_vec(&message).ok()
}

fn is_one_component(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
        && name.chars().all(|c| !c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confine_rewrites_roots_and_escaping_links_only() {
        let hello = Message::Hello {
            magic: "BARMANRS-AGENT".into(),
            version: 1,
            capabilities: vec![],
            roots: Roots::from([
                ("data".to_owned(), PathBuf::from("/")),
                ("rel".to_owned(), PathBuf::from("x")),
            ]),
            compress: false,
            no_root_links: false,
        };
        let link = |target: &str| Message::Symlink {
            path: "data/l".into(),
            target: target.into(),
        };
        let mut stream = Vec::new();
        let mut writer = FrameWriter::new(&mut stream);
        for m in [&hello, &link("/etc"), &link("a/../../b"), &link("base")] {
            writer.message(m).unwrap();
        }
        writer.flush().unwrap();
        drop(writer);
        stream.extend_from_slice(b"D\0\0\0\x20truncated");
        let out = confine(&stream, Path::new("/sandbox/trees"));
        let mut reader = FrameReader::new(&out[..]);
        let mut messages = Vec::new();
        while let Ok(Some(frame)) = reader.next_frame() {
            messages.push(frame.json::<Message>().unwrap());
        }
        let Message::Hello { roots, .. } = &messages[0] else {
            panic!("{messages:?}");
        };
        assert_eq!(roots["data"], Path::new("/sandbox/trees/data"));
        assert_eq!(roots["rel"], Path::new("relative-root"));
        assert_eq!(messages[1], link("confined"));
        assert_eq!(messages[2], link("confined"));
        assert_eq!(messages[3], link("base"));
        assert!(out.ends_with(b"D\0\0\0\x20truncated"));
    }
}
