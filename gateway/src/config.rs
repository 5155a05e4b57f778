//! `privet.toml`: parsing, validation, and errors that name the file, the
//! line and the field. See `privet.example.toml` at the repository root for a
//! documented example.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use policies::{Category, PrincipalKind, PrincipalSpec};
use serde::Deserialize;
use toml::Spanned;

use crate::keys::{KeyHash, ScramVerifier};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default address of the PostgreSQL wire front (`[pg]` without `listen`).
pub const DEFAULT_PG_LISTEN: &str = "127.0.0.1:6432";
/// Wire-protocol connections idle longer are closed (SQLSTATE 57P05).
pub const DEFAULT_PG_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// A config error: where it is and what is wrong. Startup stops with exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based; `None` when the error concerns the file as a whole.
    pub line: Option<usize>,
    /// The field, as a dotted path (`principals[2].api_key_sha256`), where known.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error in {}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Which database Privet governs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// An SQLite file (the embedded default).
    Sqlite { path: PathBuf },
    /// A PostgreSQL database: the tables of one schema are governed.
    Postgres { url: PostgresUrl, schema: String },
}

/// The schema governed when none is configured.
pub const DEFAULT_POSTGRES_SCHEMA: &str = "public";

/// A PostgreSQL connection string. It may hold a password, so it is never
/// shown: `Display` and `Debug` give [`PostgresUrl::redacted`].
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    url: String,
    redacted: String,
}

impl PostgresUrl {
    /// Validates a `postgres://` or `postgresql://` URL (or key=value
    /// string). Errors never repeat the string: it may hold a password.
    /// Without a password in the URL, `PGPASSWORD` from the environment is
    /// used, as libpq does.
    pub fn parse(url: &str) -> Result<PostgresUrl, String> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("not a valid PostgreSQL connection string ({e})"))?;
        if config.get_hosts().is_empty() {
            return Err("the PostgreSQL connection string names no host".into());
        }
        let host = |i: usize| match config.get_hosts().get(i) {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => String::new(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let redacted = format!(
            "postgres://{}@{}:{port}/{}",
            config.get_user().unwrap_or("postgres"),
            host(0),
            config
                .get_dbname()
                .unwrap_or(config.get_user().unwrap_or("postgres")),
        );
        Ok(PostgresUrl {
            url: url.to_owned(),
            redacted,
        })
    }

    /// `postgres://user@host:port/db`: the server, never the password.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The connection settings (with the password, if any).
    pub fn connect_config(&self) -> tokio_postgres::Config {
        // Parsed once already in `parse`, so this cannot fail; fall back to
        // an empty config (which fails to connect, naming no secret) anyway.
        let mut config: tokio_postgres::Config = self.url.parse().unwrap_or_default();
        if config.get_password().is_none() {
            if let Ok(password) = std::env::var("PGPASSWORD") {
                config.password(password);
            }
        }
        if config.get_application_name().is_none() {
            config.application_name("privet");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        config
    }
}

impl std::fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresUrl({})", self.redacted)
    }
}

impl BackendConfig {
    /// Where the data are, for messages and logs: never a password.
    pub fn describe(&self) -> String {
        match self {
            BackendConfig::Sqlite { path } => format!("sqlite:{}", path.display()),
            BackendConfig::Postgres { url, schema } => format!("{url} (schema {schema})"),
        }
    }

    /// A backend from a `--backend` value: `sqlite:PATH` (relative to
    /// `data_dir`) or a PostgreSQL URL.
    pub fn from_arg(
        value: &str,
        schema: Option<&str>,
        data_dir: &Path,
    ) -> Result<BackendConfig, String> {
        parse_backend_value(value, schema, data_dir)
    }
}

