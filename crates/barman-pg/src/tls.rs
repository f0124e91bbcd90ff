//! TLS for PostgreSQL connections, with libpq's `sslmode` semantics, shared
//! by the replication client ([`crate::replication`]) and the SQL
//! connection ([`crate::postgres`]).
//!
//! - [`TlsOptions`]: `sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
//!   `sslsni`, `channel_binding` and the protocol versions, from a
//!   conninfo ([`TlsOptionsBuilder`]) and `PGSSLMODE`, `PGSSLROOTCERT`,
//!   `PGSSLCERT`, `PGSSLKEY`, `PGSSLSNI`, `PGCHANNELBINDING`,
//!   `PGSSLMINPROTOCOLVERSION`, `PGSSLMAXPROTOCOLVERSION`.
//! - [`SslMode`]: libpq's decision table — whether the first attempt asks
//!   for TLS, whether a server answering `N` may be talked to in plain
//!   text, and which failed attempt is retried the other way (`allow`
//!   retries with TLS after a plain refusal; `prefer` retries in plain text
//!   after a TLS failure).
//! - [`TlsOptions::client_config`]: the rustls [`ClientConfig`] on the
//!   `ring` provider: roots (`sslrootcert`, default
//!   `~/.postgresql/root.crt`, or `system`), the client certificate
//!   (default `~/.postgresql/postgresql.crt` and `.key` when present) and
//!   the verification libpq does for the mode — none, the chain
//!   (`verify-ca`, and `require` or weaker when a root certificate file
//!   exists), or the chain and the host name (`verify-full`, IP addresses
//!   included).
//! - [`server_end_point_hash`]: the `tls-server-end-point` channel-binding
//!   data for SCRAM-SHA-256-PLUS.
//! - [`MakeRustlsConnect`]: the connector tokio-postgres uses.
//!
//! Unix sockets never use TLS (libpq does the same). Errors name the
//! problem and the file or host involved, never a secret.

mod config;
mod connector;
mod der;

use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use config::{TlsVerification, server_name};
pub use connector::{HandshakeState, MakeRustlsConnect};
pub use der::server_end_point_hash;
pub use rustls::ClientConfig;

