//! [`Keystore`]: the key hierarchy below the master key, kept in one
//! encrypted file.
//!
//! ```text
//! master key (PRIVET_MASTER_KEY or a 0600 file; never stored here)
//! ├── encrypts and authenticates the whole keystore file
//! └── wraps the key-encryption keys (KEKs, versioned)
//!     └── the current KEK wraps every data key:
//!         ├── one data key per classified column (versioned: rotation adds
//!         │   a version, old versions keep decrypting)
//!         ├── one blind-index key per column (not rotated with the column,
//!         │   so equality lookups keep working)
//!         ├── one key per data subject ("customer:42"), destroyed when the
//!         │   subject is shredded (a tombstone stays)
//!         └── the pseudonym TokenKey
//! ```
//!
//! # File format
//!
//! `PRIVETKS` (8 bytes), format version (u32 big-endian), the master key's
//! id (16 ASCII hex digits), then AES-256-GCM under a key derived from the
//! master key: a 12-byte random nonce, the encrypted JSON document and the
//! 16-byte tag. The first 28 bytes are the associated data. Inside the JSON
//! every key is additionally wrapped (AES-256-GCM, random nonce, associated
//! data naming the key's kind, id and version) by the current KEK, and the
//! KEKs by the master key.
//!
//! Saving writes `<path>.tmp`, syncs it, renames it over `<path>` and syncs
//! the directory, so a crash leaves the old or the new keystore.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use ring::aead::LessSafeKey;
use serde::{Deserialize, Serialize};

use crate::aead::{self, NONCE_LEN, TAG_LEN};
use crate::cipher::{ColumnSnapshot, ColumnVersionKey, FieldCipher, SubjectSnapshot};
use crate::error::VaultError;
use crate::files::{replace_atomically, sync_parent, temp_path, with_suffix, write_new_file};
use crate::master::MasterKey;
use crate::tokens::TokenKey;
use crate::util::{now_rfc3339, random_id, wipe, Secret};

/// First bytes of every keystore file.
const MAGIC: &[u8; 8] = b"PRIVETKS";

/// The file format version written by this code.
const FORMAT_VERSION: u32 = 1;

/// Magic + format version + master key id.
const HEADER_LEN: usize = 8 + 4 + 16;

/// Purposes of the master key's subkeys.
const FILE_KEY_PURPOSE: &[u8] = b"privet keystore file key v1";
const KEK_WRAP_PURPOSE: &[u8] = b"privet kek wrap key v1";

/// Associated-data contexts of the two kinds of wrapping.
const KEK_WRAP_CONTEXT: &[u8] = b"privet kek wrap v1\0";
const DATA_KEY_WRAP_CONTEXT: &[u8] = b"privet data key wrap v1\0";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// A key-encryption key: wraps the data keys.
    Kek,
    /// A column's data key (encrypts its values).
    Column,
    /// A column's blind-index key (equality lookups).
    BlindIndex,
    /// A data subject's key (crypto-shredding).
    Subject,
    /// The pseudonym key.
    Token,
}

impl KeyKind {
    /// A short lower-case name (`"kek"`, `"column"`, `"blind-index"`,
    /// `"subject"`, `"token"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyKind::Kek => "kek",
            KeyKind::Column => "column",
            KeyKind::BlindIndex => "blind-index",
            KeyKind::Subject => "subject",
            KeyKind::Token => "token",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyState {
    /// Used for new data.
    Active,
    /// Superseded by a newer version: still decrypts (column keys) or kept
    /// for the record only (KEKs, whose material is dropped).
    Retired,
    /// Destroyed: what it protected can no longer be read.
    Shredded,
}

impl KeyState {
    /// `"active"`, `"retired"` or `"shredded"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Shredded => "shredded",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One version of a key, as listed by [`Keystore::list`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyVersionInfo {
    /// Version number, from 1.
    pub version: u32,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// Whether it is in use, superseded or destroyed.
    pub state: KeyState,
}

/// A key's metadata, as listed by [`Keystore::list`]: never key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// What the key is for.
    pub kind: KeyKind,
    /// `table.column`, the subject's name, `"kek"` or `"pseudonyms"`.
    pub name: String,
    /// The key's public id (16 hex digits; appears in ciphertexts).
    pub id: String,
    /// Its versions, oldest first.
    pub versions: Vec<KeyVersionInfo>,
    /// What it protects, for people.
    pub protects: String,
}