/// Operational limits. Every one has a safe default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Rows returned per query at most; the response says `truncated` beyond.
    pub max_rows: usize,
    /// A query running longer is interrupted (504 `query_timeout`).
    pub statement_timeout: Duration,
    /// Concurrent backend queries (the connection pool size).
    pub pool_size: usize,
    /// How long a request waits for a pooled connection before 503.
    pub pool_wait: Duration,
    /// Concurrent HTTP connections; more wait in the listen backlog.
    pub max_connections: usize,
    /// A request body must arrive within this time (408 `request_timeout`).
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rows: 10_000,
            statement_timeout: Duration::from_secs(30),
            pool_size: 8,
            pool_wait: Duration::from_secs(5),
            max_connections: 1024,
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// A principal: who it is for Cedar, which purposes it may declare, and the
/// SHA-256 of its API key (the key itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalConfig {
    pub spec: PrincipalSpec,
    pub purposes: BTreeSet<String>,
    pub api_key_sha256: KeyHash,
    /// The ε budget for DP aggregates, in millionths
    /// ([`anonymizer::dp::MICRO`]); `None` refuses every DP aggregate.
    pub privacy_budget_micro: Option<u64>,
    /// The SCRAM-SHA-256 verifier of the API key, for logins over the
    /// PostgreSQL wire front; `None`: this principal cannot log in there.
    pub pg_scram_sha256: Option<ScramVerifier>,
}

/// `[pg]`: the PostgreSQL wire-protocol front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// Where it listens; `privet serve --pg-listen` overrides it.
    pub listen: SocketAddr,
    /// PEM certificate chain and private key; both or neither. Neither: a
    /// self-signed pair generated into `DATA_DIR/pg-tls/` on first start.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Refuse logins without TLS; `None`: required unless the listen
    /// address is loopback (see [`PgConfig::requires_tls`]).
    pub require_tls: Option<bool>,
    /// Connections idle longer are closed (SQLSTATE 57P05).
    pub idle_timeout: Duration,
}

impl PgConfig {
    /// The settings when `[pg]` is absent (`--pg-listen ADDR` alone).
    pub fn at(listen: SocketAddr) -> PgConfig {
        PgConfig {
            listen,
            tls_cert: None,
            tls_key: None,
            require_tls: None,
            idle_timeout: DEFAULT_PG_IDLE_TIMEOUT,
        }
    }

    /// Whether plaintext logins on `listen` are refused: as configured,
    /// else everywhere but loopback (where the traffic never leaves the host).
    pub fn requires_tls(&self, listen: SocketAddr) -> bool {
        self.require_tls.unwrap_or(!listen.ip().is_loopback())
    }
}

/// A column's classification as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnClass {
    pub category: Category,
    pub encrypted: bool,
    /// Pseudonym domain: columns sharing one get equal tokens for equal
    /// values, so joins on pseudonyms work (e.g. every customer id column in
    /// domain "customer"). Default: "table.column".
    pub domain: Option<String>,
    /// Config line, for errors found later (a column the database lacks).
    pub line: usize,
}

/// A validated configuration. Relative paths are resolved against the
/// directory of the config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub backend: BackendConfig,
    pub policies_dir: PathBuf,
    /// Dataset export specs (`NAME.toml`); default `DATA_DIR/datasets`.
    pub datasets_dir: PathBuf,
    pub limits: Limits,
    pub principals: Vec<PrincipalConfig>,
    /// Keyed by (table, column), as written (lower-cased for SQLite lookups).
    pub classification: BTreeMap<(String, String), ColumnClass>,
    /// The master key file; `None`: `PRIVET_MASTER_KEY`, else
    /// `privet-master.key` beside the data dir (see [`crate::keyring`]).
    pub master_key_file: Option<PathBuf>,
    /// Anomaly detection (`[anomaly]`).
    pub anomaly: AnomalyConfig,
    /// The PostgreSQL wire front (`[pg]`); `None`: served only with
    /// `privet serve --pg-listen`.
    pub pg: Option<PgConfig>,
}

