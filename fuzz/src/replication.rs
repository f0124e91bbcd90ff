//! The replication protocol, as the client reads it from a server: the
//! start-up and authentication exchange, replication commands, the WAL
//! stream (CopyBoth) and `BASE_BACKUP` with its tar archives.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use barman_core::replication::{
    ArchiveFile, BaseBackupOptions, BaseBackupSink, ReplicationConfig, ReplicationConnection,
    StreamMessage,
};
use barman_wal::Lsn;

/// Most stream messages read in one run.
const MAX_MESSAGES: usize = 10_000;

/// Bytes a server sends to the client, served on a unix socket of a fresh
/// sandbox while the client runs one scenario, chosen by the first byte:
/// replication commands (`IDENTIFY_SYSTEM`, `TIMELINE_HISTORY`, slots,
/// `SHOW`), `START_REPLICATION` and its stream, or `BASE_BACKUP` (two sets
/// of options). The server sends all its bytes, then closes its side, and
/// reads whatever the client sends until the client hangs up.
pub fn replication(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let sandbox = crate::sandbox();
    let socket = sandbox.path().join(".s.PGSQL.5432");
    let listener = UnixListener::bind(&socket).expect("bind the sandbox's socket");
    let conninfo = format!(
        "host={} port=5432 user=barman password=secret application_name=fuzz connect_timeout=10",
        sandbox.path().display()
    );
    let config = ReplicationConfig::parse_with_env(&conninfo, &|_| None).expect("a valid conninfo");
    std::thread::scope(|scope| {
        let server = scope.spawn(|| serve(&listener, rest));
        let client = std::panic::catch_unwind(AssertUnwindSafe(|| run_client(mode, &config)));
        // Unblocks the server's accept if the client never connected.
        let _ = UnixStream::connect(&socket);
        server.join().expect("the fake server thread");
        if let Err(panic) = client {
            std::panic::resume_unwind(panic);
        }
    });
}

/// Accepts one connection, sends `bytes`, closes the sending side and reads
/// until the client hangs up.
fn serve(listener: &UnixListener, bytes: &[u8]) {
    let Ok((mut stream, _)) = listener.accept() else {
        return;
    };
    let Ok(mut incoming) = stream.try_clone() else {
        return;
    };
    std::thread::scope(|scope| {
        scope.spawn(move || io::copy(&mut incoming, &mut io::sink()));
        let _ = stream.write_all(bytes);
        let _ = stream.shutdown(Shutdown::Write);
    });
}

fn run_client(mode: u8, config: &ReplicationConfig) {
    let Ok(mut conn) = ReplicationConnection::connect(config) else {
        return;
    };
    let _ = (conn.server_version(), conn.backend_pid(), conn.is_tls());
    match mode % 4 {
        0 => {
            let _ = conn.identify_system();
            let _ = conn.timeline_history(2);
            let _ = conn.read_replication_slot("barman");
            let _ = conn.simple_query("SHOW wal_segment_size");
            let _ = conn.create_physical_slot("barman", true);
            let _ = conn.drop_slot("barman", false);
        }
        1 => stream(conn),
        2 => {
            let _ = conn.base_backup(&BaseBackupOptions::default(), &mut Recorder::default());
        }
        _ => {
            let options = BaseBackupOptions {
                manifest: false,
                progress: false,
                wal: true,
                tablespace_map: false,
                ..BaseBackupOptions::default()
            };
            let _ = conn.base_backup(&options, &mut Recorder::default());
        }
    }
}

fn stream(conn: ReplicationConnection) {
    let Ok(mut wal) = conn.start_physical(Some("barman"), Lsn(0x0100_0000), 1) else {
        return;
    };
    for _ in 0..MAX_MESSAGES {
        match wal.next(Duration::from_secs(5)) {
            Ok(Some(StreamMessage::Keepalive {
                wal_end,
                reply_requested,
            })) => {
                let _ = wal.send_status(wal_end, wal_end, Lsn(0), reply_requested);
            }
            Ok(Some(StreamMessage::XLogData { .. })) => {}
            Ok(Some(StreamMessage::EndOfTimeline { .. }) | None) | Err(_) => break,
        }
    }
    if let Ok(mut conn) = wal.into_connection() {
        let _ = conn.identify_system();
    }
}

/// A sink that reads everything it is given and keeps nothing.
#[derive(Debug, Default)]
struct Recorder {
    entries: u64,
}

impl BaseBackupSink for Recorder {
    fn begin_archive(&mut self, _: Option<u32>, _: Option<&str>) -> io::Result<()> {
        Ok(())
    }

    fn file(&mut self, file: ArchiveFile<'_>, data: &mut dyn Read) -> io::Result<()> {
        let read = io::copy(data, &mut io::sink())?;
        assert!(
            read <= file.size,
            "{}: read {read} bytes of a {}-byte file",
            file.path,
            file.size
        );
        self.entries += 1;
        Ok(())
    }

    fn directory(&mut self, _: &str, _: u32) -> io::Result<()> {
        self.entries += 1;
        Ok(())
    }

    fn symlink(&mut self, _: &str, _: &str) -> io::Result<()> {
        self.entries += 1;
        Ok(())
    }

    fn end_archive(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn manifest(&mut self, data: &mut dyn Read) -> io::Result<()> {
        io::copy(data, &mut io::sink()).map(|_| ())
    }
}
