//! The Directory API's client: the service account's key, an access token by the OAuth 2.0
//! JWT bearer grant (RFC 7523, an RS256-signed assertion), kept until shortly before it
//! expires, and GET requests retried with exponential backoff and full jitter, never past the
//! run's deadline.
//!
//! Neither the private key nor an access token ever appears in a log line or an error.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::Error;
use crate::config::Secret;

/// Reading users (`users.list`).
pub const USERS_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
/// Reading groups and their members (`groups.list`, `members.list`).
pub const GROUPS_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
/// Google's token endpoint, when neither the source nor the key names one.
pub const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// The first wait before retrying; it doubles with every retry of the same request …
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// … up to this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(32);
/// A request that cannot reach the server this many times in a row fails the run: a
/// misconfigured URL should not wait out the whole deadline.
const MAX_TRANSPORT_FAILURES: u32 = 4;

/// A service account's JSON key as the Google Cloud console downloads it.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<Zeroizing<String>>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

/// What signs the assertions: the service account's address and private key.
pub struct Key {
    pub client_email: String,
    key_id: Option<String>,
    signer: jsonwebtoken::EncodingKey,
    pub token_uri: Option<String>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("client_email", &self.client_email)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Where a key comes from, for messages.
fn place(secret: &Secret) -> String {
    match secret {
        Secret::File(path) => format!("the key file {}", path.display()),
        Secret::Env(name) => format!("the key in environment variable {name}"),
    }
}

impl Key {
    /// Reads and checks a service account's key.
    pub fn load(secret: &Secret) -> Result<Key, Error> {
        let text = secret
            .read()
            .map_err(|e| Error::Key(format!("the service account key: {e}")))?;
        Key::parse(&text, &place(secret))
    }

    /// Parses a key's JSON; `place` says where it came from.
    pub fn parse(text: &str, place: &str) -> Result<Key, Error> {
        let bad = |what: String| Error::Key(format!("{place} {what}"));
        // serde_json's messages give a line and a column, never the text.
        let file: KeyFile = serde_json::from_str(text)
            .map_err(|e| bad(format!("is not a service account's JSON key ({e})")))?;
        match file.kind.as_deref() {
            Some("service_account") => {}
            Some(other) => {
                return Err(bad(format!(
                    "is a `{other}` key, not a service account's: create a JSON key for the \
                     service account in the Google Cloud console"
                )));
            }
            None => {
                return Err(bad(
                    "is not a service account's JSON key: it has no `\"type\": \
                     \"service_account\"`"
                        .into(),
                ));
            }
        }
        let Some(client_email) = file.client_email.filter(|e| e.contains('@')) else {
            return Err(bad("has no `client_email`".into()));
        };
        let Some(private_key) = file.private_key else {
            return Err(bad("has no `private_key`".into()));
        };
        let signer = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.as_bytes())
            .map_err(|_| bad("has a `private_key` that is not an RSA private key in PEM".into()))?;
        Ok(Key {
            client_email,
            key_id: file.private_key_id.filter(|id| !id.is_empty()),
            signer,
            token_uri: file.token_uri.filter(|uri| !uri.is_empty()),
        })
    }

    /// The signed assertion asking `token_url` for a token with `scope`, for `admin`, valid
    /// for an hour from `now` (Unix seconds).
    pub fn assertion(
        &self,
        admin: &str,
        scope: &str,
        token_url: &str,
        now: i64,
    ) -> Result<Zeroizing<String>, Error> {
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            scope: &'a str,
            aud: &'a str,
            iat: i64,
            exp: i64,
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = self.key_id.clone();
        let claims = Claims {
            iss: &self.client_email,
            sub: admin,
            scope,
            aud: token_url,
            iat: now,
            exp: now + 3600,
        };
        jsonwebtoken::encode(&header, &claims, &self.signer)
            .map(Zeroizing::new)
            .map_err(|e| Error::Key(format!("signing the token request failed: {e}")))
    }
}

/// An access token and when it stops being worth using.
pub(super) struct Token {
    pub(super) value: Zeroizing<String>,
    pub(super) expires: Instant,
    pub(super) lifetime: Duration,
}

impl Token {
    /// Whether to use it rather than ask for a new one: a token is renewed when less than a
    /// minute, or a tenth of its lifetime if that is shorter, remains.
    pub(super) fn fresh(&self, now: Instant) -> bool {
        let margin = (self.lifetime / 10).min(Duration::from_secs(60));
        now + margin < self.expires
    }
}

/// The wait before retry number `attempt` (0 for the first): full jitter, a `fraction`
/// (0..1) of the exponential backoff `BACKOFF_BASE × 2^attempt` capped at `BACKOFF_CAP`.
pub fn backoff(attempt: u32, fraction: f64) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1_u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(BACKOFF_CAP);
    ceiling.mul_f64(fraction.clamp(0.0, 1.0))
}

