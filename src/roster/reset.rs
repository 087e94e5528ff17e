//! Forgotten passwords: a person asks on the log-in page, and if their account has an email
//! address it is sent a single-use link that works for a while (`[password_reset]`); behind the
//! link they choose a new password under the school's policy.
//!
//! - **Nothing is told.** Asking answers the same whether or not the account exists or has an
//!   email address, and at the same speed: after the throttling check, everything (finding the
//!   account, recording the link, sending the mail) happens in a task of its own.
//! - **Only a digest is stored.** A link's token is 256 random bits; the store keeps its
//!   SHA-256 (`password_resets`), as for bearer tokens. A link's token never reaches a log.
//! - **Once, then never.** Using a link marks it used in the transaction that sets the
//!   password, audited there; a newer link replaces the older unused ones. A used, expired,
//!   unknown or other school's link is one and the same refusal, which changes nothing.
//! - **Throttled.** Requests are counted per account (the name or address typed in) and per
//!   client address in the store's shared counters, so every instance counts the same.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::Error;
use super::login::{Counter, Limiter, throttled};
use crate::config::{self, School};
use crate::mail::Mailer;
use crate::provider::Provider;
use crate::store::{Actor, ResetAccount, Stamp};
use crate::token::digest;

/// The mail template of a reset link (`config/mail/password_reset.*`).
const TEMPLATE: &str = "password_reset";
/// The longest name or address a request may carry.
const MAX_IDENTIFIER: usize = 254;

/// The settings and the mail relay for forgotten passwords, built once at start.
#[derive(Debug, Clone)]
pub struct Resets {
    config: config::PasswordReset,
    /// `None` when no relay is configured: nobody can reset their own password.
    mailer: Option<Arc<Mailer>>,
}

/// What asking for a link answers (the same for every account, existing or not).
#[derive(Debug, PartialEq, Eq)]
pub enum Requested {
    /// Taken: a link is on its way if the account exists and has an email address.
    Accepted,
    /// Too many requests for this account or from this address.
    Throttled { retry_after_secs: u64 },
}

/// What a link answers when opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// It works: the person may choose a password for this account.
    Valid { user_name: String },
    /// Used, expired, unknown, another school's, or its account disabled: one answer for all.
    Gone,
}

/// What setting a password through a link answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Completed {
    Changed {
        user_name: String,
    },
    /// The password breaks the school's policy; the link still works.
    Rejected {
        user_name: String,
        detail: String,
    },
    Gone,
}

impl Resets {
    pub fn new(config: config::PasswordReset, mailer: Option<Arc<Mailer>>) -> Resets {
        Resets { config, mailer }
    }

    /// Whether people can reset their own password (a mail relay is configured).
    pub fn enabled(&self) -> bool {
        self.mailer.is_some()
    }

    /// How long a link works, in whole minutes (rounded up), as messages and pages say it.
    pub fn expires_minutes(&self) -> u64 {
        self.config.expire_after_secs.div_ceil(60)
    }

    /// The longest window the request counters need kept.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.config.window_secs)
    }

    /// The counters a request counts against: keys no log-in's can be (those begin `account`
    /// or `address`), as digests since one names an address.
    fn limits(&self, school_id: &str, identifier: &str, address: IpAddr) -> [Counter; 2] {
        let window = self.window();
        [
            (
                digest(&format!(
                    "\0reset\0account\0{school_id}\0{}",
                    identifier.to_lowercase()
                )),
                self.config.account_requests,
                window,
            ),
            (
                digest(&format!("\0reset\0address\0{address}")),
                self.config.address_requests,
                window,
            ),
        ]
    }
}

/// Whether `token` could be one of ours: anything else is refused without asking the store.
fn plausible_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The address a message goes to: the primary email address, else the first.
fn email_of(data: &Value) -> Option<String> {
    let emails = data.get("emails")?.as_array()?;
    let primary = emails
        .iter()
        .find(|email| email.get("primary").and_then(Value::as_bool) == Some(true));
    primary
        .or_else(|| emails.first())
        .and_then(|email| email.get("value"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|email| !email.is_empty())
        .map(str::to_owned)
}

/// The name a message greets: the display name, else the username.
fn display_name_of(account: &ResetAccount) -> String {
    account
        .data
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|name| !name.trim().is_empty())
        .map_or_else(|| account.user_name.clone(), str::to_owned)
}

/// Who asks for a link: nobody signed in, so the log-in page, with the request's id.
fn requester(request_id: Option<String>) -> Actor {
    Actor {
        name: "login-page".into(),
        request_id,
    }
}

