//! A hostile `barman agent` for the end-to-end tests: it proxies the real
//! agent given on its command line and adds one entry to the first listing
//! it relays (a compromised primary or PostgreSQL host would), with the
//! listing's entry count raised to match.
//!
//! `hostile_agent PATH SIZE COMMAND [ARGS...]`: runs `COMMAND ARGS`, relays
//! the session both ways, and appends a file entry `PATH` of `SIZE` bytes
//! to the first `list` reply. Compression is turned off in the client's `hello`
//! so that the replies can be read. The exit status is the agent's.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Condvar, Mutex};

use barman_copy::protocol::{FrameKind, FrameReader, FrameWriter, Message, Summary};

/// Whether each request in flight is a `list`, oldest first.
#[derive(Default)]
struct InFlight {
    queue: Mutex<(VecDeque<bool>, bool)>,
    ready: Condvar,
}

impl InFlight {
    fn push(&self, is_list: bool) {
        let mut state = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.0.push_back(is_list);
        self.ready.notify_all();
    }

    fn close(&self) {
        let mut state = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.1 = true;
        self.ready.notify_all();
    }

    /// The kind of the oldest request without a reply (`None` once the
    /// client is gone and nothing is in flight).
    fn pop(&self) -> Option<bool> {
        let mut state = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(is_list) = state.0.pop_front() {
                return Some(is_list);
            }
            if state.1 {
                return None;
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// Client → agent: every frame as is, but `hello` without compression.
fn relay_requests(
    input: impl Read,
    output: impl Write,
    in_flight: &InFlight,
) -> Result<(), String> {
    let mut reader = FrameReader::new(input);
    let mut writer = FrameWriter::new(output);
    while let Some(frame) = reader.next_frame().map_err(|e| e.to_string())? {
        if frame.kind == FrameKind::Message {
            let message: Message = frame.json().map_err(|e| e.to_string())?;
            let message = match message {
                Message::Hello {
                    magic,
                    version,
                    capabilities,
                    roots,
                    no_root_links,
                    ..
                } => Message::Hello {
                    magic,
                    version,
                    capabilities,
                    roots,
                    compress: false,
                    no_root_links,
                },
                other => {
                    in_flight.push(matches!(other, Message::List { .. }));
                    other
                }
            };
            writer.message(&message).map_err(|e| e.to_string())?;
        } else {
            writer
                .frame(frame.kind, frame.payload)
                .map_err(|e| e.to_string())?;
        }
        writer.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Agent → client: the welcome, then each reply; the first `list` reply
/// gets the extra entry before its `end`.
fn relay_replies(
    input: impl Read,
    output: impl Write,
    in_flight: &InFlight,
    extra: &[u8],
) -> Result<(), String> {
    let mut reader = FrameReader::new(input);
    let mut writer = FrameWriter::new(output);
    let mut welcome = true;
    let mut injected = false;
    let mut current: Option<bool> = None;
    while let Some(frame) = reader.next_frame().map_err(|e| e.to_string())? {
        if welcome {
            welcome = false;
            writer
                .frame(frame.kind, frame.payload)
                .map_err(|e| e.to_string())?;
            writer.flush().map_err(|e| e.to_string())?;
            continue;
        }
        let is_list = *current.get_or_insert_with(|| in_flight.pop().unwrap_or(false));
        match frame.kind {
            FrameKind::End if is_list && !injected => {
                injected = true;
                let mut summary: Summary = frame.json().map_err(|e| e.to_string())?;
                summary.entries = summary.entries.map(|n| n + 1);
                writer.data_frame(&[extra]).map_err(|e| e.to_string())?;
                writer.end(&summary).map_err(|e| e.to_string())?;
                current = None;
            }
            FrameKind::End | FrameKind::Error => {
                writer
                    .frame(frame.kind, frame.payload)
                    .map_err(|e| e.to_string())?;
                current = None;
            }
            _ => writer
                .frame(frame.kind, frame.payload)
                .map_err(|e| e.to_string())?,
        }
        writer.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, size, command, rest @ ..] = args.as_slice() else {
        let _ = writeln!(
            std::io::stderr(),
            "usage: hostile_agent PATH SIZE COMMAND [ARGS...]"
        );
        return ExitCode::from(2);
    };
    let extra = format!(
        "{{\"path\":{},\"type\":\"file\",\"size\":{size},\"mtime\":{{\"secs\":0,\"nanos\":0}},\"mode\":384}}\n",
        serde_json::Value::from(path.as_str())
    );
    let mut child = match Command::new(command)
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "hostile_agent: cannot run {command}: {e}"
            );
            return ExitCode::from(2);
        }
    };
    let (Some(agent_in), Some(agent_out)) = (child.stdin.take(), child.stdout.take()) else {
        return ExitCode::from(2);
    };
    let in_flight = Arc::new(InFlight::default());
    let requests = {
        let in_flight = Arc::clone(&in_flight);
        std::thread::spawn(move || {
            let result = relay_requests(std::io::stdin().lock(), agent_in, &in_flight);
            in_flight.close();
            result
        })
    };
    let replies = relay_replies(
        agent_out,
        std::io::stdout().lock(),
        &in_flight,
        extra.as_bytes(),
    );
    let requests = requests
        .join()
        .unwrap_or_else(|_| Err("relay panicked".into()));
    for e in [requests.err(), replies.err()].into_iter().flatten() {
        let _ = writeln!(std::io::stderr(), "hostile_agent: {e}");
    }
    match child.wait() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
