//! The search index over audit events.
//!
//! The log is the source of truth; this index is derived from it and can
//! always be rebuilt (`privet audit reindex`). It holds one tantivy document
//! per [`Event`], keyed by the event's `seq`: a search returns seqs, newest
//! first, and the caller reads the events themselves from the log.
//!
//! Progress is tracked by [`AuditIndex::next_seq`], which is persisted in the
//! payload of every tantivy commit together with the index format version.
//! After a crash the caller re-feeds the log from `next_seq`; events already
//! indexed are skipped, so catch-up is idempotent.
//!
//! # Query syntax
//!
//! ```text
//! principal:marketing-service AND column:customers.email
//! subject:"customer:42"
//! table:customers AND NOT purpose:marketing
//! (outcome:denied OR outcome:failed) AND -role:admin
//! error:policy_denied
//! customers                      (a bare word searches the SQL fingerprint)
//! "from customers where"         (a quoted phrase in the fingerprint)
//! rows:[100 TO *]   rows:>=100   seq:12   policy:marketing-*
//! ```
//!
//! - `field:value` matches events whose field has that value. Values are
//!   compared case-insensitively (except the key part of a subject id, see
//!   below). A value runs to the next space or parenthesis and may contain
//!   `-`, `.`, `:` and `_`; quote it (`"..."`, with `\"` for a quote) when it
//!   contains spaces or parentheses.
//! - A trailing `*` on an unquoted value is a prefix match
//!   (`policy:marketing-*`); `field:*` matches events that have any value in
//!   the field.
//! - Terms combine with `AND`, `OR`, `NOT` (upper case) and parentheses. `AND`
//!   binds tighter than `OR`; terms next to each other are ANDed; `-term` is
//!   `NOT term`.
//! - A bare word or quoted phrase searches the fingerprint, the SQL with its
//!   literals replaced by placeholders: `customers`, `"select email"`,
//!   `custom*`. Lower-case `and`/`or`/`not` are words, not operators.
//! - Numeric fields (`seq`, `rows`, `time`) take a number, a range
//!   `[lo TO hi]` (`[`/`]` inclusive, `{`/`}` exclusive, `*` open) or a
//!   comparison `>`, `>=`, `<`, `<=`. `time` is microseconds since the epoch;
//!   the `since`/`until` arguments of [`AuditIndex::search`] are usually more
//!   convenient.
//! - An empty query (or `*`) matches every event.
//!
//! [`QUERY_SYNTAX`] is the same summary in plain text, for the CLI.
//!
//! # Fields
//!
//! Multi-valued fields match when any of their values does.
//!
//! | field | from the event | example |
//! | --- | --- | --- |
//! | `seq` | position in the log | `seq:12` |
//! | `time` | request time, µs since the epoch | `time:[1764000000000000 TO *]` |
//! | `principal` | authenticated principal (absent if authentication failed) | `principal:marketing-service`, `NOT principal:*` |
//! | `role` | each role of the principal | `role:analyst` |
//! | `purpose` | declared purpose | `purpose:marketing` |
//! | `endpoint` | what was asked | `endpoint:policy_reload` |
//! | `statement` | kind of SQL statement | `statement:select` |
//! | `outcome` | `allowed`, `denied` or `failed` | `outcome:denied` |
//! | `error` | error code | `error:policy_denied` |
//! | `source` | client address | `source:10.0.0.9` |
//! | `request` | request id | `request:r-1` |
//! | `table` | each table read | `table:customers` |
//! | `column` | each column read, `table.column` | `column:customers.email` |
//! | `access` | each column with its decision | `access:customers.email:masked` |
//! | `decision` | each column decision | `decision:decrypted` |
//! | `mask` | each mask applied | `mask:email_partial` |
//! | `policy` | each policy behind the decisions | `policy:marketing-email-masked` |
//! | `subject` | each data subject returned; `unattributed` when rows came back that no key names | `subject:"customer:42"`, `subject:unattributed` |
//! | `anomaly` | the anomaly detector's action | `anomaly:alert` |
//! | `rows` | rows returned | `rows:>=1000` |
//! | `fingerprint` | words of the SQL fingerprint (the default field) | `customers`, `fingerprint:"select email"` |
//!
//! Subject ids are `entity:key` (`customer:42`). The entity is matched
//! case-insensitively, but the key exactly, because primary keys can be
//! case-sensitive and a data-subject access report must not mix up two
//! people.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tantivy::collector::{Collector, Count, SegmentCollector};
use tantivy::columnar::{Cardinality, Column};
use tantivy::directory::MmapDirectory;
use tantivy::index::SegmentId;
use tantivy::indexer::IndexWriterOptions;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::store::Compressor;
use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};
use tantivy::{
    DocId, Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, SegmentReader,
    TantivyDocument, TantivyError, Term,
};

use crate::event::Event;
use crate::query;

/// The on-disk format of the index: bump it whenever the schema, the
/// tokenizers or the way events map to documents change, so that an index
/// written by another version is reported as [`IndexError::Incompatible`] and
/// rebuilt instead of silently answering wrong.
pub const INDEX_FORMAT: u32 = 1;

/// The most hits one page returns; larger limits are clamped, because the
/// top-k collector allocates for the whole page up front.
pub const MAX_PAGE_LIMIT: usize = 10_000;

/// Memory the writer buffers before it flushes a segment. Larger means fewer,
/// bigger segments (fewer merges) at the cost of resident memory.
const WRITER_MEMORY_BYTES: usize = 64 << 20;

