//! Object-storage emulators on loopback, speaking the providers' real wire
//! protocols: [`Moto`] (S3, `moto_server` from PyPI) and [`Azurite`]
//! (Azure Blob Storage, npm), and the real barman-cloud tools
//! ([`barman_cloud_tool`]) for interoperability tests.
//! `scripts/install-test-deps.sh` installs moto and barman-cloud into the
//! virtualenv [`PYTHON_VENV`], Azurite into [`AZURITE_DIR`].

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Error, Result};
use crate::process;

/// The virtualenv of the Python test tools (moto, barman-cloud).
pub const PYTHON_VENV: &str = "/opt/barman-rs-test-venv";

/// What installs the Python test tools.
const INSTALL: &str = "scripts/install-test-deps.sh (a virtualenv in /opt/barman-rs-test-venv with moto[server] and barman[cloud])";

/// The credentials the emulators accept.
pub const S3_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
];

/// A program of the test virtualenv.
///
/// # Errors
/// [`Error::MissingBinary`] naming the install script.
pub fn venv_bin(name: &str) -> Result<PathBuf> {
    let path = Path::new(PYTHON_VENV).join("bin").join(name);
    process::require(&path, INSTALL)?;
    Ok(path)
}

/// Real Barman's `barman-cloud-*` tool `name` (e.g. `barman-cloud-wal-archive`).
///
/// # Errors
/// [`Error::MissingBinary`] naming the install script.
pub fn barman_cloud_tool(name: &str) -> Result<PathBuf> {
    venv_bin(name)
}

/// An emulator process on a loopback port, its log in a temporary
/// directory, killed on drop.
#[derive(Debug)]
struct Emulator {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
    /// The program, its arguments and environment (to start it again).
    command: (PathBuf, Vec<String>, Vec<(String, String)>),
    name: String,
}

impl Emulator {
    /// Spawns `bin args` (`args` gets the free port) and waits up to 30 s
    /// until `ready(port)` holds.
    fn start(
        bin: &Path,
        name: &str,
        env: &[(&str, &str)],
        args: impl FnOnce(u16, &Path) -> Vec<String>,
        ready: impl Fn(u16) -> bool,
    ) -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let log = dir.path().join(format!("{name}.log"));
        let port = process::free_port()?;
        let command = (
            bin.to_path_buf(),
            args(port, dir.path()),
            env.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        let child = Self::spawn(&command, &log)?;
        let mut emulator = Self {
            child,
            port,
            log,
            _dir: dir,
            command,
            name: name.to_owned(),
        };
        emulator.wait_ready(ready)?;
        Ok(emulator)
    }

