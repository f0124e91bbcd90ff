//! The rustls client configuration for [`TlsOptions`]: trusted roots,
//! client certificate, protocol versions and libpq's verification.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{RootCert, SslMode, TlsError, TlsOptions, TlsVersion, exists};

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVerification {
    /// Nothing (`require` or weaker with no root certificate file): the
    /// session is encrypted, the server not authenticated.
    None,
    /// The chain leads to a trusted root (`verify-ca`, and weaker modes
    /// when a root certificate file exists, as libpq does).
    Chain,
    /// The chain, and the certificate names the host (`verify-full`).
    ChainAndHost,
}

/// ALPN protocol name of PostgreSQL 17+ (sent by libpq 17 too; older
/// servers ignore it).
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

impl TlsOptions {
    /// Builds the rustls configuration for these settings, on the `ring`
    /// provider: the roots are read (an error for `verify-ca`/`verify-full`
    /// without a root certificate file), the client certificate and key
    /// are loaded when the certificate file exists, and the server's
    /// certificate is checked as libpq does for the mode (see
    /// [`TlsVerification`]).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
            (TlsVersion::Tls12, &rustls::version::TLS12),
            (TlsVersion::Tls13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| (self.min_protocol..=self.max_protocol).contains(v))
        .map(|(_, v)| v)
        .collect();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let roots = self.roots()?;
        let verification = match (&roots, self.sslmode) {
            (None, _) => TlsVerification::None,
            (Some(_), SslMode::VerifyFull) => TlsVerification::ChainAndHost,
            (Some(_), _) => TlsVerification::Chain,
        };
        tracing::debug!(
            "TLS (sslmode={}): server certificate check {verification:?}",
            self.sslmode
        );
        let verifier: Arc<dyn ServerCertVerifier> = match (verification, roots) {
            (TlsVerification::ChainAndHost, Some(roots)) => {
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?
            }
            (_, roots) => Arc::new(LibpqVerifier {
                roots: roots.map(Arc::new),
                provider,
            }),
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match self.client_identity()? {
            Some((certs, key, key_path)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| file_error("private key file", &key_path, e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        config.enable_sni = self.sni;
        config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        Ok(Arc::new(config))
    }

    /// The trusted roots, or `None` when nothing is verified.
    fn roots(&self) -> Result<Option<RootCertStore>, TlsError> {
        let mut store = RootCertStore::empty();
        if self.root_cert == RootCert::System {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "the store is empty".to_owned(), ToString::to_string);
                return Err(TlsError::NoSystemRoots(why));
            }
            return Ok(Some(store));
        }
        let Some(path) = self.root_cert_path() else {
            return if self.sslmode.requires_root_cert() {
                Err(TlsError::NoHomeForRootCert)
            } else {
                Ok(None)
            };
        };
        if !exists(&path) {
            if self.sslmode.requires_root_cert() {
                return Err(TlsError::RootCertMissing { path });
            }
            if matches!(self.root_cert, RootCert::File(_)) {
                tracing::warn!(
                    "root certificate file \"{}\" does not exist: the server's certificate is \
                     not verified (sslmode={})",
                    path.display(),
                    self.sslmode
                );
            }
            return Ok(None);
        }
        for cert in load_certs(&path, "root certificate file")? {
            store
                .add(cert)
                .map_err(|e| file_error("root certificate file", &path, e.to_string()))?;
        }
        Ok(Some(store))
    }

    /// The client certificate chain and key, when the certificate file
    /// exists (libpq sends none otherwise); then the key must exist too.
    #[allow(clippy::type_complexity)]
    fn client_identity(
        &self,
    ) -> Result<
        Option<(
            Vec<CertificateDer<'static>>,
            PrivateKeyDer<'static>,
            PathBuf,
        )>,
        TlsError,
    > {
        let Some(cert_path) = self.client_cert_path().filter(|p| exists(p)) else {
            return Ok(None);
        };
        let certs = load_certs(&cert_path, "certificate file")?;
        let key_path = self.client_key_path().ok_or_else(|| {
            file_error(
                "certificate file",
                &cert_path,
                "certificate present, but no private key file (sslkey)".into(),
            )
        })?;
        check_key_file(&key_path)?;
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
            let reason = match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no unencrypted private key found (encrypted keys and sslpassword are not \
                     supported)"
                        .to_owned()
                }
                other => other.to_string(),
            };
            file_error("private key file", &key_path, reason)
        })?;
        Ok(Some((certs, key, key_path)))
    }
}

/// The name the handshake uses for `host`: an IP address (checked against
/// the certificate's IP SANs, never sent as SNI) or a DNS name. With no
/// usable name (a unix socket, only `hostaddr`, a name rustls rejects) only
/// `verify-full` fails; the other modes do not check the name.
pub fn server_name(host: &str, sslmode: SslMode) -> Result<ServerName<'static>, TlsError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    match DnsName::try_from(host.to_owned()) {
        Ok(name) if !host.starts_with('/') => Ok(ServerName::DnsName(name)),
        _ if sslmode == SslMode::VerifyFull => Err(TlsError::NoHostName),
        _ => Ok(ServerName::IpAddress(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED).into(),
        )),
    }
}

