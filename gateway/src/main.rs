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
enum AnomalyCommand {
    /// Replay normal traffic for every demo principal (daily rhythm, noise)
    /// with injected attacks of every kind at several intensities; print
    /// precision, recall and false-positive rate per kind and overall.
    Evaluate {
        /// PRNG seed: the same seed gives the same workload and figures.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Weeks of traffic instead of the short run.
        #[arg(long)]
        full: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. With no config, creates a demo setup in the data dir.
    Serve {
        /// Address to listen on [default: the config's `listen`, 127.0.0.1:8080].
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Also serve the PostgreSQL wire protocol on ADDR (e.g.
        /// 127.0.0.1:6432), overriding `[pg] listen`: user = principal,
        /// password = its API key (SCRAM-SHA-256), database `privet`, TLS.
        #[arg(long, value_name = "ADDR")]
        pg_listen: Option<SocketAddr>,
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
    /// Search, verify and prove the audit log (files in DATA_DIR/audit;
    /// works while the gateway runs, except `reindex` and `checkpoint`).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The vault's keys (DATA_DIR/keystore.pvk, unlocked by the master key:
    /// PRIVET_MASTER_KEY, the config's `master_key_file`, or
    /// privet-master.key beside the data dir). Works while the gateway runs.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Export an anonymized dataset for an ML job: the spec's source query
    /// runs through the policy pipeline as PRINCIPAL (which needs Cedar
    /// `export` on the dataset), every column is transformed, the
    /// quasi-identifiers made k-anonymous; writes DIR/NAME.csv|jsonl,
    /// report.json and summary.txt, and one audit event. Run it with the
    /// gateway stopped (it writes the audit log itself).
    Export {
        /// The dataset spec (TOML), e.g. datasets/recommendations.toml.
        #[arg(long, value_name = "FILE")]
        spec: PathBuf,
        /// Where the files go (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The requesting principal.
        #[arg(long = "as", value_name = "PRINCIPAL")]
        principal: String,
    },
    /// Anomaly detection: `privet anomaly evaluate` replays a synthetic
    /// workload of the demo principals with injected attacks and prints
    /// precision, recall and false-positive rate per attack kind.
    Anomaly {
        #[command(subcommand)]
        command: AnomalyCommand,
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
enum KeysCommand {
    /// Keys, their versions, what they protect and when they were made;
    /// never key material.
    List {
        /// List every data subject's key, not only how many there are.
        #[arg(long)]
        subjects: bool,
    },
    /// Add a key version to encrypted columns: new writes use it, values
    /// under older versions still decrypt until `rewrap`.
    Rotate {
        /// The column, as TABLE.COLUMN.
        #[arg(
            long,
            value_name = "TABLE.COLUMN",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        column: Option<String>,
        /// Every encrypted column.
        #[arg(long)]
        all: bool,
    },
    /// Re-encrypt stored values to their column's current key version, in
    /// batches of one transaction each. Resumable: run it again after an
    /// interruption and it continues with the values still to do.
    Rewrap {
        /// One column (TABLE.COLUMN) [default: every encrypted column].
        #[arg(long, value_name = "TABLE.COLUMN")]
        column: Option<String>,
        /// Values per transaction.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Stop after this many batches, as if interrupted.
        #[arg(long, hide = true)]
        stop_after_batches: Option<u64>,
    },
    /// Destroy a data subject's key (crypto-shredding): their encrypted
    /// fields read as "[shredded]" from then on, in the store and in every
    /// backup of it. Cannot be undone. Recorded in the audit log.
    Shred {
        /// The subject, as DOMAIN:ID (e.g. customer:42).
        #[arg(long, value_name = "SUBJECT")]
        subject: String,
    },
    /// Print the SCRAM-SHA-256 verifier of an API key for a principal's
    /// `pg_scram_sha256` (logins over the PostgreSQL wire front). The key
    /// comes from PRIVET_API_KEY, else the first line of standard input:
    /// never from the command line, where other users could see it.
    PgVerifier,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Search events, newest first: `principal:marketing-service AND
    /// column:customers.email`, `subject:"customer:42"`, `outcome:denied`,
    /// bare words search the SQL fingerprints.
    Search {
        query: String,
        #[command(flatten)]
        range: TimeArgs,
        /// Events to show at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The latest events.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        count: u64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// One event in full, with its leaf hash.
    Show { seq: u64 },
    /// Recompute the whole tree, check every checkpoint's signature and
    /// consistency; exit 1 with the first bad sequence number on tampering.
    Verify {
        /// Check signatures with this public key (PEM, from `privet audit
        /// public-key`, kept apart from the log) instead of the copy in the
        /// log directory, which whoever rewrote the log could replace too.
        #[arg(long, value_name = "PEM_FILE")]
        public_key: Option<PathBuf>,
    },
    /// Inclusion proof of event SEQ against the latest signed checkpoint.
    Prove {
        seq: u64,
        /// `{"leafIdx","treeSize","leafHash","proof","root"}` (base64), as
        /// in the transparency-dev test vectors.
        #[arg(long)]
        json: bool,
    },
    /// Every event in a time range, oldest first.
    Export {
        #[command(flatten)]
        range: TimeArgs,
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Data-subject access report: every access that returned this
    /// subject's rows (`customer:42`, or just `42`).
    Subject {
        id: String,
        #[command(flatten)]
        range: TimeArgs,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Rebuild the search index from the log (the gateway must be stopped).
    Reindex,
    /// Sign a checkpoint of the log now (the gateway must be stopped; a
    /// running gateway signs one every minute and on `GET /v1/audit/checkpoint`).
    Checkpoint,
    /// Print the public key that checkpoints are signed with (PEM).
    PublicKey,
}

/// A time window: `7d`, `24h`, `2026-11-25`, `2026-11-25T10:00:00Z`.
#[derive(clap::Args)]
struct TimeArgs {
    /// From this time on (inclusive).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Before this time.
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
}

impl TimeArgs {
    fn range(&self) -> Result<audit::TimeRange> {
        let now = gateway::audit::now_us();
        let parse = |t: &Option<String>| -> Result<Option<i64>> {
            t.as_deref()
                .map(|t| {
                    gateway::audit_api::parse_time(t, now).map_err(|e| anyhow::anyhow!(e.message))
                })
                .transpose()
        };
        Ok(audit::TimeRange {
            since_us: parse(&self.since)?,
            until_us: parse(&self.until)?,
        })
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
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
        // Colour codes only for a terminal: a log file or pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        Command::Anomaly {
            command: AnomalyCommand::Evaluate { seed, full },
        } => {
            let scale = if full {
                anomaly::evaluate::Scale::Full
            } else {
                anomaly::evaluate::Scale::Short
            };
            let report =
                tokio::task::spawn_blocking(move || anomaly::evaluate::evaluate(seed, scale))
                    .await
                    .context("running the evaluation")?;
            println!("{report}");
            Ok(true)
        }
        Command::Serve { listen, pg_listen } => {
            serve(&sources, listen, pg_listen).await.map(|()| true)
        }
        Command::Keys {
            command: KeysCommand::PgVerifier,
        } => pg_verifier().map(|()| true),
        Command::Keys { command } => keys_command(&sources, command).await.map(|()| true),
        Command::Export {
            spec,
            out,
            principal,
        } => export_dataset(&sources, &spec, &out, &principal)
            .await
            .map(|()| true),
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
        Command::Audit { command } => {
            let (data_dir, master_key_file) = match existing_config(&sources)? {
                Some(config) => (config.data_dir, config.master_key_file),
                None => (
                    sources.data_dir.clone().unwrap_or_else(default_data_dir),
                    None,
                ),
            };
            tokio::task::spawn_blocking(move || {
                audit_command(&data_dir, master_key_file.as_deref(), command)
            })
            .await
            .context("the audit command stopped")?
        }
    }
}

/// `privet audit ...`: reads the files directly (whoever can read them may
/// run these; the HTTP endpoints are the Cedar-governed way in).
fn audit_command(
    data_dir: &Path,
    master_key_file: Option<&Path>,
    command: AuditCommand,
) -> Result<bool> {
    use gateway::audit_api as api;
    let audit_dir = data_dir.join(gateway::audit::AUDIT_DIR);
    let log_dir = audit_dir.join(gateway::audit::LOG_DIR);
    let index_dir = audit_dir.join("index");
    anyhow::ensure!(
        log_dir.is_dir(),
        "no audit log in {}: pass --data-dir DIR of a gateway that has run",
        log_dir.display()
    );
    let reader = || {
        audit::AuditLog::open_read_only(&log_dir)
            .with_context(|| format!("opening the audit log in {}", log_dir.display()))
    };
    let index_reader = || {
        audit::AuditIndex::open_read_only(&index_dir)
            .context("opening the audit index (rebuild it with `privet audit reindex`)")
    };
    let api_err = |e: gateway::error::RequestError| anyhow::anyhow!(e.message);
    match command {
        AuditCommand::Verify { public_key } => {
            let result = match &public_key {
                Some(path) => {
                    let pem = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let key = audit::PublicKey::from_pem(&pem).with_context(|| {
                        format!("{} is not an Ed25519 public key in PEM", path.display())
                    })?;
                    audit::verify_with_key(&log_dir, &key)
                }
                None => audit::verify(&log_dir),
            };
            // For the console's log health: when the log was last verified.
            if let Some(outcome) = api::verification_json(&result) {
                api::record_verification(&audit_dir, &outcome);
            }
            print_verification(result)
        }
        AuditCommand::Show { seq } => {
            let log = reader()?;
            let shown = api::show(&log, seq).map_err(api_err)?;
            println!("{}", serde_json::to_string_pretty(&shown)?);
            Ok(true)
        }
        AuditCommand::Prove { seq, json } => {
            let log = reader()?;
            let proof = api::prove_existing(&log, seq).map_err(api_err)?;
            if json {
                let mut vector = proof.clone();
                if let Some(map) = vector.as_object_mut() {
                    map.remove("checkpoint");
                }
                println!("{}", serde_json::to_string_pretty(&vector)?);
            } else {
                println!(
                    "event {seq} is in the tree of size {} with root {}\nproof ({} hashes):",
                    proof["treeSize"],
                    proof["root"].as_str().unwrap_or_default(),
                    proof["proof"].as_array().map_or(0, Vec::len)
                );
                for hash in proof["proof"].as_array().into_iter().flatten() {
                    println!("  {}", hash.as_str().unwrap_or_default());
                }
                println!(
                    "checkpoint signed {} (Ed25519, key {})",
                    proof["checkpoint"]["time"].as_str().unwrap_or_default(),
                    proof["checkpoint"]["public_key"]
                        .as_str()
                        .unwrap_or_default()
                );
            }
            Ok(true)
        }
        AuditCommand::Search {
            query,
            range,
            limit,
            format,
        } => {
            let log = reader()?;
            let index = index_reader()?;
            let answer = api::search(
                &log,
                &index,
                &query,
                range.range()?,
                api::page(Some(limit), None).map_err(api_err)?,
            )
            .map_err(api_err)?;
            print_events(&answer, format)?;
            Ok(true)
        }
        AuditCommand::Subject {
            id,
            range,
            limit,
            format,
        } => {
            let log = reader()?;
            let index = index_reader()?;
            let subject = api::subject_id(&id);
            let token = match gateway::keyring::open(data_dir, master_key_file, false) {
                Ok(keys) => subject.split_once(':').map(|(d, v)| {
                    format!(
                        "{d}:{}",
                        keys.keystore.token_key().pseudonym(d, v.as_bytes())
                    )
                }),
                Err(e) => {
                    eprintln!("note: without the pseudonym key ({e}) accesses that saw only this subject's pseudonym are not found");
                    None
                }
            };
            let answer = api::subject(
                &log,
                &index,
                &subject,
                token.as_deref(),
                range.range()?,
                api::page(Some(limit), None).map_err(api_err)?,
            )
            .map_err(api_err)?;
            print_events(&answer, format)?;
            let unattributed = answer["unattributed"]["events"].as_u64().unwrap_or(0);
            if unattributed > 0 {
                eprintln!(
                    "note: {unattributed} other read(s) in this period returned rows that no subject key named \
                     (aggregates, DISTINCT, ...); they may include this subject: privet audit search '{}'",
                    answer["unattributed"]["query"].as_str().unwrap_or_default()
                );
            }
            Ok(true)
        }
        AuditCommand::Tail { count, format } => {
            let log = reader()?;
            let from = log.size().saturating_sub(count);
            let events = log.read_events(from, usize::try_from(count).unwrap_or(usize::MAX))?;
            let answer = serde_json::json!({
                "total": events.len(),
                "events": events.iter().rev().map(api::event_json).collect::<Vec<_>>(),
            });
            print_events(&answer, format)?;
            Ok(true)
        }
        AuditCommand::Export { range, format, out } => {
            let log = reader()?;
            let range = range.range()?;
            let mut sink: Box<dyn std::io::Write> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            if let ExportFormat::Csv = format {
                writeln!(sink, "{}", api::CSV_HEADER)?;
            }
            let mut next = 0;
            let mut written = 0u64;
            loop {
                let events = log.read_events(next, 10_000)?;
                let Some(last) = events.last() else { break };
                next = last.seq + 1;
                for event in &events {
                    if range.since_us.is_some_and(|s| event.time_us < s)
                        || range.until_us.is_some_and(|u| event.time_us >= u)
                    {
                        continue;
                    }
                    match format {
                        ExportFormat::Jsonl => writeln!(sink, "{}", api::event_json(event))?,
                        ExportFormat::Csv => writeln!(sink, "{}", api::csv_row(event))?,
                    }
                    written += 1;
                }
            }
            sink.flush()?;
            if let Some(path) = out {
                eprintln!("{written} events written to {}", path.display());
            }
            Ok(true)
        }
        AuditCommand::Reindex => {
            let log = reader()?;
            let index = audit::AuditIndex::recreate(&index_dir).with_context(|| {
                format!(
                    "recreating the index in {} (is the gateway still running? stop it first)",
                    index_dir.display()
                )
            })?;
            let bar = indicatif::ProgressBar::new(log.size());
            let mut next = 0;
            loop {
                let events = log.read_events(next, 10_000)?;
                let Some(last) = events.last() else { break };
                next = last.seq + 1;
                index.add(&events)?;
                bar.inc(events.len() as u64);
            }
            index.commit()?;
            bar.finish_and_clear();
            println!(
                "indexed {} events into {}",
                index.next_seq(),
                index_dir.display()
            );
            Ok(true)
        }
        AuditCommand::Checkpoint => {
            let log = audit::AuditLog::open(&log_dir, audit::LogOptions::default())
                .with_context(|| format!("opening {} for writing (is the gateway still running? stop it first, or GET /v1/audit/checkpoint)", log_dir.display()))?;
            let checkpoint = log.checkpoint()?;
            println!(
                "{}",
                serde_json::to_string_pretty(&api::checkpoint_json(
                    &log.public_key(),
                    &checkpoint
                ))?
            );
            Ok(true)
        }
        AuditCommand::PublicKey => {
            let log = reader()?;
            print!("{}", log.public_key().to_pem());
            Ok(true)
        }
    }
}

/// Prints the outcome of `privet audit verify`; `Ok(false)` when tampered.
fn print_verification(result: Result<audit::VerifyReport, audit::LogError>) -> Result<bool> {
    match result {
        Ok(report) => {
            println!(
                "ok: {} events in {} segment(s), {} checkpoint(s) verified; root {} ({:.0} events/s)",
                report.events,
                report.segments,
                report.checkpoints,
                base64_of(&report.root),
                report.events_per_sec
            );
            if report.torn_tail_bytes > 0 {
                println!(
                    "note: {} bytes of an unfinished write at the end (cut on the next start)",
                    report.torn_tail_bytes
                );
            }
            Ok(true)
        }
        Err(audit::LogError::Tampered { seq, what }) => {
            match seq {
                Some(seq) => println!("TAMPERED at seq {seq}: {what}"),
                None => println!("TAMPERED: {what}"),
            }
            Ok(false)
        }
        Err(e) => Err(e).context("verifying the audit log"),
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Prints a search answer (`{"total", "events"}`) as a table, JSON or CSV.
fn print_events(answer: &serde_json::Value, format: Format) -> Result<()> {
    let events = answer["events"].as_array().cloned().unwrap_or_default();
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(answer)?),
        Format::Csv => {
            println!("{}", gateway::audit_api::CSV_HEADER);
            for event in &events {
                let event: audit::Event = serde_json::from_value(event.clone())?;
                println!("{}", gateway::audit_api::csv_row(&event));
            }
        }
        Format::Table => {
            println!(
                "{:>8}  {:<27}  {:<20}  {:<14}  {:<8}  {:>6}  WHAT",
                "SEQ", "TIME", "PRINCIPAL", "PURPOSE", "OUTCOME", "ROWS"
            );
            for e in &events {
                let what = gateway::audit_api::summary(e);
                println!(
                    "{:>8}  {:<27}  {:<20}  {:<14}  {:<8}  {:>6}  {what}",
                    e["seq"],
                    e["time"].as_str().unwrap_or_default(),
                    e["principal"].as_str().unwrap_or("-"),
                    e["purpose"].as_str().unwrap_or("-"),
                    e["outcome"].as_str().unwrap_or_default(),
                    e["rows"],
                );
            }
            println!(
                "{} of {} event(s)",
                events.len(),
                answer["total"].as_u64().unwrap_or(events.len() as u64)
            );
        }
    }
    Ok(())
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

async fn serve(
    sources: &Sources,
    listen: Option<SocketAddr>,
    pg_listen: Option<SocketAddr>,
) -> Result<()> {
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
    // `--pg-listen` serves the wire front even without `[pg]`, and moves it.
    let pg = match (pg_listen, &config.pg) {
        (None, None) => None,
        (None, Some(pg)) => Some(pg.clone()),
        (Some(addr), Some(pg)) => Some(gateway::config::PgConfig {
            listen: addr,
            ..pg.clone()
        }),
        (Some(addr), None) => Some(gateway::config::PgConfig::at(addr)),
    };
    let pg_front = match &pg {
        None => None,
        Some(pg) => Some(
            gateway::pgwire::Front::from_config(pg, pg.listen, &config.data_dir)
                .context("setting up TLS for the PostgreSQL protocol")?,
        ),
    };
    let audit_dir = gateway::audit::audit_dir(&config);
    let trail = Arc::new(
        tokio::task::spawn_blocking(move || gateway::audit::AuditTrail::open(&audit_dir))
            .await
            .context("opening the audit log")?,
    );
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
        // One signal, told to every front.
        let signal = shutdown_signal()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = stop.send(true);
        });
        let shutdown = {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let indexer = tokio::spawn(index_audit_events(Arc::clone(&trail)));
        let state = Arc::new(AppState::new(gateway, Arc::clone(&trail)));
        let shreds = tokio::spawn(record_shreds(Arc::clone(&state)));
        reload_on_sighup(Arc::clone(&state))?;
        let pg_front = match (pg, pg_front) {
            (Some(pg), Some(front)) => {
                let addr = pg.listen;
                let pg_listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                    format!("cannot listen on {addr} for the PostgreSQL protocol")
                })?;
                let pg_local = pg_listener
                    .local_addr()
                    .context("reading the PostgreSQL listen address")?;
                if let Some(tls) = &front.tls {
                    tracing::info!(
                        certificate = %tls.cert_path.display(),
                        sha256 = %tls.fingerprint,
                        generated = tls.generated,
                        require_tls = front.require_tls,
                        "pg: TLS certificate"
                    );
                    println!(
                        "privet PostgreSQL TLS certificate {} SHA-256 {}{}",
                        tls.cert_path.display(),
                        tls.fingerprint,
                        if tls.generated {
                            " (self-signed, generated now)"
                        } else {
                            ""
                        }
                    );
                }
                println!(
                    "privet PostgreSQL protocol on {pg_local} (database privet, TLS {})",
                    if front.require_tls {
                        "required"
                    } else {
                        "optional"
                    }
                );
                let mut stopped = stopped.clone();
                Some(tokio::spawn(gateway::pgwire::serve(
                    Arc::clone(&state),
                    pg_listener,
                    front,
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    },
                )))
            }
            _ => None,
        };
        // Tests and scripts read this line to find the port: every signal
        // handler is installed by now.
        println!("privet listening on http://{local}");
        let _ = std::io::stdout().flush();
        let baselines = tokio::spawn(save_baselines(Arc::clone(&state)));
        http::serve(Arc::clone(&state), listener, shutdown)
            .await
            .context("serving HTTP")?;
        if let Some(front) = pg_front {
            match front.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "PostgreSQL front stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "PostgreSQL front task failed"),
            }
        }
        indexer.abort();
        shreds.abort();
        baselines.abort();
        // The baselines of this run survive the restart.
        let detection_state = Arc::clone(&state);
        match tokio::task::spawn_blocking(move || detection_state.gateway.detection().save()).await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "anomaly baselines not saved at shutdown"),
            Err(e) => tracing::warn!(error = %e, "anomaly baselines not saved at shutdown"),
        }
    }
    // The index gets every event of this run (`privet audit search` reads
    // it while the gateway is down)...
    let indexing = Arc::clone(&trail);
    match tokio::task::spawn_blocking(move || indexing.catch_up()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "audit index not caught up at shutdown"),
        Err(e) => tracing::warn!(error = %e, "audit index not caught up at shutdown"),
    }
    // ...and a last signed checkpoint covers them.
    let closing = Arc::clone(&trail);
    match tokio::task::spawn_blocking(move || closing.log().map(|log| log.checkpoint())).await {
        Ok(Ok(Ok(checkpoint))) => {
            tracing::info!(size = checkpoint.size, "audit checkpoint written")
        }
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "no audit checkpoint at shutdown"),
        Ok(Err(e)) => tracing::warn!(error = %e.message, "no audit checkpoint at shutdown"),
        Err(e) => tracing::warn!(error = %e, "no audit checkpoint at shutdown"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Saves the anomaly baselines every minute, so a crash loses at most a
/// minute of learning.
async fn save_baselines(state: Arc<AppState>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let saving = Arc::clone(&state);
        match tokio::task::spawn_blocking(move || saving.gateway.detection().save()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "saving the anomaly baselines"),
            Err(e) => tracing::warn!(error = %e, "saving the anomaly baselines"),
        }
    }
}

