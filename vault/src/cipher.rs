//! [`FieldCipher`]: encryption of single values (fields) with the keystore's
//! column and subject keys, and blind indexes for equality lookups.
//!
//! # Ciphertext format
//!
//! ```text
//! pv1.<column key id>.<version>.<subject key id or ->.<nonce>.<ciphertext+tag>
//! ```
//!
//! ASCII only, no quotes or whitespace, so it fits any TEXT column. Key ids
//! are 16 lower-case hex digits (random, so they do not spell out whose data
//! it is), the version is decimal, nonce (12 bytes) and ciphertext+tag are
//! URL-safe base64 without padding. The header (everything before the nonce)
//! says which keys decrypt the value, so old values keep decrypting after a
//! rotation and a re-encryption job can tell which values are not at the
//! current version ([`ciphertext_info`]).
//!
//! AES-256-GCM's associated data binds a domain string, the header, the
//! table, the column and the row key, each length-prefixed so fields cannot
//! be shifted: a value copied to another row, column or table fails
//! authentication instead of decrypting in the wrong place.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use ring::aead::LessSafeKey;
use ring::hmac;

use crate::aead::{self, NONCE_LEN, TAG_LEN};
use crate::util::Secret;

/// The format tag of the current ciphertext version.
const FORMAT_TAG: &str = "pv1";

/// The format version written by this code.
const FORMAT: u32 = 1;

/// Domain separation of the associated data: no other use of a key can
/// produce the same associated data.
const AAD_CONTEXT: &[u8] = b"privet field v1\0";

/// Domain separation of subject-bound field keys.
const SUBJECT_KEY_CONTEXT: &[u8] = b"privet subject field key v1\0";

/// Blind-index length before encoding: 128 bits, like pseudonyms.
const BLIND_INDEX_LEN: usize = 16;

/// Marks a blind index so nobody mistakes it for data or a pseudonym.
const BLIND_INDEX_PREFIX: &str = "bix_";

/// Marks the absence of a subject key in the header.
const NO_SUBJECT: &str = "-";

/// Derived subject-bound keys kept per snapshot. Bounded so a scan over
/// millions of subjects cannot grow memory without limit (an AES-GCM key
/// schedule is well under 1 KiB, so this stays under a few MiB).
const DERIVED_CACHE_MAX: usize = 4096;

/// Refuse longer inputs up front rather than decoding them (1 GiB of TEXT
/// is not a field).
const MAX_CIPHERTEXT_LEN: usize = 1 << 30;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a field could not be encrypted or decrypted.
///
/// Decrypting never gives garbage plaintext: a value that is not exactly
/// what was encrypted, for exactly this place, is an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// The input is not a Privet ciphertext (or an AEAD argument is invalid).
    #[error("not a valid Privet ciphertext: {0}")]
    Malformed(String),
    /// The ciphertext has a format version this code does not know.
    #[error("ciphertext format version {0:?} is not supported by this Privet; upgrade Privet")]
    UnknownFormat(String),
    /// The ciphertext names a key that is not in the keystore.
    #[error(
        "the ciphertext was made with key {key_id}, which is not in this keystore; \
         decrypt it with the keystore (and master key) it was written with"
    )]
    UnknownKey {
        /// The key id in the ciphertext.
        key_id: String,
    },
    /// The ciphertext names a version of a column key that does not exist.
    #[error(
        "key {key_id} has no version {version} in this keystore; was the keystore \
         restored from a backup older than the data?"
    )]
    UnknownVersion {
        /// The column key id.
        key_id: String,
        /// The version asked for.
        version: u32,
    },
    /// The column has no key (it was never set up for encryption).
    #[error(
        "no data key for column {table}.{column}; create the column's key in the \
         keystore before encrypting or indexing its values"
    )]
    UnknownColumn {
        /// The table asked for.
        table: String,
        /// The column asked for.
        column: String,
    },
    /// The data subject has no key.
    #[error("no key for data subject {0:?}; create the subject's key before encrypting its data")]
    UnknownSubject(String),
    /// The data subject's key was destroyed (crypto-shredded): the value can
    /// never be read again. Callers show a marker instead of failing.
    #[error(
        "the data subject's key was destroyed (crypto-shredded); the value can no longer be read"
    )]
    Shredded,
    /// Wrong key, altered or truncated ciphertext, or a ciphertext copied to
    /// another row, column or table.
    #[error(
        "ciphertext failed authentication: wrong key, altered or truncated, or copied \
         from another row, column or table"
    )]
    Authentication,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// HMAC-SHA256 of `msg` under `key` (any length).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(hmac::sign(&key, msg).as_ref());
    out
}

