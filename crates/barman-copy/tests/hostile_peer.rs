//! A peer that lies or stalls (issue 18, items 3, 4 and 7): listings
//! outside the requested trees, roots that are links, setuid files, an
//! agent that stops answering, endless stderr. The client fails the
//! session with a clear error, in bounded time and memory.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use barman_copy::protocol::{FrameReader, FrameWriter, Message, Summary, VERSION};
use barman_copy::remote::with_ssh_keepalive;
use barman_copy::{
    AgentSource, CopyPlan, Entry, EntryKind, Error, Exclusions, ExecOptions, LocalFactory, Mtime,
    NoProgress, PlanOptions, RelPath, Roots, SessionOptions, Source, execute, serve,
};

/// Runs `f` in a thread; its result, or a panic naming `what` after
/// `limit` (a hang on broken code fails instead of blocking the suite).
fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what}: no result within {limit:?}"))
}

/// An agent's `welcome` frame (version 1, no compression).
fn welcome() -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = FrameWriter::new(&mut bytes);
    writer
        .message(&Message::Welcome {
            version: VERSION,
            capabilities: vec![],
            compress: false,
        })
        .unwrap();
    writer.flush().unwrap();
    drop(writer);
    bytes
}

/// A hostile agent in a thread: answers the handshake, then sends `reply`
/// (frames) to the first request.
fn lying_agent(reply: Vec<u8>) -> AgentSource {
    let (agent_in, client_out) = std::io::pipe().unwrap();
    let (client_in, mut agent_out) = std::io::pipe().unwrap();
    std::thread::spawn(move || {
        let mut reader = FrameReader::new(agent_in);
        let _hello = reader.next_frame();
        let _ = std::io::Write::write_all(&mut agent_out, &welcome());
        let _request = reader.next_frame();
        let _ = std::io::Write::write_all(&mut agent_out, &reply);
        // Keep the pipes open until the client is done.
        while let Ok(Some(_)) = reader.next_frame() {}
    });
    let roots = Roots::from([("data".to_owned(), "/nonexistent".into())]);
    AgentSource::over(client_in, client_out, &roots, false).unwrap()
}

fn entry(path: &str, kind: EntryKind) -> Entry {
    Entry {
        path: RelPath::new(path).unwrap(),
        kind,
        size: 0,
        mtime: Mtime::default(),
        mode: 0o700,
    }
}

/// A list reply holding `entries`, with a matching count.
fn list_reply(entries: &[Entry]) -> Vec<u8> {
    let mut lines = Vec::new();
    for e in entries {
        serde_json::to_writer(&mut lines, e).unwrap();
        lines.push(b'\n');
    }
    let mut bytes = Vec::new();
    let mut writer = FrameWriter::new(&mut bytes);
    writer.data_frame(&[&lines]).unwrap();
    writer
        .end(&Summary {
            entries: Some(entries.len() as u64),
            ..Summary::default()
        })
        .unwrap();
    writer.flush().unwrap();
    drop(writer);
    bytes
}

#[test]
fn a_listing_with_entries_outside_the_requested_tree_is_refused() {
    let mut source = lying_agent(list_reply(&[
        entry("data", EntryKind::Dir),
        entry("data/base", EntryKind::Dir),
        entry("backup/backup.info", EntryKind::File),
    ]));
    let err = source.list("data", &Exclusions::none()).unwrap_err();
    assert!(
        matches!(&err, Error::Protocol(m) if m.contains("`backup/backup.info`") && m.contains("outside the requested tree `data`")),
        "{err}"
    );
    // The session is broken: nothing more is asked of that peer.
    assert!(source.list("data", &Exclusions::none()).is_err());
}

#[test]
fn a_listing_whose_root_is_a_link_is_refused() {
    let mut source = lying_agent(list_reply(&[
        entry(
            "data",
            EntryKind::Symlink {
                target: "/etc".into(),
            },
        ),
        entry("data/passwd", EntryKind::File),
    ]));
    let err = source.list("data", &Exclusions::none()).unwrap_err();
    assert!(
        matches!(&err, Error::Protocol(m) if m.contains("root of tree `data`")),
        "{err}"
    );
}