/// The tokenizer of the fingerprint. Registered under our own name so a
/// change in tantivy's "default" tokenizer cannot make the query side
/// disagree with what an existing index contains.
const FINGERPRINT_TOKENIZER: &str = "privet_fingerprint";

/// The plain-text query syntax summary, for the CLI's help and for
/// [`IndexError::BadQuery`] messages.
pub const QUERY_SYNTAX: &str = "\
Query syntax: field:value terms combined with AND, OR, NOT and parentheses; \
terms side by side are ANDed and -term means NOT term. Quote values with spaces: \
subject:\"customer:42\". A trailing * matches a prefix (policy:marketing-*), field:* any value. \
Bare words and \"quoted phrases\" search the SQL fingerprint. \
Numbers: seq:12, rows:[100 TO *], rows:>=100, time:[FROM_US TO UNTIL_US}. \
Examples: principal:marketing-service AND column:customers.email; \
table:customers AND NOT purpose:marketing; outcome:denied; customers. \
Fields: seq, time, principal, role, purpose, endpoint, statement, outcome, error, source, \
request, table, column, access (customers.email:masked), decision, mask, policy, subject, \
anomaly, rows, fingerprint.";

/// What can go wrong with the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The index files cannot be read; rebuild the index from the log.
    #[error("audit index at {} is corrupt ({reason}); rebuild it with `privet audit reindex`", dir.display())]
    Corrupt {
        /// The index directory.
        dir: PathBuf,
        /// What was found wrong.
        reason: String,
    },
    /// The index was written by a version with another format; rebuild it.
    #[error("audit index at {} has format {found}, this version uses {INDEX_FORMAT}; rebuild it with `privet audit reindex`", dir.display())]
    Incompatible {
        /// The index directory.
        dir: PathBuf,
        /// The format found on disk.
        found: String,
    },
    /// Another process (or another `AuditIndex` in this one) has the index
    /// open for writing.
    #[error("audit index at {} is in use by another writer", .0.display())]
    Locked(PathBuf),
    /// `add()` was given an event past the next expected seq: events must be
    /// indexed in log order without holes.
    #[error("audit index expects seq {expected} next but was given {got}; feed the log from seq {expected}")]
    Gap {
        /// The seq the index expects next.
        expected: u64,
        /// The seq it was given.
        got: u64,
    },
    /// The query does not parse or names an unknown field. The message says
    /// what was wrong and summarizes the syntax.
    #[error("invalid audit query: {0}\n{QUERY_SYNTAX}")]
    BadQuery(String),
    /// A file-system operation on the index directory failed.
    #[error("audit index I/O error at {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An earlier operation panicked while holding the writer; reopen the
    /// index.
    #[error("audit index writer is unusable after an earlier panic; reopen the index")]
    Poisoned,
    /// `add`/`commit` on an index opened with
    /// [`AuditIndex::open_read_only`].
    #[error("audit index at {} is open read-only", .0.display())]
    ReadOnly(PathBuf),
    /// Any other tantivy failure.
    #[error("audit index error: {0}")]
    Tantivy(#[from] TantivyError),
}

impl IndexError {
    /// Whether rebuilding the index from the log (`AuditIndex::recreate` and
    /// re-feeding every event) is the cure.
    pub fn needs_rebuild(&self) -> bool {
        matches!(
            self,
            IndexError::Corrupt { .. } | IndexError::Incompatible { .. }
        )
    }
}

/// A time window in microseconds since the Unix epoch: `since` inclusive,
/// `until` exclusive; `None` leaves that side open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Earliest event time included.
    pub since_us: Option<i64>,
    /// First event time excluded.
    pub until_us: Option<i64>,
}

impl TimeRange {
    /// No time restriction.
    pub fn all() -> TimeRange {
        TimeRange::default()
    }
}

/// Which slice of the hits (newest first) to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Hits to skip.
    pub offset: usize,
    /// Hits to return at most (clamped to [`MAX_PAGE_LIMIT`]); 0 only counts.
    pub limit: usize,
}

impl Page {
    /// The first `limit` hits.
    pub fn first(limit: usize) -> Page {
        Page { offset: 0, limit }
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::first(50)
    }
}

/// A page of search results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hits {
    /// How many events match in total, regardless of paging.
    pub total: usize,
    /// The seqs of this page's events, newest (highest seq) first.
    pub seqs: Vec<u64>,
}

/// How a field's values are indexed and matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    /// An identifier, indexed whole and lower-cased.
    Keyword,
    /// A data-subject id, `entity:key`: the entity lower-cased, the key exact.
    Subject,
    /// Full text (the fingerprint), split into lower-cased words.
    Text,
    /// An unsigned number (`seq`, `rows`).
    U64,
    /// A signed number (`time`).
    I64,
}

/// One searchable field.
pub(crate) struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
}

/// Every field of the schema, in schema order. The query parser resolves
/// names against this list and prints it for unknown fields.
pub(crate) const FIELDS: &[FieldSpec] = &[
    FieldSpec {
        name: "seq",
        kind: FieldKind::U64,
    },
    FieldSpec {
        name: "time",
        kind: FieldKind::I64,
    },
    FieldSpec {
        name: "principal",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "role",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "purpose",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "endpoint",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "statement",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "outcome",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "error",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "source",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "request",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "table",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "column",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "access",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "decision",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "mask",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "policy",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "subject",
        kind: FieldKind::Subject,
    },
    FieldSpec {
        name: "anomaly",
        kind: FieldKind::Keyword,
    },
    FieldSpec {
        name: "rows",
        kind: FieldKind::U64,
    },
    FieldSpec {
        name: "fingerprint",
        kind: FieldKind::Text,
    },
];