/// Errors building a TLS configuration or negotiating TLS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A TLS setting has a value libpq would refuse.
    #[error("invalid {key} `{value}`: {expected}")]
    InvalidValue {
        /// The conninfo key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// `sslrootcert=system` with a mode weaker than `verify-full`.
    #[error("weak sslmode \"{0}\" may not be used with sslrootcert=system (use \"verify-full\")")]
    WeakModeWithSystemRoots(SslMode),
    /// A TLS setting this client does not implement.
    #[error("{0} is not supported")]
    Unsupported(String),
    /// `verify-ca`/`verify-full` and no root certificate file.
    #[error(
        "root certificate file \"{}\" does not exist: provide the file (sslrootcert), use the \
         system's trusted roots with sslrootcert=system, or choose an sslmode that does not verify \
         the server's certificate",
        path.display()
    )]
    RootCertMissing {
        /// Where the file was looked for.
        path: PathBuf,
    },
    /// `verify-ca`/`verify-full` with no `sslrootcert` and no home directory.
    #[error(
        "could not get the home directory to locate the root certificate file: provide the file \
         (sslrootcert) or choose an sslmode that does not verify the server's certificate"
    )]
    NoHomeForRootCert,
    /// A certificate or key file cannot be read or holds nothing usable.
    #[error("{what} \"{}\": {reason}", path.display())]
    File {
        /// "root certificate file", "certificate file", "private key file".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// `sslrootcert=system` and the platform's trust store is empty or unreadable.
    #[error("sslrootcert=system: no trusted root certificates found on this system ({0})")]
    NoSystemRoots(String),
    /// rustls refused the configuration (protocol versions, the client key).
    #[error("TLS configuration: {0}")]
    Config(String),
    /// `verify-full` without a host name (only `hostaddr` or a unix socket).
    #[error("a host name must be given for a verified TLS connection (sslmode=verify-full)")]
    NoHostName,
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SslMode {
    /// Only a plain connection.
    Disable,
    /// Plain first; TLS if the server refuses the plain connection.
    Allow,
    /// TLS first (without verification unless a root certificate file
    /// exists); plain text if the server does not offer TLS or the TLS
    /// attempt fails. libpq's default.
    #[default]
    Prefer,
    /// TLS only; the certificate is verified as with `verify-ca` only when
    /// a root certificate file exists.
    Require,
    /// TLS only; the certificate chain must lead to a trusted root.
    VerifyCa,
    /// TLS only; the chain is verified and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    /// The conninfo spelling (`verify-full`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// Whether the first attempt sends an SSLRequest.
    pub fn tls_first(self) -> bool {
        !matches!(self, Self::Disable | Self::Allow)
    }

    /// Whether the session may go on in plain text when the server answers
    /// `N` to the SSLRequest (for `require` and stronger that is an error:
    /// the server does not support SSL).
    pub fn plain_allowed(self) -> bool {
        matches!(self, Self::Disable | Self::Allow | Self::Prefer)
    }

    /// Whether a root certificate file is required (`verify-ca`, `verify-full`).
    pub fn requires_root_cert(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }

    /// libpq's one retry after a failed attempt: `Some(true)` to try again
    /// with TLS, `Some(false)` in plain text, `None` to give up.
    /// `used_tls` says whether the failed attempt had started TLS (the
    /// server answered `S`).
    ///
    /// - `allow`: a plain attempt the server refused (an error during
    ///   start-up or authentication) is retried with TLS.
    /// - `prefer`: a TLS attempt whose handshake failed or that the server
    ///   refused is retried in plain text.
    /// - Everything else is final, and so are failures to reach the server.
    pub fn retry(self, used_tls: bool, failure: AttemptFailure) -> Option<bool> {
        match (self, used_tls, failure) {
            (Self::Allow, false, AttemptFailure::Refused) => Some(true),
            (Self::Prefer, true, AttemptFailure::Refused | AttemptFailure::Handshake) => {
                Some(false)
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, TlsError> {
        Ok(match s {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => {
                return Err(TlsError::InvalidValue {
                    key: "sslmode",
                    value: s.to_owned(),
                    expected: "disable, allow, prefer, require, verify-ca or verify-full",
                });
            }
        })
    }
}

/// How a connection attempt failed, for [`SslMode::retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptFailure {
    /// The server answered with an error during start-up or authentication
    /// (pg_hba.conf rejection, wrong password, ...).
    Refused,
    /// The TLS handshake failed (certificate verification included).
    Handshake,
    /// Anything else (the server cannot be reached, a protocol error, a
    /// client-side authentication problem): never retried.
    Other,
}

/// A failed connection attempt, for [`connect_with_retry`].
#[derive(Debug)]
pub struct FailedAttempt<E> {
    /// The attempt's error.
    pub error: E,
    /// Whether TLS had started (the server answered `S`).
    pub used_tls: bool,
    /// How it failed.
    pub failure: AttemptFailure,
}

/// Runs `attempt(with_tls)` as libpq does: with TLS first when `sslmode`
/// says so and `tls_possible` (TCP, not `disable`), then at most once more
/// the other way when [`SslMode::retry`] allows it (the first error is
/// logged as a warning naming `target`). The last error is returned.
pub fn connect_with_retry<T, E: std::fmt::Display>(
    sslmode: SslMode,
    tls_possible: bool,
    target: &str,
    mut attempt: impl FnMut(bool) -> Result<T, FailedAttempt<E>>,
) -> Result<T, E> {
    let first = tls_possible && sslmode.tls_first();
    let failed = match attempt(first) {
        Ok(conn) => return Ok(conn),
        Err(failed) => failed,
    };
    match sslmode.retry(failed.used_tls, failed.failure) {
        Some(next) if tls_possible => {
            tracing::warn!(
                "{target}: {}; trying again {} (sslmode={sslmode})",
                failed.error,
                if next { "with TLS" } else { "without TLS" }
            );
            attempt(next).map_err(|f| f.error)
        }
        _ => Err(failed.error),
    }
}

/// libpq's `channel_binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChannelBindingMode {
    /// Never use channel binding.
    Disable,
    /// Use SCRAM-SHA-256-PLUS when TLS is on and the server offers it.
    #[default]
    Prefer,
    /// Authentication must use SCRAM-SHA-256-PLUS (so TLS is needed).
    Require,
}

impl FromStr for ChannelBindingMode {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, TlsError> {
        Ok(match s {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            _ => {
                return Err(TlsError::InvalidValue {
                    key: "channel_binding",
                    value: s.to_owned(),
                    expected: "disable, prefer or require",
                });
            }
        })
    }
}

/// The SCRAM mechanism to answer an AuthenticationSASL request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramChoice {
    /// SCRAM-SHA-256-PLUS with `tls-server-end-point` binding (gs2 flag `p`).
    Plus,
    /// SCRAM-SHA-256; `client_supports_binding` is the gs2 flag `y` (TLS is
    /// on but the server offered no PLUS) rather than `n`.
    Plain {
        /// Whether to send `y` (binding possible, not offered) instead of `n`.
        client_supports_binding: bool,
    },
}

impl ChannelBindingMode {
    /// libpq's choice of SCRAM mechanism. `tls`: the session is encrypted;
    /// `offered_plus`: the server lists SCRAM-SHA-256-PLUS; `have_hash`: the
    /// server certificate's end-point hash could be computed. `require`
    /// without all three is an error message.
    pub fn scram(
        self,
        tls: bool,
        offered_plus: bool,
        have_hash: bool,
    ) -> Result<ScramChoice, &'static str> {
        match self {
            Self::Disable => Ok(ScramChoice::Plain {
                client_supports_binding: false,
            }),
            _ if tls && offered_plus && have_hash => Ok(ScramChoice::Plus),
            Self::Require if !tls => Err("channel binding required, but SSL not in use"),
            Self::Require if !offered_plus => Err(
                "channel binding is required, but the server did not offer an authentication \
                 method that supports channel binding",
            ),
            Self::Require => Err(
                "channel binding is required, but the server certificate's signature algorithm \
                 gives no tls-server-end-point hash",
            ),
            // The server offered PLUS and we cannot bind: `n`, since `y`
            // would tell it a downgrade happened.
            Self::Prefer => Ok(ScramChoice::Plain {
                client_supports_binding: tls && !offered_plus,
            }),
        }
    }
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// `~/.postgresql/root.crt`, used when it exists.
    Default,
    /// A PEM file named by `sslrootcert`.
    File(PathBuf),
    /// `sslrootcert=system`: the platform's trust store.
    System,
}

