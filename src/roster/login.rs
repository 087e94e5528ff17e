//! The log-in API the platform calls: one generic failure for a wrong password, an unknown
//! account or a disabled one (each costs one argon2 verification, so timing tells nothing
//! either), and failures throttled per account and per client address.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::Error;
use crate::config::{self, School};
use crate::provider::Provider;
use crate::store::{Actor, Scope, Stamp, Store};
use crate::token::digest;

/// Failures per key in a sliding window, kept in the store: every process serving log-ins
/// (several instances on one database) counts the same failures, and a restart forgets none.
#[derive(Debug)]
pub struct Limiter {
    config: config::Login,
    /// How long every count must be kept: the longest window of any counter sharing the
    /// table (the log-in windows, and those of [`super::reset`]'s requests), since recording a
    /// failure forgets everything older.
    keep: Duration,
}

impl Limiter {
    /// The client's address: the peer, or, when the peer is a trusted proxy, the nearest
    /// address in `X-Forwarded-For` that is not one.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.config.trusted_proxies.contains(&peer) {
            return peer;
        }
        forwarded_for
            .into_iter()
            .flat_map(|header| header.rsplit(','))
            .map_while(|hop| hop.trim().parse::<IpAddr>().ok())
            .find(|hop| !self.config.trusted_proxies.contains(hop))
            .unwrap_or(peer)
    }

    pub fn new(config: config::Login) -> Limiter {
        let keep = Duration::from_secs(config.account_window_secs.max(config.address_window_secs));
        Limiter { config, keep }
    }

    /// Keeps counts for at least `window` too (another counter's window in the same table).
    pub fn keeping(mut self, window: Duration) -> Limiter {
        self.keep = self.keep.max(window);
        self
    }

    /// How long counts are kept: the longest window of any counter in the table.
    pub fn retention(&self) -> Duration {
        self.keep
    }

    /// The counters an attempt counts against (keys as stored: a digest, since one names an
    /// address).
    fn limits(&self, school_id: &str, user_name: &str, address: IpAddr) -> [Counter; 2] {
        [
            (
                account_key(school_id, user_name),
                self.config.account_failures,
                Duration::from_secs(self.config.account_window_secs),
            ),
            (
                digest(&format!("address\0{address}")),
                self.config.address_failures,
                Duration::from_secs(self.config.address_window_secs),
            ),
        ]
    }

    /// How long until another attempt is allowed, if it is not allowed now.
    async fn wait(
        &self,
        store: &Store,
        now: OffsetDateTime,
        school_id: &str,
        user_name: &str,
        address: IpAddr,
    ) -> Result<Option<Duration>, crate::store::Error> {
        throttled(store, now, &self.limits(school_id, user_name, address)).await
    }

    /// Counts an attempt against each counter, forgetting what no counter of the table needs
    /// any more.
    pub(super) async fn count(
        &self,
        store: &Store,
        now: OffsetDateTime,
        counters: &[Counter],
    ) -> Result<(), crate::store::Error> {
        let keys: Vec<&[u8]> = counters.iter().map(|(key, _, _)| key.as_slice()).collect();
        store.record_failure(&keys, now, now - self.keep).await
    }

    async fn fail(
        &self,
        store: &Store,
        now: OffsetDateTime,
        school_id: &str,
        user_name: &str,
        address: IpAddr,
    ) -> Result<(), crate::store::Error> {
        self.count(store, now, &self.limits(school_id, user_name, address))
            .await
    }

    /// A success clears the account's failures (not the address's).
    async fn succeed(
        &self,
        store: &Store,
        school_id: &str,
        user_name: &str,
    ) -> Result<(), crate::store::Error> {
        store
            .clear_failures(&account_key(school_id, user_name))
            .await
    }
}

/// A counter of attempts in the store's shared table: its key (a digest), how many attempts
/// it allows, and within what window.
pub(super) type Counter = ([u8; 32], u32, Duration);

/// How long until another attempt is allowed against these counters, if it is not allowed now.
pub(super) async fn throttled(
    store: &Store,
    now: OffsetDateTime,
    counters: &[Counter],
) -> Result<Option<Duration>, crate::store::Error> {
    let mut wait: Option<Duration> = None;
    for (key, limit, window) in counters {
        let (count, oldest) = store.recent_failures(key, now - *window).await?;
        if count >= i64::from(*limit)
            && let Some(oldest) = oldest
        {
            let until = (oldest + *window - now).max(time::Duration::ZERO);
            let until = Duration::try_from(until).unwrap_or_default();
            wait = Some(wait.map_or(until, |w| w.max(until)));
        }
    }
    Ok(wait)
}