/// The agent refuses a root that is a symbolic link when the client asks
/// (a passive node: a backup directory is never a link); without the ask a
/// linked root is followed, as a PGDATA that is a link must be.
#[test]
fn root_links_are_refused_when_the_client_asks() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("elsewhere");
    fs::create_dir(&real).unwrap();
    fs::write(real.join("PG_VERSION"), b"15\n").unwrap();
    let link = dir.path().join("data");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let roots = Roots::from([("data".to_owned(), link.clone())]);
    let open = |no_root_links: bool| {
        let (agent_in, client_out) = std::io::pipe().unwrap();
        let (client_in, agent_out) = std::io::pipe().unwrap();
        std::thread::spawn(move || serve(agent_in, agent_out));
        let options = SessionOptions {
            no_root_links,
            ..SessionOptions::default()
        };
        AgentSource::over_with(client_in, client_out, &roots, &options)
    };
    let err = open(true).unwrap_err();
    assert!(
        matches!(&err, Error::UnsafePath { path, reason } if path.contains("data") && *reason == "a root must not be a symbolic link"),
        "{err}"
    );
    let mut source = open(false).unwrap();
    let listed = source.list("data", &Exclusions::none()).unwrap();
    assert!(listed.iter().any(|e| e.path.as_str() == "data/PG_VERSION"));
}

/// A plan (from a listing or a manifest) whose tree root is a link is
/// refused before anything is written; a setuid/setgid file is copied
/// without those bits.
#[test]
fn the_executor_refuses_a_root_link_and_drops_setuid_bits() {
    let src = tempfile::tempdir().unwrap();
    let data = src.path().join("data");
    fs::create_dir(&data).unwrap();
    let tool = data.join("tool");
    fs::write(&tool, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o6755)).unwrap();
    let roots = Roots::from([("data".to_owned(), data.clone())]);
    let sources = LocalFactory::new(roots);
    let cancel = AtomicBool::new(false);
    let options = ExecOptions::default();

    let dest = tempfile::tempdir().unwrap();
    let linked = CopyPlan::compute(
        None,
        &[entry(
            "data",
            EntryKind::Symlink {
                target: "/etc".into(),
            },
        )],
        &PlanOptions::default(),
    );
    let err = execute(
        &linked,
        &sources,
        dest.path(),
        &options,
        &NoProgress,
        &cancel,
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::UnsafePath { path, reason } if path == "data" && reason.contains("tree root")),
        "{err}"
    );
    assert!(!dest.path().join("data").exists());

    let listing = barman_copy::listing::list_tree(&data, "data", &Exclusions::none()).unwrap();
    let listed = listing
        .iter()
        .find(|e| e.path.as_str() == "data/tool")
        .unwrap();
    assert_eq!(listed.mode, 0o6755);
    let plan = CopyPlan::compute(None, &listing, &PlanOptions::default());
    let report = execute(&plan, &sources, dest.path(), &options, &NoProgress, &cancel).unwrap();
    let mode = fs::metadata(dest.path().join("data/tool"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o755, "copied as {mode:o}");
    let recorded = report
        .manifest
        .get(&RelPath::new("data/tool").unwrap())
        .unwrap();
    assert_eq!(recorded.mode, 0o755);
}

fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.arg("-c").arg(script);
    command
}

/// A welcome frame in a file, for `cat` in a child's script.
fn welcome_file(dir: &Path) -> String {
    let path = dir.join("welcome");
    fs::write(&path, welcome()).unwrap();
    path.display().to_string()
}

fn timed(seconds: u64) -> SessionOptions {
    SessionOptions {
        timeout: Some(Duration::from_secs(seconds)),
        ..SessionOptions::default()
    }
}

