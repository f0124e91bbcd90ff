//! What the `barman-cloud-*` binaries share: the options of every tool
//! (Barman's `cloud_cli.create_argument_parser`), their exit statuses
//! (0 ok, 1 operation failed, 2 network, 3 command line, 4 anything else),
//! the log lines on standard error (`2026-12-07 10:00:00,123 [4242] ERROR:
//! message`, level WARNING − 10 × (`-v` − `-q`)) and the one `main`.
//!
//! Options barman-rs parses but does not implement yet are refused by name
//! ([`CloudArgs::refuse_unimplemented`]), never ignored.

use std::fmt::{self, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use barman_catalog::BackupInfo;
use barman_catalog::pytime::{parse_python_datetime, to_python_ctime, to_python_isoformat};
use barman_cloud::store::{AddressingStyle, Encryption, StoreOptions};
use barman_cloud::url::{CloudUrl, Provider};
use serde_json::{Map, Value};
use tracing::{Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The exit statuses of the barman-cloud tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The connection worked but the operation failed (1).
    Operation = 1,
    /// The endpoint could not be reached (2).
    Network = 2,
    /// A command-line error (3).
    Cli = 3,
    /// Anything else (4).
    General = 4,
    /// Run as a hook script on a backup that is not DONE (63: Barman's
    /// `UnrecoverableHookScriptError`, which stops the hook chain).
    HookAbort = 63,
}

/// A failed run: the exit status and the message logged at ERROR level.
#[derive(Debug)]
pub struct Failure {
    /// The exit status.
    pub exit: Exit,
    /// The message.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Failure {
    /// A failure with `exit` and `message`.
    pub fn new(exit: Exit, message: impl fmt::Display) -> Self {
        Self {
            exit,
            message: message.to_string(),
        }
    }

    /// A command-line error.
    pub fn cli(message: impl fmt::Display) -> Self {
        Self::new(Exit::Cli, message)
    }
}

/// The options of every barman-cloud tool.
#[derive(Debug, Clone, clap::Args)]
pub struct CloudArgs {
    /// Print help (there is no `-h`: barman-cloud-backup uses it for the
    /// host, so none of the tools has it).
    #[arg(long = "help", action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Increase output verbosity (e.g., -vv is more than -v).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Decrease output verbosity (e.g., -qq is less than -q).
    #[arg(short = 'q', long = "quiet", action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// Test cloud connectivity and exit.
    #[arg(short = 't', long = "test")]
    pub test: bool,
    /// The cloud provider to use as a storage backend.
    #[arg(long = "cloud-provider", default_value = "aws-s3", value_parser = parse_provider)]
    pub cloud_provider: Provider,
    /// Override default S3 endpoint URL with the given one.
    #[arg(long = "endpoint-url", value_name = "ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Profile name (e.g. INI section in AWS credentials file).
    #[arg(
        short = 'P',
        long = "aws-profile",
        visible_alias = "profile",
        value_name = "AWS_PROFILE"
    )]
    pub aws_profile: Option<String>,
    /// The time in seconds until a timeout is raised when waiting to read
    /// from a connection.
    #[arg(long = "read-timeout", value_name = "READ_TIMEOUT")]
    pub read_timeout: Option<u64>,
    /// The addressing style to use when sending requests to S3.
    #[arg(long = "addressing-style", value_parser = ["auto", "virtual", "path"])]
    pub addressing_style: Option<String>,
    /// Optionally specify the type of credential to use when authenticating
    /// with Azure: not implemented yet (refused); use the AZURE_STORAGE_*
    /// environment variables.
    #[arg(long = "azure-credential", visible_alias = "credential", value_parser = ["azure-cli", "managed-identity", "default"])]
    pub azure_credential: Option<String>,
}

/// The positionals of the tools that read a bucket: `SOURCE_URL
/// SERVER_NAME` (flattened into each tool's command line).
#[derive(Debug, Clone, clap::Args)]
pub struct Source {
    /// URL of the cloud source, such as a bucket in AWS S3. For example:
    /// `s3://bucket/path/to/folder`.
    #[arg(value_name = "SOURCE_URL")]
    pub source_url: String,
    /// The name of the server as configured in Barman.
    #[arg(value_name = "SERVER_NAME")]
    pub server_name: String,
}

fn parse_provider(value: &str) -> Result<Provider, String> {
    value.parse()
}

