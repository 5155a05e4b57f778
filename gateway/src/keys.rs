//! API keys: generated from the OS CSPRNG, stored only as SHA-256 hashes.

use std::fmt;

use base64::Engine as _;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// Every generated key starts with this, so leaked keys are easy to grep for.
pub const KEY_PREFIX: &str = "pvt_";

/// The SHA-256 of an API key.
///
/// Keys are 256 random bits, so an unsalted fast hash is enough: there is no
/// dictionary to attack, and lookups stay O(1) on the hot path.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Hashes a presented key.
    pub fn of(key: &str) -> KeyHash {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, key.as_bytes()).as_ref());
        KeyHash(out)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Option<KeyHash> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(KeyHash(out))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({})", self.to_hex())
    }
}

/// The OS random source failed; nothing sensible can continue.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// Fills a buffer from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| RandomError)?;
    Ok(out)
}

/// A new API key: `pvt_` and 256 random bits in URL-safe base64.
pub fn generate_key() -> Result<String, RandomError> {
    let bytes: [u8; 32] = random_bytes()?;
    Ok(format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_known_sha256_and_round_trips_hex() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let h = KeyHash::of("abc");
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(KeyHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
    }

    #[test]
    fn bad_hex_is_rejected() {
        assert_eq!(KeyHash::from_hex("abc"), None);
        assert_eq!(KeyHash::from_hex(&"g".repeat(64)), None);
        assert_eq!(KeyHash::from_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn generated_keys_are_distinct_and_well_formed() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 43);
        assert!(a[KEY_PREFIX.len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
