//! The one event stream, seen by an embedder: barman-core as a library
//! backs up a real PostgreSQL 15 (`backup_method = local-rsync`) and
//! recovers the backup into a directory, with an observer of its own that
//! collects the typed events. Every phase must be reported, started then
//! finished, in order — by matching the variants, never by parsing text.
//! PostgreSQL missing is a failure (the fixture is `.expect()`ed).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use barman_core::backup::{self, BackupContext, BackupOptions};
use barman_core::clock::SystemClock;
use barman_core::config::Config;
use barman_core::event::{Event, Observer, Operation, Phase};
use barman_core::hooks::ServerHooks;
use barman_core::recover::{self, RecoverContext, RecoverOptions};
use barman_core::shared::ShellSpawner;
use barman_core::{BackupStatus, Error};
use barman_testkit::PgCluster;

/// Keeps every event.
#[derive(Default)]
struct Collect(Vec<Event>);

impl Observer for Collect {
    fn event(&mut self, event: &Event) {
        self.0.push(event.clone());
    }
}

impl Collect {
    /// The copy's progress: (files, bytes) planned, files finished, bytes
    /// copied — and whether every progress event came inside `operation`'s
    /// copy phase (`copy`).
    fn progress(&self, operation: Operation, copy: Phase) -> ((u64, u64), u64, u64, bool) {
        let (mut planned, mut files, mut bytes) = ((0, 0), 0, 0);
        let (mut inside, mut outside) = (false, false);
        for e in &self.0 {
            match e {
                Event::PhaseStarted {
                    operation: o,
                    phase,
                } if *o == operation && *phase == copy => {
                    inside = true;
                }
                Event::PhaseFinished {
                    operation: o,
                    phase,
                    ..
                } if *o == operation && *phase == copy => {
                    inside = false;
                }
                Event::CopyPlanned { files: f, bytes: b } => planned = (*f, *b),
                Event::FileCopied { .. } => files += 1,
                Event::BytesCopied { bytes: b } => bytes += b,
                _ => continue,
            }
            if matches!(
                e,
                Event::CopyPlanned { .. } | Event::FileCopied { .. } | Event::BytesCopied { .. }
            ) {
                outside |= !inside;
            }
        }
        (planned, files, bytes, !outside)
    }

    /// The phase events of `operation`, in order: (phase, started?).
    fn phases(&self, operation: Operation) -> Vec<(Phase, bool)> {
        self.0
            .iter()
            .filter_map(|e| match e {
                Event::PhaseStarted {
                    operation: o,
                    phase,
                } if *o == operation => Some((*phase, true)),
                Event::PhaseFinished {
                    operation: o,
                    phase,
                    ..
                } if *o == operation => Some((*phase, false)),
                _ => None,
            })
            .collect()
    }
}

/// `phases` started and finished one after the other.
fn in_order(phases: &[Phase]) -> Vec<(Phase, bool)> {
    phases
        .iter()
        .flat_map(|p| [(*p, true), (*p, false)])
        .collect()
}

fn config(home: &Path, pg: &PgCluster, incoming: &Path) -> Config {
    let text = format!(
        "[barman]\nbarman_home = {}\n\n[pg]\ndescription = observer test\nconninfo = {}\n\
         backup_method = local-rsync\narchiver = on\nimmediate_checkpoint = true\n\
         incoming_wals_directory = {}\n",
        home.display(),
        pg.conninfo(),
        incoming.display()
    );
    Config::parse_str(&text, &home.join("barman.conf")).expect("configuration")
}