/// The TLS settings of one connection (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `sslmode` (default `prefer`; `verify-full` with `sslrootcert=system`).
    pub sslmode: SslMode,
    /// `sslrootcert`.
    pub root_cert: RootCert,
    /// `sslcert` (default `~/.postgresql/postgresql.crt`, used when it exists).
    pub client_cert: Option<PathBuf>,
    /// `sslkey` (default `~/.postgresql/postgresql.key`).
    pub client_key: Option<PathBuf>,
    /// `sslsni`: send the host name as Server Name Indication (never for an
    /// IP address).
    pub sni: bool,
    /// `channel_binding`.
    pub channel_binding: ChannelBindingMode,
    /// `ssl_min_protocol_version` (default TLSv1.2, also the lowest rustls speaks).
    pub min_protocol: TlsVersion,
    /// `ssl_max_protocol_version` (default: the highest, TLSv1.3).
    pub max_protocol: TlsVersion,
    /// The home directory holding `.postgresql/` (from `HOME`).
    pub home: Option<PathBuf>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            sslmode: SslMode::Prefer,
            root_cert: RootCert::Default,
            client_cert: None,
            client_key: None,
            sni: true,
            channel_binding: ChannelBindingMode::Prefer,
            min_protocol: TlsVersion::Tls12,
            max_protocol: TlsVersion::Tls13,
            home: None,
        }
    }
}