/// Where a field value lives: part of its ciphertext's associated data, so
/// it decrypts only there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The table holding the value.
    pub table: &'a str,
    /// The column holding the value.
    pub column: &'a str,
    /// The row's stable identity (e.g. its primary key, as text).
    pub row_key: &'a str,
}

/// The header of a ciphertext ([`ciphertext_info`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiphertextInfo {
    /// Format version (1 for `pv1`).
    pub format: u32,
    /// Id of the column key that encrypted it.
    pub column_key_id: String,
    /// Version of that column key.
    pub version: u32,
    /// Whether a data subject's key is also needed (crypto-shredding).
    pub subject_bound: bool,
}

/// Whether `s` looks like a Privet ciphertext (`pv<digits>.`): a cheap check
/// of the prefix, not a validation.
pub fn looks_like_ciphertext(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("pv") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (1..=3).contains(&digits) && rest.as_bytes().get(digits) == Some(&b'.')
}

/// Parses a ciphertext's header (format, key id, version, subject binding)
/// without decrypting it, e.g. to find values not at a column's current
/// version.
pub fn ciphertext_info(ciphertext: &str) -> Result<CiphertextInfo, CipherError> {
    let parsed = Parsed::header(ciphertext)?;
    Ok(CiphertextInfo {
        format: FORMAT,
        column_key_id: parsed.column_key_id.to_string(),
        version: parsed.version,
        subject_bound: parsed.subject_key_id.is_some(),
    })
}

/// The parts of a ciphertext, borrowed from it.
struct Parsed<'a> {
    /// Everything before the nonce (bound into the associated data).
    header: &'a str,
    column_key_id: &'a str,
    version: u32,
    subject_key_id: Option<&'a str>,
    nonce: &'a str,
    body: &'a str,
}

impl<'a> Parsed<'a> {
    /// Splits and checks the header; nonce and body are not decoded yet.
    fn header(s: &'a str) -> Result<Parsed<'a>, CipherError> {
        if s.is_empty() {
            return Err(CipherError::Malformed("empty value".into()));
        }
        if s.len() > MAX_CIPHERTEXT_LEN {
            return Err(CipherError::Malformed(format!(
                "too long ({} bytes)",
                s.len()
            )));
        }
        let mut parts = s.split('.');
        let tag = parts.next().unwrap_or_default();
        if tag != FORMAT_TAG {
            return Err(match tag.strip_prefix("pv") {
                Some(v)
                    if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    CipherError::UnknownFormat(v.to_string())
                }
                _ => {
                    CipherError::Malformed("does not start with a Privet format tag (pv1.)".into())
                }
            });
        }
        let (Some(column_key_id), Some(version), Some(subject), Some(nonce), Some(body), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CipherError::Malformed(
                "expected 6 dot-separated parts".into(),
            ));
        };
        if !is_key_id(column_key_id) {
            return Err(CipherError::Malformed("bad column key id".into()));
        }
        let version = parse_version(version)
            .ok_or_else(|| CipherError::Malformed("bad key version".into()))?;
        let subject_key_id = match subject {
            NO_SUBJECT => None,
            id if is_key_id(id) => Some(id),
            _ => return Err(CipherError::Malformed("bad subject key id".into())),
        };
        // The four header parts and their three dots.
        let header_len =
            FORMAT_TAG.len() + column_key_id.len() + version_len(version) + subject.len() + 3;
        Ok(Parsed {
            header: &s[..header_len],
            column_key_id,
            version,
            subject_key_id,
            nonce,
            body,
        })
    }

    /// Decodes the nonce and the ciphertext+tag.
    fn decode(&self) -> Result<([u8; NONCE_LEN], Vec<u8>), CipherError> {
        let mut nonce = [0u8; NONCE_LEN];
        match B64.decode_slice(self.nonce, &mut nonce) {
            Ok(NONCE_LEN) if self.nonce.len() == 16 => {}
            _ => return Err(CipherError::Malformed("bad nonce".into())),
        }
        let body = B64
            .decode(self.body)
            .map_err(|_| CipherError::Malformed("bad base64 in the ciphertext".into()))?;
        if body.len() < TAG_LEN {
            return Err(CipherError::Malformed(
                "ciphertext shorter than its tag".into(),
            ));
        }
        Ok((nonce, body))
    }
}