    fn spawn(command: &(PathBuf, Vec<String>, Vec<(String, String)>), log: &Path) -> Result<Child> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::io(log, e))?;
        let err_file = log_file.try_clone().map_err(|e| Error::io(log, e))?;
        let (bin, args, env) = command;
        Command::new(bin)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .map_err(|source| Error::Spawn {
                command: bin.display().to_string(),
                source,
            })
    }

    /// Waits up to 30 s until `ready(port)` holds.
    fn wait_ready(&mut self, ready: impl Fn(u16) -> bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(self.port) {
            if Instant::now() > deadline || self.child.try_wait().ok().flatten().is_some() {
                return Err(Error::Unsupported(format!(
                    "{} did not answer on port {}: {}",
                    self.name,
                    self.port,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                )));
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same command again (same port, same state directory).
    fn restart(&mut self, ready: impl Fn(u16) -> bool) -> Result<()> {
        self.kill();
        self.child = Self::spawn(&self.command, &self.log)?;
        self.wait_ready(ready)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether something accepts connections on 127.0.0.1:`port`.
fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    )
    .is_ok()
}

/// A `moto_server` (S3) on a free 127.0.0.1 port, killed on drop.
#[derive(Debug)]
pub struct Moto {
    _emulator: Emulator,
    port: u16,
}

impl Moto {
    /// Starts `moto_server` and waits until it answers.
    ///
    /// # Errors
    /// [`Error::MissingBinary`] when moto is not installed; a start error
    /// with its log when it does not come up within 30 s.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Starts a `moto_server` that checks credentials (no request is
    /// authorised: every access key is unknown to its IAM), for tests of
    /// wrong credentials.
    ///
    /// # Errors
    /// As [`Moto::start`].
    pub fn start_checking_credentials() -> Result<Self> {
        Self::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
    }

    /// Starts a `moto_server` that checks credentials, with bucket
    /// `bucket` and an IAM user allowed everything on S3; the server and
    /// the user's access key id and secret (the only keys it accepts).
    ///
    /// # Errors
    /// As [`Moto::start`]; when the user cannot be made (boto3 of the test
    /// virtualenv).
    pub fn start_with_one_user(bucket: &str) -> Result<(Self, String, String)> {
        // Five unauthenticated actions: the readiness probe (`GET /`, one
        // S3 ListBuckets once it answers), the bucket, the user, its
        // policy and its key; everything after is checked.
        let moto = Self::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "5")])?;
        let python = venv_bin("python")?;
        let script = format!(
            "import boto3, json\n\
             kw = dict(endpoint_url='{endpoint}', region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x')\n\
             boto3.client('s3', **kw).create_bucket(Bucket='{bucket}')\n\
             iam = boto3.client('iam', **kw)\n\
             iam.create_user(UserName='barman')\n\
             iam.put_user_policy(UserName='barman', PolicyName='s3', PolicyDocument=json.dumps({{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'}}]}}))\n\
             key = iam.create_access_key(UserName='barman')['AccessKey']\n\
             print(key['AccessKeyId'], key['SecretAccessKey'])\n",
            endpoint = moto.endpoint()
        );
        let out = process::run(Command::new(python).arg("-c").arg(script))?;
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = out.split_whitespace();
        match (words.next(), words.next()) {
            (Some(id), Some(secret)) => Ok((moto, id.to_owned(), secret.to_owned())),
            _ => Err(Error::Parse {
                what: "the IAM user's access key".into(),
                output: out,
            }),
        }
    }

    fn start_with(env: &[(&str, &str)]) -> Result<Self> {
        let bin = venv_bin("moto_server")?;
        let emulator = Emulator::start(
            &bin,
            "moto_server",
            env,
            |port, _| {
                vec![
                    "-H".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string(),
                ]
            },
            |port| request(port, "GET", "/").is_ok(),
        )?;
        Ok(Self {
            port: emulator.port,
            _emulator: emulator,
        })
    }

    /// The endpoint URL (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The keys of the multipart uploads in progress (neither completed
    /// nor aborted) in `bucket`.
    ///
    /// # Errors
    /// When moto does not answer the listing.
    pub fn multipart_uploads(&self, bucket: &str) -> Result<Vec<String>> {
        let (status, body) = exchange(self.port, "GET", &format!("/{bucket}?uploads"))?;
        if status != 200 {
            return Err(Error::Parse {
                what: format!("the multipart uploads of {bucket} ({status})"),
                output: body.chars().take(300).collect(),
            });
        }
        Ok(body
            .split("<Upload>")
            .skip(1)
            .filter_map(|u| {
                u.split_once("<Key>")?
                    .1
                    .split_once("</Key>")
                    .map(|(k, _)| k.to_owned())
            })
            .collect())
    }

    /// Creates bucket `name` (moto takes an unsigned `PUT /name`).
    ///
    /// # Errors
    /// When moto does not answer 200.
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        let status = request(self.port, "PUT", &format!("/{name}"))?;
        if status == 200 {
            Ok(())
        } else {
            Err(Error::Unsupported(format!(
                "moto answered {status} to the creation of bucket {name}"
            )))
        }
    }
}

/// One plain HTTP/1.1 request to 127.0.0.1:`port`; the response's status
/// code.
fn request(port: u16, method: &str, path: &str) -> Result<u16> {
    exchange(port, method, path).map(|(status, _)| status)
}

/// One plain HTTP/1.1 request to 127.0.0.1:`port`; the response's status
/// code and body.
fn exchange(port: u16, method: &str, path: &str) -> Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| Error::io("moto", e))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| Error::io("moto", e))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| Error::io("moto", e))?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Parse {
            what: "moto's answer".into(),
            output: response.chars().take(200).collect(),
        })?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or_else(String::new, |(_, b)| b.to_owned());
    Ok((status, body))
}

/// Where `scripts/install-test-deps.sh` installs Azurite (npm).
pub const AZURITE_DIR: &str = "/opt/azurite";

/// Azurite's well-known development account and key.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's Blob service (Azure Blob Storage) on a free 127.0.0.1 port,
/// killed on drop.
#[derive(Debug)]
pub struct Azurite {
    emulator: Emulator,
    port: u16,
}

impl Azurite {
    /// Starts `azurite-blob` (without telemetry) and waits until it
    /// accepts connections.
    ///
    /// # Errors
    /// [`Error::MissingBinary`] when Azurite is not installed; a start
    /// error with its log when it does not come up within 30 s.
    pub fn start() -> Result<Self> {
        let bin = Path::new(AZURITE_DIR).join("node_modules/.bin/azurite-blob");
        process::require(
            &bin,
            "scripts/install-test-deps.sh (npm install azurite into /opt/azurite)",
        )?;
        let emulator = Emulator::start(
            &bin,
            "azurite-blob",
            &[],
            |port, dir| {
                vec![
                    "--blobHost".into(),
                    "127.0.0.1".into(),
                    "--blobPort".into(),
                    port.to_string(),
                    "--location".into(),
                    dir.display().to_string(),
                    "--skipApiVersionCheck".into(),
                    "--disableTelemetry".into(),
                    "--silent".into(),
                ]
            },
            accepts,
        )?;
        Ok(Self {
            port: emulator.port,
            emulator,
        })
    }

    /// Kills Azurite (SIGKILL, as a crash would); its blobs stay in its
    /// directory.
    pub fn kill(&mut self) {
        self.emulator.kill();
    }

