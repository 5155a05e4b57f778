//! Privet's vault: the keys the gateway holds and the deterministic tokens
//! derived from them.
//!
//! For now this is one [`TokenKey`] kept in a 0600 file; the key hierarchy
//! (a master key wrapping per-purpose keys, rotation) comes later. Nothing
//! here knows about SQL, policies or HTTP.

mod tokens;

pub use tokens::{DomainTokenKey, TokenKey, VaultError};
