//! The provider clients: one [`Bucket`] over the `object_store` crate for
//! S3 (and S3-compatible endpoints), Azure Blob Storage and Google Cloud
//! Storage, with a blocking interface for the tools (a small tokio runtime
//! inside), bounded memory (objects stream in and out in chunks) and
//! bounded time (retries with a deadline).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use futures_util::StreamExt as _;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, MultipartUpload, ObjectStore, ObjectStoreExt as _,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, TagSet, WriteMultipart,
};
use tokio::task::JoinSet;

use crate::error::error_chain;
use crate::url::{CloudUrl, Provider};
use crate::{Error, Result};

/// Objects up to this size are sent in one PUT (a 16 MiB WAL segment, even
/// uncompressed, is one request, as with Barman).
pub const SINGLE_PUT_MAX: usize = 32 << 20;

/// Larger objects go as a multipart upload of parts of this size (S3's
/// minimum part is 5 MiB), at most two in flight.
pub const PART_SIZE: usize = 8 << 20;

/// How S3 requests address the bucket (`--addressing-style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressingStyle {
    /// Virtual-hosted style for AWS, path style with `--endpoint-url`.
    #[default]
    Auto,
    /// `https://bucket.host/key`.
    Virtual,
    /// `https://host/bucket/key`.
    Path,
}

/// Server-side encryption of what a tool uploads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encryption {
    /// S3 `-e/--encryption`: `AES256` or `aws:kms`.
    pub s3_mode: Option<String>,
    /// S3 `--sse-kms-key-id` (with `aws:kms`).
    pub s3_kms_key_id: Option<String>,
    /// S3 `--sse-customer-key`: the base64 of a 32-byte key (SSE-C).
    pub s3_customer_key: Option<String>,
}

/// How to reach a bucket: the options every barman-cloud tool shares.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// S3 `--endpoint-url`.
    pub endpoint_url: Option<String>,
    /// S3 `--addressing-style`.
    pub addressing_style: AddressingStyle,
    /// S3 `--read-timeout` (seconds).
    pub read_timeout: Option<Duration>,
    /// Server-side encryption.
    pub encryption: Encryption,
    /// S3 access key id and secret, for an embedder that has them; the
    /// tools leave this empty and take the environment's.
    pub s3_access_key: Option<(String, String)>,
    /// S3 `-P/--aws-profile`: a named profile of the AWS files
    /// ([`crate::aws_profile`]), whose keys replace the environment's.
    pub s3_profile: Option<String>,
    /// How [`Bucket::put`] uploads (Azure's `--max-single-put-size`,
    /// `--max-block-size`, `--max-concurrency`).
    pub upload: UploadTuning,
}

/// How [`Bucket::put`] uploads an object: one PUT up to `single_put_max`
/// bytes, else a multipart upload (Azure: blocks) of `part_size` parts,
/// `parts_in_flight` at a time. `None`: [`SINGLE_PUT_MAX`], [`PART_SIZE`],
/// two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadTuning {
    /// The largest object sent in one PUT.
    pub single_put_max: Option<usize>,
    /// The part (block) size of larger ones.
    pub part_size: Option<usize>,
    /// Parts uploaded at once.
    pub parts_in_flight: Option<usize>,
}

/// An object found by [`Bucket::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The bucket (container) of a [`CloudUrl`], open for the tools.
pub struct Bucket {
    store: Box<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    name: String,
    provider: Provider,
    upload: UploadTuning,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries: a few, quickly, within a minute (a dead endpoint fails in
/// seconds, not after object_store's default three minutes).
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(60),
    }
}

fn client_options(options: &StoreOptions) -> ClientOptions {
    let mut client = ClientOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
    if let Some(timeout) = options.read_timeout {
        client = client.with_timeout(timeout);
    }
    client
}

