//! `[mail]`: the SMTP relay rollcall sends mail through (password-reset links), the sender, the
//! public address links point to and the templates; and `[password_reset]`: how long a link
//! works and how often one may be asked for.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Secret, number};

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, which the relay must offer (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only to a relay on this machine (a loopback address or `localhost`).
    None,
}

impl Security {
    fn default_port(self) -> u16 {
        match self {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Security::Starttls => "starttls",
            Security::Tls => "tls",
            Security::None => "none",
        }
    }
}

/// The relay and what every message carries.
#[derive(Debug, Clone)]
pub struct Mail {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// PEM certificates to trust instead of the system's (a school's own CA).
    pub ca_file: Option<PathBuf>,
    /// The relay's account, with its password (both or neither).
    pub credentials: Option<(String, Secret)>,
    /// The sender (`noreply@school.example` or `Name <noreply@school.example>`), checked.
    pub from: String,
    /// The console's public base URL (`https://accounts.school.example`, no trailing slash):
    /// every link in a message starts with it, never with a request's `Host` header, which a
    /// client chooses.
    pub public_url: String,
    /// A folder whose `<name>.subject`, `<name>.txt` and `<name>.html` files replace the
    /// built-in templates of the same names.
    pub templates: Option<PathBuf>,
    /// How long connecting and sending one message may take.
    pub timeout: Duration,
}

/// Forgotten passwords: how long a link works and how many may be asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordReset {
    /// How long a link works after it is sent.
    pub expire_after_secs: u64,
    /// Requests allowed per account (the name or address typed in) within `window_secs`.
    pub account_requests: u32,
    /// Requests allowed per client address within `window_secs`.
    pub address_requests: u32,
    pub window_secs: u64,
}

impl Default for PasswordReset {
    fn default() -> Self {
        PasswordReset {
            expire_after_secs: 1800,
            account_requests: 5,
            address_requests: 20,
            window_secs: 3600,
        }
    }
}