/// Failures are counted per account whether or not it exists, so a throttled name says
/// nothing about its existence.
fn account_key(school_id: &str, user_name: &str) -> [u8; 32] {
    digest(&format!(
        "account\0{school_id}\0{}",
        user_name.to_lowercase()
    ))
}

/// What a log-in attempt answers.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    #[serde(rename_all = "camelCase")]
    Success { user_id: String, user_name: String },
    /// Right password, but it is a first (or reset) password: the person must choose a new one
    /// (`POST /api/v1/auth/password`) before anything else.
    #[serde(rename_all = "camelCase")]
    PasswordChangeRequired { user_id: String, user_name: String },
    /// Wrong username, wrong password or disabled account: one answer for all three.
    Failed,
    /// Too many failures: try again after `retry_after_secs`.
    #[serde(rename_all = "camelCase")]
    Throttled { retry_after_secs: u64 },
}

/// What a password change answers.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Change {
    Changed,
    /// The new password breaks the school's policy; `detail` says how.
    Rejected {
        detail: String,
    },
    Failed,
    #[serde(rename_all = "camelCase")]
    Throttled {
        retry_after_secs: u64,
    },
}

impl Provider {
    /// Checks a username and password.
    pub async fn login(
        &self,
        limiter: &Limiter,
        school_id: &str,
        user_name: &str,
        password: &str,
        address: IpAddr,
    ) -> Result<Outcome, Error> {
        match self
            .authenticate(limiter, school_id, user_name, password, address)
            .await?
        {
            Verdict::Throttled(wait) => Ok(Outcome::Throttled {
                retry_after_secs: wait.as_secs().max(1),
            }),
            Verdict::Failed => Ok(Outcome::Failed),
            Verdict::Passed {
                user_id,
                user_name,
                must_change,
                ..
            } => Ok(if must_change {
                Outcome::PasswordChangeRequired { user_id, user_name }
            } else {
                Outcome::Success { user_id, user_name }
            }),
        }
    }

    /// Changes a password, given the current one; the new one must meet the school's policy.
    pub async fn change_password(
        &self,
        limiter: &Limiter,
        school_id: &str,
        user_name: &str,
        current: &str,
        new: &str,
        address: IpAddr,
    ) -> Result<Change, Error> {
        let (user_id, user_name, hash, school) = match self
            .authenticate(limiter, school_id, user_name, current, address)
            .await?
        {
            Verdict::Throttled(wait) => {
                return Ok(Change::Throttled {
                    retry_after_secs: wait.as_secs().max(1),
                });
            }
            Verdict::Failed => return Ok(Change::Failed),
            Verdict::Passed {
                user_id,
                user_name,
                hash,
                school,
                ..
            } => (user_id, user_name, hash, school),
        };
        if let Err(detail) = school.passwords.policy.check_chosen(new, &user_name) {
            return Ok(Change::Rejected { detail });
        }
        if new == current {
            return Ok(Change::Rejected {
                detail: "choose a password different from the current one".into(),
            });
        }
        self.store_chosen(school, &user_id, &user_name, &hash, new)
            .await
    }

    /// Sets the password a person chose right after signing in with a first (or reset) one, on
    /// the log-in page: their session proves the sign-in, so the current password is not asked
    /// again. Only while the account is active and still must change its password.
    pub async fn choose_password(
        &self,
        school_id: &str,
        user_name: &str,
        new: &str,
    ) -> Result<Change, Error> {
        let Some(school) = self.schools.get(school_id) else {
            return Ok(Change::Failed);
        };
        let stored = self
            .store
            .credential(school_id, user_name)
            .await
            .map_err(Error::store)?;
        let Some((stored, hash)) = stored
            .filter(|s| s.active && s.must_change)
            .and_then(|s| s.password_hash.clone().map(|hash| (s, hash)))
        else {
            return Ok(Change::Failed);
        };
        if let Err(detail) = school.passwords.policy.check_chosen(new, &stored.user_name) {
            return Ok(Change::Rejected { detail });
        }
        let same = self
            .hasher
            .verify(new, Some(&hash))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        if same {
            return Ok(Change::Rejected {
                detail: "choose a password different from the one on the slip".into(),
            });
        }
        self.store_chosen(school, &stored.user_id, &stored.user_name, &hash, new)
            .await
    }