/// The object_store path of `key`.
fn path(key: &str) -> Result<ObjectPath> {
    ObjectPath::parse(key).map_err(|e| Error::Key {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

impl Bucket {
    /// Opens the bucket of `url` (no request is made).
    ///
    /// Credentials come from the environment as the providers' own tools
    /// read them: S3 `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_DEFAULT_REGION` (or `AWS_REGION`), then
    /// the instance metadata; Azure `AZURE_STORAGE_CONNECTION_STRING`
    /// (`AccountName`, `AccountKey`, `SharedAccessSignature`,
    /// `BlobEndpoint`), `AZURE_STORAGE_SAS_TOKEN`, `AZURE_STORAGE_KEY`;
    /// GCS the application-default credentials (`GOOGLE_APPLICATION_CREDENTIALS`,
    /// gcloud's file, the instance metadata), or the emulator of
    /// `STORAGE_EMULATOR_HOST` without credentials.
    ///
    /// # Errors
    /// [`Error::Store`] when the provider's client cannot be built from
    /// the URL, the options and the environment.
    pub fn open(url: &CloudUrl, options: &StoreOptions) -> Result<Self> {
        let store: Box<dyn ObjectStore> = match url.provider() {
            Provider::AwsS3 => Box::new(Self::s3(url, options)?),
            Provider::AzureBlobStorage => Box::new(Self::azure(url, options)?),
            Provider::GoogleCloudStorage => Box::new(
                crate::gcs::Gcs::new(url.container(), CONNECT_TIMEOUT, options.read_timeout)
                    .map_err(|e| Error::store("open", url.container(), e))?,
            ),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        Ok(Self {
            store,
            runtime,
            name: url.container().to_owned(),
            provider: url.provider(),
            upload: options.upload,
        })
    }

    fn s3(url: &CloudUrl, options: &StoreOptions) -> Result<object_store::aws::AmazonS3> {
        let env_region = std::env::var("AWS_DEFAULT_REGION")
            .or_else(|_| std::env::var("AWS_REGION"))
            .ok();
        let mut builder = match &options.s3_profile {
            // A named profile: its keys, none of the environment's (boto3
            // skips them then); the environment's region still wins.
            Some(name) => {
                let profile = crate::aws_profile::load(name).map_err(Error::Profile)?;
                let mut builder = AmazonS3Builder::new();
                if let Some(id) = &profile.access_key_id {
                    builder = builder.with_access_key_id(id);
                }
                if let Some(secret) = &profile.secret_access_key {
                    builder = builder.with_secret_access_key(secret);
                }
                if let Some(token) = &profile.session_token {
                    builder = builder.with_token(token);
                }
                let region = env_region.or(profile.region);
                builder.with_region(region.as_deref().unwrap_or("us-east-1"))
            }
            None if env_region.is_none() => AmazonS3Builder::from_env().with_region("us-east-1"),
            None => AmazonS3Builder::from_env(),
        }
        .with_bucket_name(url.container())
        .with_retry(retry());
        let mut client = client_options(options);
        if let Some((id, secret)) = &options.s3_access_key {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        if let Some(endpoint) = &options.endpoint_url {
            builder = builder.with_endpoint(endpoint);
            if endpoint.starts_with("http://") {
                client = client.with_allow_http(true);
            }
        }
        let virtual_hosted = match options.addressing_style {
            AddressingStyle::Virtual => true,
            AddressingStyle::Path => false,
            AddressingStyle::Auto => options.endpoint_url.is_none(),
        };
        builder = builder
            .with_virtual_hosted_style_request(virtual_hosted)
            .with_client_options(client);
        let encryption = &options.encryption;
        if let Some(mode) = &encryption.s3_mode {
            builder = builder.with_config(
                "aws_server_side_encryption"
                    .parse()
                    .map_err(|e| Error::store("open", url.container(), e))?,
                mode,
            );
        }
        if let Some(key_id) = &encryption.s3_kms_key_id {
            builder = builder.with_sse_kms_encryption(key_id);
        }
        if let Some(key) = &encryption.s3_customer_key {
            builder = builder.with_ssec_encryption(key);
        }
        builder
            .build()
            .map_err(|e| Error::store("open", url.container(), e))
    }

    fn azure(
        url: &CloudUrl,
        options: &StoreOptions,
    ) -> Result<object_store::azure::MicrosoftAzure> {
        let mut builder = MicrosoftAzureBuilder::from_env()
            .with_container_name(url.container())
            .with_retry(retry())
            .with_client_options(client_options(options));
        if let Ok(connection) = std::env::var("AZURE_STORAGE_CONNECTION_STRING") {
            for (key, value) in connection_string(&connection) {
                builder = match key.as_str() {
                    "AccountName" => builder.with_account(value),
                    "AccountKey" => builder.with_access_key(value),
                    "SharedAccessSignature" => {
                        builder.with_config(object_store::azure::AzureConfigKey::SasKey, value)
                    }
                    "BlobEndpoint" => builder
                        .with_endpoint(value.clone())
                        .with_allow_http(value.starts_with("http://")),
                    _ => builder,
                };
            }
        }
        if let Some(account) = url.account() {
            builder = builder.with_account(account);
        }
        if let Some(endpoint) = url.emulator_endpoint() {
            let account = url.account().unwrap_or_default();
            builder = builder
                .with_endpoint(format!("{endpoint}/{account}"))
                .with_allow_http(endpoint.starts_with("http://"));
        }
        builder
            .build()
            .map_err(|e| Error::store("open", url.container(), e))
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its provider.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Whether the bucket exists: a listing of it (with a key prefix that
    /// matches nothing) succeeds.
    ///
    /// # Errors
    /// [`Error::Store`] for any failure but "no such bucket" (an endpoint
    /// that cannot be reached is [`Error::is_network`]).
    pub fn exists(&self) -> Result<bool> {
        let probe = path(".barman-rs-probe")?;
        let result = self.runtime.block_on(async {
            let mut listing = self.store.list(Some(&probe));
            listing.next().await.transpose()
        });
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_no_such_bucket(&e) => Ok(false),
            Err(e) => Err(Error::store("list", &self.name, e)),
        }
    }

    /// The objects whose keys start with `dir` (a "directory": `dir` ends
    /// with `/`, or is empty for the whole bucket), sorted by key.
    ///
    /// # Errors
    /// [`Error::Store`] naming the prefix.
    pub fn list(&self, dir: &str) -> Result<Vec<Listed>> {
        let prefix = dir.trim_end_matches('/');
        let prefix = (!prefix.is_empty()).then(|| path(prefix)).transpose()?;
        let found = self.runtime.block_on(async {
            let mut listing = self.store.list(prefix.as_ref());
            let mut found = Vec::new();
            while let Some(meta) = listing.next().await {
                let meta = meta?;
                found.push(Listed {
                    key: meta.location.to_string(),
                    size: meta.size,
                });
            }
            Ok::<_, object_store::Error>(found)
        });
        if let Err(e) = &found
            && is_no_such_bucket(e)
        {
            return Err(Error::NoSuchBucket(self.name.clone()));
        }
        let mut found = found.map_err(|e| Error::store("list", dir, e))?;
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    /// Uploads what `reader` yields as `key`, with `tags`: one PUT when it
    /// fits in [`SINGLE_PUT_MAX`], a multipart upload otherwise; memory
    /// stays within [`SINGLE_PUT_MAX`] plus two parts, whatever the size
    /// (or the [`UploadTuning`] the bucket was opened with).
    ///
    /// # Errors
    /// [`Error::Store`] naming the key; [`Error::Read`] when `reader`
    /// fails (the multipart upload is then aborted).
    pub fn put(&self, key: &str, reader: &mut dyn Read, tags: &[(String, String)]) -> Result<u64> {
        let location = path(key)?;
        let single_put_max = self.upload.single_put_max.unwrap_or(SINGLE_PUT_MAX);
        let part_size = self.upload.part_size.unwrap_or(PART_SIZE).max(1);
        let in_flight = self.upload.parts_in_flight.unwrap_or(2).max(1);
        let mut tag_set = TagSet::default();
        for (k, v) in tags {
            tag_set.push(k, v);
        }
        let mut first = Vec::new();
        reader
            .take(single_put_max as u64 + 1)
            .read_to_end(&mut first)
            .map_err(|e| Error::Read(key.to_owned(), e))?;
        let filled = first.len();
        if filled <= single_put_max {
            let options = PutOptions {
                tags: tag_set,
                ..PutOptions::default()
            };
            self.runtime
                .block_on(
                    self.store
                        .put_opts(&location, PutPayload::from(first), options),
                )
                .map_err(|e| self.put_error(key, e))?;
            return Ok(filled as u64);
        }
        let options = PutMultipartOptions {
            tags: tag_set,
            ..PutMultipartOptions::default()
        };
        self.runtime.block_on(async {
            let upload = self
                .store
                .put_multipart_opts(&location, options)
                .await
                .map_err(|e| self.put_error(key, e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
            let mut total = filled as u64;
            writer.write(&first);
            drop(first);
            let mut buf = vec![0u8; part_size];
            loop {
                writer
                    .wait_for_capacity(in_flight)
                    .await
                    .map_err(|e| self.put_error(key, e))?;
                let n = match fill(reader, &mut buf[..]) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(Error::Read(key.to_owned(), e));
                    }
                };
                if n == 0 {
                    break;
                }
                writer.write(&buf[..n]);
                total += n as u64;
            }
            writer.finish().await.map_err(|e| self.put_error(key, e))?;
            Ok(total)
        })
    }

    /// A streaming multipart upload of `key` in parts of `part_size` bytes,
    /// at most `jobs` parts in flight (a tar part of a backup: Barman
    /// uploads those as multipart uploads whatever their size). `key` must
    /// be a new object's: on Azure, an upload dropped unfinished discards
    /// its blocks by writing and deleting the object.
    ///
    /// # Errors
    /// [`Error::Store`] / [`Error::NoSuchBucket`] when the upload cannot
    /// start.
    pub fn multipart(
        &self,
        key: &str,
        tags: &[(String, String)],
        part_size: usize,
        jobs: usize,
    ) -> Result<MultipartWriter<'_>> {
        let location = path(key)?;
        let mut tag_set = TagSet::default();
        for (k, v) in tags {
            tag_set.push(k, v);
        }
        let options = PutMultipartOptions {
            tags: tag_set,
            ..PutMultipartOptions::default()
        };
        let upload = self
            .runtime
            .block_on(self.store.put_multipart_opts(&location, options))
            .map_err(|e| self.put_error(key, e))?;
        let part_size = part_size.max(5 << 20);
        Ok(MultipartWriter {
            bucket: self,
            key: key.to_owned(),
            upload: Some(upload),
            tasks: JoinSet::new(),
            buffer: Vec::with_capacity(part_size),
            part_size,
            jobs: jobs.max(1),
            written: 0,
        })
    }

    fn put_error(&self, key: &str, e: object_store::Error) -> Error {
        if is_no_such_bucket(&e) {
            Error::NoSuchBucket(self.name.clone())
        } else {
            Error::store("upload", key, e)
        }
    }

    /// Streams object `key` into `writer`; the bytes written.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such object; [`Error::Store`]
    /// naming the key; [`Error::Write`] when `writer` fails.
    pub fn get(&self, key: &str, writer: &mut dyn Write) -> Result<u64> {
        let location = path(key)?;
        self.runtime.block_on(async {
            let result = self.store.get(&location).await.map_err(|e| match e {
                object_store::Error::NotFound { .. } => Error::NotFound(key.to_owned()),
                e => Error::store("download", key, e),
            })?;
            let mut stream = result.into_stream();
            let mut total = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| Error::store("download", key, e))?;
                writer
                    .write_all(&chunk)
                    .map_err(|e| Error::Write(key.to_owned(), e))?;
                total += chunk.len() as u64;
            }
            Ok(total)
        })
    }

    /// Object `key` in memory, refused past `max` bytes (the object may be
    /// hostile, or have grown since it was listed): for the small objects
    /// a catalog reads (`backup.info`, keep annotations, manifests).
    ///
    /// # Errors
    /// As [`get`](Self::get); [`Error::Key`] naming the key when the object
    /// holds more than `max` bytes.
    pub fn get_bounded(&self, key: &str, max: u64) -> Result<Vec<u8>> {
        /// A buffer that refuses to grow past its bound.
        struct Bounded(Vec<u8>, u64);

        impl Write for Bounded {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0.len() as u64 + buf.len() as u64 > self.1 {
                    return Err(std::io::Error::from(std::io::ErrorKind::FileTooLarge));
                }
                self.0.extend_from_slice(buf);
                Ok(buf.len())
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let mut bytes = Bounded(Vec::new(), max);
        match self.get(key, &mut bytes) {
            Ok(_) => Ok(bytes.0),
            Err(Error::Write(..)) => Err(Error::Key {
                key: key.to_owned(),
                reason: format!("larger than {max} bytes"),
            }),
            Err(e) => Err(e),
        }
    }

    /// Deletes the objects `keys` (a missing one is not an error).
    ///
    /// # Errors
    /// [`Error::Store`] naming the first key that could not be deleted.
    pub fn delete(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            let location = path(key)?;
            match self.runtime.block_on(self.store.delete(&location)) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::store("delete", key, e)),
            }
        }
        Ok(())
    }
}

/// How long the clean-up of a failed upload (aborting a multipart upload)
/// keeps trying: a store that comes back within it is told.
pub const CLEANUP_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `attempt` until it succeeds or [`CLEANUP_DEADLINE`] has passed,
/// waiting longer after each failure (for the clean-up after a failure,
/// when the store may be briefly unreachable); the last error otherwise.
///
/// # Errors
/// The last attempt's error.
pub fn retry_cleanup<T, E>(
    mut attempt: impl FnMut() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let start = std::time::Instant::now();
    let mut wait = Duration::from_millis(250);
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() + wait > CLEANUP_DEADLINE => return Err(e),
            Err(_) => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(8));
            }
        }
    }
}

