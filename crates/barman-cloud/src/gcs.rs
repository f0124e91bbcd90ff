//! Google Cloud Storage over its JSON API, as an [`ObjectStore`].
//!
//! object_store's own GCS client speaks GCS's XML API; barman-cloud (the
//! `google-cloud-storage` Python library) and the GCS emulators speak the
//! JSON API, so this client does too: listing with `prefix` and page
//! tokens, `alt=media` downloads, single-request uploads (`media`, or
//! `multipart` when there is metadata), resumable uploads for what goes in
//! parts, deletes. Credentials are object_store's (application-default
//! credentials, a service account file or key, the instance metadata);
//! with `STORAGE_EMULATOR_HOST` set, requests go to that emulator without
//! credentials, as Google's client libraries do.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::future::{BoxFuture, Shared};
use futures_util::stream::{self, BoxStream};
use futures_util::{FutureExt as _, StreamExt as _, TryStreamExt as _};
use object_store::gcp::{GcpCredentialProvider, GoogleCloudStorageBuilder};
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, Extensions, GetOptions, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, UploadPart,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Map, Value};

/// The store's name in object_store errors.
const STORE: &str = "GCS";

/// A resumable upload's chunks are multiples of this (GCS's rule).
const CHUNK_GRANULE: usize = 256 << 10;

/// Retries of a request that failed before an answer or with a 429/5xx:
/// a few, quickly, within a minute.
const RETRIES: u32 = 3;
const RETRY_DEADLINE: Duration = Duration::from_secs(60);

/// What `encodeURIComponent` leaves alone: an object name in a URL path.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// The emulator named by `STORAGE_EMULATOR_HOST`, as a base URL.
fn emulator_host() -> Option<String> {
    let host = std::env::var("STORAGE_EMULATOR_HOST").ok()?;
    let host = host.trim().trim_end_matches('/');
    if host.is_empty() {
        return None;
    }
    Some(if host.contains("://") {
        host.to_owned()
    } else {
        format!("http://{host}")
    })
}

/// How the client authenticates.
#[derive(Clone)]
enum Auth {
    /// The emulator: no credentials.
    Anonymous,
    /// A bearer token from object_store's GCP credential chain.
    Bearer(GcpCredentialProvider),
}

/// A GCS bucket over the JSON API.
#[derive(Clone)]
pub struct Gcs {
    client: reqwest::Client,
    base: String,
    bucket: String,
    auth: Auth,
}

impl fmt::Debug for Gcs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gcs")
            .field("base", &self.base)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Gcs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GoogleCloudStorage({})", self.bucket)
    }
}

/// An error of this store.
fn generic(message: impl Into<String>) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: message.into().into(),
    }
}

fn request_error(e: reqwest::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(e),
    }
}

impl Gcs {
    /// A client of `bucket`: the emulator of `STORAGE_EMULATOR_HOST` when
    /// set, else `https://storage.googleapis.com` (or the universe domain
    /// of `GOOGLE_CLOUD_UNIVERSE_DOMAIN`) with object_store's credentials.
    ///
    /// # Errors
    /// When the HTTP client or the credentials cannot be set up.
    pub fn new(
        bucket: &str,
        connect_timeout: Duration,
        read_timeout: Option<Duration>,
    ) -> object_store::Result<Self> {
        let mut client = reqwest::Client::builder().connect_timeout(connect_timeout);
        if let Some(timeout) = read_timeout {
            client = client.read_timeout(timeout);
        }
        let client = client.build().map_err(request_error)?;
        let (base, auth) = if let Some(host) = emulator_host() {
            (host, Auth::Anonymous)
        } else {
            let domain = std::env::var("GOOGLE_CLOUD_UNIVERSE_DOMAIN")
                .ok()
                .filter(|d| !d.trim().is_empty())
                .unwrap_or_else(|| "googleapis.com".to_owned());
            let store = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .build()?;
            (
                format!("https://storage.{}", domain.trim()),
                Auth::Bearer(Arc::clone(store.credentials())),
            )
        };
        Ok(Self {
            client,
            base,
            bucket: bucket.to_owned(),
            auth,
        })
    }

