//! First start with no config: make `privet serve` useful in one command.
//! Creates the demo SQLite store, the default policies, API keys for the
//! demo principals, and a config pointing at all of it. A second start finds
//! the config and reuses everything.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use policies::DEFAULT_POLICY_FILES;

use crate::keys::{self, KeyHash, ScramVerifier};
use crate::seed::{self, SeedOptions, SeedSummary};

/// File names inside a data dir.
pub const CONFIG_FILE: &str = "privet.toml";
pub const STORE_FILE: &str = "store.sqlite3";
pub const POLICIES_DIR: &str = "policies";
pub const CREDENTIALS_FILE: &str = "demo-credentials.json";

/// Seed of the demo data: every fresh demo store holds the same rows.
pub const DEMO_SEED: u64 = 1;

/// A demo principal of ARCHITECTURE.md, with an example query for the tour.
pub struct DemoPrincipal {
    pub name: &'static str,
    pub kind: &'static str,
    pub roles: &'static [&'static str],
    pub attributes: &'static [(&'static str, &'static str)],
    pub purposes: &'static [&'static str],
    /// A query its policies allow, shown with its key; `None` for principals
    /// that read no raw rows.
    pub example_sql: Option<&'static str>,
    /// ε for differentially private aggregates in exports.
    pub privacy_budget: Option<&'static str>,
}

pub const DEMO_PRINCIPALS: &[DemoPrincipal] = &[
    DemoPrincipal {
        name: "recs-service",
        kind: "service",
        roles: &[],
        attributes: &[],
        purposes: &["recommendation"],
        example_sql: Some("SELECT product_id, kind, ts FROM events ORDER BY id LIMIT 3"),
        privacy_budget: None,
    },
    DemoPrincipal {
        name: "marketing-service",
        kind: "service",
        roles: &[],
        attributes: &[],
        purposes: &["marketing"],
        example_sql: Some("SELECT id, region, marketing_opt_in FROM customers ORDER BY id LIMIT 3"),
        privacy_budget: None,
    },
    DemoPrincipal {
        name: "support-agent-eu",
        kind: "user",
        roles: &["support"],
        attributes: &[("region", "EU")],
        purposes: &["support"],
        example_sql: Some("SELECT id, subject, status FROM support_tickets ORDER BY id LIMIT 3"),
        privacy_budget: None,
    },
    DemoPrincipal {
        name: "orders-service",
        kind: "service",
        roles: &[],
        attributes: &[],
        purposes: &["fulfilment"],
        example_sql: Some("SELECT id, status, total_cents FROM orders ORDER BY id LIMIT 3"),
        privacy_budget: None,
    },
    DemoPrincipal {
        name: "compliance-officer",
        kind: "user",
        roles: &[],
        attributes: &[],
        purposes: &["compliance"],
        example_sql: None,
        privacy_budget: None,
    },
    DemoPrincipal {
        name: "ml-team",
        kind: "user",
        roles: &[],
        attributes: &[],
        purposes: &["analytics"],
        example_sql: None,
        privacy_budget: Some("10"),
    },
    DemoPrincipal {
        name: "admin",
        kind: "user",
        roles: &[],
        attributes: &[],
        purposes: &["admin"],
        example_sql: Some("SELECT count(*) AS payments FROM payments"),
        privacy_budget: None,
    },
];