/// What [`Keystore::shred_subject`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShredOutcome {
    /// The subject's key was destroyed now.
    Shredded,
    /// It had been destroyed before; nothing changed.
    AlreadyShredded,
}

/// The exclusive advisory lock of a keystore ([`Keystore::lock`]), released
/// when dropped.
#[derive(Debug)]
pub struct KeystoreLock {
    // Closing the file releases the lock.
    _file: File,
    path: PathBuf,
}

impl KeystoreLock {
    /// The lock file (`<keystore>.lock`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A key-encryption key version. Only the current one keeps its material:
/// older ones wrap nothing once the keystore is saved.
struct Kek {
    version: u32,
    created: String,
    key: Option<Secret>,
}

struct ColumnVersion {
    version: u32,
    created: String,
    key: Secret,
}

struct ColumnKeys {
    id: String,
    versions: Vec<ColumnVersion>,
    blind_index_id: String,
    blind_index_created: String,
    blind_index_key: Secret,
}

struct SubjectKeys {
    id: String,
    created: String,
    /// `None` once shredded.
    key: Option<Secret>,
    shredded: Option<String>,
}

/// The key hierarchy below the master key (see the module docs), unwrapped
/// in memory. Changes are kept in memory until [`save`](Self::save).
///
/// Writers (the server at start-up, key commands) should hold
/// [`Keystore::lock`] from opening to saving, so that concurrent
/// read-modify-save cycles do not lose each other's keys.
pub struct Keystore {
    path: PathBuf,
    master_id: String,
    file_key: LessSafeKey,
    kek_wrap_key: LessSafeKey,
    kek_id: String,
    /// Oldest first; the last is current and always has material.
    keks: Vec<Kek>,
    token: Arc<TokenKey>,
    token_created: String,
    columns: BTreeMap<(String, String), ColumnKeys>,
    subjects: BTreeMap<String, SubjectKeys>,
}

// ---- The JSON document inside the encrypted file. ----

#[derive(Serialize, Deserialize)]
struct Doc {
    kek_id: String,
    keks: Vec<KekDoc>,
    token: TokenDoc,
    columns: Vec<ColumnDoc>,
    subjects: Vec<SubjectDoc>,
}

#[derive(Serialize, Deserialize)]
struct KekDoc {
    version: u32,
    created: String,
    /// Wrapped by the master key; absent for retired KEKs.
    wrapped: Option<String>,
}

/// A data key wrapped by KEK version `kek`.
#[derive(Serialize, Deserialize)]
struct WrappedDoc {
    kek: u32,
    wrapped: String,
}

#[derive(Serialize, Deserialize)]
struct TokenDoc {
    /// The key's own id (derived from the key), bound into the wrapping.
    id: String,
    created: String,
    key: WrappedDoc,
}

#[derive(Serialize, Deserialize)]
struct ColumnDoc {
    table: String,
    column: String,
    id: String,
    versions: Vec<ColumnVersionDoc>,
    blind_index: BlindIndexDoc,
}

#[derive(Serialize, Deserialize)]
struct ColumnVersionDoc {
    version: u32,
    created: String,
    key: WrappedDoc,
}

#[derive(Serialize, Deserialize)]
struct BlindIndexDoc {
    id: String,
    created: String,
    key: WrappedDoc,
}

#[derive(Serialize, Deserialize)]
struct SubjectDoc {
    name: String,
    id: String,
    created: String,
    /// Absent once shredded.
    key: Option<WrappedDoc>,
    /// When it was shredded (the tombstone).
    shredded: Option<String>,
}

/// Associated data of a wrapped data key: binds it to its slot, so wrapped
/// keys cannot be swapped between columns, versions or subjects.
fn data_key_aad(kind: KeyKind, id: &str, version: u32, kek_version: u32) -> Vec<u8> {
    let mut aad = DATA_KEY_WRAP_CONTEXT.to_vec();
    for part in [kind.as_str().as_bytes(), id.as_bytes()] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(&kek_version.to_be_bytes());
    aad
}

fn kek_aad(kek_id: &str, version: u32) -> Vec<u8> {
    let mut aad = KEK_WRAP_CONTEXT.to_vec();
    aad.extend_from_slice(&(kek_id.len() as u64).to_be_bytes());
    aad.extend_from_slice(kek_id.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn check_name(what: &'static str, name: &str) -> Result<(), VaultError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.contains('\0') {
        "it contains a NUL character"
    } else {
        return Ok(());
    };
    Err(VaultError::InvalidName {
        what,
        name: name.to_string(),
        reason,
    })
}

impl Keystore {
    /// The keystore's usual file name.
    pub const FILE_NAME: &'static str = "keystore.pvk";

    /// Creates a keystore at `path` with KEK version 1 and a fresh pseudonym
    /// key, and saves it. Never replaces an existing file
    /// ([`VaultError::AlreadyExists`]), even when two processes race.
    pub fn create(path: &Path, master: &MasterKey) -> Result<Keystore, VaultError> {
        let created = now_rfc3339();
        let store = Keystore {
            path: path.to_path_buf(),
            master_id: master.id(),
            file_key: subkey_aead(master, FILE_KEY_PURPOSE)?,
            kek_wrap_key: subkey_aead(master, KEK_WRAP_PURPOSE)?,
            kek_id: random_id()?,
            keks: vec![Kek {
                version: 1,
                created: created.clone(),
                key: Some(Secret::random()?),
            }],
            token: Arc::new(TokenKey::generate()?),
            token_created: created,
            columns: BTreeMap::new(),
            subjects: BTreeMap::new(),
        };
        if path.exists() {
            return Err(VaultError::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        // Written under a unique name and linked into place: linking never
        // replaces a file, so a concurrent creator cannot be overwritten.
        let bytes = store.encode()?;
        let tmp = temp_path(path)?;
        let linked = write_new_file(&tmp, &bytes).and_then(|()| fs::hard_link(&tmp, path));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => sync_parent(path)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(VaultError::AlreadyExists {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(VaultError::io(path, e)),
        }
        Ok(store)
    }

    /// Opens the keystore at `path` with `master`.
    ///
    /// [`VaultError::WrongMasterKey`] if it was written with another master
    /// key, [`VaultError::CorruptKeystore`] if it is damaged or altered. A
    /// leftover `<path>.tmp` from an interrupted save is ignored.
    pub fn open(path: &Path, master: &MasterKey) -> Result<Keystore, VaultError> {
        let bytes = fs::read(path).map_err(|e| VaultError::io(path, e))?;
        Keystore::decode(path, master, &bytes)
    }

    /// Opens the keystore, or creates it if the file does not exist. The
    /// flag says whether it was created.
    pub fn open_or_create(path: &Path, master: &MasterKey) -> Result<(Keystore, bool), VaultError> {
        match Keystore::open(path, master) {
            Err(VaultError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            opened => return opened.map(|k| (k, false)),
        }
        match Keystore::create(path, master) {
            Ok(store) => Ok((store, true)),
            // Another process created it in between: use theirs.
            Err(VaultError::AlreadyExists { .. }) => {
                Keystore::open(path, master).map(|k| (k, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the exclusive advisory lock of the keystore at `path` (on
    /// `<path>.lock`, created 0600 if needed), waiting until it is free.
    ///
    /// Writers hold it from [`open`](Self::open) to [`save`](Self::save);
    /// readers need not, since saves are atomic.
    pub fn lock(path: &Path) -> Result<KeystoreLock, VaultError> {
        let (file, lock_path) = open_lock_file(path)?;
        file.lock().map_err(|e| VaultError::io(&lock_path, e))?;
        Ok(KeystoreLock {
            _file: file,
            path: lock_path,
        })
    }

    /// Like [`lock`](Self::lock), but returns `None` instead of waiting when
    /// another process (or handle) holds the lock.
    pub fn try_lock(path: &Path) -> Result<Option<KeystoreLock>, VaultError> {
        let (file, lock_path) = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(KeystoreLock {
                _file: file,
                path: lock_path,
            })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(VaultError::io(&lock_path, e)),
        }
    }

    /// Writes the keystore atomically (see the module docs), every data key
    /// wrapped by the current KEK.
    pub fn save(&self) -> Result<(), VaultError> {
        let bytes = self.encode()?;
        replace_atomically(&self.path, &bytes)
    }

    /// The keystore's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pseudonym key.
    pub fn token_key(&self) -> Arc<TokenKey> {
        self.token.clone()
    }

    /// Replaces the pseudonym key with `key`, e.g. when migrating an existing
    /// `token.key` file, so pseudonyms stay the same.
    pub fn import_token_key(&mut self, key: &TokenKey) {
        self.token = Arc::new(TokenKey::from_bytes(&key.to_bytes()));
        self.token_created = now_rfc3339();
    }

    /// Makes sure `table.column` has a data key (version 1 if new) and a
    /// blind-index key. Returns whether they were created.
    pub fn ensure_column(&mut self, table: &str, column: &str) -> Result<bool, VaultError> {
        check_name("table name", table)?;
        check_name("column name", column)?;
        let key = (table.to_string(), column.to_string());
        if self.columns.contains_key(&key) {
            return Ok(false);
        }
        let created = now_rfc3339();
        self.columns.insert(
            key,
            ColumnKeys {
                id: random_id()?,
                versions: vec![ColumnVersion {
                    version: 1,
                    created: created.clone(),
                    key: Secret::random()?,
                }],
                blind_index_id: random_id()?,
                blind_index_created: created,
                blind_index_key: Secret::random()?,
            },
        );
        Ok(true)
    }

    /// Adds a new version of the column's data key, used for new values from
    /// now on; older versions keep decrypting. The blind-index key is kept,
    /// so lookups keep working. Returns the new version number.
    pub fn rotate_column(&mut self, table: &str, column: &str) -> Result<u32, VaultError> {
        let known = self.known_columns();
        let Some(keys) = self
            .columns
            .get_mut(&(table.to_string(), column.to_string()))
        else {
            return Err(VaultError::UnknownColumn {
                table: table.to_string(),
                column: column.to_string(),
                known,
            });
        };
        let version = keys.versions.last().map_or(0, |v| v.version) + 1;
        keys.versions.push(ColumnVersion {
            version,
            created: now_rfc3339(),
            key: Secret::random()?,
        });
        Ok(version)
    }

    fn known_columns(&self) -> Vec<String> {
        self.columns
            .keys()
            .map(|(t, c)| format!("{t}.{c}"))
            .collect()
    }

    /// The columns that have keys, as `(table, column)`, sorted.
    pub fn columns(&self) -> Vec<(String, String)> {
        self.columns.keys().cloned().collect()
    }

    /// Makes sure the data subject (e.g. `"customer:42"`) has a key. Returns
    /// whether it was created; [`VaultError::SubjectShredded`] if the subject
    /// was shredded (it never gets a key again).
    pub fn ensure_subject(&mut self, subject: &str) -> Result<bool, VaultError> {
        check_name("data subject", subject)?;
        match self.subjects.get(subject) {
            Some(s) if s.key.is_none() => Err(VaultError::SubjectShredded {
                subject: subject.to_string(),
            }),
            Some(_) => Ok(false),
            None => {
                self.subjects.insert(
                    subject.to_string(),
                    SubjectKeys {
                        id: random_id()?,
                        created: now_rfc3339(),
                        key: Some(Secret::random()?),
                        shredded: None,
                    },
                );
                Ok(true)
            }
        }
    }

    /// Destroys the data subject's key (crypto-shredding): values bound to
    /// it can never be decrypted again. A tombstone (name, key id, time)
    /// stays so the subject is never given a new key.
    ///
    /// Takes effect on disk at the next [`save`](Self::save); copies of the
    /// keystore made before (backups) still hold the key.
    pub fn shred_subject(&mut self, subject: &str) -> Result<ShredOutcome, VaultError> {
        let Some(keys) = self.subjects.get_mut(subject) else {
            return Err(VaultError::UnknownSubject {
                subject: subject.to_string(),
            });
        };
        if keys.key.is_none() {
            return Ok(ShredOutcome::AlreadyShredded);
        }
        // Dropping the secret overwrites it.
        keys.key = None;
        keys.shredded = Some(now_rfc3339());
        Ok(ShredOutcome::Shredded)
    }

    /// Whether the data subject's key was shredded.
    pub fn is_shredded(&self, subject: &str) -> bool {
        self.subjects.get(subject).is_some_and(|s| s.key.is_none())
    }

    /// Adds a KEK version; every data key is wrapped by it when the keystore
    /// is saved, and the previous KEK's material is dropped. Returns the new
    /// version number.
    pub fn rotate_kek(&mut self) -> Result<u32, VaultError> {
        let version = self.keks.last().map_or(0, |k| k.version) + 1;
        let key = Secret::random()?;
        for old in &mut self.keks {
            old.key = None;
        }
        self.keks.push(Kek {
            version,
            created: now_rfc3339(),
            key: Some(key),
        });
        Ok(version)
    }

    /// Every key's metadata (kind, name, id, versions, what it protects):
    /// never key material.
    pub fn list(&self) -> Vec<KeyInfo> {
        let mut out = Vec::new();
        let last_kek = self.keks.last().map_or(0, |k| k.version);
        out.push(KeyInfo {
            kind: KeyKind::Kek,
            name: "kek".into(),
            id: self.kek_id.clone(),
            versions: self
                .keks
                .iter()
                .map(|k| KeyVersionInfo {
                    version: k.version,
                    created: k.created.clone(),
                    state: if k.version == last_kek {
                        KeyState::Active
                    } else {
                        KeyState::Retired
                    },
                })
                .collect(),
            protects: "wraps every data key in the keystore".into(),
        });
        out.push(KeyInfo {
            kind: KeyKind::Token,
            name: "pseudonyms".into(),
            id: self.token.id().to_string(),
            versions: vec![KeyVersionInfo {
                version: 1,
                created: self.token_created.clone(),
                state: KeyState::Active,
            }],
            protects: "pseudonym tokens (tok_...)".into(),
        });
        for ((table, column), keys) in &self.columns {
            let last = keys.versions.last().map_or(0, |v| v.version);
            out.push(KeyInfo {
                kind: KeyKind::Column,
                name: format!("{table}.{column}"),
                id: keys.id.clone(),
                versions: keys
                    .versions
                    .iter()
                    .map(|v| KeyVersionInfo {
                        version: v.version,
                        created: v.created.clone(),
                        state: if v.version == last {
                            KeyState::Active
                        } else {
                            KeyState::Retired
                        },
                    })
                    .collect(),
                protects: format!("encrypted values of {table}.{column}"),
            });
            out.push(KeyInfo {
                kind: KeyKind::BlindIndex,
                name: format!("{table}.{column}"),
                id: keys.blind_index_id.clone(),
                versions: vec![KeyVersionInfo {
                    version: 1,
                    created: keys.blind_index_created.clone(),
                    state: KeyState::Active,
                }],
                protects: format!("equality lookups (blind indexes) on {table}.{column}"),
            });
        }
        for (name, keys) in &self.subjects {
            let (state, protects) = match &keys.shredded {
                Some(at) => (
                    KeyState::Shredded,
                    format!("values of data subject {name} (shredded {at})"),
                ),
                None => (KeyState::Active, format!("values of data subject {name}")),
            };
            out.push(KeyInfo {
                kind: KeyKind::Subject,
                name: name.clone(),
                id: keys.id.clone(),
                versions: vec![KeyVersionInfo {
                    version: 1,
                    created: keys.created.clone(),
                    state,
                }],
                protects,
            });
        }
        out
    }

    /// An immutable snapshot of the unwrapped keys for encrypting and
    /// decrypting fields. Take a new one after changing the keystore.
    pub fn cipher(&self) -> FieldCipher {
        let columns = self
            .columns
            .iter()
            .map(|((table, column), keys)| ColumnSnapshot {
                table: table.clone(),
                column: column.clone(),
                id: keys.id.clone(),
                versions: keys
                    .versions
                    .iter()
                    .map(|v| ColumnVersionKey {
                        version: v.version,
                        key: Secret(v.key.0),
                    })
                    .collect(),
                blind_index_key: Secret(keys.blind_index_key.0),
            })
            .collect();
        let subjects = self
            .subjects
            .iter()
            .map(|(name, keys)| SubjectSnapshot {
                name: name.clone(),
                id: keys.id.clone(),
                key: keys.key.as_ref().map(|k| Secret(k.0)),
            })
            .collect();
        FieldCipher::new(columns, subjects)
    }

    // ---- Encoding and decoding the file. ----

    /// The current KEK (version and prepared key).
    fn current_kek(&self) -> Result<(u32, LessSafeKey), VaultError> {
        match self.keks.last() {
            Some(Kek {
                version,
                key: Some(key),
                ..
            }) => Ok((*version, aead::key_for(&key.0)?)),
            // Every constructor and rotate_kek leave a current KEK with material.
            _ => Err(VaultError::corrupt(
                &self.path,
                "no current key-encryption key",
            )),
        }
    }

    fn encode(&self) -> Result<Vec<u8>, VaultError> {
        let (kek_version, kek) = self.current_kek()?;
        let wrap = |kind: KeyKind,
                    id: &str,
                    version: u32,
                    key: &Secret|
         -> Result<WrappedDoc, VaultError> {
            let sealed =
                aead::seal_random(&kek, &data_key_aad(kind, id, version, kek_version), &key.0)?;
            Ok(WrappedDoc {
                kek: kek_version,
                wrapped: B64.encode(sealed),
            })
        };
        let mut keks = Vec::with_capacity(self.keks.len());
        for k in &self.keks {
            let wrapped = match &k.key {
                Some(key) if k.version == kek_version => Some(B64.encode(aead::seal_random(
                    &self.kek_wrap_key,
                    &kek_aad(&self.kek_id, k.version),
                    &key.0,
                )?)),
                _ => None,
            };
            keks.push(KekDoc {
                version: k.version,
                created: k.created.clone(),
                wrapped,
            });
        }
        let token_bytes = Secret(self.token.to_bytes());
        let token = TokenDoc {
            id: self.token.id().to_string(),
            created: self.token_created.clone(),
            key: wrap(KeyKind::Token, self.token.id(), 1, &token_bytes)?,
        };
        let mut columns = Vec::with_capacity(self.columns.len());
        for ((table, column), keys) in &self.columns {
            let mut versions = Vec::with_capacity(keys.versions.len());
            for v in &keys.versions {
                versions.push(ColumnVersionDoc {
                    version: v.version,
                    created: v.created.clone(),
                    key: wrap(KeyKind::Column, &keys.id, v.version, &v.key)?,
                });
            }
            columns.push(ColumnDoc {
                table: table.clone(),
                column: column.clone(),
                id: keys.id.clone(),
                versions,
                blind_index: BlindIndexDoc {
                    id: keys.blind_index_id.clone(),
                    created: keys.blind_index_created.clone(),
                    key: wrap(
                        KeyKind::BlindIndex,
                        &keys.blind_index_id,
                        1,
                        &keys.blind_index_key,
                    )?,
                },
            });
        }
        let mut subjects = Vec::with_capacity(self.subjects.len());
        for (name, keys) in &self.subjects {
            subjects.push(SubjectDoc {
                name: name.clone(),
                id: keys.id.clone(),
                created: keys.created.clone(),
                key: match &keys.key {
                    Some(key) => Some(wrap(KeyKind::Subject, &keys.id, 1, key)?),
                    None => None,
                },
                shredded: keys.shredded.clone(),
            });
        }
        let doc = Doc {
            kek_id: self.kek_id.clone(),
            keks,
            token,
            columns,
            subjects,
        };
        let json = serde_json::to_vec(&doc)
            .map_err(|e| VaultError::corrupt(&self.path, format!("cannot serialize: {e}")))?;

        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + json.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        out.extend_from_slice(self.master_id.as_bytes());
        let sealed = aead::seal_random(&self.file_key, &out[..HEADER_LEN], &json)?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn decode(path: &Path, master: &MasterKey, bytes: &[u8]) -> Result<Keystore, VaultError> {
        let corrupt = |reason: &str| VaultError::corrupt(path, reason);
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(corrupt("it is not a Privet keystore (wrong magic bytes)"));
        }
        if bytes.len() < HEADER_LEN + NONCE_LEN + TAG_LEN {
            return Err(corrupt(&format!("it is truncated ({} bytes)", bytes.len())));
        }
        let mut version = [0u8; 4];
        version.copy_from_slice(&bytes[8..12]);
        let version = u32::from_be_bytes(version);
        if version != FORMAT_VERSION {
            return Err(VaultError::UnsupportedKeystore {
                path: path.to_path_buf(),
                version,
            });
        }
        let expected_id = String::from_utf8_lossy(&bytes[12..HEADER_LEN]).into_owned();
        let master_id = master.id();
        if expected_id != master_id {
            return Err(VaultError::WrongMasterKey {
                path: path.to_path_buf(),
                master_key_id: master_id,
                expected_id,
            });
        }
        let file_key = subkey_aead(master, FILE_KEY_PURPOSE)?;
        let kek_wrap_key = subkey_aead(master, KEK_WRAP_PURPOSE)?;
        let json = aead::open_random(&file_key, &bytes[..HEADER_LEN], &bytes[HEADER_LEN..])
            .map_err(|_| corrupt("authentication failed (the file was altered or damaged)"))?;
        let doc: Doc = serde_json::from_slice(&json)
            .map_err(|e| corrupt(&format!("its content is not a keystore document: {e}")))?;

        // The KEKs: only the ones with material can unwrap.
        let mut keks = Vec::with_capacity(doc.keks.len());
        for k in &doc.keks {
            let key = match &k.wrapped {
                Some(wrapped) => Some(
                    unwrap(&kek_wrap_key, &kek_aad(&doc.kek_id, k.version), wrapped).ok_or_else(
                        || {
                            corrupt(&format!(
                                "key-encryption key version {} does not unwrap",
                                k.version
                            ))
                        },
                    )?,
                ),
                None => None,
            };
            keks.push(Kek {
                version: k.version,
                created: k.created.clone(),
                key,
            });
        }
        keks.sort_by_key(|k| k.version);
        let current_has_key = keks.last().is_some_and(|k| k.key.is_some());
        if !current_has_key {
            return Err(corrupt("its current key-encryption key is missing"));
        }
        let kek_keys: BTreeMap<u32, LessSafeKey> = keks
            .iter()
            .filter_map(|k| k.key.as_ref().map(|key| (k.version, key)))
            .map(|(v, key)| aead::key_for(&key.0).map(|key| (v, key)))
            .collect::<Result<_, _>>()?;
        let unwrap_data =
            |kind: KeyKind, id: &str, version: u32, w: &WrappedDoc| -> Result<Secret, VaultError> {
                let what = || format!("the {kind} key {id} version {version} does not unwrap");
                let kek = kek_keys.get(&w.kek).ok_or_else(|| corrupt(&what()))?;
                unwrap(kek, &data_key_aad(kind, id, version, w.kek), &w.wrapped)
                    .ok_or_else(|| corrupt(&what()))
            };

        let token_bytes = unwrap_data(KeyKind::Token, &doc.token.id, 1, &doc.token.key)?;
        let token = TokenKey::from_bytes(&token_bytes.0);
        if token.id() != doc.token.id {
            return Err(corrupt("the token key does not match its recorded id"));
        }

        let mut columns = BTreeMap::new();
        for c in &doc.columns {
            let mut versions = Vec::with_capacity(c.versions.len());
            for v in &c.versions {
                versions.push(ColumnVersion {
                    version: v.version,
                    created: v.created.clone(),
                    key: unwrap_data(KeyKind::Column, &c.id, v.version, &v.key)?,
                });
            }
            versions.sort_by_key(|v| v.version);
            if versions.is_empty() {
                return Err(corrupt(&format!(
                    "column {}.{} has no key versions",
                    c.table, c.column
                )));
            }
            let b = &c.blind_index;
            let keys = ColumnKeys {
                id: c.id.clone(),
                versions,
                blind_index_id: b.id.clone(),
                blind_index_created: b.created.clone(),
                blind_index_key: unwrap_data(KeyKind::BlindIndex, &b.id, 1, &b.key)?,
            };
            columns.insert((c.table.clone(), c.column.clone()), keys);
        }

        let mut subjects = BTreeMap::new();
        for s in &doc.subjects {
            let key = match &s.key {
                Some(w) => Some(unwrap_data(KeyKind::Subject, &s.id, 1, w)?),
                None => None,
            };
            subjects.insert(
                s.name.clone(),
                SubjectKeys {
                    id: s.id.clone(),
                    created: s.created.clone(),
                    key,
                    shredded: s.shredded.clone(),
                },
            );
        }

        Ok(Keystore {
            path: path.to_path_buf(),
            master_id,
            file_key,
            kek_wrap_key,
            kek_id: doc.kek_id,
            keks,
            token: Arc::new(token),
            token_created: doc.token.created,
            columns,
            subjects,
        })
    }
}

/// Unwraps a base64 `nonce || ct || tag` into a 32-byte key.
fn unwrap(key: &LessSafeKey, aad: &[u8], wrapped: &str) -> Option<Secret> {
    let sealed = B64.decode(wrapped).ok()?;
    let plain = aead::open_random(key, aad, &sealed).ok()?;
    let secret = <[u8; 32]>::try_from(plain.as_slice()).ok().map(Secret);
    wipe(plain);
    secret
}

fn subkey_aead(master: &MasterKey, purpose: &[u8]) -> Result<LessSafeKey, VaultError> {
    Ok(aead::key_for(&master.subkey(purpose).0)?)
}

fn open_lock_file(path: &Path) -> Result<(File, PathBuf), VaultError> {
    let lock_path = with_suffix(path, ".lock");
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let file = options
        .open(&lock_path)
        .map_err(|e| VaultError::io(&lock_path, e))?;
    Ok((file, lock_path))
}

impl fmt::Debug for Keystore {
    /// Names and counts only: key material never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystore")
            .field("path", &self.path)
            .field("master_key_id", &self.master_id)
            .field("kek_version", &self.keks.last().map_or(0, |k| k.version))
            .field("columns", &self.columns.len())
            .field("subjects", &self.subjects.len())
            .finish_non_exhaustive()
    }
}
