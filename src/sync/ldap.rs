//! Reading an LDAP directory (OpenLDAP or Active Directory) with `ldap3`: connect, bind, and
//! search with the simple paged results control (RFC 2696), so that servers with a size limit
//! (Active Directory's is 1,000) return every entry.
//!
//! Errors say what went wrong in the operator's terms: the server cannot be reached, did not
//! answer in time, refused the bind, has no such base DN, or stopped at its size limit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};

/// How to reach and bind to a directory.
#[derive(Clone)]
pub struct Settings {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    pub starttls: bool,
    /// PEM certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
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
            .field("starttls", &self.starttls)
            .field("ca_file", &self.ca_file)
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
    #[error("TLS with {url} failed: {detail}")]
    Tls { url: String, detail: String },
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
        let mut connection = LdapConnSettings::new()
            .set_conn_timeout(settings.timeout)
            .set_starttls(settings.starttls);
        if let Some(path) = &settings.ca_file {
            connection = connection.set_config(tls_config(path).map_err(|detail| Error::Tls {
                url: url.clone(),
                detail,
            })?);
        }
        let (connection, mut ldap) = LdapConnAsync::with_settings(connection, &url)
            .await
            .map_err(|e| {
                let tls = settings.starttls || url.starts_with("ldaps://");
                connect_error(e, &url, settings.timeout, tls)
            })?;
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
                other => connect_error(other, &url, settings.timeout, false),
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
                // Active Directory refers a search for a base outside its domain elsewhere.
                10 => Error::Other(format!(
                    "the directory does not hold `{base}` and referred the search to {}; \
                     rollcall does not follow referrals: use a base DN in this server's domain \
                     (Active Directory: or the Global Catalog, port 3268)",
                    if result.refs.is_empty() {
                        "another server".to_owned()
                    } else {
                        result.refs.join(", ")
                    }
                )),
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
        drop(stream);
        for entry in &mut entries {
            if entry.attrs.keys().any(|key| parse_range(key).is_some()) {
                self.complete_ranges(entry).await?;
            }
        }
        Ok(entries)
    }

    /// Active Directory returns at most 1,500 values of a multi-valued attribute (`member`)
    /// per read, as `member;range=0-1499`; the rest are read by asking for the next range
    /// until the server answers with an end of `*`. Leaves the whole list under `member`.
    async fn complete_ranges(&mut self, entry: &mut Entry) -> Result<(), Error> {
        let ranged: Vec<String> = entry
            .attrs
            .keys()
            .filter(|key| parse_range(key).is_some())
            .cloned()
            .collect();
        for key in ranged {
            let Some(values) = entry.attrs.remove(&key) else {
                continue;
            };
            let Some(range) = parse_range(&key) else {
                continue;
            };
            let name = range.attribute.to_owned();
            let mut all = values;
            let mut end = range.end;
            while let Some(last) = end {
                let request = format!("{name};range={}-*", last + 1);
                let (results, _) = self
                    .ldap
                    .with_timeout(self.timeout)
                    .search(
                        &entry.dn,
                        Scope::Base,
                        "(objectClass=*)",
                        vec![request.as_str()],
                    )
                    .await
                    .and_then(|result| result.success())
                    .map_err(|e| Error::Other(format!("reading {request} of {}: {e}", entry.dn)))?;
                let Some(result) = results.into_iter().next() else {
                    break;
                };
                let result = SearchEntry::construct(result);
                let next = result.attrs.into_iter().find_map(|(key, values)| {
                    let range = parse_range(&key)?;
                    (range.attribute.eq_ignore_ascii_case(&name)).then_some((range.end, values))
                });
                match next {
                    Some((next_end, values)) if !values.is_empty() => {
                        all.extend(values);
                        end = next_end;
                    }
                    _ => break,
                }
            }
            entry.attrs.entry(name).or_default().extend(all);
        }
        Ok(())
    }

    /// Unbinds politely; the connection closes either way.
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// `handshake`: the connection was to be encrypted (ldaps:// or StartTLS) and `error` came
/// while setting it up.
fn connect_error(error: LdapError, url: &str, timeout: Duration, handshake: bool) -> Error {
    match error {
        LdapError::Timeout { .. } => Error::Timeout {
            url: url.to_owned(),
            timeout,
        },
        LdapError::UrlParsing { source } => Error::BadUrl {
            url: url.to_owned(),
            detail: source.to_string(),
        },
        LdapError::Io { source }
            if source
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
        {
            Error::Tls {
                url: url.to_owned(),
                detail: explain_tls(&source.to_string()),
            }
        }
        // A server that closes the connection during the TLS handshake (an ldaps:// URL on a
        // plain LDAP port) comes from tokio-rustls as an EOF with no rustls error inside: the
        // server was reached; TLS failed.
        LdapError::Io { source }
            if handshake && source.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Error::Tls {
                url: url.to_owned(),
                detail: format!(
                    "the server closed the connection during the TLS handshake ({source}); \
                     does it speak TLS on this port?"
                ),
            }
        }
        LdapError::Io { source } => Error::Unreachable {
            url: url.to_owned(),
            detail: source.to_string(),
        },
        LdapError::Rustls { source } => Error::Tls {
            url: url.to_owned(),
            detail: explain_tls(&source.to_string()),
        },
        LdapError::LdapResult { result } => Error::Tls {
            url: url.to_owned(),
            detail: format!(
                "the server refused StartTLS: {}",
                describe(result.rc, &result.text)
            ),
        },
        other => Error::Unreachable {
            url: url.to_owned(),
            detail: other.to_string(),
        },
    }
}

