//! Where the benchmark's WAL segment comes from: `BARMAN_BENCH_WAL`, a cached
//! copy in `target/bench-data/wal-segment`, or a PostgreSQL 15 cluster
//! started for the occasion (`pgbench -i -s 5` plus some pgbench traffic).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// The WAL segment to benchmark on, and where it came from.
pub fn load() -> (Vec<u8>, String) {
    if let Some(path) = std::env::var_os("BARMAN_BENCH_WAL") {
        let path = PathBuf::from(path);
        let data =
            fs::read(&path).unwrap_or_else(|e| panic!("BARMAN_BENCH_WAL {}: {e}", path.display()));
        return (data, format!("BARMAN_BENCH_WAL={}", path.display()));
    }
    let cache = cache_path();
    if let Ok(data) = fs::read(&cache)
        && data.len() as u64 == SEGMENT_SIZE
    {
        return (data, format!("cached {}", cache.display()));
    }
    let data = generate();
    fs::create_dir_all(cache.parent().expect("cache path has a parent")).expect("mkdir cache");
    let tmp = cache.with_extension("tmp");
    fs::write(&tmp, &data).expect("write cache");
    fs::rename(&tmp, &cache).expect("rename cache");
    (
        data,
        format!("generated now, cached in {}", cache.display()),
    )
}

fn cache_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("bench-data").join("wal-segment")
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Runs a PostgreSQL binary as the `postgres` OS user (as root) in `cwd`.
fn pg(as_root: bool, cwd: &Path, program: &str, args: &[&str]) -> Output {
    let bin = Path::new(PG_BIN).join(program);
    assert!(
        bin.is_file(),
        "{} missing: install PostgreSQL 15 (apt-get install -y postgresql-15) \
         or set BARMAN_BENCH_WAL to a 16 MiB WAL segment",
        bin.display()
    );
    let mut cmd = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let out = cmd
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("spawn PostgreSQL binary");
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Stops the cluster even if generation panics half-way.
struct Running<'a> {
    as_root: bool,
    dir: &'a Path,
    data: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            pg(
                self.as_root,
                self.dir,
                "pg_ctl",
                &["-D", &self.data, "-m", "fast", "-w", "stop"],
            )
        });
    }
}

fn with<'a>(conn: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    [conn, extra].concat()
}

fn generate() -> Vec<u8> {
    eprintln!("generating a WAL segment with a PostgreSQL 15 cluster (once; cached)…");
    let as_root = is_root();
    let tmp = tempfile::Builder::new()
        .prefix("barman-bench-wal")
        .tempdir()
        .expect("tempdir");
    let dir = tmp.path();
    let data = dir.join("data");
    fs::create_dir(&data).expect("mkdir data");
    if as_root {
        let ok = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(dir)
            .status();
        assert!(
            ok.is_ok_and(|s| s.success()),
            "chown {} to postgres",
            dir.display()
        );
    }
    let data_s = data.to_str().expect("utf-8 temp path").to_owned();
    pg(
        as_root,
        dir,
        "initdb",
        &["-D", &data_s, "-U", "postgres", "-A", "trust", "--no-sync"],
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let conf = format!(
        "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
         fsync = off\nmax_wal_size = 1GB\n",
        dir.display()
    );
    let conf_path = data.join("postgresql.conf");
    let mut text = fs::read_to_string(&conf_path).expect("read postgresql.conf");
    text.push_str(&conf);
    fs::write(&conf_path, text).expect("write postgresql.conf");

    let log = dir.join("pg.log").to_str().unwrap().to_owned();
    pg(
        as_root,
        dir,
        "pg_ctl",
        &["-D", &data_s, "-l", &log, "-w", "start"],
    );
    let running = Running {
        as_root,
        dir,
        data: data_s.clone(),
    };
    let conn = ["-h", "127.0.0.1", "-p", &port, "-U", "postgres"];
    pg(
        as_root,
        dir,
        "pgbench",
        &with(&conn, &["-i", "-s", "5", "-q", "postgres"]),
    );
    // Some OLTP traffic after the load: updates, full-page images.
    pg(
        as_root,
        dir,
        "pgbench",
        &with(&conn, &["-n", "-c", "2", "-t", "2000", "postgres"]),
    );
    let switched = pg(
        as_root,
        dir,
        "psql",
        &with(
            &conn,
            &[
                "-At",
                "-c",
                "select pg_walfile_name(pg_switch_wal())",
                "postgres",
            ],
        ),
    );
    let last_completed = String::from_utf8_lossy(&switched.stdout).trim().to_owned();
    // The completed segment before the switched one is full of real data.
    let pg_wal = data.join("pg_wal");
    let mut names: Vec<String> = fs::read_dir(&pg_wal)
        .expect("read pg_wal")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .filter(|n| n.as_str() < last_completed.as_str())
        .collect();
    names.sort();
    let pick = names
        .pop()
        .unwrap_or_else(|| panic!("no completed segment before {last_completed}"));
    let bytes = fs::read(pg_wal.join(&pick)).expect("read segment");
    assert_eq!(
        bytes.len() as u64,
        SEGMENT_SIZE,
        "{pick} is not a full segment"
    );
    eprintln!("using segment {pick} (the switched one was {last_completed})");
    drop(running);
    bytes
}