    /// Hashes and stores a chosen password (already checked against the policy) in place of
    /// `expected_hash`.
    async fn store_chosen(
        &self,
        school: &School,
        user_id: &str,
        user_name: &str,
        expected_hash: &str,
        new: &str,
    ) -> Result<Change, Error> {
        let new_hash = self
            .hasher
            .hash(new)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let actor = Actor {
            name: format!("user:{user_name}"),
            request_id: None,
        };
        let scope = Scope {
            school_id: school.id.clone(),
            source: super::ADMIN_SOURCE.to_owned(),
        };
        match self
            .store
            .set_password(
                &scope,
                user_id,
                Some(expected_hash),
                &new_hash,
                false,
                None,
                Stamp {
                    actor: &actor,
                    at: self.clock.now(),
                },
            )
            .await
        {
            Ok(()) => Ok(Change::Changed),
            // Changed by someone else meanwhile: the current password given is stale.
            Err(crate::store::Error::VersionMismatch { .. }) => Ok(Change::Failed),
            Err(other) => Err(Error::store(other)),
        }
    }

    /// Checks a member of staff's console password. Failures count against them (under a key
    /// no account's name can have) and the address, as for people. A tutor's account password
    /// that is still a first one opens nothing: they choose their own on the log-in page.
    pub async fn admin_login(
        &self,
        limiter: &Limiter,
        school_id: &str,
        user_name: &str,
        password: &str,
        address: IpAddr,
    ) -> Result<AdminVerdict, Error> {
        let key = format!("\0admin\0{user_name}");
        let now = self.clock.now();
        if let Some(wait) = limiter
            .wait(&self.store, now, school_id, &key, address)
            .await
            .map_err(Error::store)?
        {
            return Ok(AdminVerdict::Throttled(wait));
        }
        let stored = match self.schools.get(school_id) {
            Some(_) if !user_name.is_empty() && user_name.len() <= 64 => self
                .store
                .admin_credential(school_id, user_name)
                .await
                .map_err(Error::store)?,
            _ => None,
        };
        let hash = stored.as_ref().and_then(|staff| staff.hash.as_deref());
        let matches = self
            .hasher
            .verify(password, hash)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        match stored {
            Some(staff) if matches => {
                limiter
                    .succeed(&self.store, school_id, &key)
                    .await
                    .map_err(Error::store)?;
                Ok(if staff.must_change {
                    AdminVerdict::FirstPassword
                } else {
                    AdminVerdict::Passed {
                        admin_id: staff.id,
                        user_name: staff.user_name,
                    }
                })
            }
            _ => {
                limiter
                    .fail(&self.store, now, school_id, &key, address)
                    .await
                    .map_err(Error::store)?;
                Ok(AdminVerdict::Failed)
            }
        }
    }

    async fn authenticate(
        &self,
        limiter: &Limiter,
        school_id: &str,
        user_name: &str,
        password: &str,
        address: IpAddr,
    ) -> Result<Verdict<'_>, Error> {
        let now = self.clock.now();
        if let Some(wait) = limiter
            .wait(&self.store, now, school_id, user_name, address)
            .await
            .map_err(Error::store)?
        {
            return Ok(Verdict::Throttled(wait));
        }
        let school = self.schools.get(school_id);
        let stored = match school {
            Some(_) if !user_name.is_empty() && user_name.len() <= 256 => self
                .store
                .credential(school_id, user_name)
                .await
                .map_err(Error::store)?,
            _ => None,
        };
        let hash = stored.as_ref().and_then(|s| s.password_hash.as_deref());
        // Always one verification: against the decoy when there is no account or password.
        let matches = self
            .hasher
            .verify(password, hash)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        match (school, stored) {
            (Some(school), Some(stored)) if matches && stored.active => {
                limiter
                    .succeed(&self.store, school_id, user_name)
                    .await
                    .map_err(Error::store)?;
                Ok(Verdict::Passed {
                    user_id: stored.user_id,
                    user_name: stored.user_name,
                    hash: stored.password_hash.unwrap_or_default(),
                    must_change: stored.must_change,
                    school,
                })
            }
            _ => {
                limiter
                    .fail(&self.store, now, school_id, user_name, address)
                    .await
                    .map_err(Error::store)?;
                Ok(Verdict::Failed)
            }
        }
    }
}

