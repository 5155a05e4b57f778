//! [`MasterKey`]: the root of the key hierarchy, kept outside the keystore
//! (in `PRIVET_MASTER_KEY` or a 0600 file).

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::{digest, hmac};

use crate::error::VaultError;
use crate::files::{open_private, sync_parent, write_new_file};
use crate::util::{hex, hex32, wipe, Secret};

/// Separates the master key's public id from every other use of the key.
const ID_CONTEXT: &[u8] = b"privet master key id\0";

/// The 256-bit master key: it encrypts the keystore and wraps its
/// key-encryption keys. Lose it and every key in the keystore (and all data
/// encrypted with them) is lost.
pub struct MasterKey {
    bytes: Secret,
    id: String,
}

/// Where [`MasterKey::from_env_or_file`] found the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// The `PRIVET_MASTER_KEY` environment variable.
    Env,
    /// This key file.
    File(PathBuf),
}

impl MasterKey {
    /// The environment variable that holds the master key, when set.
    pub const ENV: &'static str = "PRIVET_MASTER_KEY";

    /// The master key from `PRIVET_MASTER_KEY` if it is set (64 hex digits,
    /// or standard / URL-safe base64 of 32 bytes, surrounding whitespace
    /// ignored), else from `file` ([`load_file`](Self::load_file)).
    ///
    /// A variable that is set but invalid (including empty) is an error, not
    /// a reason to fall back to the file: a secret that failed to reach the
    /// process should not silently select another key.
    pub fn from_env_or_file(file: &Path) -> Result<(MasterKey, MasterKeySource), VaultError> {
        Self::from_env_value_or_file(std::env::var_os(Self::ENV), file)
    }

    /// [`from_env_or_file`](Self::from_env_or_file) with the variable's value
    /// given (so it can be tested without touching the environment).
    fn from_env_value_or_file(
        value: Option<OsString>,
        file: &Path,
    ) -> Result<(MasterKey, MasterKeySource), VaultError> {
        match value {
            Some(value) => {
                let text = value
                    .into_string()
                    .map_err(|_| VaultError::BadMasterKeyEnv {
                        reason: "it is not valid UTF-8".into(),
                    })?;
                let key = MasterKey::parse(&text)
                    .map_err(|reason| VaultError::BadMasterKeyEnv { reason })?;
                Ok((key, MasterKeySource::Env))
            }
            None => Ok((
                MasterKey::load_file(file)?,
                MasterKeySource::File(file.to_path_buf()),
            )),
        }
    }

    /// Parses the text form of a master key: 64 hex digits, or standard or
    /// URL-safe base64 (padded or not) of exactly 32 bytes. The error says
    /// what is wrong without repeating the value.
    fn parse(text: &str) -> Result<MasterKey, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("it is empty".into());
        }
        if let Some(bytes) = hex32(text.as_bytes()) {
            return Ok(MasterKey::from_bytes(&bytes));
        }
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            if let Ok(decoded) = engine.decode(text) {
                let decoded = ZeroOnDrop(decoded);
                return match Secret::from_slice(&decoded.0) {
                    Some(secret) => Ok(MasterKey::from_bytes(&secret.0)),
                    // Only the length, never the value.
                    None => Err(format!("it is base64 of {} bytes, not 32", decoded.0.len())),
                };
            }
        }
        Err(format!(
            "it is neither 64 hex digits nor base64 ({} characters)",
            text.chars().count()
        ))
    }

    /// Loads a master key file: 32 raw bytes, or 64 hex digits followed by an
    /// optional newline.
    ///
    /// On Unix, refuses a file that group or others can access
    /// (`mode & 0o077 != 0`), checked on the opened file.
    pub fn load_file(path: &Path) -> Result<MasterKey, VaultError> {
        let (file, meta) = open_private(path)?;
        const MAX: usize = 66; // 64 hex digits + "\r\n"
        let mut bytes = Vec::with_capacity(MAX + 1);
        (&file)
            .take(MAX as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| VaultError::io(path, e))?;
        let bytes = ZeroOnDrop(bytes);
        if let Some(secret) = Secret::from_slice(&bytes.0) {
            return Ok(MasterKey::from_bytes(&secret.0));
        }
        let text = bytes
            .0
            .strip_suffix(b"\n")
            .map(|t| t.strip_suffix(b"\r").unwrap_or(t))
            .unwrap_or(&bytes.0);
        if let Some(key) = hex32(text) {
            let key = Secret(key);
            return Ok(MasterKey::from_bytes(&key.0));
        }
        let found = if bytes.0.len() > MAX {
            meta.len()
        } else {
            bytes.0.len() as u64
        };
        Err(VaultError::BadKeyFile {
            path: path.to_path_buf(),
            reason: format!(
                "expected 32 raw bytes or 64 hex digits, found {found} bytes \
                 that are neither"
            ),
        })
    }

    /// Creates `path` holding a new random key (32 raw bytes), mode 0600,
    /// synced to disk with its directory entry. Never replaces an existing
    /// file ([`VaultError::AlreadyExists`]).
    pub fn create_file(path: &Path) -> Result<MasterKey, VaultError> {
        let key = MasterKey::generate()?;
        match write_new_file(path, &key.bytes.0) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(VaultError::AlreadyExists {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => {
                // Do not leave a half-written key file that a later start
                // would refuse (or worse, use).
                let _ = std::fs::remove_file(path);
                return Err(VaultError::io(path, e));
            }
        }
        sync_parent(path)?;
        Ok(key)
    }

    /// The key with these bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> MasterKey {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(ID_CONTEXT);
        ctx.update(bytes);
        MasterKey {
            bytes: Secret(*bytes),
            id: hex(&ctx.finish().as_ref()[..8]),
        }
    }

    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Result<MasterKey, VaultError> {
        let bytes = Secret::random()?;
        Ok(MasterKey::from_bytes(&bytes.0))
    }

    /// A public fingerprint of the key (16 hex digits of SHA-256 over a
    /// context string and the key), for messages and the keystore header.
    pub fn id(&self) -> String {
        self.id.clone()
    }

    /// A subkey for one purpose: HMAC-SHA256(master, `purpose`). The master
    /// key itself never keys a cipher, so its uses cannot interfere.
    pub(crate) fn subkey(&self, purpose: &[u8]) -> Secret {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.bytes.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&key, purpose).as_ref());
        Secret(out)
    }
}