/// The `subject` term of events whose rows no key names
/// ([`crate::Subjects::unattributed`]); subject ids always hold a `:`.
pub const UNATTRIBUTED: &str = "unattributed";

/// Normalizes a keyword or subject value the same way at index and at query
/// time (text fields go through the fingerprint tokenizer instead).
pub(crate) fn normalize(kind: FieldKind, value: &str) -> Cow<'_, str> {
    match kind {
        FieldKind::Subject => match value.split_once(':') {
            Some((entity, key)) if has_upper(entity) => {
                Cow::Owned(format!("{}:{key}", entity.to_lowercase()))
            }
            Some(_) => Cow::Borrowed(value),
            None if has_upper(value) => Cow::Owned(value.to_lowercase()),
            None => Cow::Borrowed(value),
        },
        _ if has_upper(value) => Cow::Owned(value.to_lowercase()),
        _ => Cow::Borrowed(value),
    }
}

/// Whether lower-casing would change `s` (cheap check so the common,
/// already lower-case value is not copied).
fn has_upper(s: &str) -> bool {
    s.chars().any(|c| c.is_uppercase())
}

/// The analyzer of the fingerprint: words of letters and digits,
/// lower-cased; absurdly long words are dropped rather than indexed.
pub(crate) fn fingerprint_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .build()
}

/// The fields of the schema, by role.
#[derive(Debug, Clone, Copy)]
struct Fields {
    seq: Field,
    time: Field,
    principal: Field,
    role: Field,
    purpose: Field,
    endpoint: Field,
    statement: Field,
    outcome: Field,
    error: Field,
    source: Field,
    request: Field,
    table: Field,
    column: Field,
    access: Field,
    decision: Field,
    mask: Field,
    policy: Field,
    subject: Field,
    anomaly: Field,
    rows: Field,
    fingerprint: Field,
}

/// Builds the schema. Keyword fields keep no frequencies or positions and
/// no norms: results are ordered by seq, never scored, so those would only
/// cost space and indexing time.
fn build_schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let keyword = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(FINGERPRINT_TOKENIZER)
            // Positions make quoted phrases and `customers.email` work.
            .set_index_option(IndexRecordOption::WithFreqsAndPositions)
            .set_fieldnorms(false),
    );
    // seq is indexed for `seq:12`, fast for sorting, stored for inspection.
    let seq_opts = NumericOptions::default()
        .set_indexed()
        .set_fast()
        .set_stored();
    // Ranges on time and rows run on the fast column; no terms needed.
    let fast = NumericOptions::default().set_fast();
    let mut kw = |name: &str| b.add_text_field(name, keyword.clone());
    let principal = kw("principal");
    let role = kw("role");
    let purpose = kw("purpose");
    let endpoint = kw("endpoint");
    let statement = kw("statement");
    let outcome = kw("outcome");
    let error = kw("error");
    let source = kw("source");
    let request = kw("request");
    let table = kw("table");
    let column = kw("column");
    let access = kw("access");
    let decision = kw("decision");
    let mask = kw("mask");
    let policy = kw("policy");
    let subject = kw("subject");
    let anomaly = kw("anomaly");
    let seq = b.add_u64_field("seq", seq_opts);
    let time = b.add_i64_field("time", fast.clone());
    let rows = b.add_u64_field("rows", fast);
    let fingerprint = b.add_text_field("fingerprint", text);
    let fields = Fields {
        seq,
        time,
        principal,
        role,
        purpose,
        endpoint,
        statement,
        outcome,
        error,
        source,
        request,
        table,
        column,
        access,
        decision,
        mask,
        policy,
        subject,
        anomaly,
        rows,
        fingerprint,
    };
    (b.build(), fields)
}

/// What each commit records next to the segments.
#[derive(Debug, Serialize, Deserialize)]
struct CommitPayload {
    format: u32,
    next_seq: u64,
}

/// The writer and the seq `add()` expects next (ahead of the committed
/// `next_seq` while events are buffered).
struct WriterState {
    writer: IndexWriter,
    buffered_next: u64,
}

/// The search index over the audit log. `Send + Sync`: searches run
/// concurrently with each other and with `add`/`commit`, which serialize on
/// an internal lock.
pub struct AuditIndex {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// `None` when opened read-only.
    writer: Mutex<Option<WriterState>>,
    /// Every event with a seq below this is committed.
    committed_next: AtomicU64,
    /// Per-segment seq runs, for the newest-first collector.
    runs: Arc<RunCache>,
}

impl std::fmt::Debug for AuditIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditIndex")
            .field("dir", &self.dir)
            .field("next_seq", &self.next_seq())
            .finish_non_exhaustive()
    }
}

impl AuditIndex {
    /// Opens or creates the index in `dir` (e.g. `data/audit/index`),
    /// creating the directory if needed. A corrupt index or one of another
    /// format is reported as an error for which
    /// [`IndexError::needs_rebuild`] is true, so the caller can
    /// [`recreate`](AuditIndex::recreate) it and re-feed the log.
    pub fn open(dir: &Path) -> Result<AuditIndex, IndexError> {
        AuditIndex::open_mode(dir, true)
    }

    /// Opens an existing index for searching only, without the writer lock,
    /// so it works beside a gateway that is writing it (`privet audit
    /// search`). It sees the commits made before it was opened; `add` and
    /// `commit` return [`IndexError::ReadOnly`].
    pub fn open_read_only(dir: &Path) -> Result<AuditIndex, IndexError> {
        AuditIndex::open_mode(dir, false)
    }

