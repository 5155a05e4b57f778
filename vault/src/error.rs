//! [`VaultError`]: why a key or the keystore could not be made, read or
//! written.

use std::io;
use std::path::{Path, PathBuf};

use crate::cipher::CipherError;

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Reading or writing a key file failed.
    #[error("key file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The key file can be accessed by users other than its owner.
    #[error(
        "key file {} is accessible by group or others (mode {mode:04o}); \
         restrict it with `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file exists but does not hold a key.
    #[error("key file {} is not a valid key: {reason}", path.display())]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `PRIVET_MASTER_KEY` is set but does not hold a master key. The value
    /// itself is never part of the message.
    #[error(
        "{} is not a valid master key: {reason}; set it to 64 hex digits or the \
         base64 of 32 random bytes (e.g. the output of `openssl rand -hex 32`), \
         or unset it to use the master key file",
        crate::MasterKey::ENV
    )]
    BadMasterKeyEnv {
        /// What is wrong with it (never the value).
        reason: String,
    },
    /// A file that is only ever created, never replaced, already exists.
    #[error(
        "{} already exists; refusing to overwrite it (the keys in it would be lost). \
         Use the existing file, or move it away only if nothing encrypted with it \
         is still needed",
        path.display()
    )]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The keystore was encrypted with another master key.
    #[error(
        "keystore {} cannot be opened with master key {master_key_id} (it was written \
         with master key {expected_id}); check {} or the master key file",
        path.display(),
        crate::MasterKey::ENV
    )]
    WrongMasterKey {
        /// The keystore file.
        path: PathBuf,
        /// Id of the master key that was tried.
        master_key_id: String,
        /// Id of the master key recorded in the keystore's header.
        expected_id: String,
    },
    /// The keystore file is damaged or was altered.
    #[error(
        "keystore {} is damaged or was altered: {reason}; restore it from a backup",
        path.display()
    )]
    CorruptKeystore {
        /// The keystore file.
        path: PathBuf,
        /// What was found wrong.
        reason: String,
    },
    /// The keystore was written by a newer Privet.
    #[error(
        "keystore {} has format version {version}, which this Privet does not \
         support; upgrade Privet",
        path.display()
    )]
    UnsupportedKeystore {
        /// The keystore file.
        path: PathBuf,
        /// The format version in its header.
        version: u32,
    },
    /// No data key exists for this column.
    #[error(
        "no data key for column {table}.{column}; known columns: {}",
        if known.is_empty() { "(none)".to_string() } else { known.join(", ") }
    )]
    UnknownColumn {
        /// The table asked for.
        table: String,
        /// The column asked for.
        column: String,
        /// The columns that do have keys, as `table.column`.
        known: Vec<String>,
    },
    /// No key was ever made for this data subject.
    #[error("no key for data subject {subject:?}; check the subject's name")]
    UnknownSubject {
        /// The subject asked for.
        subject: String,
    },
    /// The data subject's key was destroyed; it is never made again, so data
    /// shredded stays unreadable.
    #[error(
        "the key of data subject {subject:?} was shredded; a shredded subject is never \
         given a key again (use a new subject name for new data)"
    )]
    SubjectShredded {
        /// The shredded subject.
        subject: String,
    },
    /// A name given for a key is not usable.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// What the name is of ("table name", "data subject").
        what: &'static str,
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Encryption under a key of the keystore failed.
    #[error(transparent)]
    Cipher(#[from] CipherError),
}

impl VaultError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        VaultError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> Self {
        VaultError::CorruptKeystore {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
