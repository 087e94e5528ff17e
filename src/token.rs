//! Bearer tokens, for SCIM clients (`rct_…`, bound to a school and a source) and for a school's
//! admins (`rca_…`, bound to a school and an admin): 256 random bits, shown once, stored only
//! as a SHA-256 digest.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::clock::{Clock, random_bytes};
use crate::store::{self, Store, Token};

/// Every SCIM token starts with this, so leaked tokens are easy to recognise and scan for.
pub const PREFIX: &str = "rct_";
/// Every admin token starts with this.
pub const ADMIN_PREFIX: &str = "rca_";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no randomness for a token: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// The SHA-256 under which a secret (a token, a session, a reset link, a counter's key) is
/// stored and looked up.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new 256-bit secret from the OS's randomness, as URL- and cookie-safe text (43 characters).
pub fn secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Creates and stores a token for one school and source; returns it with its plaintext.
pub async fn create(
    store: &Store,
    clock: &Clock,
    school_id: &str,
    source: &str,
) -> Result<(Token, String), Error> {
    issue(store, clock, school_id, source, None).await
}

/// Creates and stores a token for one of a school's admins (who must exist).
pub async fn create_admin(
    store: &Store,
    clock: &Clock,
    school_id: &str,
    admin: &str,
) -> Result<(Token, String), Error> {
    issue(
        store,
        clock,
        school_id,
        crate::roster::ADMIN_SOURCE,
        Some(admin),
    )
    .await
}

async fn issue(
    store: &Store,
    clock: &Clock,
    school_id: &str,
    source: &str,
    admin: Option<&str>,
) -> Result<(Token, String), Error> {
    let prefix = if admin.is_some() {
        ADMIN_PREFIX
    } else {
        PREFIX
    };
    let plaintext = format!("{prefix}{}", secret().map_err(Error::Random)?);
    let token = Token {
        id: uuid::Uuid::new_v4().simple().to_string()[..16].to_owned(),
        school_id: school_id.to_owned(),
        source: source.to_owned(),
        admin: admin.map(str::to_owned),
        created: clock.now(),
        revoked: None,
    };
    store.insert_token(&token, &digest(&plaintext)).await?;
    Ok((token, plaintext))
}