    fn open_mode(dir: &Path, writable: bool) -> Result<AuditIndex, IndexError> {
        if !writable && !dir.join("meta.json").is_file() {
            return Err(IndexError::Corrupt {
                dir: dir.to_path_buf(),
                reason: "there is no index here".into(),
            });
        }
        fs::create_dir_all(dir).map_err(|source| IndexError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let directory = MmapDirectory::open(dir).map_err(|e| IndexError::Io {
            path: dir.to_path_buf(),
            source: io::Error::other(e.to_string()),
        })?;
        let (schema, fields) = build_schema();
        let exists = Index::exists(&directory).map_err(|e| corrupt(dir, e.to_string()))?;
        let (index, next_seq) = if exists {
            let index = Index::open(directory).map_err(|e| open_error(dir, e))?;
            let meta = index.load_metas().map_err(|e| open_error(dir, e))?;
            let payload = read_payload(dir, meta.payload.as_deref())?;
            if index.schema() != schema {
                // Same format number but another schema: a bug in how the
                // format was bumped, or a foreign index. Either way, rebuild.
                return Err(IndexError::Incompatible {
                    dir: dir.to_path_buf(),
                    found: format!("{} with a different schema", payload.format),
                });
            }
            (index, payload.next_seq)
        } else {
            let settings = IndexSettings {
                // Pinned rather than left to tantivy's feature-dependent
                // default, so another crate enabling lz4 cannot make old
                // indexes unreadable. Only seq is stored; nothing to compress.
                docstore_compression: Compressor::None,
                ..IndexSettings::default()
            };
            let index =
                Index::create(directory, schema, settings).map_err(|e| open_error(dir, e))?;
            (index, 0)
        };
        index
            .tokenizers()
            .register(FINGERPRINT_TOKENIZER, fingerprint_analyzer());

        let options = IndexWriterOptions::builder()
            .memory_budget_per_thread(WRITER_MEMORY_BYTES)
            // One indexing thread: the machine has few cores and the caller's
            // thread builds the documents meanwhile. It also writes each
            // segment in seq order, which makes newest-first searches cheap
            // (see RunCache; results are exact whatever the order).
            .num_worker_threads(1)
            // Merges run in the background; one thread keeps them from
            // competing with the gateway for every core.
            .num_merge_threads(1)
            .build();
        let writer = if writable {
            let mut writer: IndexWriter = index
                .writer_with_options(options)
                .map_err(|e| open_error(dir, e))?;
            if !exists {
                // A fresh index gets a first commit so that every index on
                // disk carries a payload; one without is then known to be
                // foreign.
                commit_with_payload(&mut writer, 0)?;
            }
            Some(WriterState {
                writer,
                buffered_next: next_seq,
            })
        } else {
            None
        };
        let reader = index
            .reader_builder()
            // We reload after our own commits; no file watcher needed.
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| open_error(dir, e))?;
        let runs = Arc::new(RunCache::default());
        runs.refresh(&reader.searcher());
        Ok(AuditIndex {
            dir: dir.to_path_buf(),
            index,
            reader,
            fields,
            writer: Mutex::new(writer),
            committed_next: AtomicU64::new(next_seq),
            runs,
        })
    }

