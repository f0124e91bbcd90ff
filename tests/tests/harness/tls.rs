//! TLS (`sslmode`) end to end against a real PostgreSQL 15 with `ssl = on`
//! and a certificate from a CA made at test time (SAN 127.0.0.1 and
//! localhost). pg_hba.conf rejects every plain connection (`hostnossl ...
//! reject`), so whatever works here went over TLS; the server log
//! (`log_connections`) and `pg_stat_ssl` say so too. Both client paths are
//! driven through `barman` run as `postgres`: the replication client
//! (receive-wal, `backup_method = postgres`, `receive-wal --create-slot`)
//! and the SQL connection (switch-wal, replication-status).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use barman_testkit::{CertPair, PgCluster, PgClusterBuilder, SERVER_OS_USER, TestPki};

use crate::archiving::LocalSetup;
use crate::backup::Bench;
use crate::receive_wal::{
    APP, Receiver, configure_with, run_timed, streaming_dir, switch_and_stream, wait_for,
    wait_streaming,
};

const PASSWORD: &str = "Tls-Pa55-w0rd";
const LIMIT: Duration = Duration::from_secs(30);

/// TLS on with `server`, SCRAM passwords, connections logged, and
/// pg_hba.conf: `hostssl` for `postgres` (trust), `rep` (SCRAM, normal and
/// replication) and `certrep` (client certificate), every plain connection
/// rejected.
fn tls_cluster(b: PgClusterBuilder, server: &CertPair, ca: &Path) -> PgClusterBuilder {
    b.ssl(server, ca)
        .conf("password_encryption = 'scram-sha-256'")
        .conf("log_connections = on")
        .conf("wal_keep_size = '1GB'")
        .hba("hostssl all postgres 127.0.0.1/32 trust")
        .hba("hostssl replication rep 127.0.0.1/32 scram-sha-256")
        .hba("hostssl all rep 127.0.0.1/32 scram-sha-256")
        .hba("hostssl replication certrep 127.0.0.1/32 cert")
        .hba("hostnossl all all 0.0.0.0/0 reject")
        .hba("hostnossl replication all 0.0.0.0/0 reject")
}

/// The replication user `rep` (SCRAM) with `extra` conninfo keys.
fn rep(pg: &PgCluster, extra: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user=rep password={PASSWORD} {extra}",
        pg.port()
    )
}

/// The superuser (trust over `hostssl`) with `extra` conninfo keys.
fn superuser(pg: &PgCluster, extra: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres {extra}",
        pg.port()
    )
}

/// Appends `[name]` with a SQL `conninfo` and a `streaming_conninfo`.
fn server(setup: &LocalSetup, name: &str, conninfo: &str, streaming: &str) {
    configure_with(
        setup,
        name,
        conninfo,
        &format!("create_slot = auto\nstreaming_conninfo = {streaming}"),
    );
}

/// Appends `[name]` whose SQL side is the superuser and whose replication
/// side is `rep`, both with the conninfo keys `extra`.
fn both_with(setup: &LocalSetup, pg: &PgCluster, name: &str, extra: &str) {
    server(setup, name, &superuser(pg, extra), &rep(pg, extra));
}

/// `barman args` succeeds; returns its output.
fn succeeds(setup: &LocalSetup, args: &[&str]) -> String {
    let (st, text) = run_timed(setup, args, LIMIT);
    assert!(st.success(), "barman {args:?} failed ({st}): {text}");
    text
}

/// `barman args` fails with every one of `want` in its output (and no password).
fn fails(setup: &LocalSetup, args: &[&str], want: &[&str]) -> String {
    let (st, text) = run_timed(setup, args, LIMIT);
    assert!(!st.success(), "barman {args:?} succeeded: {text}");
    for w in want {
        assert!(text.contains(w), "barman {args:?}: no `{w}` in:\n{text}");
    }
    assert!(!text.contains(PASSWORD), "password printed: {text}");
    text
}

/// Both paths of server `name` fail with `want`: the replication client
/// (`receive-wal --create-slot`) and the SQL connection (`switch-wal`).
fn both_fail(setup: &LocalSetup, name: &str, replication: &[&str], sql: &[&str]) {
    fails(setup, &["receive-wal", "--create-slot", name], replication);
    fails(setup, &["switch-wal", "--force", name], sql);
}

/// Points the server at another certificate and waits for the reload.
fn install_server_cert(pg: &PgCluster, pair: &CertPair) {
    for (key, path) in [("ssl_cert_file", &pair.cert), ("ssl_key_file", &pair.key)] {
        pg.psql(&format!("ALTER SYSTEM SET {key} = '{}'", path.display()))
            .unwrap();
    }
    pg.psql("SELECT pg_reload_conf()").unwrap();
    let want = pair.cert.display().to_string();
    wait_for(pg, "SHOW ssl_cert_file", &want, LIMIT, || {
        fs::read_to_string(pg.log_path()).unwrap_or_default()
    });
}

