//! Password hashing: argon2id PHC strings, computed on the blocking pool.
//!
//! A plaintext password exists only in the request that carried it (or, for a generated first
//! password, until it is shown once or sealed into a pending slip); it is never stored, logged
//! or returned. Hashing is CPU-heavy (about 25 ms at the defaults), so at most one hash per core
//! runs at a time: bulk work is spread over every core, and the async workers stay free.
//!
//! argon2's memory (19 MiB a hash at the defaults) comes from a pool of one buffer per permit,
//! reused from hash to hash. Allocating it afresh each time let every blocking-pool thread's
//! malloc arena keep its own copies: a 10,000-student import peaked at 918 MiB. With the pool,
//! argon2 holds exactly `memory_kib` × permits, and no hash pays for page faults.

use std::sync::{Arc, Mutex};

use argon2::password_hash::{
    Output, ParamsString, PasswordHash, PasswordVerifier, Salt, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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
    /// argon2's working memory, one buffer per running hash, kept between hashes.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
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
            memory: Arc::new(Mutex::new(Vec::new())),
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
        let memory = self.memory.clone();
        let plaintext = zeroize::Zeroizing::new(plaintext.to_owned());
        self.blocking(move || {
            let mut salt = [0u8; 16];
            crate::clock::random_bytes(&mut salt).map_err(Error::Random)?;
            let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hash(e.to_string()))?;
            let keep = params.block_count();
            compute(&memory, keep, &params, plaintext.as_bytes(), salt.as_salt())
                .map(|hash| hash.to_string())
        })
        .await?
    }

    /// True when `plaintext` matches `phc`. With no stored hash (no such account, or none
    /// set), verifies against a decoy so the answer takes as long, and is false.
    pub async fn verify(&self, plaintext: &str, phc: Option<&str>) -> Result<bool, Error> {
        let (phc, real) = match phc {
            Some(phc) => (phc.to_owned(), true),
            None => (self.decoy().await?, false),
        };
        let memory = self.memory.clone();
        let keep = self.params.block_count();
        let plaintext = zeroize::Zeroizing::new(plaintext.to_owned());
        let matches = self
            .blocking(move || verify_now(&memory, keep, plaintext.as_bytes(), &phc))
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

/// argon2id of `password` with `salt` at `params`, in a pooled buffer. Buffers of `keep`
/// blocks (the configured size) go back to the pool; others are freed.
fn compute<'a>(
    pool: &Mutex<Vec<Vec<Block>>>,
    keep: usize,
    params: &Params,
    password: &[u8],
    salt: Salt<'a>,
) -> Result<PasswordHash<'a>, Error> {
    let failed = |e: &dyn std::fmt::Display| Error::Hash(e.to_string());
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
    let blocks = params.block_count();
    let mut memory = {
        let mut pool = pool.lock().unwrap_or_else(|e| e.into_inner());
        match pool.iter().position(|buffer| buffer.len() == blocks) {
            Some(index) => pool.swap_remove(index),
            None => vec![Block::default(); blocks],
        }
    };
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = Output::init_with(
        params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN),
        |out| {
            argon2
                .hash_password_into_with_memory(password, salt_bytes, out, &mut memory[..])
                .map_err(|_| argon2::password_hash::Error::Password)
        },
    );
    // At most one buffer per permit is out at a time, so the pool never holds more.
    if memory.len() == keep {
        pool.lock().unwrap_or_else(|e| e.into_inner()).push(memory);
    }
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| failed(&e))?,
        salt: Some(salt),
        hash: Some(output.map_err(|e| failed(&e))?),
    })
}

/// Recomputes a stored argon2id hash in pooled memory and compares in constant time (`Output`'s
/// equality); any other PHC string goes to the argon2 crate's own verifier.
fn verify_now(pool: &Mutex<Vec<Vec<Block>>>, keep: usize, password: &[u8], phc: &str) -> bool {
    let Ok(stored) = PasswordHash::new(phc) else {
        return false;
    };
    let pooled = stored.algorithm == Algorithm::Argon2id.ident()
        && stored.version == Some(Version::V0x13.into());
    match (pooled, Params::try_from(&stored), stored.salt, stored.hash) {
        (true, Ok(params), Some(salt), Some(expected)) => {
            compute(pool, keep, &params, password, salt)
                .is_ok_and(|hash| hash.hash == Some(expected))
        }
        _ => Argon2::default().verify_password(password, &stored).is_ok(),
    }
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
    async fn hashes_agree_with_the_argon2_crate_both_ways() {
        use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
        let hasher = Hasher::new(Argon2::default(), 2).unwrap();
        let ours = hasher.hash("correct horse").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            argon2::Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        // A hash made elsewhere, at other parameters (an older configuration), still verifies.
        let params = argon2::Params::new(8192, 3, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password(b"battery staple", &salt)
                .unwrap()
                .to_string();
        assert!(
            hasher
                .verify("battery staple", Some(&theirs))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("battery stable", Some(&theirs))
                .await
                .unwrap()
        );
        // argon2i is not what rollcall writes, but a stored one is still checked correctly.
        let argon2i = argon2::Argon2::new(
            argon2::Algorithm::Argon2i,
            argon2::Version::V0x13,
            argon2::Params::default(),
        )
        .hash_password(b"legacy", &salt)
        .unwrap()
        .to_string();
        assert!(hasher.verify("legacy", Some(&argon2i)).await.unwrap());
        assert!(!hasher.verify("legacy!", Some(&argon2i)).await.unwrap());
    }

    #[tokio::test]
    async fn the_memory_pool_holds_one_buffer_per_permit_at_most() {
        let hasher = Hasher::new(Argon2::default(), 2).unwrap();
        let hashes = (0..8).map(|i| {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash(&format!("p{i}")).await })
        });
        for hash in hashes {
            hash.await.unwrap().unwrap();
        }
        let pool = hasher.memory.lock().unwrap();
        assert!(!pool.is_empty() && pool.len() <= 2, "{}", pool.len());
        assert!(pool.iter().all(|buffer| buffer.len() == 19456));
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