/// 16 lower-case hex digits.
fn is_key_id(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A canonical positive decimal `u32` (no sign, no leading zero).
fn parse_version(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

/// Number of decimal digits of `v`.
fn version_len(v: u32) -> usize {
    v.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// Appends `part` with its length, so no two different part lists give the
/// same bytes.
fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u64).to_be_bytes());
    out.extend_from_slice(part);
}

/// The associated data of a field ciphertext.
fn associated_data(header: &str, field: &Field<'_>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(
        AAD_CONTEXT.len()
            + 32
            + header.len()
            + field.table.len()
            + field.column.len()
            + field.row_key.len(),
    );
    aad.extend_from_slice(AAD_CONTEXT);
    push_part(&mut aad, header.as_bytes());
    push_part(&mut aad, field.table.as_bytes());
    push_part(&mut aad, field.column.as_bytes());
    push_part(&mut aad, field.row_key.as_bytes());
    aad
}

/// One version of a column's data key, as the keystore hands it over.
pub(crate) struct ColumnVersionKey {
    pub(crate) version: u32,
    pub(crate) key: Secret,
}

/// A column's keys, as the keystore hands them over.
pub(crate) struct ColumnSnapshot {
    pub(crate) table: String,
    pub(crate) column: String,
    pub(crate) id: String,
    pub(crate) versions: Vec<ColumnVersionKey>,
    pub(crate) blind_index_key: Secret,
}

/// A data subject's key (or its tombstone), as the keystore hands it over.
pub(crate) struct SubjectSnapshot {
    pub(crate) name: String,
    pub(crate) id: String,
    /// `None` once shredded.
    pub(crate) key: Option<Secret>,
}

struct ColumnVersion {
    /// Used directly for values not bound to a subject.
    aead: LessSafeKey,
    /// Input to subject-bound key derivation.
    raw: Secret,
}

struct ColumnKeys {
    /// Position in the snapshot, for the derived-key cache.
    index: u32,
    id: String,
    current: u32,
    versions: HashMap<u32, ColumnVersion>,
    blind_index: hmac::Key,
}

/// A subject's key, `None` once shredded.
struct SubjectKey {
    /// Position in the snapshot, for the derived-key cache.
    index: u32,
    id: String,
    hmac: Option<hmac::Key>,
}

struct Inner {
    /// table → column → keys (nested so lookups borrow `&str`s).
    columns: HashMap<String, HashMap<String, ColumnKeys>>,
    /// Ids of all column keys, to tell "another column's key" from "unknown".
    column_ids: HashSet<String>,
    subjects_by_name: HashMap<String, Arc<SubjectKey>>,
    subjects_by_id: HashMap<String, Arc<SubjectKey>>,
    /// (subject index, column index, version) → derived key: deriving costs
    /// an HMAC and an AES key schedule, more than encrypting a field.
    derived: RwLock<HashMap<(u32, u32, u32), Arc<LessSafeKey>>>,
}

/// An immutable snapshot of the keystore's unwrapped keys, for encrypting
/// and decrypting fields. Cheap to clone (one `Arc`), `Send + Sync`; take a
/// new one ([`Keystore::cipher`](crate::Keystore::cipher)) after changing
/// the keystore.
#[derive(Clone)]
pub struct FieldCipher {
    inner: Arc<Inner>,
}