/// `[anomaly]`: the detector's settings and what to do at which score.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyConfig {
    /// Off: no scoring (every event says score 0, action `none`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Baselines, in `DATA_DIR/anomaly-state.json`.
    #[serde(default)]
    pub detector: anomaly::DetectorConfig,
    /// `[anomaly.actions.default]` and `[anomaly.actions.principals.NAME]`:
    /// ladders of `{ threshold, action, retry_after_secs }`.
    #[serde(default)]
    pub actions: anomaly::ActionPolicies,
}

fn yes() -> bool {
    true
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            enabled: true,
            detector: anomaly::DetectorConfig::default(),
            actions: anomaly::ActionPolicies::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
    backend: Option<Spanned<String>>,
    schema: Option<Spanned<String>>,
    policies: Option<Spanned<String>>,
    datasets: Option<Spanned<String>>,
    master_key_file: Option<Spanned<String>>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    principals: Vec<RawPrincipal>,
    #[serde(default)]
    classification: BTreeMap<String, Spanned<RawClass>>,
    #[serde(default)]
    anomaly: AnomalyConfig,
    pg: Option<Spanned<RawPg>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPg {
    listen: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    require_tls: Option<bool>,
    idle_timeout_secs: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_rows: Option<Spanned<u64>>,
    statement_timeout_ms: Option<Spanned<u64>>,
    pool_size: Option<Spanned<u64>>,
    pool_wait_ms: Option<Spanned<u64>>,
    max_connections: Option<Spanned<u64>>,
    body_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipal {
    name: Spanned<String>,
    kind: PrincipalKind,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    purposes: Spanned<Vec<String>>,
    api_key_sha256: Spanned<String>,
    /// Total ε this principal may spend on differentially private
    /// aggregates in exports (`"10"`, `"2.5"`); none: no DP aggregates.
    privacy_budget: Option<Spanned<String>>,
    /// SCRAM-SHA-256 verifier of the API key (PostgreSQL's format), for
    /// the wire front (`privet keys pg-verifier` prints it).
    pg_scram_sha256: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    category: Category,
    #[serde(default)]
    encrypted: bool,
    domain: Option<String>,
}

/// Turns byte offsets into line numbers.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn error<T>(
        &self,
        spanned: &Spanned<T>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            path: self.path.to_path_buf(),
            line: Some(self.line(spanned.span().start)),
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Config {
    /// Reads and validates a config file. `data_dir` (the CLI's
    /// `--data-dir`) overrides the file's `data_dir`.
    pub fn load(path: &Path, data_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: None,
            field: None,
            message: format!("cannot read the file: {e}"),
        })?;
        Config::parse_with(path, &text, data_dir)
    }

    /// Validates config text; `path` locates relative paths and errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(path, text, None)
    }

    fn parse_with(
        path: &Path,
        text: &str,
        data_dir_override: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let src = Source { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| src.line(s.start));
            let snippet = line
                .and_then(|l| text.lines().nth(l - 1))
                .map(|l| format!(" (in `{}`)", l.trim()))
                .unwrap_or_default();
            ConfigError {
                path: path.to_path_buf(),
                line,
                field: None,
                message: format!("{}{snippet}", e.message().trim_end()),
            }
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));

        let listen = match &raw.listen {
            Some(l) => l.get_ref().parse().map_err(|e| {
                src.error(
                    l,
                    "listen",
                    format!(
                        "`{}` is not an address like 127.0.0.1:8080: {e}",
                        l.get_ref()
                    ),
                )
            })?,
            None => DEFAULT_LISTEN.parse().map_err(|e| ConfigError {
                path: path.to_path_buf(),
                line: None,
                field: Some("listen".into()),
                message: format!("bad default: {e}"),
            })?,
        };
        let data_dir = match (data_dir_override, &raw.data_dir) {
            (Some(d), _) => d.to_path_buf(),
            (None, Some(d)) => base.join(d.get_ref()),
            (None, None) => base.to_path_buf(),
        };
        let backend = match &raw.backend {
            None => BackendConfig::Sqlite {
                path: data_dir.join("store.sqlite3"),
            },
            Some(b) => parse_backend_value(
                b.get_ref(),
                raw.schema.as_ref().map(|s| s.get_ref().as_str()),
                &data_dir,
            )
            .map_err(|message| src.error(b, "backend", message))?,
        };
        if let (Some(schema), BackendConfig::Sqlite { .. }) = (&raw.schema, &backend) {
            return Err(src.error(
                schema,
                "schema",
                "`schema` applies to PostgreSQL backends only",
            ));
        }
        let policies_dir = match &raw.policies {
            Some(p) => base.join(p.get_ref()),
            None => data_dir.join("policies"),
        };
        let datasets_dir = match &raw.datasets {
            Some(p) => base.join(p.get_ref()),
            None => data_dir.join("datasets"),
        };
        let limits = parse_limits(&src, &raw.limits)?;
        let principals = parse_principals(&src, raw.principals)?;
        let mut classification = BTreeMap::new();
        for (key, class) in raw.classification {
            let field = format!("classification.\"{key}\"");
            let Some((table, column)) = key
                .split_once('.')
                .filter(|(t, c)| is_valid_name(t) && !c.is_empty())
            else {
                return Err(src.error(
                    &class,
                    field,
                    "keys are \"table.column\", e.g. \"customers.email\"",
                ));
            };
            classification.insert(
                (table.to_string(), column.to_string()),
                ColumnClass {
                    category: class.get_ref().category,
                    encrypted: class.get_ref().encrypted,
                    domain: class.get_ref().domain.clone(),
                    line: src.line(class.span().start),
                },
            );
        }
        let master_key_file = raw.master_key_file.as_ref().map(|p| base.join(p.get_ref()));
        let pg = raw
            .pg
            .as_ref()
            .map(|pg| parse_pg(&src, pg, base))
            .transpose()?;
        Ok(Config {
            path: path.to_path_buf(),
            listen,
            data_dir,
            backend,
            policies_dir,
            datasets_dir,
            limits,
            principals,
            classification,
            master_key_file,
            anomaly: raw.anomaly,
            pg,
        })
    }

    /// Pseudonym domains by (table, column), lower case, for the columns
    /// whose classification names one.
    pub fn pseudonym_domains(&self) -> std::collections::HashMap<(String, String), String> {
        self.classification
            .iter()
            .filter_map(|((t, c), class)| {
                let domain = class.domain.clone()?;
                Some(((t.to_ascii_lowercase(), c.to_ascii_lowercase()), domain))
            })
            .collect()
    }

    /// An error about a classification entry, found after loading (e.g. a
    /// column the database does not have).
    pub fn classification_error(&self, table: &str, column: &str, message: String) -> ConfigError {
        ConfigError {
            path: self.path.clone(),
            line: self
                .classification
                .get(&(table.to_string(), column.to_string()))
                .map(|c| c.line),
            field: Some(format!("classification.\"{table}.{column}\"")),
            message,
        }
    }
}

