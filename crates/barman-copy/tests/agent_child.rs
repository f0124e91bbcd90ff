//! Agents as child processes that misbehave: the client reports what
//! happened, quickly, without hanging or panicking.

use std::process::Command;
use std::time::{Duration, Instant};

use barman_copy::protocol::{FrameKind, FrameWriter, Message, VERSION};
use barman_copy::remote::ssh_command;
use barman_copy::{AgentFactory, AgentSource, Error, RelPath, Roots, Source, SourceFactory};

fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.arg("-c").arg(script);
    command
}

fn roots() -> Roots {
    Roots::from([("data".to_owned(), "/nonexistent".into())])
}

/// Opens a session with `command` and reads a file; the first error.
fn first_error(command: Command) -> Error {
    let started = Instant::now();
    let result = AgentSource::spawn(command, &roots(), false).and_then(|mut source| {
        source.read(&RelPath::new("data/x").unwrap(), &mut |_| Ok(()))?;
        Ok(source)
    });
    let err = result.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    err
}

#[test]
fn agent_killed_mid_stream_is_a_session_error() {
    let dir = tempfile::tempdir().unwrap();
    let reply = dir.path().join("reply");
    let mut bytes = Vec::new();
    let mut writer = FrameWriter::new(&mut bytes);
    writer
        .message(&Message::Welcome {
            version: VERSION,
            capabilities: vec![],
            compress: false,
        })
        .unwrap();
    // A data frame announcing 1 MiB, of which 100 bytes arrive.
    writer.flush().unwrap();
    drop(writer);
    bytes.extend_from_slice(&[FrameKind::Data.byte(), 0, 0x10, 0, 0]);
    bytes.extend_from_slice(&[0u8; 100]);
    std::fs::write(&reply, bytes).unwrap();
    let script = format!(
        "cat '{}'; echo 'agent: disk on fire' >&2; sleep 0.5; kill -9 $$",
        reply.display()
    );
    let err = first_error(sh(&script));
    let text = err.to_string();
    assert!(matches!(err, Error::Session(_)), "{text}");
    assert!(text.contains("agent exited"), "{text}");
    assert!(
        text.contains("SIGKILL") || text.contains("signal: 9"),
        "{text}"
    );
    assert!(text.contains("disk on fire"), "{text}");
}

#[test]
fn agent_that_exits_at_once_is_a_session_error() {
    let err = first_error(sh("echo 'barman: command not found' >&2; exit 127"));
    let text = err.to_string();
    assert!(matches!(err, Error::Session(_)), "{text}");
    assert!(text.contains("exit status: 127"), "{text}");
    assert!(text.contains("command not found"), "{text}");
}

#[test]
fn garbage_from_the_agent_is_a_protocol_error() {
    let err = first_error(sh("head -c 100 /dev/zero"));
    assert!(
        matches!(&err, Error::Protocol(m) if m.contains("frame should start")),
        "{err}"
    );
    // A login banner on stdout, and an agent that would never stop talking.
    let err = first_error(sh("echo 'Last login: yesterday'; exec cat /dev/zero"));
    assert!(
        matches!(&err, Error::Protocol(m) if m.contains("Last")),
        "{err}"
    );
}

#[test]
fn missing_program_is_a_session_error() {
    let err = first_error(Command::new("/nonexistent/barman-agent"));
    assert!(
        matches!(&err, Error::Session(m) if m.contains("cannot start")),
        "{err}"
    );
}

#[test]
fn factory_opens_one_child_per_session() {
    let factory = AgentFactory::new(|| sh("exit 3"), roots(), true);
    for _ in 0..2 {
        let Err(err) = factory.open() else {
            panic!("opened")
        };
        assert!(err.to_string().contains("exit status: 3"), "{err}");
    }
    assert!(format!("{factory:?}").contains("exit 3"));
}

#[test]
fn ssh_command_passes_the_remote_command_as_one_argument() {
    let output = ssh_command("printf '[%s]' -q", "barman agent --flag")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "[-q][barman agent --flag]"
    );
}