impl FieldCipher {
    /// Prepares the keys (AES key schedules, HMAC states) once, so each field
    /// costs only its own work.
    pub(crate) fn new(columns: Vec<ColumnSnapshot>, subjects: Vec<SubjectSnapshot>) -> FieldCipher {
        let mut inner = Inner {
            columns: HashMap::new(),
            column_ids: HashSet::new(),
            subjects_by_name: HashMap::new(),
            subjects_by_id: HashMap::new(),
            derived: RwLock::new(HashMap::new()),
        };
        for (index, column) in (0u32..).zip(columns) {
            let mut versions = HashMap::new();
            let mut current = 0;
            for v in column.versions {
                // A 32-byte key is always accepted.
                let Ok(aead) = aead::key_for(&v.key.0) else {
                    continue;
                };
                current = current.max(v.version);
                versions.insert(v.version, ColumnVersion { aead, raw: v.key });
            }
            inner.column_ids.insert(column.id.clone());
            inner.columns.entry(column.table).or_default().insert(
                column.column,
                ColumnKeys {
                    index,
                    id: column.id,
                    current,
                    versions,
                    blind_index: hmac::Key::new(hmac::HMAC_SHA256, &column.blind_index_key.0),
                },
            );
        }
        for (index, subject) in (0u32..).zip(subjects) {
            let key = Arc::new(SubjectKey {
                index,
                id: subject.id.clone(),
                hmac: subject.key.map(|k| hmac::Key::new(hmac::HMAC_SHA256, &k.0)),
            });
            inner.subjects_by_id.insert(subject.id, key.clone());
            inner.subjects_by_name.insert(subject.name, key);
        }
        FieldCipher {
            inner: Arc::new(inner),
        }
    }

    fn column(&self, table: &str, column: &str) -> Result<&ColumnKeys, CipherError> {
        self.inner
            .columns
            .get(table)
            .and_then(|t| t.get(column))
            .ok_or_else(|| CipherError::UnknownColumn {
                table: table.to_string(),
                column: column.to_string(),
            })
    }

    /// Encrypts `plaintext` for `field` with AES-256-GCM under a fresh random
    /// 96-bit nonce and the column's current key version.
    ///
    /// With a `subject`, the key is derived from both the column key version
    /// and the subject's key (HMAC-SHA256(subject key, context || column key
    /// id || version || column key)): shredding the subject makes the value
    /// unreadable, and rotating the column still versions it.
    pub fn encrypt(
        &self,
        field: &Field<'_>,
        subject: Option<&str>,
        plaintext: &[u8],
    ) -> Result<String, CipherError> {
        let subject_key = match subject {
            None => None,
            Some(name) => match self.inner.subjects_by_name.get(name) {
                None => return Err(CipherError::UnknownSubject(name.to_string())),
                Some(key) => Some(key.as_ref()),
            },
        };
        self.encrypt_for(field, subject_key, plaintext)
    }

    /// Decrypts a value of `field` and encrypts it again under the column's
    /// current key version, bound to the same subject (if any): what a
    /// re-encryption job does after [`Keystore::rotate_column`](crate::Keystore::rotate_column).
    ///
    /// [`CipherError::Shredded`] if its subject was shredded (nothing can be
    /// re-encrypted; the value stays as it is, unreadable).
    pub fn reencrypt(&self, field: &Field<'_>, ciphertext: &str) -> Result<String, CipherError> {
        let parsed = Parsed::header(ciphertext)?;
        let subject = match parsed.subject_key_id {
            None => None,
            Some(id) => match self.inner.subjects_by_id.get(id) {
                None => {
                    return Err(CipherError::UnknownKey {
                        key_id: id.to_string(),
                    })
                }
                Some(key) => Some(key.clone()),
            },
        };
        let plaintext = self.decrypt(field, ciphertext)?;
        let result = self.encrypt_for(field, subject.as_deref(), &plaintext);
        crate::util::wipe(plaintext);
        result
    }

    /// [`encrypt`](Self::encrypt) with the subject's key already looked up.
    fn encrypt_for(
        &self,
        field: &Field<'_>,
        subject_key: Option<&SubjectKey>,
        plaintext: &[u8],
    ) -> Result<String, CipherError> {
        let column = self.column(field.table, field.column)?;
        let version = column.current;
        let Some(column_version) = column.versions.get(&version) else {
            return Err(CipherError::UnknownVersion {
                key_id: column.id.clone(),
                version,
            });
        };
        let derived;
        let key = match subject_key {
            None => &column_version.aead,
            Some(subject) => {
                derived = self.subject_key(subject, column, version, column_version)?;
                &*derived
            }
        };

        let mut out = String::with_capacity(
            FORMAT_TAG.len() + 16 + 10 + 16 + 4 + 16 + (plaintext.len() + TAG_LEN).div_ceil(3) * 4,
        );
        out.push_str(FORMAT_TAG);
        out.push('.');
        out.push_str(&column.id);
        out.push('.');
        out.push_str(&version.to_string());
        out.push('.');
        out.push_str(subject_key.map_or(NO_SUBJECT, |s| s.id.as_str()));
        let aad = associated_data(&out, field);

        let nonce = aead::random_nonce()?;
        let mut body = Vec::with_capacity(plaintext.len() + TAG_LEN);
        body.extend_from_slice(plaintext);
        aead::seal_with(key, &nonce, &aad, &mut body)?;
        out.push('.');
        B64.encode_string(nonce, &mut out);
        out.push('.');
        B64.encode_string(&body, &mut out);
        Ok(out)
    }

