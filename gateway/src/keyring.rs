//! Where the gateway's keys come from: the master key (environment or a
//! file outside the data dir) and the vault keystore in the data dir that it
//! unlocks. The seeder, the server and `privet keys` all open the keystore
//! through here, so they agree on paths and on what each column's keys are.

use std::path::{Path, PathBuf};

use vault::{Keystore, KeystoreLock, MasterKey, MasterKeySource, VaultError};

/// The master key file used when neither `PRIVET_MASTER_KEY` nor
/// `master_key_file` names one: beside the data dir, never inside it, so a
/// copy of the data dir (a backup) does not carry the key that opens it.
pub const DEFAULT_MASTER_KEY_FILE: &str = "privet-master.key";

/// The pseudonym key file of data dirs made before the keystore: imported
/// once so existing pseudonyms stay stable, then left for the operator to
/// delete.
pub const LEGACY_PSEUDONYM_KEY_FILE: &str = "pseudonym.key";

/// The columns the demo store encrypts, as (table, column). A column
/// `<column>_bidx` beside one holds its blind index.
pub const DEMO_ENCRYPTED: &[(&str, &str)] = &[("customers", "phone"), ("payments", "card_number")];

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(
        "master key: {0}; set PRIVET_MASTER_KEY (64 hex digits) or `master_key_file` in the config"
    )]
    Master(#[source] VaultError),
    #[error("keystore {}: {source}", path.display())]
    Keystore {
        path: PathBuf,
        #[source]
        source: VaultError,
    },
    #[error(
        "the master key file {} is inside the data dir {}: a copy of the data dir would carry the key that opens it; \
         keep it elsewhere (`master_key_file`) or use PRIVET_MASTER_KEY",
        path.display(),
        data_dir.display()
    )]
    InsideDataDir { path: PathBuf, data_dir: PathBuf },
    #[error(
        "no master key: neither PRIVET_MASTER_KEY nor {} exists, and this command does not create one; \
         start `privet serve` or `privet seed` once to create the demo key, or set PRIVET_MASTER_KEY",
        path.display()
    )]
    NoMasterKey { path: PathBuf },
}

/// The default master key file for `data_dir`: its sibling.
pub fn default_master_key_file(data_dir: &Path) -> PathBuf {
    let dir = data_dir.parent().filter(|p| !p.as_os_str().is_empty());
    dir.unwrap_or(Path::new(".")).join(DEFAULT_MASTER_KEY_FILE)
}

/// The keystore file of `data_dir`.
pub fn keystore_path(data_dir: &Path) -> PathBuf {
    data_dir.join(Keystore::FILE_NAME)
}

/// The master key: `PRIVET_MASTER_KEY`, else `file` (the configured one or
/// the default beside the data dir). With `create`, a missing file is
/// created (mode 0600) and the creation logged: the zero-config demo path.
pub fn master_key(
    data_dir: &Path,
    file: Option<&Path>,
    create: bool,
) -> Result<MasterKey, KeyringError> {
    let path = file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_master_key_file(data_dir));
    if std::env::var_os(MasterKey::ENV).is_none() && inside(&path, data_dir) {
        return Err(KeyringError::InsideDataDir {
            path,
            data_dir: data_dir.to_path_buf(),
        });
    }
    if std::env::var_os(MasterKey::ENV).is_none() && !path.exists() {
        if !create {
            return Err(KeyringError::NoMasterKey { path });
        }
        let key = MasterKey::create_file(&path).map_err(KeyringError::Master)?;
        tracing::warn!(
            path = %path.display(),
            "created a new master key; it unlocks every encrypted field: keep it out of backups of the data dir, \
             and in production set PRIVET_MASTER_KEY or `master_key_file` instead"
        );
        return Ok(key);
    }
    let (key, source) = MasterKey::from_env_or_file(&path).map_err(KeyringError::Master)?;
    match source {
        MasterKeySource::Env => tracing::debug!("master key from {}", MasterKey::ENV),
        MasterKeySource::File(p) => tracing::debug!(path = %p.display(), "master key from file"),
    }
    Ok(key)
}

