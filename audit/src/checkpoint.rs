//! Signed checkpoints (tree heads), the Ed25519 key that signs them, and
//! the files both live in.
//!
//! * `audit-signing-key.p8`: the private key, PKCS#8 v2 DER as ring makes
//!   it, mode 0600. Created on the first open; a key that group or others can
//!   read is refused, since whoever reads it can forge checkpoints.
//! * `audit-public-key.pem`: the public key for auditors, a standard
//!   `-----BEGIN PUBLIC KEY-----` SubjectPublicKeyInfo (RFC 8410), rewritten
//!   from the private key on every open.
//! * `checkpoints.jsonl`: one [`SignedCheckpoint`] JSON object per line,
//!   appended and fsync'ed. A final line without its newline is a torn write
//!   and is cut on open; any other bad line makes the log refuse to open.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};

use crate::error::LogError;
use crate::merkle::Hash;

/// File name of the private signing key inside the log directory.
pub const SIGNING_KEY_FILE: &str = "audit-signing-key.p8";
/// File name of the public key (PEM) inside the log directory.
pub const PUBLIC_KEY_FILE: &str = "audit-public-key.pem";
/// File name of the checkpoints file inside the log directory.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";

/// First line of every signed message: names the format so a signature
/// over a checkpoint can never be replayed as a signature over anything
/// else.
const CHECKPOINT_CONTEXT: &str = "privet-audit-checkpoint/v1";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE {
/// SEQUENCE { OID 1.3.101.112 }, BIT STRING (0 unused bits) }, followed by
/// the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

const PEM_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const PEM_END: &str = "-----END PUBLIC KEY-----";

/// A PKCS#8 Ed25519 key is 83 bytes; anything far larger is not a key file.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// An Ed25519 public key: verifies [`SignedCheckpoint`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl PublicKey {
    /// The key with these raw 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> PublicKey {
        PublicKey(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The raw bytes in standard base64 (44 characters).
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// The key as a PEM SubjectPublicKeyInfo (`openssl pkey -pubin` reads it).
    pub fn to_pem(&self) -> String {
        let mut der = Vec::with_capacity(44);
        der.extend_from_slice(&ED25519_SPKI_PREFIX);
        der.extend_from_slice(&self.0);
        format!("{PEM_BEGIN}\n{}\n{PEM_END}\n", B64.encode(der))
    }

    /// Parses what [`PublicKey::to_pem`] writes (any line wrapping), or
    /// `None` when it is not an Ed25519 public key.
    pub fn from_pem(pem: &str) -> Option<PublicKey> {
        let start = pem.find(PEM_BEGIN)? + PEM_BEGIN.len();
        let end = start + pem[start..].find(PEM_END)?;
        let body: String = pem[start..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = B64.decode(body).ok()?;
        let key = der.strip_prefix(&ED25519_SPKI_PREFIX[..])?;
        Some(PublicKey(key.try_into().ok()?))
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

/// A signed tree head: the log had `size` events with Merkle root `root`
/// at `time_us`, signed with the log's Ed25519 key.
///
/// Serialized as one JSON object with `root` and `signature` in standard
/// base64: `{"size":3,"root":"…","time_us":…,"signature":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    /// Number of events covered (the tree size).
    pub size: u64,
    /// Merkle tree hash (RFC 6962 MTH) of the first `size` events.
    #[serde(with = "b64_hash")]
    pub root: Hash,
    /// When it was signed, microseconds since the Unix epoch.
    pub time_us: i64,
    /// Ed25519 signature of [`SignedCheckpoint::signed_message`].
    #[serde(with = "b64_bytes")]
    pub signature: Vec<u8>,
}

impl SignedCheckpoint {
    /// The exact bytes signed: four newline-terminated lines,
    /// `privet-audit-checkpoint/v1`, the size in decimal, the root in
    /// standard base64, and the time in decimal microseconds.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(self.size, &self.root, self.time_us)
    }

    /// Whether the signature is valid for `key`.
    pub fn verify(&self, key: &PublicKey) -> bool {
        key.verify(&self.signed_message(), &self.signature)
    }

    /// Signs a tree head with `signer`.
    pub(crate) fn sign(signer: &Ed25519KeyPair, size: u64, root: Hash, time_us: i64) -> Self {
        let signature = signer
            .sign(&signed_message(size, &root, time_us))
            .as_ref()
            .to_vec();
        SignedCheckpoint {
            size,
            root,
            time_us,
            signature,
        }
    }
}

fn signed_message(size: u64, root: &Hash, time_us: i64) -> Vec<u8> {
    format!(
        "{CHECKPOINT_CONTEXT}\n{size}\n{}\n{time_us}\n",
        B64.encode(root)
    )
    .into_bytes()
}

mod b64_hash {
    use super::*;

    pub fn serialize<S: serde::Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(h))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = B64.decode(text).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a root hash is 32 bytes"))
    }
}