/// A TLS protocol version this client can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsOptions {
    /// `~/.postgresql/<name>` when the home directory is known.
    fn in_home(&self, name: &str) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(".postgresql").join(name))
    }

    /// The root certificate file this connection would read (`None` for
    /// `system`, or when the home directory is unknown).
    pub fn root_cert_path(&self) -> Option<PathBuf> {
        match &self.root_cert {
            RootCert::Default => self.in_home("root.crt"),
            RootCert::File(p) => Some(p.clone()),
            RootCert::System => None,
        }
    }

    /// The client certificate file (given, or the default in `~/.postgresql`).
    pub fn client_cert_path(&self) -> Option<PathBuf> {
        self.client_cert
            .clone()
            .or_else(|| self.in_home("postgresql.crt"))
    }

    /// The client key file (given, or the default in `~/.postgresql`).
    pub fn client_key_path(&self) -> Option<PathBuf> {
        self.client_key
            .clone()
            .or_else(|| self.in_home("postgresql.key"))
    }
}

/// Collects the TLS keys of a conninfo, then resolves them with the
/// environment ([`resolve`](Self::resolve)). Empty values count as unset,
/// as in libpq.
#[derive(Debug, Default, Clone)]
pub struct TlsOptionsBuilder {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
    sslsni: Option<String>,
    channel_binding: Option<String>,
    min_protocol: Option<String>,
    max_protocol: Option<String>,
    unsupported: Vec<&'static str>,
}

/// Conninfo keys of TLS settings this client refuses rather than ignore
/// (ignoring them would weaken what was asked).
const UNSUPPORTED_KEYS: [&str; 3] = ["sslcrl", "sslcrldir", "sslcertmode"];

/// Conninfo keys of TLS settings that do not change this client's
/// behaviour (`sslpassword`: encrypted keys are refused when read;
/// `sslcompression`: no TLS library still compresses).
const IGNORED_KEYS: [&str; 2] = ["sslpassword", "sslcompression"];

