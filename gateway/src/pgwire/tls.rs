//! TLS for the wire front: the configured certificate and key, or a
//! self-signed pair generated into `DATA_DIR/pg-tls/` on first start (so
//! the demo encrypts out of the box; clients pin its SHA-256 fingerprint or
//! use `sslmode=require`, which does not verify certificates).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::pgwire::tokio::tokio_rustls::rustls;
use ::pgwire::tokio::TlsAcceptor;
use ring::digest::{digest, SHA256};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::PgConfig;

/// The directory of the generated pair, inside the data dir.
pub const GENERATED_DIR: &str = "pg-tls";
const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";
/// ALPN of PostgreSQL 17's direct TLS (`sslnegotiation=direct`).
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// The wire front's TLS: the acceptor, and what clients may check.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// The certificate chain as PEM, for SCRAM channel binding
    /// (`tls-server-end-point` hashes the leaf certificate).
    pub cert_pem: Vec<u8>,
    /// SHA-256 of the leaf certificate (DER), `AB:CD:...`, as
    /// `openssl x509 -fingerprint -sha256` prints it.
    pub fingerprint: String,
    /// The certificate file in use.
    pub cert_path: PathBuf,
    /// Set when this start generated the self-signed pair.
    pub generated: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert_path", &self.cert_path)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("cannot generate the self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The configured pair, else the generated one in `DATA_DIR/pg-tls/`
/// (created on first use; the key mode 0600).
pub fn load_or_generate(pg: &PgConfig, data_dir: &Path) -> Result<Tls, TlsError> {
    let (cert_path, key_path, generated) = match (&pg.tls_cert, &pg.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone(), false),
        _ => {
            let dir = data_dir.join(GENERATED_DIR);
            let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
            let generated = !(cert.is_file() && key.is_file());
            if generated {
                generate(&dir, &cert, &key, pg)?;
            }
            (cert, key, generated)
        }
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    let cert_pem = std::fs::read(&cert_path).map_err(io(&cert_path))?;
    let key_pem = std::fs::read(&key_path).map_err(io(&key_path))?;
    let pem_error = |path: &Path, message: String| TlsError::Pem {
        path: path.to_path_buf(),
        message,
    };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&cert_path, format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(pem_error(&cert_path, "holds no certificate".into()));
    };
    let fingerprint = fingerprint(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| pem_error(&key_path, format!("not a PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_pem,
        fingerprint,
        cert_path,
        generated,
    })
}

/// `AB:CD:...`: SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    digest(&SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A self-signed ECDSA P-256 certificate for localhost and the listen
/// address, valid for rcgen's default span; the key written first (0600)
/// so a crash never leaves a certificate without its key.
fn generate(dir: &Path, cert: &Path, key: &Path, pg: &PgConfig) -> Result<(), TlsError> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let ip = pg.listen.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        names.push(ip.to_string());
    }
    let pair = rcgen::generate_simple_self_signed(names)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io(dir))?;
    crate::demo::write_atomically(key, pair.signing_key.serialize_pem().as_bytes(), 0o600)
        .map_err(io(key))?;
    crate::demo::write_atomically(cert, pair.cert.pem().as_bytes(), 0o644).map_err(io(cert))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_is_generated_once_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let pg = PgConfig::at("127.0.0.1:6432".parse().unwrap());
        let first = load_or_generate(&pg, dir.path()).unwrap();
        assert!(first.generated);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = dir.path().join(GENERATED_DIR).join(KEY_FILE);
            let mode = std::fs::metadata(key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = load_or_generate(&pg, dir.path()).unwrap();
        assert!(!second.generated);
        assert_eq!(second.fingerprint, first.fingerprint);

        // A configured pair is used as is; a broken one is named.
        let configured = PgConfig {
            tls_cert: Some(first.cert_path.clone()),
            tls_key: Some(dir.path().join(GENERATED_DIR).join(KEY_FILE)),
            ..pg.clone()
        };
        let other = tempfile::tempdir().unwrap();
        let third = load_or_generate(&configured, other.path()).unwrap();
        assert_eq!(third.fingerprint, first.fingerprint);
        assert!(!other.path().join(GENERATED_DIR).exists());
        let broken = PgConfig {
            tls_key: Some(first.cert_path.clone()),
            ..configured
        };
        let e = load_or_generate(&broken, other.path()).unwrap_err();
        assert!(e.to_string().contains("not a PEM private key"), "{e}");
    }
}