/// A multipart upload in progress ([`Bucket::multipart`]): what is written
/// goes out in parts of a fixed size, at most `jobs` in flight;
/// [`finish`](Self::finish) completes the object, and dropping it
/// unfinished aborts the upload (retried for [`CLEANUP_DEADLINE`], so no
/// uploaded part is left behind by a store that was briefly unreachable).
pub struct MultipartWriter<'a> {
    bucket: &'a Bucket,
    key: String,
    upload: Option<Box<dyn MultipartUpload>>,
    tasks: JoinSet<object_store::Result<()>>,
    buffer: Vec<u8>,
    part_size: usize,
    jobs: usize,
    written: u64,
}

impl std::fmt::Debug for MultipartWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultipartWriter")
            .field("key", &self.key)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl MultipartWriter<'_> {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The object's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Waits until at most `jobs` parts are in flight; the first failure.
    fn wait_for(&mut self, jobs: usize) -> object_store::Result<()> {
        while self.tasks.len() > jobs {
            if let Some(done) = self.bucket.runtime.block_on(self.tasks.join_next()) {
                done??;
            }
        }
        Ok(())
    }

    /// Sends the buffer as the next part.
    fn send_part(&mut self) -> object_store::Result<()> {
        self.wait_for(self.jobs.saturating_sub(1))?;
        let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.part_size));
        let upload = self
            .upload
            .as_mut()
            .ok_or_else(|| object_store::Error::Generic {
                store: "barman-cloud",
                source: "the upload is finished".into(),
            })?;
        let request = upload.put_part(PutPayload::from(part));
        let _runtime = self.bucket.runtime.enter();
        self.tasks.spawn(request);
        Ok(())
    }

    /// Completes the upload.
    ///
    /// # Errors
    /// [`Error::Store`] naming the key (the upload is then aborted).
    pub fn finish(mut self) -> Result<u64> {
        let sent = if self.buffer.is_empty() {
            Ok(())
        } else {
            self.send_part()
        };
        let completed = sent.and_then(|()| self.wait_for(0)).and_then(|()| {
            let upload = self.upload.as_mut().expect("finish is called once");
            self.bucket.runtime.block_on(upload.complete()).map(drop)
        });
        match completed {
            Ok(()) => {
                self.upload = None;
                Ok(self.written)
            }
            // Dropping self aborts the upload.
            Err(e) => Err(self.bucket.put_error(&self.key, e)),
        }
    }
}