    /// Decrypts a value encrypted for exactly this `field`.
    ///
    /// Errors rather than garbage: [`CipherError::Shredded`] when the
    /// subject's key was destroyed, [`CipherError::Authentication`] for a
    /// wrong key, an altered or truncated value, or a value copied from
    /// another row, column or table.
    pub fn decrypt(&self, field: &Field<'_>, ciphertext: &str) -> Result<Vec<u8>, CipherError> {
        let parsed = Parsed::header(ciphertext)?;
        let column = self.column(field.table, field.column)?;
        if parsed.column_key_id != column.id {
            return Err(if self.inner.column_ids.contains(parsed.column_key_id) {
                // Another column's value, moved here.
                CipherError::Authentication
            } else {
                CipherError::UnknownKey {
                    key_id: parsed.column_key_id.to_string(),
                }
            });
        }
        let Some(column_version) = column.versions.get(&parsed.version) else {
            return Err(CipherError::UnknownVersion {
                key_id: column.id.clone(),
                version: parsed.version,
            });
        };
        let derived;
        let key = match parsed.subject_key_id {
            None => &column_version.aead,
            Some(id) => {
                let Some(subject) = self.inner.subjects_by_id.get(id) else {
                    return Err(CipherError::UnknownKey {
                        key_id: id.to_string(),
                    });
                };
                derived = self.subject_key(subject, column, parsed.version, column_version)?;
                &*derived
            }
        };
        let (nonce, mut body) = parsed.decode()?;
        let aad = associated_data(parsed.header, field);
        aead::open_with(key, &nonce, &aad, &mut body)?;
        Ok(body)
    }

    /// The key of a subject-bound value, from the cache or derived.
    fn subject_key(
        &self,
        subject: &SubjectKey,
        column: &ColumnKeys,
        version: u32,
        column_version: &ColumnVersion,
    ) -> Result<Arc<LessSafeKey>, CipherError> {
        if subject.hmac.is_none() {
            return Err(CipherError::Shredded);
        }
        let slot = (subject.index, column.index, version);
        // A poisoned lock only means another thread panicked mid-insert; the
        // map is still valid, so keep using it.
        if let Some(key) = self
            .inner
            .derived
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&slot)
        {
            return Ok(key.clone());
        }
        let key = Arc::new(derive_subject_key(
            subject,
            &column.id,
            version,
            column_version,
        )?);
        let mut cache = self
            .inner
            .derived
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if cache.len() >= DERIVED_CACHE_MAX {
            cache.clear();
        }
        cache.insert(slot, key.clone());
        Ok(key)
    }

    /// The column's current key version (the one new values get), or `None`
    /// if the column has no key.
    pub fn current_version(&self, table: &str, column: &str) -> Option<u32> {
        self.column(table, column).ok().map(|c| c.current)
    }

    /// The blind index of `value`: `"bix_"` + URL-safe base64 (no padding)
    /// of the first 16 bytes of HMAC-SHA256(column's blind-index key,
    /// `value`).
    ///
    /// Deterministic, so equal values give equal indexes (equality lookups
    /// on encrypted columns); the blind-index key is not rotated with the
    /// column's data key, so indexes stay valid across rotations.
    pub fn blind_index(
        &self,
        table: &str,
        column: &str,
        value: &[u8],
    ) -> Result<String, CipherError> {
        let column = self.column(table, column)?;
        let mac = hmac::sign(&column.blind_index, value);
        let mut out = String::with_capacity(BLIND_INDEX_PREFIX.len() + 22);
        out.push_str(BLIND_INDEX_PREFIX);
        B64.encode_string(&mac.as_ref()[..BLIND_INDEX_LEN], &mut out);
        Ok(out)
    }
}

