//! Generated credentials: usernames from a school's template, first passwords from its policy,
//! and the vault that seals first passwords nobody has collected yet.

pub mod generate;
pub mod username;

use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::password::Hasher;
use crate::seal::SlipKey;
use crate::store::PendingSlip;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot generate a password: {0}")]
    Generate(String),
    #[error(transparent)]
    Hash(#[from] crate::password::Error),
    #[error("cannot seal or open a slip: {0}")]
    Seal(String),
}

/// A generated first password and its hash. The plaintext is wiped when dropped.
pub struct Issued {
    pub password: Zeroizing<String>,
    pub hash: String,
}

/// Generates a first password under `policy` and hashes it (on the blocking pool).
pub async fn issue(policy: &generate::Policy, hasher: &Hasher) -> Result<Issued, Error> {
    let password = policy
        .generate()
        .map_err(|e| Error::Generate(e.to_string()))?;
    let hash = hasher.hash(&password).await?;
    Ok(Issued { password, hash })
}

/// Seals first passwords for pending slips with a key kept outside the store. The sealed
/// value is bound to its school and account: it cannot be moved to another.
#[derive(Clone)]
pub struct Vault {
    key: Arc<SlipKey>,
    ttl: Duration,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("ttl", &self.ttl).finish()
    }
}

impl Vault {
    pub fn new(key: SlipKey, expire_after_days: u32) -> Vault {
        Vault {
            key: Arc::new(key),
            ttl: Duration::days(expire_after_days.into()),
        }
    }

    pub fn seal(
        &self,
        school_id: &str,
        user_id: &str,
        password: &str,
        now: OffsetDateTime,
    ) -> Result<PendingSlip, Error> {
        let sealed = self
            .key
            .seal(context(school_id, user_id).as_bytes(), password.as_bytes())
            .map_err(|e| Error::Seal(e.to_string()))?;
        Ok(PendingSlip {
            sealed,
            expires: now + self.ttl,
        })
    }

    pub fn open(
        &self,
        school_id: &str,
        user_id: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<String>, Error> {
        let plain = self
            .key
            .open(context(school_id, user_id).as_bytes(), sealed)
            .map_err(|e| Error::Seal(e.to_string()))?;
        String::from_utf8(plain.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| Error::Seal("the sealed password is not text".into()))
    }
}

fn context(school_id: &str, user_id: &str) -> String {
    format!("rollcall slip v1\0{school_id}\0{user_id}")
}