/// A validation failure: the byte offset it concerns, the key, and the message.
type Invalid = (std::ops::Range<usize>, String, String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MailFile {
    host: Spanned<String>,
    port: Option<Spanned<u16>>,
    security: Option<Spanned<Security>>,
    ca_file: Option<Spanned<PathBuf>>,
    user: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    from: Spanned<String>,
    public_url: Spanned<String>,
    templates: Option<Spanned<PathBuf>>,
    timeout_secs: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordResetFile {
    expire_after_secs: Option<Spanned<u64>>,
    account_requests: Option<Spanned<u32>>,
    address_requests: Option<Spanned<u32>>,
    window_secs: Option<Spanned<u64>>,
}

/// Validates `[mail]`; relative paths are taken from `base`.
pub(super) fn mail(file: MailFile, base: &Path) -> Result<Mail, Invalid> {
    let fail = |span: std::ops::Range<usize>, key: &str, message: String| {
        (span, format!("mail.{key}"), message)
    };
    let host = file.host.get_ref().trim();
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
        return Err(fail(
            file.host.span(),
            "host",
            format!("`{host}` is not a host name or address"),
        ));
    }
    let security = file
        .security
        .as_ref()
        .map_or(Security::Starttls, |s| *s.get_ref());
    if security == Security::None && !is_loopback(host) {
        return Err(fail(
            file.security
                .as_ref()
                .map_or(file.host.span(), Spanned::span),
            "security",
            format!(
                "\"none\" sends passwords' reset links unencrypted, so it is only allowed to a \
                 relay on this machine (localhost or a loopback address), not `{host}`: use \
                 \"starttls\" or \"tls\""
            ),
        ));
    }
    if let (Some(ca_file), Security::None) = (&file.ca_file, security) {
        return Err(fail(
            ca_file.span(),
            "ca_file",
            "a CA file is for a TLS connection, and `security` is \"none\"".into(),
        ));
    }
    let port = match file.port {
        None => security.default_port(),
        Some(port) if *port.get_ref() == 0 => {
            return Err(fail(port.span(), "port", "0 is not a port".into()));
        }
        Some(port) => port.into_inner(),
    };
    let credentials = match (file.user, file.password_env, file.password_file) {
        (None, None, None) => None,
        (Some(user), Some(name), None) => Some((user.into_inner(), Secret::Env(name.into_inner()))),
        (Some(user), None, Some(path)) => {
            Some((user.into_inner(), Secret::File(base.join(path.get_ref()))))
        }
        (Some(user), None, None) => {
            return Err(fail(
                user.span(),
                "user",
                "a relay account needs its password: set `password_env` (a variable's name) or \
                 `password_file`; the password never goes in this file"
                    .into(),
            ));
        }
        (None, Some(name), _) => {
            return Err(fail(
                name.span(),
                "password_env",
                "a password needs the relay account's `user`".into(),
            ));
        }
        (None, None, Some(path)) => {
            return Err(fail(
                path.span(),
                "password_file",
                "a password needs the relay account's `user`".into(),
            ));
        }
        (Some(user), Some(_), Some(_)) => {
            return Err(fail(
                user.span(),
                "password_env",
                "set one of `password_env` and `password_file`, not both".into(),
            ));
        }
    };
    if let Err(e) = file.from.get_ref().parse::<lettre::message::Mailbox>() {
        return Err(fail(
            file.from.span(),
            "from",
            format!(
                "`{}` is not a sender address such as noreply@school.example or \
                 \"School <noreply@school.example>\" ({e})",
                file.from.get_ref()
            ),
        ));
    }
    let public_url = check_public_url(file.public_url.get_ref())
        .map_err(|message| fail(file.public_url.span(), "public_url", message))?;
    let timeout = match file.timeout_secs {
        None => 30,
        Some(secs) if (1..=300).contains(secs.get_ref()) => secs.into_inner(),
        Some(secs) => {
            return Err(fail(
                secs.span(),
                "timeout_secs",
                format!("{} is not between 1 and 300", secs.get_ref()),
            ));
        }
    };
    let templates = match file.templates {
        None => None,
        Some(path) => {
            let full = base.join(path.get_ref());
            if !full.is_dir() {
                return Err(fail(
                    path.span(),
                    "templates",
                    format!("{} is not a folder", full.display()),
                ));
            }
            Some(full)
        }
    };
    Ok(Mail {
        host: host.to_owned(),
        port,
        security,
        ca_file: file.ca_file.map(|path| base.join(path.get_ref())),
        credentials,
        from: file.from.into_inner(),
        public_url,
        templates,
        timeout: Duration::from_secs(timeout),
    })
}

/// Validates `[password_reset]`.
pub(super) fn password_reset(file: Option<PasswordResetFile>) -> Result<PasswordReset, Invalid> {
    let defaults = PasswordReset::default();
    let Some(file) = file else {
        return Ok(defaults);
    };
    let within = |value: Option<Spanned<u64>>, key: &str, default: u64, range| {
        number(value, default, range)
            .map_err(|(span, message)| (span, format!("password_reset.{key}"), message))
    };
    let widen = |value: Option<Spanned<u32>>| {
        value.map(|n| Spanned::new(n.span(), u64::from(*n.get_ref())))
    };
    let count = |value, key, default: u32| {
        within(widen(value), key, u64::from(default), 1..=10_000)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    Ok(PasswordReset {
        expire_after_secs: within(
            file.expire_after_secs,
            "expire_after_secs",
            defaults.expire_after_secs,
            1..=86_400,
        )?,
        account_requests: count(
            file.account_requests,
            "account_requests",
            defaults.account_requests,
        )?,
        address_requests: count(
            file.address_requests,
            "address_requests",
            defaults.address_requests,
        )?,
        window_secs: within(
            file.window_secs,
            "window_secs",
            defaults.window_secs,
            60..=86_400,
        )?,
    })
}

/// `localhost`, or an address of this machine's loopback interface.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An `https://` base URL (`http://` only for a loopback host) with no query, fragment or
/// credentials; returned without its trailing slash.
fn check_public_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| {
        format!("`{text}` is not a URL ({e}): use the console's address, such as https://accounts.school.example")
    })?;
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("`{text}` names no host"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Err(format!(
                "`{text}` is not https://: a reset link sent over plain HTTP can be read on the \
                 way (http:// is only allowed for localhost)"
            ));
        }
        _ => return Err(format!("`{text}` is not an https:// URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}` holds credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}` has a query or a fragment: give the base address only"
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, Error, Secret, Security};

    const MAIL: &str = r#"
[mail]
host = "smtp.north.example"
from = "North Academy <noreply@north.example>"
public_url = "https://accounts.north.example/"
"#;

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(text, Path::new("/etc/rollcall"))
    }

    /// Asserts a validation error naming `key` at `line`; returns its message.
    #[track_caller]
    fn invalid(text: &str, want_key: &str, want_line: usize) -> String {
        match parse(text) {
            Err(Error::Invalid {
                line, key, message, ..
            }) => {
                assert_eq!((key.as_str(), line), (want_key, want_line), "{message}");
                message
            }
            other => panic!("expected an invalid {want_key}, got {other:?}"),
        }
    }

    #[test]
    fn mail_defaults_to_starttls_on_587_and_resets_to_30_minutes() {
        let config = parse(MAIL).unwrap();
        let mail = config.mail.unwrap();
        assert_eq!(mail.security, Security::Starttls);
        assert_eq!(mail.port, 587);
        assert_eq!(mail.credentials, None);
        assert_eq!(mail.public_url, "https://accounts.north.example");
        assert_eq!(mail.timeout.as_secs(), 30);
        assert_eq!(config.password_reset.expire_after_secs, 1800);
        assert_eq!(config.password_reset.account_requests, 5);
        assert_eq!(config.password_reset.address_requests, 20);
        assert_eq!(config.password_reset.window_secs, 3600);
        // No `[mail]`: nobody can reset their own password, and that is valid.
        assert!(parse("").unwrap().mail.is_none());
    }

    #[test]
    fn tls_uses_465_and_the_password_comes_from_outside_the_file() {
        let text = format!(
            "{MAIL}security = \"tls\"\nuser = \"rollcall\"\npassword_env = \"SMTP_PASSWORD\"\n"
        );
        let mail = parse(&text).unwrap().mail.unwrap();
        assert_eq!(mail.port, 465);
        assert_eq!(
            mail.credentials,
            Some(("rollcall".into(), Secret::Env("SMTP_PASSWORD".into())))
        );
        let text =
            format!("{MAIL}user = \"rollcall\"\npassword_file = \"smtp.pass\"\nport = 2525\n");
        let mail = parse(&text).unwrap().mail.unwrap();
        assert_eq!(mail.port, 2525);
        assert_eq!(
            mail.credentials,
            Some((
                "rollcall".into(),
                Secret::File("/etc/rollcall/smtp.pass".into())
            ))
        );
    }

    #[test]
    fn a_schools_own_ca_is_trusted_for_tls_only() {
        assert_eq!(parse(MAIL).unwrap().mail.unwrap().ca_file, None);
        let mail = parse(&format!("{MAIL}ca_file = \"school-ca.pem\"\n"))
            .unwrap()
            .mail
            .unwrap();
        assert_eq!(
            mail.ca_file.as_deref(),
            Some(Path::new("/etc/rollcall/school-ca.pem"))
        );
        let text = MAIL.replace("smtp.north.example", "localhost")
            + "security = \"none\"\nca_file = \"school-ca.pem\"\n";
        let message = invalid(&text, "mail.ca_file", 7);
        assert!(message.contains("is for a TLS connection"), "{message}");
    }

    #[test]
    fn no_encryption_only_to_this_machine() {
        let message = invalid(&format!("{MAIL}security = \"none\"\n"), "mail.security", 6);
        assert!(
            message.contains("only allowed to a relay on this machine"),
            "{message}"
        );
        for host in ["localhost", "127.0.0.1", "::1", "[::1]", "127.0.0.2"] {
            let text = MAIL.replace("smtp.north.example", host) + "security = \"none\"\n";
            let mail = parse(&text)
                .unwrap_or_else(|e| panic!("{host}: {e}"))
                .mail
                .unwrap();
            assert_eq!(mail.port, 25, "{host}");
        }
        let text =
            MAIL.replace("smtp.north.example", "localhost.evil.example") + "security = \"none\"\n";
        invalid(&text, "mail.security", 6);
    }

    #[test]
    fn every_mistake_names_its_key() {
        invalid(
            &MAIL.replace("smtp.north.example", "smtp north"),
            "mail.host",
            3,
        );
        let message = invalid(
            &MAIL.replace("North Academy <noreply@north.example>", "noreply"),
            "mail.from",
            4,
        );
        assert!(message.contains("is not a sender address"), "{message}");
        let message = invalid(
            &MAIL.replace("https://accounts", "http://accounts"),
            "mail.public_url",
            5,
        );
        assert!(message.contains("not https://"), "{message}");
        invalid(
            &MAIL.replace("https://accounts.north.example/", "accounts.north.example"),
            "mail.public_url",
            5,
        );
        invalid(
            &MAIL.replace("north.example/\"", "north.example/?a=b\""),
            "mail.public_url",
            5,
        );
        invalid(
            &MAIL.replace("https://", "https://me:pw@"),
            "mail.public_url",
            5,
        );
        // A loopback console may use plain HTTP (development, tests).
        let text = MAIL.replace("https://accounts.north.example/", "http://127.0.0.1:8080");
        assert_eq!(
            parse(&text).unwrap().mail.unwrap().public_url,
            "http://127.0.0.1:8080"
        );
        let message = invalid(&format!("{MAIL}user = \"rollcall\"\n"), "mail.user", 6);
        assert!(message.contains("password_env"), "{message}");
        invalid(
            &format!("{MAIL}password_env = \"X\"\n"),
            "mail.password_env",
            6,
        );
        invalid(&format!("{MAIL}port = 0\n"), "mail.port", 6);
        invalid(&format!("{MAIL}timeout_secs = 0\n"), "mail.timeout_secs", 6);
        let message = invalid(
            &format!("{MAIL}templates = \"nowhere\"\n"),
            "mail.templates",
            6,
        );
        assert!(
            message.contains("/etc/rollcall/nowhere is not a folder"),
            "{message}"
        );
        // A required key left out, an unknown one, or a bad security: syntax errors.
        for text in [
            MAIL.replace("public_url", "# public_url"),
            format!("{MAIL}password = \"secret\"\n"),
            format!("{MAIL}security = \"ssl\"\n"),
        ] {
            assert!(matches!(parse(&text), Err(Error::Syntax { .. })), "{text}");
        }
    }

    #[test]
    fn reset_limits_are_checked() {
        let config = parse(
            "[password_reset]\nexpire_after_secs = 600\naccount_requests = 3\n\
             address_requests = 10\nwindow_secs = 1800\n",
        )
        .unwrap();
        assert_eq!(config.password_reset.expire_after_secs, 600);
        assert_eq!(config.password_reset.account_requests, 3);
        assert_eq!(config.password_reset.address_requests, 10);
        assert_eq!(config.password_reset.window_secs, 1800);
        invalid(
            "[password_reset]\nexpire_after_secs = 0\n",
            "password_reset.expire_after_secs",
            2,
        );
        invalid(
            "[password_reset]\nexpire_after_secs = 86401\n",
            "password_reset.expire_after_secs",
            2,
        );
        invalid(
            "[password_reset]\naccount_requests = 0\n",
            "password_reset.account_requests",
            2,
        );
        invalid(
            "[password_reset]\nwindow_secs = 59\n",
            "password_reset.window_secs",
            2,
        );
    }
}
