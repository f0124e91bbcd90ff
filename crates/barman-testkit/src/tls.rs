//! A throw-away certificate authority made with the `openssl` CLI: a CA,
//! server certificates with the SANs a test asks for, client certificates
//! for `cert` authentication. ECDSA P-256 keys, valid for three days.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::error::{Error, Result};
use crate::process;

/// The `openssl` binary (Debian's `openssl` package).
pub const OPENSSL: &str = "/usr/bin/openssl";

/// A test CA in its own temporary directory (mode 0755, so that the
/// `postgres` user reaches it). Private keys are mode 0600 and belong to
/// the key owner given to [`TestPki::new`]: PostgreSQL and libpq refuse
/// keys others can read.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
    key_owner: Option<String>,
    serial: std::cell::Cell<u32>,
}

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertPair {
    /// The certificate.
    pub cert: PathBuf,
    /// The private key (mode 0600).
    pub key: PathBuf,
}

impl TestPki {
    /// Creates the CA (`CN=<name>`). Keys are chowned to `key_owner` when
    /// given (e.g. `postgres`, which runs both the server and barman in
    /// the end-to-end tests).
    pub fn new(name: &str, key_owner: Option<&str>) -> Result<Self> {
        process::require(Path::new(OPENSSL), "apt-get install -y openssl")?;
        let dir = tempfile::Builder::new()
            .prefix("barman-e2e-pki-")
            .tempdir_in("/tmp")
            .map_err(|e| Error::io("/tmp", e))?;
        process::chmod(dir.path(), 0o755)?;
        let pki = Self {
            dir,
            key_owner: key_owner.map(str::to_owned),
            serial: std::cell::Cell::new(1),
        };
        let (cert, key) = (pki.path("ca.crt"), pki.path("ca.key"));
        let mut cmd = Command::new(OPENSSL);
        cmd.args(["req", "-x509", "-new", "-nodes", "-days", "3"])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-subj", &format!("/CN={name}")])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        process::run(&mut cmd)?;
        process::chmod(&cert, 0o644)?;
        Ok(pki)
    }

    /// The CA certificate (what `sslrootcert` names).
    pub fn ca_cert(&self) -> PathBuf {
        self.path("ca.crt")
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server certificate `<file>.crt`/`.key` for `CN=<cn>` with
    /// `subjectAltName` entries `sans` (`IP:127.0.0.1`, `DNS:localhost`).
    pub fn server_cert(&self, file: &str, cn: &str, sans: &[&str]) -> Result<CertPair> {
        let ext = format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n",
            sans.join(",")
        );
        self.issue(file, cn, &ext)
    }

    /// A client certificate `<file>.crt`/`.key` for `CN=<role>` (what
    /// `cert` authentication maps to the role).
    pub fn client_cert(&self, file: &str, role: &str) -> Result<CertPair> {
        self.issue(
            file,
            role,
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=clientAuth\n",
        )
    }

    fn issue(&self, file: &str, cn: &str, ext: &str) -> Result<CertPair> {
        let (cert, key) = (
            self.path(&format!("{file}.crt")),
            self.path(&format!("{file}.key")),
        );
        let (csr, ext_file) = (
            self.path(&format!("{file}.csr")),
            self.path(&format!("{file}.ext")),
        );
        fs::write(&ext_file, ext).map_err(|e| Error::io(&ext_file, e))?;
        let mut cmd = Command::new(OPENSSL);
        cmd.args(["req", "-new", "-nodes"])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", &format!("/CN={cn}")]);
        process::run(&mut cmd)?;
        let serial = self.serial.get() + 1;
        self.serial.set(serial);
        let mut cmd = Command::new(OPENSSL);
        cmd.args(["x509", "-req", "-days", "3"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(self.ca_cert())
            .arg("-CAkey")
            .arg(self.path("ca.key"))
            .args(["-set_serial", &serial.to_string()])
            .arg("-extfile")
            .arg(&ext_file)
            .arg("-out")
            .arg(&cert);
        process::run(&mut cmd)?;
        process::chmod(&cert, 0o644)?;
        process::chmod(&key, 0o600)?;
        if let Some(owner) = &self.key_owner {
            process::chown_to(&key, owner)?;
        }
        Ok(CertPair { cert, key })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
