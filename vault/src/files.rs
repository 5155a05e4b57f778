//! File helpers shared by the key files and the keystore: private (0600)
//! creation, permission checks, atomic replacement and directory syncs.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

use crate::error::VaultError;

/// A fresh name beside `path` (same directory, so linking it into place
/// stays on one file system).
pub(crate) fn temp_path(path: &Path) -> Result<PathBuf, VaultError> {
    let mut suffix = [0u8; 8];
    SystemRandom::new()
        .fill(&mut suffix)
        .map_err(|_| VaultError::Random)?;
    let suffix = crate::util::hex(&suffix);
    Ok(with_suffix(path, &format!(".{suffix}.tmp")))
}

/// `path` with `suffix` appended to its file name (`keystore.pvk.tmp`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Options that create a file readable by its owner only.
fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Set at creation, so the key is never readable by others, not even
        // briefly.
        options.mode(0o600);
    }
    options
}

/// Creates `path` (which must not exist) readable by its owner only, writes
/// `bytes` and syncs them to disk.
pub(crate) fn write_new_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = private_options().open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Replaces `path` with `bytes` so that a crash at any point leaves either
/// the old or the new content: write `<path>.tmp`, fsync it, rename it over
/// `path`, fsync the directory.
///
/// A `.tmp` left by an earlier crash is removed first: it was never renamed,
/// so it never was the real file.
pub(crate) fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let tmp = with_suffix(path, ".tmp");
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(VaultError::io(&tmp, e)),
        _ => {}
    }
    if let Err(e) = write_new_file(&tmp, bytes) {
        // A partial temporary file is useless; the real file is untouched.
        let _ = fs::remove_file(&tmp);
        return Err(VaultError::io(&tmp, e));
    }
    fs::rename(&tmp, path).map_err(|e| VaultError::io(path, e))?;
    sync_parent(path)
}

/// Opens a file holding secrets, refusing (on Unix) one that group or others
/// can access. The check is made on the opened file, so the file checked is
/// the file read.
pub(crate) fn open_private(path: &Path) -> Result<(File, Metadata), VaultError> {
    let file = File::open(path).map_err(|e| VaultError::io(path, e))?;
    let meta = file.metadata().map_err(|e| VaultError::io(path, e))?;
    if !meta.is_file() {
        return Err(VaultError::BadKeyFile {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(VaultError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    Ok((file, meta))
}

/// Syncs the directory holding `path` so the new entry survives a crash.
pub(crate) fn sync_parent(path: &Path) -> Result<(), VaultError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| VaultError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