/// A random fraction in [0, 1) for the jitter (OS randomness; 0.5 if it cannot be had).
fn jitter() -> f64 {
    let mut bytes = [0_u8; 4];
    match crate::clock::random_bytes(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// Google's JSON error body, `{"error": {"code", "message", "errors": [{"reason", …}], "status"}}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

/// The token endpoint's answers: a token, or `{"error", "error_description"}`.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<Zeroizing<String>>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

/// What one API answer means.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    /// Worth another try (a quota, 429, a 5xx): why.
    Retry(String),
    /// The access token was refused: a new one may do.
    Reauthenticate(String),
    /// Another try would fare no better.
    Fail(Failure),
}

/// Why a request failed for good, in the operator's terms.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// 403 other than a quota: the admin may not read this.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 400: the request is wrong (an org unit that does not exist, a bad query).
    BadRequest {
        message: String,
        reason: String,
    },
    Other(String),
}

/// Classifies an API answer by its status and body.
pub fn verdict(status: u16, body: &[u8]) -> Verdict {
    if (200..300).contains(&status) {
        return Verdict::Fine;
    }
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let detail = parsed.error;
    let reasons: Vec<&str> = detail.errors.iter().map(|e| e.reason.as_str()).collect();
    let message = if detail.message.is_empty() {
        format!("HTTP {status}")
    } else {
        detail.message.clone()
    };
    let described = match (reasons.first(), detail.status.is_empty()) {
        (Some(reason), _) if !reason.is_empty() => format!("{status} {message} ({reason})"),
        (_, false) => format!("{status} {message} ({})", detail.status),
        _ => format!("{status} {message}"),
    };
    const QUOTA: [&str; 3] = [
        "userRateLimitExceeded",
        "rateLimitExceeded",
        "quotaExceeded",
    ];
    match status {
        401 => Verdict::Reauthenticate(described),
        403 if reasons.iter().any(|r| QUOTA.contains(r)) => Verdict::Retry(described),
        403 => Verdict::Fail(Failure::Forbidden(described)),
        404 => Verdict::Fail(Failure::NotFound(described)),
        400 => Verdict::Fail(Failure::BadRequest {
            message,
            reason: reasons.first().map(|r| (*r).to_owned()).unwrap_or_default(),
        }),
        429 | 500 | 502 | 503 | 504 => Verdict::Retry(described),
        _ => Verdict::Fail(Failure::Other(described)),
    }
}