/// Records in the audit log the subjects `privet keys shred` shreds while
/// the gateway runs (the command cannot write the log the gateway holds).
/// Checks the keystore once a second; failed writes are retried.
async fn record_shreds(state: Arc<AppState>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let sealing = state.gateway.sealing();
        let subjects = match sealing.take_new_shreds() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e.message, "keystore check failed");
                continue;
            }
        };
        let mut failed = Vec::new();
        for subject in subjects {
            let request_id = format!("shred-{}", gateway::audit::now_us());
            let event = gateway::audit::shred_event(&subject, "privet keys shred", &request_id);
            match state.audit.record(event).await {
                Ok(seq) => {
                    tracing::info!(%subject, seq, "crypto-shredding recorded in the audit log")
                }
                Err(e) => {
                    tracing::error!(%subject, error = %e.message, "crypto-shredding not yet recorded; retrying");
                    failed.push(subject);
                }
            }
        }
        if !failed.is_empty() {
            sealing.report_later(failed);
        }
    }
}

/// Keeps the audit search index close behind the log (searches also catch
/// up first, so they never miss an acknowledged event).
async fn index_audit_events(trail: Arc<gateway::audit::AuditTrail>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let trail = Arc::clone(&trail);
        match tokio::task::spawn_blocking(move || trail.catch_up()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "audit index catch-up failed"),
            Err(e) => tracing::warn!(error = %e, "audit index catch-up stopped"),
        }
    }
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

