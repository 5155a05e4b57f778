//! Encrypted columns on the way out: the keystore snapshot the gateway
//! decrypts with (refreshed when `privet keys` changes the keystore, so a
//! shredded subject is unreadable from the next request on), and the row
//! transform that turns a policy view's `ciphertext|row key` cells into
//! plaintext, masked plaintext, or the shredded marker.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use serde_json::Value as Json;
use vault::{CipherError, Field, FieldCipher, Keystore, MasterKey, TokenKey};

use crate::error::{ErrorCode, RequestError};
use crate::masks;
use crate::sql::{SealedOutput, SEALED_SEPARATOR};

/// What a field of a crypto-shredded data subject reads as.
pub const SHREDDED: &str = "[shredded]";

/// The keystore file's identity at the last load: a rename-into-place
/// changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &std::path::Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// The gateway's view of the keystore.
pub struct Sealing {
    path: PathBuf,
    master: MasterKey,
    current: RwLock<(Stamp, Arc<FieldCipher>)>,
    /// One reload at a time; holds the subjects known shredded, and those
    /// shredded since start that the audit log has not been told about.
    reloading: Mutex<Shreds>,
}

#[derive(Default)]
struct Shreds {
    known: BTreeSet<String>,
    unreported: Vec<String>,
}

fn shredded_subjects(keystore: &Keystore) -> BTreeSet<String> {
    keystore
        .list()
        .into_iter()
        .filter(|k| {
            k.kind == vault::KeyKind::Subject
                && k.versions
                    .iter()
                    .any(|v| v.state == vault::KeyState::Shredded)
        })
        .map(|k| k.name)
        .collect()
}

impl Sealing {
    /// Starts from `keystore` as just loaded from `path`.
    pub fn new(path: PathBuf, master: MasterKey, keystore: &Keystore) -> std::io::Result<Sealing> {
        let at = stamp(&path)?;
        Ok(Sealing {
            path,
            master,
            current: RwLock::new((at, Arc::new(keystore.cipher()))),
            reloading: Mutex::new(Shreds {
                known: shredded_subjects(keystore),
                unreported: Vec::new(),
            }),
        })
    }