/// A `Retry-After` header in seconds (an HTTP date is not worth parsing here).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A transport error with its causes (reqwest's own message names only the URL).
fn transport(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The Directory API as one admin, for one run.
pub struct Client {
    http: reqwest::Client,
    key: Key,
    admin: String,
    token_url: String,
    /// Space-separated, as the assertion carries them.
    scope: String,
    token: Option<Token>,
    timeout: Duration,
    started: Instant,
    deadline: Instant,
    deadline_setting: Duration,
    /// Requests sent, and how many of them were retries.
    pub requests: usize,
    pub retried: usize,
    /// Tokens obtained.
    pub tokens: usize,
    last_error: Option<String>,
}

impl Client {
    /// A client that gives up everything at `deadline` from now; `scopes` are those the
    /// run needs.
    pub fn new(
        google: &crate::config::Google,
        key: Key,
        scopes: &[&str],
        deadline: Duration,
    ) -> Result<Client, Error> {
        let http = crate::outbound::client(google.timeout).map_err(Error::Other)?;
        let token_url = google
            .token_url
            .clone()
            .or_else(|| key.token_uri.clone())
            .unwrap_or_else(|| TOKEN_URL.to_owned());
        let started = Instant::now();
        Ok(Client {
            http,
            key,
            admin: google.admin.clone(),
            token_url,
            scope: scopes.join(" "),
            token: None,
            timeout: google.timeout,
            started,
            deadline: started + deadline,
            deadline_setting: deadline,
            requests: 0,
            retried: 0,
            tokens: 0,
            last_error: None,
        })
    }

    pub fn client_email(&self) -> &str {
        &self.key.client_email
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The failure of a run whose deadline passed while it was doing `what`.
    fn past_deadline(&self, what: &str) -> Error {
        Error::Deadline {
            what: what.to_owned(),
            seconds: self.started.elapsed().as_secs(),
            deadline: self.deadline_setting.as_secs(),
            retried: self.retried,
            last: self
                .last_error
                .clone()
                .unwrap_or_else(|| "none (it was slow, not failing)".into()),
        }
    }

    /// Waits before retry `attempt` of `what` (`after`: the server's `Retry-After`), or fails
    /// once the deadline has passed.
    async fn back_off(
        &mut self,
        what: &str,
        attempt: u32,
        detail: String,
        after: Option<Duration>,
    ) -> Result<(), Error> {
        self.retried += 1;
        let delay = after.unwrap_or_else(|| backoff(attempt, jitter()));
        tracing::warn!(
            what,
            error = %detail,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "Google Workspace: retrying"
        );
        self.last_error = Some(detail);
        tokio::time::sleep_until((Instant::now() + delay).min(self.deadline)).await;
        if Instant::now() >= self.deadline {
            return Err(self.past_deadline(what));
        }
        Ok(())
    }

    /// A request cut short by the deadline, or one that could not be sent.
    fn unreachable(&self, url: &str, error: &reqwest::Error) -> Error {
        if error.is_timeout() {
            Error::Timeout {
                url: url.to_owned(),
                seconds: self.timeout.as_secs(),
            }
        } else {
            Error::Unreachable {
                url: url.to_owned(),
                detail: transport(error),
            }
        }
    }

    /// Gets an access token now (`rollcall check-config --connect`).
    pub async fn authenticate(&mut self, what: &str) -> Result<(), Error> {
        self.token(what).await.map(drop)
    }

    /// A valid access token, asking for a new one when the last is near its end.
    async fn token(&mut self, what: &str) -> Result<Zeroizing<String>, Error> {
        if let Some(token) = &self.token
            && token.fresh(Instant::now())
        {
            return Ok(token.value.clone());
        }
        self.token = None;
        let mut attempt = 0;
        let mut transport_failures = 0;
        let doing = format!("{what} (getting an access token)");
        loop {
            if Instant::now() >= self.deadline {
                return Err(self.past_deadline(&doing));
            }
            let now = crate::clock::Clock::system().now().unix_timestamp();
            let assertion = self
                .key
                .assertion(&self.admin, &self.scope, &self.token_url, now)?;
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ];
            self.requests += 1;
            let sent = self.http.post(&self.token_url).form(&form).send();
            let response = match tokio::time::timeout_at(self.deadline, sent).await {
                Err(_) => return Err(self.past_deadline(&doing)),
                Ok(Err(error)) => {
                    transport_failures += 1;
                    if transport_failures >= MAX_TRANSPORT_FAILURES {
                        return Err(self.unreachable(&self.token_url, &error));
                    }
                    let detail = format!("{}: {}", self.token_url, transport(&error));
                    self.back_off(&doing, attempt, detail, None).await?;
                    attempt += 1;
                    continue;
                }
                Ok(Ok(response)) => response,
            };
            let status = response.status().as_u16();
            let after = retry_after(response.headers());
            let body = match tokio::time::timeout_at(self.deadline, response.bytes()).await {
                Err(_) => return Err(self.past_deadline(&doing)),
                Ok(Err(error)) => {
                    let detail = format!("{}: {}", self.token_url, transport(&error));
                    self.back_off(&doing, attempt, detail, None).await?;
                    attempt += 1;
                    continue;
                }
                Ok(Ok(body)) => body,
            };
            transport_failures = 0;
            let answer: Option<TokenAnswer> = serde_json::from_slice(&body).ok();
            match (status, answer) {
                (
                    200,
                    Some(TokenAnswer {
                        access_token: Some(value),
                        expires_in,
                        ..
                    }),
                ) if !value.is_empty() => {
                    let lifetime = Duration::from_secs(expires_in.unwrap_or(3600).max(1));
                    self.tokens += 1;
                    self.token = Some(Token {
                        value: value.clone(),
                        expires: Instant::now() + lifetime,
                        lifetime,
                    });
                    return Ok(value);
                }
                (429 | 500 | 502 | 503 | 504, _) => {
                    let detail = format!("{} answered {status}", self.token_url);
                    self.back_off(&doing, attempt, detail, after).await?;
                    attempt += 1;
                }
                (
                    _,
                    Some(TokenAnswer {
                        error: Some(error),
                        error_description,
                        ..
                    }),
                ) => {
                    let description = error_description.unwrap_or_default();
                    let hint = token_hint(&error, &description, &self.scope);
                    return Err(Error::TokenRefused {
                        url: self.token_url.clone(),
                        account: format!(
                            "the service account {} acting for {}",
                            self.key.client_email, self.admin
                        ),
                        detail: if description.is_empty() {
                            hint
                        } else {
                            format!(": {description}{hint}")
                        },
                        error,
                    });
                }
                (status, _) => {
                    return Err(Error::Other(format!(
                        "{} answered {status} to the token request, not an OAuth 2.0 answer \
                         (is `token_url` right?)",
                        self.token_url
                    )));
                }
            }
        }
    }

    /// GETs `url` as the admin and reads its JSON; `what` names the read in messages.
    pub async fn get<T: DeserializeOwned>(
        &mut self,
        url: &reqwest::Url,
        what: &str,
    ) -> Result<T, Error> {
        let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
        let mut attempt = 0;
        let mut transport_failures = 0;
        let mut reauthenticated = false;
        loop {
            if Instant::now() >= self.deadline {
                return Err(self.past_deadline(what));
            }
            let token = self.token(what).await?;
            self.requests += 1;
            let sent = self
                .http
                .get(url.clone())
                .bearer_auth(token.as_str())
                .header(reqwest::header::ACCEPT, "application/json")
                .send();
            drop(token);
            let response = match tokio::time::timeout_at(self.deadline, sent).await {
                Err(_) => return Err(self.past_deadline(what)),
                Ok(Err(error)) => {
                    transport_failures += 1;
                    if transport_failures >= MAX_TRANSPORT_FAILURES {
                        return Err(self.unreachable(&shown, &error));
                    }
                    let detail = format!("{shown}: {}", transport(&error));
                    self.back_off(what, attempt, detail, None).await?;
                    attempt += 1;
                    continue;
                }
                Ok(Ok(response)) => response,
            };
            let status = response.status().as_u16();
            let after = retry_after(response.headers());
            let body = match tokio::time::timeout_at(self.deadline, response.bytes()).await {
                Err(_) => return Err(self.past_deadline(what)),
                Ok(Err(error)) => {
                    let detail = format!("{shown}: {}", transport(&error));
                    self.back_off(what, attempt, detail, None).await?;
                    attempt += 1;
                    continue;
                }
                Ok(Ok(body)) => body,
            };
            transport_failures = 0;
            match verdict(status, &body) {
                Verdict::Fine => {
                    return serde_json::from_slice(&body).map_err(|e| {
                        Error::Other(format!(
                            "{what}: {shown} answered something other than the Directory \
                             API's JSON ({e}); is `api_url` right?"
                        ))
                    });
                }
                Verdict::Retry(detail) => {
                    self.back_off(what, attempt, detail, after).await?;
                    attempt += 1;
                }
                Verdict::Reauthenticate(detail) if !reauthenticated => {
                    // Revoked or expired early: one new token, at once.
                    tracing::info!(what, error = %detail, "Google Workspace: a new access token");
                    reauthenticated = true;
                    self.token = None;
                    self.last_error = Some(detail);
                }
                Verdict::Reauthenticate(detail) => {
                    return Err(Error::Refused {
                        what: what.to_owned(),
                        detail: format!(
                            "{detail}: a new access token was refused too (is `api_url` \
                             Google's, and the token endpoint its own?)"
                        ),
                    });
                }
                Verdict::Fail(Failure::Forbidden(detail)) => {
                    return Err(Error::Refused {
                        what: what.to_owned(),
                        detail: format!(
                            "{detail}: the service account acts for {}, who must be a \
                             Workspace admin allowed to read users and groups",
                            self.admin
                        ),
                    });
                }
                Verdict::Fail(Failure::NotFound(detail)) => {
                    return Err(Error::NotFound {
                        what: what.to_owned(),
                        detail,
                    });
                }
                Verdict::Fail(Failure::BadRequest { message, reason }) => {
                    return Err(Error::BadRequest {
                        what: what.to_owned(),
                        detail: format!(
                            "400 {message}{}",
                            if reason.is_empty() {
                                String::new()
                            } else {
                                format!(" ({reason})")
                            }
                        ),
                    });
                }
                Verdict::Fail(Failure::Other(detail)) => {
                    return Err(Error::Other(format!("{what}: {shown} answered {detail}")));
                }
            }
        }
    }
}

/// What to do about a refused token request, by Google's `error`.
fn token_hint(error: &str, description: &str, scope: &str) -> String {
    match error {
        "unauthorized_client" => format!(
            " (domain-wide delegation is not granted to this service account for the scopes \
             {scope}: add them for its client ID in the Admin console, under Security → \
             Access and data control → API controls → Domain-wide delegation)"
        ),
        "invalid_grant" if description.contains("Invalid email or User ID") => {
            " (no such user: `admin` must be an existing admin of the domain)".into()
        }
        "invalid_grant" if description.to_ascii_lowercase().contains("signature") => {
            " (the key is not this service account's, or it was deleted or disabled: create \
             a new key)"
                .into()
        }
        "invalid_grant" if description.contains("iat") || description.contains("exp") => {
            " (this machine's clock is wrong)".into()
        }
        "invalid_scope" => format!(" (the scopes asked for: {scope})"),
        _ => String::new(),
    }
}
