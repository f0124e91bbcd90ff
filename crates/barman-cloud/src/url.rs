//! The URLs of the barman-cloud tools (`SOURCE_URL`, `DESTINATION_URL`)
//! and the key prefix each one gives (BARMAN-CLOUD.md §1).
//!
//! | provider | URL | key prefix |
//! |---|---|---|
//! | `aws-s3` | `s3://bucket[/prefix]` | the path without its leading `/`; a trailing `/` is kept |
//! | `azure-blob-storage` | `https://<account>.blob.core.windows.net/<container>[/prefix]`, the emulator's `http://host:port/<account>/<container>[/prefix]` | the path after the container |
//! | `google-cloud-storage` | `gs://bucket[/prefix]`, `https://console.cloud.google.com/storage/browser/bucket[/prefix]` | the path without leading and trailing `/` |

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// A cloud provider, as `--cloud-provider` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Provider {
    /// Amazon S3 and S3-compatible endpoints (`aws-s3`, the default).
    #[default]
    AwsS3,
    /// Azure Blob Storage (`azure-blob-storage`).
    AzureBlobStorage,
    /// Google Cloud Storage (`google-cloud-storage`).
    GoogleCloudStorage,
}

impl Provider {
    /// The `--cloud-provider` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::AwsS3 => "aws-s3",
            Self::AzureBlobStorage => "azure-blob-storage",
            Self::GoogleCloudStorage => "google-cloud-storage",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::AwsS3,
            Self::AzureBlobStorage,
            Self::GoogleCloudStorage,
        ]
        .into_iter()
        .find(|p| p.name() == s)
        .ok_or_else(|| {
            format!(
                "invalid choice: '{s}' (choose from 'aws-s3', 'azure-blob-storage', 'google-cloud-storage')"
            )
        })
    }
}

/// Where a tool's objects live: the container (bucket) and the key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudUrl {
    provider: Provider,
    /// The Azure storage account, when the URL names one.
    account: Option<String>,
    /// The emulator's `scheme://host[:port]` for an Azure emulator URL.
    endpoint: Option<String>,
    container: String,
    path: String,
}

/// Splits `scheme://rest` into the scheme and the rest.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    url.split_once("://")
}

impl CloudUrl {
    /// Parses `url` as `provider` reads it.
    ///
    /// # Errors
    /// [`Error::Url`] naming the URL when its scheme or shape is not one
    /// the provider accepts, or when it names no container.
    pub fn parse(url: &str, provider: Provider) -> Result<Self> {
        let invalid = |reason: &'static str| Error::Url {
            provider: provider.name(),
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = split_scheme(url).ok_or_else(|| invalid("no scheme"))?;
        let parsed = match provider {
            Provider::AwsS3 => {
                if scheme != "s3" {
                    return Err(invalid("expected s3://bucket[/prefix]"));
                }
                let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
                Self::new(provider, None, None, bucket, path.trim_start_matches('/'))
            }
            Provider::GoogleCloudStorage => {
                let rest = match scheme {
                    "gs" => rest,
                    "https" => rest
                        .strip_prefix("console.cloud.google.com/storage/browser/")
                        .ok_or_else(|| invalid("expected gs://bucket[/prefix]"))?,
                    _ => return Err(invalid("expected gs://bucket[/prefix]")),
                };
                let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
                Self::new(provider, None, None, bucket, path.trim_matches('/'))
            }
            Provider::AzureBlobStorage => {
                if scheme != "https" && scheme != "http" {
                    return Err(invalid(
                        "expected https://<account>.blob.core.windows.net/<container>[/prefix]",
                    ));
                }
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                if let Some(account) = host.strip_suffix(".blob.core.windows.net") {
                    let (container, path) = path.split_once('/').unwrap_or((path, ""));
                    Self::new(provider, Some(account), None, container, path)
                } else {
                    // The emulator: http://host:port/<account>/<container>[/prefix].
                    let mut parts = path.splitn(3, '/');
                    let account = parts.next().unwrap_or_default();
                    let container = parts.next().unwrap_or_default();
                    let path = parts.next().unwrap_or_default();
                    if account.is_empty() {
                        return Err(invalid("no storage account in the emulator URL"));
                    }
                    let endpoint = format!("{scheme}://{host}");
                    Self::new(provider, Some(account), Some(endpoint), container, path)
                }
            }
        };
        if parsed.container.is_empty() {
            return Err(invalid("no bucket or container"));
        }
        Ok(parsed)
    }