impl Write for MultipartWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.upload.is_none() {
            return Err(std::io::Error::other("the upload is finished"));
        }
        let n = buf.len().min(self.part_size - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() == self.part_size {
            self.send_part().map_err(std::io::Error::other)?;
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for MultipartWriter<'_> {
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        let runtime = &self.bucket.runtime;
        runtime.block_on(self.tasks.shutdown());
        let aborted = retry_cleanup(|| runtime.block_on(upload.abort())).and_then(|()| {
            // Azure has no abort (object_store's does nothing; uncommitted
            // blocks would stay for a week): a blob written over them
            // discards them, and is deleted. The key is a new backup
            // part's, so nothing else is lost.
            if self.bucket.provider != Provider::AzureBlobStorage {
                return Ok(());
            }
            let location = path(&self.key).map_err(|e| object_store::Error::Generic {
                store: "barman-cloud",
                source: e.to_string().into(),
            })?;
            retry_cleanup(|| {
                runtime.block_on(async {
                    self.bucket
                        .store
                        .put_opts(&location, PutPayload::default(), PutOptions::default())
                        .await?;
                    self.bucket.store.delete(&location).await
                })
            })
        });
        if let Err(e) = aborted {
            tracing::warn!(
                "could not abort the multipart upload of `{}`: {}",
                self.key,
                error_chain(&e)
            );
        }
    }
}