impl Secret {
    /// The secret in `bytes`, if it is exactly 32 bytes long.
    fn from_slice(bytes: &[u8]) -> Option<Secret> {
        <[u8; 32]>::try_from(bytes).ok().map(Secret)
    }
}

/// A byte buffer zeroed when dropped (the key file's content).
struct ZeroOnDrop(Vec<u8>);

impl Drop for ZeroOnDrop {
    fn drop(&mut self) {
        wipe(std::mem::take(&mut self.0));
    }
}

impl fmt::Debug for MasterKey {
    /// Shows only the key id: key material never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn parse_accepts_hex_and_base64() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 9 + 250) as u8);
        let id = MasterKey::from_bytes(&bytes).id();
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let forms = [
            hex(&bytes),
            hex(&bytes).to_uppercase(),
            format!("  {}\n", hex(&bytes)),
            STANDARD.encode(bytes),
            STANDARD_NO_PAD.encode(bytes),
            URL_SAFE.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
        ];
        for form in forms {
            assert_eq!(MasterKey::parse(&form).unwrap().id(), id, "{form}");
        }
    }

    #[test]
    fn parse_errors_do_not_repeat_the_value() {
        for bad in [
            "",
            "   ",
            "zz",
            &"ab".repeat(31),
            &"ab".repeat(33),
            "c2VjcmV0",
        ] {
            let reason = MasterKey::parse(bad).unwrap_err();
            if bad.trim().len() > 2 {
                assert!(!reason.contains(bad.trim()), "{reason}");
            }
        }
        let reason = MasterKey::parse("c2VjcmV0").unwrap_err();
        assert!(reason.contains("6 bytes, not 32"), "{reason}");
    }

    #[test]
    fn env_value_wins_over_file_and_bad_value_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("master.key");
        let from_file = MasterKey::create_file(&file).unwrap();
        let (key, source) = MasterKey::from_env_value_or_file(None, &file).unwrap();
        assert_eq!(key.id(), from_file.id());
        assert_eq!(source, MasterKeySource::File(file.clone()));

        let env = MasterKey::from_bytes(&[7; 32]);
        let (key, source) =
            MasterKey::from_env_value_or_file(Some(hex(&[7; 32]).into()), &file).unwrap();
        assert_eq!((key.id(), source), (env.id(), MasterKeySource::Env));

        let err = MasterKey::from_env_value_or_file(Some("".into()), &file).unwrap_err();
        assert!(matches!(err, VaultError::BadMasterKeyEnv { .. }), "{err:?}");
        assert!(err.to_string().contains("PRIVET_MASTER_KEY"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn create_then_load_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::create_file(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        assert_eq!(MasterKey::load_file(&path).unwrap().id(), key.id());
        let err = MasterKey::create_file(&path).unwrap_err();
        assert!(matches!(err, VaultError::AlreadyExists { .. }), "{err:?}");
        // The existing key was not replaced.
        assert_eq!(MasterKey::load_file(&path).unwrap().id(), key.id());
    }

    #[cfg(unix)]
    #[test]
    fn hex_key_file_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let id = MasterKey::from_bytes(&[0x5a; 32]).id();
        for content in [
            hex(&[0x5a; 32]),
            hex(&[0x5a; 32]) + "\n",
            hex(&[0x5a; 32]) + "\r\n",
        ] {
            fs::write(&path, content).unwrap();
            set_mode(&path, 0o600);
            assert_eq!(MasterKey::load_file(&path).unwrap().id(), id);
        }
        for bad in [
            vec![1u8; 31],
            vec![1u8; 33],
            b"zz".repeat(32),
            vec![b'a'; 4096],
        ] {
            fs::write(&path, &bad).unwrap();
            let err = MasterKey::load_file(&path).unwrap_err();
            assert!(matches!(err, VaultError::BadKeyFile { .. }), "{err:?}");
            assert!(
                err.to_string().contains(&format!("found {}", bad.len())),
                "{err}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn insecure_master_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::create_file(&path).unwrap();
        for insecure in [0o644, 0o640, 0o604, 0o660] {
            set_mode(&path, insecure);
            let err = MasterKey::load_file(&path).unwrap_err();
            assert!(
                matches!(&err, VaultError::InsecurePermissions { mode, .. } if *mode == insecure),
                "{err:?}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
            assert!(MasterKey::from_env_value_or_file(None, &path).is_err());
        }
        set_mode(&path, 0o400);
        assert!(MasterKey::load_file(&path).is_ok());
    }

    #[test]
    fn debug_and_id_do_not_leak_key_material() {
        let bytes = [0xcd; 32];
        let key = MasterKey::from_bytes(&bytes);
        let debug = format!("{key:?}");
        assert_eq!(debug, format!("MasterKey {{ id: {:?}, .. }}", key.id()));
        assert!(!debug.contains("cdcd") && !debug.contains("205"));
        assert_eq!(key.id().len(), 16);
        assert_ne!(key.id(), MasterKey::from_bytes(&[0xce; 32]).id());
    }
}