impl Provider {
    /// Asks for a forgotten-password link for the account named by `identifier` (a username
    /// or an email address). Answers before anything about the account is looked up; the link
    /// is made and sent in a task of its own. A blank or overlong `identifier` is `Invalid`.
    pub async fn request_reset(
        &self,
        resets: &Resets,
        limiter: &Limiter,
        school_id: &str,
        identifier: &str,
        address: IpAddr,
        request_id: Option<String>,
    ) -> Result<Requested, Error> {
        let identifier = identifier.trim();
        if identifier.is_empty() {
            return Err(Error::Invalid(
                "Enter your username or email address.".into(),
            ));
        }
        if identifier.chars().count() > MAX_IDENTIFIER || identifier.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "That is not a username or an email address.".into(),
            ));
        }
        let now = self.clock.now();
        let limits = resets.limits(school_id, identifier, address);
        if let Some(wait) = throttled(&self.store, now, &limits)
            .await
            .map_err(Error::store)?
        {
            return Ok(Requested::Throttled {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        limiter
            .count(&self.store, now, &limits)
            .await
            .map_err(Error::store)?;
        let (Some(mailer), Some(school)) = (&resets.mailer, self.schools.get(school_id)) else {
            return Ok(Requested::Accepted);
        };
        let provider = self.clone();
        let mailer = Arc::clone(mailer);
        let school = school.clone();
        let identifier = identifier.to_owned();
        let expire_after = time::Duration::seconds(
            i64::try_from(resets.config.expire_after_secs).unwrap_or(i64::MAX),
        );
        let expires_minutes = resets.expires_minutes();
        tokio::spawn(async move {
            let actor = requester(request_id);
            let sent = provider
                .send_links(
                    &mailer,
                    &school,
                    &identifier,
                    expire_after,
                    expires_minutes,
                    &actor,
                )
                .await;
            if let Err(error) = sent {
                tracing::error!(school = %school.id, %error, "a password-reset request failed");
            }
        });
        Ok(Requested::Accepted)
    }

    /// Makes, records and sends a link to each account `identifier` names that has an email
    /// address; records those without one. Each step is audited on the account.
    async fn send_links(
        &self,
        mailer: &Mailer,
        school: &School,
        identifier: &str,
        expire_after: time::Duration,
        expires_minutes: u64,
        actor: &Actor,
    ) -> Result<(), Error> {
        let accounts = self
            .store
            .reset_accounts(&school.id, identifier)
            .await
            .map_err(Error::store)?;
        for account in accounts {
            let now = self.clock.now();
            let Some(email) = email_of(&account.data) else {
                self.reset_event(
                    &school.id,
                    actor,
                    "password_reset.no_email",
                    &account.user_id,
                )
                .await;
                continue;
            };
            let token =
                zeroize::Zeroizing::new(crate::token::secret().map_err(|e| {
                    Error::Internal(format!("no randomness for a reset link: {e}"))
                })?);
            self.store
                .insert_reset(
                    &school.id,
                    &account.user_id,
                    &digest(&token),
                    now + expire_after,
                    Stamp { actor, at: now },
                )
                .await
                .map_err(Error::store)?;
            let link = zeroize::Zeroizing::new(format!(
                "{}/login/{}/reset/{}",
                mailer.public_url,
                school.id,
                token.as_str()
            ));
            let context = json!({
                "school": school.name,
                "school_id": school.id,
                "user_name": account.user_name,
                "display_name": display_name_of(&account),
                "link": link.as_str(),
                "expires_minutes": expires_minutes,
            });
            let sent = match mailer.render(TEMPLATE, &email, context) {
                Ok(message) => mailer.send(message).await,
                Err(error) => Err(error),
            };
            match sent {
                Ok(()) => {
                    tracing::info!(school = %school.id, user_id = %account.user_id, "password-reset link sent");
                    self.reset_event(&school.id, actor, "password_reset.sent", &account.user_id)
                        .await;
                }
                Err(error) => {
                    // The error names the relay's answer, never the message or its link.
                    tracing::error!(
                        school = %school.id,
                        user_id = %account.user_id,
                        relay = %mailer.relay,
                        %error,
                        "a password-reset link could not be sent"
                    );
                    self.reset_event(&school.id, actor, "password_reset.failed", &account.user_id)
                        .await;
                }
            }
        }
        Ok(())
    }

    /// Records a reset step that changes nothing; a failure to record it is logged, as the
    /// step itself has happened.
    async fn reset_event(&self, school_id: &str, actor: &Actor, action: &str, user_id: &str) {
        if let Err(error) = self
            .store
            .record_event(school_id, actor, action, "User", user_id, self.clock.now())
            .await
        {
            tracing::error!(%error, action, "a password-reset audit event could not be written");
        }
    }

    /// Whether a link works now, and for which account. A link of this school that no longer
    /// works is audited as refused.
    pub async fn open_reset(
        &self,
        school_id: &str,
        token: &str,
        request_id: Option<String>,
    ) -> Result<Opened, Error> {
        match self.usable_link(school_id, token, request_id).await? {
            Some(user_name) => Ok(Opened::Valid { user_name }),
            None => Ok(Opened::Gone),
        }
    }

    /// Sets a new password through a link: checked against the school's policy, then set in
    /// the transaction that uses the link up.
    pub async fn complete_reset(
        &self,
        school_id: &str,
        token: &str,
        new: &str,
        request_id: Option<String>,
    ) -> Result<Completed, Error> {
        let Some(school) = self.schools.get(school_id) else {
            return Ok(Completed::Gone);
        };
        let Some(user_name) = self
            .usable_link(school_id, token, request_id.clone())
            .await?
        else {
            return Ok(Completed::Gone);
        };
        if let Err(detail) = school.passwords.policy.check_chosen(new, &user_name) {
            return Ok(Completed::Rejected { user_name, detail });
        }
        let hash = self
            .hasher
            .hash(new)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let actor = Actor {
            name: format!("user:{user_name}"),
            request_id,
        };
        let done = self
            .store
            .complete_reset(
                school_id,
                &digest(token),
                &hash,
                Stamp {
                    actor: &actor,
                    at: self.clock.now(),
                },
            )
            .await
            .map_err(Error::store)?;
        Ok(match done {
            Some(_) => Completed::Changed { user_name },
            // Used or expired while the password was hashed.
            None => Completed::Gone,
        })
    }

    /// The username of a link's account if the link works now; `None` otherwise, audited as
    /// refused when the link is this school's.
    async fn usable_link(
        &self,
        school_id: &str,
        token: &str,
        request_id: Option<String>,
    ) -> Result<Option<String>, Error> {
        if !plausible_token(token) || !self.schools.contains_key(school_id) {
            return Ok(None);
        }
        let Some(link) = self
            .store
            .reset_link(school_id, &digest(token))
            .await
            .map_err(Error::store)?
        else {
            return Ok(None);
        };
        if !link.used && link.usable_account && link.expires > self.clock.now() {
            return Ok(Some(link.user_name));
        }
        self.reset_event(
            school_id,
            &requester(request_id),
            "password_reset.refused",
            &link.user_id,
        )
        .await;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn tokens_are_256_random_bits_as_url_text() {
        let (a, b) = (
            crate::token::secret().unwrap(),
            crate::token::secret().unwrap(),
        );
        assert_ne!(a, b);
        assert!(plausible_token(&a), "{a}");
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        // The stored digest is not the token, nor does it hold it.
        assert_ne!(digest(&a).as_slice(), a.as_bytes());
    }

    #[test]
    fn only_token_shaped_text_is_looked_up() {
        assert!(!plausible_token(""));
        assert!(!plausible_token("short"));
        assert!(!plausible_token(&"a".repeat(44)));
        assert!(!plausible_token(&format!("{}/", "a".repeat(42))));
        assert!(plausible_token(
            &"a-_".repeat(14).chars().chain(['x']).collect::<String>()
        ));
    }

    #[test]
    fn the_primary_address_is_used_else_the_first() {
        let data = json!({"emails": [
            {"value": "home@example.org"},
            {"value": "school@example.org", "primary": true},
        ]});
        assert_eq!(email_of(&data).as_deref(), Some("school@example.org"));
        let data = json!({"emails": [{"value": "home@example.org"}]});
        assert_eq!(email_of(&data).as_deref(), Some("home@example.org"));
        assert_eq!(email_of(&json!({"emails": []})), None);
        assert_eq!(email_of(&json!({"emails": [{"value": "  "}]})), None);
        assert_eq!(email_of(&json!({})), None);
    }

    #[test]
    fn request_keys_cannot_be_log_in_keys() {
        let resets = Resets::new(config::PasswordReset::default(), None);
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        let [(account, ..), (by_address, ..)] = resets.limits("north", "SmithJ", address);
        assert_eq!(account, resets.limits("north", "smithj", address)[0].0);
        assert_ne!(account, digest("account\0north\0smithj"));
        assert_ne!(by_address, digest(&format!("address\0{address}")));
        assert_eq!(resets.expires_minutes(), 30);
        assert!(!resets.enabled());
    }
}