    /// The current snapshot, reloaded first if the keystore file changed
    /// (one `stat` per call). A keystore that cannot be read refuses the
    /// request: decrypting with stale keys could show a shredded subject.
    pub fn cipher(&self) -> Result<Arc<FieldCipher>, RequestError> {
        let unavailable = |why: String| {
            RequestError::new(
                ErrorCode::KeysUnavailable,
                format!("the keystore {} cannot be read ({why}); encrypted columns are refused until it can", self.path.display()),
            )
        };
        let now = stamp(&self.path).map_err(|e| unavailable(e.to_string()))?;
        {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            if current.0 == now {
                return Ok(Arc::clone(&current.1));
            }
        }
        let mut shreds = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let keystore =
            Keystore::open(&self.path, &self.master).map_err(|e| unavailable(e.to_string()))?;
        let cipher = Arc::new(keystore.cipher());
        for subject in shredded_subjects(&keystore) {
            if shreds.known.insert(subject.clone()) {
                shreds.unreported.push(subject);
            }
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (now, Arc::clone(&cipher));
        tracing::info!(path = %self.path.display(), "keystore changed: reloaded");
        Ok(cipher)
    }

    /// Subjects shredded (by `privet keys shred`) while this gateway ran
    /// and not yet reported; the caller records them in the audit log.
    /// Checks the keystore first.
    pub fn take_new_shreds(&self) -> Result<Vec<String>, RequestError> {
        self.cipher()?;
        let mut shreds = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        Ok(std::mem::take(&mut shreds.unreported))
    }

    /// Encrypts a value written through the gateway: under the column's
    /// current key version and, with a `subject`, that subject's key (made
    /// on first use). A shredded subject's fields cannot be written.
    pub fn encrypt(
        &self,
        field: &Field<'_>,
        subject: Option<&str>,
        plaintext: &str,
    ) -> Result<String, RequestError> {
        let attempt = |cipher: &FieldCipher| cipher.encrypt(field, subject, plaintext.as_bytes());
        let fail = |e: CipherError| {
            let (code, why) = match e {
                CipherError::Shredded => (
                    ErrorCode::BadRequest,
                    "the subject was erased (crypto-shredded); their encrypted fields cannot be written again".to_owned(),
                ),
                other => (ErrorCode::KeysUnavailable, other.to_string()),
            };
            RequestError::new(
                code,
                format!(
                    "encrypting {}.{} of row {}: {why}",
                    field.table, field.column, field.row_key
                ),
            )
        };
        match attempt(self.cipher()?.as_ref()) {
            Err(CipherError::UnknownSubject(name)) => {
                self.add_subject(&name)?;
                attempt(self.cipher()?.as_ref()).map_err(fail)
            }
            other => other.map_err(fail),
        }
    }

    /// Gives a new data subject a key: the keystore is changed under the
    /// writers' lock and the snapshot reloads from the file.
    fn add_subject(&self, subject: &str) -> Result<(), RequestError> {
        let unavailable = |e: vault::VaultError| {
            RequestError::new(
                ErrorCode::KeysUnavailable,
                format!("adding a key for {subject} to {}: {e}", self.path.display()),
            )
        };
        let _lock = Keystore::lock(&self.path).map_err(unavailable)?;
        let mut keystore = Keystore::open(&self.path, &self.master).map_err(unavailable)?;
        if keystore.ensure_subject(subject).map_err(unavailable)? {
            keystore.save().map_err(unavailable)?;
        }
        Ok(())
    }

    /// Puts back shreds whose audit events could not be written, to be
    /// recorded on the next attempt.
    pub fn report_later(&self, subjects: Vec<String>) {
        let mut shreds = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        shreds.unreported.extend(subjects);
    }

    /// The blind-index token of `value` for `table.column`.
    pub fn blind_index(
        &self,
        table: &str,
        column: &str,
        value: &str,
    ) -> Result<String, RequestError> {
        self.cipher()?
            .blind_index(table, column, value.as_bytes())
            .map_err(|e| {
                RequestError::new(
                    ErrorCode::KeysUnavailable,
                    format!("no blind-index key for {table}.{column}: {e}"),
                )
            })
    }

    /// Decrypts (and masks) the sealed columns of `rows` in place. Returns,
    /// per output column, how many values were of shredded subjects.
    pub fn unseal_rows(
        &self,
        sealed: &[Option<SealedOutput>],
        rows: &mut [Vec<Json>],
        token_key: &TokenKey,
    ) -> Result<Vec<u64>, RequestError> {
        let mut shredded = vec![0; sealed.len()];
        if sealed.iter().all(Option::is_none) {
            return Ok(shredded);
        }
        let cipher = self.cipher()?;
        for row in rows {
            for ((cell, how), count) in row.iter_mut().zip(sealed).zip(&mut shredded) {
                if let Some(how) = how {
                    let (value, was_shredded) = unseal(&cipher, how, cell, token_key)?;
                    *cell = value;
                    *count += u64::from(was_shredded);
                }
            }
        }
        Ok(shredded)
    }
}

/// One cell: `ciphertext|row key` → plaintext (masked if the view says so),
/// the shredded marker (and `true`), or an error naming the column and row.
fn unseal(
    cipher: &FieldCipher,
    how: &SealedOutput,
    cell: &Json,
    token_key: &TokenKey,
) -> Result<(Json, bool), RequestError> {
    let text = match cell {
        Json::Null => return Ok((Json::Null, false)),
        Json::String(s) => s.as_str(),
        other => {
            return Err(failed(
                how,
                "?",
                &format!("the database returned {other} where a ciphertext belongs"),
            ));
        }
    };
    let Some((ciphertext, row_key)) = text.split_once(SEALED_SEPARATOR) else {
        return Err(failed(
            how,
            "?",
            "the value is not a ciphertext with its row key",
        ));
    };
    let field = Field {
        table: &how.table,
        column: &how.column,
        row_key,
    };
    let plain = match cipher.decrypt(&field, ciphertext) {
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| failed(how, row_key, "the plaintext is not UTF-8"))?,
        Err(CipherError::Shredded) => return Ok((Json::String(SHREDDED.to_owned()), true)),
        Err(e) => return Err(failed(how, row_key, &e.to_string())),
    };
    let plain = Json::String(plain);
    Ok((
        match how.mask {
            Some(mask) => masks::apply(mask, &plain, &how.domain, token_key),
            None => plain,
        },
        false,
    ))
}

fn failed(how: &SealedOutput, row_key: &str, why: &str) -> RequestError {
    RequestError::new(
        ErrorCode::DecryptFailed,
        format!(
            "{}.{} of the row with key {row_key} does not decrypt ({why}): the stored value was altered, \
             copied from another row or column, or written under a key this keystore lacks; the whole result is withheld",
            how.table, how.column
        ),
    )
}
