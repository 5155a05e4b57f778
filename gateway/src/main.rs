//! `privet`: the privacy gateway's command line.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use gateway::config::{BackendConfig, Config, ConfigError};
use gateway::demo::{self, DEMO_PRINCIPALS};
use gateway::http::{self, AppState};
use gateway::pipeline::{Gateway, StartError};
use gateway::seed::{self, SeedOptions};

/// Privet: a privacy gateway for commerce data. Services send SQL to Privet
/// instead of the database; Privet decides per principal and purpose what
/// they may see.
#[derive(Parser)]
#[command(name = "privet", version, about)]
struct Cli {
    /// Where Privet keeps its state [default: ./privet-data]. With --config,
    /// overrides the file's `data_dir`.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Config file [default: DIR/privet.toml, generated on first `serve`].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The governed database, overriding the config's `backend`:
    /// `postgres://USER[:PASSWORD]@HOST:PORT/DB` or `sqlite:PATH`. Prefer
    /// PGPASSWORD to a password on the command line.
    #[arg(long, global = true, value_name = "URL")]
    backend: Option<String>,

    /// The PostgreSQL schema to govern (or seed) [default: the config's
    /// `schema`, else public].
    #[arg(long, global = true, value_name = "NAME")]
    schema: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. With no config, creates a demo setup in the data dir.
    Serve {
        /// Address to listen on [default: the config's `listen`, 127.0.0.1:8080].
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Show what the gateway would do with a query, and why, without running it.
    Explain {
        /// The principal to explain for.
        #[arg(long = "as", value_name = "PRINCIPAL")]
        principal: String,
        /// The purpose it declares.
        #[arg(long)]
        purpose: String,
        /// The SQL.
        sql: String,
    },
    /// Validate or test policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Create the demo commerce store with deterministic synthetic data.
    Seed {
        /// 1 ≈ 5,000 customers, 50,000 orders, 250,000 events. Fractions allowed.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// PRNG seed: the same seed and scale give the same data.
        #[arg(long, default_value_t = demo::DEMO_SEED)]
        seed: u64,
        /// Replace an existing store.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy directory [default: the config's] against the Cedar
    /// schema, the principals and the database; exit 2 on any error.
    Validate { dir: Option<PathBuf> },
    /// Run a policy test file; exit 1 if any case does not get the outcome it expects.
    Test { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The CLI's own commands (explain, policy test) analyze SQL on this
    // thread: give it the stack the runtime workers get.
    let worker = std::thread::Builder::new()
        .name("privet".into())
        .stack_size(gateway::sql::ANALYSIS_STACK_BYTES)
        .spawn(move || run(cli));
    let result = match worker.map(|w| w.join()) {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(anyhow::anyhow!("the command panicked")),
        Err(e) => Err(anyhow::anyhow!("cannot start the main thread: {e}")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            // Configuration mistakes (config file, policies) exit with 2 so
            // deploy scripts can tell them from runtime failures.
            let is_config = e.chain().any(|c| {
                c.is::<ConfigError>()
                    || c.is::<policies::PolicyError>()
                    || matches!(
                        c.downcast_ref::<StartError>(),
                        Some(StartError::Config(_) | StartError::Policy(_))
                    )
            });
            ExitCode::from(if is_config { 2 } else { 1 })
        }
    }
}

/// Where the config comes from, and the command line's backend override.
struct Sources {
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    backend: Option<String>,
    schema: Option<String>,
}

/// Ok(false): the command ran and its answer is "no" (a failing policy test).
fn run(cli: Cli) -> Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // SQL analysis recurses over the AST; the operator limit bounds the
        // depth, and this leaves headroom even for unoptimized builds.
        .thread_stack_size(gateway::sql::ANALYSIS_STACK_BYTES)
        .build()
        .context("starting the async runtime")?;
    let sources = Sources {
        data_dir: cli.data_dir,
        config: cli.config,
        backend: cli.backend,
        schema: cli.schema,
    };
    runtime.block_on(run_command(cli.command, sources))
}

async fn run_command(command: Command, sources: Sources) -> Result<bool> {
    match command {
        Command::Serve { listen } => serve(&sources, listen).await.map(|()| true),
        Command::Seed { scale, seed, force } => seed_store(&sources, scale, seed, force)
            .await
            .map(|()| true),
        Command::Explain {
            principal,
            purpose,
            sql,
        } => {
            let gateway = Gateway::start(required_config(&sources)?)
                .await
                .context("starting the gateway")?;
            let principal = gateway
                .principal(&principal)
                .with_context(|| format!("no principal `{principal}` in the config"))?;
            // As if asked from this machine, now.
            let ctx =
                gateway::pipeline::request_context(&purpose, std::net::Ipv4Addr::LOCALHOST.into());
            let explanation = gateway.explain(&principal, ctx, &sql);
            let text =
                serde_json::to_string_pretty(&explanation).context("rendering the explanation")?;
            println!("{text}");
            Ok(true)
        }
        Command::Policy {
            command: PolicyCommand::Validate { dir },
        } => {
            let config = required_config(&sources)?;
            let dir = dir.unwrap_or_else(|| config.policies_dir.clone());
            let report = gateway::pipeline::validate_policies(&config, &dir).await?;
            for warning in &report.warnings {
                println!("warning: {warning}");
            }
            println!("{}: {} policies valid", dir.display(), report.policies);
            Ok(true)
        }
        Command::Policy {
            command: PolicyCommand::Test { file },
        } => policy_test(&sources, &file).await,
    }
}

async fn policy_test(sources: &Sources, file: &Path) -> Result<bool> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let tests: gateway::policytest::TestFile = toml::from_str(&text)
        .with_context(|| format!("parsing the policy test file {}", file.display()))?;
    let gateway = Gateway::start(required_config(sources)?)
        .await
        .context("starting the gateway")?;
    let mut failed = 0;
    for (i, case) in tests.cases.iter().enumerate() {
        let label = format!(
            "{:>3} {} ({}): {}",
            i + 1,
            case.principal,
            case.purpose,
            case.sql
        );
        match gateway::policytest::run_case(&gateway, case) {
            None => println!("ok    {label}"),
            Some(why) => {
                failed += 1;
                println!("FAIL  {label}\n        {why}");
            }
        }
    }
    println!("{} passed, {failed} failed", tests.cases.len() - failed);
    Ok(failed == 0)
}

/// The config, which commands other than `serve` and `seed` cannot do without.
fn required_config(sources: &Sources) -> Result<Config> {
    existing_config(sources)?.context(
        "no config: pass --config FILE, or --data-dir DIR of a gateway started once with `privet serve`",
    )
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("privet-data")
}

/// The config to use: `--config`, else DIR/privet.toml if it exists; with
/// `--backend` / `--schema` applied.
fn existing_config(sources: &Sources) -> Result<Option<Config>> {
    let data_dir = &sources.data_dir;
    let config = if let Some(path) = &sources.config {
        Config::load(path, data_dir.as_deref())?
    } else {
        let path = data_dir
            .clone()
            .unwrap_or_else(default_data_dir)
            .join(demo::CONFIG_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        Config::load(&path, data_dir.as_deref())?
    };
    Ok(Some(with_backend_override(config, sources)?))
}

/// `--backend` and `--schema` replace the config's backend.
fn with_backend_override(mut config: Config, sources: &Sources) -> Result<Config> {
    match (&sources.backend, &sources.schema) {
        (Some(url), schema) => {
            config.backend = BackendConfig::from_arg(url, schema.as_deref(), &config.data_dir)
                .map_err(|e| anyhow::anyhow!("--backend: {e}"))?;
        }
        (None, Some(schema)) => match &mut config.backend {
            BackendConfig::Postgres { schema: s, .. } => *s = schema.clone(),
            BackendConfig::Sqlite { .. } => {
                anyhow::bail!("--schema applies to PostgreSQL backends only")
            }
        },
        (None, None) => {}
    }
    Ok(config)
}

async fn serve(sources: &Sources, listen: Option<SocketAddr>) -> Result<()> {
    let data_dir = &sources.data_dir;
    let config = match existing_config(sources)? {
        Some(config) => config,
        None => {
            let dir = data_dir.clone().unwrap_or_else(default_data_dir);
            let boot = demo::bootstrap(&dir, true)
                .with_context(|| format!("setting up the demo in {}", dir.display()))?;
            if let Some(summary) = &boot.seeded {
                let rows: u64 = summary.tables.iter().map(|(_, n)| n).sum();
                println!(
                    "Created the demo store {} ({rows} rows).",
                    dir.join(demo::STORE_FILE).display()
                );
            }
            let config = with_backend_override(
                Config::load(&boot.config_path, data_dir.as_deref())?,
                sources,
            )?;
            if let Some(credentials) = &boot.new_credentials {
                print_credentials(&dir, credentials, listen.unwrap_or(config.listen));
            }
            config
        }
    };
    let listen = listen.unwrap_or(config.listen);
    let gateway = Gateway::start(config)
        .await
        .context("starting the gateway")?;
    {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| {
                format!("cannot listen on {listen} (in use? try --listen 127.0.0.1:0)")
            })?;
        let local = listener
            .local_addr()
            .context("reading the listen address")?;
        let shutdown = shutdown_signal()?;
        let state = Arc::new(AppState::new(gateway));
        reload_on_sighup(Arc::clone(&state))?;
        // Tests and scripts read this line to find the port: every signal
        // handler is installed by now.
        println!("privet listening on http://{local}");
        let _ = std::io::stdout().flush();
        http::serve(state, listener, shutdown)
            .await
            .context("serving HTTP")?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Installs the SIGINT/SIGTERM handlers now (so a signal arriving right after
/// startup is a clean shutdown, not a kill) and returns a future that
/// completes on the first of them.
#[cfg(unix)]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    })
}

/// SIGHUP reloads the policies; an invalid set is refused and the old one
/// keeps serving.
#[cfg(unix)]
fn reload_on_sighup(state: Arc<AppState>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match state.gateway.reload_policies() {
                Ok(r) => tracing::info!(policies = r.policies, "SIGHUP: policies reloaded"),
                Err(e) => tracing::error!(
                    "SIGHUP: policy reload refused, the previous policies keep serving: {e}"
                ),
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn reload_on_sighup(_state: Arc<AppState>) -> Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}

fn print_credentials(
    dir: &Path,
    credentials: &std::collections::BTreeMap<String, String>,
    listen: SocketAddr,
) {
    println!();
    println!(
        "Demo API keys (shown once; also in {}, mode 0600):",
        dir.join(demo::CREDENTIALS_FILE).display()
    );
    for p in DEMO_PRINCIPALS {
        let Some(key) = credentials.get(p.name) else {
            continue;
        };
        println!();
        println!("  {:<20} {key}", p.name);
        if let Some(sql) = p.example_sql {
            let purpose = p.purposes.first().copied().unwrap_or_default();
            println!(
                "    curl -s http://{listen}/v1/query -H 'Authorization: Bearer {key}' \\\n      -d '{{\"sql\": \"{sql}\", \"purpose\": \"{purpose}\"}}'"
            );
        }
    }
    println!();
}

async fn seed_store(sources: &Sources, scale: f64, seed_value: u64, force: bool) -> Result<()> {
    let backend = match existing_config(sources)? {
        Some(config) => config.backend,
        None => {
            let dir = sources.data_dir.clone().unwrap_or_else(default_data_dir);
            let backend = match &sources.backend {
                Some(url) => BackendConfig::from_arg(url, sources.schema.as_deref(), &dir)
                    .map_err(|e| anyhow::anyhow!("--backend: {e}"))?,
                None => BackendConfig::Sqlite {
                    path: dir.join(demo::STORE_FILE),
                },
            };
            if let BackendConfig::Sqlite { path } = &backend {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
            }
            backend
        }
    };
    let started = std::time::Instant::now();
    let opts = SeedOptions {
        scale,
        seed: seed_value,
        progress: true,
    };
    let summary = match &backend {
        BackendConfig::Sqlite { path } => seed::seed_sqlite(path, &opts, force)?,
        BackendConfig::Postgres { url, schema } => {
            seed::seed_postgres(&url.connect_config(), url.redacted(), schema, &opts, force).await?
        }
    };
    println!(
        "Seeded {} in {:.1?} (scale {scale}, seed {seed_value}):",
        backend.describe(),
        started.elapsed()
    );
    for (table, rows) in &summary.tables {
        println!("  {table:<16} {rows:>9} rows");
    }
    Ok(())
}