    /// Deletes the index in `dir` and opens a new, empty one (for
    /// `privet audit reindex`, or after [`IndexError::needs_rebuild`]).
    ///
    /// Only tantivy's own files are deleted, never anything else in `dir`,
    /// so a misconfigured path cannot wipe, say, the log next to it. Any
    /// `AuditIndex` open on `dir` must be dropped first.
    pub fn recreate(dir: &Path) -> Result<AuditIndex, IndexError> {
        match fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|source| IndexError::Io {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                    let name = entry.file_name();
                    let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
                    if is_file && is_index_file(&name.to_string_lossy()) {
                        let path = entry.path();
                        fs::remove_file(&path).map_err(|source| IndexError::Io { path, source })?;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(IndexError::Io {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
        AuditIndex::open(dir)
    }

    /// The directory the index lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The next seq the index expects: every event with a smaller seq is
    /// committed. It is persisted with each commit, so after a restart the
    /// caller re-feeds the log from here.
    pub fn next_seq(&self) -> u64 {
        self.committed_next.load(Ordering::Acquire)
    }

    /// Buffers `events` (in seq order) for the next [`commit`](Self::commit).
    ///
    /// Events already indexed or buffered (seq below the expected one) are
    /// skipped, so re-feeding an overlap after a crash is harmless. An event
    /// past the expected seq is a [`IndexError::Gap`] and nothing of this
    /// call is buffered.
    pub fn add(&self, events: &[Event]) -> Result<(), IndexError> {
        let mut guard = self.lock_writer()?;
        let state = guard
            .as_mut()
            .ok_or_else(|| IndexError::ReadOnly(self.dir.clone()))?;
        // Check the whole batch before buffering any of it, so a gap leaves
        // the writer as it was.
        let mut expected = state.buffered_next;
        for event in events {
            if event.seq > expected {
                return Err(IndexError::Gap {
                    expected,
                    got: event.seq,
                });
            }
            if event.seq == expected {
                expected += 1;
            }
        }
        for event in events {
            if event.seq != state.buffered_next {
                continue;
            }
            state.writer.add_document(self.document(event))?;
            state.buffered_next += 1;
        }
        Ok(())
    }

    /// Commits the buffered events durably, with the new `next_seq` in the
    /// commit payload, and makes them searchable.
    ///
    /// On failure the buffered events are discarded and `next_seq` stays at
    /// the last successful commit: re-feed from there.
    pub fn commit(&self) -> Result<(), IndexError> {
        let mut guard = self.lock_writer()?;
        let state = guard
            .as_mut()
            .ok_or_else(|| IndexError::ReadOnly(self.dir.clone()))?;
        let next = state.buffered_next;
        if let Err(e) = commit_with_payload(&mut state.writer, next) {
            let committed = self.next_seq();
            // Drop what was buffered so add() and next_seq agree again.
            if state.writer.rollback().is_ok() {
                state.buffered_next = committed;
            }
            return Err(e);
        }
        self.committed_next.store(next, Ordering::Release);
        drop(guard);
        self.reader.reload()?;
        // Scan the new segments now rather than in the first search.
        self.runs.refresh(&self.reader.searcher());
        Ok(())
    }

    /// Searches the committed events. `query` uses the syntax in the
    /// [module docs](self) ([`QUERY_SYNTAX`]); `range` restricts the event
    /// time. Hits are newest first (seq descending), sliced by `page`, with
    /// the total number of matches.
    pub fn search(&self, query: &str, range: TimeRange, page: Page) -> Result<Hits, IndexError> {
        let analyzer = fingerprint_analyzer();
        let parsed =
            query::compile(query, &self.index.schema(), analyzer).map_err(IndexError::BadQuery)?;
        self.run(parsed, range, page)
    }

    /// Every event that returned rows of data subject `subject_id`
    /// (`customer:42`), newest first: the data-subject access report.
    pub fn subject(
        &self,
        subject_id: &str,
        range: TimeRange,
        page: Page,
    ) -> Result<Hits, IndexError> {
        let value = normalize(FieldKind::Subject, subject_id);
        let term = Term::from_field_text(self.fields.subject, &value);
        let query = TermQuery::new(term, IndexRecordOption::Basic);
        self.run(Box::new(query), range, page)
    }

    /// Runs a built query with the time range and paging.
    fn run(&self, query: Box<dyn Query>, range: TimeRange, page: Page) -> Result<Hits, IndexError> {
        let query = self.with_time_range(query, range);
        let searcher = self.reader.searcher();
        let num_docs = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX);
        let limit = page.limit.min(MAX_PAGE_LIMIT);
        // Past the last document no page can have hits; counting alone then
        // also keeps a huge offset from sizing the collector's buffers.
        if limit == 0 || page.offset >= num_docs {
            let total = searcher.search(query.as_ref(), &Count)?;
            return Ok(Hits {
                total,
                seqs: Vec::new(),
            });
        }
        let collector = NewestFirst {
            offset: page.offset,
            limit,
            runs: Arc::clone(&self.runs),
            max_runs: MAX_RUNS,
        };
        let (total, seqs) = searcher.search(query.as_ref(), &collector)?;
        Ok(Hits { total, seqs })
    }

    /// Adds the time window to `query` (a fast-field range, which intersects
    /// cheaply with term postings).
    fn with_time_range(&self, query: Box<dyn Query>, range: TimeRange) -> Box<dyn Query> {
        if range.since_us.is_none() && range.until_us.is_none() {
            return query;
        }
        let lower = match range.since_us {
            Some(t) => Bound::Included(Term::from_field_i64(self.fields.time, t)),
            None => Bound::Unbounded,
        };
        let upper = match range.until_us {
            Some(t) => Bound::Excluded(Term::from_field_i64(self.fields.time, t)),
            None => Bound::Unbounded,
        };
        let range_query: Box<dyn Query> = Box::new(RangeQuery::new(lower, upper));
        if query.is::<AllQuery>() {
            return range_query;
        }
        Box::new(BooleanQuery::new(vec![
            (Occur::Must, query),
            (Occur::Must, range_query),
        ]))
    }

    /// The tantivy document of one event.
    fn document(&self, event: &Event) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::new();
        let kw = |doc: &mut TantivyDocument, field: Field, value: &str| {
            doc.add_text(field, normalize(FieldKind::Keyword, value));
        };
        doc.add_u64(f.seq, event.seq);
        doc.add_i64(f.time, event.time_us);
        doc.add_u64(f.rows, event.rows);
        if let Some(principal) = &event.principal {
            kw(&mut doc, f.principal, principal);
        }
        for role in &event.roles {
            kw(&mut doc, f.role, role);
        }
        if let Some(purpose) = &event.purpose {
            kw(&mut doc, f.purpose, purpose);
        }
        kw(&mut doc, f.endpoint, &event.endpoint);
        if let Some(statement) = &event.statement {
            kw(&mut doc, f.statement, statement);
        }
        kw(&mut doc, f.outcome, event.outcome.as_str());
        if let Some(code) = &event.error_code {
            kw(&mut doc, f.error, code);
        }
        kw(&mut doc, f.source, &event.source);
        kw(&mut doc, f.request, &event.request_id);
        for table in &event.tables {
            kw(&mut doc, f.table, &table.table);
            for column in &table.columns {
                let qualified = format!("{}.{}", table.table, column.column);
                let decision = column.decision.as_str();
                kw(&mut doc, f.column, &qualified);
                kw(&mut doc, f.access, &format!("{qualified}:{decision}"));
                kw(&mut doc, f.decision, decision);
                if let Some(mask) = &column.mask {
                    kw(&mut doc, f.mask, mask);
                }
            }
        }
        for policy in &event.policies {
            kw(&mut doc, f.policy, policy);
        }
        for subject in &event.subjects.ids {
            doc.add_text(f.subject, normalize(FieldKind::Subject, subject));
        }
        if event.subjects.unattributed {
            doc.add_text(f.subject, UNATTRIBUTED);
        }
        kw(&mut doc, f.anomaly, &event.anomaly.action);
        if let Some(fingerprint) = &event.fingerprint {
            doc.add_text(f.fingerprint, fingerprint);
        }
        doc
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, Option<WriterState>>, IndexError> {
        self.writer.lock().map_err(|_| IndexError::Poisoned)
    }
}

/// Segments with more seq runs than this are scanned value by value instead:
/// the run bookkeeping only pays off for a few long runs.
const MAX_RUNS: usize = 1_024;

/// For each segment, where its seq stops increasing with the doc id.
///
/// Events are added in seq order by one indexing thread, so within a
/// freshly written segment seq grows with the doc id, and a merged segment
/// is a concatenation of such runs. Knowing the runs, the newest hits of a
/// run are simply its last matching docs, which spares reading seq for every
/// match: "everything, newest first" then costs a count, not a sort of the
/// whole index.
#[derive(Default)]
struct RunCache {
    /// Exclusive end doc of each run, the last being `max_doc`; `None` when
    /// the seq column is not one value per doc (then the segment is scanned).
    by_segment: Mutex<HashMap<SegmentId, Option<Arc<[DocId]>>>>,
}

impl RunCache {
    /// The runs of `reader`'s segment, computed on first use. Segments are
    /// immutable, so an entry never goes stale; `refresh` drops the ones of
    /// merged-away segments.
    fn get(&self, reader: &SegmentReader, column: &Column<u64>) -> Option<Arc<[DocId]>> {
        let id = reader.segment_id();
        if let Some(runs) = self.by_segment.lock().ok()?.get(&id) {
            return runs.clone();
        }
        // Computed outside the lock so concurrent searches are not held up
        // by a scan; two threads may compute the same runs, harmlessly.
        let runs = seq_runs(column);
        if let Ok(mut map) = self.by_segment.lock() {
            map.insert(id, runs.clone());
        }
        runs
    }

    /// Computes the runs of the searcher's segments and forgets the others.
    fn refresh(&self, searcher: &tantivy::Searcher) {
        let live: Vec<SegmentId> = searcher
            .segment_readers()
            .iter()
            .map(|r| r.segment_id())
            .collect();
        if let Ok(mut map) = self.by_segment.lock() {
            map.retain(|id, _| live.contains(id));
        }
        for reader in searcher.segment_readers() {
            if let Ok(column) = reader.fast_fields().u64("seq") {
                self.get(reader, &column);
            }
        }
    }
}

/// Scans a segment's seq column for the doc ids where seq stops
/// increasing.
fn seq_runs(column: &Column<u64>) -> Option<Arc<[DocId]>> {
    if column.get_cardinality() != Cardinality::Full {
        return None;
    }
    let num_docs = column.values.num_vals();
    let mut ends = Vec::new();
    let mut buf = vec![0u64; 4_096];
    let mut prev: Option<u64> = None;
    let mut start: DocId = 0;
    while start < num_docs {
        let len = (num_docs - start).min(buf.len() as DocId);
        let chunk = &mut buf[..len as usize];
        column.values.get_range(u64::from(start), chunk);
        for (i, &seq) in chunk.iter().enumerate() {
            if prev.is_some_and(|p| seq <= p) {
                ends.push(start + i as DocId);
            }
            prev = Some(seq);
        }
        start += len;
    }
    ends.push(num_docs);
    Some(ends.into())
}

/// Counts the matches and keeps the seqs of the `offset + limit` newest.
struct NewestFirst {
    offset: usize,
    limit: usize,
    runs: Arc<RunCache>,
    /// Segments with more runs than this are scanned ([`MAX_RUNS`]; tests
    /// lower it to exercise the scan).
    max_runs: usize,
}

impl Collector for NewestFirst {
    /// (matches, newest seqs of the page).
    type Fruit = (usize, Vec<u64>);
    type Child = NewestInSegment;

    fn for_segment(
        &self,
        _segment_ord: u32,
        reader: &SegmentReader,
    ) -> tantivy::Result<NewestInSegment> {
        let column = reader.fast_fields().u64("seq")?;
        let want = self.offset.saturating_add(self.limit);
        let runs = self
            .runs
            .get(reader, &column)
            .filter(|runs| runs.len() <= self.max_runs);
        Ok(NewestInSegment {
            count: 0,
            top: TopSeqs::new(want),
            mode: match runs {
                Some(ends) => Mode::Runs {
                    ends,
                    run: 0,
                    last: VecDeque::with_capacity(want.min(65_536)),
                },
                None => Mode::Scan,
            },
            column,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<(usize, Vec<u64>)>) -> tantivy::Result<(usize, Vec<u64>)> {
        let total = fruits.iter().map(|(count, _)| count).sum();
        let mut seqs: Vec<u64> = fruits.into_iter().flat_map(|(_, seqs)| seqs).collect();
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        let page = seqs
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect();
        Ok((total, page))
    }
}

/// The per-segment half of [`NewestFirst`].
struct NewestInSegment {
    count: usize,
    column: Column<u64>,
    top: TopSeqs,
    mode: Mode,
}

enum Mode {
    /// Keep the last `want` matching docs of the current run; when the run
    /// ends, read their seqs into `top`.
    Runs {
        ends: Arc<[DocId]>,
        run: usize,
        last: VecDeque<DocId>,
    },
    /// Read the seq of every match.
    Scan,
}

impl NewestInSegment {
    fn flush_run(&mut self) {
        if let Mode::Runs { last, .. } = &mut self.mode {
            for doc in last.drain(..) {
                if let Some(seq) = self.column.first(doc) {
                    self.top.push(seq);
                }
            }
        }
    }
}

impl SegmentCollector for NewestInSegment {
    type Fruit = (usize, Vec<u64>);

    fn collect(&mut self, doc: DocId, _score: tantivy::Score) {
        self.collect_block(&[doc]);
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        self.count += docs.len();
        let want = self.top.want;
        let mut rest = docs;
        while let Some(&first) = rest.first() {
            let (ends, run, last) = match &mut self.mode {
                Mode::Scan => {
                    for &doc in rest {
                        if let Some(seq) = self.column.first(doc) {
                            self.top.push(seq);
                        }
                    }
                    return;
                }
                Mode::Runs { ends, run, last } => (ends, run, last),
            };
            let end = match ends.get(*run) {
                Some(&end) if first >= end => {
                    *run += 1;
                    self.flush_run();
                    continue;
                }
                Some(&end) => end,
                // Past the last run: cannot happen for docs of this segment;
                // fall back to reading seqs rather than lose matches.
                None => {
                    self.flush_run();
                    self.mode = Mode::Scan;
                    continue;
                }
            };
            // Docs arrive in increasing order: those before `end` are in
            // this run, and only its last `want` can be among the newest.
            let inside = rest.partition_point(|&d| d < end);
            let (now, later) = rest.split_at(inside);
            if now.len() >= want {
                last.clear();
                last.extend(&now[now.len() - want..]);
            } else {
                for &doc in now {
                    if last.len() == want {
                        last.pop_front();
                    }
                    last.push_back(doc);
                }
            }
            rest = later;
        }
    }

    fn harvest(mut self) -> (usize, Vec<u64>) {
        self.flush_run();
        (self.count, self.top.into_sorted())
    }
}

/// The `want` largest seqs pushed, in amortized O(1) per push.
struct TopSeqs {
    want: usize,
    seqs: Vec<u64>,
}

impl TopSeqs {
    fn new(want: usize) -> TopSeqs {
        TopSeqs {
            want,
            seqs: Vec::new(),
        }
    }

    fn push(&mut self, seq: u64) {
        if self.want == 0 {
            return;
        }
        self.seqs.push(seq);
        if self.seqs.len() >= self.want.saturating_mul(2).max(64) {
            self.truncate();
        }
    }

    fn truncate(&mut self) {
        if self.seqs.len() > self.want {
            self.seqs
                .select_nth_unstable_by(self.want - 1, |a, b| b.cmp(a));
            self.seqs.truncate(self.want);
        }
    }

    /// The kept seqs, largest first.
    fn into_sorted(mut self) -> Vec<u64> {
        self.truncate();
        self.seqs.sort_unstable_by(|a, b| b.cmp(a));
        self.seqs
    }
}

/// Commits with `next_seq` and the format in the payload.
fn commit_with_payload(writer: &mut IndexWriter, next_seq: u64) -> Result<(), IndexError> {
    let payload = CommitPayload {
        format: INDEX_FORMAT,
        next_seq,
    };
    // Serializing two integers cannot fail; map it anyway rather than panic.
    let payload = serde_json::to_string(&payload)
        .map_err(|e| TantivyError::InternalError(format!("commit payload: {e}")))?;
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&payload);
    prepared.commit()?;
    Ok(())
}

/// Reads and checks the payload of the last commit.
fn read_payload(dir: &Path, payload: Option<&str>) -> Result<CommitPayload, IndexError> {
    let Some(payload) = payload else {
        return Err(IndexError::Incompatible {
            dir: dir.to_path_buf(),
            found: "none (no commit payload: not a Privet audit index)".into(),
        });
    };
    // Read the format alone first, so a future format with other fields is
    // reported as incompatible rather than as corrupt.
    #[derive(Deserialize)]
    struct Format {
        format: serde_json::Value,
    }
    let format: Format = serde_json::from_str(payload)
        .map_err(|e| corrupt(dir, format!("commit payload {payload:?}: {e}")))?;
    if format.format != INDEX_FORMAT {
        return Err(IndexError::Incompatible {
            dir: dir.to_path_buf(),
            found: format.format.to_string(),
        });
    }
    serde_json::from_str(payload)
        .map_err(|e| corrupt(dir, format!("commit payload {payload:?}: {e}")))
}

fn corrupt(dir: &Path, reason: String) -> IndexError {
    IndexError::Corrupt {
        dir: dir.to_path_buf(),
        reason,
    }
}

/// Classifies a tantivy error met while opening: a held lock is not
/// corruption, and neither is an I/O error such as a permission problem;
/// anything else means the files are unreadable and the index must be
/// rebuilt.
fn open_error(dir: &Path, e: TantivyError) -> IndexError {
    match e {
        TantivyError::LockFailure(..) => IndexError::Locked(dir.to_path_buf()),
        TantivyError::IoError(io) if io.kind() == io::ErrorKind::PermissionDenied => {
            IndexError::Io {
                path: dir.to_path_buf(),
                source: io::Error::new(io.kind(), io.to_string()),
            }
        }
        TantivyError::IncompatibleIndex(inc) => IndexError::Incompatible {
            dir: dir.to_path_buf(),
            found: format!("{inc:?}"),
        },
        other => corrupt(dir, other.to_string()),
    }
}

/// Whether `name` is one of the files tantivy keeps in an index directory:
/// `meta.json`, `.managed.json`, or a segment file `<32 hex digits>.<ext>`
/// (lock files are left: a live writer may hold them).
fn is_index_file(name: &str) -> bool {
    if name == "meta.json" || name == ".managed.json" {
        return true;
    }
    match name.split_once('.') {
        Some((stem, ext)) => {
            stem.len() == 32
                && stem.bytes().all(|b| b.is_ascii_hexdigit())
                && !ext.is_empty()
                && ext.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_matches_field_specs() {
        let (schema, _) = build_schema();
        let names: Vec<&str> = schema.fields().map(|(_, e)| e.name()).collect();
        let mut specs: Vec<&str> = FIELDS.iter().map(|s| s.name).collect();
        let mut sorted_names = names.clone();
        sorted_names.sort_unstable();
        specs.sort_unstable();
        assert_eq!(sorted_names, specs);
    }

    #[test]
    fn syntax_help_names_every_field() {
        for spec in FIELDS {
            assert!(QUERY_SYNTAX.contains(spec.name), "{} missing", spec.name);
        }
    }

    #[test]
    fn normalizes_subject_entity_only() {
        assert_eq!(
            normalize(FieldKind::Subject, "Customer:AbC"),
            "customer:AbC"
        );
        assert_eq!(normalize(FieldKind::Subject, "customer:42"), "customer:42");
        assert_eq!(
            normalize(FieldKind::Keyword, "Marketing-Service"),
            "marketing-service"
        );
    }

    #[test]
    fn recognizes_index_files() {
        assert!(is_index_file("meta.json"));
        assert!(is_index_file("0123456789abcdef0123456789abcdef.idx"));
        assert!(is_index_file("0123456789abcdef0123456789abcdef.7.del"));
        assert!(!is_index_file(".tantivy-writer.lock"));
        assert!(!is_index_file("log.000001"));
        assert!(!is_index_file("checkpoints.json"));
    }
    fn event(seq: u64) -> Event {
        let mut e: Event = serde_json::from_value(serde_json::json!({
            "seq": seq, "time_us": 0, "request_id": "r", "principal": null,
            "source": "127.0.0.1", "purpose": null, "endpoint": "query",
            "statement": null, "fingerprint": null, "rows": 0,
            "latency_us": 0, "outcome": "allowed", "error_code": null
        }))
        .unwrap();
        e.principal = Some(format!("p{}", seq % 3));
        e
    }

    /// Merging segments out of seq order gives a segment of several runs;
    /// the newest-first collector must stay exact on it, both with runs and
    /// when it falls back to scanning every match.
    #[test]
    fn newest_first_is_exact_on_out_of_order_segments() {
        let dir = tempfile::tempdir().unwrap();
        let index = AuditIndex::open(dir.path()).unwrap();
        for batch in 0..5u64 {
            let events: Vec<Event> = (batch * 40..batch * 40 + 40).map(event).collect();
            index.add(&events).unwrap();
            index.commit().unwrap();
        }
        {
            let searcher = index.reader.searcher();
            let mut segments: Vec<(u64, SegmentId)> = searcher
                .segment_readers()
                .iter()
                .map(|r| {
                    let min = r.fast_fields().u64("seq").unwrap().min_value();
                    (min, r.segment_id())
                })
                .collect();
            assert_eq!(segments.len(), 5);
            // Newest segment first: the merged segment's seqs then drop at
            // each boundary.
            segments.sort_by_key(|s| std::cmp::Reverse(s.0));
            let ids: Vec<SegmentId> = segments.iter().map(|s| s.1).collect();
            let mut guard = index.lock_writer().unwrap();
            let state = guard.as_mut().unwrap();
            state.writer.merge(&ids).wait().unwrap();
        }
        index.reader.reload().unwrap();
        index.runs.refresh(&index.reader.searcher());
        let searcher = index.reader.searcher();
        assert_eq!(searcher.segment_readers().len(), 1);
        let reader = &searcher.segment_readers()[0];
        let column = reader.fast_fields().u64("seq").unwrap();
        let runs = index.runs.get(reader, &column).unwrap();
        assert!(
            runs.len() > 1,
            "merge kept seq order; test does not test runs"
        );

        let schema = index.index.schema();
        for query in ["", "principal:p1", "principal:p0 OR principal:p2", "seq:7"] {
            let expected: Vec<u64> = (0..200u64)
                .rev()
                .filter(|s| match query {
                    "principal:p1" => s % 3 == 1,
                    "principal:p0 OR principal:p2" => s % 3 != 1,
                    "seq:7" => *s == 7,
                    _ => true,
                })
                .collect();
            for (offset, limit) in [(0, 1), (0, 10), (3, 7), (35, 50), (0, 500), (190, 20)] {
                for max_runs in [MAX_RUNS, 0] {
                    let compiled = query::compile(query, &schema, fingerprint_analyzer()).unwrap();
                    let collector = NewestFirst {
                        offset,
                        limit,
                        runs: Arc::clone(&index.runs),
                        max_runs,
                    };
                    let (total, seqs) = searcher.search(compiled.as_ref(), &collector).unwrap();
                    let page: Vec<u64> =
                        expected.iter().copied().skip(offset).take(limit).collect();
                    assert_eq!(total, expected.len(), "{query:?}");
                    assert_eq!(seqs, page, "{query:?} {offset}+{limit} max_runs {max_runs}");
                }
            }
        }
    }

    #[test]
    fn top_seqs_keeps_the_largest() {
        let mut top = TopSeqs::new(3);
        for s in [5, 1, 9, 7, 3, 8, 2, 6, 4, 0] {
            top.push(s);
        }
        assert_eq!(top.into_sorted(), [9, 8, 7]);
        let mut none = TopSeqs::new(0);
        none.push(1);
        assert!(none.into_sorted().is_empty());
    }
}