/// An agent that answers the handshake and then never again (stopped,
/// or its connection stalled): the read fails after the inactivity
/// timeout, naming it, and the child is killed.
#[test]
fn an_agent_that_stops_answering_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let welcome = welcome_file(dir.path());
    let pid_file = dir.path().join("pid");
    let script = format!(
        "echo $$ > '{}'; cat '{welcome}'; exec sleep 600",
        pid_file.display()
    );
    let started = Instant::now();
    let err = within(
        "a read from a silent agent",
        Duration::from_secs(60),
        move || {
            let roots = Roots::from([("data".to_owned(), "/nonexistent".into())]);
            let mut source = AgentSource::spawn_with(sh(&script), &roots, &timed(2)).unwrap();
            source
                .read(&RelPath::new("data/x").unwrap(), &mut |_| Ok(()))
                .unwrap_err()
        },
    );
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(matches!(err, Error::Session(_)), "{text}");
    assert!(
        text.contains("agent_timeout") && text.contains("killed"),
        "{text}"
    );
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    let pid = fs::read_to_string(&pid_file).unwrap();
    let alive = Path::new("/proc").join(pid.trim()).join("stat");
    let deadline = Instant::now() + Duration::from_secs(10);
    // Killed and reaped: gone from /proc.
    while alive.exists() {
        assert!(Instant::now() < deadline, "the agent {pid} still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An agent that stops reading (a restore's upload fills the pipe): the
/// write fails after the inactivity timeout.
#[test]
fn an_agent_that_stops_reading_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let welcome = welcome_file(dir.path());
    let script = format!("cat '{welcome}'; exec sleep 600");
    let started = Instant::now();
    let err = within(
        "an upload to a stalled agent",
        Duration::from_secs(60),
        move || {
            let roots = Roots::from([("data".to_owned(), "/nonexistent".into())]);
            let mut session = AgentSource::spawn_with(sh(&script), &roots, &timed(2)).unwrap();
            let data = vec![0u8; 16 << 20];
            session
                .write_file(
                    &RelPath::new("data/big").unwrap(),
                    barman_copy::FileMeta {
                        size: data.len() as u64,
                        mode: 0o600,
                        mtime: Mtime::default(),
                    },
                    &mut data.as_slice(),
                )
                .unwrap_err()
        },
    );
    let text = err.to_string();
    assert!(text.contains("agent_timeout"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// A child session without a timeout still works (and a slow but living
/// agent is not cut off: time between bytes is what counts).
#[test]
fn a_slow_agent_within_the_timeout_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let welcome = welcome_file(dir.path());
    let mut bytes = Vec::new();
    let mut writer = FrameWriter::new(&mut bytes);
    writer.data(b"hello").unwrap();
    writer
        .end(&Summary {
            size: Some(5),
            ..Summary::default()
        })
        .unwrap();
    writer.flush().unwrap();
    drop(writer);
    let reply = dir.path().join("reply");
    fs::write(&reply, bytes).unwrap();
    // Three seconds in all, never two in a row without a byte.
    let script = format!(
        "cat '{welcome}'; sleep 1; head -c 3 '{r}'; sleep 1; tail -c +4 '{r}'; sleep 1; exec cat >/dev/null",
        r = reply.display()
    );
    let got = within("a slow agent", Duration::from_secs(60), move || {
        let roots = Roots::from([("data".to_owned(), "/nonexistent".into())]);
        let mut source = AgentSource::spawn_with(sh(&script), &roots, &timed(2)).unwrap();
        let mut got = Vec::new();
        source
            .read(&RelPath::new("data/x").unwrap(), &mut |d| {
                got.extend_from_slice(d);
                Ok(())
            })
            .unwrap();
        got
    });
    assert_eq!(got, b"hello");
}

/// 20 MB of stderr without a newline: the error quotes a bounded tail.
#[test]
fn agent_stderr_lines_are_bounded() {
    let script = "head -c 20000000 /dev/zero | tr '\\0' x >&2; printf '\\nagent: the last words\\n' >&2; exit 3";
    let err = within(
        "an agent with endless stderr",
        Duration::from_secs(120),
        move || {
            let roots = Roots::from([("data".to_owned(), "/nonexistent".into())]);
            AgentSource::spawn(sh(script), &roots, false).unwrap_err()
        },
    );
    let text = err.to_string();
    assert!(
        text.contains("exit status: 3"),
        "{}",
        &text[..text.len().min(300)]
    );
    assert!(
        text.contains("the last words"),
        "{} … {}",
        &text[..text.len().min(300)],
        &text[text.len().saturating_sub(300)..]
    );
    assert!(text.len() < 64 * 1024, "an error of {} bytes", text.len());
}

#[test]
fn keepalives_are_added_to_plain_ssh_commands_only() {
    assert_eq!(
        with_ssh_keepalive("ssh -q postgres@pg"),
        "ssh -q postgres@pg -o ServerAliveInterval=30 -o ServerAliveCountMax=4"
    );
    assert!(with_ssh_keepalive("/usr/bin/ssh -p 2222 pg").ends_with("ServerAliveCountMax=4"));
    for other in [
        "sudo -u barman ssh pg",
        "ssh pg -- ",
        "ssh pg; rm -rf /",
        "ssh -o 'ProxyCommand=nc %h %p' pg # comment",
        "myssh pg",
    ] {
        assert_eq!(with_ssh_keepalive(other), other);
    }
    // ssh keeps the first value of an option: the user's wins.
    let out = Command::new("ssh")
        .args(["-G", "-o", "ServerAliveInterval=7", "u@h"])
        .args(with_ssh_keepalive("ssh").split_whitespace().skip(1))
        .output()
        .unwrap();
    let config = String::from_utf8_lossy(&out.stdout);
    assert!(config.contains("serveraliveinterval 7"), "{config}");
    assert!(config.contains("serveralivecountmax 4"), "{config}");
}
