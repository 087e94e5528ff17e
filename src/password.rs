//! Password hashing: argon2id PHC strings, computed on the blocking pool.
//!
//! A plaintext password exists only in the request that carried it; it is never stored,
//! logged or returned. Hashing is CPU-heavy (about 25 ms at the defaults), so at most one hash
//! per core runs at a time and the async workers stay free for other requests.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("no randomness for a salt: {0}")]
    Random(getrandom::Error),
}

fn permits() -> Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    PERMITS
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            Arc::new(Semaphore::new(cores))
        })
        .clone()
}

/// Hashes with argon2id at OWASP's recommended parameters (m=19456 KiB, t=2, p=1).
pub async fn hash(plaintext: String) -> Result<String, Error> {
    let permits = permits();
    let _permit = permits
        .acquire_owned()
        .await
        .map_err(|e| Error::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(move || hash_now(&plaintext))
        .await
        .map_err(|e| Error::Hash(e.to_string()))?
}

fn hash_now(plaintext: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    crate::clock::random_bytes(&mut salt).map_err(Error::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hash(e.to_string()))?;
    let params = Params::new(19456, 2, 1, None).map_err(|e| Error::Hash(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(plaintext.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    #[tokio::test]
    async fn hashes_verify_and_never_contain_the_plaintext() {
        let hash = super::hash("1mz050nq".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains("1mz050nq"));
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            argon2::Argon2::default()
                .verify_password(b"1mz050nq", &parsed)
                .is_ok()
        );
        assert!(
            argon2::Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
    }
}
