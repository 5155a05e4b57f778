//! [`TokenKey`]: a secret key and the deterministic tokens (HMAC-SHA256)
//! computed with it.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};

use crate::error::VaultError;
use crate::files::{sync_parent, temp_path, write_new_file};

/// Key length in bytes: 256 bits, SHA-256's output size (the full strength
/// HMAC-SHA256 offers).
const KEY_LEN: usize = 32;

/// Pseudonym length before encoding: 128 bits keeps collisions negligible
/// (birthday bound ~2^64 values per domain) while staying short in results.
const PSEUDONYM_LEN: usize = 16;

/// Marks a value as a token so nobody mistakes it for real data.
const PSEUDONYM_PREFIX: &str = "tok_";

/// Separates the key id derivation from every HMAC use of the key.
const KEY_ID_CONTEXT: &[u8] = b"privet token key id\0";

/// A 256-bit key for deterministic tokens (pseudonyms, blind indexes).
///
/// The same key and input always give the same token, so tokens can be
/// joined and compared; without the key they cannot be computed or linked
/// to tokens made with another key.
pub struct TokenKey {
    hmac: hmac::Key,
    // ring's `hmac::Key` does not give its bytes back, and the key has to be
    // persisted.
    bytes: [u8; KEY_LEN],
    id: String,
}

impl TokenKey {
    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Result<TokenKey, VaultError> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| VaultError::Random)?;
        Ok(TokenKey::from_bytes(&bytes))
    }

    /// The key with these bytes.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> TokenKey {
        // Hashed in place rather than concatenated, leaving no stray copy of
        // the key in a heap buffer.
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(KEY_ID_CONTEXT);
        ctx.update(bytes);
        let id = ctx.finish().as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        TokenKey {
            hmac: hmac::Key::new(hmac::HMAC_SHA256, bytes),
            bytes: *bytes,
            id,
        }
    }

    /// The key's bytes, to persist it. Handle as a secret.
    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.bytes
    }

    /// A public identifier of the key (16 hex digits of a SHA-256 of the
    /// key): tells keys apart in logs and metadata without revealing them.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Loads a key file holding exactly 32 raw bytes.
    ///
    /// On Unix, refuses a file that group or others can access
    /// (`mode & 0o077 != 0`): the error names the path and the fix.
    pub fn load(path: &Path) -> Result<TokenKey, VaultError> {
        // Checks the opened file itself, not the path, so the file checked
        // is the file read.
        let (file, meta) = crate::files::open_private(path)?;
        // Read one byte more than a key so a longer file is detected without
        // reading an arbitrarily large one.
        let mut bytes = Vec::with_capacity(KEY_LEN + 1);
        (&file)
            .take(KEY_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| VaultError::io(path, e))?;
        let bytes: [u8; KEY_LEN] = match bytes.as_slice().try_into() {
            Ok(bytes) => bytes,
            Err(_) => {
                // Only KEY_LEN + 1 bytes were read; the size says how long it is.
                let found = if bytes.len() > KEY_LEN {
                    meta.len()
                } else {
                    bytes.len() as u64
                };
                return Err(VaultError::BadKeyFile {
                    path: path.to_path_buf(),
                    reason: format!("expected exactly {KEY_LEN} bytes, found {found}"),
                });
            }
        };
        Ok(TokenKey::from_bytes(&bytes))
    }

    /// Loads the key file, or creates it with a new key if it does not exist.
    ///
    /// Creation is atomic: the key is written to a 0600 temporary file in
    /// the same directory, synced, then linked into place. Linking (rather
    /// than renaming) never replaces an existing file, so when two processes
    /// race, both end up with the key that won instead of one silently
    /// losing its key and every token made with it.
    pub fn load_or_create(path: &Path) -> Result<TokenKey, VaultError> {
        match TokenKey::load(path) {
            Err(VaultError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            loaded => return loaded,
        }
        let key = TokenKey::generate()?;
        let tmp = temp_path(path)?;
        let created = write_new_file(&tmp, &key.bytes).and_then(|()| fs::hard_link(&tmp, path));
        // The temporary name is never needed again, whatever happened.
        let _ = fs::remove_file(&tmp);
        match created {
            Ok(()) => {
                sync_parent(path)?;
                Ok(key)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => TokenKey::load(path),
            Err(e) => Err(VaultError::io(path, e)),
        }
    }

    /// The key of one domain: HMAC-SHA256(key, `domain` || 0x00).
    ///
    /// `domain` separates uses (e.g. `"customers.id"`): the same value gives
    /// unrelated MACs in different domains, so tokens of different columns
    /// match only if the caller gives them the same domain. A database that
    /// computes tokens itself (PostgreSQL policy views) is given only the
    /// keys of the domains it needs, never this key. `domain` must not
    /// contain NUL, the separator (table and column names never do).
    pub fn domain_key(&self, domain: &str) -> [u8; 32] {
        debug_assert!(!domain.contains('\0'), "NUL in token domain {domain:?}");
        let mut ctx = hmac::Context::with_key(&self.hmac);
        ctx.update(domain.as_bytes());
        ctx.update(&[0]);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// The ready-to-use key of one domain, for computing many tokens of it
    /// (deriving the domain key and setting up HMAC costs more than one
    /// token).
    pub fn for_domain(&self, domain: &str) -> DomainTokenKey {
        DomainTokenKey {
            hmac: hmac::Key::new(hmac::HMAC_SHA256, &self.domain_key(domain)),
        }
    }

    /// HMAC-SHA256([`domain_key`](Self::domain_key)`(domain)`, `value`).
    pub fn mac(&self, domain: &str, value: &[u8]) -> [u8; 32] {
        self.for_domain(domain).mac(value)
    }

    /// A pseudonym: `"tok_"` + URL-safe base64 (no padding) of the first
    /// 16 bytes of [`mac`](Self::mac)`(domain, value)`.
    ///
    /// Same key and input → same token; different keys → unlinkable tokens.
    pub fn pseudonym(&self, domain: &str, value: &[u8]) -> String {
        self.for_domain(domain).pseudonym(value)
    }
}

/// The key of one token domain ([`TokenKey::for_domain`]).
pub struct DomainTokenKey {
    hmac: hmac::Key,
}

impl DomainTokenKey {
    /// HMAC-SHA256(domain key, `value`), as [`TokenKey::mac`].
    pub fn mac(&self, value: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&self.hmac, value).as_ref());
        out
    }

    /// The pseudonym of `value`, as [`TokenKey::pseudonym`].
    pub fn pseudonym(&self, value: &[u8]) -> String {
        let mac = self.mac(value);
        let mut token = String::with_capacity(PSEUDONYM_PREFIX.len() + 22);
        token.push_str(PSEUDONYM_PREFIX);
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_string(&mac[..PSEUDONYM_LEN], &mut token);
        token
    }
}

