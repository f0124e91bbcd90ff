//! Bad input on the wire: the agent answers with clear errors and never
//! panics; the client refuses a mismatched agent.

use std::collections::BTreeMap;

use barman_copy::protocol::{
    ErrorKind, ErrorReply, FrameKind, FrameReader, FrameWriter, MAGIC, Message, Summary, VERSION,
};
use barman_copy::{AgentSource, Error, Roots, serve};
use proptest::prelude::*;

fn hello(version: u32, magic: &str, roots: &Roots) -> Message {
    Message::Hello {
        magic: magic.to_owned(),
        version,
        capabilities: vec![],
        roots: roots.clone(),
        compress: false,
        no_root_links: false,
    }
}

/// Frames as bytes.
fn frames(build: impl FnOnce(&mut FrameWriter<&mut Vec<u8>>)) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = FrameWriter::new(&mut bytes);
    build(&mut writer);
    writer.flush().unwrap();
    drop(writer);
    bytes
}

/// Runs the agent on `input`; its result and the frames it wrote.
fn run(input: &[u8]) -> (barman_copy::Result<()>, Vec<(FrameKind, Vec<u8>)>) {
    let mut output = Vec::new();
    let result = serve(input, &mut output);
    let mut reader = FrameReader::new(output.as_slice());
    let mut out = Vec::new();
    while let Some(frame) = reader.next_frame().unwrap() {
        out.push((frame.kind, frame.payload.to_vec()));
    }
    (result, out)
}

fn error_reply(frame: &(FrameKind, Vec<u8>)) -> ErrorReply {
    assert_eq!(frame.0, FrameKind::Error);
    serde_json::from_slice(&frame.1).unwrap()
}

fn data_root() -> (tempfile::TempDir, Roots) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok"), b"fine").unwrap();
    let roots = Roots::from([("data".to_owned(), dir.path().to_path_buf())]);
    (dir, roots)
}

#[test]
fn empty_input_is_a_clean_end() {
    let (result, out) = run(b"");
    result.unwrap();
    assert!(out.is_empty());
}

#[test]
fn garbage_is_a_protocol_error() {
    let (result, out) = run(b"Welcome to our server!\n");
    let err = result.unwrap_err();
    assert!(
        matches!(&err, Error::Protocol(m) if m.contains("frame should start")),
        "{err}"
    );
    assert_eq!(error_reply(&out[0]).kind, ErrorKind::Protocol);
}

#[test]
fn oversized_frame_is_refused_without_reading_it() {
    let (result, _) = run(&[b'M', 0xff, 0xff, 0xff, 0xff, b'{']);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, Error::Protocol(m) if m.contains("exceeds")),
        "{err}"
    );
}

#[test]
fn wrong_magic_and_version_are_refused() {
    let (_dir, roots) = data_root();
    let (result, out) = run(&frames(|w| {
        w.message(&hello(VERSION, "RSYNCD", &roots)).unwrap();
    }));
    let err = result.unwrap_err();
    assert!(err.to_string().contains("bad magic"), "{err}");
    assert!(error_reply(&out[0]).message.contains("bad magic"));

    let (result, out) = run(&frames(|w| {
        w.message(&hello(VERSION + 1, MAGIC, &roots)).unwrap();
    }));
    let err = result.unwrap_err();
    assert!(err.to_string().contains("version mismatch"), "{err}");
    let reply = error_reply(&out[0]);
    assert_eq!(reply.kind, ErrorKind::Version);
    assert!(matches!(reply.into_error(), Error::Protocol(m) if m.contains("speaks version 1")));
}

#[test]
fn relative_roots_are_refused() {
    let roots = Roots::from([("data".to_owned(), "relative/dir".into())]);
    let (result, _) = run(&frames(|w| {
        w.message(&hello(VERSION, MAGIC, &roots)).unwrap();
    }));
    let err = result.unwrap_err();
    assert!(err.to_string().contains("absolute"), "{err}");
    let roots = Roots::from([("a/b".to_owned(), "/tmp".into())]);
    let (result, _) = run(&frames(|w| {
        w.message(&hello(VERSION, MAGIC, &roots)).unwrap();
    }));
    assert!(result.is_err());
}