/// Classification of the demo schema's personal data.
/// (column, category, pseudonym domain). Every customer id shares the
/// domain "customer", so pseudonymous joins across tables work.
pub const DEMO_CLASSIFICATION: &[(&str, &str, Option<&str>)] = &[
    ("customers.id", "identifier", Some("customer")),
    ("customers.email", "email", None),
    ("customers.full_name", "name", None),
    ("customers.phone", "phone", None),
    ("customers.phone_bidx", "phone", None),
    ("customers.birth_date", "dob", None),
    ("customers.zip", "address", None),
    ("customers.city", "address", None),
    ("orders.customer_id", "identifier", Some("customer")),
    ("orders.shipping_address", "address", None),
    ("orders.shipping_zip", "address", None),
    ("payments.card_number", "card", None),
    ("payments.card_last4", "card", None),
    ("events.customer_id", "identifier", Some("customer")),
    ("events.session_id", "identifier", None),
    ("events.ip_address", "ip", None),
    (
        "support_tickets.customer_id",
        "identifier",
        Some("customer"),
    ),
    ("support_tickets.subject", "free_text", None),
    ("support_tickets.body", "free_text", None),
    ("reviews.customer_id", "identifier", Some("customer")),
    ("reviews.body", "free_text", None),
];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Seed(#[from] seed::SeedError),
    #[error(transparent)]
    Random(#[from] keys::RandomError),
    #[error(transparent)]
    Keys(#[from] crate::keyring::KeyringError),
}

/// What the bootstrap did.
#[derive(Debug)]
pub struct Bootstrap {
    pub config_path: PathBuf,
    /// Set when this run created the demo store.
    pub seeded: Option<SeedSummary>,
    /// Set when this run generated keys: principal → key, to print once.
    pub new_credentials: Option<BTreeMap<String, String>>,
}

/// Makes sure `data_dir` holds a usable demo setup; creates what is missing.
pub fn bootstrap(data_dir: &Path, progress: bool) -> Result<Bootstrap, DemoError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DemoError::Io { path, source }
    };
    create_private_dir(data_dir).map_err(io(data_dir))?;
    let config_path = data_dir.join(CONFIG_FILE);
    if config_path.is_file() {
        return Ok(Bootstrap {
            config_path,
            seeded: None,
            new_credentials: None,
        });
    }

    let store = data_dir.join(STORE_FILE);
    let seeded = if store.exists() {
        None
    } else {
        let opts = SeedOptions {
            scale: 1.0,
            seed: DEMO_SEED,
            progress,
        };
        let mut keys = crate::keyring::open(data_dir, None, true)?;
        Some(seed::seed_sqlite(&store, &opts, false, &mut keys)?)
    };

    let policies = data_dir.join(POLICIES_DIR);
    if !policies.exists() {
        create_private_dir(&policies).map_err(io(&policies))?;
        for (name, text) in DEFAULT_POLICY_FILES {
            let path = policies.join(name);
            write_atomically(&path, text.as_bytes(), 0o644).map_err(io(&path))?;
        }
    }

    let datasets = data_dir.join(crate::export::DATASETS_DIR);
    if !datasets.exists() {
        create_private_dir(&datasets).map_err(io(&datasets))?;
        for (name, text) in crate::export::DEMO_SPECS {
            let path = datasets.join(name);
            write_atomically(&path, text.as_bytes(), 0o644).map_err(io(&path))?;
        }
    }

    let mut credentials = BTreeMap::new();
    for p in DEMO_PRINCIPALS {
        credentials.insert(p.name.to_string(), keys::generate_key()?);
    }
    let creds_path = data_dir.join(CREDENTIALS_FILE);
    let creds_json = serde_json::to_vec_pretty(&credentials).map_err(|e| DemoError::Io {
        path: creds_path.clone(),
        source: e.into(),
    })?;
    // Keys in clear: readable by the owner only.
    write_atomically(&creds_path, &creds_json, 0o600).map_err(io(&creds_path))?;
    // The config goes last: its presence means "bootstrap complete".
    write_atomically(&config_path, demo_config(&credentials)?.as_bytes(), 0o600)
        .map_err(io(&config_path))?;
    Ok(Bootstrap {
        config_path,
        seeded,
        new_credentials: Some(credentials),
    })
}

