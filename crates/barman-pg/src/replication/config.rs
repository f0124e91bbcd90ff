//! Connection settings: libpq `key=value` conninfo strings and
//! `postgres://` URIs, with libpq's defaults, `~/.pgpass` and the TLS
//! settings ([`TlsOptions`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{Error, Result};
use crate::conninfo::{self, pgpass_lookup};
use crate::tls::{TlsOptions, TlsOptionsBuilder};

/// libpq's default unix socket directory on Debian-family systems.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// PostgreSQL's default port.
pub const DEFAULT_PORT: u16 = 5432;

/// Where and how to open a physical replication connection.
///
/// Built with [`ReplicationConfig::from_conninfo`]; every field may be
/// changed afterwards (e.g. `application_name` set to Barman's
/// `streaming_archiver_name`). `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// Where to connect: a host name, an IP address, or a unix socket
    /// directory (starts with `/`). libpq's `hostaddr` when one is given.
    pub host: String,
    /// The `host` given beside a `hostaddr` (not a socket directory): the
    /// name TLS checks the certificate against (`verify-full`) and sends as
    /// SNI, and the host `~/.pgpass` lines match. `None` when `host` is both.
    pub host_name: Option<String>,
    /// The TCP port, also the suffix of the socket file `.s.PGSQL.<port>`.
    pub port: u16,
    /// The role to log in as.
    pub user: String,
    /// The password, when the server asks for one.
    pub password: Option<String>,
    /// The database named in the conninfo. A physical replication connection
    /// is not bound to a database; this only selects `~/.pgpass` lines.
    pub dbname: Option<String>,
    /// `application_name` of the session (what `pg_stat_replication` and
    /// `synchronous_standby_names` see).
    pub application_name: Option<String>,
    /// How long connecting and authenticating may take (`None`: no limit).
    pub connect_timeout: Option<Duration>,
    /// `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `sslsni`,
    /// `channel_binding` and the protocol versions (TCP only: a unix socket
    /// never uses TLS, as with libpq).
    pub tls: TlsOptions,
}