mod b64_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(b))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text).map_err(serde::de::Error::custom)
    }
}

/// fsync of a directory, so a file created or renamed in it survives a
/// crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(dir, e))
}

/// Loads the signing key from `dir`, creating it on first use. Returns the
/// key and whether it was created.
pub(crate) fn load_or_create_signing_key(dir: &Path) -> Result<(Ed25519KeyPair, bool), LogError> {
    let path = dir.join(SIGNING_KEY_FILE);
    match File::open(&path) {
        Ok(file) => Ok((load_signing_key(&path, file)?, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| LogError::Random)?;
            // Written under a temporary name and renamed: a crash leaves
            // either no key or the whole key, never half of one.
            let tmp = dir.join(format!("{SIGNING_KEY_FILE}.tmp"));
            let _ = fs::remove_file(&tmp);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| LogError::io(&tmp, e))?;
            file.write_all(pkcs8.as_ref())
                .and_then(|()| file.sync_all())
                .map_err(|e| LogError::io(&tmp, e))?;
            fs::rename(&tmp, &path).map_err(|e| LogError::io(&path, e))?;
            sync_dir(dir)?;
            let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| LogError::BadKey {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            Ok((key, true))
        }
        Err(e) => Err(LogError::io(&path, e)),
    }
}

fn load_signing_key(path: &Path, file: File) -> Result<Ed25519KeyPair, LogError> {
    // Checked on the opened file, not the path, so the file checked is the
    // file read.
    let meta = file.metadata().map_err(|e| LogError::io(path, e))?;
    if !meta.is_file() {
        return Err(LogError::BadKey {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(LogError::InsecureKey {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| LogError::io(path, e))?;
    Ed25519KeyPair::from_pkcs8(&bytes).map_err(|e| LogError::BadKey {
        path: path.to_path_buf(),
        reason: format!("not an Ed25519 PKCS#8 v2 key ({e})"),
    })
}

/// The public half of a signing key.
pub(crate) fn public_key_of(signer: &Ed25519KeyPair) -> PublicKey {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(signer.public_key().as_ref());
    PublicKey(bytes)
}

/// Writes `dir/audit-public-key.pem` unless it already holds this key.
pub(crate) fn write_public_key(dir: &Path, key: &PublicKey) -> Result<(), LogError> {
    let path = dir.join(PUBLIC_KEY_FILE);
    let pem = key.to_pem();
    if fs::read_to_string(&path).ok().as_deref() == Some(pem.as_str()) {
        return Ok(());
    }
    let tmp = dir.join(format!("{PUBLIC_KEY_FILE}.tmp"));
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| LogError::io(&path, e))?;
    sync_dir(dir)
}

/// Reads the public key file of a log directory.
pub(crate) fn read_public_key(dir: &Path) -> Result<PublicKey, LogError> {
    let path = dir.join(PUBLIC_KEY_FILE);
    let text = fs::read_to_string(&path).map_err(|e| LogError::io(&path, e))?;
    PublicKey::from_pem(&text).ok_or_else(|| LogError::BadKey {
        path,
        reason: "not an Ed25519 public key in PEM".into(),
    })
}

/// The checkpoints parsed from a checkpoints file.
#[derive(Debug)]
pub(crate) struct ParsedCheckpoints {
    /// In file order.
    pub checkpoints: Vec<SignedCheckpoint>,
    /// Length of the part that ends with the last complete line.
    pub complete_len: u64,
    /// Bytes after it: a torn final line.
    pub torn_bytes: u64,
}

/// Parses a checkpoints file: one JSON object per line; a final line
/// without a newline is a torn write and is reported, not parsed. Errors
/// name the bad line (1-based) and the index of the checkpoint.
pub(crate) fn parse_checkpoints(bytes: &[u8]) -> Result<ParsedCheckpoints, String> {
    let complete_len = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut checkpoints = Vec::new();
    for (i, line) in bytes[..complete_len]
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
    {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let cp: SignedCheckpoint = serde_json::from_slice(line).map_err(|e| {
            format!(
                "checkpoints file line {} (checkpoint #{i}) is not a checkpoint: {e}",
                i + 1
            )
        })?;
        checkpoints.push(cp);
    }
    Ok(ParsedCheckpoints {
        checkpoints,
        complete_len: complete_len as u64,
        torn_bytes: (bytes.len() - complete_len) as u64,
    })
}

/// Checks signatures and that sizes never decrease; the error names the
/// checkpoint.
pub(crate) fn check_checkpoint_chain(
    checkpoints: &[SignedCheckpoint],
    key: &PublicKey,
) -> Result<(), String> {
    let mut prev: Option<&SignedCheckpoint> = None;
    for (i, cp) in checkpoints.iter().enumerate() {
        if !cp.verify(key) {
            return Err(format!(
                "checkpoint #{i} (line {}, size {}) has a signature that does not verify with \
                 the log's public key (edited, or signed with another key)",
                i + 1,
                cp.size
            ));
        }
        if let Some(p) = prev {
            if cp.size < p.size {
                return Err(format!(
                    "checkpoint #{i} (line {}) has size {}, smaller than the {} of the checkpoint \
                     before it: the log cannot shrink",
                    i + 1,
                    cp.size,
                    p.size
                ));
            }
        }
        prev = Some(cp);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_and_rejects_garbage() {
        let key = PublicKey::from_bytes([7u8; 32]);
        let pem = key.to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"));
        assert_eq!(PublicKey::from_pem(&pem), Some(key));
        assert_eq!(PublicKey::from_pem("nothing"), None);
        assert_eq!(
            PublicKey::from_pem(&pem.replace("MCowBQYDK2VwAyEA", "MCowBQYDK2VxAyEA")),
            None
        );
    }

    #[test]
    fn checkpoint_signs_verifies_and_serializes() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let signer = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let key = public_key_of(&signer);
        let cp = SignedCheckpoint::sign(&signer, 3, [1u8; 32], 42);
        assert!(cp.verify(&key));
        assert_eq!(
            cp.signed_message(),
            format!(
                "privet-audit-checkpoint/v1\n3\n{}\n42\n",
                B64.encode([1u8; 32])
            )
            .into_bytes()
        );
        let json = serde_json::to_string(&cp).unwrap();
        let back: SignedCheckpoint = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cp);
        let mut edited = cp.clone();
        edited.size = 4;
        assert!(!edited.verify(&key));
    }

    #[test]
    fn torn_final_line_is_reported_not_parsed() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let signer = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let line =
            serde_json::to_string(&SignedCheckpoint::sign(&signer, 1, [2u8; 32], 5)).unwrap();
        let mut file = format!("{line}\n{line}\n").into_bytes();
        let complete = file.len();
        file.extend_from_slice(&line.as_bytes()[..10]);
        let parsed = parse_checkpoints(&file).unwrap();
        assert_eq!(parsed.checkpoints.len(), 2);
        assert_eq!(parsed.complete_len, complete as u64);
        assert_eq!(parsed.torn_bytes, 10);
        let bad = format!("{line}\n{{\"size\":1}}\n{line}\n");
        assert!(parse_checkpoints(bad.as_bytes())
            .unwrap_err()
            .contains("line 2"));
    }
}
