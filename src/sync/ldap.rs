//! Reading an LDAP directory (OpenLDAP or Active Directory) with `ldap3`: connect, bind, and
//! search with the simple paged results control (RFC 2696), so that servers with a size limit
//! (Active Directory's is 1,000) return every entry.
//!
//! Errors say what went wrong in the operator's terms: the server cannot be reached, did not
//! answer in time, refused the bind, has no such base DN, or stopped at its size limit.

use std::collections::HashMap;
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};

/// How to reach and bind to a directory.
#[derive(Clone)]
pub struct Settings {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    pub bind_dn: String,
    pub password: zeroize::Zeroizing<String>,
    /// For connecting and for each operation.
    pub timeout: Duration,
    /// Entries per page of a search.
    pub page_size: i32,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("timeout", &self.timeout)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{url} did not answer within {} s", .timeout.as_secs())]
    Timeout { url: String, timeout: Duration },
    #[error("the directory refused the bind as `{dn}`: {detail}")]
    BindRefused { dn: String, detail: String },
    #[error("the base DN `{base}` does not exist in the directory")]
    NoSuchBase { base: String },
    #[error(
        "the directory stopped the search under `{base}` at its size limit, although results were paged"
    )]
    SizeLimit { base: String },
    #[error("`{url}` is not an LDAP URL: {detail}")]
    BadUrl { url: String, detail: String },
    #[error("LDAP error: {0}")]
    Other(String),
}

/// An entry: its DN, text attributes, and attributes that are not valid UTF-8 (such as Active
/// Directory's `objectGUID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub attrs: HashMap<String, Vec<String>>,
    pub bin_attrs: HashMap<String, Vec<Vec<u8>>>,
}

impl Entry {
    /// The first value of an attribute, by any case of its name.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
    }

    /// Every value of an attribute, by any case of its name.
    pub fn all(&self, name: &str) -> &[String] {
        self.attrs
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map_or(&[], |(_, values)| values.as_slice())
    }
}

/// A bound connection to a directory.
pub struct Directory {
    ldap: Ldap,
    url: String,
    timeout: Duration,
    page_size: i32,
}

impl Directory {
    /// Connects and binds.
    pub async fn connect(settings: &Settings) -> Result<Directory, Error> {
        let url = settings.url.clone();
        let connection = LdapConnSettings::new().set_conn_timeout(settings.timeout);
        let (connection, mut ldap) = LdapConnAsync::with_settings(connection, &url)
            .await
            .map_err(|e| connect_error(e, &url, settings.timeout))?;
        ldap3::drive!(connection);
        ldap.with_timeout(settings.timeout)
            .simple_bind(&settings.bind_dn, &settings.password)
            .await
            .and_then(|result| result.success())
            .map_err(|e| match e {
                LdapError::LdapResult { result } => Error::BindRefused {
                    dn: settings.bind_dn.clone(),
                    detail: describe(result.rc, &result.text),
                },
                other => connect_error(other, &url, settings.timeout),
            })?;
        Ok(Directory {
            ldap,
            url,
            timeout: settings.timeout,
            page_size: settings.page_size.max(1),
        })
    }

    /// Every entry under `base` matching `filter`, page by page.
    pub async fn search(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<Entry>, Error> {
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(self.page_size)),
        ];
        let fail = |e: LdapError| match e {
            LdapError::LdapResult { result } => match result.rc {
                32 => Error::NoSuchBase {
                    base: base.to_owned(),
                },
                4 => Error::SizeLimit {
                    base: base.to_owned(),
                },
                rc => Error::Other(describe(rc, &result.text)),
            },
            LdapError::Timeout { .. } => Error::Timeout {
                url: self.url.clone(),
                timeout: self.timeout,
            },
            other => Error::Other(other.to_string()),
        };
        // Each page's request gets the operation timeout.
        let mut stream = self
            .ldap
            .with_timeout(self.timeout)
            .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(fail)?;
        let mut entries = Vec::new();
        while let Some(entry) = stream.next().await.map_err(fail)? {
            let entry = SearchEntry::construct(entry);
            entries.push(Entry {
                dn: entry.dn,
                attrs: entry.attrs,
                bin_attrs: entry.bin_attrs,
            });
        }
        stream.finish().await.success().map_err(fail)?;
        Ok(entries)
    }

    /// Unbinds politely; the connection closes either way.
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

fn connect_error(error: LdapError, url: &str, timeout: Duration) -> Error {
    match error {
        LdapError::Timeout { .. } => Error::Timeout {
            url: url.to_owned(),
            timeout,
        },
        LdapError::UrlParsing { source } => Error::BadUrl {
            url: url.to_owned(),
            detail: source.to_string(),
        },
        LdapError::Io { source } => Error::Unreachable {
            url: url.to_owned(),
            detail: source.to_string(),
        },
        other => Error::Unreachable {
            url: url.to_owned(),
            detail: other.to_string(),
        },
    }
}

/// A result code with its name, and the server's text when it gave one.
fn describe(rc: u32, text: &str) -> String {
    let name = match rc {
        4 => "size limit exceeded",
        32 => "no such object",
        34 => "invalid DN syntax",
        48 => "inappropriate authentication",
        49 => "invalid credentials",
        50 => "insufficient access rights",
        53 => "unwilling to perform",
        _ => "error",
    };
    if text.trim().is_empty() {
        format!("{name} (result code {rc})")
    } else {
        format!("{name} (result code {rc}): {}", text.trim())
    }
}
