//! A key-only OpenSSH server on a loopback port.

use std::fs;
use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Error, Result};
use crate::process;

const SSHD: &str = "/usr/sbin/sshd";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";
const SSH: &str = "/usr/bin/ssh";
const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Builder for an [`Sshd`]; see [`Sshd::builder`].
#[derive(Debug, Clone, Default)]
pub struct SshdBuilder {
    user: Option<String>,
    extra: Vec<String>,
}

impl SshdBuilder {
    /// The user that logs in (default: the user running the tests).
    ///
    /// Any user needs the tests to run as root (sshd then runs as root, with
    /// PAM so that accounts without a password, such as `postgres`, may log in
    /// by key). A non-root sshd can only log in its own user.
    #[must_use]
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Adds a line to `sshd_config`, e.g. `SetEnv PATH=/dir:/usr/bin:/bin`
    /// so that a command run over ssh finds the binaries under test.
    #[must_use]
    pub fn config_line(mut self, line: impl Into<String>) -> Self {
        self.extra.push(line.into());
        self
    }

    /// Generates keys, writes the config and starts `sshd -D` on a free port,
    /// waiting until it answers with an SSH banner.
    pub fn start(self) -> Result<Sshd> {
        process::require(Path::new(SSHD), "apt-get install -y openssh-server")?;
        process::require(Path::new(SSH_KEYGEN), "apt-get install -y openssh-client")?;
        process::require(Path::new(SSH), "apt-get install -y openssh-client")?;
        let as_root = process::is_root()?;
        let me = process::current_user()?;
        let user = self.user.unwrap_or_else(|| me.clone());
        if !as_root && user != me {
            return Err(Error::Unsupported(format!(
                "a non-root sshd can only log in as its own user `{me}`, not `{user}`; run the tests as root"
            )));
        }
        if as_root {
            // The privilege-separation directory is normally made by the service unit.
            fs::create_dir_all("/run/sshd").map_err(|e| Error::io("/run/sshd", e))?;
        }

        let dir = tempfile::Builder::new()
            .prefix("barman-e2e-sshd-")
            .tempdir_in("/tmp")
            .map_err(|e| Error::io("/tmp", e))?;
        // sshd reads authorized_keys as the login user: let it traverse the directory.
        process::chmod(dir.path(), 0o755)?;
        let host_key = dir.path().join("host_ed25519");
        let client_key = dir.path().join("client_ed25519");
        for key in [&host_key, &client_key] {
            process::run(
                Command::new(SSH_KEYGEN)
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "barman-e2e", "-f"])
                    .arg(key),
            )?;
        }
        let authorized = dir.path().join("authorized_keys");
        let public = client_key.with_extension("pub");
        fs::copy(&public, &authorized).map_err(|e| Error::io(&authorized, e))?;
        process::chmod(&authorized, 0o644)?;

        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = process::free_port()?;
            let config = dir.path().join("sshd_config");
            let mut text = config_text(dir.path(), port, &user, as_root);
            for line in &self.extra {
                text.push_str(line);
                text.push('\n');
            }
            fs::write(&config, text).map_err(|e| Error::io(&config, e))?;
            let log = dir.path().join("sshd.log");
            let _ = fs::remove_file(&log);
            let child = Command::new(SSHD)
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|source| Error::Spawn {
                    command: format!("{SSHD} -D -f {}", config.display()),
                    source,
                })?;
            let mut child = child;
            match wait_ready(&mut child, port, &log) {
                Ok(()) => {
                    return Ok(Sshd {
                        child,
                        port,
                        user,
                        client_key,
                        dir,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if !process::log_tail(&log, 4096).contains("Address already in use") {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Unsupported("no sshd start attempt".into())))
    }
}

/// Waits until `port` answers with an SSH banner while `child` lives.
fn wait_ready(child: &mut Child, port: u16, log: &Path) -> Result<()> {
    let start = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let fail = |reason: String| Error::SshdStart {
        reason,
        log: process::log_tail(log, 4096),
    };
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(format!("sshd exited with {status}")));
        }
        if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut banner = [0_u8; 8];
            if stream.read_exact(&mut banner).is_ok()
                && &banner == b"SSH-2.0-"
                && matches!(child.try_wait(), Ok(None))
            {
                return Ok(());
            }
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(fail(format!(
                "port {port} not ready after {READY_TIMEOUT:?}"
            )));
        }
        thread::sleep(Duration::from_millis(25));
    }
}

fn config_text(dir: &Path, port: u16, user: &str, as_root: bool) -> String {
    let d = dir.display();
    let pam = if as_root { "yes" } else { "no" };
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {d}/host_ed25519\n\
         PidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\n\
         AllowUsers {user}\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         UsePAM {pam}\n\
         StrictModes no\n\
         PrintMotd no\n\
         Subsystem sftp internal-sftp\n"
    )
}

/// A running `sshd -D` child on 127.0.0.1, accepting one key for one user.
///
/// Dropping it kills the child by pid and removes its temporary directory
/// (host key, client key, config and log).
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    port: u16,
    user: String,
    client_key: PathBuf,
    dir: TempDir,
}

impl Sshd {
    /// Starts describing an sshd.
    pub fn builder() -> SshdBuilder {
        SshdBuilder::default()
    }

    /// An sshd that logs in the user running the tests.
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// The TCP port sshd listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user that logs in.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The private key accepted by the server.
    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// The sshd log file (`-E`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    /// The sshd child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The ssh command line reaching this server, as Barman's `ssh_command` expects:
    /// `ssh -p PORT -i KEY -o ... USER@127.0.0.1`.
    pub fn ssh_command(&self) -> String {
        format!(
            "{SSH} -p {} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR {}@127.0.0.1",
            self.port,
            self.client_key.display(),
            self.user
        )
    }

    /// Runs `command` on the server through ssh; the exit status is left to the caller.
    pub fn run(&self, command: &str) -> Result<Output> {
        let line = self.ssh_command();
        let mut parts = line.split_whitespace();
        let program = parts.next().unwrap_or(SSH);
        let mut cmd = Command::new(program);
        cmd.args(parts).arg(command);
        process::output(&mut cmd)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}
