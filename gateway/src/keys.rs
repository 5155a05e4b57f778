//! API keys: generated from the OS CSPRNG, stored only as SHA-256 hashes
//! (and, for the PostgreSQL wire front, as SCRAM-SHA-256 verifiers).

use std::fmt;
use std::num::NonZeroU32;

use base64::Engine as _;
use ring::digest::{digest, SHA256};
use ring::hmac;
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

/// PBKDF2 iterations of new SCRAM verifiers (PostgreSQL's default).
pub const SCRAM_ITERATIONS: u32 = 4096;
/// Salt length of new SCRAM verifiers, as PostgreSQL uses.
const SCRAM_SALT_LEN: usize = 16;
const SCRAM_PREFIX: &str = "SCRAM-SHA-256$";

/// A SCRAM-SHA-256 verifier of an API key, in PostgreSQL's `rolpassword`
/// format `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
/// (base64). It lets the wire front check a SCRAM login without the key;
/// it cannot be turned back into the key (PBKDF2 over 256 random bits).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: NonZeroU32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

/// Why a `pg_scram_sha256` value is not a verifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramVerifierError {
    #[error("must start with `SCRAM-SHA-256$`")]
    Prefix,
    #[error("must look like `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`")]
    Shape,
    #[error("the iteration count must be a number of at least 4096")]
    Iterations,
    #[error("the salt must be non-empty base64")]
    Salt,
    #[error("StoredKey and ServerKey must be base64 of 32 bytes each")]
    Key,
}

impl ScramVerifier {
    /// The verifier of `key` with a fresh random salt and 4096 iterations.
    pub fn generate(key: &str) -> Result<ScramVerifier, RandomError> {
        let salt: [u8; SCRAM_SALT_LEN] = random_bytes()?;
        let iterations = NonZeroU32::new(SCRAM_ITERATIONS).unwrap_or(NonZeroU32::MIN);
        Ok(ScramVerifier::derive(key, &salt, iterations))
    }

    /// RFC 5802's keys of `key`: SaltedPassword = PBKDF2-HMAC-SHA-256(
    /// SASLprep(key), salt, i), StoredKey = H(HMAC(SaltedPassword,
    /// "Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key").
    pub fn derive(key: &str, salt: &[u8], iterations: NonZeroU32) -> ScramVerifier {
        // pgwire's Hi(): SASLprep as clients apply it (a key SASLprep
        // rejects is used as is, as PostgreSQL does), then PBKDF2 over ring.
        let salted = ::pgwire::api::auth::sasl::scram::gen_salted_password(
            key,
            salt,
            usize::try_from(iterations.get()).unwrap_or(usize::MAX),
        );
        let mac = hmac::Key::new(hmac::HMAC_SHA256, &salted);
        let client_key = hmac::sign(&mac, b"Client Key");
        let mut stored_key = [0u8; 32];
        stored_key.copy_from_slice(digest(&SHA256, client_key.as_ref()).as_ref());
        let mut server_key = [0u8; 32];
        server_key.copy_from_slice(hmac::sign(&mac, b"Server Key").as_ref());
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key,
            server_key,
        }
    }

    /// Parses PostgreSQL's format (as `pg_authid.rolpassword` holds it).
    pub fn parse(text: &str) -> Result<ScramVerifier, ScramVerifierError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let rest = text
            .trim()
            .strip_prefix(SCRAM_PREFIX)
            .ok_or(ScramVerifierError::Prefix)?;
        let (params, keys) = rest.split_once('$').ok_or(ScramVerifierError::Shape)?;
        let (iterations, salt) = params.split_once(':').ok_or(ScramVerifierError::Shape)?;
        let (stored, server) = keys.split_once(':').ok_or(ScramVerifierError::Shape)?;
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .filter(|i| *i >= SCRAM_ITERATIONS)
            .and_then(NonZeroU32::new)
            .ok_or(ScramVerifierError::Iterations)?;
        let salt = b64
            .decode(salt)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or(ScramVerifierError::Salt)?;
        let key = |text: &str| -> Result<[u8; 32], ScramVerifierError> {
            b64.decode(text)
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
                .ok_or(ScramVerifierError::Key)
        };
        Ok(ScramVerifier {
            iterations,
            salt,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b64 = base64::engine::general_purpose::STANDARD;
        write!(
            f,
            "{SCRAM_PREFIX}{}:{}${}:{}",
            self.iterations,
            b64.encode(&self.salt),
            b64.encode(self.stored_key),
            b64.encode(self.server_key)
        )
    }
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A verifier allows an offline guess at the key: keep it out of logs.
        write!(f, "ScramVerifier(i={}, ..)", self.iterations)
    }
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

    #[test]
    fn scram_verifiers_match_pgwire_and_round_trip_postgres_format() {
        // RFC 7677's example salt and iteration count.
        let salt = base64::engine::general_purpose::STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap();
        let i = NonZeroU32::new(4096).unwrap();
        let v = ScramVerifier::derive("pencil", &salt, i);
        let salted = ::pgwire::api::auth::sasl::scram::gen_salted_password("pencil", &salt, 4096);
        let ::pgwire::api::auth::sasl::scram::ScramSecret::Verifier {
            stored_key,
            server_key,
            ..
        } = ::pgwire::api::auth::sasl::scram::ScramSecret::verifier_from_salted_password(
            salt.clone(),
            salted,
            4096,
        )
        else {
            panic!("a verifier");
        };
        assert_eq!(v.stored_key.as_slice(), stored_key.as_slice());
        assert_eq!(v.server_key.as_slice(), server_key.as_slice());

        let text = v.to_string();
        assert!(
            text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"),
            "{text}"
        );
        assert_eq!(ScramVerifier::parse(&text), Ok(v.clone()));
        assert!(!format!("{v:?}").contains(&text[30..]));

        let fresh = ScramVerifier::generate("pvt_x").unwrap();
        assert_eq!(fresh.salt.len(), 16);
        assert_eq!(fresh.iterations.get(), SCRAM_ITERATIONS);
        assert_ne!(fresh.salt, ScramVerifier::generate("pvt_x").unwrap().salt);
    }

    #[test]
    fn bad_scram_verifiers_say_what_is_wrong() {
        let good = ScramVerifier::derive("k", b"0123456789abcdef", NonZeroU32::new(4096).unwrap())
            .to_string();
        let (head, keys) = good.rsplit_once('$').unwrap();
        let (stored, _) = keys.split_once(':').unwrap();
        for (bad, error) in [
            ("md5abc".to_owned(), ScramVerifierError::Prefix),
            (
                "SCRAM-SHA-256$4096:c2FsdA==".to_owned(),
                ScramVerifierError::Shape,
            ),
            (
                good.replacen("4096", "10", 1),
                ScramVerifierError::Iterations,
            ),
            (
                good.replacen("4096", "x", 1),
                ScramVerifierError::Iterations,
            ),
            (
                format!("SCRAM-SHA-256$4096:${keys}"),
                ScramVerifierError::Salt,
            ),
            (
                format!("SCRAM-SHA-256$4096:!!${keys}"),
                ScramVerifierError::Salt,
            ),
            (format!("{head}${stored}:c2hvcnQ="), ScramVerifierError::Key),
        ] {
            assert_eq!(ScramVerifier::parse(&bad), Err(error), "{bad}");
        }
    }
}