/// What an admin's console log-in answers.
#[derive(Debug)]
pub enum AdminVerdict {
    Passed {
        admin_id: String,
        user_name: String,
    },
    /// The right password, but still the first (or reset) one of their account: they choose
    /// their own on the log-in page before it opens the console.
    FirstPassword,
    /// Unknown admin, no console password, or a wrong one: one answer for all.
    Failed,
    Throttled(Duration),
}

enum Verdict<'a> {
    Throttled(Duration),
    Failed,
    Passed {
        user_id: String,
        user_name: String,
        hash: String,
        must_change: bool,
        school: &'a School,
    },
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use time::OffsetDateTime;

    use super::{Limiter, account_key};
    use crate::config::Login;
    use crate::store::Store;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn failures_are_counted_per_account_and_per_address() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let limiter = Limiter::new(Login {
            account_failures: 2,
            address_failures: 3,
            ..Login::default()
        });
        let now = OffsetDateTime::now_utc();
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let wait = |user: &'static str, address, at| {
            let (store, limiter) = (&store, &limiter);
            async move {
                limiter
                    .wait(store, at, "north", user, address)
                    .await
                    .unwrap()
            }
        };
        limiter
            .fail(&store, now, "north", "SmithJ", a)
            .await
            .unwrap();
        assert!(wait("smithj", a, now).await.is_none());
        limiter
            .fail(&store, now, "north", "smithj", b)
            .await
            .unwrap();
        // The account is throttled from every address, whatever the case of its name.
        assert!(wait("SMITHJ", ip("192.0.2.9"), now).await.is_some());
        assert!(
            limiter
                .wait(&store, now, "south", "smithj", a)
                .await
                .unwrap()
                .is_none()
        );
        // A success clears the account, not the address.
        limiter.succeed(&store, "north", "smithj").await.unwrap();
        assert!(wait("smithj", ip("192.0.2.9"), now).await.is_none());
        limiter
            .fail(&store, now, "north", "jonesa", a)
            .await
            .unwrap();
        limiter
            .fail(&store, now, "north", "browne", a)
            .await
            .unwrap();
        let throttled = wait("anyone", a, now).await.unwrap();
        assert!((899..=900).contains(&throttled.as_secs()), "{throttled:?}");
        assert!(wait("anyone", b, now).await.is_none());
        // The window slides: 15 minutes on, the address is free again.
        let later = now + time::Duration::seconds(901);
        assert!(wait("anyone", a, later).await.is_none());
        // No address is stored as it is.
        assert!(!format!("{:?}", account_key("north", "smithj")).contains("smithj"));
    }

    #[tokio::test]
    async fn a_failure_forgets_nothing_a_longer_window_still_counts() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let limiter = Limiter::new(Login::default()).keeping(std::time::Duration::from_secs(3600));
        assert_eq!(limiter.retention().as_secs(), 3600);
        let now = OffsetDateTime::now_utc();
        // Another counter's entry, 30 minutes old: past the log-in windows (15 minutes), within
        // the hour it is kept for.
        let other = [7u8; 32];
        store
            .record_failure(
                &[&other],
                now - time::Duration::minutes(30),
                now - time::Duration::hours(2),
            )
            .await
            .unwrap();
        limiter
            .fail(&store, now, "north", "smithj", ip("192.0.2.1"))
            .await
            .unwrap();
        let (count, _) = store
            .recent_failures(&other, now - time::Duration::hours(1))
            .await
            .unwrap();
        assert_eq!(count, 1);
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let limiter = Limiter::new(Login {
            trusted_proxies: vec![ip("127.0.0.1"), ip("10.0.0.5")],
            ..Login::default()
        });
        let forwarded = Some("198.51.100.7, 203.0.113.9, 10.0.0.5");
        assert_eq!(
            limiter.client(ip("127.0.0.1"), forwarded),
            ip("203.0.113.9")
        );
        // An untrusted peer's header is ignored: anyone can send one.
        assert_eq!(limiter.client(ip("192.0.2.1"), forwarded), ip("192.0.2.1"));
        assert_eq!(limiter.client(ip("127.0.0.1"), None), ip("127.0.0.1"));
        assert_eq!(
            limiter.client(ip("127.0.0.1"), Some("garbage")),
            ip("127.0.0.1")
        );
    }
}
