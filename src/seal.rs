//! Sealing pending credential slips at rest: XChaCha20-Poly1305 under a key kept outside the
//! database.
//!
//! A first password generated outside an admin's request waits in the store, sealed, until an
//! admin collects its slip. A sealed value is `nonce (24 bytes) || ciphertext || tag (16 bytes)`,
//! with a fresh random nonce each time. Its associated data names the account (for example
//! "school-id/user-id"), so a sealed value copied to another account's row does not open.
//!
//! The key is 32 random bytes written as base64: the value of `ROLLCALL_SLIP_KEY`, or a key file
//! that only its owner may read, created on first start if asked.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// The standard alphabet; padding is written, and optional when read.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const NOT_OPENED: SealError = SealError(
    "cannot open a sealed slip: it was sealed with another key or for another account, \
     or has been altered",
);

/// The key that seals pending slips: 32 bytes for XChaCha20-Poly1305. Debug prints no key
/// material; the bytes are wiped when the key is dropped.
pub struct SlipKey {
    /// Boxed so that moving the key does not leave copies behind.
    bytes: Box<[u8; KEY_LEN]>,
}

/// Why a slip key could not be had. Every message names the file or variable concerned.
#[derive(Debug)]
pub enum KeyError {
    /// The key file exists but cannot be read (or does not exist and may not be created).
    Unreadable { path: PathBuf, source: io::Error },
    /// The key file's mode lets users other than its owner at it.
    Exposed { path: PathBuf, mode: u32 },
    /// The text is not base64.
    NotBase64 { origin: String },
    /// The text is base64, but not of 32 bytes.
    WrongLength { origin: String, len: usize },
    /// The key file, or its directory, could not be created.
    CannotCreate { path: PathBuf, source: io::Error },
    /// The operating system gave no randomness for a new key.
    Random(getrandom::Error),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const EXPECTED: &str = "must hold 32 bytes as base64 (44 characters)";
        match self {
            KeyError::Unreadable { path, source } => {
                write!(f, "cannot read slip key file {}: {source}", path.display())
            }
            KeyError::Exposed { path, mode } => write!(
                f,
                "slip key file {} is readable by other users (mode {:04o}); chmod 600 it",
                path.display(),
                mode & 0o7777
            ),
            KeyError::NotBase64 { origin } => write!(f, "{origin} is not base64; it {EXPECTED}"),
            KeyError::WrongLength { origin, len } => {
                write!(f, "{origin} {EXPECTED}; it holds {len} bytes")
            }
            KeyError::CannotCreate { path, source } => {
                write!(
                    f,
                    "cannot create slip key file {}: {source}",
                    path.display()
                )
            }
            KeyError::Random(e) => write!(f, "no randomness for a new slip key: {e}"),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyError::Unreadable { source, .. } | KeyError::CannotCreate { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// A slip could not be sealed or opened; the message says why.
#[derive(Debug)]
pub struct SealError(pub &'static str);

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for SealError {}

impl SlipKey {
    /// From base64 text (standard alphabet, padding optional, surrounding whitespace ignored),
    /// such as the value of the environment variable `ROLLCALL_SLIP_KEY`. `origin` names where
    /// the text came from, for messages: "ROLLCALL_SLIP_KEY" or "slip key file /path".
    pub fn from_base64(text: &str, origin: &str) -> Result<SlipKey, KeyError> {
        let decoded = BASE64
            .decode(text.trim())
            .map_err(|_| KeyError::NotBase64 {
                origin: origin.to_owned(),
            })?;
        let decoded = Zeroizing::new(decoded);
        if decoded.len() != KEY_LEN {
            return Err(KeyError::WrongLength {
                origin: origin.to_owned(),
                len: decoded.len(),
            });
        }
        let mut key = SlipKey {
            bytes: Box::new([0; KEY_LEN]),
        };
        key.bytes.copy_from_slice(&decoded);
        Ok(key)
    }

    /// Reads the key file at `path` (base64 text as for [`SlipKey::from_base64`]), refusing one
    /// that users other than its owner may read.
    ///
    /// If the file does not exist and `create` is true, creates it with a fresh random key, mode
    /// 0600, creating its directory (mode 0700) if needed. The file appears whole or not at all,
    /// and never replaces another: when two processes start at once, both end up with the key of
    /// whichever created the file first.
    pub fn load_or_create(path: &Path, create: bool) -> Result<SlipKey, KeyError> {
        let unreadable = |source| KeyError::Unreadable {
            path: path.to_owned(),
            source,
        };
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                let key = SlipKey::generate()?;
                if key.create_file(path)? {
                    return Ok(key);
                }
                // Another process created the file first: use its key.
                File::open(path).map_err(unreadable)?
            }
            Err(source) => return Err(unreadable(source)),
        };
        read_key_file(path, file)
    }

    /// A random key (for a new key file, tests and benchmarks).
    pub fn generate() -> Result<SlipKey, KeyError> {
        let mut key = SlipKey {
            bytes: Box::new([0; KEY_LEN]),
        };
        getrandom::fill(&mut key.bytes[..]).map_err(KeyError::Random)?;
        Ok(key)
    }

    /// Encrypts `plaintext` with a fresh random 24-byte nonce; returns nonce || ciphertext+tag.
    /// `context` is the associated data: the caller passes, for example, "school-id/user-id", so
    /// that a sealed value cannot be moved to another account.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = XNonce::default();
        getrandom::fill(&mut nonce).map_err(|_| {
            SealError("cannot seal a slip: no randomness from the operating system")
        })?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = self
            .cipher()
            .encrypt_inout_detached(&nonce, context, (&mut sealed[NONCE_LEN..]).into())
            .map_err(|_| SealError("cannot seal a slip: it is too long"))?;
        sealed.extend_from_slice(&tag);
        Ok(sealed)
    }

    /// Decrypts what [`SlipKey::seal`] produced, given the same context; the plaintext comes
    /// back in a buffer that is wiped when dropped.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (nonce, ciphertext) = sealed.split_first_chunk::<NONCE_LEN>().ok_or(NOT_OPENED)?;
        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        self.cipher()
            .decrypt_in_place(nonce.into(), context, &mut *plaintext)
            .map_err(|_| NOT_OPENED)?;
        Ok(plaintext)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.bytes).into())
    }

    /// Publishes this key at `path` unless a file is already there: written whole to a temporary
    /// file beside it, then hard-linked into place, which fails rather than replace a file. True
    /// when this key was published, false when another file was there first.
    fn create_file(&self, path: &Path) -> Result<bool, KeyError> {
        let cannot_create = |source| KeyError::CannotCreate {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| {
            cannot_create(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path names no file",
            ))
        })?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(cannot_create)?;
        let suffix = getrandom::u64().map_err(KeyError::Random)?;
        let temp = dir.join(format!(".{}.{suffix:016x}.tmp", name.to_string_lossy()));
        let text = Zeroizing::new(BASE64.encode(&self.bytes[..]));
        let linked = write_and_link(&temp, path, text.as_bytes());
        // Best effort: the temporary name is only a second link to the same file (or a failed
        // write); nothing depends on it being gone.
        let _ = fs::remove_file(&temp);
        let created = linked.map_err(cannot_create)?;
        if created {
            // Make the new name durable: slips sealed with this key are lost without it.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(cannot_create)?;
        }
        Ok(created)
    }
}