/// A ranged attribute description (`member;range=0-1499`): the attribute, the first value's
/// index, and the last one's (`None` for `*`: these are the last values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range<'a> {
    pub attribute: &'a str,
    pub start: usize,
    pub end: Option<usize>,
}

/// Parses `name;range=START-END` (END a number or `*`); other options may precede `range`.
pub fn parse_range(key: &str) -> Option<Range<'_>> {
    let mut parts = key.split(';');
    let attribute = parts.next().filter(|name| !name.is_empty())?;
    let range = parts.find_map(|option| {
        let (name, value) = option.split_once('=')?;
        name.eq_ignore_ascii_case("range").then_some(value)
    })?;
    let (start, end) = range.split_once('-')?;
    let start = start.parse().ok()?;
    let end = match end {
        "*" => None,
        end => Some(end.parse().ok().filter(|&end: &usize| end >= start)?),
    };
    Some(Range {
        attribute,
        start,
        end,
    })
}

/// Active Directory's `objectGUID` (16 bytes) as the text Microsoft's tools show: the first
/// three fields little-endian (`{4f3a…}` without braces), lower case.
pub fn guid_text(bytes: &[u8]) -> Option<String> {
    let bytes: [u8; 16] = bytes.try_into().ok()?;
    Some(uuid::Uuid::from_bytes_le(bytes).to_string())
}

/// Active Directory's `userAccountControl` flag for a disabled account (ACCOUNTDISABLE).
pub const ACCOUNT_DISABLED: u32 = 0x2;

/// A TLS configuration trusting only the certificates in a PEM file.
fn tls_config(path: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
    for certificate in certificates {
        let certificate =
            certificate.map_err(|e| format!("the CA file {} is not PEM: {e}", path.display()))?;
        roots
            .add(certificate)
            .map_err(|e| format!("a certificate in {} is unusable: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "the CA file {} holds no certificate",
            path.display()
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// rustls names certificate problems by their variant; say what they mean to an operator.
fn explain_tls(detail: &str) -> String {
    let hint = if detail.contains("UnknownIssuer") {
        "the server's certificate is not signed by a CA in `ca_file` (or, without one, by a CA \
         the system trusts)"
    } else if detail.contains("NotValidForName") {
        "the server's certificate does not name the host in the URL"
    } else if detail.contains("Expired") {
        "the server's certificate has expired"
    } else {
        return detail.to_owned();
    };
    format!("{detail}: {hint}")
}

/// A result code with its name, and the server's text when it gave one.
fn describe(rc: u32, text: &str) -> String {
    let name = match rc {
        2 => "protocol error",
        4 => "size limit exceeded",
        10 => "referral",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_parsed_as_active_directory_writes_them() {
        assert_eq!(
            parse_range("member;range=0-1499"),
            Some(Range {
                attribute: "member",
                start: 0,
                end: Some(1499)
            })
        );
        assert_eq!(
            parse_range("member;range=1500-*"),
            Some(Range {
                attribute: "member",
                start: 1500,
                end: None
            })
        );
        assert_eq!(
            parse_range("member;binary;Range=3000-4499").map(|r| (r.attribute, r.end)),
            Some(("member", Some(4499)))
        );
        for not_ranged in [
            "member",
            "member;binary",
            ";range=0-1",
            "member;range=",
            "member;range=5",
            "member;range=a-9",
            "member;range=9-3",
            "member;range=0-x",
        ] {
            assert_eq!(parse_range(not_ranged), None, "{not_ranged}");
        }
    }

    #[test]
    fn guids_are_shown_with_the_first_three_fields_little_endian() {
        // As stored: the first three fields byte-reversed from how the text shows them.
        let bytes = [
            0x6f, 0x2c, 0x8b, 0x8f, 0xd9, 0x6b, 0x9e, 0x45, 0x9a, 0x45, 0x6d, 0x20, 0x8e, 0x2c,
            0x4f, 0x37,
        ];
        assert_eq!(
            guid_text(&bytes).as_deref(),
            Some("8f8b2c6f-6bd9-459e-9a45-6d208e2c4f37")
        );
        assert_eq!(guid_text(&bytes[..15]), None);
    }
}