/// The AES-256-GCM key for a subject-bound value:
/// HMAC-SHA256(subject key, context || column key id || version || column
/// key version's bytes).
fn derive_subject_key(
    subject: &SubjectKey,
    column_id: &str,
    version: u32,
    column_version: &ColumnVersion,
) -> Result<LessSafeKey, CipherError> {
    let Some(hmac_key) = &subject.hmac else {
        return Err(CipherError::Shredded);
    };
    let mut ctx = hmac::Context::with_key(hmac_key);
    ctx.update(SUBJECT_KEY_CONTEXT);
    ctx.update(column_id.as_bytes());
    ctx.update(&version.to_be_bytes());
    ctx.update(&column_version.raw.0);
    let tag = ctx.sign();
    aead::key_for(tag.as_ref())
}

impl fmt::Debug for FieldCipher {
    /// Counts only: key material never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldCipher")
            .field("columns", &self.inner.column_ids.len())
            .field("subjects", &self.inner.subjects_by_id.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> FieldCipher {
        let column = |table: &str, column: &str, id: &str, seed: u8| ColumnSnapshot {
            table: table.into(),
            column: column.into(),
            id: id.into(),
            versions: vec![
                ColumnVersionKey {
                    version: 1,
                    key: Secret([seed; 32]),
                },
                ColumnVersionKey {
                    version: 2,
                    key: Secret([seed + 1; 32]),
                },
            ],
            blind_index_key: Secret([seed + 2; 32]),
        };
        FieldCipher::new(
            vec![
                column("customers", "email", "00000000000000e1", 10),
                column("customers", "phone", "00000000000000e2", 20),
            ],
            vec![
                SubjectSnapshot {
                    name: "customer:1".into(),
                    id: "00000000000000a1".into(),
                    key: Some(Secret([1; 32])),
                },
                SubjectSnapshot {
                    name: "customer:2".into(),
                    id: "00000000000000a2".into(),
                    key: None,
                },
                SubjectSnapshot {
                    name: "customer:3".into(),
                    id: "00000000000000a3".into(),
                    key: Some(Secret([3; 32])),
                },
            ],
        )
    }

    const FIELD: Field<'static> = Field {
        table: "customers",
        column: "email",
        row_key: "1",
    };

