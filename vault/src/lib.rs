//! Privet's vault: the keys the gateway holds, the encryption of single
//! values (fields) with them, and the deterministic tokens derived from them.
//! Nothing here knows about SQL, policies or HTTP.
//!
//! # Key hierarchy
//!
//! ```text
//! MasterKey            PRIVET_MASTER_KEY (hex/base64) or a 0600 file; never in the keystore
//! └── Keystore file    encrypted + authenticated under the master key (AES-256-GCM)
//!     └── KEKs         key-encryption keys, versioned, wrapped by the master key
//!         ├── column keys       one per classified column, versioned (rotation)
//!         ├── blind-index keys  one per column, never rotated (lookups keep working)
//!         ├── subject keys      one per data subject ("customer:42"), shreddable
//!         └── TokenKey          pseudonyms (tok_...)
//! ```
//!
//! * [`MasterKey`]: the 256-bit root, from `PRIVET_MASTER_KEY` or a key file
//!   ([`MasterKey::from_env_or_file`]). Its [`id`](MasterKey::id) is a public
//!   fingerprint for messages.
//! * [`Keystore`]: every other key, in one file (`keystore.pvk`) written
//!   atomically. Column keys rotate ([`Keystore::rotate_column`]); old
//!   versions keep decrypting. Subject keys can be destroyed
//!   ([`Keystore::shred_subject`]), which makes every value bound to the
//!   subject unreadable (crypto-shredding); a tombstone keeps the subject from
//!   ever getting a key again. [`Keystore::list`] describes keys without
//!   their material.
//! * [`FieldCipher`]: an immutable, cheaply cloned snapshot of the unwrapped
//!   keys ([`Keystore::cipher`]) that encrypts and decrypts fields and
//!   computes blind indexes.
//! * [`TokenKey`]: HMAC-SHA256 pseudonyms (`tok_...`), kept in the keystore
//!   (or, for older set-ups, a `token.key` file).
//!
//! # Formats
//!
//! * Field ciphertext (TEXT-safe ASCII):
//!   `pv1.<column key id>.<version>.<subject key id or ->.<nonce>.<ct+tag>`,
//!   AES-256-GCM with a random 96-bit nonce; the associated data binds the
//!   header, table, column and row key, so a value decrypts only where it
//!   was written. Subject-bound values use HMAC-SHA256(subject key, context
//!   || column key id || version || column key) as their key. See
//!   [`FieldCipher`] and [`ciphertext_info`].
//! * Blind index: `bix_` + URL-safe base64 of the first 16 bytes of
//!   HMAC-SHA256(column's blind-index key, value).
//! * Pseudonym: `tok_` + URL-safe base64 of the first 16 bytes of
//!   HMAC-SHA256(domain key, value) ([`TokenKey::pseudonym`]).
//! * Keystore file: `PRIVETKS`, format version (u32 BE), master key id
//!   (16 hex), then nonce || AES-256-GCM(JSON) || tag with the header as
//!   associated data; inside, every key is wrapped again by the current KEK.
//! * Key ids: 16 hex digits, random (column, blind-index, subject, KEK) or a
//!   hash of the key (token, master), never a name.
//!
//! The raw AEAD layer ([`aead::seal`], [`aead::open`]) and [`hmac_sha256`]
//! are public so they can be checked against test vectors and benchmarked.

pub mod aead;
mod cipher;
mod error;
mod files;
mod keystore;
mod master;
mod tokens;
mod util;

pub use cipher::{
    ciphertext_info, hmac_sha256, looks_like_ciphertext, CipherError, CiphertextInfo, Field,
    FieldCipher,
};
pub use error::VaultError;
pub use keystore::{
    KeyInfo, KeyKind, KeyState, KeyVersionInfo, Keystore, KeystoreLock, ShredOutcome,
};
pub use master::{MasterKey, MasterKeySource};
pub use tokens::{DomainTokenKey, TokenKey};