impl TlsOptionsBuilder {
    /// Takes `key = value` if `key` is a TLS setting; `false` if it is not.
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            "sslsni" => &mut self.sslsni,
            "channel_binding" => &mut self.channel_binding,
            "ssl_min_protocol_version" => &mut self.min_protocol,
            "ssl_max_protocol_version" => &mut self.max_protocol,
            // PostgreSQL 17's direct TLS negotiation (no SSLRequest).
            "sslnegotiation" => {
                if !matches!(value, "" | "postgres") {
                    self.unsupported.push("sslnegotiation=direct");
                }
                return true;
            }
            _ => {
                if let Some(k) = UNSUPPORTED_KEYS.iter().find(|k| **k == key) {
                    if !value.is_empty() {
                        self.unsupported.push(k);
                    }
                    return true;
                }
                return IGNORED_KEYS.contains(&key);
            }
        };
        *slot = Some(value.to_owned()).filter(|v| !v.is_empty());
        true
    }

    /// The settings, with libpq's environment variables for what the
    /// conninfo left unset and `HOME` for the `~/.postgresql` defaults.
    pub fn resolve(self, env: &dyn Fn(&str) -> Option<String>) -> Result<TlsOptions, TlsError> {
        if let Some(key) = self.unsupported.first() {
            return Err(TlsError::Unsupported(format!(
                "`{key}` (certificate revocation lists, sslcertmode and direct TLS negotiation)"
            )));
        }
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let root_cert = match self.sslrootcert.or_else(|| env("PGSSLROOTCERT")) {
            None => RootCert::Default,
            Some(v) if v == "system" => RootCert::System,
            Some(v) => RootCert::File(PathBuf::from(v)),
        };
        let sslmode = match self.sslmode.or_else(|| env("PGSSLMODE")) {
            Some(v) => v.parse()?,
            // libpq: sslrootcert=system makes verify-full the default.
            None if root_cert == RootCert::System => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if root_cert == RootCert::System && sslmode != SslMode::VerifyFull {
            return Err(TlsError::WeakModeWithSystemRoots(sslmode));
        }
        let sni = match self.sslsni.or_else(|| env("PGSSLSNI")).as_deref() {
            None | Some("1") => true,
            Some("0") => false,
            Some(v) => {
                return Err(TlsError::InvalidValue {
                    key: "sslsni",
                    value: v.to_owned(),
                    expected: "0 or 1",
                });
            }
        };
        let channel_binding = match self.channel_binding.or_else(|| env("PGCHANNELBINDING")) {
            Some(v) => v.parse()?,
            None => ChannelBindingMode::Prefer,
        };
        let min_protocol = match self.min_protocol.or_else(|| env("PGSSLMINPROTOCOLVERSION")) {
            // rustls speaks nothing older than TLS 1.2: a lower minimum is met.
            Some(v) => parse_version(&v, "ssl_min_protocol_version")?.max(TlsVersion::Tls12),
            None => TlsVersion::Tls12,
        };
        let max_protocol = match self.max_protocol.or_else(|| env("PGSSLMAXPROTOCOLVERSION")) {
            Some(v) if matches!(v.as_str(), "TLSv1" | "TLSv1.1") => {
                return Err(TlsError::Unsupported(format!(
                    "ssl_max_protocol_version `{v}` (TLS older than 1.2)"
                )));
            }
            Some(v) => parse_version(&v, "ssl_max_protocol_version")?,
            None => TlsVersion::Tls13,
        };
        if min_protocol > max_protocol {
            return Err(TlsError::Config(
                "ssl_min_protocol_version is higher than ssl_max_protocol_version".into(),
            ));
        }
        Ok(TlsOptions {
            sslmode,
            root_cert,
            client_cert: self.sslcert.or_else(|| env("PGSSLCERT")).map(PathBuf::from),
            client_key: self.sslkey.or_else(|| env("PGSSLKEY")).map(PathBuf::from),
            sni,
            channel_binding,
            min_protocol,
            max_protocol,
            home: env("HOME").map(PathBuf::from),
        })
    }
}

fn parse_version(value: &str, key: &'static str) -> Result<TlsVersion, TlsError> {
    match value {
        "TLSv1" | "TLSv1.1" | "TLSv1.2" => Ok(TlsVersion::Tls12),
        "TLSv1.3" => Ok(TlsVersion::Tls13),
        _ => Err(TlsError::InvalidValue {
            key,
            value: value.to_owned(),
            expected: "TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3",
        }),
    }
}

/// The rustls error inside an I/O error from a TLS stream, if any.
pub fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A handshake failure in words: certificate verification failures say
/// what is wrong with the server's certificate.
pub fn describe_handshake_error(error: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(cert) => {
            let why = match cert {
                C::UnknownIssuer => "the server's certificate is not signed by a trusted CA \
                                     (unknown issuer; check sslrootcert)"
                    .to_owned(),
                C::NotValidForName => {
                    "the server's certificate does not match the host name".to_owned()
                }
                C::NotValidForNameContext {
                    expected,
                    presented,
                } => {
                    let expected = match expected {
                        rustls::pki_types::ServerName::DnsName(n) => n.as_ref().to_owned(),
                        rustls::pki_types::ServerName::IpAddress(ip) => {
                            std::net::IpAddr::from(*ip).to_string()
                        }
                        other => format!("{other:?}"),
                    };
                    format!(
                        "the server's certificate does not match the host name \"{expected}\" \
                         (it names {})",
                        presented.join(", ")
                    )
                }
                C::Expired | C::ExpiredContext { .. } => {
                    "the server's certificate has expired".to_owned()
                }
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    "the server's certificate is not valid yet".to_owned()
                }
                other => format!("{other:?}"),
            };
            format!("certificate verify failed: {why}")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the server ended the TLS handshake with the alert {alert:?}")
        }
        other => other.to_string(),
    }
}