    /// Starts Azurite again on the same port over the same directory.
    ///
    /// # Errors
    /// When it does not come up within 30 s.
    pub fn restart(&mut self) -> Result<()> {
        self.emulator.restart(accepts)
    }

    /// The connection string of the development account on this server
    /// (`AZURE_STORAGE_CONNECTION_STRING`).
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{}/{AZURITE_ACCOUNT};",
            self.port
        )
    }

    /// The barman-cloud URL of `container/prefix` (the emulator form).
    pub fn url(&self, container: &str, prefix: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{AZURITE_ACCOUNT}/{container}/{prefix}",
            self.port
        )
    }

    /// Creates `container` (with the Azure SDK of the test virtualenv).
    ///
    /// # Errors
    /// When the SDK is missing or the creation fails.
    pub fn create_container(&self, container: &str) -> Result<()> {
        let python = venv_bin("python")?;
        process::run(
            Command::new(python)
                .env("AZURE_STORAGE_CONNECTION_STRING", self.connection_string())
                .arg("-c")
                .arg(format!(
                    "import os\nfrom azure.storage.blob import BlobServiceClient\nBlobServiceClient.from_connection_string(os.environ['AZURE_STORAGE_CONNECTION_STRING']).create_container('{container}')\n"
                )),
        )
        .map(drop)
    }
}

/// `gcp-storage-emulator` (Google Cloud Storage's JSON API, PyPI) on a
/// free 127.0.0.1 port, in memory, killed on drop.
#[derive(Debug)]
pub struct GcsEmulator {
    emulator: Emulator,
    port: u16,
}

impl GcsEmulator {
    /// Starts the emulator with the bucket `bucket` and waits until it
    /// answers.
    ///
    /// # Errors
    /// [`Error::MissingBinary`] when it is not installed; a start error
    /// with its log when it does not come up within 30 s.
    pub fn start(bucket: &str) -> Result<Self> {
        let bin = venv_bin("gcp-storage-emulator")?;
        let emulator = Emulator::start(
            &bin,
            "gcp-storage-emulator",
            &[],
            |port, _| {
                [
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--in-memory",
                    "--default-bucket",
                    bucket,
                ]
                .map(str::to_owned)
                .to_vec()
            },
            accepts,
        )?;
        Ok(Self {
            port: emulator.port,
            emulator,
        })
    }

    /// The value of `STORAGE_EMULATOR_HOST` for this emulator.
    pub fn host(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The emulator's process id (to kill it mid-operation in a test).
    pub fn pid(&self) -> u32 {
        self.emulator.child.id()
    }
}

/// A TCP proxy on a free 127.0.0.1 port in front of an emulator, which a
/// test can [`cut`](Self::cut) (every connection shut down, new ones
/// refused: the endpoint died) and [`restore`](Self::restore) (it came
/// back), while the emulator behind it keeps its state to be inspected.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    shared: std::sync::Arc<ProxyState>,
    acceptor: Option<thread::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct ProxyState {
    cut: std::sync::atomic::AtomicBool,
    stop: std::sync::atomic::AtomicBool,
    connections: std::sync::Mutex<Vec<TcpStream>>,
}

impl FaultProxy {
    /// Starts forwarding a free port to 127.0.0.1:`target`.
    ///
    /// # Errors
    /// When no port can be bound.
    pub fn start(target: u16) -> Result<Self> {
        use std::sync::atomic::Ordering;
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("proxy", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("proxy", e))?
            .port();
        let shared = std::sync::Arc::new(ProxyState::default());
        let state = std::sync::Arc::clone(&shared);
        let acceptor = thread::spawn(move || {
            let mut listener = Some(listener);
            while !state.stop.load(Ordering::SeqCst) {
                if state.cut.load(Ordering::SeqCst) {
                    // Closed: connections are refused.
                    listener = None;
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let Some(open) = listener.as_ref() else {
                    listener = std::net::TcpListener::bind(("127.0.0.1", port)).ok();
                    continue;
                };
                let _ = open.set_nonblocking(true);
                match open.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) {
                            Self::pump(&state, client, upstream);
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// Copies both ways between `client` and `upstream`.
    fn pump(state: &ProxyState, client: TcpStream, upstream: TcpStream) {
        let pairs = [
            (client.try_clone(), upstream.try_clone()),
            (upstream.try_clone(), client.try_clone()),
        ];
        if let Ok(mut connections) = state.connections.lock() {
            connections.push(client);
            connections.push(upstream);
        }
        for pair in pairs {
            if let (Ok(mut from), Ok(mut to)) = pair {
                thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    }

    /// The endpoint URL through the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The endpoint dies: every connection is shut down, new ones are
    /// refused.
    pub fn cut(&self) {
        use std::sync::atomic::Ordering;
        self.shared.cut.store(true, Ordering::SeqCst);
        if let Ok(mut connections) = self.shared.connections.lock() {
            for c in connections.drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// The endpoint comes back.
    pub fn restore(&self) {
        self.shared
            .cut
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut();
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}
