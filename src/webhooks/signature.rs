//! Signatures as the Standard Webhooks specification (<https://www.standardwebhooks.com>)
//! defines them, so a receiver can verify deliveries with any of its libraries:
//! `webhook-signature: v1,<base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}">`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a secret given as base64 (the form Standard Webhooks libraries generate).
const PREFIX: &str = "whsec_";

/// A webhook's signing key, ready to sign. Its `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct Key(Hmac<Sha256>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    /// The key from a configured secret: after a `whsec_` prefix the rest is base64, otherwise
    /// the secret's bytes are the key.
    pub fn from_secret(secret: &str) -> Result<Key, String> {
        let bytes = match secret.strip_prefix(PREFIX) {
            Some(encoded) => {
                zeroize::Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| {
                    format!("a secret starting with `{PREFIX}` must be base64 after it")
                })?)
            }
            None => zeroize::Zeroizing::new(secret.as_bytes().to_vec()),
        };
        if bytes.is_empty() {
            return Err("the secret is empty".into());
        }
        Hmac::<Sha256>::new_from_slice(&bytes)
            .map(Key)
            .map_err(|e| format!("unusable secret: {e}"))
    }

    /// The `webhook-signature` header's value for one delivery attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's own example (also in its reference libraries' tests): a vector we
    /// signed ourselves would only show the code agrees with itself.
    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let key = Key::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            key.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_plain_secret_is_the_key_itself() {
        // The well-known example HMAC-SHA256("key", "The quick brown fox jumps over the lazy
        // dog"): the key's bytes are the secret's, not decoded.
        let mut mac = Key::from_secret("key").unwrap().0;
        mac.update(b"The quick brown fox jumps over the lazy dog");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn a_change_of_id_timestamp_or_body_changes_the_signature() {
        let key = Key::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let base = key.sign("msg_1", 1, b"{}");
        assert_ne!(base, key.sign("msg_2", 1, b"{}"));
        assert_ne!(base, key.sign("msg_1", 2, b"{}"));
        assert_ne!(base, key.sign("msg_1", 1, b"{ }"));
        assert_eq!(base, key.sign("msg_1", 1, b"{}"));
    }

    #[test]
    fn empty_or_malformed_secrets_are_refused() {
        assert!(Key::from_secret("").is_err());
        assert!(Key::from_secret("whsec_").is_err());
        let message = Key::from_secret("whsec_not base64!").unwrap_err();
        assert!(message.contains("base64"), "{message}");
        assert_eq!(
            format!("{:?}", Key::from_secret("hunter2").unwrap()),
            "Key(…)"
        );
    }
}