impl fmt::Debug for DomainTokenKey {
    /// Key material never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DomainTokenKey")
    }
}

impl fmt::Debug for TokenKey {
    /// Shows only the key id: key material never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A directory removed when dropped (the crate has no tempfile dependency).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "vault-test-{name}-{}-{}",
                std::process::id(),
                TokenKey::generate().unwrap().id()
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn hmac_sha256_known_answer_rfc4231_case_2() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn mac_is_hmac_under_the_domain_key() {
        let bytes = [0x42; 32];
        let key = TokenKey::from_bytes(&bytes);
        let domain_key = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            b"customers.email\0",
        );
        assert_eq!(key.domain_key("customers.email"), domain_key.as_ref());
        let expected = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, domain_key.as_ref()),
            b"jane@example.com",
        );
        assert_eq!(
            key.mac("customers.email", b"jane@example.com"),
            expected.as_ref()
        );
        assert_ne!(
            key.domain_key("customers.email"),
            key.domain_key("customers.phone")
        );
    }

    #[test]
    fn pseudonym_format_and_determinism() {
        let key = TokenKey::from_bytes(&[1; 32]);
        let token = key.pseudonym("customers.id", b"42");
        assert_eq!(token, key.pseudonym("customers.id", b"42"));
        assert_eq!(
            token,
            TokenKey::from_bytes(&[1; 32]).pseudonym("customers.id", b"42")
        );
        let encoded = token.strip_prefix("tok_").unwrap();
        assert_eq!(encoded.len(), 22);
        assert!(encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .unwrap();
        assert_eq!(decoded, key.mac("customers.id", b"42")[..16]);
        assert_ne!(token, key.pseudonym("customers.id", b"43"));
    }

    #[test]
    fn different_keys_give_different_tokens() {
        let a = TokenKey::from_bytes(&[1; 32]);
        let b = TokenKey::from_bytes(&[2; 32]);
        assert_ne!(a.pseudonym("t.c", b"v"), b.pseudonym("t.c", b"v"));
        assert_ne!(a.id(), b.id());
        let g1 = TokenKey::generate().unwrap();
        let g2 = TokenKey::generate().unwrap();
        assert_ne!(g1.to_bytes(), g2.to_bytes());
        assert_ne!(g1.pseudonym("t.c", b"v"), g2.pseudonym("t.c", b"v"));
    }

    #[test]
    fn domains_separate_tokens() {
        let key = TokenKey::from_bytes(&[3; 32]);
        assert_ne!(
            key.pseudonym("customers.id", b"42"),
            key.pseudonym("orders.customer_id", b"42")
        );
        // The separator keeps the domain/value boundary unambiguous.
        assert_ne!(key.mac("ab", b"c"), key.mac("a", b"bc"));
    }

    #[test]
    fn bytes_round_trip() {
        let key = TokenKey::generate().unwrap();
        let again = TokenKey::from_bytes(&key.to_bytes());
        assert_eq!(again.id(), key.id());
        assert_eq!(again.pseudonym("t.c", b"v"), key.pseudonym("t.c", b"v"));
    }

    #[test]
    fn debug_does_not_leak_key_material() {
        let bytes = [0xab; 32];
        let key = TokenKey::from_bytes(&bytes);
        let debug = format!("{key:?}");
        assert_eq!(debug, format!("TokenKey {{ id: {:?}, .. }}", key.id()));
        assert!(!debug.contains("ab, ab") && !debug.contains("171"));
        assert!(!debug.to_lowercase().contains(&hex(&bytes[..4])));
    }

    #[cfg(unix)]
    #[test]
    fn load_or_create_creates_0600_and_reloads_same_key() {
        let dir = TempDir::new("create");
        let path = dir.0.join("token.key");
        let created = TokenKey::load_or_create(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read(&path).unwrap(), created.to_bytes());
        let loaded = TokenKey::load_or_create(&path).unwrap();
        assert_eq!(loaded.to_bytes(), created.to_bytes());
        assert_eq!(TokenKey::load(&path).unwrap().id(), created.id());
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1);
    }

    #[test]
    fn concurrent_load_or_create_agree_on_one_key() {
        let dir = TempDir::new("race");
        let path = dir.0.join("token.key");
        let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| TokenKey::load_or_create(&path).unwrap().to_bytes()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]));
        assert_eq!(fs::read(&path).unwrap(), keys[0]);
    }

    #[test]
    fn load_of_missing_file_is_io_error() {
        let dir = TempDir::new("missing");
        let path = dir.0.join("absent.key");
        let err = TokenKey::load(&path).unwrap_err();
        assert!(
            matches!(&err, VaultError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
        );
        assert!(err.to_string().contains("absent.key"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn insecure_permissions_are_refused() {
        let dir = TempDir::new("perms");
        let path = dir.0.join("token.key");
        fs::write(&path, [5u8; 32]).unwrap();
        for insecure in [0o644, 0o640, 0o604, 0o660, 0o610] {
            set_mode(&path, insecure);
            let err = TokenKey::load(&path).unwrap_err();
            assert!(
                matches!(&err, VaultError::InsecurePermissions { mode, .. } if *mode == insecure),
                "{err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("chmod 600"), "{message}");
            // load_or_create must not replace or accept it either.
            assert!(matches!(
                TokenKey::load_or_create(&path),
                Err(VaultError::InsecurePermissions { .. })
            ));
        }
        set_mode(&path, 0o600);
        assert_eq!(TokenKey::load(&path).unwrap().to_bytes(), [5u8; 32]);
        set_mode(&path, 0o400);
        assert_eq!(TokenKey::load(&path).unwrap().to_bytes(), [5u8; 32]);
    }

    #[cfg(unix)]
    #[test]
    fn wrong_length_is_refused() {
        let dir = TempDir::new("length");
        let path = dir.0.join("token.key");
        for (len, found) in [
            (0, "found 0"),
            (31, "found 31"),
            (33, "found 33"),
            (4096, "found 4096"),
        ] {
            fs::write(&path, vec![1u8; len]).unwrap();
            set_mode(&path, 0o600);
            let err = TokenKey::load(&path).unwrap_err();
            assert!(matches!(err, VaultError::BadKeyFile { .. }), "{err:?}");
            let message = err.to_string();
            assert!(message.contains(found), "{message}");
            assert!(message.contains("expected exactly 32 bytes"), "{message}");
            assert!(matches!(
                TokenKey::load_or_create(&path),
                Err(VaultError::BadKeyFile { .. })
            ));
            // A bad key file is never overwritten.
            assert_eq!(fs::read(&path).unwrap().len(), len);
        }
    }

    #[test]
    fn directory_is_not_a_key_file() {
        let dir = TempDir::new("dir");
        let err = TokenKey::load(&dir.0).unwrap_err();
        assert!(matches!(err, VaultError::BadKeyFile { .. }), "{err:?}");
    }
}