/// `sqlite:PATH` or `postgres://...`. Errors never echo the value: it may
/// be a connection string with a password.
fn parse_backend_value(
    value: &str,
    schema: Option<&str>,
    data_dir: &Path,
) -> Result<BackendConfig, String> {
    if let Some(path) = value.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if path.is_empty() {
            return Err("sqlite: needs a file path, e.g. \"sqlite:store.sqlite3\"".into());
        }
        return Ok(BackendConfig::Sqlite {
            path: data_dir.join(path),
        });
    }
    let scheme = value.split(':').next().unwrap_or_default();
    if scheme == "postgres" || scheme == "postgresql" {
        let schema = schema.unwrap_or(DEFAULT_POSTGRES_SCHEMA);
        if schema.is_empty() || schema.contains('\0') {
            return Err(format!("`{schema}` is not a schema name"));
        }
        return Ok(BackendConfig::Postgres {
            url: PostgresUrl::parse(value)?,
            schema: schema.to_owned(),
        });
    }
    Err(format!(
        "unsupported backend scheme `{scheme}:`; use \"sqlite:PATH\" (relative to data_dir) \
         or \"postgres://USER@HOST:PORT/DB\""
    ))
}

fn parse_limits(src: &Source<'_>, raw: &RawLimits) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    let check = |v: &Option<Spanned<u64>>,
                 field: &str,
                 min: u64,
                 max: u64|
     -> Result<Option<u64>, ConfigError> {
        match v {
            None => Ok(None),
            Some(s) if (min..=max).contains(s.get_ref()) => Ok(Some(*s.get_ref())),
            Some(s) => Err(src.error(
                s,
                format!("limits.{field}"),
                format!("must be between {min} and {max}, got {}", s.get_ref()),
            )),
        }
    };
    let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    if let Some(v) = check(&raw.max_rows, "max_rows", 1, 1_000_000)? {
        limits.max_rows = to_usize(v);
    }
    if let Some(v) = check(
        &raw.statement_timeout_ms,
        "statement_timeout_ms",
        1,
        3_600_000,
    )? {
        limits.statement_timeout = Duration::from_millis(v);
    }
    if let Some(v) = check(&raw.pool_size, "pool_size", 1, 1024)? {
        limits.pool_size = to_usize(v);
    }
    if let Some(v) = check(&raw.pool_wait_ms, "pool_wait_ms", 0, 600_000)? {
        limits.pool_wait = Duration::from_millis(v);
    }
    if let Some(v) = check(&raw.max_connections, "max_connections", 1, 1_000_000)? {
        limits.max_connections = to_usize(v);
    }
    if let Some(v) = check(&raw.body_timeout_ms, "body_timeout_ms", 1, 600_000)? {
        limits.body_timeout = Duration::from_millis(v);
    }
    Ok(limits)
}