/// The keystore, opened for a change: holds the writers' lock until the
/// value is dropped, so the server, the seeder and `privet keys` never
/// overwrite each other's changes.
pub struct OpenKeystore {
    pub keystore: Keystore,
    _lock: KeystoreLock,
}

/// Opens (with `create`, creating) the keystore of `data_dir` under the
/// writers' lock. A data dir with a pre-keystore `pseudonym.key` has that key
/// imported when the keystore is created, so pseudonyms do not change.
pub fn open(
    data_dir: &Path,
    master_key_file: Option<&Path>,
    create: bool,
) -> Result<OpenKeystore, KeyringError> {
    let master = master_key(data_dir, master_key_file, create)?;
    open_with(&master, data_dir, create)
}

/// [`open`] with the master key given.
pub fn open_with(
    master: &MasterKey,
    data_dir: &Path,
    create: bool,
) -> Result<OpenKeystore, KeyringError> {
    let path = keystore_path(data_dir);
    let err = |source| KeyringError::Keystore {
        path: path.clone(),
        source,
    };
    let lock = Keystore::lock(&path).map_err(err)?;
    let keystore = if create {
        let (mut keystore, created) = Keystore::open_or_create(&path, master).map_err(err)?;
        let legacy = data_dir.join(LEGACY_PSEUDONYM_KEY_FILE);
        if created && legacy.exists() {
            let key = vault::TokenKey::load(&legacy).map_err(err)?;
            keystore.import_token_key(&key);
            keystore.save().map_err(err)?;
            tracing::info!(
                path = %legacy.display(),
                "imported the pseudonym key into the keystore; the old file is no longer used and may be deleted"
            );
        }
        keystore
    } else {
        Keystore::open(&path, master).map_err(err)?
    };
    Ok(OpenKeystore {
        keystore,
        _lock: lock,
    })
}

/// Makes sure every encrypted column has its keys; saves when it added any.
pub fn ensure_columns<'a>(
    open: &mut OpenKeystore,
    columns: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), KeyringError> {
    let mut changed = false;
    for (table, column) in columns {
        changed |= open
            .keystore
            .ensure_column(table, column)
            .map_err(|source| KeyringError::Keystore {
                path: open.keystore.path().to_path_buf(),
                source,
            })?;
    }
    if changed {
        open.keystore
            .save()
            .map_err(|source| KeyringError::Keystore {
                path: open.keystore.path().to_path_buf(),
                source,
            })?;
    }
    Ok(())
}

/// Whether `path` lies inside `dir` (compared after resolving both where
/// they exist, so `./data/../data/key` is caught too).
fn inside(path: &Path, dir: &Path) -> bool {
    let resolve = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) => std::fs::canonicalize(parent)
                .map(|d| d.join(name))
                .unwrap_or_else(|_| p.to_path_buf()),
            _ => p.to_path_buf(),
        })
    };
    resolve(path).starts_with(resolve(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_master_key_lives_beside_the_data_dir() {
        assert_eq!(
            default_master_key_file(Path::new("/srv/privet/data")),
            Path::new("/srv/privet/privet-master.key")
        );
        assert_eq!(
            default_master_key_file(Path::new("privet-data")),
            Path::new("./privet-master.key")
        );
    }

    #[test]
    fn a_master_key_file_inside_the_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        // Only meaningful without the environment variable, which wins.
        if std::env::var_os(MasterKey::ENV).is_some() {
            return;
        }
        let err = master_key(&data, Some(&data.join("master.key")), true).unwrap_err();
        assert!(matches!(err, KeyringError::InsideDataDir { .. }), "{err}");
        assert!(!data.join("master.key").exists());
        let nested = data.join("sub").join("..").join("master.key");
        assert!(master_key(&data, Some(&nested), true).is_err());
        // Beside it is fine, and creates the file (mode 0600).
        let beside = dir.path().join("master.key");
        master_key(&data, Some(&beside), true).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&beside).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
