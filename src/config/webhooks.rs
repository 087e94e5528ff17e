//! `[[webhooks]]`: where rollcall tells the platform what changed, which events, and the secret
//! that signs each delivery.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{School, Secret, number};
use crate::webhooks::event::{EventType, Subscription};

/// A receiver of events.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Unique; names the webhook in the outbox, the logs and `rollcall webhooks`.
    pub id: String,
    /// `http://` or `https://`; never holds a password.
    pub url: String,
    /// The events it receives (every kind, when the file names none).
    pub events: Vec<EventType>,
    /// Signs every delivery; read when the daemon starts.
    pub secret: Secret,
    /// How long one delivery may take, connecting included.
    pub timeout: Duration,
    /// Attempts before an event is left `failed` (until `rollcall webhooks --replay`).
    pub max_attempts: u32,
    /// The first retry's delay; each later one doubles, with full jitter, up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Only these schools' events (every school's, when `None`).
    pub schools: Option<Vec<String>>,
}

impl Webhook {
    /// What the store needs to know to write this webhook's events.
    pub fn subscription(&self) -> Subscription {
        Subscription {
            webhook: self.id.clone(),
            events: self.events.clone(),
            schools: self.schools.clone(),
        }
    }
}

/// A validation failure: the byte offset it concerns, the key, and the message.
type Invalid = (std::ops::Range<usize>, String, String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WebhookFile {
    id: Spanned<String>,
    url: Spanned<String>,
    events: Option<Spanned<Vec<Spanned<String>>>>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    timeout_secs: Option<Spanned<u64>>,
    max_attempts: Option<Spanned<u32>>,
    retry_initial_ms: Option<Spanned<u64>>,
    retry_max_secs: Option<Spanned<u64>>,
    schools: Option<Spanned<Vec<Spanned<String>>>>,
}

/// Validates the webhooks against the schools declared; relative paths are taken from `base`.
pub(super) fn webhooks(
    files: Vec<WebhookFile>,
    base: &Path,
    schools: &[School],
) -> Result<Vec<Webhook>, Invalid> {
    let mut out: Vec<Webhook> = Vec::new();
    for file in files {
        let fail = |span: std::ops::Range<usize>, key: &str, message: String| {
            (span, format!("webhooks.{key}"), message)
        };
        let id = file.id.get_ref();
        if !super::is_identifier(id) {
            return Err(fail(
                file.id.span(),
                "id",
                format!(
                    "`{id}` cannot name a webhook: use 1 to 64 lower-case letters, digits, `-` \
                     or `_`"
                ),
            ));
        }
        if out.iter().any(|known| &known.id == id) {
            return Err(fail(
                file.id.span(),
                "id",
                format!("webhook `{id}` is declared twice"),
            ));
        }
        let url = check_url(file.url.get_ref()).map_err(|m| fail(file.url.span(), "url", m))?;
        let events = match file.events {
            None => EventType::ALL.to_vec(),
            Some(names) if names.get_ref().is_empty() => {
                return Err(fail(
                    names.span(),
                    "events",
                    "name at least one event, or leave `events` out for every event".into(),
                ));
            }
            Some(names) => {
                let mut events = Vec::new();
                for name in names.into_inner() {
                    let event = EventType::parse(name.get_ref()).ok_or_else(|| {
                        fail(
                            name.span(),
                            "events",
                            format!(
                                "`{}` is not an event: use {}",
                                name.get_ref(),
                                EventType::ALL.map(EventType::as_str).join(", ")
                            ),
                        )
                    })?;
                    if !events.contains(&event) {
                        events.push(event);
                    }
                }
                events
            }
        };
        let secret = match (file.secret_env, file.secret_file) {
            (Some(name), None) => Secret::Env(name),
            (None, Some(path)) => Secret::File(base.join(path)),
            _ => {
                return Err(fail(
                    file.id.span(),
                    "secret_env",
                    format!(
                        "webhook `{id}` needs exactly one of `secret_env` (a variable's name) or \
                         `secret_file`: the signing secret never goes in this file"
                    ),
                ));
            }
        };
        let within = |value: Option<Spanned<u64>>, key: &str, default: u64, range| {
            number(value, default, range).map_err(|(span, m)| fail(span, key, m))
        };
        let timeout = within(file.timeout_secs, "timeout_secs", 10, 1..=300)?;
        let max_attempts = within(
            file.max_attempts
                .map(|n| Spanned::new(n.span(), u64::from(*n.get_ref()))),
            "max_attempts",
            12,
            1..=100,
        )?;
        let retry_initial = within(
            file.retry_initial_ms,
            "retry_initial_ms",
            1000,
            1..=3_600_000,
        )?;
        let retry_max = within(file.retry_max_secs, "retry_max_secs", 600, 1..=86_400)?;
        let schools = match file.schools {
            None => None,
            Some(ids) if ids.get_ref().is_empty() => {
                return Err(fail(
                    ids.span(),
                    "schools",
                    "name at least one school, or leave `schools` out for every school".into(),
                ));
            }
            Some(ids) => Some(
                ids.into_inner()
                    .into_iter()
                    .map(|school| {
                        if schools.iter().any(|known| &known.id == school.get_ref()) {
                            Ok(school.into_inner())
                        } else {
                            Err(fail(
                                school.span(),
                                "schools",
                                format!(
                                    "no school `{}` is declared in this file",
                                    school.get_ref()
                                ),
                            ))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        out.push(Webhook {
            id: file.id.into_inner(),
            url,
            events,
            secret,
            timeout: Duration::from_secs(timeout),
            max_attempts: u32::try_from(max_attempts).unwrap_or(u32::MAX),
            retry_initial: Duration::from_millis(retry_initial),
            retry_max: Duration::from_secs(retry_max),
            schools,
        });
    }
    Ok(out)
}

/// An `http://` or `https://` URL with a host and no password.
fn check_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("`{text}` is not a URL ({e}): use https://host/path"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}` is not an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{text}` names no host"));
    }
    if url.password().is_some() {
        return Err(
            "holds a password: receivers authenticate deliveries by their signature".into(),
        );
    }
    Ok(text.to_owned())
}