impl fmt::Debug for ReplicationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicationConfig")
            .field("host", &self.host)
            .field("host_name", &self.host_name)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ReplicationConfig {
    /// Parses a libpq conninfo (`host=pg user=barman ...`) or a
    /// `postgres://` / `postgresql://` URI.
    ///
    /// Unset values take libpq's defaults from the environment: `PGHOST`
    /// (else [`DEFAULT_SOCKET_DIR`]), `PGPORT` (else 5432), `PGUSER` (else
    /// the OS user), `PGPASSWORD`, `PGDATABASE`, `PGAPPNAME`,
    /// `PGCONNECT_TIMEOUT`, and the TLS variables (`PGSSLMODE`, else
    /// `prefer`; `PGSSLROOTCERT`, ...: see [`crate::tls`]). Without a
    /// password, `~/.pgpass` (or `passfile`, or `PGPASSFILE`) is searched as
    /// libpq does, with `replication` as the database when none is given.
    /// Keys this client does not use are ignored; TLS keys it cannot honour
    /// (`sslcrl`, ...) are refused.
    pub fn from_conninfo(conninfo: &str) -> Result<Self> {
        Self::parse_with_env(conninfo, &|name| std::env::var(name).ok())
    }

    /// [`from_conninfo`](Self::from_conninfo) with the environment given as a
    /// lookup function.
    pub fn parse_with_env(conninfo: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let pairs = conninfo::parse(conninfo).map_err(|e| Error::Conninfo(e.0))?;
        let mut given = Given::default();
        for (key, value) in pairs {
            if !given.tls.set(&key, &value) {
                given.set(&key, value);
            }
        }
        given.resolve(env)
    }

    /// `host:port`, or the socket file for a unix socket directory.
    pub fn target(&self) -> String {
        if self.is_unix_socket() {
            self.socket_path().display().to_string()
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host name TLS verifies and sends as SNI: [`host_name`](Self::host_name)
    /// when given, else [`host`](Self::host).
    pub fn tls_host(&self) -> &str {
        self.host_name.as_deref().unwrap_or(&self.host)
    }

    /// Whether `host` names a unix socket directory.
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// The socket file, `<host>/.s.PGSQL.<port>`.
    pub fn socket_path(&self) -> PathBuf {
        Path::new(&self.host).join(format!(".s.PGSQL.{}", self.port))
    }
}

/// The values a conninfo gave explicitly (empty values count as unset, as in libpq).
#[derive(Default)]
struct Given {
    host: Option<String>,
    hostaddr: Option<String>,
    port: Option<String>,
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
    application_name: Option<String>,
    fallback_application_name: Option<String>,
    connect_timeout: Option<String>,
    passfile: Option<String>,
    tls: TlsOptionsBuilder,
}

impl Given {
    fn set(&mut self, key: &str, value: String) {
        let slot = match key {
            "host" => &mut self.host,
            "hostaddr" => &mut self.hostaddr,
            "port" => &mut self.port,
            "user" => &mut self.user,
            "password" => &mut self.password,
            "dbname" => &mut self.dbname,
            "application_name" => &mut self.application_name,
            "fallback_application_name" => &mut self.fallback_application_name,
            "connect_timeout" => &mut self.connect_timeout,
            "passfile" => &mut self.passfile,
            _ => {
                tracing::debug!("conninfo key `{key}` is not used by the replication client");
                return;
            }
        };
        *slot = Some(value).filter(|v| !v.is_empty());
    }

    fn resolve(self, env: &dyn Fn(&str) -> Option<String>) -> Result<ReplicationConfig> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        // As libpq: `hostaddr` (or PGHOSTADDR) is where to connect, `host`
        // (or PGHOST) then only names the server.
        let name = self.host.or_else(|| env("PGHOST"));
        let (host, host_name) = match (self.hostaddr.or_else(|| env("PGHOSTADDR")), name) {
            (Some(addr), name) => (addr, name.filter(|n| !n.starts_with('/'))),
            (None, Some(name)) => (name, None),
            (None, None) => (DEFAULT_SOCKET_DIR.to_owned(), None),
        };
        if host.contains(',') {
            return Err(Error::Conninfo(format!(
                "several hosts (`{host}`) are not supported by the replication client"
            )));
        }
        let port = match self.port.or_else(|| env("PGPORT")) {
            None => DEFAULT_PORT,
            Some(p) => p
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| Error::Conninfo(format!("invalid port `{p}`")))?,
        };
        let user = match self.user.or_else(|| env("PGUSER")) {
            Some(u) => u,
            None => os_user(&env).ok_or_else(|| {
                Error::Conninfo("no user name given and the OS user is unknown".into())
            })?,
        };
        let connect_timeout = match self.connect_timeout.or_else(|| env("PGCONNECT_TIMEOUT")) {
            None => None,
            Some(t) => {
                let secs: u64 = t
                    .trim()
                    .parse()
                    .map_err(|_| Error::Conninfo(format!("invalid connect_timeout `{t}`")))?;
                // libpq: 0 waits forever, and less than 2 seconds means 2.
                (secs > 0).then(|| Duration::from_secs(secs.max(2)))
            }
        };
        let tls = self
            .tls
            .resolve(&env)
            .map_err(|e| Error::Conninfo(e.to_string()))?;
        let dbname = self.dbname.or_else(|| env("PGDATABASE"));
        let mut config = ReplicationConfig {
            host,
            host_name,
            port,
            user,
            password: self.password.or_else(|| env("PGPASSWORD")),
            dbname,
            application_name: self
                .application_name
                .or_else(|| env("PGAPPNAME"))
                .or(self.fallback_application_name),
            connect_timeout,
            tls,
        };
        if config.password.is_none() {
            let file = self
                .passfile
                .or_else(|| env("PGPASSFILE"))
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pgpass")));
            if let Some(file) = file {
                config.password = password_from_file(&file, &config);
            }
        }
        Ok(config)
    }
}

/// The effective OS user: the owner of `/proc/self` looked up in
/// `/etc/passwd`, else `$USER`.
fn os_user(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let from_passwd = std::fs::metadata("/proc/self").ok().and_then(|m| {
        let uid = m.uid().to_string();
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            (fields.nth(1)? == uid).then(|| name.to_owned())
        })
    });
    from_passwd
        .or_else(|| env("USER"))
        .or_else(|| env("LOGNAME"))
}

