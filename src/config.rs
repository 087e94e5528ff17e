//! The TOML configuration file, validated into [`Config`].
//!
//! Unknown keys are errors, and every error names the file, the line and the key. Values the
//! operator may want to change without editing the file come from environment variables (listed
//! in [`env`]); secrets never live in this file.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use crate::courses::{Catalogue, Course};
use crate::credentials::generate::{CharClass, Generated, Policy};
pub use crate::credentials::username::Template;

mod sources;
pub use sources::{
    Attributes, Connection, CourseRule, Dialect, Google, Groups, Incremental, Ldap, OneRoster,
    People, Secret, Select, Source,
};
mod webhooks;
pub use webhooks::Webhook;
mod mail;
pub use mail::{Mail, PasswordReset, Security};

/// Environment variables that override the file.
pub mod env {
    /// Overrides `[store] url`.
    pub const DATABASE_URL: &str = "ROLLCALL_DATABASE_URL";
    /// Overrides `[server] listen`.
    pub const LISTEN: &str = "ROLLCALL_LISTEN";
    /// Overrides `[server] log_format` (`text` or `json`).
    pub const LOG_FORMAT: &str = "ROLLCALL_LOG_FORMAT";
    /// A tracing filter such as `info` or `rollcall=debug,tower_http=info`.
    pub const LOG: &str = "ROLLCALL_LOG";
    /// The key that seals pending credential slips (32 bytes, base64); overrides
    /// `[slips] key_file`.
    pub const SLIP_KEY: &str = "ROLLCALL_SLIP_KEY";
}

/// The validated configuration. Holding one proves every check below has passed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file was read from (`None` for a configuration built in code).
    pub path: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub server: Server,
    pub store: Store,
    pub argon2: Argon2,
    pub slips: Slips,
    pub login: Login,
    pub console: Console,
    pub schools: Vec<School>,
    /// Receivers told of every change (`[[webhooks]]`).
    pub webhooks: Vec<Webhook>,
    /// The SMTP relay for outgoing mail (`[mail]`); without it, nobody can reset their own
    /// password.
    pub mail: Option<Mail>,
    /// Forgotten-password links (`[password_reset]`).
    pub password_reset: PasswordReset,
}

/// The admin console's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Console {
    /// Mark session cookies `Secure` (sent over HTTPS only). Only plain-HTTP development and
    /// tests on a loopback address turn it off.
    pub secure_cookies: bool,
    /// How long an admin stays signed in.
    pub session_hours: u64,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            secure_cookies: true,
            session_hours: 8,
        }
    }
}