async fn export_dataset(sources: &Sources, spec_path: &Path, out: &Path, who: &str) -> Result<()> {
    let config = required_config(sources)?;
    let spec = gateway::export::DatasetSpec::load(spec_path)?;
    // The audit log first: an export that cannot be audited does not run.
    let log_dir = gateway::audit::audit_dir(&config).join(gateway::audit::LOG_DIR);
    let log = match audit::AuditLog::open(&log_dir, audit::LogOptions::default()) {
        Ok(log) => log,
        Err(audit::LogError::Locked { .. }) => anyhow::bail!(
            "the gateway is running and holds the audit log; an export must be audited: ask the running gateway (POST /v1/exports with {{\"dataset\": \"NAME\", \"purpose\": \"...\"}}), or stop it and run this again"
        ),
        Err(e) => return Err(e).context("opening the audit log"),
    };
    let gateway = Gateway::start(config.clone())
        .await
        .context("starting the gateway")?;
    let principal = gateway
        .principal(who)
        .with_context(|| format!("no principal `{who}` in the config"))?;
    let started = std::time::Instant::now();
    let ctx =
        gateway::pipeline::request_context(&spec.purpose, std::net::Ipv4Addr::LOCALHOST.into());
    let mut record = gateway::audit::AccessRecord::default();
    let result =
        gateway::export::run_spec(&gateway, &principal, ctx, &spec, out, &mut record, true).await;
    let request_id = format!("export-{}", gateway::audit::now_us());
    let facts = gateway::audit::RequestFacts {
        time_us: gateway::audit::now_us(),
        request_id: &request_id,
        principal: Some(&principal),
        source: std::net::Ipv4Addr::LOCALHOST.into(),
        purpose: Some(&spec.purpose),
        endpoint: "export",
        started,
    };
    let event = gateway::audit::event(
        &facts,
        record,
        result.as_ref().err(),
        gateway.backend().dialect(),
        gateway.catalog(),
    );
    let seq = log
        .append(event)
        .await
        .context("recording the export in the audit log (the export is void without it)")?;
    let report = result.map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code.as_str()))?;
    println!(
        "{}: {} of {} rows written to {} (audit event {seq})",
        report.dataset,
        report.rows_written,
        report.rows_read,
        out.join(&report.file).display()
    );
    if let Some(k) = &report.k_anonymity {
        println!(
            "k-anonymity: k = {} requested, {} achieved, {} rows suppressed, NCP {:.4}",
            k.k_requested, k.k_achieved, k.rows_suppressed, k.ncp
        );
    }
    Ok(())
}

