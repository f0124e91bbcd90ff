//! libpq connection strings, parsed once for every connection path: the
//! `key=value` form and `postgres[ql]://` URIs ([`parse`]), their redaction
//! for messages ([`redact`]: passwords never shown), and `~/.pgpass` lines
//! ([`pgpass_lookup`]). The SQL connection ([`crate::postgres`]) and the
//! replication client ([`crate::replication`]) both start from [`parse`].

use std::fmt;

/// A conninfo string that cannot be parsed. The message never holds a
/// password (it names the part of the string, not its text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `(key, value)` pairs of a conninfo, in the order written: a URI's
/// components percent-decoded ([`parse_uri`]), or `key=value` pairs
/// ([`parse_key_value`]).
pub fn parse(conninfo: &str) -> Result<Vec<(String, String)>> {
    if is_uri(conninfo) {
        parse_uri(conninfo)
    } else {
        parse_key_value(conninfo)
    }
}

/// Whether `conninfo` is a `postgres://` or `postgresql://` URI (rather
/// than `key=value` pairs).
pub fn is_uri(conninfo: &str) -> bool {
    let s = conninfo.trim_start();
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// Keys of a libpq conninfo whose values are secret.
const SECRET_KEYS: [&str; 2] = ["password", "sslpassword"];

/// A conninfo string with secret values replaced by `***`: `password` and
/// `sslpassword` in the `key=value` form; in a URI, the password of its
/// user info (`postgresql://user:***@host`) and those keys among its query
/// parameters (`?password=***`, percent-encoded key names included).
pub fn redact(conninfo: &str) -> String {
    let trimmed = conninfo.trim_start();
    if is_uri(trimmed) {
        return redact_uri(trimmed);
    }
    parse_key_value(conninfo).map_or_else(
        |_| "<unparsable conninfo>".to_owned(),
        |pairs| {
            pairs
                .iter()
                .map(|(k, v)| {
                    if SECRET_KEYS.contains(&k.as_str()) {
                        format!("{k}=***")
                    } else {
                        format!("{k}={}", quote_value(v))
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

/// [`redact`] of a `postgres[ql]://` URI. Works on the text, so
/// that a URI the parser would refuse is redacted too; it rather hides too
/// much (everything after the first `:` of what precedes the last `@`).
fn redact_uri(uri: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let mut out = format!("{scheme}://");
    match before_query.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if is_secret_uri_key(key) => format!("{key}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Whether a URI query key (percent-encoded as written) names a secret.
fn is_secret_uri_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let Some(b) = hex {
            decoded.push(b);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8_lossy(&decoded);
    SECRET_KEYS.contains(&decoded.trim())
}

/// A value as a `key=value` conninfo writes it: bare when it can be,
/// else single-quoted with `'` and `\\` escaped.
pub fn quote_value(v: &str) -> String {
    if !v.is_empty() && !v.contains([' ', '\'', '\\']) {
        return v.to_owned();
    }
    let mut s = String::from("'");
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// Parses a libpq `key=value` conninfo (values optionally single-quoted with
/// backslash escapes).
pub fn parse_key_value(conninfo: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = conninfo.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(Error(format!("missing `=` after `{key}`")));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(Error(format!("unterminated quoted value for `{key}`"))),
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => {
                            return Err(Error(format!("unterminated quoted value for `{key}`")));
                        }
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        if key.is_empty() {
            return Err(Error("empty key".into()));
        }
        pairs.push((key, value));
    }
}

/// Splits a `postgres://` URI into conninfo pairs, percent-decoding every
/// component: `postgresql://[user[:password]@][host][:port][/dbname][?key=value&...]`.
pub fn parse_uri(uri: &str) -> Result<Vec<(String, String)>> {
    let uri = uri.trim();
    let rest = uri
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| Error("not a URI".into()))?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut pairs = Vec::new();
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            pairs.push(("user".to_owned(), percent_decode(user, "user name")?));
        }
        if let Some(p) = password {
            pairs.push(("password".to_owned(), percent_decode(p, "password")?));
        }
    }
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for hostport in hostport.split(',') {
        let (host, port) = split_host_port(hostport)?;
        hosts.push(percent_decode(host, "host")?);
        ports.push(
            port.map(|p| percent_decode(p, "port"))
                .transpose()?
                .unwrap_or_default(),
        );
    }
    if hosts.iter().any(|h| !h.is_empty()) {
        pairs.push(("host".to_owned(), hosts.join(",")));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        pairs.push(("port".to_owned(), ports.join(",")));
    }
    if !path.is_empty() {
        pairs.push(("dbname".to_owned(), percent_decode(path, "database name")?));
    }
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param
            .split_once('=')
            .ok_or_else(|| Error(format!("URI parameter `{param}` has no `=` and a value")))?;
        let key = percent_decode(key, "parameter name")?;
        let value = percent_decode(value, &format!("value of parameter `{key}`"))?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// One `host[:port]` of a URI's host list (`[v6]:port` included).
fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>)> {
    Ok(if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| Error("unterminated `[` in the URI's host".into()))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| Error(format!("unexpected `{p}` after the URI's host")))?,
            ),
        };
        (host, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    })
}

/// Decodes `%XX` escapes; errors name `what` (never the text: it may be a password).
fn percent_decode(text: &str, what: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error(format!("invalid percent-encoding in the URI's {what}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error(format!("percent-encoding in the URI's {what} is not UTF-8")))
}

/// Finds the password for `wanted` (host, port, database, user) in the text
/// of a `.pgpass` file.
pub fn pgpass_lookup(text: &str, wanted: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass_line(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|((field, star), want)| *star || field == want);
            matches.then(|| fields[4].0.clone())
        })
}

/// Splits a `.pgpass` line on unescaped `:`; each field comes with whether
/// it was a bare `*`. The password is everything after the fourth `:`.
fn split_pgpass_line(line: &str) -> Vec<(String, bool)> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut bare_star = true;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    current.push(n);
                }
                bare_star = false;
            }
            ':' if fields.len() < 4 => {
                let star = bare_star && current == "*";
                fields.push((std::mem::take(&mut current), star));
                bare_star = true;
            }
            c => current.push(c),
        }
    }
    fields.push((current, false));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_parses_quotes_and_escapes() {
        let pairs = parse_key_value("host=pg  port = 5432 password='a b\\'c' user=x\\ y").unwrap();
        assert_eq!(
            pairs,
            [
                ("host".into(), "pg".into()),
                ("port".into(), "5432".into()),
                ("password".into(), "a b'c".into()),
                ("user".into(), "x y".into()),
            ]
        );
        assert!(parse_key_value("host").is_err());
        assert!(parse_key_value("host='x").is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let r = redact("host=pg password=s3cret user=barman");
        assert_eq!(r, "host=pg password=*** user=barman");
        assert!(!r.contains("s3cret"));
        let r = redact("postgresql://barman:s3cret@pg:5432/postgres");
        assert_eq!(r, "postgresql://barman:***@pg:5432/postgres");
        assert!(!redact("host='x password=s3cret").contains("s3cret"));
        // Passwords as URI query parameters, key percent-encoded or not.
        let r = redact(
            "postgresql://barman@pg/db?sslmode=require&password=s3cret&pass%77ord=s3cret&sslpassword=s3cret",
        );
        assert_eq!(
            r,
            "postgresql://barman@pg/db?sslmode=require&password=***&pass%77ord=***&sslpassword=***"
        );
        for uri in [
            " postgres://u:s3cret@h/db",
            "postgresql://u:s3c/ret@h/db",
            "postgresql://u:s3c@ret@h",
            "postgresql://h?password=s3cret%zz",
            "postgresql://h?application_name=x&password=s3cret",
        ] {
            let r = redact(uri);
            assert!(!r.contains("s3c") && !r.contains("ret"), "{uri}: {r}");
        }
    }
}
