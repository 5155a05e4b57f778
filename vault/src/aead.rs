//! The raw AEAD layer (AES-GCM with 96-bit nonces and 128-bit tags, from
//! ring) under everything else in the crate: field encryption, key wrapping
//! and the keystore file. Public so it can be checked against Wycheproof
//! vectors and benchmarked.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::cipher::CipherError;

/// Nonce length in bytes (96 bits, GCM's native size).
pub const NONCE_LEN: usize = 12;

/// Tag length in bytes (128 bits, GCM's full tag).
pub const TAG_LEN: usize = 16;

/// Encrypts `in_out` in place with AES-GCM and appends the 16-byte tag.
///
/// `key` is 16 (AES-128) or 32 (AES-256) bytes. A nonce must never be used
/// twice with the same key: callers use a fresh random one each time.
pub fn seal(
    key: &[u8],
    nonce: &[u8; 12],
    aad: &[u8],
    in_out: &mut Vec<u8>,
) -> Result<(), CipherError> {
    seal_with(&key_for(key)?, nonce, aad, in_out)
}

/// Decrypts `in_out` (ciphertext followed by the 16-byte tag) in place,
/// leaving the plaintext. Any mismatch (key, nonce, associated data, a
/// single altered bit, truncation) gives [`CipherError::Authentication`] and
/// clears `in_out`, so no unauthenticated plaintext is ever left behind.
pub fn open(
    key: &[u8],
    nonce: &[u8; 12],
    aad: &[u8],
    in_out: &mut Vec<u8>,
) -> Result<(), CipherError> {
    open_with(&key_for(key)?, nonce, aad, in_out)
}

/// The ready-to-use AES-GCM key for `key` (16 or 32 bytes).
pub(crate) fn key_for(key: &[u8]) -> Result<LessSafeKey, CipherError> {
    let algorithm = match key.len() {
        16 => &aead::AES_128_GCM,
        32 => &aead::AES_256_GCM,
        n => {
            return Err(CipherError::Malformed(format!(
                "an AES-GCM key is 16 or 32 bytes, not {n}"
            )))
        }
    };
    let unbound = UnboundKey::new(algorithm, key)
        .map_err(|_| CipherError::Malformed("AES-GCM key rejected".into()))?;
    Ok(LessSafeKey::new(unbound))
}

/// [`seal`] with a prepared key.
pub(crate) fn seal_with(
    key: &LessSafeKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    in_out: &mut Vec<u8>,
) -> Result<(), CipherError> {
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), in_out)
        // ring only refuses inputs beyond GCM's 64 GiB limit.
        .map_err(|_| CipherError::Malformed("plaintext too long for AES-GCM".into()))
}

/// [`open`] with a prepared key.
pub(crate) fn open_with(
    key: &LessSafeKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    in_out: &mut Vec<u8>,
) -> Result<(), CipherError> {
    match key.open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), in_out) {
        Ok(plain) => {
            let len = plain.len();
            in_out.truncate(len);
            Ok(())
        }
        Err(_) => {
            in_out.clear();
            Err(CipherError::Authentication)
        }
    }
}

/// A fresh random nonce from the operating system's CSPRNG.
pub(crate) fn random_nonce() -> Result<[u8; NONCE_LEN], CipherError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| CipherError::Random)?;
    Ok(nonce)
}

/// Encrypts `plaintext` under a fresh random nonce: `nonce || ct || tag`.
/// Used to wrap keys and to encrypt the keystore file.
pub(crate) fn seal_random(
    key: &LessSafeKey,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CipherError> {
    let nonce = random_nonce()?;
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    seal_with(key, &nonce, aad, &mut body)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens the output of [`seal_random`].
pub(crate) fn open_random(
    key: &LessSafeKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, CipherError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CipherError::Authentication);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let mut nonce_bytes = [0u8; NONCE_LEN];
    nonce_bytes.copy_from_slice(nonce);
    let mut body = body.to_vec();
    open_with(key, &nonce_bytes, aad, &mut body)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// NIST GCM test case 16 (AES-256, 60-byte plaintext, 20-byte AAD).
    #[test]
    fn aes_256_gcm_known_answer() {
        let key = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let nonce: [u8; 12] = unhex("cafebabefacedbaddecaf888").try_into().unwrap();
        let aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let pt = unhex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95\
             956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let mut buf = pt.clone();
        seal(&key, &nonce, &aad, &mut buf).unwrap();
        assert_eq!(
            buf,
            unhex(
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48\
                 590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662\
                 76fc6ece0f4e1768cddf8853bb2d551b"
            )
        );
        open(&key, &nonce, &aad, &mut buf).unwrap();
        assert_eq!(buf, pt);
    }

    #[test]
    fn bad_key_length_and_short_input_are_errors() {
        let mut buf = b"x".to_vec();
        assert!(matches!(
            seal(&[0; 24], &[0; 12], b"", &mut buf),
            Err(CipherError::Malformed(_))
        ));
        let mut short = vec![0u8; 15];
        assert_eq!(
            open(&[0; 32], &[0; 12], b"", &mut short),
            Err(CipherError::Authentication)
        );
        assert!(short.is_empty());
    }
}