/// The data dir, master key file and backend the key commands work on.
fn keys_setup(sources: &Sources) -> Result<(PathBuf, Option<PathBuf>, Option<Config>)> {
    Ok(match existing_config(sources)? {
        Some(config) => (
            config.data_dir.clone(),
            config.master_key_file.clone(),
            Some(config),
        ),
        None => (
            sources.data_dir.clone().unwrap_or_else(default_data_dir),
            None,
            None,
        ),
    })
}

/// `TABLE.COLUMN` → (table, column).
fn table_column(spec: &str) -> Result<(String, String)> {
    spec.split_once('.')
        .filter(|(t, c)| !t.is_empty() && !c.is_empty())
        .map(|(t, c)| (t.to_owned(), c.to_owned()))
        .with_context(|| format!("`{spec}`: name the column as TABLE.COLUMN, e.g. customers.phone"))
}

/// `privet keys pg-verifier`: the verifier line of an API key, to paste
/// into the principal's `[[principals]]` entry.
fn pg_verifier() -> Result<()> {
    use std::io::{BufRead as _, IsTerminal as _};
    let key = match std::env::var("PRIVET_API_KEY") {
        Ok(key) => key,
        Err(_) => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprint!("API key: ");
                let _ = std::io::stderr().flush();
            }
            let mut line = String::new();
            stdin
                .lock()
                .read_line(&mut line)
                .context("reading the API key from standard input")?;
            line
        }
    };
    let key = key.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(
        !key.is_empty(),
        "no API key: set PRIVET_API_KEY or pipe the key to standard input"
    );
    let verifier = gateway::keys::ScramVerifier::generate(key)?;
    println!("pg_scram_sha256 = \"{verifier}\"");
    Ok(())
}

