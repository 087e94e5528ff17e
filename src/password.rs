//! Password hashing: argon2id PHC strings, computed on the blocking pool.
//!
//! A plaintext password exists only in the request that carried it (or, for a generated first
//! password, until it is shown once or sealed into a pending slip); it is never stored, logged
//! or returned. Hashing is CPU-heavy (about 25 ms at the defaults), so at most one hash per core
//! runs at a time: bulk work is spread over every core, the async workers stay free, and memory
//! stays bounded at `memory_kib` × cores.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

use crate::config;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("no randomness for a salt: {0}")]
    Random(getrandom::Error),
}

/// Hashes and verifies passwords with one set of argon2id parameters.
#[derive(Clone, Debug)]
pub struct Hasher {
    params: Params,
    concurrency: usize,
    permits: Arc<Semaphore>,
    /// A hash of nothing anyone knows, verified against when an account does not exist, so an
    /// unknown username costs what a wrong password costs.
    decoy: Arc<OnceCell<String>>,
}

impl Hasher {
    /// At most `concurrency` hashes at a time (use the number of cores).
    pub fn new(argon2: config::Argon2, concurrency: usize) -> Result<Hasher, Error> {
        let params = Params::new(
            argon2.memory_kib,
            argon2.iterations,
            argon2.parallelism,
            None,
        )
        .map_err(|e| Error::Params(e.to_string()))?;
        let concurrency = concurrency.max(1);
        Ok(Hasher {
            params,
            concurrency,
            permits: Arc::new(Semaphore::new(concurrency)),
            decoy: Arc::new(OnceCell::new()),
        })
    }

    /// One hash per core of this machine.
    pub fn per_core(argon2: config::Argon2) -> Result<Hasher, Error> {
        Hasher::new(argon2, cores())
    }

    /// How many hashes run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// A PHC string for `plaintext`, with a fresh salt.
    pub async fn hash(&self, plaintext: &str) -> Result<String, Error> {
        let params = self.params.clone();
        let plaintext = zeroize::Zeroizing::new(plaintext.to_owned());
        self.blocking(move || hash_now(params, &plaintext)).await?
    }

    /// True when `plaintext` matches `phc`. With no stored hash (no such account, or none
    /// set), verifies against a decoy so the answer takes as long, and is false.
    pub async fn verify(&self, plaintext: &str, phc: Option<&str>) -> Result<bool, Error> {
        let (phc, real) = match phc {
            Some(phc) => (phc.to_owned(), true),
            None => (self.decoy().await?, false),
        };
        let plaintext = zeroize::Zeroizing::new(plaintext.to_owned());
        let matches = self
            .blocking(move || {
                PasswordHash::new(&phc).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(plaintext.as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await?;
        Ok(real && matches)
    }

    async fn decoy(&self) -> Result<String, Error> {
        self.decoy
            .get_or_try_init(|| async {
                let mut secret = [0u8; 32];
                crate::clock::random_bytes(&mut secret).map_err(Error::Random)?;
                let secret = base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD_NO_PAD,
                    secret,
                );
                self.hash(&secret).await
            })
            .await
            .cloned()
    }

    /// Runs CPU-heavy work on the blocking pool, one job per permit.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Hash(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Hash(e.to_string()))
    }
}

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn hash_now(params: Params, plaintext: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    crate::clock::random_bytes(&mut salt).map_err(Error::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hash(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(plaintext.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::Hasher;
    use crate::config::Argon2;

    #[tokio::test]
    async fn hashes_verify_and_never_contain_the_plaintext() {
        let hasher = Hasher::new(Argon2::default(), 2).unwrap();
        let hash = hasher.hash("1mz050nq").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains("1mz050nq"));
        assert!(hasher.verify("1mz050nq", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("wrong", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("1mz050nq", None).await.unwrap());
        assert!(!hasher.verify("1mz050nq", Some("garbage")).await.unwrap());
    }

    #[tokio::test]
    async fn parameters_come_from_the_configuration() {
        let cheap = Argon2 {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
        };
        let hasher = Hasher::new(cheap, 1).unwrap();
        let hash = hasher.hash("x").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{hash}");
        let bad = Argon2 {
            memory_kib: 1,
            ..cheap
        };
        assert!(Hasher::new(bad, 1).is_err());
    }
}