/// The generated config for the demo principals and keys: their SHA-256
/// hashes, and their SCRAM verifiers for the PostgreSQL wire front.
fn demo_config(credentials: &BTreeMap<String, String>) -> Result<String, keys::RandomError> {
    let quoted = |items: &[&str]| {
        items
            .iter()
            .map(|i| format!("\"{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::from(
        "# Generated by `privet serve` on first start. Edit freely: it is read on\n\
         # every start. Documented example: privet.example.toml in the source tree.\n\
         # The API keys themselves are in demo-credentials.json (mode 0600);\n\
         # only their SHA-256 hashes and SCRAM verifiers are here.\n\n\
         listen = \"127.0.0.1:8080\"\n\
         backend = \"sqlite:store.sqlite3\"\n\
         policies = \"policies\"\n\n\
         # The PostgreSQL wire front (psql, drivers): uncomment to serve it on\n\
         # every start, or pass --pg-listen. See README, \"PostgreSQL wire protocol\".\n\
         # [pg]\n\
         # listen = \"127.0.0.1:6432\"\n",
    );
    for p in DEMO_PRINCIPALS {
        let key = credentials
            .get(p.name)
            .map(String::as_str)
            .unwrap_or_default();
        let hash = KeyHash::of(key).to_hex();
        let verifier = ScramVerifier::generate(key)?;
        let _ = write!(
            out,
            "\n[[principals]]\nname = \"{}\"\nkind = \"{}\"\nroles = [{}]\npurposes = [{}]\napi_key_sha256 = \"{hash}\"\npg_scram_sha256 = \"{verifier}\"\n",
            p.name,
            p.kind,
            quoted(p.roles),
            quoted(p.purposes),
        );
        if let Some(budget) = p.privacy_budget {
            let _ = writeln!(out, "privacy_budget = \"{budget}\"");
        }
        if !p.attributes.is_empty() {
            let _ = writeln!(out, "[principals.attributes]");
            for (k, v) in p.attributes {
                let _ = writeln!(out, "{k} = \"{v}\"");
            }
        }
    }
    out.push_str("\n[classification]\n");
    for (column, category, domain) in DEMO_CLASSIFICATION {
        let domain = domain
            .map(|d| format!(", domain = \"{d}\""))
            .unwrap_or_default();
        let encrypted = if crate::keyring::DEMO_ENCRYPTED
            .iter()
            .any(|(t, c)| format!("{t}.{c}") == *column)
        {
            ", encrypted = true"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "\"{column}\" = {{ category = \"{category}\"{domain}{encrypted} }}"
        );
    }
    Ok(out)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes a file whole or not at all: temp file, fsync, rename.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_demo_config_parses_and_matches_the_keys() {
        let mut credentials = BTreeMap::new();
        for p in DEMO_PRINCIPALS {
            credentials.insert(p.name.to_string(), keys::generate_key().unwrap());
        }
        let text = demo_config(&credentials).unwrap();
        let config = Config::parse(Path::new("/d/privet.toml"), &text).unwrap();
        assert_eq!(config.principals.len(), DEMO_PRINCIPALS.len());
        for p in &config.principals {
            let key = &credentials[&p.spec.name];
            assert_eq!(p.api_key_sha256, KeyHash::of(key));
            let verifier = p.pg_scram_sha256.clone().expect("a SCRAM verifier");
            assert_eq!(
                ScramVerifier::derive(key, &verifier.salt, verifier.iterations),
                verifier
            );
        }
        let support = config
            .principals
            .iter()
            .find(|p| p.spec.name == "support-agent-eu")
            .unwrap();
        assert_eq!(
            support.spec.attributes.get("region").map(String::as_str),
            Some("EU")
        );
        assert_eq!(support.spec.roles, ["support"]);
        assert_eq!(config.classification.len(), DEMO_CLASSIFICATION.len());
    }

    #[test]
    fn bootstrap_creates_everything_once_and_keeps_keys_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // A small store first, so the test does not seed scale 1.
        let opts = SeedOptions {
            scale: 0.01,
            seed: 7,
            progress: false,
        };
        create_private_dir(&data).unwrap();
        seed::seed_sqlite(
            &data.join(STORE_FILE),
            &opts,
            false,
            &mut crate::testing::test_keys().keys,
        )
        .unwrap();

        let first = bootstrap(&data, false).unwrap();
        assert!(first.seeded.is_none(), "the existing store is reused");
        let creds = first
            .new_credentials
            .expect("keys generated on first start");
        assert_eq!(creds.len(), DEMO_PRINCIPALS.len());
        let on_disk: BTreeMap<String, String> =
            serde_json::from_slice(&std::fs::read(data.join(CREDENTIALS_FILE)).unwrap()).unwrap();
        assert_eq!(on_disk, creds);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join(CREDENTIALS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(data.join(POLICIES_DIR).join("marketing.cedar").is_file());

        let second = bootstrap(&data, false).unwrap();
        assert!(
            second.new_credentials.is_none(),
            "a second start reuses the keys"
        );
        let again: BTreeMap<String, String> =
            serde_json::from_slice(&std::fs::read(data.join(CREDENTIALS_FILE)).unwrap()).unwrap();
        assert_eq!(again, creds);
    }
}