    #[test]
    fn format_and_header() {
        let c = cipher();
        assert_eq!(c.current_version("customers", "email"), Some(2));
        assert_eq!(c.current_version("customers", "nope"), None);
        let ct = c
            .encrypt(&FIELD, Some("customer:1"), b"jane@example.com")
            .unwrap();
        assert!(
            ct.starts_with("pv1.00000000000000e1.2.00000000000000a1."),
            "{ct}"
        );
        assert!(ct
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'\'' && b != b'"'));
        assert!(looks_like_ciphertext(&ct));
        assert_eq!(
            ciphertext_info(&ct).unwrap(),
            CiphertextInfo {
                format: 1,
                column_key_id: "00000000000000e1".into(),
                version: 2,
                subject_bound: true
            }
        );
        assert_eq!(c.decrypt(&FIELD, &ct).unwrap(), b"jane@example.com");
        let plain = c.encrypt(&FIELD, None, b"").unwrap();
        assert!(plain.starts_with("pv1.00000000000000e1.2.-."), "{plain}");
        assert_eq!(c.decrypt(&FIELD, &plain).unwrap(), b"");
        // Fresh nonce each time.
        assert_ne!(plain, c.encrypt(&FIELD, None, b"").unwrap());
    }

    #[test]
    fn errors_for_unknown_things() {
        let c = cipher();
        assert_eq!(
            c.encrypt(&FIELD, Some("customer:9"), b"x"),
            Err(CipherError::UnknownSubject("customer:9".into()))
        );
        assert_eq!(
            c.encrypt(&FIELD, Some("customer:2"), b"x"),
            Err(CipherError::Shredded)
        );
        let other = Field {
            column: "nope",
            ..FIELD
        };
        assert!(matches!(
            c.encrypt(&other, None, b"x"),
            Err(CipherError::UnknownColumn { .. })
        ));
        assert!(matches!(
            c.blind_index("x", "y", b"x"),
            Err(CipherError::UnknownColumn { .. })
        ));
        let ct = c.encrypt(&FIELD, None, b"x").unwrap();
        let foreign = ct.replace("00000000000000e1", "00000000000000ff");
        assert_eq!(
            c.decrypt(&FIELD, &foreign),
            Err(CipherError::UnknownKey {
                key_id: "00000000000000ff".into()
            })
        );
        let v9 = ct.replacen(".2.", ".9.", 1);
        assert!(matches!(
            c.decrypt(&FIELD, &v9),
            Err(CipherError::UnknownVersion { version: 9, .. })
        ));
        let v2 = ct.replacen("pv1.", "pv2.", 1);
        assert_eq!(
            c.decrypt(&FIELD, &v2),
            Err(CipherError::UnknownFormat("2".into()))
        );
        assert!(looks_like_ciphertext(&v2));
        for bad in [
            "",
            "pv1",
            "pv1.",
            "hello",
            "pv1.a.b.c.d.e",
            "pv1.00000000000000e1.02.-.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(
                matches!(c.decrypt(&FIELD, bad), Err(CipherError::Malformed(_))),
                "{bad}"
            );
            assert!(!bad.starts_with("pv1.") || ciphertext_info(bad).is_err());
        }
        assert!(
            !looks_like_ciphertext("pv.x")
                && !looks_like_ciphertext("hello")
                && !looks_like_ciphertext("pv1")
        );
    }

    #[test]
    fn subject_keys_are_distinct_and_cached_per_subject_and_version() {
        let c = cipher();
        for _ in 0..3 {
            let ct = c.encrypt(&FIELD, Some("customer:1"), b"v").unwrap();
            assert_eq!(c.decrypt(&FIELD, &ct).unwrap(), b"v");
            // Relabelled as another subject's value: that key does not open it.
            let moved = ct.replace("00000000000000a1", "00000000000000a3");
            assert_eq!(c.decrypt(&FIELD, &moved), Err(CipherError::Authentication));
            let shredded = ct.replace("00000000000000a1", "00000000000000a2");
            assert_eq!(c.decrypt(&FIELD, &shredded), Err(CipherError::Shredded));
            // Relabelled as version 1 of the column: another derived key.
            let v1 = ct.replacen(".2.", ".1.", 1);
            assert_eq!(c.decrypt(&FIELD, &v1), Err(CipherError::Authentication));
            let unbound = ct.replace("00000000000000a1", "-");
            assert_eq!(
                c.decrypt(&FIELD, &unbound),
                Err(CipherError::Authentication)
            );
        }
    }

    #[test]
    fn blind_index_format() {
        let c = cipher();
        let a = c
            .blind_index("customers", "email", b"jane@example.com")
            .unwrap();
        assert_eq!(
            a,
            c.blind_index("customers", "email", b"jane@example.com")
                .unwrap()
        );
        assert_ne!(
            a,
            c.blind_index("customers", "phone", b"jane@example.com")
                .unwrap()
        );
        assert_ne!(
            a,
            c.blind_index("customers", "email", b"john@example.com")
                .unwrap()
        );
        let encoded = a.strip_prefix("bix_").unwrap();
        assert_eq!(
            B64.decode(encoded).unwrap(),
            hmac_sha256(&[12; 32], b"jane@example.com")[..16]
        );
    }

    #[test]
    fn every_altered_or_truncated_ciphertext_is_rejected() {
        let c = cipher();
        for subject in [None, Some("customer:1")] {
            let ct = c.encrypt(&FIELD, subject, b"0123456789abcdef").unwrap();
            let bytes = ct.as_bytes();
            for len in 0..bytes.len() {
                let truncated = String::from_utf8_lossy(&bytes[..len]);
                assert!(c.decrypt(&FIELD, &truncated).is_err(), "truncated to {len}");
            }
            for i in 0..bytes.len() {
                for flip in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80] {
                    let mut altered = bytes.to_vec();
                    altered[i] ^= flip;
                    // Non-UTF-8 bytes are not valid &str; lossy conversion still alters it.
                    let altered = String::from_utf8_lossy(&altered);
                    assert!(c.decrypt(&FIELD, &altered).is_err(), "byte {i} ^ {flip:#x}");
                }
            }
            let mut extended = ct.clone();
            extended.push('A');
            assert!(c.decrypt(&FIELD, &extended).is_err());
            assert!(c.decrypt(&FIELD, &format!("{ct}.")).is_err());
        }
        let huge = format!(
            "pv1.00000000000000e1.1.-.AAAAAAAAAAAAAAAA.{}",
            "A".repeat(4 << 20)
        );
        assert!(c.decrypt(&FIELD, &huge).is_err());
    }
}