#[test]
fn an_embedded_backup_and_recovery_report_every_phase_as_typed_events() {
    let pg = PgCluster::builder()
        .archive_command("/bin/true")
        .start()
        .expect("start PostgreSQL 15 (scripts/install-test-deps.sh installs it)");
    // WALs go where archive-wal finds them.
    let incoming = pg.server_owned_dir("incoming").unwrap();
    pg.psql(&format!(
        "ALTER SYSTEM SET archive_command = 'cp %p {}/%f'",
        incoming.display()
    ))
    .unwrap();
    pg.psql("SELECT pg_reload_conf()").unwrap();
    pg.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g")
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("home"), &pg, &incoming);
    let global = config.global();
    let server = config.server("pg").unwrap();
    let hooks = ServerHooks::none();
    let cancel = AtomicBool::new(false);

    // The backup, waiting for its last WAL: DONE.
    let mut events = Collect::default();
    let report = {
        let mut ctx = BackupContext {
            clock: &SystemClock,
            observer: &mut events,
            cancel: &cancel,
            spawner: Arc::new(ShellSpawner),
            hooks: &hooks,
        };
        let options = BackupOptions {
            wait: true,
            wait_timeout: Some(Duration::from_secs(120)),
            ..BackupOptions::default()
        };
        backup::backup(global, server, &options, &mut ctx).expect("backup")
    };
    assert_eq!(report.info.status().unwrap(), BackupStatus::Done);
    let id = report.info.backup_id().clone();
    assert_eq!(
        events.phases(Operation::Backup),
        in_order(&[
            Phase::Check,
            Phase::Start,
            Phase::Copy,
            Phase::Stop,
            Phase::Finalise,
            Phase::Wals
        ])
    );
    let position = |wanted: fn(&Event) -> bool| {
        events
            .0
            .iter()
            .position(wanted)
            .expect("the event was reported")
    };
    let starting = position(|e| matches!(e, Event::BackupStarting { .. }));
    let copied = position(
        |e| matches!(e, Event::CopyFinished { files, bytes, details: Some(_), .. } if *files > 0 && *bytes > 0),
    );
    let completed = position(|e| matches!(e, Event::BackupCompleted { .. }));
    assert!(starting < copied && copied < completed);
    assert!(events.0.iter().any(|e| matches!(
        e,
        Event::BackupStarting { id: started, mode, .. } if *started == id && mode == "rsync-concurrent"
    )));
    assert!(
        events
            .0
            .iter()
            .any(|e| matches!(e, Event::FirstBackup { server } if server == "pg"))
    );
    assert!(
        events
            .0
            .iter()
            .any(|e| matches!(e, Event::BackupSize { total, .. } if *total > 0))
    );

    // The copy's progress came as events, inside the copy phase.
    let (planned, files, bytes, inside) = events.progress(Operation::Backup, Phase::Copy);
    assert!(inside, "progress events outside the copy phase");
    assert!(planned.0 > 0 && planned.1 > 0, "{planned:?}");
    assert!(files > 0 && bytes > 0, "{files} files, {bytes} bytes");

    // The recovery of that backup into a fresh directory.
    let mut events = Collect::default();
    let destination = dir.path().join("restored");
    let recovered = {
        let mut ctx = RecoverContext {
            clock: &SystemClock,
            local_tz: jiff::tz::TimeZone::UTC,
            observer: &mut events,
            cancel: &cancel,
            spawner: Arc::new(ShellSpawner),
            hooks: &hooks,
        };
        let options = RecoverOptions {
            backup_id: id.to_string(),
            destination: destination.clone(),
            ..RecoverOptions::default()
        };
        recover::recover(global, server, &options, &mut ctx)
    };
    let recovered = recovered.unwrap_or_else(|e: Error| panic!("recover: {e}"));
    assert_eq!(recovered.backup_id, id.to_string());
    assert!(destination.join("PG_VERSION").is_file());
    assert_eq!(
        events.phases(Operation::Recovery),
        in_order(&[Phase::RestoreBase, Phase::RestoreWals, Phase::Configure])
    );
    assert!(matches!(
        events.0.first(),
        Some(Event::RestoreStarting { id: started, ssh: None, .. }) if *started == id
    ));
    assert!(
        events
            .0
            .iter()
            .any(|e| matches!(e, Event::CopyingWals { .. }))
    );
    assert!(matches!(
        events.0.last(),
        Some(Event::RestoreCompleted { .. })
    ));
    // Every file and byte of the restore was reported as progress.
    let copied = &recovered.copied;
    let (planned, files, bytes, inside) = events.progress(Operation::Recovery, Phase::RestoreBase);
    assert!(inside, "progress events outside the restore phase");
    assert_eq!(planned, (copied.files, copied.bytes_total));
    assert_eq!((files, bytes), (copied.files, copied.bytes_total));
}
