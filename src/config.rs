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
}

/// The validated configuration. Holding one proves every check below has passed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file was read from (`None` for a configuration built in code).
    pub path: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub server: Server,
    pub store: Store,
    pub schools: Vec<School>,
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
    /// `sqlite:///absolute/path.db`, or `sqlite::memory:`.
    pub url: String,
}

impl fmt::Debug for Store {
    // A future database URL may carry a password: show only its scheme.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.url.split(':').next().unwrap_or("");
        f.debug_struct("Store")
            .field("url", &format_args!("{scheme}:…"))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct School {
    pub id: String,
    pub name: String,
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
                check_store_url(url.get_ref())
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
            schools.push(School {
                id: school.id.into_inner(),
                name: school.name.into_inner(),
            });
        }

        Ok(Config {
            path: None,
            data_dir,
            server: Server {
                listen,
                log_format: server.log_format.unwrap_or(LogFormat::Text),
                request_timeout_secs: server.request_timeout_secs.unwrap_or(30),
                shutdown_grace_secs: server.shutdown_grace_secs.unwrap_or(30),
            },
            store: Store { url: store_url },
            schools,
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

fn check_store_url(url: &str) -> Result<(), String> {
    if url.starts_with("sqlite:") {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a supported store URL: use sqlite://path/to/rollcall.db",
            url.split(':').next().unwrap_or(url)
        ))
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
    #[serde(default)]
    schools: Vec<SchoolFile>,
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
}

#[cfg(test)]
mod tests;
