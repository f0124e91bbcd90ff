//! `barman cron` with one stuck server (issue 18, item 5): a process
//! holding server `pga`'s xlog.db lock forever must not keep cron from
//! archiving server `pgb`, nor hold the global cron lock for ever. Real
//! WAL files from a PostgreSQL 15 reach both servers' `incoming/` through
//! `barman put-wal`; the stuck process is a `flock` holding the lock file.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use barman_testkit::{PgCluster, SERVER_OS_USER, chown_to};

use crate::archiving::LocalSetup;
use crate::hardening_check::{deliver, xlogdb};
use crate::retention::Held;

/// How long the tested crons wait for a server before leaving it in the
/// background.
const MAX_WAIT: u64 = 40;

fn has_all(setup: &LocalSetup, server: &str, wals: &[String]) -> bool {
    let names = xlogdb(setup, server);
    wals.iter().all(|w| names.contains(w))
}

/// Whether nobody holds the lock file at `path` (`flock -n` gets it).
fn lock_free(path: &Path) -> bool {
    Command::new("flock")
        .arg("-n")
        .arg(path)
        .arg("true")
        .status()
        .unwrap()
        .success()
}

/// Kills, whatever happens to the test, the cron it started and the
/// worker left holding `pga`'s cron lock.
struct Reaper {
    cron: Option<Child>,
    worker_lock: std::path::PathBuf,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut child) = self.cron.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !lock_free(&self.worker_lock)
            && let Some(pid) = fs::read_to_string(&self.worker_lock)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
        {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// `barman cron --max-wait MAX_WAIT` as postgres: (exit code, stdout,
/// stderr, seconds taken); killed after `limit`.
fn cron(setup: &LocalSetup, limit: Duration) -> (Option<i32>, String, String, f64) {
    let start = Instant::now();
    let mut child = setup
        .command(&["cron", "--max-wait", &MAX_WAIT.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(50));
    }
    let finished = child.try_wait().unwrap().is_some();
    if !finished {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    (
        finished.then(|| out.status.code().unwrap_or(-1)),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        start.elapsed().as_secs_f64(),
    )
}

#[test]
fn a_server_stuck_on_its_xlogdb_lock_does_not_stop_cron_archiving_the_others() {
    let setup = LocalSetup::new();
    let put_wal = |server: &str| {
        format!(
            "{} -c {} put-wal {server} %p",
            setup.barman().display(),
            setup.home.conf().display()
        )
    };
    let pg = PgCluster::builder()
        .archive_command(format!("{} && {}", put_wal("pga"), put_wal("pgb")))
        .start()
        .unwrap();
    let mut conf = fs::read_to_string(setup.home.conf()).unwrap();
    for server in ["pga", "pgb"] {
        let _ = write!(
            conf,
            "[{server}]\ndescription = cron test {server}\nconninfo = {}\n\
             backup_method = postgres\narchiver = on\n\n",
            pg.conninfo()
        );
    }
    fs::write(setup.home.conf(), conf).unwrap();
    let wals = vec![
        deliver(&setup, &pg, &["pga", "pgb"]),
        deliver(&setup, &pg, &["pga", "pgb"]),
    ];

    // A stuck process holds pga's xlog.db lock (the file is barman's).
    let lock_dir = setup.home.home();
    let xlogdb_lock = lock_dir.join(".pga-xlogdb.lock");
    fs::write(&xlogdb_lock, "").unwrap();
    chown_to(&xlogdb_lock, SERVER_OS_USER).unwrap();
    let held = Held::new(&xlogdb_lock);

    let started = Instant::now();
    let child = setup
        .command(&["cron", "--max-wait", &MAX_WAIT.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reaper = Reaper {
        cron: Some(child),
        worker_lock: lock_dir.join(".pga-cron.lock"),
    };
    // pgb is archived while cron still waits for pga.
    while !has_all(&setup, "pgb", &wals) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "pgb was not archived while pga is stuck; pgb's xlog.db: {:?}",
            xlogdb(&setup, "pgb")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cron_child = reaper.cron.as_mut().unwrap();
    assert!(
        cron_child.try_wait().unwrap().is_none(),
        "cron ended before its wait for pga did"
    );
    // cron returns within its bounded wait, releasing the global lock.
    let limit = Duration::from_secs(MAX_WAIT + 90);
    while cron_child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < limit,
            "cron still runs after {limit:?} with pga stuck"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = reaper.cron.take().unwrap().wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Processed 2 WAL file(s) for server pgb"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "WARNING: the cron steps of server pga are still running after {MAX_WAIT} seconds"
        )),
        "{stdout}\n{stderr}"
    );
    assert!(lock_free(&lock_dir.join(".cron.lock")));
    assert!(xlogdb(&setup, "pga").is_empty());

    // The next cron, pga still stuck: pga is skipped at once (its cron
    // lock is busy), pgb is served, and it returns quickly.
    let third = deliver(&setup, &pg, &["pga", "pgb"]);
    let (code, stdout, stderr, secs) = cron(&setup, Duration::from_secs(MAX_WAIT + 90));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(secs < 30.0, "a cron with pga busy took {secs:.1}s");
    assert!(
        stdout.contains(
            "Another cron process is already running on server pga. Skipping to the next server"
        ),
        "{stdout}\n{stderr}"
    );
    assert!(has_all(&setup, "pgb", std::slice::from_ref(&third)));

    // Released, the stuck run goes on and archives what waits for pga.
    drop(held);
    let start = Instant::now();
    while !lock_free(&reaper.worker_lock) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "pga's cron run did not end once its lock was released"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let waited = [wals[0].clone(), wals[1].clone(), third.clone()];
    assert!(
        has_all(&setup, "pga", &waited),
        "{:?}",
        xlogdb(&setup, "pga")
    );

    // A later cron works for every server.
    let fourth = deliver(&setup, &pg, &["pga", "pgb"]);
    let (code, stdout, stderr, _) = cron(&setup, Duration::from_secs(MAX_WAIT + 90));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");
    for server in ["pga", "pgb"] {
        assert!(
            has_all(&setup, server, &[third.clone(), fourth.clone()]),
            "{server}: {:?}\n{stdout}\n{stderr}",
            xlogdb(&setup, server)
        );
    }
    for server in ["pga", "pgb"] {
        assert!(
            stdout.contains(&format!("Processed 1 WAL file(s) for server {server}")),
            "{stdout}"
        );
    }
}
