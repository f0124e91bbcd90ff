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

use barman_copy::NoProgress;
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
            progress: &NoProgress,
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

    // The recovery of that backup into a fresh directory.
    let mut events = Collect::default();
    let destination = dir.path().join("restored");
    let recovered = {
        let mut ctx = RecoverContext {
            clock: &SystemClock,
            local_tz: jiff::tz::TimeZone::UTC,
            progress: &NoProgress,
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
}
