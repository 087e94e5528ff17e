//! SCIM bearer tokens: 256 random bits, shown once, stored only as a SHA-256 digest.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::clock::{Clock, random_bytes};
use crate::store::{self, Store, Token};

/// Every token starts with this, so leaked tokens are easy to recognise and scan for.
pub const PREFIX: &str = "rct_";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no randomness for a token: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// The digest under which a token is stored and looked up.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Creates and stores a token for one school and source; returns it with its plaintext.
pub async fn create(
    store: &Store,
    clock: &Clock,
    school_id: &str,
    source: &str,
) -> Result<(Token, String), Error> {
    let mut secret = [0u8; 32];
    random_bytes(&mut secret).map_err(Error::Random)?;
    let plaintext = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let token = Token {
        id: uuid::Uuid::new_v4().simple().to_string()[..16].to_owned(),
        school_id: school_id.to_owned(),
        source: source.to_owned(),
        created: clock.now(),
        revoked: None,
    };
    store.insert_token(&token, &digest(&plaintext)).await?;
    Ok((token, plaintext))
}