/// The password of the first matching line of a `.pgpass` file, as libpq
/// reads it: `host:port:database:user:password`, `*` matches anything, `\`
/// escapes `:` and `\`, a unix socket matches `localhost`, and a file
/// readable by group or others is ignored.
fn password_from_file(path: &Path, config: &ReplicationConfig) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "password file `{}` has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let host = if config.is_unix_socket() && config.host_name.is_none() {
        "localhost"
    } else {
        config.tls_host()
    };
    let port = config.port.to_string();
    let dbname = config.dbname.as_deref().unwrap_or("replication");
    pgpass_lookup(&text, [host, &port, dbname, &config.user])
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::conninfo::parse_uri;
    use crate::tls::{ChannelBindingMode, RootCert, SslMode};

    fn parse(conninfo: &str, env: &[(&str, &str)]) -> Result<ReplicationConfig> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ReplicationConfig::parse_with_env(conninfo, &|name| env.get(name).cloned())
    }

    #[test]
    fn key_value_conninfo() {
        let c = parse(
            "host=pg.example port=6432 user=barman password='se cret' dbname=postgres \
             application_name=barman_receive_wal connect_timeout=1 sslmode=disable keepalives=1",
            &[],
        )
        .unwrap();
        assert_eq!(c.host, "pg.example");
        assert_eq!(c.port, 6432);
        assert_eq!(c.user, "barman");
        assert_eq!(c.password.as_deref(), Some("se cret"));
        assert_eq!(c.dbname.as_deref(), Some("postgres"));
        assert_eq!(c.application_name.as_deref(), Some("barman_receive_wal"));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.tls.sslmode, SslMode::Disable);
        assert_eq!(c.target(), "pg.example:6432");
        let debug = format!("{c:?}");
        assert!(!debug.contains("se cret"), "{debug}");
    }

    #[test]
    fn defaults_come_from_the_environment() {
        let c = parse(
            "",
            &[
                ("PGHOST", "/tmp/sock"),
                ("PGPORT", "5555"),
                ("PGUSER", "alice"),
                ("PGPASSWORD", "pw"),
                ("PGAPPNAME", "app"),
                ("PGCONNECT_TIMEOUT", "0"),
            ],
        )
        .unwrap();
        assert_eq!(c.host, "/tmp/sock");
        assert!(c.is_unix_socket());
        assert_eq!(c.socket_path(), Path::new("/tmp/sock/.s.PGSQL.5555"));
        assert_eq!(c.target(), "/tmp/sock/.s.PGSQL.5555");
        assert_eq!(c.port, 5555);
        assert_eq!(c.user, "alice");
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(c.application_name.as_deref(), Some("app"));
        assert_eq!(c.connect_timeout, None);
        assert_eq!(c.tls.sslmode, SslMode::Prefer);

        let c = parse("user=bob", &[]).unwrap();
        assert_eq!(c.host, DEFAULT_SOCKET_DIR);
        assert_eq!(c.port, DEFAULT_PORT);
        // The conninfo wins over the environment.
        let c = parse(
            "user=bob password=x port=7",
            &[("PGUSER", "a"), ("PGPASSWORD", "y")],
        );
        let c = c.unwrap();
        assert_eq!(
            (c.user.as_str(), c.password.as_deref(), c.port),
            ("bob", Some("x"), 7)
        );
        // Without PGUSER the OS user is used.
        assert!(!parse("", &[]).unwrap().user.is_empty());
    }

    #[test]
    fn invalid_values_are_refused() {
        for bad in [
            "port=abc",
            "port=0",
            "port=70000",
            "sslmode=sometimes",
            "connect_timeout=x",
            "host=a,b",
            "host",
            "host='unterminated",
            "sslcrl=/x.crl",
            "sslrootcert=system sslmode=require",
            "channel_binding=sometimes",
        ] {
            let err = parse(&format!("user=u {bad}"), &[]).unwrap_err();
            assert!(matches!(err, Error::Conninfo(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn tls_settings_and_hostaddr() {
        let c = parse(
            "host=db.example hostaddr=127.0.0.1 user=u sslmode=verify-full \
             sslrootcert=/etc/ca.crt sslcert=/c.crt sslkey=/c.key sslsni=0 channel_binding=require",
            &[("HOME", "/home/u")],
        )
        .unwrap();
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.host_name.as_deref(), Some("db.example"));
        assert_eq!(c.tls_host(), "db.example");
        assert_eq!(c.target(), "127.0.0.1:5432");
        assert_eq!(c.tls.sslmode, SslMode::VerifyFull);
        assert_eq!(c.tls.root_cert, RootCert::File("/etc/ca.crt".into()));
        assert_eq!(c.tls.client_cert.as_deref(), Some(Path::new("/c.crt")));
        assert_eq!(c.tls.client_key.as_deref(), Some(Path::new("/c.key")));
        assert!(!c.tls.sni);
        assert_eq!(c.tls.channel_binding, ChannelBindingMode::Require);
        assert_eq!(c.tls.home.as_deref(), Some(Path::new("/home/u")));
        // Without hostaddr the host is both; the environment fills in.
        let c = parse(
            "host=127.0.0.1 user=u",
            &[("PGSSLMODE", "require"), ("PGSSLROOTCERT", "/r.crt")],
        )
        .unwrap();
        assert_eq!(
            (c.host.as_str(), c.host_name.as_deref()),
            ("127.0.0.1", None)
        );
        assert_eq!(c.tls_host(), "127.0.0.1");
        assert_eq!(c.tls.sslmode, SslMode::Require);
        assert_eq!(c.tls.root_cert, RootCert::File("/r.crt".into()));
        // PGHOSTADDR beside a conninfo host: libpq connects to the address.
        let c = parse("host=db user=u", &[("PGHOSTADDR", "10.1.2.3")]).unwrap();
        assert_eq!((c.host.as_str(), c.tls_host()), ("10.1.2.3", "db"));
        // The URI form carries the same keys.
        let c = parse(
            "postgres://u@db:5433?sslmode=verify-ca&sslrootcert=%2Fca.pem",
            &[],
        )
        .unwrap();
        assert_eq!(c.tls.sslmode, SslMode::VerifyCa);
        assert_eq!(c.tls.root_cert, RootCert::File("/ca.pem".into()));
        // The Debug form shows the TLS settings, never the password.
        let debug = format!(
            "{:?}",
            parse("user=u password=s3cret sslmode=require", &[]).unwrap()
        );
        assert!(
            debug.contains("Require") && !debug.contains("s3cret"),
            "{debug}"
        );
    }

    #[test]
    fn uris_with_several_hosts_keep_them() {
        let pairs = parse_uri("postgresql://a:1,b:2,[::1]/db").unwrap();
        assert_eq!(
            pairs[..2],
            [
                ("host".to_owned(), "a,b,::1".to_owned()),
                ("port".to_owned(), "1,2,".to_owned())
            ]
        );
    }

    #[test]
    fn uris() {
        let c = parse(
            "postgresql://rep%40l:p%3Ass@db.example:5433/mydb?application_name=x&sslmode=disable",
            &[],
        )
        .unwrap();
        assert_eq!(c.user, "rep@l");
        assert_eq!(c.password.as_deref(), Some("p:ss"));
        assert_eq!(c.host, "db.example");
        assert_eq!(c.port, 5433);
        assert_eq!(c.dbname.as_deref(), Some("mydb"));
        assert_eq!(c.application_name.as_deref(), Some("x"));
        assert_eq!(c.tls.sslmode, SslMode::Disable);

        let c = parse("postgres://[::1]:6000", &[("PGUSER", "u")]).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 6000));
        assert_eq!(c.target(), "[::1]:6000");

        let c = parse("postgres://%2Fvar%2Frun%2Fpg/db", &[("PGUSER", "u")]).unwrap();
        assert_eq!(c.host, "/var/run/pg");
        let c = parse("postgres:///db?host=/tmp&port=99", &[("PGUSER", "u")]).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("/tmp", 99));
        let c = parse("postgres://u@h", &[]).unwrap();
        assert_eq!((c.user.as_str(), c.port, c.password), ("u", 5432, None));

        for bad in [
            "postgres://h:notaport",
            "postgres://[::1",
            "postgres://h/%zz",
            "postgres://h?novalue",
            "postgres://a,b/db",
        ] {
            assert!(parse(bad, &[("PGUSER", "u")]).is_err(), "{bad}");
        }
    }

    #[test]
    fn pgpass_matching() {
        let text = "# comment\n\
                    other:5432:*:u:wrong\n\
                    db\\:x:*:replication:u:first\n\
                    localhost:5432:replication:u:sock:et\n\
                    *:*:*:u:any\\:thing\n";
        assert_eq!(
            pgpass_lookup(text, ["db:x", "1", "replication", "u"]).as_deref(),
            Some("first")
        );
        assert_eq!(
            pgpass_lookup(text, ["localhost", "5432", "replication", "u"]).as_deref(),
            Some("sock:et")
        );
        assert_eq!(
            pgpass_lookup(text, ["h", "1", "d", "u"]).as_deref(),
            Some("any:thing")
        );
        assert_eq!(pgpass_lookup(text, ["h", "1", "d", "v"]), None);
        // A `\*` is a literal star, not a wildcard.
        assert_eq!(pgpass_lookup("\\*:*:*:*:pw", ["h", "1", "d", "u"]), None);
    }

    #[test]
    fn pgpass_file_is_used_without_a_password() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "localhost:5432:replication:u:from-file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = [("PGPASSFILE", file.to_str().unwrap()), ("PGUSER", "u")];
        let c = parse("host=/tmp", &env).unwrap();
        assert_eq!(c.password.as_deref(), Some("from-file"));
        let c = parse("host=/tmp password=given", &env).unwrap();
        assert_eq!(c.password.as_deref(), Some("given"));
        let c = parse("host=/tmp dbname=other", &env).unwrap();
        assert_eq!(c.password, None);
        // Group-readable files are ignored, as libpq does.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let c = parse("host=/tmp", &env).unwrap();
        assert_eq!(c.password, None);
        // `passfile` in the conninfo wins.
        let c = parse(
            &format!("host=/tmp passfile={}", dir.path().join("none").display()),
            &env,
        );
        assert_eq!(c.unwrap().password, None);
    }
}