#[test]
fn bad_paths_get_error_replies_and_the_session_goes_on() {
    let (_dir, roots) = data_root();
    let read = |path: &str| Message::Read {
        path: path.to_owned(),
        offset: 0,
        length: None,
    };
    let input = frames(|w| {
        w.message(&hello(VERSION, MAGIC, &roots)).unwrap();
        for path in [
            "data/../etc/passwd",
            "/etc/passwd",
            "",
            "data/./ok",
            "data/ok",
        ] {
            w.message(&read(path)).unwrap();
        }
        // Data sent with a refused write is drained, not taken for a request.
        w.message(&Message::WriteFile {
            path: "../x".into(),
            size: 3,
            mode: 0o600,
            mtime: barman_copy::Mtime::default(),
            no_fsync: false,
        })
        .unwrap();
        w.data(b"abc").unwrap();
        w.end(&Summary::default()).unwrap();
        w.message(&read("data/ok")).unwrap();
    });
    let (result, out) = run(&input);
    result.unwrap();
    assert_eq!(out[0].0, FrameKind::Message);
    for (frame, reason) in out[1..5].iter().zip([
        "`.` or `..` component",
        "absolute path",
        "empty path",
        "`.` or `..` component",
    ]) {
        let reply = error_reply(frame);
        assert_eq!(reply.kind, ErrorKind::UnsafePath);
        assert_eq!(reply.reason.as_deref(), Some(reason));
    }
    assert_eq!(out[5], (FrameKind::Data, b"fine".to_vec()));
    assert_eq!(out[6].0, FrameKind::End);
    assert_eq!(error_reply(&out[7]).kind, ErrorKind::UnsafePath);
    assert_eq!(out[8], (FrameKind::Data, b"fine".to_vec()));
    assert_eq!(out.len(), 10);
}

#[test]
fn broken_requests_end_the_session() {
    let (_dir, roots) = data_root();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "more than the",
            frames(|w| {
                w.message(&hello(VERSION, MAGIC, &roots)).unwrap();
                w.message(&Message::ChangedPages {
                    path: "data/ok".into(),
                    pages: 1,
                })
                .unwrap();
                w.data(&[0u8; 32]).unwrap();
                w.end(&Summary::default()).unwrap();
            }),
        ),
        (
            "exceed the limit",
            frames(|w| {
                w.message(&hello(VERSION, MAGIC, &roots)).unwrap();
                w.message(&Message::ChangedPages {
                    path: "data/ok".into(),
                    pages: u64::MAX / 2,
                })
                .unwrap();
            }),
        ),
        (
            "malformed",
            frames(|w| {
                w.message(&hello(VERSION, MAGIC, &roots)).unwrap();
                w.frame(FrameKind::Message, br#"{"op":"format_disk"}"#)
                    .unwrap();
            }),
        ),
        (
            "compressed frame",
            frames(|w| {
                w.message(&hello(VERSION, MAGIC, &roots)).unwrap();
                w.frame(FrameKind::Zdata, b"not zstd").unwrap();
            }),
        ),
        (
            "expected a request",
            frames(|w| {
                w.message(&hello(VERSION, MAGIC, &roots)).unwrap();
                w.data(b"stray").unwrap();
            }),
        ),
    ];
    for (expected, input) in cases {
        let (result, out) = run(&input);
        let err = result.unwrap_err();
        assert!(err.to_string().contains(expected), "{expected}: {err}");
        assert_eq!(error_reply(out.last().unwrap()).kind, ErrorKind::Protocol);
    }
    // A frame cut short ends the session without a panic.
    let mut input = frames(|w| w.message(&hello(VERSION, MAGIC, &roots)).unwrap());
    input.extend_from_slice(&[b'M', 0, 0, 1, 0, b'{']);
    let (result, _) = run(&input);
    assert!(matches!(result, Err(Error::Session(_))), "{result:?}");
}