/// Whether `path` can be looked at (libpq treats a root or client
/// certificate it cannot `stat` as absent).
fn exists(path: &Path) -> bool {
    std::fs::metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(pairs: &[(&str, &str)], env: &[(&str, &str)]) -> Result<TlsOptions, TlsError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut b = TlsOptionsBuilder::default();
        for (k, v) in pairs {
            assert!(b.set(k, v), "{k} is a TLS key");
        }
        b.resolve(&|name| env.get(name).cloned())
    }

    #[test]
    fn sslmode_decision_table() {
        use AttemptFailure::{Handshake, Other, Refused};
        use SslMode::{Allow, Disable, Prefer, Require, VerifyCa, VerifyFull};
        // (mode, SSLRequest first, plain after 'N', root file required)
        for (mode, first, plain, root) in [
            (Disable, false, true, false),
            (Allow, false, true, false),
            (Prefer, true, true, false),
            (Require, true, false, false),
            (VerifyCa, true, false, true),
            (VerifyFull, true, false, true),
        ] {
            assert_eq!(mode.tls_first(), first, "{mode}");
            assert_eq!(mode.plain_allowed(), plain, "{mode}");
            assert_eq!(mode.requires_root_cert(), root, "{mode}");
            assert_eq!(mode.as_str().parse::<SslMode>().unwrap(), mode);
        }
        // The one retry libpq makes.
        assert_eq!(Allow.retry(false, Refused), Some(true));
        assert_eq!(Allow.retry(false, Other), None);
        assert_eq!(Allow.retry(true, Refused), None);
        assert_eq!(Prefer.retry(true, Refused), Some(false));
        assert_eq!(Prefer.retry(true, Handshake), Some(false));
        assert_eq!(Prefer.retry(true, Other), None);
        // The server said 'N' and then refused: plain already, nothing to retry.
        assert_eq!(Prefer.retry(false, Refused), None);
        for mode in [Disable, Require, VerifyCa, VerifyFull] {
            for used in [false, true] {
                for f in [Refused, Handshake, Other] {
                    assert_eq!(mode.retry(used, f), None, "{mode} {used} {f:?}");
                }
            }
        }
        assert!(matches!(
            "sometimes".parse::<SslMode>(),
            Err(TlsError::InvalidValue { key: "sslmode", .. })
        ));
        assert_eq!(SslMode::default(), Prefer);
    }

    #[test]
    fn one_retry_the_other_way() {
        use AttemptFailure::{Handshake, Other, Refused};
        let run = |mode: SslMode, possible: bool, fail: &[(bool, AttemptFailure)]| {
            let mut tries = Vec::new();
            let result = connect_with_retry(mode, possible, "h:1", |tls| {
                tries.push(tls);
                match fail.get(tries.len() - 1) {
                    Some(&(used_tls, failure)) => Err(FailedAttempt {
                        error: format!("failure {}", tries.len()),
                        used_tls,
                        failure,
                    }),
                    None => Ok(()),
                }
            });
            (tries, result)
        };
        // First attempts.
        assert_eq!(run(SslMode::Prefer, true, &[]).0, [true]);
        assert_eq!(run(SslMode::Allow, true, &[]).0, [false]);
        assert_eq!(run(SslMode::Require, false, &[]).0, [false]);
        // prefer: TLS refused, plain succeeds; allow: plain refused, TLS succeeds.
        let (tries, r) = run(SslMode::Prefer, true, &[(true, Handshake)]);
        assert_eq!((tries, r), (vec![true, false], Ok(())));
        let (tries, r) = run(SslMode::Allow, true, &[(false, Refused)]);
        assert_eq!((tries, r), (vec![false, true], Ok(())));
        // Only one retry, and the last error is returned.
        let (tries, r) = run(SslMode::Prefer, true, &[(true, Refused), (false, Refused)]);
        assert_eq!((tries, r), (vec![true, false], Err("failure 2".to_owned())));
        // No retry: final failures, strict modes, no TLS possible (unix sockets).
        for (mode, possible, fail) in [
            (SslMode::Prefer, true, (true, Other)),
            (SslMode::Require, true, (true, Handshake)),
            (SslMode::Allow, false, (false, Refused)),
        ] {
            let (tries, r) = run(mode, possible, &[fail]);
            assert_eq!(tries.len(), 1, "{mode}");
            assert_eq!(r, Err("failure 1".to_owned()));
        }
    }

    #[test]
    fn channel_binding_choices() {
        use ChannelBindingMode::{Disable, Prefer, Require};
        let plain = |y| {
            Ok(ScramChoice::Plain {
                client_supports_binding: y,
            })
        };
        // (mode, tls, offered PLUS, hash) -> choice
        assert_eq!(Prefer.scram(true, true, true), Ok(ScramChoice::Plus));
        assert_eq!(Require.scram(true, true, true), Ok(ScramChoice::Plus));
        assert_eq!(Disable.scram(true, true, true), plain(false));
        assert_eq!(Prefer.scram(false, false, false), plain(false));
        assert_eq!(Prefer.scram(true, false, true), plain(true));
        // Offered but no hash: `n`, never `y` (that would be a downgrade).
        assert_eq!(Prefer.scram(true, true, false), plain(false));
        assert!(
            Require
                .scram(false, false, false)
                .unwrap_err()
                .contains("SSL not in use")
        );
        assert!(
            Require
                .scram(true, false, true)
                .unwrap_err()
                .contains("did not offer")
        );
        assert!(Require.scram(true, true, false).is_err());
    }

    #[test]
    fn options_from_conninfo_and_environment() {
        let o = resolve(&[], &[("HOME", "/home/b")]).unwrap();
        assert_eq!(o.sslmode, SslMode::Prefer);
        assert_eq!(o.root_cert, RootCert::Default);
        assert_eq!(
            o.root_cert_path().unwrap(),
            Path::new("/home/b/.postgresql/root.crt")
        );
        assert_eq!(
            o.client_cert_path().unwrap(),
            Path::new("/home/b/.postgresql/postgresql.crt")
        );
        assert_eq!(
            o.client_key_path().unwrap(),
            Path::new("/home/b/.postgresql/postgresql.key")
        );
        assert!(o.sni);
        assert_eq!(o.channel_binding, ChannelBindingMode::Prefer);
        assert_eq!(
            (o.min_protocol, o.max_protocol),
            (TlsVersion::Tls12, TlsVersion::Tls13)
        );

        let env = [
            ("PGSSLMODE", "verify-ca"),
            ("PGSSLROOTCERT", "/env/ca.crt"),
            ("PGSSLCERT", "/env/c.crt"),
            ("PGSSLKEY", "/env/c.key"),
            ("PGSSLSNI", "0"),
            ("PGCHANNELBINDING", "require"),
            ("PGSSLMINPROTOCOLVERSION", "TLSv1.3"),
        ];
        let o = resolve(&[], &env).unwrap();
        assert_eq!(o.sslmode, SslMode::VerifyCa);
        assert_eq!(o.root_cert, RootCert::File("/env/ca.crt".into()));
        assert_eq!(o.client_cert.as_deref(), Some(Path::new("/env/c.crt")));
        assert_eq!(o.client_key.as_deref(), Some(Path::new("/env/c.key")));
        assert!(!o.sni);
        assert_eq!(o.channel_binding, ChannelBindingMode::Require);
        assert_eq!(o.min_protocol, TlsVersion::Tls13);
        assert_eq!(o.home, None);
        assert_eq!(o.root_cert_path().unwrap(), Path::new("/env/ca.crt"));

        // The conninfo wins over the environment; empty values are unset.
        let o = resolve(
            &[
                ("sslmode", "require"),
                ("sslrootcert", "/ci/ca.pem"),
                ("sslsni", "1"),
                ("sslcert", ""),
                ("channel_binding", "disable"),
            ],
            &env,
        )
        .unwrap();
        assert_eq!(o.sslmode, SslMode::Require);
        assert_eq!(o.root_cert, RootCert::File("/ci/ca.pem".into()));
        assert!(o.sni);
        assert_eq!(o.client_cert.as_deref(), Some(Path::new("/env/c.crt")));
        assert_eq!(o.channel_binding, ChannelBindingMode::Disable);

        // sslrootcert=system: verify-full by default, weaker modes refused.
        let o = resolve(&[("sslrootcert", "system")], &[]).unwrap();
        assert_eq!(
            (o.sslmode, &o.root_cert),
            (SslMode::VerifyFull, &RootCert::System)
        );
        assert_eq!(o.root_cert_path(), None);
        for mode in ["disable", "prefer", "require", "verify-ca"] {
            let e = resolve(&[("sslrootcert", "system"), ("sslmode", mode)], &[]).unwrap_err();
            assert!(
                matches!(e, TlsError::WeakModeWithSystemRoots(_)),
                "{mode}: {e}"
            );
            assert!(e.to_string().contains("verify-full"), "{e}");
        }
    }

    #[test]
    fn invalid_and_unsupported_settings() {
        for (k, v) in [
            ("sslmode", "sometimes"),
            ("sslsni", "yes"),
            ("channel_binding", "maybe"),
            ("ssl_min_protocol_version", "SSLv3"),
        ] {
            let e = resolve(&[(k, v)], &[]).unwrap_err();
            assert!(matches!(e, TlsError::InvalidValue { .. }), "{k}={v}: {e}");
            assert!(e.to_string().contains(v), "{e}");
        }
        for pairs in [
            &[("sslcrl", "/x.crl")][..],
            &[("sslcrldir", "/crl")],
            &[("ssl_max_protocol_version", "TLSv1.1")],
            &[("sslnegotiation", "direct")],
        ] {
            let e = resolve(pairs, &[]).unwrap_err();
            assert!(matches!(e, TlsError::Unsupported(_)), "{pairs:?}: {e}");
        }
        // An empty sslcrl is unset.
        assert!(resolve(&[("sslcrl", ""), ("sslnegotiation", "postgres")], &[]).is_ok());
        // Ignored keys are still TLS keys; other keys are not.
        let mut b = TlsOptionsBuilder::default();
        assert!(b.set("sslpassword", "x"));
        assert!(!b.set("host", "x"));
        let e = resolve(
            &[
                ("ssl_min_protocol_version", "TLSv1.3"),
                ("ssl_max_protocol_version", "TLSv1.2"),
            ],
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, TlsError::Config(_)), "{e}");
        // A lower minimum is met by TLS 1.2.
        let o = resolve(&[("ssl_min_protocol_version", "TLSv1")], &[]).unwrap();
        assert_eq!(o.min_protocol, TlsVersion::Tls12);
    }

    #[test]
    fn handshake_errors_in_words() {
        use rustls::CertificateError as C;
        let text = describe_handshake_error(&rustls::Error::InvalidCertificate(C::UnknownIssuer));
        assert!(text.contains("certificate verify failed"), "{text}");
        assert!(text.contains("not signed by a trusted CA"), "{text}");
        let text = describe_handshake_error(&rustls::Error::InvalidCertificate(C::NotValidForName));
        assert!(text.contains("does not match the host name"), "{text}");
        let text = describe_handshake_error(&rustls::Error::InvalidCertificate(
            C::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                presented: vec!["DnsName(\"db.example.com\")".into()],
            },
        ));
        assert!(
            text.contains("\"127.0.0.1\"") && text.contains("db.example.com"),
            "{text}"
        );
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(C::Expired),
        );
        let inner = rustls_error(&io).unwrap();
        assert!(describe_handshake_error(inner).contains("expired"));
        assert!(rustls_error(&std::io::Error::other("x")).is_none());
    }
}