impl CloudArgs {
    /// Refuses the options parsed but not implemented yet, by name.
    ///
    /// # Errors
    /// A [`Exit::Cli`] failure naming the first such option given.
    pub fn refuse_unimplemented(&self) -> Result<(), Failure> {
        for (given, option) in [(self.azure_credential.is_some(), "--azure-credential")] {
            if given {
                return Err(not_implemented(option));
            }
        }
        Ok(())
    }

    /// The parsed URL.
    ///
    /// # Errors
    /// A [`Exit::Cli`] failure naming the URL.
    pub fn url(&self, url: &str) -> Result<CloudUrl, Failure> {
        CloudUrl::parse(url, self.cloud_provider).map_err(Failure::cli)
    }

    /// How to reach the bucket, with `encryption` for what is uploaded.
    pub fn store_options(&self, encryption: Encryption) -> StoreOptions {
        StoreOptions {
            endpoint_url: self.endpoint_url.clone(),
            addressing_style: match self.addressing_style.as_deref() {
                Some("virtual") => AddressingStyle::Virtual,
                Some("path") => AddressingStyle::Path,
                _ => AddressingStyle::Auto,
            },
            read_timeout: self.read_timeout.map(Duration::from_secs),
            encryption,
            s3_access_key: None,
            s3_profile: self.aws_profile.clone(),
            upload: barman_cloud::store::UploadTuning::default(),
        }
    }

    /// The log level: WARNING − 10 × (`-v` − `-q`).
    pub fn level(&self) -> Option<Level> {
        match i32::from(self.verbose) - i32::from(self.quiet) {
            i32::MIN..=-1 => (self.quiet == 1).then_some(Level::ERROR),
            0 => Some(Level::WARN),
            1 => Some(Level::INFO),
            _ => Some(Level::DEBUG),
        }
    }
}

/// The failure of an option that is parsed but not implemented yet.
pub fn not_implemented(option: &str) -> Failure {
    Failure::cli(format!(
        "the option {option} is not implemented by barman-rs yet (refused rather than ignored)"
    ))
}

/// `%(asctime)s [%(process)s] %(levelname)s: %(message)s`.
struct CloudFormat;

impl<S, N> FormatEvent<S, N> for CloudFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let now = jiff::Zoned::now();
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG | Level::TRACE => "DEBUG",
        };
        write!(
            writer,
            "{},{:03} [{}] {level}: ",
            now.strftime("%Y-%m-%d %H:%M:%S"),
            now.subsec_nanosecond() / 1_000_000,
            std::process::id()
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Logs to standard error at `level` (nothing when `None`), our crates'
/// events only.
fn init_logging(level: Option<Level>) {
    let Some(level) = level else { return };
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("barman", level)
        .with_default(Level::ERROR);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(CloudFormat)
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
        .try_init();
}

/// The `main` of every barman-cloud tool: parses the command line as `A`
/// (a usage error exits 3, `--help` and `--version` 0), logs at the level
/// of `args(&A).level()`, runs `run` and logs its failure as an ERROR
/// line before exiting with the failure's status.
pub fn main<A: clap::Parser>(
    cloud: impl FnOnce(&A) -> &CloudArgs,
    run: impl FnOnce(&A) -> Result<(), Failure>,
) -> ExitCode {
    let args = match A::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Exit::Cli as u8 } else { 0 });
        }
    };
    init_logging(cloud(&args).level());
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            tracing::error!(target: "barman_cloud_cli", "{}", failure.message);
            // Without a subscriber at ERROR (-qq), the line is not printed.
            ExitCode::from(failure.exit as u8)
        }
    }
}

/// The common start of the catalog tools (list, show, keep, delete,
/// restore): options not implemented refused, the URL parsed, the bucket
/// opened, and `-t` answered (`None`: the probe passed, the tool is done).
///
/// # Errors
/// The failure, with its exit status.
pub fn open_bucket(
    args: &CloudArgs,
    url: &str,
    encryption: Encryption,
) -> Result<Option<(barman_cloud::url::CloudUrl, barman_cloud::store::Bucket)>, Failure> {
    args.refuse_unimplemented()?;
    let url = args.url(url)?;
    let bucket = barman_cloud::store::Bucket::open(&url, &args.store_options(encryption))
        .map_err(|e| Failure::new(Exit::General, e))?;
    if args.test {
        probe(&bucket)?;
        return Ok(None);
    }
    Ok(Some((url, bucket)))
}

