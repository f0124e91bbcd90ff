//! AWS named profiles (`-P/--aws-profile`), read as boto3 reads them:
//! the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
//! `~/.aws/credentials`, section `[NAME]`) and the config file
//! (`AWS_CONFIG_FILE`, default `~/.aws/config`, section `[profile NAME]`,
//! or `[default]`). A profile's keys take precedence over the `AWS_*`
//! variables (boto3 skips them when a profile is named); its region comes
//! after `AWS_DEFAULT_REGION`/`AWS_REGION`.
//!
//! Static keys only: a profile that needs another way to get credentials
//! (assumed roles, SSO, credential processes, web identity) is refused
//! naming the setting, never half-used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The settings of a profile barman-rs can use.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Profile {
    /// `aws_access_key_id`.
    pub access_key_id: Option<String>,
    /// `aws_secret_access_key`.
    pub secret_access_key: Option<String>,
    /// `aws_session_token`.
    pub session_token: Option<String>,
    /// `region`.
    pub region: Option<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the token.
        f.debug_struct("Profile")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// The settings that get credentials in ways barman-rs does not implement.
const UNSUPPORTED: [&str; 9] = [
    "role_arn",
    "source_profile",
    "credential_source",
    "credential_process",
    "web_identity_token_file",
    "sso_session",
    "sso_start_url",
    "sso_account_id",
    "sso_role_name",
];

/// The sections of an INI file: name → key → value.
fn sections(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut all: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_owned();
            all.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            all.entry(section.clone())
                .or_default()
                .insert(key.trim().to_lowercase(), value.trim().to_owned());
        }
    }
    all
}

fn home_file(variable: &str, default: &str) -> Option<PathBuf> {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(default)))
}

/// Profile `name` from the files' texts (`None` for a missing file).
///
/// # Errors
/// `The config profile (NAME) could not be found` (boto3's words) when
/// neither file has it; a message naming a setting barman-rs does not
/// implement.
pub fn from_texts(
    name: &str,
    credentials: Option<&str>,
    config: Option<&str>,
) -> Result<Profile, String> {
    let from_credentials = credentials.map(sections).and_then(|mut s| s.remove(name));
    let config_section = if name == "default" {
        "default".to_owned()
    } else {
        format!("profile {name}")
    };
    let from_config = config
        .map(sections)
        .and_then(|mut s| s.remove(&config_section));
    if from_credentials.is_none() && from_config.is_none() {
        return Err(format!("The config profile ({name}) could not be found"));
    }
    // The credentials file wins over the config file, key by key.
    let mut settings = from_config.unwrap_or_default();
    settings.extend(from_credentials.unwrap_or_default());
    if let Some(key) = UNSUPPORTED.iter().find(|k| settings.contains_key(**k)) {
        return Err(format!(
            "the AWS profile `{name}` uses `{key}`, which barman-rs does not implement (only static keys)"
        ));
    }
    Ok(Profile {
        access_key_id: settings.remove("aws_access_key_id"),
        secret_access_key: settings.remove("aws_secret_access_key"),
        session_token: settings.remove("aws_session_token"),
        region: settings.remove("region"),
    })
}

/// Profile `name` from the user's files.
///
/// # Errors
/// As [`from_texts`]; a file that exists but cannot be read is named.
pub fn load(name: &str) -> Result<Profile, String> {
    let read = |path: Option<PathBuf>| -> Result<Option<String>, String> {
        match path {
            None => Ok(None),
            Some(path) => match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read {}: {e}", path.display())),
            },
        }
    };
    let credentials = read(home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"))?;
    let config = read(home_file("AWS_CONFIG_FILE", ".aws/config"))?;
    from_texts(name, credentials.as_deref(), config.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDENTIALS: &str = "[default]\naws_access_key_id = DEF\naws_secret_access_key = defsecret\n\n# a comment\n[prod]\naws_access_key_id=AKIA1\naws_secret_access_key = s3cr3t\naws_session_token = tok\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n[profile prod]\nregion = us-west-2\n[profile role]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = prod\n[profile only-config]\naws_access_key_id = AK2\naws_secret_access_key = S2\n";

    #[test]
    fn profiles_come_from_both_files() {
        let prod = from_texts("prod", Some(CREDENTIALS), Some(CONFIG)).unwrap();
        assert_eq!(prod.access_key_id.as_deref(), Some("AKIA1"));
        assert_eq!(prod.secret_access_key.as_deref(), Some("s3cr3t"));
        assert_eq!(prod.session_token.as_deref(), Some("tok"));
        assert_eq!(prod.region.as_deref(), Some("us-west-2"));
        let default = from_texts("default", Some(CREDENTIALS), Some(CONFIG)).unwrap();
        assert_eq!(default.access_key_id.as_deref(), Some("DEF"));
        assert_eq!(default.region.as_deref(), Some("eu-west-1"));
        let only = from_texts("only-config", None, Some(CONFIG)).unwrap();
        assert_eq!(only.access_key_id.as_deref(), Some("AK2"));
        assert!(!format!("{prod:?}").contains("s3cr3t"));
        assert!(!format!("{prod:?}").contains("tok"));
    }

    #[test]
    fn unknown_profiles_and_unsupported_settings_are_refused() {
        assert_eq!(
            from_texts("nosuch", Some(CREDENTIALS), Some(CONFIG)).unwrap_err(),
            "The config profile (nosuch) could not be found"
        );
        assert!(from_texts("prod", None, None).is_err());
        let e = from_texts("role", Some(CREDENTIALS), Some(CONFIG)).unwrap_err();
        assert!(e.contains("role_arn"), "{e}");
    }
}