/// Writes `text` and a newline to a new file `temp` (mode 0600), then links it as `path`. False
/// when `path` already exists.
fn write_and_link(temp: &Path, path: &Path, text: &[u8]) -> io::Result<bool> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)?;
    file.write_all(text)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    match fs::hard_link(temp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn read_key_file(path: &Path, mut file: File) -> Result<SlipKey, KeyError> {
    let unreadable = |source| KeyError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let mode = file.metadata().map_err(unreadable)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    // Room for the key and then some, so that reading does not leave copies in freed memory.
    let mut text = Zeroizing::new(String::with_capacity(256));
    file.read_to_string(&mut text).map_err(unreadable)?;
    SlipKey::from_base64(&text, &format!("slip key file {}", path.display()))
}

impl Drop for SlipKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl ZeroizeOnDrop for SlipKey {}

impl fmt::Debug for SlipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlipKey").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &[u8] = b"school-1/user-1";

    fn opens(sealer: &SlipKey, opener: &SlipKey) -> bool {
        let sealed = sealer.seal(CONTEXT, b"s3cret").unwrap();
        opener.open(CONTEXT, &sealed).is_ok_and(|p| *p == b"s3cret")
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn round_trip() {
        let key = SlipKey::generate().unwrap();
        for plaintext in [&b""[..], b"Tr0ub4dor&3", &[0xff; 1000]] {
            let sealed = key.seal(CONTEXT, plaintext).unwrap();
            assert_eq!(sealed.len(), NONCE_LEN + plaintext.len() + TAG_LEN);
            assert_eq!(*key.open(CONTEXT, &sealed).unwrap(), plaintext);
        }
    }

    #[test]
    fn another_context_does_not_open() {
        let key = SlipKey::generate().unwrap();
        let sealed = key.seal(CONTEXT, b"s3cret").unwrap();
        let err = key.open(b"school-1/user-2", &sealed).unwrap_err();
        assert!(err.to_string().contains("another account"), "{err}");
    }

    #[test]
    fn any_altered_byte_or_truncation_does_not_open() {
        let key = SlipKey::generate().unwrap();
        let sealed = key.seal(CONTEXT, b"s3cret").unwrap();
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            assert!(key.open(CONTEXT, &altered).is_err(), "byte {i}");
            assert!(key.open(CONTEXT, &sealed[..i]).is_err(), "first {i} bytes");
        }
    }

    #[test]
    fn another_key_does_not_open() {
        let key = SlipKey::generate().unwrap();
        assert!(opens(&key, &key));
        assert!(!opens(&key, &SlipKey::generate().unwrap()));
    }

    #[test]
    fn each_seal_differs() {
        let key = SlipKey::generate().unwrap();
        assert_ne!(
            key.seal(CONTEXT, b"s3cret").unwrap(),
            key.seal(CONTEXT, b"s3cret").unwrap()
        );
    }

    #[test]
    fn base64_padding_optional_and_whitespace_ignored() {
        let key = SlipKey::generate().unwrap();
        let text = BASE64.encode(&key.bytes[..]);
        assert_eq!(text.len(), 44);
        let unpadded = text.trim_end_matches('=');
        let padded = SlipKey::from_base64(&format!("  {text}\n"), "ROLLCALL_SLIP_KEY").unwrap();
        let bare = SlipKey::from_base64(unpadded, "ROLLCALL_SLIP_KEY").unwrap();
        assert!(opens(&key, &padded));
        assert!(opens(&key, &bare));
    }

    #[test]
    fn wrong_length_or_not_base64_is_refused_with_the_origin() {
        let err = SlipKey::from_base64(&BASE64.encode([7; 16]), "ROLLCALL_SLIP_KEY").unwrap_err();
        assert_eq!(
            err.to_string(),
            "ROLLCALL_SLIP_KEY must hold 32 bytes as base64 (44 characters); it holds 16 bytes"
        );
        let err = SlipKey::from_base64("", "ROLLCALL_SLIP_KEY").unwrap_err();
        assert!(err.to_string().ends_with("it holds 0 bytes"), "{err}");
        let err = SlipKey::from_base64("not base64!", "ROLLCALL_SLIP_KEY").unwrap_err();
        assert!(matches!(err, KeyError::NotBase64 { .. }));
        assert!(
            err.to_string()
                .starts_with("ROLLCALL_SLIP_KEY is not base64"),
            "{err}"
        );
    }

    #[test]
    fn load_or_create_creates_a_private_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/slip.key");
        let first = SlipKey::load_or_create(&path, true).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(fs::read_to_string(&path).unwrap().trim().len(), 44);
        let second = SlipKey::load_or_create(&path, true).unwrap();
        let third = SlipKey::load_or_create(&path, false).unwrap();
        assert!(opens(&first, &second));
        assert!(opens(&third, &first));
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn processes_starting_at_once_share_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slip.key");
        let keys: Vec<SlipKey> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| SlipKey::load_or_create(&path, true).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for key in &keys[1..] {
            assert!(opens(&keys[0], key));
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_file_is_not_created_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slip.key");
        let err = SlipKey::load_or_create(&path, false).unwrap_err();
        assert!(matches!(err, KeyError::Unreadable { .. }));
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slip.key");
        fs::write(&path, BASE64.encode([7; 32])).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = SlipKey::load_or_create(&path, true).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "slip key file {} is readable by other users (mode 0644); chmod 600 it",
                path.display()
            )
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(SlipKey::load_or_create(&path, false).is_ok());
    }

    #[test]
    fn a_key_file_of_the_wrong_length_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slip.key");
        fs::write(&path, BASE64.encode([7; 31])).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = SlipKey::load_or_create(&path, true).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "slip key file {} must hold 32 bytes as base64 (44 characters); it holds 31 bytes",
                path.display()
            )
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = SlipKey::generate().unwrap();
        let debug = format!("{key:?} {key:#?}");
        assert!(!debug.contains(&BASE64.encode(&key.bytes[..])));
        assert!(!debug.contains(&format!("{:?}", &key.bytes[..4])));
        assert_eq!(format!("{key:?}"), "SlipKey { .. }");
    }
}