#[test]
fn tls_streams_backs_up_and_queries_with_libpq_sslmode_semantics() {
    let t0 = Instant::now();
    let pki = TestPki::new("barman-e2e TLS CA", Some(SERVER_OS_USER)).expect("openssl");
    let ca = pki.ca_cert();
    let cert = pki
        .server_cert("server", "localhost", &["IP:127.0.0.1", "DNS:localhost"])
        .unwrap();
    let bench = Bench::with_cluster("backup_method = postgres\n", 1, |b| {
        tls_cluster(b, &cert, &ca)
    });
    let (setup, pg) = (&bench.setup, &bench.pg);
    pg.psql(&format!(
        "CREATE ROLE rep LOGIN REPLICATION PASSWORD '{PASSWORD}'; \
         GRANT pg_monitor, pg_checkpoint TO rep; \
         GRANT EXECUTE ON FUNCTION pg_switch_wal() TO rep; CREATE ROLE certrep LOGIN REPLICATION"
    ))
    .unwrap();
    let verify_full = format!("sslmode=verify-full sslrootcert={}", ca.display());
    // [pg] (the bench's, last in the file): BASE_BACKUP as rep over
    // verify-full with channel binding required.
    let conf = fs::read_to_string(setup.home.conf()).unwrap()
        + &format!(
            "streaming_conninfo = {}\n\n",
            rep(pg, &format!("{verify_full} channel_binding=require"))
        );
    fs::write(setup.home.conf(), conf).unwrap();
    // [stream]: receive-wal over verify-full (SCRAM-SHA-256-PLUS by
    // default), SQL with sslmode=require as rep.
    server(
        setup,
        "stream",
        &rep(pg, "dbname=postgres sslmode=require"),
        &rep(pg, &verify_full),
    );

    // receive-wal streams over TLS: the walsender's session is encrypted.
    let mut rx = Receiver::start(setup, "stream");
    wait_streaming(pg, &rx);
    assert_eq!(
        pg.psql(&format!(
            "SELECT r.usename || ' ' || s.ssl::text FROM pg_stat_replication r \
             JOIN pg_stat_ssl s USING (pid) WHERE r.application_name = '{APP}'"
        ))
        .unwrap(),
        "rep true",
        "{}",
        rx.output()
    );
    let segment = switch_and_stream(pg, &streaming_dir(setup, "stream"), &rx);
    assert!(rx.running(), "{}", rx.output());

    // The SQL side with sslmode=require: replication-status sees the
    // streamer, switch-wal closes a segment.
    let status = succeeds(setup, &["replication-status", "stream"]);
    assert!(
        status.contains(&format!("Application name: {APP}")),
        "{status}"
    );
    let text = succeeds(setup, &["switch-wal", "--force", "stream"]);
    assert!(text.contains("has been closed"), "{text}");
    let text = succeeds(setup, &["receive-wal", "--stop", "stream"]);
    assert!(text.contains("Stopped"), "{text}");
    assert!(
        rx.wait(LIMIT).is_some_and(|s| s.success()),
        "{}",
        rx.output()
    );
    eprintln!("streamed {segment} over TLS: {:?}", t0.elapsed());

    // backup_method = postgres over verify-full with channel binding.
    let doc = bench.backup(&["--wait", "--wait-timeout", "60"]);
    let info = bench.info(doc["backup_id"].as_str().unwrap());
    assert_eq!(
        (info["status"].as_str(), info["mode"].as_str()),
        ("DONE", "postgres"),
        "{info:?}"
    );
    eprintln!("backup over TLS: {:?}", t0.elapsed());

    // Every barman session the server saw was encrypted.
    let log = fs::read_to_string(pg.log_path()).unwrap();
    for app in [APP, "barman_streaming_backup", "barman"] {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("application_name={app} ")))
            .collect();
        assert!(!lines.is_empty(), "no connection of {app} logged:\n{log}");
        for l in lines {
            assert!(l.contains("SSL enabled"), "{app} without TLS: {l}");
        }
    }

    // A client certificate (cert authentication) and none at all.
    let client = pki.client_cert("certrep", "certrep").unwrap();
    let as_certrep = |extra: &str| {
        format!(
            "host=127.0.0.1 port={} user=certrep {verify_full} {extra}",
            pg.port()
        )
    };
    let with_cert = format!(
        "sslcert={} sslkey={}",
        client.cert.display(),
        client.key.display()
    );
    server(
        setup,
        "cert",
        &superuser(pg, "sslmode=require"),
        &as_certrep(&with_cert),
    );
    succeeds(
        setup,
        &["receive-wal", "--create-slot", "--if-not-exists", "cert"],
    );
    server(
        setup,
        "nocert",
        &superuser(pg, "sslmode=require"),
        &as_certrep(""),
    );
    fails(
        setup,
        &["receive-wal", "--create-slot", "nocert"],
        &["certificate"],
    );

    // A CA that did not sign the server's certificate: verify-full fails,
    // and so does require, since a root certificate file exists.
    let other_ca = TestPki::new("barman-e2e other CA", Some(SERVER_OS_USER)).unwrap();
    let wrong = format!("sslrootcert={}", other_ca.ca_cert().display());
    for (name, mode) in [("wrongca", "verify-full"), ("wrongca_require", "require")] {
        let extra = format!("sslmode={mode} {wrong}");
        both_with(setup, pg, name, &extra);
        let target = format!("127.0.0.1:{}", pg.port());
        both_fail(
            setup,
            name,
            &[
                "certificate verify failed",
                "not signed by a trusted CA",
                &target,
            ],
            &["certificate verify failed", "not signed by a trusted CA"],
        );
    }

    // verify-ca and verify-full without the root certificate file.
    let missing = format!(
        "sslmode=verify-ca sslrootcert={}/none.crt",
        pki.dir().display()
    );
    both_with(setup, pg, "nofile", &missing);
    both_fail(
        setup,
        "nofile",
        &["none.crt", "does not exist"],
        &["none.crt", "does not exist"],
    );

    // sslmode=disable: pg_hba.conf refuses plain connections.
    both_with(setup, pg, "plain", "sslmode=disable");
    both_fail(
        setup,
        "plain",
        &["pg_hba.conf", "no encryption"],
        &["pg_hba.conf", "no encryption"],
    );

    // libpq's one retry: allow's plain attempt is refused, the TLS retry
    // connects; prefer's TLS attempt fails verification (a root file that
    // exists is checked), the plain retry reaches pg_hba.conf's reject.
    both_with(setup, pg, "allow", "sslmode=allow");
    succeeds(
        setup,
        &["receive-wal", "--create-slot", "--if-not-exists", "allow"],
    );
    succeeds(setup, &["switch-wal", "--force", "allow"]);
    let prefer_wrong = format!("sslmode=prefer {wrong}");
    both_with(setup, pg, "prefer", &prefer_wrong);
    both_fail(setup, "prefer", &["no encryption"], &["no encryption"]);

    // channel_binding=require and a server that authenticates without it
    // (trust): refused by the client.
    let cb = format!("{verify_full} channel_binding=require");
    server(setup, "cbtrust", &superuser(pg, &cb), &superuser(pg, &cb));
    both_fail(
        setup,
        "cbtrust",
        &["channel binding required"],
        &["channel binding"],
    );

    // A certificate for another name: verify-full to 127.0.0.1 fails,
    // verify-ca (chain only) connects, and verify-full with host naming the
    // certificate (hostaddr to connect) connects.
    let elsewhere = pki
        .server_cert("other", "db.example.com", &["DNS:db.example.com"])
        .unwrap();
    install_server_cert(pg, &elsewhere);
    both_with(setup, pg, "mismatch", &verify_full);
    both_fail(
        setup,
        "mismatch",
        &["certificate verify failed", "does not match the host name"],
        &["certificate verify failed", "does not match the host name"],
    );
    let verify_ca = format!("sslmode=verify-ca sslrootcert={}", ca.display());
    both_with(setup, pg, "caonly", &verify_ca);
    succeeds(
        setup,
        &["receive-wal", "--create-slot", "--if-not-exists", "caonly"],
    );
    succeeds(setup, &["switch-wal", "--force", "caonly"]);
    let by_name = format!(
        "port={} hostaddr=127.0.0.1 host=db.example.com {verify_full}",
        pg.port()
    );
    server(
        setup,
        "byname",
        &format!("{by_name} user=postgres dbname=postgres"),
        &format!("{by_name} user=rep password={PASSWORD}"),
    );
    succeeds(
        setup,
        &["receive-wal", "--create-slot", "--if-not-exists", "byname"],
    );
    succeeds(setup, &["switch-wal", "--force", "byname"]);
    assert!(
        !setup.home.log().contains(PASSWORD),
        "password in barman.log"
    );
    eprintln!("TLS: {:?}", t0.elapsed());
}

/// A server without TLS: `require` is refused with a clear error on both
/// paths; `prefer` (the default) falls back to plain text on `N`.
#[test]
fn tls_required_against_a_server_without_ssl() {
    let setup = LocalSetup::new();
    let pg = PgCluster::builder().start().expect("start PostgreSQL 15");
    let required = superuser(&pg, "sslmode=require");
    server(&setup, "required", &required, &required);
    both_fail(
        &setup,
        "required",
        &[
            "does not support SSL",
            "sslmode=require",
            &format!("127.0.0.1:{}", pg.port()),
        ],
        &["does not support TLS", "sslmode=require"],
    );
    let preferred = superuser(&pg, "sslmode=prefer");
    server(&setup, "preferred", &preferred, &preferred);
    succeeds(&setup, &["receive-wal", "--create-slot", "preferred"]);
    succeeds(&setup, &["switch-wal", "--force", "preferred"]);
}