/// The catalog of `server` in `bucket`; a failure is Barman's
/// `"<what> exception: ..."` (exit 4).
///
/// # Errors
/// The failure.
pub fn load_catalog(
    bucket: &barman_cloud::store::Bucket,
    url: &barman_cloud::url::CloudUrl,
    server: &str,
    what: &str,
) -> Result<(barman_cloud::layout::Layout, barman_cloud::catalog::Catalog), Failure> {
    let layout = barman_cloud::layout::Layout::new(url.path(), server);
    let catalog = barman_cloud::catalog::Catalog::load(bucket, &layout)
        .map_err(|e| Failure::new(Exit::General, format!("{what} exception: {e}")))?;
    Ok((layout, catalog))
}

/// `-t/--test` and the probe of the tools that check the endpoint first:
/// the bucket is there (Ok), missing ([`Exit::Operation`]) or the
/// endpoint cannot be reached ([`Exit::Network`]).
///
/// # Errors
/// The failure, with its exit status.
pub fn probe(bucket: &barman_cloud::store::Bucket) -> Result<(), Failure> {
    match bucket.exists() {
        Ok(true) => Ok(()),
        Ok(false) => Err(Failure::new(
            Exit::Operation,
            format!("Bucket {} does not exist", bucket.name()),
        )),
        // barman-cloud's probes: S3's catches only a failure to reach the
        // endpoint; Azure's and GCS's also any error the service answers
        // (e.g. wrong credentials).
        Err(e) if e.is_network() || bucket.provider() != Provider::AwsS3 => Err(Failure::new(
            Exit::Network,
            format!("Can't connect to cloud provider: {e}"),
        )),
        Err(e) => Err(Failure::new(Exit::General, e)),
    }
}

/// The `--tags KEY,VALUE ...` and `--tag KEY,VALUE` pairs, checked as
/// Barman checks them (key of 1 to 128 characters from
/// `[A-Za-z0-9 _.:/=+-@]` without the `aws:` prefix, value of at most 256).
///
/// # Errors
/// A [`Exit::Cli`] failure naming the bad tag.
pub fn tags(values: &[String]) -> Result<Vec<(String, String)>, Failure> {
    values
        .iter()
        .map(|value| {
            let bad = |why: &str| Failure::cli(format!("invalid tag `{value}`: {why}"));
            let (key, val) = value
                .split_once(',')
                .ok_or_else(|| bad("expected KEY,VALUE"))?;
            if key.is_empty() || key.chars().count() > 128 {
                return Err(bad("the key must have 1 to 128 characters"));
            }
            if key.starts_with("aws:") {
                return Err(bad("the key must not start with `aws:`"));
            }
            if !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c))
            {
                return Err(bad(
                    "the key may only hold letters, digits, spaces and _.:/=+-@",
                ));
            }
            if val.chars().count() > 256 {
                return Err(bad("the value must have at most 256 characters"));
            }
            Ok((key.to_owned(), val.to_owned()))
        })
        .collect()
}

/// The S3 encryption of `-e/--encryption`, `--sse-kms-key-id` and
/// `--sse-customer-key file:///PATH` (the base64 of a 32-byte key, read
/// from the file).
///
/// # Errors
/// A [`Exit::Cli`] failure for a combination Barman refuses or an
/// unreadable key file (the key itself is never shown).
pub fn s3_encryption(
    mode: Option<&str>,
    kms_key_id: Option<&str>,
    customer_key: Option<&str>,
) -> Result<Encryption, Failure> {
    if kms_key_id.is_some() && mode != Some("aws:kms") {
        return Err(Failure::cli(
            "--sse-kms-key-id requires --encryption aws:kms",
        ));
    }
    let customer_key = match customer_key {
        None => None,
        Some(_) if mode.is_some() => {
            return Err(Failure::cli(
                "--sse-customer-key cannot be combined with -e/--encryption",
            ));
        }
        Some(url) => {
            let path = url.strip_prefix("file://").ok_or_else(|| {
                Failure::cli(format!(
                    "--sse-customer-key `{url}`: expected file:///ABSOLUTE/PATH"
                ))
            })?;
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::cli(format!("--sse-customer-key: cannot read `{path}`: {e}"))
            })?;
            Some(text.trim().to_owned())
        }
    };
    Ok(Encryption {
        s3_mode: mode.map(str::to_owned),
        s3_kms_key_id: kms_key_id.map(str::to_owned),
        s3_customer_key: customer_key,
    })
}