    fn object_url(&self, name: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.base,
            encode(&self.bucket),
            encode(name)
        )
    }

    fn upload_url(&self, upload_type: &str, name: Option<&str>) -> String {
        let mut url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType={upload_type}",
            self.base,
            encode(&self.bucket)
        );
        if let Some(name) = name {
            url.push_str("&name=");
            url.push_str(&encode(name));
        }
        url
    }

    /// Sends the request `build` makes, with credentials, retrying a
    /// request that got no answer or a 429/5xx a few times; the response
    /// (any status) or the error.
    async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> object_store::Result<Response> {
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            let mut request = build(&self.client);
            if let Auth::Bearer(provider) = &self.auth {
                let credential = provider.get_credential().await?;
                request = request.bearer_auth(&credential.bearer);
            }
            let retryable = match request.send().await {
                Ok(response)
                    if response.status() == StatusCode::TOO_MANY_REQUESTS
                        || response.status().is_server_error() =>
                {
                    Err(response)
                }
                Ok(response) => return Ok(response),
                Err(e) if e.is_connect() || e.is_timeout() => Ok(e),
                Err(e) => return Err(request_error(e)),
            };
            attempt += 1;
            let elapsed = start.elapsed();
            if attempt > RETRIES || elapsed > RETRY_DEADLINE {
                return match retryable {
                    Ok(e) => Err(request_error(e)),
                    Err(response) => Err(failure(response, "").await),
                };
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
    }

    /// One page of the listing of `prefix`.
    async fn list_page(
        &self,
        prefix: Option<&str>,
        delimiter: bool,
        token: Option<&str>,
    ) -> object_store::Result<(Vec<ObjectMeta>, Vec<Path>, Option<String>)> {
        let url = format!("{}/storage/v1/b/{}/o", self.base, encode(&self.bucket));
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(prefix) = prefix {
            query.push(("prefix", prefix));
        }
        if delimiter {
            query.push(("delimiter", "/"));
        }
        if let Some(token) = token {
            query.push(("pageToken", token));
        }
        let url = format!(
            "{url}?{}",
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish()
        );
        let response = self.send(|c| c.get(&url)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(no_such_bucket(&self.bucket));
        }
        let body = json(response, prefix.unwrap_or("")).await?;
        let mut objects = Vec::new();
        for item in body
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            objects.push(meta_of(item)?);
        }
        let prefixes = body
            .get("prefixes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|p| Path::from(p.trim_end_matches('/')))
            .collect();
        let next = body
            .get("nextPageToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        // A page that sends back to itself would list forever.
        if next.is_some() && next.as_deref() == token {
            return Err(generic(format!(
                "listing {}: the answer repeats its page token",
                prefix.unwrap_or("")
            )));
        }
        Ok((objects, prefixes, next))
    }

    /// The JSON resource of a new object: its name and metadata (tags).
    fn resource(location: &Path, tags: &str) -> Value {
        let mut resource = Map::new();
        resource.insert("name".into(), Value::String(location.to_string()));
        let metadata: Map<String, Value> = form_urlencoded::parse(tags.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        if !metadata.is_empty() {
            resource.insert("metadata".into(), Value::Object(metadata));
        }
        Value::Object(resource)
    }
}

/// The error of a bucket that does not exist (the text barman-cloud's
/// clients see, which [`crate::store`] recognises).
fn no_such_bucket(bucket: &str) -> object_store::Error {
    generic(format!(
        "NoSuchBucket: The specified bucket does not exist: {bucket}"
    ))
}

/// The largest JSON answer read (a listing page of 1000 objects is about
/// 1 MiB): a larger one is an error, never held whole.
const MAX_ANSWER: usize = 16 << 20;

/// The most of an error answer read (its message is kept short anyway).
const MAX_ERROR_ANSWER: usize = 64 << 10;

/// `response`'s body, at most `max` bytes ([`BodyError::TooLarge`] past
/// them).
async fn body(mut response: Response, max: usize) -> Result<Vec<u8>, BodyError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if bytes.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(bytes));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Why [`body`] stopped.
enum BodyError {
    /// The answer could not be read.
    Read(reqwest::Error),
    /// It holds more than asked for (what was read before).
    TooLarge(Vec<u8>),
}

/// The error of an unexpected answer, with GCS's message.
async fn failure(response: Response, what: &str) -> object_store::Error {
    let status = response.status();
    let body = match body(response, MAX_ERROR_ANSWER).await {
        Ok(bytes) | Err(BodyError::TooLarge(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(BodyError::Read(_)) => String::new(),
    };
    let message: String = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or(body)
        .chars()
        .take(300)
        .collect();
    let text = format!("{status} {what}: {message}").replace(" :", ":");
    match status {
        StatusCode::NOT_FOUND => object_store::Error::NotFound {
            path: what.to_owned(),
            source: text.into(),
        },
        StatusCode::UNAUTHORIZED => object_store::Error::Unauthenticated {
            path: what.to_owned(),
            source: text.into(),
        },
        StatusCode::FORBIDDEN => object_store::Error::PermissionDenied {
            path: what.to_owned(),
            source: text.into(),
        },
        _ => generic(text),
    }
}

/// The JSON body of a successful answer.
async fn json(response: Response, what: &str) -> object_store::Result<Value> {
    if !response.status().is_success() {
        return Err(failure(response, what).await);
    }
    let bytes = body(response, MAX_ANSWER).await.map_err(|e| match e {
        BodyError::Read(e) => request_error(e),
        BodyError::TooLarge(_) => {
            generic(format!("{what}: an answer of more than {MAX_ANSWER} bytes"))
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| generic(format!("{what}: invalid answer: {e}")))
}

/// An object resource's metadata (`size` is a string in GCS's answers,
/// a number in some emulators').
fn meta_of(item: &Value) -> object_store::Result<ObjectMeta> {
    let name = item
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| generic("an object without a name in a listing"))?;
    let size = match item.get("size") {
        Some(Value::String(s)) => s.parse().ok(),
        Some(Value::Number(n)) => n.as_u64(),
        _ => None,
    }
    .ok_or_else(|| generic(format!("{name}: no size in the listing")))?;
    let last_modified = item
        .get("updated")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
    Ok(ObjectMeta {
        location: Path::from(name),
        last_modified,
        size,
        e_tag: item.get("etag").and_then(Value::as_str).map(str::to_owned),
        version: item
            .get("generation")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn put_result(body: &Value) -> PutResult {
    PutResult {
        e_tag: body.get("etag").and_then(Value::as_str).map(str::to_owned),
        version: body
            .get("generation")
            .and_then(Value::as_str)
            .map(str::to_owned),
        extensions: Extensions::default(),
    }
}

#[async_trait]
impl ObjectStore for Gcs {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let what = location.to_string();
        let tags = opts.tags.encoded().to_owned();
        let data = Bytes::from(payload);
        let response = if tags.is_empty() {
            let url = self.upload_url("media", Some(&what));
            self.send(|c| {
                c.post(&url)
                    .header("Content-Type", "application/octet-stream")
                    .body(data.clone())
            })
            .await?
        } else {
            // The resource (for the metadata) and the data in one request.
            let url = self.upload_url("multipart", None);
            let boundary = "barman_rs_b6c1e0f2a94d";
            let mut body = BytesMut::with_capacity(data.len() + 512);
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n",
                    Self::resource(location, &tags)
                )
                .as_bytes(),
            );
            body.extend_from_slice(&data);
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            let body = body.freeze();
            self.send(|c| {
                c.post(&url)
                    .header(
                        "Content-Type",
                        format!("multipart/related; boundary={boundary}"),
                    )
                    .body(body.clone())
            })
            .await?
        };
        if response.status() == StatusCode::NOT_FOUND {
            return Err(no_such_bucket(&self.bucket));
        }
        Ok(put_result(&json(response, &what).await?))
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let what = location.to_string();
        let url = self.upload_url("resumable", None);
        let resource = Self::resource(location, opts.tags.encoded()).to_string();
        let response = self
            .send(|c| {
                c.post(&url)
                    .header("Content-Type", "application/json; charset=UTF-8")
                    .header("X-Upload-Content-Type", "application/octet-stream")
                    .body(resource.clone())
            })
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(no_such_bucket(&self.bucket));
        }
        if !response.status().is_success() {
            return Err(failure(response, &what).await);
        }
        let session = response
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| generic(format!("{what}: no resumable upload session")))?;
        Ok(Box::new(ResumableUpload {
            store: self.clone(),
            what,
            session: Arc::new(session),
            state: Arc::new(Mutex::new(UploadState::default())),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let what = location.to_string();
        let url = self.object_url(&what);
        if options.head {
            let response = self.send(|c| c.get(&url)).await?;
            let meta = meta_of(&json(response, &what).await?)?;
            return Ok(GetResult {
                range: 0..meta.size,
                meta,
                payload: GetResultPayload::Stream(stream::empty().boxed()),
                attributes: Attributes::default(),
                extensions: Extensions::default(),
            });
        }
        if options.range.is_some() {
            return Err(object_store::Error::NotImplemented {
                operation: "get with a range".into(),
                implementer: STORE.into(),
            });
        }
        let media = format!("{url}?alt=media");
        let response = self.send(|c| c.get(&media)).await?;
        if !response.status().is_success() {
            return Err(failure(response, &what).await);
        }
        let size = response.content_length();
        let meta = ObjectMeta {
            location: location.clone(),
            last_modified: Utc::now(),
            size: size.unwrap_or(0),
            e_tag: None,
            version: response
                .headers()
                .get("x-goog-generation")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        let payload = response.bytes_stream().map_err(request_error).boxed();
        Ok(GetResult {
            range: 0..meta.size,
            meta,
            payload: GetResultPayload::Stream(payload),
            attributes: Attributes::default(),
            extensions: Extensions::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let store = self.clone();
        locations
            .and_then(move |location| {
                let store = store.clone();
                async move {
                    let what = location.to_string();
                    let url = store.object_url(&what);
                    let response = store.send(|c| c.request(Method::DELETE, &url)).await?;
                    if response.status().is_success() {
                        Ok(location)
                    } else {
                        Err(failure(response, &what).await)
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let store = self.clone();
        let prefix = prefix.map(|p| format!("{p}/"));
        stream::try_unfold(Some(None::<String>), move |token| {
            let store = store.clone();
            let prefix = prefix.clone();
            async move {
                let Some(token) = token else {
                    return Ok::<_, object_store::Error>(None);
                };
                let (objects, _, next) = store
                    .list_page(prefix.as_deref(), false, token.as_deref())
                    .await?;
                Ok(Some((
                    stream::iter(objects.into_iter().map(Ok)),
                    next.map(Some),
                )))
            }
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let prefix = prefix.map(|p| format!("{p}/"));
        let mut result = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
            extensions: Extensions::default(),
        };
        let mut token = None;
        loop {
            let (objects, prefixes, next) = self
                .list_page(prefix.as_deref(), true, token.as_deref())
                .await?;
            result.objects.extend(objects);
            result.common_prefixes.extend(prefixes);
            match next {
                Some(next) => token = Some(next),
                None => return Ok(result),
            }
        }
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        let url = format!(
            "{}/copyTo/b/{}/o/{}",
            self.object_url(from.as_ref()),
            encode(&self.bucket),
            encode(to.as_ref())
        );
        let response = self.send(|c| c.post(&url)).await?;
        json(response, from.as_ref()).await.map(drop)
    }
}

/// The state of a resumable upload: the bytes sent (or being sent), the
/// tail not yet a whole number of granules, and the last chunk's request
/// (chunks must arrive in order: each waits for the one before).
#[derive(Default)]
struct UploadState {
    offset: u64,
    tail: BytesMut,
    previous: Option<Shared<BoxFuture<'static, Result<(), String>>>>,
}

/// A resumable upload ([`ObjectStore::put_multipart_opts`]): the parts
/// object_store hands over are cut into 256 KiB-aligned chunks sent one
/// after the other; completion sends the tail with the total size.
struct ResumableUpload {
    store: Gcs,
    what: String,
    session: Arc<String>,
    state: Arc<Mutex<UploadState>>,
}

impl fmt::Debug for ResumableUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumableUpload")
            .field("object", &self.what)
            .finish_non_exhaustive()
    }
}

impl ResumableUpload {
    /// Queues `chunk` at `range` (`total` on the last one) behind the
    /// chunk before; the chunk's request, shared with the next.
    fn queue(
        &self,
        state: &mut UploadState,
        chunk: Bytes,
        range: Range<u64>,
        total: Option<u64>,
    ) -> Shared<BoxFuture<'static, Result<(), String>>> {
        let previous = state.previous.take();
        let store = self.store.clone();
        let session = Arc::clone(&self.session);
        let what = self.what.clone();
        let request = async move {
            if let Some(previous) = previous {
                previous.await?;
            }
            let total_text = total.map_or_else(|| "*".to_owned(), |t| t.to_string());
            let content_range = if range.is_empty() {
                format!("bytes */{total_text}")
            } else {
                format!("bytes {}-{}/{total_text}", range.start, range.end - 1)
            };
            let response = store
                .send(|c| {
                    c.put(session.as_str())
                        .header("Content-Range", &content_range)
                        .body(chunk.clone())
                })
                .await
                .map_err(|e| crate::error::error_chain(&e))?;
            let status = response.status();
            // 308 "resume incomplete" for a middle chunk, 200/201 at the end.
            if status.as_u16() == 308 || status.is_success() {
                Ok(())
            } else {
                Err(crate::error::error_chain(&failure(response, &what).await))
            }
        }
        .boxed()
        .shared();
        state.previous = Some(request.clone());
        request
    }
}

#[async_trait]
impl MultipartUpload for ResumableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for part in &data {
            state.tail.extend_from_slice(part);
        }
        let ready = state.tail.len() / CHUNK_GRANULE * CHUNK_GRANULE;
        if ready == 0 {
            return async { Ok(()) }.boxed();
        }
        let chunk = state.tail.split_to(ready).freeze();
        let start = state.offset;
        state.offset += ready as u64;
        let request = self.queue(&mut state, chunk, start..start + ready as u64, None);
        async move { request.await.map_err(generic) }.boxed()
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let request = {
            let mut state = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let chunk = std::mem::take(&mut state.tail).freeze();
            let start = state.offset;
            let total = start + chunk.len() as u64;
            state.offset = total;
            self.queue(&mut state, chunk, start..total, Some(total))
        };
        request.await.map_err(generic)?;
        Ok(PutResult {
            e_tag: None,
            version: None,
            extensions: Extensions::default(),
        })
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        // Cancels the session (GCS answers 499); a session never completed
        // leaves no object and expires by itself.
        let session = Arc::clone(&self.session);
        let _ = self
            .store
            .send(|c| c.request(Method::DELETE, session.as_str()))
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_encoded_as_one_path_component() {
        assert_eq!(
            encode("pg/srv/wals/0000000100000000/000000010000000000000001.gz"),
            "pg%2Fsrv%2Fwals%2F0000000100000000%2F000000010000000000000001.gz"
        );
        assert_eq!(encode("a b+c~d"), "a%20b%2Bc~d");
    }

    #[test]
    fn tags_become_the_resource_metadata() {
        let resource = Gcs::resource(&Path::from("p/srv/x"), "k=v%201&team=db");
        assert_eq!(
            resource.to_string(),
            r#"{"name":"p/srv/x","metadata":{"k":"v 1","team":"db"}}"#
        );
        assert_eq!(
            Gcs::resource(&Path::from("x"), "").to_string(),
            r#"{"name":"x"}"#
        );
    }

    #[test]
    fn listings_take_sizes_as_strings_or_numbers() {
        let item: Value = serde_json::json!({"name": "a/b", "size": "42", "updated": "2026-12-07T13:30:28.367636Z", "generation": "7"});
        let meta = meta_of(&item).unwrap();
        assert_eq!((meta.location.as_ref(), meta.size), ("a/b", 42));
        assert_eq!(meta.version.as_deref(), Some("7"));
        let item: Value = serde_json::json!({"name": "a", "size": 3});
        assert_eq!(meta_of(&item).unwrap().size, 3);
        assert!(meta_of(&serde_json::json!({"name": "a"})).is_err());
        assert!(meta_of(&serde_json::json!({"size": "1"})).is_err());
    }
}