    fn new(
        provider: Provider,
        account: Option<&str>,
        endpoint: Option<String>,
        container: &str,
        path: &str,
    ) -> Self {
        Self {
            provider,
            account: account.map(str::to_owned),
            endpoint,
            container: container.to_owned(),
            path: path.to_owned(),
        }
    }

    /// The provider.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The bucket (S3, GCS) or container (Azure).
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The key prefix every object key starts with (may be empty).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The Azure storage account the URL names.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// The Azure emulator's `scheme://host[:port]`, for an emulator URL.
    pub fn emulator_endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str, provider: Provider) -> (String, String) {
        let u = CloudUrl::parse(url, provider).unwrap();
        (u.container().to_owned(), u.path().to_owned())
    }

    #[test]
    fn s3_keeps_a_trailing_slash_and_drops_leading_ones() {
        let s3 = Provider::AwsS3;
        assert_eq!(parse("s3://b", s3), ("b".into(), String::new()));
        assert_eq!(parse("s3://b/", s3), ("b".into(), String::new()));
        assert_eq!(parse("s3://b/pg", s3), ("b".into(), "pg".into()));
        assert_eq!(parse("s3://b/pg2/", s3), ("b".into(), "pg2/".into()));
        assert_eq!(parse("s3://b//x/y", s3), ("b".into(), "x/y".into()));
    }

    #[test]
    fn gcs_strips_slashes_and_reads_the_console_form() {
        let gcs = Provider::GoogleCloudStorage;
        assert_eq!(parse("gs://b/p/", gcs), ("b".into(), "p".into()));
        assert_eq!(
            parse(
                "https://console.cloud.google.com/storage/browser/b/p/q",
                gcs
            ),
            ("b".into(), "p/q".into())
        );
    }

    #[test]
    fn azure_reads_the_account_from_the_host_or_the_emulator_path() {
        let az = Provider::AzureBlobStorage;
        let u = CloudUrl::parse("https://acct.blob.core.windows.net/cont/pre/fix", az).unwrap();
        assert_eq!(
            (u.account(), u.container(), u.path(), u.emulator_endpoint()),
            (Some("acct"), "cont", "pre/fix", None)
        );
        let u = CloudUrl::parse("http://127.0.0.1:10000/devstoreaccount1/cont/p", az).unwrap();
        assert_eq!(
            (u.account(), u.container(), u.path()),
            (Some("devstoreaccount1"), "cont", "p")
        );
        assert_eq!(u.emulator_endpoint(), Some("http://127.0.0.1:10000"));
    }

    #[test]
    fn wrong_schemes_and_missing_buckets_are_refused_by_name() {
        for (url, provider) in [
            ("gs://b/p", Provider::AwsS3),
            ("s3://", Provider::AwsS3),
            ("s3:/b", Provider::AwsS3),
            ("s3://b", Provider::GoogleCloudStorage),
            ("https://example.com/b", Provider::GoogleCloudStorage),
            ("s3://b", Provider::AzureBlobStorage),
            (
                "https://acct.blob.core.windows.net/",
                Provider::AzureBlobStorage,
            ),
            ("http://127.0.0.1:10000/", Provider::AzureBlobStorage),
        ] {
            let e = CloudUrl::parse(url, provider).unwrap_err();
            assert!(e.to_string().contains(&format!("`{url}`")), "{e}");
        }
    }

    #[test]
    fn provider_names_round_trip() {
        for p in [
            Provider::AwsS3,
            Provider::AzureBlobStorage,
            Provider::GoogleCloudStorage,
        ] {
            assert_eq!(p.name().parse::<Provider>(), Ok(p));
        }
        assert!(
            "s3".parse::<Provider>()
                .unwrap_err()
                .contains("invalid choice")
        );
    }
}