/// One backup as Barman's `BackupInfo.to_json`: the fields (sorted), with
/// `begin_time` and `end_time` in ctime form, then `backup_id`,
/// `begin_time_iso` and `end_time_iso`.
pub fn backup_json(info: &BackupInfo) -> barman_catalog::Result<Value> {
    let mut doc = info.to_json()?;
    let local = jiff::tz::TimeZone::system();
    if let Value::Object(map) = &mut doc {
        // Barman's order: the fields, then backup_id, then the ISO times.
        let mut extra = Map::new();
        if let Some(id) = map.shift_remove("backup_id") {
            extra.insert("backup_id".into(), id);
        }
        for key in ["begin_time", "end_time"] {
            if let Some(raw) = info.raw(key).filter(|t| *t != "None") {
                let time = parse_python_datetime(raw, &local)?;
                map.insert(key.into(), Value::String(to_python_ctime(&time)));
                extra.insert(
                    format!("{key}_iso"),
                    Value::String(to_python_isoformat(&time)),
                );
            }
        }
        map.extend(extra);
    }
    Ok(doc)
}

/// JSON as Python's `json.dumps` writes it: `", "` and `": "` separators,
/// non-ASCII escaped.
pub fn python_json(value: &Value) -> String {
    match value {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_json).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", python_string(k), python_json(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::String(s) => python_string(s),
        other => other.to_string(),
    }
}

/// A JSON string with every non-ASCII character escaped (`ensure_ascii`).
fn python_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    #[command(disable_help_flag = true)]
    struct Probe {
        #[command(flatten)]
        cloud: CloudArgs,
    }

    #[test]
    fn verbosity_follows_barman() {
        for (args, want) in [
            (&[][..], Some(Level::WARN)),
            (&["-v"][..], Some(Level::INFO)),
            (&["-vv"][..], Some(Level::DEBUG)),
            (&["-q"][..], Some(Level::ERROR)),
            (&["-qq"][..], None),
        ] {
            let p =
                Probe::try_parse_from(std::iter::once("x").chain(args.iter().copied())).unwrap();
            assert_eq!(p.cloud.level(), want, "{args:?}");
        }
        assert!(Probe::try_parse_from(["x", "-v", "-q"]).is_err());
    }

    #[test]
    fn unimplemented_options_are_refused_by_name() {
        let p = Probe::try_parse_from(["x", "--credential", "azure-cli"]).unwrap();
        let f = p.cloud.refuse_unimplemented().unwrap_err();
        assert_eq!(f.exit, Exit::Cli);
        assert!(f.message.contains("--azure-credential"), "{}", f.message);
        for provider in ["azure-blob-storage", "google-cloud-storage"] {
            let p = Probe::try_parse_from(["x", "--cloud-provider", provider]).unwrap();
            assert!(p.cloud.refuse_unimplemented().is_ok());
        }
        assert!(Probe::try_parse_from(["x", "--cloud-provider", "s3"]).is_err());
    }

    #[test]
    fn tags_are_checked_as_barman_checks_them() {
        let ok = tags(&["env,test".into(), "a b_.:/=+-@,".into()]).unwrap();
        assert_eq!(ok[0], ("env".into(), "test".into()));
        assert_eq!(ok[1], ("a b_.:/=+-@".into(), String::new()));
        for bad in ["novalue", ",x", "aws:k,v", "k!,v"] {
            let f = tags(&[bad.into()]).unwrap_err();
            assert_eq!(f.exit, Exit::Cli);
            assert!(f.message.contains(bad), "{}", f.message);
        }
        assert!(tags(&[format!("{},v", "k".repeat(129))]).is_err());
        assert!(tags(&[format!("k,{}", "v".repeat(257))]).is_err());
    }

    #[test]
    fn encryption_combinations_follow_barman() {
        assert!(s3_encryption(None, Some("key"), None).is_err());
        assert!(s3_encryption(Some("aws:kms"), Some("key"), None).is_ok());
        assert!(s3_encryption(Some("AES256"), None, Some("file:///x")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "c2VjcmV0\n").unwrap();
        let e = s3_encryption(None, None, Some(&format!("file://{}", key.display()))).unwrap();
        assert_eq!(e.s3_customer_key.as_deref(), Some("c2VjcmV0"));
        let f = s3_encryption(None, None, Some("/no/scheme")).unwrap_err();
        assert!(!f.message.contains("c2VjcmV0"));
    }
}