/// Reads until `buf` is full or the reader ends; the bytes read.
fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The `key=value;...` pairs of an Azure connection string.
fn connection_string(text: &str) -> BTreeMap<String, String> {
    text.split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Whether `e` says the bucket or container does not exist.
fn is_no_such_bucket(e: &object_store::Error) -> bool {
    let text = error_chain(e);
    text.contains("NoSuchBucket")
        || text.contains("ContainerNotFound")
        || text.contains("The specified bucket does not exist")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_split_into_pairs() {
        let pairs = connection_string(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
        );
        assert_eq!(pairs["AccountName"], "devstoreaccount1");
        assert_eq!(pairs["AccountKey"], "a2V5==");
        assert_eq!(
            pairs["BlobEndpoint"],
            "http://127.0.0.1:10000/devstoreaccount1"
        );
    }

    #[test]
    fn fill_reads_across_short_reads() {
        let data = vec![7u8; 100];
        let mut reader = std::io::Cursor::new(data).chain(std::io::Cursor::new(vec![8u8; 50]));
        let mut buf = [0u8; 120];
        assert_eq!(fill(&mut reader, &mut buf).unwrap(), 120);
        assert_eq!(fill(&mut reader, &mut buf).unwrap(), 30);
        assert_eq!(fill(&mut reader, &mut buf).unwrap(), 0);
    }
}