fn file_error(what: &'static str, path: &Path, reason: String) -> TlsError {
    TlsError::File {
        what,
        path: path.to_path_buf(),
        reason,
    }
}

/// Every certificate of a PEM file (at least one).
fn load_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    // Read first: an unreadable file says so rather than "no certificate".
    let pem = std::fs::read(path).map_err(|e| file_error(what, path, e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// libpq's checks of the private key file: a regular file, not readable by
/// group or others (group-readable allowed when root owns it).
fn check_key_file(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::MetadataExt as _;
    let what = "private key file";
    let meta = std::fs::metadata(path).map_err(|e| {
        file_error(
            what,
            path,
            format!("certificate present, but not private key file ({e})"),
        )
    })?;
    if !meta.is_file() {
        return Err(file_error(what, path, "not a regular file".into()));
    }
    let euid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let mode = meta.mode();
    let too_open = if meta.uid() == 0 && euid != Some(0) {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    };
    if too_open {
        return Err(file_error(
            what,
            path,
            "has group or world access; permissions should be u=rw (0600) or less if owned by \
             the current user, or u=rw,g=r (0640) or less if owned by root"
                .into(),
        ));
    }
    Ok(())
}

/// libpq's checks short of the host name: the chain against `roots`, or
/// nothing at all without roots. The handshake signatures are always
/// checked (that is TLS itself, not certificate verification).
#[derive(Debug)]
struct LibpqVerifier {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn options(mode: SslMode, root: RootCert, home: Option<&Path>) -> TlsOptions {
        TlsOptions {
            sslmode: mode,
            root_cert: root,
            home: home.map(Path::to_path_buf),
            ..TlsOptions::default()
        }
    }

    #[test]
    fn root_certificate_files() {
        let home = tempfile::tempdir().unwrap();
        // No ~/.postgresql/root.crt: nothing verified, unless the mode verifies.
        for mode in [SslMode::Prefer, SslMode::Require] {
            let o = options(mode, RootCert::Default, Some(home.path()));
            assert!(o.roots().unwrap().is_none(), "{mode}");
            assert!(o.client_config().is_ok());
        }
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let o = options(mode, RootCert::Default, Some(home.path()));
            let e = o.client_config().unwrap_err();
            assert!(matches!(e, TlsError::RootCertMissing { .. }), "{e}");
            assert!(e.to_string().contains(".postgresql/root.crt"), "{e}");
            assert!(matches!(
                options(mode, RootCert::Default, None).client_config(),
                Err(TlsError::NoHomeForRootCert)
            ));
        }
        // An explicit missing file with require: libpq does not verify.
        let missing = RootCert::File(home.path().join("none.crt"));
        assert!(
            options(SslMode::Require, missing.clone(), None)
                .roots()
                .unwrap()
                .is_none()
        );
        let e = options(SslMode::VerifyFull, missing, None)
            .client_config()
            .unwrap_err();
        assert!(e.to_string().contains("none.crt"), "{e}");
        // A file with no certificate in it, and a file that is not PEM.
        let empty = home.path().join("empty.crt");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let e = options(SslMode::Require, RootCert::File(empty.clone()), None)
            .client_config()
            .unwrap_err();
        assert!(matches!(e, TlsError::File { .. }), "{e}");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let dir = RootCert::File(home.path().to_path_buf());
        let e = options(SslMode::VerifyCa, dir, None)
            .client_config()
            .unwrap_err();
        assert!(matches!(e, TlsError::File { .. }), "{e}");
        // A certificate that does not parse is refused by name.
        std::fs::write(
            &empty,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = options(SslMode::VerifyCa, RootCert::File(empty), None)
            .client_config()
            .unwrap_err();
        assert!(e.to_string().contains("empty.crt"), "{e}");
    }

    #[test]
    fn client_key_checks() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        std::fs::write(
            &key,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_key_file(&key).unwrap_err();
        assert!(e.to_string().contains("group or world access"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_key_file(&key).unwrap();
        assert!(
            check_key_file(dir.path())
                .unwrap_err()
                .to_string()
                .contains("regular file")
        );
        assert!(check_key_file(&dir.path().join("none")).is_err());
        // No certificate file: no client identity, whatever the key.
        let o = TlsOptions {
            client_cert: Some(dir.path().join("none.crt")),
            client_key: Some(key.clone()),
            ..TlsOptions::default()
        };
        assert!(o.client_identity().unwrap().is_none());
    }

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("127.0.0.1", SslMode::VerifyFull).unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("::1", SslMode::VerifyFull).unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("db.example.com", SslMode::VerifyFull).unwrap(),
            ServerName::DnsName(_)
        ));
        for bad in ["", "/var/run/postgresql"] {
            assert!(matches!(
                server_name(bad, SslMode::VerifyFull),
                Err(TlsError::NoHostName)
            ));
            assert!(server_name(bad, SslMode::Require).is_ok());
        }
    }

    #[test]
    fn protocol_versions() {
        let o = TlsOptions {
            min_protocol: TlsVersion::Tls13,
            ..TlsOptions::default()
        };
        assert!(o.client_config().is_ok());
        let o = TlsOptions {
            max_protocol: TlsVersion::Tls12,
            ..TlsOptions::default()
        };
        assert!(o.client_config().is_ok());
    }
}