fn parse_pg(src: &Source<'_>, raw: &Spanned<RawPg>, base: &Path) -> Result<PgConfig, ConfigError> {
    let pg = raw.get_ref();
    let listen = match &pg.listen {
        None => DEFAULT_PG_LISTEN
            .parse()
            .map_err(|e| src.error(raw, "pg.listen", format!("bad default: {e}")))?,
        Some(l) => l.get_ref().parse().map_err(|e| {
            src.error(
                l,
                "pg.listen",
                format!(
                    "`{}` is not an address like 127.0.0.1:6432: {e}",
                    l.get_ref()
                ),
            )
        })?,
    };
    let (tls_cert, tls_key) = match (&pg.tls_cert, &pg.tls_key) {
        (Some(cert), Some(key)) => (
            Some(base.join(cert.get_ref())),
            Some(base.join(key.get_ref())),
        ),
        (None, None) => (None, None),
        (Some(cert), None) => {
            return Err(src.error(
                cert,
                "pg.tls_key",
                "`tls_cert` needs `tls_key` (the PEM private key of the certificate)",
            ))
        }
        (None, Some(key)) => {
            return Err(src.error(
                key,
                "pg.tls_cert",
                "`tls_key` needs `tls_cert` (the PEM certificate chain)",
            ))
        }
    };
    let idle_timeout = match &pg.idle_timeout_secs {
        None => DEFAULT_PG_IDLE_TIMEOUT,
        Some(secs) if (1..=604_800).contains(secs.get_ref()) => {
            Duration::from_secs(*secs.get_ref())
        }
        Some(secs) => {
            return Err(src.error(
                secs,
                "pg.idle_timeout_secs",
                format!(
                    "must be between 1 and 604800 (a week), got {}",
                    secs.get_ref()
                ),
            ))
        }
    };
    Ok(PgConfig {
        listen,
        tls_cert,
        tls_key,
        require_tls: pg.require_tls,
        idle_timeout,
    })
}