async fn keys_command(sources: &Sources, command: KeysCommand) -> Result<()> {
    let (data_dir, master_key_file, config) = keys_setup(sources)?;
    let open = |data_dir: &Path| {
        gateway::keyring::open(data_dir, master_key_file.as_deref(), false)
            .context("opening the keystore")
    };
    match command {
        KeysCommand::List { subjects } => {
            let keys = open(&data_dir)?;
            let list = keys.keystore.list();
            println!(
                "{:<12} {:<28} {:<17} {:<44} PROTECTS",
                "KIND", "NAME", "ID", "VERSIONS"
            );
            let (mut active, mut shredded) = (0u64, 0u64);
            for key in &list {
                if key.kind == vault::KeyKind::Subject {
                    if key
                        .versions
                        .iter()
                        .any(|v| v.state == vault::KeyState::Shredded)
                    {
                        shredded += 1;
                    } else {
                        active += 1;
                    }
                    if !subjects {
                        continue;
                    }
                }
                let versions = key
                    .versions
                    .iter()
                    .map(|v| format!("v{} {} {}", v.version, v.state.as_str(), v.created))
                    .collect::<Vec<_>>()
                    .join(", ");
                println!(
                    "{:<12} {:<28} {:<17} {:<44} {}",
                    key.kind.as_str(),
                    key.name,
                    key.id,
                    versions,
                    key.protects
                );
            }
            if !subjects {
                println!(
                    "subject keys: {active} active, {shredded} shredded (--subjects lists them)"
                );
            }
        }
        KeysCommand::Rotate { column, all } => {
            let mut keys = open(&data_dir)?;
            let columns = if all {
                keys.keystore.columns()
            } else {
                vec![table_column(column.as_deref().unwrap_or_default())?]
            };
            if columns.is_empty() {
                anyhow::bail!("the keystore has no encrypted columns to rotate");
            }
            for (table, column) in &columns {
                let version = keys
                    .keystore
                    .rotate_column(table, column)
                    .with_context(|| format!("rotating {table}.{column}"))?;
                println!("{table}.{column}: now at key version {version}; run `privet keys rewrap` to re-encrypt stored values");
            }
            keys.keystore.save().context("saving the keystore")?;
        }
        KeysCommand::Rewrap {
            column,
            batch,
            stop_after_batches,
        } => {
            let config = match config {
                Some(c) => c,
                None => required_config(sources)?,
            };
            let gateway = Gateway::start(config.clone())
                .await
                .context("reading the store's catalog")?;
            let cipher = std::sync::Arc::new(open(&data_dir)?.keystore.cipher());
            let catalog = gateway.catalog();
            let wanted = column.as_deref().map(table_column).transpose()?;
            let mut targets = Vec::new();
            for table in catalog.tables() {
                for enc in catalog.encrypted(&table.name) {
                    if wanted.as_ref().is_some_and(|(t, c)| {
                        !t.eq_ignore_ascii_case(&table.name) || !c.eq_ignore_ascii_case(&enc.column)
                    }) {
                        continue;
                    }
                    let [key] = enc.row_key.as_slice() else {
                        anyhow::bail!(
                            "{}.{}: rewrap supports single-column primary keys only",
                            table.name,
                            enc.column
                        );
                    };
                    let key_type = table
                        .columns
                        .iter()
                        .find(|c| &c.name == key)
                        .map(|c| c.decl_type.clone())
                        .unwrap_or_default();
                    targets.push(gateway::rekey::RewrapTarget {
                        table: table.name.clone(),
                        column: enc.column.clone(),
                        key_column: key.clone(),
                        key_type,
                    });
                }
            }
            if targets.is_empty() {
                anyhow::bail!(
                    "no encrypted column {}in the classification",
                    column.map(|c| format!("{c} ")).unwrap_or_default()
                );
            }
            for target in targets {
                let report = gateway::rekey::rewrap(
                    &config.backend,
                    target,
                    std::sync::Arc::clone(&cipher),
                    gateway::rekey::RewrapOptions {
                        batch: batch.max(1),
                        stop_after_batches,
                        progress: true,
                    },
                )
                .await?;
                println!(
                    "{}.{}: {} values re-encrypted to version {}, {} already current, {} of shredded subjects left as they are{}",
                    report.table,
                    report.column,
                    report.rewrapped,
                    report.version,
                    report.already_current,
                    report.shredded,
                    if report.interrupted { " (stopped early: run again to continue)" } else { "" }
                );
                if report.interrupted {
                    break;
                }
            }
        }
        // Dispatched before the keystore is opened; it needs none.
        KeysCommand::PgVerifier => pg_verifier()?,
        KeysCommand::Shred { subject } => {
            if !subject
                .split_once(':')
                .is_some_and(|(d, v)| !d.is_empty() && !v.is_empty())
            {
                anyhow::bail!("`{subject}`: name the subject as DOMAIN:ID, e.g. customer:42");
            }
            let mut keys = open(&data_dir)?;
            let outcome = keys
                .keystore
                .shred_subject(&subject)
                .with_context(|| format!("shredding {subject}"))?;
            if outcome == vault::ShredOutcome::AlreadyShredded {
                println!("{subject} was already shredded");
                return Ok(());
            }
            keys.keystore.save().context("saving the keystore")?;
            drop(keys);
            println!("{subject}: key destroyed; their encrypted fields now read as [shredded]");
            let log_dir = data_dir
                .join(gateway::audit::AUDIT_DIR)
                .join(gateway::audit::LOG_DIR);
            match audit::AuditLog::open(&log_dir, audit::LogOptions::default()) {
                Ok(log) => {
                    let event = gateway::audit::shred_event(
                        &subject,
                        "privet keys shred",
                        &format!("shred-{}", gateway::audit::now_us()),
                    );
                    let seq = log
                        .append(event)
                        .await
                        .context("recording the shredding in the audit log")?;
                    println!("recorded in the audit log as event {seq}");
                }
                Err(audit::LogError::Locked { .. }) => println!(
                    "the running gateway holds the audit log: it records the shredding there within a second"
                ),
                Err(e) => return Err(e).context("opening the audit log to record the shredding"),
            }
        }
    }
    Ok(())
}

async fn seed_store(sources: &Sources, scale: f64, seed_value: u64, force: bool) -> Result<()> {
    let (backend, data_dir, master_key_file) = match existing_config(sources)? {
        Some(config) => (config.backend, config.data_dir, config.master_key_file),
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
            (backend, dir, None)
        }
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let mut keys = gateway::keyring::open(&data_dir, master_key_file.as_deref(), true)
        .context("opening the keystore for the encrypted columns")?;
    let started = std::time::Instant::now();
    let opts = SeedOptions {
        scale,
        seed: seed_value,
        progress: true,
    };
    let summary = match &backend {
        BackendConfig::Sqlite { path } => seed::seed_sqlite(path, &opts, force, &mut keys)?,
        BackendConfig::Postgres { url, schema } => {
            seed::seed_postgres(
                &url.connect_config(),
                url.redacted(),
                schema,
                &opts,
                force,
                &mut keys,
            )
            .await?
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