#[test]
fn client_refuses_an_agent_of_another_version() {
    for reply in [
        Message::Welcome {
            version: VERSION + 1,
            capabilities: vec![],
            compress: false,
        },
        Message::List {
            tree: "data".into(),
            exclusions: barman_copy::protocol::ExclusionSet::None,
        },
    ] {
        let (agent_in, client_out) = std::io::pipe().unwrap();
        let (client_in, agent_out) = std::io::pipe().unwrap();
        let fake = std::thread::spawn(move || {
            let mut reader = FrameReader::new(agent_in);
            assert!(reader.next_frame().unwrap().is_some());
            let mut writer = FrameWriter::new(agent_out);
            writer.message(&reply).unwrap();
            writer.flush().unwrap();
        });
        let err = AgentSource::over(client_in, client_out, &BTreeMap::new(), false).unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err}");
        fake.join().unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Arbitrary bytes after a valid hello never panic the agent.
    #[test]
    fn arbitrary_input_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (_dir, roots) = data_root();
        let mut input = frames(|w| w.message(&hello(VERSION, MAGIC, &roots)).unwrap());
        input.extend_from_slice(&tail);
        let _ = run(&input);
    }

    /// Arbitrary frames with plausible kinds never panic the agent.
    #[test]
    fn arbitrary_frames_never_panic(
        body in proptest::collection::vec((0usize..5, proptest::collection::vec(any::<u8>(), 0..64)), 0..8)
    ) {
        let (_dir, roots) = data_root();
        let kinds = [FrameKind::Message, FrameKind::Data, FrameKind::Zdata, FrameKind::End, FrameKind::Error];
        let input = frames(|w| {
            w.message(&hello(VERSION, MAGIC, &roots)).unwrap();
            for (kind, payload) in &body {
                w.frame(kinds[*kind], payload).unwrap();
            }
        });
        let _ = run(&input);
    }
}

/// A session that dies in the middle of a `write_file` (the client gone,
/// a broken or cut frame, more bytes than announced) leaves no temporary
/// file behind, and nothing at the target.
#[test]
fn a_session_dying_mid_upload_leaves_no_temporary_file() {
    let (dir, roots) = data_root();
    let upload = |w: &mut FrameWriter<&mut Vec<u8>>| {
        w.message(&hello(VERSION, MAGIC, &roots)).unwrap();
        w.message(&Message::WriteFile {
            path: "data/base/16384".into(),
            size: 1 << 20,
            mode: 0o600,
            mtime: barman_copy::Mtime {
                secs: 1_700_000_000,
                nanos: 0,
            },
            no_fsync: false,
        })
        .unwrap();
        w.data(&vec![7u8; 64 << 10]).unwrap();
    };
    std::fs::create_dir(dir.path().join("base")).unwrap();
    let cut = {
        let mut bytes = frames(upload);
        bytes.extend_from_slice(&[FrameKind::Data.byte(), 0, 1, 0, 0, 1, 2, 3]);
        bytes
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("the client closed the session", frames(upload)),
        ("cut frame", cut),
        (
            "before the previous one's data ended",
            frames(|w| {
                upload(w);
                w.message(&Message::Remove {
                    path: "data/ok".into(),
                })
                .unwrap();
            }),
        ),
        (
            "more than the",
            frames(|w| {
                upload(w);
                for _ in 0..16 {
                    w.data(&vec![7u8; 64 << 10]).unwrap();
                }
            }),
        ),
    ];
    for (what, input) in cases {
        let (result, _) = run(&input);
        assert!(result.is_err(), "{what}: the session went on");
        let mut left: Vec<String> = std::fs::read_dir(dir.path().join("base"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert!(left.is_empty(), "{what}: left {left:?}");
        assert_eq!(std::fs::read(dir.path().join("ok")).unwrap(), b"fine");
    }
}