fn parse_principals(
    src: &Source<'_>,
    raw: Vec<RawPrincipal>,
) -> Result<Vec<PrincipalConfig>, ConfigError> {
    let mut principals: Vec<PrincipalConfig> = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("principals[{i}].{field}");
        let name = p.name.get_ref();
        if !is_valid_name(name) {
            return Err(src.error(
                &p.name,
                at("name"),
                format!("`{name}` is not a valid name: use 1-64 letters, digits, `-`, `_` or `.`"),
            ));
        }
        if principals.iter().any(|q| q.spec.name == *name) {
            return Err(src.error(
                &p.name,
                at("name"),
                format!("principal `{name}` is defined twice"),
            ));
        }
        if p.purposes.get_ref().is_empty() {
            return Err(src.error(
                &p.purposes,
                at("purposes"),
                "list at least one purpose this principal may declare",
            ));
        }
        if let Some(bad) = p.purposes.get_ref().iter().find(|s| !is_valid_name(s)) {
            return Err(src.error(
                &p.purposes,
                at("purposes"),
                format!("`{bad}` is not a valid purpose name"),
            ));
        }
        if let Some(bad) = p.roles.iter().find(|s| !is_valid_name(s)) {
            return Err(src.error(
                &p.name,
                at("roles"),
                format!("`{bad}` is not a valid role name"),
            ));
        }
        let hash = KeyHash::from_hex(p.api_key_sha256.get_ref()).ok_or_else(|| {
            src.error(
                &p.api_key_sha256,
                at("api_key_sha256"),
                "must be the SHA-256 of the API key as 64 hex digits (`printf %s \"$KEY\" | sha256sum` prints it)",
            )
        })?;
        if let Some(other) = principals.iter().find(|q| q.api_key_sha256 == hash) {
            return Err(src.error(
                &p.api_key_sha256,
                at("api_key_sha256"),
                format!(
                    "the same API key is already used by `{}`; every principal needs its own key",
                    other.spec.name
                ),
            ));
        }
        let privacy_budget_micro = match &p.privacy_budget {
            None => None,
            Some(text) => Some(anonymizer::dp::parse_epsilon(text.get_ref()).map_err(|e| {
                src.error(
                    text,
                    at("privacy_budget"),
                    format!(
                        "must be a positive ε with at most 6 decimals, like \"10\" or \"2.5\": {e}"
                    ),
                )
            })?),
        };
        let pg_scram_sha256 = match &p.pg_scram_sha256 {
            None => None,
            Some(text) => Some(ScramVerifier::parse(text.get_ref()).map_err(|e| {
                src.error(
                    text,
                    at("pg_scram_sha256"),
                    format!(
                        "not a SCRAM-SHA-256 verifier: {e} (`privet keys pg-verifier` prints one for an API key)"
                    ),
                )
            })?),
        };
        principals.push(PrincipalConfig {
            spec: PrincipalSpec {
                name: name.clone(),
                kind: p.kind,
                roles: p.roles,
                attributes: p.attributes,
            },
            purposes: p.purposes.into_inner().into_iter().collect(),
            api_key_sha256: hash,
            privacy_budget_micro,
            pg_scram_sha256,
        });
    }
    Ok(principals)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const HASH_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/privet/privet.toml"), text)
    }

    fn principal(name: &str, hash: &str) -> String {
        format!("[[principals]]\nname = \"{name}\"\nkind = \"service\"\npurposes = [\"p\"]\napi_key_sha256 = \"{hash}\"\n")
    }

    #[test]
    fn anomaly_ladders_parse_and_bad_ones_name_the_problem() {
        let text = format!(
            "{}\n[anomaly.detector]\nwarmup_requests = 5\n\n[anomaly.actions.principals]\n\"a\" = [{{ threshold = 0.5, action = \"throttle\", retry_after_secs = 30 }}, {{ threshold = 0.9, action = \"block\" }}]\n",
            principal("a", HASH_A)
        );
        let c = parse(&text).unwrap();
        assert!(c.anomaly.enabled);
        assert_eq!(c.anomaly.detector.warmup_requests, 5);
        assert_eq!(
            c.anomaly.actions.decide("a", 0.95),
            Some(anomaly::Action::Block)
        );
        assert_eq!(c.anomaly.actions.decide("a", 0.2), None);
        // Other principals keep the default ladder (log from 0.3).
        assert_eq!(
            c.anomaly.actions.decide("b", 0.35),
            Some(anomaly::Action::Log)
        );
        for (bad, needle) in [
            (
                "[anomaly.actions.principals]\n\"a\" = [{ threshold = 1.5, action = \"log\" }]",
                "[0, 1]",
            ),
            (
                "[anomaly.actions.principals]\n\"a\" = [{ threshold = 0.5, action = \"throttle\" }]",
                "retry_after_secs",
            ),
            ("[anomaly.detector]\nwarmup_request = 5", "warmup_request"),
        ] {
            let err = parse(&format!("{}\n{bad}\n", principal("a", HASH_A)))
                .unwrap_err()
                .to_string();
            assert!(err.contains("line ") && err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn defaults_are_safe_and_relative_to_the_config_file() {
        let c = parse("").unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/etc/privet"));
        assert_eq!(
            c.backend,
            BackendConfig::Sqlite {
                path: PathBuf::from("/etc/privet/store.sqlite3")
            }
        );
        assert_eq!(c.policies_dir, PathBuf::from("/etc/privet/policies"));
        assert_eq!(c.limits, Limits::default());
        assert!(c.principals.is_empty());
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../privet.example.toml");
        let c = Config::parse(Path::new("privet.example.toml"), text).unwrap();
        assert!(c.principals.len() >= 2);
        assert!(c
            .classification
            .contains_key(&("customers".to_string(), "email".to_string())));
    }

    #[test]
    fn syntax_and_type_errors_name_the_line() {
        let e = parse("listen = \"127.0.0.1:1\"\n\n[limits]\nmax_rows = \"many\"\n").unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(
            e.to_string().contains("/etc/privet/privet.toml, line 4"),
            "{e}"
        );
        assert!(e.message.contains("max_rows = \"many\""), "{e}");

        let e = parse("listen = \"x\"\nlisten_port = 3\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("unknown field `listen_port`"), "{e}");
    }

    #[test]
    fn semantic_errors_name_line_and_field() {
        let e = parse("\nlisten = \"localhost\"\n").unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(2), Some("listen")),
            "{e}"
        );

        let text = format!("{}{}", principal("a", HASH_A), principal("a", HASH_B));
        let e = parse(&text).unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(7), Some("principals[1].name")),
            "{e}"
        );

        let text = format!("{}{}", principal("a", HASH_A), principal("b", HASH_A));
        let e = parse(&text).unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("principals[1].api_key_sha256"),
            "{e}"
        );
        assert!(e.message.contains("already used by `a`"), "{e}");

        let e = parse(&principal("a", "abc")).unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(5), Some("principals[0].api_key_sha256")),
            "{e}"
        );

        let e = parse("[limits]\nmax_rows = 0\n").unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(2), Some("limits.max_rows")),
            "{e}"
        );
    }

    #[test]
    fn classification_is_checked() {
        let c =
            parse("[classification]\n\"customers.email\" = { category = \"email\" }\n").unwrap();
        let class = c.classification[&("customers".to_string(), "email".to_string())].clone();
        assert_eq!(
            (class.category, class.encrypted, class.line),
            (Category::Email, false, 2)
        );
        assert_eq!(class.domain, None);
        let c = parse(
            "[classification]\n\"orders.customer_id\" = { category = \"identifier\", domain = \"customer\" }\n",
        )
        .unwrap();
        assert_eq!(
            c.pseudonym_domains()[&("orders".to_string(), "customer_id".to_string())],
            "customer"
        );

        let e =
            parse("[classification]\n\"customers.email\" = { category = \"mail\" }\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("unknown variant `mail`"), "{e}");

        let e = parse("[classification]\nemail = { category = \"email\" }\n").unwrap_err();
        assert!(e.message.contains("table.column"), "{e}");

        let c =
            parse("[classification]\n\"c.phone\" = { category = \"phone\", encrypted = true }\n")
                .unwrap();
        assert!(c.classification[&("c".to_string(), "phone".to_string())].encrypted);
    }

    #[test]
    fn postgres_backends_are_parsed_and_never_shown_with_their_password() {
        let c = parse(
            "backend = \"postgres://app:s3cret@db.internal:6543/shop\"\nschema = \"sales\"\n",
        )
        .unwrap();
        let BackendConfig::Postgres { url, schema } = &c.backend else {
            panic!("{:?}", c.backend)
        };
        assert_eq!(schema, "sales");
        assert_eq!(url.redacted(), "postgres://app@db.internal:6543/shop");
        for shown in [
            format!("{url}"),
            format!("{url:?}"),
            format!("{c:?}"),
            c.backend.describe(),
        ] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        assert_eq!(
            url.connect_config().get_password(),
            Some(b"s3cret".as_slice())
        );
        let c = parse("backend = \"postgresql://app@db/shop\"\n").unwrap();
        assert!(matches!(&c.backend, BackendConfig::Postgres { schema, .. } if schema == "public"));
        let e = parse("schema = \"x\"\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("schema"));
    }

    #[test]
    fn backend_errors_never_echo_connection_strings() {
        let e = parse("backend = \"postgres://app:s3cret@db/x?bogus=1\"\n").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert_eq!(e.field.as_deref(), Some("backend"));
        let e = parse("backend = \"mysql://root:hunter2@db\"\n").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let c = parse("backend = \"sqlite:other.db\"\n").unwrap();
        assert_eq!(
            c.backend,
            BackendConfig::Sqlite {
                path: PathBuf::from("/etc/privet/other.db")
            }
        );
    }

    #[test]
    fn pg_section_and_scram_verifiers_are_checked() {
        let c = parse("").unwrap();
        assert_eq!(c.pg, None);
        let c = parse("[pg]\n").unwrap();
        let pg = c.pg.clone().unwrap();
        assert_eq!(pg.listen, DEFAULT_PG_LISTEN.parse().unwrap());
        assert_eq!(pg.idle_timeout, DEFAULT_PG_IDLE_TIMEOUT);
        assert!(!pg.requires_tls(pg.listen), "loopback: TLS optional");
        assert!(pg.requires_tls("0.0.0.0:6432".parse().unwrap()));
        assert!(pg.requires_tls("10.1.2.3:6432".parse().unwrap()));
        let c = parse(
            "[pg]\nlisten = \"0.0.0.0:5433\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nrequire_tls = false\nidle_timeout_secs = 5\n",
        )
        .unwrap();
        let pg = c.pg.unwrap();
        assert_eq!(pg.tls_cert, Some(PathBuf::from("/etc/privet/c.pem")));
        assert_eq!(pg.tls_key, Some(PathBuf::from("/etc/privet/k.pem")));
        assert!(!pg.requires_tls(pg.listen));
        assert_eq!(pg.idle_timeout, Duration::from_secs(5));

        for (bad, field) in [
            ("[pg]\nlisten = \"x\"\n", "pg.listen"),
            ("[pg]\ntls_cert = \"c.pem\"\n", "pg.tls_key"),
            ("[pg]\nidle_timeout_secs = 0\n", "pg.idle_timeout_secs"),
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!((e.line, e.field.as_deref()), (Some(2), Some(field)), "{e}");
        }

        let verifier = crate::keys::ScramVerifier::generate("pvt_k").unwrap();
        let c = parse(&format!(
            "{}pg_scram_sha256 = \"{verifier}\"\n",
            principal("a", HASH_A)
        ))
        .unwrap();
        assert_eq!(c.principals[0].pg_scram_sha256, Some(verifier));
        let e = parse(&format!(
            "{}pg_scram_sha256 = \"md5deadbeef\"\n",
            principal("a", HASH_A)
        ))
        .unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(6), Some("principals[0].pg_scram_sha256")),
            "{e}"
        );
        assert!(e.message.contains("privet keys pg-verifier"), "{e}");
    }
}