/// argon2id cost parameters for every password hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2 {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2 {
    /// OWASP's recommendation: m=19456 KiB, t=2, p=1.
    fn default() -> Self {
        Argon2 {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Where the key sealing pending slips lives, and how long an uncollected slip is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slips {
    /// Read when `ROLLCALL_SLIP_KEY` is unset; created (mode 0600) on first start if missing.
    pub key_file: PathBuf,
    /// The key's base64 text from `ROLLCALL_SLIP_KEY`, when set.
    pub key_env: Option<String>,
    pub expire_after_days: u32,
}

/// Log-in throttling: failures allowed per account and per client address within a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub account_failures: u32,
    pub account_window_secs: u64,
    pub address_failures: u32,
    pub address_window_secs: u64,
    /// Reverse proxies whose `X-Forwarded-For` names the client; without them every student
    /// behind the proxy would share one address's failures.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for Login {
    fn default() -> Self {
        Login {
            account_failures: 5,
            account_window_secs: 900,
            address_failures: 50,
            address_window_secs: 900,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    /// Requests running longer than this are answered 503 and their work is dropped.
    pub request_timeout_secs: u64,
    /// How long a shutdown waits for in-flight requests before it gives up on them.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone)]
pub struct Store {
    /// A store URL: `sqlite://path/to/file.db` (relative to the working directory),
    /// `sqlite:///absolute/path.db`, `sqlite::memory:`, or `postgres://user@host:5432/db`.
    pub url: String,
}

impl fmt::Debug for Store {
    // A database URL from the environment may carry a password: show only its scheme.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.url.split(':').next().unwrap_or("");
        f.debug_struct("Store")
            .field("url", &format_args!("{scheme}:…"))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct School {
    pub id: String,
    pub name: String,
    /// Where students log in; printed on credential slips.
    pub login_url: Option<String>,
    pub usernames: Usernames,
    pub passwords: Passwords,
    pub courses: Catalogue,
    /// Directories the school's people are pulled from.
    pub sources: Vec<Source>,
}

impl School {
    /// A school with every policy at its default.
    pub fn new(id: &str, name: &str) -> School {
        School {
            id: id.to_owned(),
            name: name.to_owned(),
            login_url: None,
            usernames: Usernames::default(),
            passwords: Passwords::default(),
            courses: Catalogue::default(),
            sources: Vec::new(),
        }
    }

    /// The source with this id, if the school declares it.
    pub fn source(&self, id: &str) -> Option<&Source> {
        self.sources.iter().find(|source| source.id == id)
    }
}

/// How usernames are made and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usernames {
    pub template: Template,
    pub max_length: usize,
    /// Names refused in this school on top of [`crate::credentials::username::RESERVED`].
    pub reserved: Vec<String>,
    /// A username freed by a deletion is not given out again for this many days.
    pub reuse_after_days: u32,
}

impl Default for Usernames {
    fn default() -> Self {
        Usernames {
            template: Template::default(),
            max_length: 20,
            reserved: Vec::new(),
            reuse_after_days: 365,
        }
    }
}

/// How first passwords are generated and what chosen ones must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passwords {
    pub policy: Policy,
    /// Generate a first password (held as a pending slip) for accounts a SCIM client creates
    /// without one.
    pub generate_for_scim: bool,
}

impl Default for Passwords {
    fn default() -> Self {
        Passwords {
            policy: Policy::default(),
            generate_for_scim: true,
        }
    }
}

impl Config {
    /// The school with this id, if the configuration declares it.
    pub fn school(&self, id: &str) -> Option<&School> {
        self.schools.iter().find(|school| school.id == id)
    }

    /// Reads and validates a file, then applies the environment overrides.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Config::parse(&text, base).map_err(|e| e.in_file(path))?;
        config.path = Some(path.to_owned());
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Parses configuration text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, Error> {
        let file: File = toml::from_str(text).map_err(|e| Error::Syntax {
            file: None,
            line: e.span().map(|span| line_of(text, span.start)),
            message: e.message().to_owned(),
        })?;
        let invalid = |span: std::ops::Range<usize>, key: &str, message: String| Error::Invalid {
            file: None,
            line: line_of(text, span.start),
            key: key.to_owned(),
            message,
        };

        let data_dir = base.join(file.data_dir.unwrap_or_else(|| PathBuf::from("data")));
        let server = file.server.unwrap_or_default();
        let listen = match server.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(listen) => listen.get_ref().parse().map_err(|_| {
                invalid(
                    listen.span(),
                    "server.listen",
                    format!(
                        "`{}` is not an address such as 127.0.0.1:8080",
                        listen.get_ref()
                    ),
                )
            })?,
        };
        let store_url = match file.store.and_then(|store| store.url) {
            Some(url) => {
                check_file_store_url(url.get_ref())
                    .map_err(|message| invalid(url.span(), "store.url", message))?;
                url.into_inner()
            }
            None => format!("sqlite://{}", data_dir.join("rollcall.db").display()),
        };

        let mut schools: Vec<School> = Vec::new();
        for school in file.schools {
            let id = school.id.get_ref();
            if !is_identifier(id) {
                return Err(invalid(
                    school.id.span(),
                    "schools.id",
                    format!(
                        "`{id}` is not a school id: use 1 to 64 lower-case letters, digits, `-` or `_`"
                    ),
                ));
            }
            if schools.iter().any(|known| &known.id == id) {
                return Err(invalid(
                    school.id.span(),
                    "schools.id",
                    format!("school `{id}` is declared twice"),
                ));
            }
            if school.name.get_ref().trim().is_empty() {
                return Err(invalid(
                    school.name.span(),
                    "schools.name",
                    format!("school `{id}` needs a display name"),
                ));
            }
            let login_url = match school.login_url {
                Some(url)
                    if !url.get_ref().starts_with("https://")
                        && !url.get_ref().starts_with("http://") =>
                {
                    return Err(invalid(
                        url.span(),
                        "schools.login_url",
                        format!("`{}` is not an http:// or https:// address", url.get_ref()),
                    ));
                }
                url => url.map(Spanned::into_inner),
            };
            let usernames = match school.usernames {
                None => Usernames::default(),
                Some(file) => {
                    let span = file.span();
                    let file = file.into_inner();
                    let template = match file.template {
                        None => Template::default(),
                        Some(text) => Template::parse(text.get_ref()).map_err(|message| {
                            invalid(text.span(), "schools.usernames.template", message)
                        })?,
                    };
                    let max_length = file.max_length.unwrap_or(20);
                    if !(3..=64).contains(&max_length) {
                        return Err(invalid(
                            span,
                            "schools.usernames.max_length",
                            format!("{max_length} is not between 3 and 64"),
                        ));
                    }
                    Usernames {
                        template,
                        max_length,
                        reserved: file
                            .reserved
                            .into_iter()
                            .map(|name| name.to_lowercase())
                            .collect(),
                        reuse_after_days: file.reuse_after_days.unwrap_or(365),
                    }
                }
            };
            let passwords = match school.passwords {
                None => Passwords::default(),
                Some(file) => {
                    let span = file.span();
                    passwords(file.into_inner())
                        .map_err(|(key, message)| invalid(span, key, message))?
                }
            };
            let mut courses = Vec::new();
            let mut first_course_span = None;
            for course in school.courses {
                first_course_span.get_or_insert(course.code.span());
                courses.push(Course {
                    code: course.code.into_inner(),
                    title: course.title.into_inner(),
                    implies: course.implies,
                });
            }
            let courses = Catalogue::new(courses).map_err(|message| {
                invalid(
                    first_course_span.unwrap_or(school.id.span()),
                    "schools.courses",
                    message,
                )
            })?;
            let sources = sources::sources(school.sources, base, &courses)
                .map_err(|(span, key, message)| invalid(span, &key, message))?;
            schools.push(School {
                id: school.id.into_inner(),
                name: school.name.into_inner(),
                login_url,
                usernames,
                passwords,
                courses,
                sources,
            });
        }
        let webhooks = webhooks::webhooks(file.webhooks, base, &schools)
            .map_err(|(span, key, message)| invalid(span, &key, message))?;
        let argon2 = match file.argon2 {
            None => Argon2::default(),
            Some(file) => {
                let span = file.span();
                let file = file.into_inner();
                let defaults = Argon2::default();
                let argon2 = Argon2 {
                    memory_kib: file.memory_kib.unwrap_or(defaults.memory_kib),
                    iterations: file.iterations.unwrap_or(defaults.iterations),
                    parallelism: file.parallelism.unwrap_or(defaults.parallelism),
                };
                crate::password::Hasher::new(argon2, 1)
                    .map_err(|e| invalid(span, "argon2", e.to_string()))?;
                argon2
            }
        };
        let slips = file.slips.unwrap_or_default();
        let login = match file.login {
            None => Login::default(),
            Some(file) => {
                let defaults = Login::default();
                Login {
                    account_failures: file.account_failures.unwrap_or(defaults.account_failures),
                    account_window_secs: file
                        .account_window_secs
                        .unwrap_or(defaults.account_window_secs),
                    address_failures: file.address_failures.unwrap_or(defaults.address_failures),
                    address_window_secs: file
                        .address_window_secs
                        .unwrap_or(defaults.address_window_secs),
                    trusted_proxies: file
                        .trusted_proxies
                        .iter()
                        .map(|address| {
                            address.get_ref().parse().map_err(|_| {
                                invalid(
                                    address.span(),
                                    "login.trusted_proxies",
                                    format!("`{}` is not an IP address", address.get_ref()),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                }
            }
        };
        let console = file.console.unwrap_or_default();
        let defaults = Console::default();
        let mail = file
            .mail
            .map(|mail| mail::mail(mail, base))
            .transpose()
            .map_err(|(span, key, message)| invalid(span, &key, message))?;
        let password_reset = mail::password_reset(file.password_reset)
            .map_err(|(span, key, message)| invalid(span, &key, message))?;
        let console = Console {
            secure_cookies: console.secure_cookies.unwrap_or(defaults.secure_cookies),
            session_hours: match console.session_hours {
                None => defaults.session_hours,
                Some(hours) if (1..=24).contains(hours.get_ref()) => *hours.get_ref(),
                Some(hours) => {
                    return Err(invalid(
                        hours.span(),
                        "console.session_hours",
                        format!("{} is not between 1 and 24", hours.get_ref()),
                    ));
                }
            },
        };

        Ok(Config {
            path: None,
            data_dir: data_dir.clone(),
            server: Server {
                listen,
                log_format: server.log_format.unwrap_or(LogFormat::Text),
                request_timeout_secs: server.request_timeout_secs.unwrap_or(30),
                shutdown_grace_secs: server.shutdown_grace_secs.unwrap_or(30),
            },
            store: Store { url: store_url },
            argon2,
            slips: Slips {
                key_file: slips
                    .key_file
                    .map(|path| base.join(path))
                    .unwrap_or_else(|| data_dir.join("slip.key")),
                key_env: None,
                expire_after_days: slips.expire_after_days.unwrap_or(30),
            },
            login,
            console,
            schools,
            webhooks,
            mail,
            password_reset,
        })
    }

    /// Applies the overrides in [`env`]; `lookup` reads one variable.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        let invalid = |key: &str, message: String| Error::Env {
            variable: key.to_owned(),
            message,
        };
        if let Some(url) = lookup(env::DATABASE_URL).filter(|url| !url.is_empty()) {
            check_store_url(&url).map_err(|message| invalid(env::DATABASE_URL, message))?;
            self.store.url = url;
        }
        if let Some(listen) = lookup(env::LISTEN).filter(|value| !value.is_empty()) {
            self.server.listen = listen.parse().map_err(|_| {
                invalid(
                    env::LISTEN,
                    format!("`{listen}` is not an address such as 127.0.0.1:8080"),
                )
            })?;
        }
        if let Some(key) = lookup(env::SLIP_KEY).filter(|value| !value.trim().is_empty()) {
            self.slips.key_env = Some(key);
        }
        if let Some(format) = lookup(env::LOG_FORMAT).filter(|value| !value.is_empty()) {
            self.server.log_format = match format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(invalid(
                        env::LOG_FORMAT,
                        format!("`{other}` is not a log format: use `text` or `json`"),
                    ));
                }
            };
        }
        Ok(())
    }
}

/// True for ids used in URLs and on the command line: `[a-z0-9_-]{1,64}`.
pub fn is_identifier(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The `[schools.passwords]` table as a policy, or the key at fault and why.
fn passwords(file: PasswordsFile) -> Result<Passwords, (&'static str, String)> {
    let classes = |key: &'static str, names: Vec<String>| {
        names
            .iter()
            .map(|name| {
                CharClass::parse(name).ok_or_else(|| {
                    (
                        key,
                        format!(
                            "`{name}` is not a character class: use lower, upper, digit or symbol"
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let defaults = Policy::default();
    let generated = match file.kind.as_deref().unwrap_or("characters") {
        "characters" => {
            if file.words.is_some() || file.digits.is_some() {
                return Err((
                    "schools.passwords.words",
                    "`words` and `digits` apply to kind = \"words\"".into(),
                ));
            }
            Generated::Characters {
                length: file.length.unwrap_or(10),
                classes: match file.classes {
                    Some(names) => classes("schools.passwords.classes", names)?,
                    None => vec![CharClass::Lower, CharClass::Upper, CharClass::Digit],
                },
                no_lookalikes: file.no_lookalikes.unwrap_or(true),
            }
        }
        "words" => {
            if file.length.is_some() || file.classes.is_some() || file.no_lookalikes.is_some() {
                return Err((
                    "schools.passwords.length",
                    "`length`, `classes` and `no_lookalikes` apply to kind = \"characters\"".into(),
                ));
            }
            Generated::Words {
                words: file.words.unwrap_or(3),
                digits: file.digits.unwrap_or(2),
            }
        }
        other => {
            return Err((
                "schools.passwords.kind",
                format!("`{other}` is not a kind of password: use characters or words"),
            ));
        }
    };
    let policy = Policy {
        generated,
        min_length: file.min_length.unwrap_or(defaults.min_length),
        require_classes: match file.require_classes {
            Some(names) => classes("schools.passwords.require_classes", names)?,
            None => Vec::new(),
        },
    };
    policy
        .validate()
        .map_err(|message| ("schools.passwords", message))?;
    Ok(Passwords {
        policy,
        generate_for_scim: file.generate_for_scim.unwrap_or(true),
    })
}

fn check_store_url(url: &str) -> Result<(), String> {
    if url.starts_with("sqlite:") || is_postgres_url(url) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a supported store URL: use sqlite://path/to/rollcall.db or \
             postgres://user@host:5432/database",
            url.split(':').next().unwrap_or(url)
        ))
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A PostgreSQL URL in the file may not carry a password: secrets come from the environment
/// (`PGPASSWORD`, or the whole URL in `ROLLCALL_DATABASE_URL`) or a file (`PGPASSFILE`).
fn check_file_store_url(url: &str) -> Result<(), String> {
    check_store_url(url)?;
    let authority = url
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
        .unwrap_or_default();
    match authority.rsplit_once('@') {
        Some((credentials, _)) if is_postgres_url(url) && credentials.contains(':') => Err(
            "holds a password: leave it out of this file and set PGPASSWORD, a pgpass file \
             (PGPASSFILE), or the whole URL in ROLLCALL_DATABASE_URL"
                .into(),
        ),
        _ => Ok(()),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {message}", file_prefix(file), line.map(|l| format!("line {l}")).unwrap_or_else(|| "somewhere".into()))]
    Syntax {
        file: Option<PathBuf>,
        line: Option<usize>,
        message: String,
    },
    #[error("{}line {line}: `{key}`: {message}", file_prefix(file))]
    Invalid {
        file: Option<PathBuf>,
        line: usize,
        key: String,
        message: String,
    },
    #[error("environment variable {variable}: {message}")]
    Env { variable: String, message: String },
}

fn file_prefix(file: &Option<PathBuf>) -> String {
    file.as_ref()
        .map(|path| format!("{}: ", path.display()))
        .unwrap_or_default()
}

impl Error {
    fn in_file(self, path: &Path) -> Error {
        match self {
            Error::Syntax { line, message, .. } => Error::Syntax {
                file: Some(path.to_owned()),
                line,
                message,
            },
            Error::Invalid {
                line, key, message, ..
            } => Error::Invalid {
                file: Some(path.to_owned()),
                line,
                key,
                message,
            },
            other => other,
        }
    }
}

// The file model. Every struct denies unknown keys, so a typo is an error that names the key.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    data_dir: Option<PathBuf>,
    server: Option<ServerFile>,
    store: Option<StoreFile>,
    argon2: Option<Spanned<Argon2File>>,
    slips: Option<SlipsFile>,
    login: Option<LoginFile>,
    console: Option<ConsoleFile>,
    #[serde(default)]
    schools: Vec<SchoolFile>,
    #[serde(default)]
    webhooks: Vec<webhooks::WebhookFile>,
    mail: Option<mail::MailFile>,
    password_reset: Option<mail::PasswordResetFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConsoleFile {
    secure_cookies: Option<bool>,
    session_hours: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    listen: Option<Spanned<String>>,
    log_format: Option<LogFormat>,
    request_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchoolFile {
    id: Spanned<String>,
    name: Spanned<String>,
    login_url: Option<Spanned<String>>,
    usernames: Option<Spanned<UsernamesFile>>,
    passwords: Option<Spanned<PasswordsFile>>,
    #[serde(default)]
    courses: Vec<CourseFile>,
    #[serde(default)]
    sources: Vec<sources::SourceFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsernamesFile {
    template: Option<Spanned<String>>,
    max_length: Option<usize>,
    #[serde(default)]
    reserved: Vec<String>,
    reuse_after_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordsFile {
    kind: Option<String>,
    length: Option<usize>,
    classes: Option<Vec<String>>,
    no_lookalikes: Option<bool>,
    words: Option<usize>,
    digits: Option<usize>,
    min_length: Option<usize>,
    require_classes: Option<Vec<String>>,
    generate_for_scim: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CourseFile {
    code: Spanned<String>,
    title: Spanned<String>,
    #[serde(default)]
    implies: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Argon2File {
    memory_kib: Option<u32>,
    iterations: Option<u32>,
    parallelism: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SlipsFile {
    key_file: Option<PathBuf>,
    expire_after_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginFile {
    account_failures: Option<u32>,
    account_window_secs: Option<u64>,
    address_failures: Option<u32>,
    address_window_secs: Option<u64>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
}

/// A number within `range`, or its default.
fn number(
    value: Option<Spanned<u64>>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, (std::ops::Range<usize>, String)> {
    match value {
        None => Ok(default),
        Some(value) if range.contains(value.get_ref()) => Ok(value.into_inner()),
        Some(value) => Err((
            value.span(),
            format!(
                "{} is not between {} and {}",
                value.get_ref(),
                range.start(),
                range.end()
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
