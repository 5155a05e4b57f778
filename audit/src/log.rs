//! [`AuditLog`]: the durable, append-only, tamper-evident event log.
//!
//! Appends go through one dedicated writer thread doing group commit: it
//! takes every queued event, writes them as one batch of records to the
//! current segment, makes the batch durable with a single `fdatasync`, and
//! only then adds their leaves to the in-memory Merkle tree and completes
//! each caller. Nothing is acknowledged before it is durable, and a failed
//! batch is cut off the file again before the next one is written, so the
//! log never holds an event its caller was told failed (see
//! [`AuditLog::append`]). The writer keeps zeros preallocated after the
//! records so that a batch overwrites space the file already has and its
//! `fdatasync` has no file size to write (see [`crate::format`]).
//!
//! The on-disk format is described in [`crate::format`]; checkpoints and
//! keys in [`crate::checkpoint`].

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read as _};
use std::os::unix::fs::{DirBuilderExt as _, FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::signature::Ed25519KeyPair;
use tokio::sync::oneshot;

use crate::checkpoint::{self, PublicKey, SignedCheckpoint, CHECKPOINTS_FILE};
use crate::error::LogError;
use crate::event::Event;
use crate::format::{
    self, classify_tail_of, decode_header, encode_record, scan_segment, segment_file_name, Tail,
    HASH_LEN, HEADER_LEN, MAX_ENTRY_BYTES, PREALLOCATE_BYTES, ZERO_SEQ_PREFIX,
};
use crate::merkle::{leaf_hash, Hash, Tree};

/// The lock file inside the log directory.
const LOCK_FILE: &str = "lock";
/// Segments are kept within these bounds whatever the options say: record
/// offsets are stored as `u32` within a segment (4 bytes per event instead
/// of 8), which a 1 GiB segment plus one batch stays far below.
const MIN_SEGMENT_BYTES: u64 = 4096;
const MAX_SEGMENT_BYTES: u64 = 1 << 30;
/// One batch takes at most this many events or bytes, so a burst cannot
/// make a single write (and the memory for it) unbounded.
const MAX_BATCH_EVENTS: usize = 4096;
const MAX_BATCH_BYTES: usize = 8 << 20;
/// The shortest checkpoint interval honoured.
const MIN_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(10);

/// How the log is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// Once the current segment holds this many bytes, the next batch goes
    /// to a new segment file named by its first seq. Default 64 MiB;
    /// clamped to 4 KiB..=1 GiB.
    pub segment_bytes: u64,
    /// The writer thread signs a checkpoint when this much time has passed
    /// since the last check and the log grew, and once more on close.
    /// `None`: only explicit [`AuditLog::checkpoint`] calls. Default 60 s;
    /// at least 10 ms.
    pub checkpoint_interval: Option<Duration>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 << 20,
            checkpoint_interval: Some(Duration::from_secs(60)),
        }
    }
}

/// What [`AuditLog::open`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The directory held no log yet: a new one was started.
    pub created: bool,
    /// The signing key did not exist and was generated.
    pub key_created: bool,
    /// Durable events in the log after recovery.
    pub events: u64,
    /// Segment files.
    pub segments: usize,
    /// Bytes cut from the end of the last segment: a torn write (the last
    /// commit batch was partly on disk when the process or machine died).
    /// A read-only view leaves them in place and ignores them.
    pub torn_bytes: u64,
    /// The seq where the cut was made, if one was.
    pub torn_at: Option<u64>,
    /// What was wrong with the tail that was cut.
    pub torn_reason: Option<String>,
    /// Signed checkpoints found.
    pub checkpoints: usize,
    /// Bytes of a torn last line cut from the checkpoints file.
    pub checkpoint_torn_bytes: u64,
    /// How long opening took.
    pub elapsed: Duration,
}

/// Microseconds since the Unix epoch (0 before it, saturating far after).
pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Threads used to rehash segments when opening and verifying.
pub(crate) fn hash_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// The segment files of a log directory, sorted by first seq.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name();
        if let Some(first) = name.to_str().and_then(format::parse_segment_file_name) {
            out.push((first, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// A file name for messages.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// One segment file, as readers see it.
struct Segment {
    first_seq: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Durable bytes: readers never look past this.
    len: u64,
}

/// The durable part of the log, as far as readers are concerned.
struct State {
    tree: Tree,
    /// Byte offset of each record in its segment.
    offsets: Vec<u32>,
    segments: Vec<Segment>,
}

impl State {
    /// Index of the segment holding `seq` (which must be in the log).
    fn segment_of(&self, seq: u64) -> usize {
        self.segments
            .partition_point(|s| s.first_seq <= seq)
            .saturating_sub(1)
    }
}

/// The checkpoints file, appended under a mutex.
struct Checkpoints {
    /// `None` only for a read-only view of a log that has no checkpoints
    /// file.
    file: Option<File>,
    path: PathBuf,
    /// Bytes of complete lines.
    len: u64,
    latest: Option<SignedCheckpoint>,
}

#[cfg(test)]
#[derive(Default)]
struct Faults {
    /// Make this many batch syncs fail (after the bytes were written).
    fail_syncs: std::sync::atomic::AtomicU32,
    /// Make the truncation after a failed batch fail too.
    fail_rollback: std::sync::atomic::AtomicBool,
}

/// What the log handle and the writer thread share.
struct Shared {
    dir: PathBuf,
    state: RwLock<State>,
    /// `state.tree.len()`, readable without the lock.
    size: AtomicU64,
    /// `None` for a read-only view: it cannot sign.
    signer: Option<Ed25519KeyPair>,
    public_key: PublicKey,
    checkpoints: Mutex<Checkpoints>,
    /// Set when the writer gave up (a failed batch could not be removed).
    failure: Mutex<Option<String>>,
    /// Held (flock) for as long as the writer may write; `None` read-only.
    _lock: Option<File>,
    #[cfg(test)]
    faults: Faults,
}

// A panic while holding these locks cannot happen short of a bug in this
// module; if it did, the data behind them is still consistent (it is only
// changed after each durable step), so keep going rather than panic too.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn checkpoint(&self) -> Result<SignedCheckpoint, LogError> {
        // The mutex orders checkpoints: sizes and times never go backwards
        // in the file.
        let mut cps = lock(&self.checkpoints);
        let (size, root) = {
            let st = read(&self.state);
            let size = st.tree.len();
            (
                size,
                st.tree.root(size).unwrap_or_else(crate::merkle::empty_root),
            )
        };
        // A clock stepped backwards must not make checkpoint times decrease.
        let time_us = now_us().max(cps.latest.as_ref().map_or(i64::MIN, |c| c.time_us));
        let (Some(signer), Some(file)) = (&self.signer, &cps.file) else {
            return Err(read_only());
        };
        let cp = SignedCheckpoint::sign(signer, size, root, time_us);
        let mut line = serde_json::to_vec(&cp)
            .map_err(|e| LogError::unavailable(format!("encoding a checkpoint: {e}")))?;
        line.push(b'\n');
        let written = file
            .write_all_at(&line, cps.len)
            .and_then(|()| file.sync_all());
        match written {
            Ok(()) => {
                cps.len += line.len() as u64;
                cps.latest = Some(cp.clone());
                Ok(cp)
            }
            Err(e) => {
                // Best effort: the next checkpoint overwrites from the same
                // offset anyway, and open() cuts a torn last line.
                let _ = file.set_len(cps.len);
                Err(LogError::unavailable(format!(
                    "writing checkpoint to {}: {e}",
                    cps.path.display()
                )))
            }
        }
    }
}

/// Where the writer sends the outcome of one append.
enum Reply {
    Async(oneshot::Sender<Result<u64, LogError>>),
    Blocking(mpsc::SyncSender<Result<u64, LogError>>),
}

impl Reply {
    fn send(self, result: Result<u64, LogError>) {
        // A caller that stopped waiting (a dropped future) is no error: the
        // event is logged either way.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(result);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

enum Msg {
    /// `json`: the event serialized with seq 0; it starts with
    /// [`ZERO_SEQ_PREFIX`].
    Append {
        json: Vec<u8>,
        reply: Reply,
    },
    Shutdown,
}

/// The append-only audit log. `Send + Sync`: share it in an `Arc`.
pub struct AuditLog {
    shared: Arc<Shared>,
    /// `None` for a read-only view.
    tx: Option<mpsc::Sender<Msg>>,
    writer: Option<JoinHandle<()>>,
    recovery: Recovery,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.shared.dir)
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (creating if absent, directory mode 0700) the log in `dir`.
    ///
    /// Recovers after a crash: rescans every segment (rehashing each entry),
    /// cuts a torn tail off the last segment (truncate + fsync), and refuses
    /// to open with [`LogError::Corrupt`] when a bad record is followed by
    /// records of a later batch, when a segment is missing, when the log is
    /// shorter than a signed checkpoint, or when a checkpoint's signature or
    /// root does not match: damage is reported, never silently dropped.
    /// Creates the Ed25519 signing key on first open (`audit-signing-key.p8`,
    /// mode 0600; refused if group or others can access it) and writes the
    /// public key to `audit-public-key.pem`. Only one `AuditLog` can have a
    /// directory open at a time ([`LogError::Locked`]).
    pub fn open(dir: &Path, options: LogOptions) -> Result<AuditLog, LogError> {
        let started = Instant::now();
        let mut recovery = Recovery::default();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| LogError::io(dir, e))?;

        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| LogError::io(&lock_path, e))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(LogError::Locked { path: lock_path }),
            Err(fs::TryLockError::Error(e)) => return Err(LogError::io(&lock_path, e)),
        }

        let (signer, key_created) = checkpoint::load_or_create_signing_key(dir)?;
        recovery.key_created = key_created;
        let public_key = checkpoint::public_key_of(&signer);
        checkpoint::write_public_key(dir, &public_key)?;

        let loaded = load(dir, &public_key, false, &mut recovery, started)?;
        let Some(last) = loaded.segments.last() else {
            return Err(LogError::Corrupt {
                seq: None,
                what: "no segment to write to".into(),
            });
        };
        let writer_file = last.file.clone();
        let (seg_first, seg_len) = (last.first_seq, last.len);
        let shared = loaded.into_shared(dir, Some(signer), public_key, Some(lock_file));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            shared: shared.clone(),
            rx,
            file: writer_file,
            seg_first,
            seg_len,
            // Recovery cut any zeros, so the file ends at its last record.
            allocated: seg_len,
            segment_bytes: options
                .segment_bytes
                .clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES),
            // A zero interval would make the writer spin on its timeout.
            checkpoint_interval: options
                .checkpoint_interval
                .map(|d| d.max(MIN_CHECKPOINT_INTERVAL)),
            last_check: Instant::now(),
            failed: None,
            buf: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("audit-log-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| LogError::io(dir, e))?;
        Ok(AuditLog {
            shared,
            tx: Some(tx),
            writer: Some(handle),
            recovery,
        })
    }

    /// Opens a read-only view of the log in `dir`, for tools that read
    /// while the gateway keeps writing (`privet audit show`, `prove`,
    /// `public-key`): no lock, no writer thread, nothing written, and the
    /// private key is not needed (checkpoints are checked with
    /// `audit-public-key.pem`).
    ///
    /// The view is the log as it was when opened. It runs the same checks as
    /// [`AuditLog::open`] and fails with [`LogError::Corrupt`] on the same
    /// damage, but leaves a torn tail in place (reported in
    /// [`Recovery::torn_bytes`], left for the writer to cut): it may also be a
    /// batch being written right now. Appends and
    /// [`AuditLog::checkpoint`] fail with [`LogError::Unavailable`].
    pub fn open_read_only(dir: &Path) -> Result<AuditLog, LogError> {
        let started = Instant::now();
        let mut recovery = Recovery::default();
        if !dir.is_dir() {
            return Err(LogError::io(
                dir,
                io::Error::new(io::ErrorKind::NotFound, "no audit log directory"),
            ));
        }
        let public_key = checkpoint::read_public_key(dir)?;
        let shared = load(dir, &public_key, true, &mut recovery, started)?
            .into_shared(dir, None, public_key, None);
        Ok(AuditLog {
            shared,
            tx: None,
            writer: None,
            recovery,
        })
    }

    /// Whether this is a read-only view ([`AuditLog::open_read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.tx.is_none()
    }

    /// What [`AuditLog::open`] found and did.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Why the log refuses appends, if it does: a failed batch could not be
    /// removed from the segment, so nothing more is written until the
    /// process restarts and recovery runs. For health checks.
    pub fn failure(&self) -> Option<String> {
        lock(&self.shared.failure).clone()
    }

    /// Appends one event and resolves once it is durable (written and
    /// fdatasync'ed), with its seq: the leaf index, in write order. The
    /// caller's `event.seq` is replaced by it in what is stored.
    ///
    /// Group commit: the writer thread takes all queued events, writes
    /// them, does one fdatasync for the batch, then completes every caller.
    /// On any I/O error every event of the batch gets
    /// [`LogError::Unavailable`] and none of it is in the log (the segment
    /// is truncated back before the next batch; if even that fails, the log
    /// refuses all further appends). Dropping the future does not withdraw
    /// the event.
    pub async fn append(&self, event: Event) -> Result<u64, LogError> {
        let json = serialize_with_zero_seq(event)?;
        let (tx, rx) = oneshot::channel();
        self.submit(json, Reply::Async(tx))?;
        rx.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// [`AuditLog::append`] for callers without an async runtime (CLI,
    /// tests); blocks the calling thread until the event is durable. Safe to
    /// call from inside a runtime too (it just blocks that thread).
    pub fn append_blocking(&self, event: Event) -> Result<u64, LogError> {
        let json = serialize_with_zero_seq(event)?;
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(json, Reply::Blocking(tx))?;
        rx.recv().unwrap_or_else(|_| Err(writer_gone()))
    }

    fn submit(&self, json: Vec<u8>, reply: Reply) -> Result<(), LogError> {
        let tx = self.tx.as_ref().ok_or_else(read_only)?;
        tx.send(Msg::Append { json, reply })
            .map_err(|_| writer_gone())
    }

    /// Number of durable events: the tree size.
    pub fn size(&self) -> u64 {
        self.shared.size.load(Ordering::Acquire)
    }

    /// Root hash (RFC 6962 MTH) of the first `tree_size` events.
    pub fn root(&self, tree_size: u64) -> Result<Hash, LogError> {
        let st = read(&self.shared.state);
        st.tree
            .root(tree_size)
            .ok_or_else(|| beyond("tree size", tree_size, st.tree.len()))
    }

    /// The leaf hash of event `seq`: `SHA-256(0x00 || entry)`.
    pub fn leaf_hash(&self, seq: u64) -> Result<Hash, LogError> {
        let st = read(&self.shared.state);
        st.tree
            .leaf(seq)
            .ok_or_else(|| beyond("seq", seq, st.tree.len()))
    }

    /// The raw entry of event `seq`: its JSON, exactly the bytes that were
    /// hashed. Checked against the in-memory leaf hash, so a record changed
    /// on disk since it was written is reported ([`LogError::Corrupt`]),
    /// not returned.
    pub fn entry(&self, seq: u64) -> Result<Vec<u8>, LogError> {
        let (file, path, offset, leaf) = {
            let st = read(&self.shared.state);
            let leaf = st
                .tree
                .leaf(seq)
                .ok_or_else(|| beyond("seq", seq, st.tree.len()))?;
            let seg = &st.segments[st.segment_of(seq)];
            (
                seg.file.clone(),
                seg.path.clone(),
                u64::from(st.offsets[seq as usize]),
                leaf,
            )
        };
        let mut header = [0u8; HEADER_LEN];
        file.read_exact_at(&mut header, offset)
            .map_err(|e| LogError::io(&path, e))?;
        let h = decode_header(&header).map_err(|what| changed(seq, &path, &what))?;
        if h.seq != seq {
            return Err(changed(seq, &path, "the record holds another seq"));
        }
        let mut record = vec![0u8; h.entry_len + HASH_LEN];
        file.read_exact_at(&mut record, offset + HEADER_LEN as u64)
            .map_err(|e| LogError::io(&path, e))?;
        let stored = record.split_off(h.entry_len);
        if stored != leaf || leaf_hash(&record) != leaf {
            return Err(changed(
                seq,
                &path,
                "the entry no longer matches its leaf hash",
            ));
        }
        Ok(record)
    }

    /// The decoded event `seq` (from [`AuditLog::entry`]).
    pub fn event(&self, seq: u64) -> Result<Event, LogError> {
        decode_event(seq, &self.entry(seq)?)
    }

    /// Up to `max` events from seq `from` on, in order; empty when `from`
    /// is at or past the end. For the search index to catch up, tailing and
    /// export. Every entry is checked against its leaf hash.
    pub fn read_events(&self, from: u64, max: usize) -> Result<Vec<Event>, LogError> {
        // Plan the reads under the lock, do the I/O without it so the writer
        // is never kept waiting by a reader.
        struct Read {
            file: Arc<File>,
            path: PathBuf,
            first_seq: u64,
            bytes: std::ops::Range<u64>,
            leaves: Vec<Hash>,
        }
        let mut plan = Vec::new();
        {
            let st = read(&self.shared.state);
            let size = st.tree.len();
            let end = size.min(from.saturating_add(max as u64));
            let mut seq = from;
            while seq < end {
                let i = st.segment_of(seq);
                let seg = &st.segments[i];
                let seg_end = st.segments.get(i + 1).map_or(size, |s| s.first_seq);
                let stop = end.min(seg_end);
                let byte_end = if stop == seg_end {
                    seg.len
                } else {
                    u64::from(st.offsets[stop as usize])
                };
                plan.push(Read {
                    file: seg.file.clone(),
                    path: seg.path.clone(),
                    first_seq: seq,
                    bytes: u64::from(st.offsets[seq as usize])..byte_end,
                    leaves: st.tree.leaves()[seq as usize..stop as usize].to_vec(),
                });
                seq = stop;
            }
        }
        let mut events = Vec::with_capacity(plan.iter().map(|r| r.leaves.len()).sum());
        for r in plan {
            let len = usize::try_from(r.bytes.end - r.bytes.start)
                .map_err(|_| LogError::out_of_range("read too large for memory"))?;
            let mut buf = vec![0u8; len];
            r.file
                .read_exact_at(&mut buf, r.bytes.start)
                .map_err(|e| LogError::io(&r.path, e))?;
            let mut off = 0;
            for (i, leaf) in r.leaves.iter().enumerate() {
                let seq = r.first_seq + i as u64;
                let h = decode_header(&buf[off..]).map_err(|what| changed(seq, &r.path, &what))?;
                let end = off + h.record_len();
                if h.seq != seq || end > buf.len() {
                    return Err(changed(
                        seq,
                        &r.path,
                        "the record is not where it was written",
                    ));
                }
                let entry = &buf[off + HEADER_LEN..end - HASH_LEN];
                if buf[end - HASH_LEN..end] != leaf[..] || leaf_hash(entry) != *leaf {
                    return Err(changed(
                        seq,
                        &r.path,
                        "the entry no longer matches its leaf hash",
                    ));
                }
                events.push(decode_event(seq, entry)?);
                off = end;
            }
        }
        Ok(events)
    }

    /// The inclusion proof (RFC 6962 audit path) of event `seq` in the tree
    /// of the first `tree_size` events.
    pub fn inclusion_proof(&self, seq: u64, tree_size: u64) -> Result<Vec<Hash>, LogError> {
        let st = read(&self.shared.state);
        if tree_size > st.tree.len() {
            return Err(beyond("tree size", tree_size, st.tree.len()));
        }
        st.tree.inclusion_proof(seq, tree_size).ok_or_else(|| {
            LogError::out_of_range(format!("seq {seq} is not in a tree of size {tree_size}"))
        })
    }

    /// The consistency proof (RFC 6962 §2.1.2) that the tree of `new_size`
    /// events extends the tree of `old_size` events; `0 < old_size <=
    /// new_size <= size()` (every tree extends the empty one, so there is no
    /// proof from size 0).
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, LogError> {
        let st = read(&self.shared.state);
        if new_size > st.tree.len() {
            return Err(beyond("tree size", new_size, st.tree.len()));
        }
        st.tree
            .consistency_proof(old_size, new_size)
            .ok_or_else(|| {
                LogError::out_of_range(format!(
                    "a consistency proof needs 0 < old size <= new size, got {old_size} and \
                     {new_size}"
                ))
            })
    }

    /// Signs the current durable tree head (size, root, time) and appends it
    /// durably (fsync) to `checkpoints.jsonl`.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, LogError> {
        self.shared.checkpoint()
    }

    /// The most recent checkpoint, if any was ever written.
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        lock(&self.shared.checkpoints).latest.clone()
    }

    /// Every checkpoint, oldest first, read back from the checkpoints file.
    pub fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>, LogError> {
        let cps = lock(&self.shared.checkpoints);
        let Some(file) = &cps.file else {
            return Ok(Vec::new());
        };
        let len = usize::try_from(cps.len)
            .map_err(|_| LogError::out_of_range("checkpoints file too large for memory"))?;
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| LogError::io(&cps.path, e))?;
        checkpoint::parse_checkpoints(&bytes)
            .map(|p| p.checkpoints)
            .map_err(|what| LogError::Corrupt { seq: None, what })
    }

    /// The public key that verifies this log's checkpoints.
    pub fn public_key(&self) -> PublicKey {
        self.shared.public_key
    }

    /// Stops the writer thread after it has written everything queued (and,
    /// with a checkpoint interval, a final checkpoint). Dropping the log
    /// does the same.
    pub fn close(self) {
        drop(self);
    }

    #[cfg(test)]
    fn inject_sync_failures(&self, n: u32) {
        self.shared.faults.fail_syncs.store(n, Ordering::SeqCst);
    }

    #[cfg(test)]
    fn inject_rollback_failure(&self) {
        self.shared
            .faults
            .fail_rollback
            .store(true, Ordering::SeqCst);
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Shutdown);
        }
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

fn read_only() -> LogError {
    LogError::unavailable("the audit log is open read-only")
}

fn writer_gone() -> LogError {
    LogError::unavailable("the audit log writer has stopped")
}

fn beyond(what: &str, value: u64, size: u64) -> LogError {
    LogError::out_of_range(format!("{what} {value} is beyond the log's {size} events"))
}

fn changed(seq: u64, path: &Path, what: &str) -> LogError {
    LogError::Corrupt {
        seq: Some(seq),
        what: format!(
            "{}: {what} (changed on disk since it was written)",
            file_name(path)
        ),
    }
}

fn decode_event(seq: u64, entry: &[u8]) -> Result<Event, LogError> {
    let event: Event = serde_json::from_slice(entry).map_err(|e| LogError::Corrupt {
        seq: Some(seq),
        what: format!("the entry is not an event: {e}"),
    })?;
    if event.seq != seq {
        return Err(LogError::Corrupt {
            seq: Some(seq),
            what: format!("the entry holds seq {}", event.seq),
        });
    }
    Ok(event)
}

/// The event's JSON with seq 0, done by the caller's thread so the writer
/// only swaps in the real seq (the field comes first, so its prefix is
/// fixed).
fn serialize_with_zero_seq(mut event: Event) -> Result<Vec<u8>, LogError> {
    event.seq = 0;
    let json = serde_json::to_vec(&event).map_err(|e| LogError::InvalidEvent {
        reason: format!("cannot serialize: {e}"),
    })?;
    if !json.starts_with(ZERO_SEQ_PREFIX) {
        return Err(LogError::InvalidEvent {
            reason: "its JSON does not begin with the seq field".into(),
        });
    }
    // Room for the longest seq (20 digits instead of 1).
    if json.len() + 19 > MAX_ENTRY_BYTES {
        return Err(LogError::InvalidEvent {
            reason: format!(
                "{} bytes of JSON, the log takes at most {MAX_ENTRY_BYTES}",
                json.len()
            ),
        });
    }
    Ok(json)
}

/// What both ways of opening read from disk: the checkpoints, and the
/// segments rescanned and checked against them.
struct Loaded {
    cp_file: Option<File>,
    cps: Vec<SignedCheckpoint>,
    cp_len: u64,
    tree: Tree,
    offsets: Vec<u32>,
    segments: Vec<Segment>,
}

/// Reads checkpoints before segments (as verify does: on a live log the
/// segments then hold at least what the checkpoints read cover), creating
/// the first segment of a new writable log, and fills in `recovery`.
fn load(
    dir: &Path,
    public_key: &PublicKey,
    read_only: bool,
    recovery: &mut Recovery,
    started: Instant,
) -> Result<Loaded, LogError> {
    let (cp_file, cps, cp_len) = open_checkpoints(dir, public_key, read_only, recovery)?;
    let min_size = cps.last().map_or(0, |c| c.size);
    let mut names = list_segments(dir)?;
    if names.is_empty() && !read_only {
        recovery.created = true;
        let path = dir.join(segment_file_name(0));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?;
        checkpoint::sync_dir(dir)?;
        names.push((0, path));
    }
    let (tree, offsets, segments) = recover_segments(&names, min_size, read_only, recovery)?;
    check_checkpoints(&tree, &cps)?;
    recovery.events = tree.len();
    recovery.segments = segments.len();
    recovery.checkpoints = cps.len();
    recovery.elapsed = started.elapsed();
    Ok(Loaded {
        cp_file,
        cps,
        cp_len,
        tree,
        offsets,
        segments,
    })
}

impl Loaded {
    /// The state readers and the writer share; `signer` and `lock` only
    /// for the writable log.
    fn into_shared(
        self,
        dir: &Path,
        signer: Option<Ed25519KeyPair>,
        public_key: PublicKey,
        lock: Option<File>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            dir: dir.to_path_buf(),
            size: AtomicU64::new(self.tree.len()),
            state: RwLock::new(State {
                tree: self.tree,
                offsets: self.offsets,
                segments: self.segments,
            }),
            signer,
            public_key,
            checkpoints: Mutex::new(Checkpoints {
                file: self.cp_file,
                path: dir.join(CHECKPOINTS_FILE),
                len: self.cp_len,
                latest: self.cps.last().cloned(),
            }),
            failure: Mutex::new(None),
            _lock: lock,
            #[cfg(test)]
            faults: Faults::default(),
        })
    }
}

/// Opens the checkpoints file, cuts a torn last line (unless `read_only`),
/// checks signatures and order. Returns the file (`None` when read-only and
/// absent), the checkpoints and the length of their complete lines.
fn open_checkpoints(
    dir: &Path,
    key: &PublicKey,
    read_only: bool,
    recovery: &mut Recovery,
) -> Result<(Option<File>, Vec<SignedCheckpoint>, u64), LogError> {
    let path = dir.join(CHECKPOINTS_FILE);
    let existed = path.exists();
    if read_only && !existed {
        return Ok((None, Vec::new(), 0));
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .create(!read_only)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| LogError::io(&path, e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| LogError::io(&path, e))?;
    if !existed {
        // The file's own fsyncs do not make its directory entry durable.
        checkpoint::sync_dir(dir)?;
    }
    let parsed = checkpoint::parse_checkpoints(&bytes)
        .map_err(|what| LogError::Corrupt { seq: None, what })?;
    checkpoint::check_checkpoint_chain(&parsed.checkpoints, key)
        .map_err(|what| LogError::Corrupt { seq: None, what })?;
    recovery.checkpoint_torn_bytes = parsed.torn_bytes;
    if parsed.torn_bytes > 0 && !read_only {
        file.set_len(parsed.complete_len)
            .and_then(|()| file.sync_all())
            .map_err(|e| LogError::io(&path, e))?;
    }
    Ok((Some(file), parsed.checkpoints, parsed.complete_len))
}

/// The log must hold every event a checkpoint covers, with the same root.
fn check_checkpoints(tree: &Tree, cps: &[SignedCheckpoint]) -> Result<(), LogError> {
    let size = tree.len();
    let min_size = cps.last().map_or(0, |c| c.size);
    if size < min_size {
        return Err(LogError::Corrupt {
            seq: Some(size),
            what: format!(
                "the log holds {size} events but a signed checkpoint covers {min_size}: \
                 events were removed from the end"
            ),
        });
    }
    for (i, cp) in cps.iter().enumerate() {
        if tree.root(cp.size) != Some(cp.root) {
            return Err(LogError::Corrupt {
                seq: None,
                what: format!(
                    "checkpoint #{i} (size {}) does not match the log's root of that size: \
                     an event it covers was altered",
                    cp.size
                ),
            });
        }
    }
    Ok(())
}

/// Rescans the segments, cutting a torn tail of the last one (read-only:
/// leaving it, and reading only up to it).
fn recover_segments(
    names: &[(u64, PathBuf)],
    min_size: u64,
    read_only: bool,
    recovery: &mut Recovery,
) -> Result<(Tree, Vec<u32>, Vec<Segment>), LogError> {
    let threads = hash_threads();
    let mut tree = Tree::new();
    let mut offsets: Vec<u32> = Vec::new();
    let mut segments = Vec::with_capacity(names.len());
    for (i, (first_seq, path)) in names.iter().enumerate() {
        let is_last = i + 1 == names.len();
        let name = file_name(path);
        if *first_seq != tree.len() {
            return Err(LogError::Corrupt {
                seq: Some(tree.len()),
                what: format!(
                    "segment {name} starts at seq {first_seq} but the segments before it end \
                     at {}: a segment is missing or misnamed",
                    tree.len()
                ),
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(is_last && !read_only)
            .open(path)
            .map_err(|e| LogError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
        if u32::try_from(file_len).is_err() {
            return Err(LogError::Corrupt {
                seq: Some(*first_seq),
                what: format!("segment {name} is larger than 4 GiB, which the log never writes"),
            });
        }
        let fault = scan_segment(&file, *first_seq, threads, |offset, leaf| {
            tree.push(leaf);
            // Fits: the segment is smaller than 4 GiB (checked above).
            offsets.push(offset as u32);
        })
        .map_err(|e| LogError::io(path, e))?;
        let mut len = file_len;
        if let Some(fault) = fault {
            let corrupt = |why: String| LogError::Corrupt {
                seq: Some(fault.seq),
                what: format!("segment {name}, {}; {why}", fault.what),
            };
            if !is_last {
                return Err(corrupt(
                    "later segments follow, so this is not a torn write".into(),
                ));
            }
            if fault.seq < min_size {
                return Err(corrupt(format!(
                    "a signed checkpoint covers {min_size} events, so this record was durable: \
                     not a torn write"
                )));
            }
            let tail = classify_tail_of(&file, &fault)
                .map_err(|e| LogError::io(path, e))?
                .map_err(corrupt)?;
            // Torn or preallocated, the log ends at the fault; the writer
            // starts from an exact file.
            if !read_only {
                file.set_len(fault.offset)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| LogError::io(path, e))?;
            }
            if let Tail::Torn { bytes } = tail {
                recovery.torn_bytes = bytes;
                recovery.torn_at = Some(fault.seq);
                recovery.torn_reason = Some(format!("segment {name}, {}", fault.what));
            }
            len = fault.offset;
        }
        segments.push(Segment {
            first_seq: *first_seq,
            path: path.clone(),
            file: Arc::new(file),
            len,
        });
    }
    Ok((tree, offsets, segments))
}

/// The writer thread: group commit.
struct Writer {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Msg>,
    /// The current (last) segment.
    file: Arc<File>,
    seg_first: u64,
    /// Durable length of the current segment: the end of its last record.
    seg_len: u64,
    /// The current segment file's length: `seg_len` plus the zeros
    /// preallocated after it (see [`crate::format`]).
    allocated: u64,
    segment_bytes: u64,
    checkpoint_interval: Option<Duration>,
    last_check: Instant,
    /// Set once a failed batch could not be removed: refuse everything.
    failed: Option<String>,
    /// The batch being written, reused across batches.
    buf: Vec<u8>,
}

impl Writer {
    fn run(mut self) {
        let mut batch: Vec<(Vec<u8>, Reply)> = Vec::new();
        let mut stop = false;
        while !stop {
            let first = match self.checkpoint_interval {
                Some(interval) => {
                    let wait = interval.saturating_sub(self.last_check.elapsed());
                    match self.rx.recv_timeout(wait) {
                        Ok(msg) => Some(msg),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match self.rx.recv() {
                    Ok(msg) => Some(msg),
                    Err(_) => break,
                },
            };
            if let Some(msg) = first {
                // Take everything already queued (up to the batch bounds):
                // it all shares the one fdatasync. No lingering for more:
                // callers acknowledged by the previous batch re-submit while
                // this one syncs, which overlaps their CPU work with the
                // disk wait (measured: lingering ~200 µs for them doubled
                // the batch size but lowered throughput on 2 cores).
                let mut bytes = 0;
                let mut next = Some(msg);
                while let Some(msg) = next.take() {
                    match msg {
                        Msg::Append { json, reply } => {
                            bytes += json.len();
                            batch.push((json, reply));
                        }
                        Msg::Shutdown => stop = true,
                    }
                    if stop || batch.len() >= MAX_BATCH_EVENTS || bytes >= MAX_BATCH_BYTES {
                        break;
                    }
                    next = self.rx.try_recv().ok();
                }
                if !batch.is_empty() {
                    self.commit(&mut batch);
                }
            }
            self.maybe_checkpoint(false);
        }
        // Anything still queued behind the shutdown is written too.
        while let Ok(msg) = self.rx.try_recv() {
            if let Msg::Append { json, reply } = msg {
                batch.push((json, reply));
                if batch.len() >= MAX_BATCH_EVENTS {
                    self.commit(&mut batch);
                }
            }
        }
        if !batch.is_empty() {
            self.commit(&mut batch);
        }
        self.maybe_checkpoint(true);
        // A closed log's files end at their last record. If this fails the
        // zeros stay, and the next open cuts them.
        let _ = self.cut_preallocation();
    }

    /// Writes a checkpoint when the interval passed (or `now`) and the log
    /// grew since the last one.
    fn maybe_checkpoint(&mut self, now: bool) {
        let Some(interval) = self.checkpoint_interval else {
            return;
        };
        if !now && self.last_check.elapsed() < interval {
            return;
        }
        // Reset even when nothing is written, so an idle log does not spin.
        self.last_check = Instant::now();
        let size = self.shared.size.load(Ordering::Acquire);
        let latest = lock(&self.shared.checkpoints)
            .latest
            .as_ref()
            .map(|c| c.size);
        if latest != Some(size) {
            // A failure is retried at the next interval; appends are not
            // affected by it.
            let _ = self.shared.checkpoint();
        }
    }

    /// Makes one batch durable and answers every caller in it.
    fn commit(&mut self, batch: &mut Vec<(Vec<u8>, Reply)>) {
        if let Some(reason) = &self.failed {
            for (_, reply) in batch.drain(..) {
                reply.send(Err(LogError::unavailable(reason.clone())));
            }
            return;
        }
        let base = self.shared.size.load(Ordering::Acquire);
        if self.seg_len >= self.segment_bytes {
            if let Err(e) = self.rotate(base) {
                let reason = format!("starting a new segment: {e}");
                for (_, reply) in batch.drain(..) {
                    reply.send(Err(LogError::unavailable(reason.clone())));
                }
                return;
            }
        }
        self.buf.clear();
        let mut leaves = Vec::with_capacity(batch.len());
        let mut offsets = Vec::with_capacity(batch.len());
        let mut offsets_fit = true;
        for (i, (json, _)) in batch.iter().enumerate() {
            let offset = self.seg_len + self.buf.len() as u64;
            offsets_fit &= u32::try_from(offset).is_ok();
            offsets.push(offset as u32);
            let body = &json[ZERO_SEQ_PREFIX.len()..];
            leaves.push(encode_record(
                &mut self.buf,
                base + i as u64,
                i as u32,
                body,
            ));
        }
        let batch_len = self.buf.len() as u64;
        // Beyond the preallocated space, the same write extends the file
        // with zeros, so the next batches only overwrite (no size change
        // for fdatasync to write).
        let end = self.seg_len + batch_len;
        let allocated = if end > self.allocated {
            let target = end + PREALLOCATE_BYTES.min(self.segment_bytes);
            self.buf.resize((target - self.seg_len) as usize, 0);
            target
        } else {
            self.allocated
        };
        let path = self.segment_path();
        let result = if offsets_fit {
            self.file
                .write_all_at(&self.buf, self.seg_len)
                .and_then(|()| self.file.sync_data())
        } else {
            // Cannot happen within the segment bounds; refuse rather than
            // store offsets that wrap.
            Err(io::Error::other("segment offset beyond 4 GiB"))
        };
        #[cfg(test)]
        let result = result.and_then(|()| self.injected_sync_failure());
        if let Err(e) = result {
            let reason = format!("writing {}: {e}", path.display());
            self.roll_back(&path);
            for (_, reply) in batch.drain(..) {
                reply.send(Err(LogError::unavailable(reason.clone())));
            }
            return;
        }
        let new_len = end;
        self.allocated = allocated;
        {
            let mut st = self
                .shared
                .state
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for leaf in &leaves {
                st.tree.push(*leaf);
            }
            st.offsets.extend_from_slice(&offsets);
            if let Some(seg) = st.segments.last_mut() {
                seg.len = new_len;
            }
            self.shared
                .size
                .store(base + batch.len() as u64, Ordering::Release);
        }
        self.seg_len = new_len;
        for (i, (_, reply)) in batch.drain(..).enumerate() {
            reply.send(Ok(base + i as u64));
        }
    }

    fn segment_path(&self) -> PathBuf {
        self.shared.dir.join(segment_file_name(self.seg_first))
    }

    /// Removes whatever a failed batch left in the segment. If that fails
    /// too, the file may hold records nobody was told about: stop writing.
    fn roll_back(&mut self, path: &Path) {
        let result = self.cut_preallocation();
        #[cfg(test)]
        let result = if self.shared.faults.fail_rollback.load(Ordering::SeqCst) {
            Err(io::Error::other("injected truncate failure"))
        } else {
            result
        };
        if let Err(e) = result {
            let reason = format!(
                "a failed write could not be removed from {} ({e}); the audit log refuses \
                 appends until the process restarts and recovers it",
                path.display()
            );
            *lock(&self.shared.failure) = Some(reason.clone());
            self.failed = Some(reason);
        }
    }

    /// Cuts the current segment file back to its last durable record:
    /// the preallocated zeros, and whatever a failed batch left there.
    fn cut_preallocation(&mut self) -> io::Result<()> {
        self.file
            .set_len(self.seg_len)
            .and_then(|()| self.file.sync_data())?;
        self.allocated = self.seg_len;
        Ok(())
    }

    /// Starts a new segment whose first record will be `first_seq`.
    fn rotate(&mut self, first_seq: u64) -> Result<(), LogError> {
        // Only the last segment may end in preallocated zeros.
        self.cut_preallocation()
            .map_err(|e| LogError::io(&self.segment_path(), e))?;
        let path = self.shared.dir.join(segment_file_name(first_seq));
        // Not create_new: a previous attempt may have created the file and
        // failed later (at the directory sync); nothing was written to it.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?;
        let len = file.metadata().map_err(|e| LogError::io(&path, e))?.len();
        if len != 0 {
            return Err(LogError::io(
                &path,
                io::Error::other("a new segment file already holds data"),
            ));
        }
        checkpoint::sync_dir(&self.shared.dir)?;
        let file = Arc::new(file);
        self.shared
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .segments
            .push(Segment {
                first_seq,
                path,
                file: file.clone(),
                len: 0,
            });
        self.file = file;
        self.seg_first = first_seq;
        self.seg_len = 0;
        self.allocated = 0;
        Ok(())
    }

    #[cfg(test)]
    fn injected_sync_failure(&self) -> io::Result<()> {
        let faults = &self.shared.faults.fail_syncs;
        let left = faults.load(Ordering::SeqCst);
        if left > 0 {
            faults.store(left - 1, Ordering::SeqCst);
            return Err(io::Error::other("injected fdatasync failure"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Anomaly, Outcome, Subjects};

    fn event(n: u64) -> Event {
        Event {
            seq: 999,
            time_us: 1_764_000_000_000_000 + n as i64,
            request_id: format!("r-{n}"),
            principal: Some("svc".into()),
            roles: vec!["service".into()],
            source: "127.0.0.1".into(),
            purpose: None,
            endpoint: "query".into(),
            statement: Some("select".into()),
            fingerprint: Some("SELECT 1".into()),
            tables: vec![],
            policies: vec![],
            rows: n,
            subjects: Subjects::default(),
            anomaly: Anomaly::default(),
            latency_us: 10,
            outcome: Outcome::Allowed,
            error_code: None,
        }
    }

    fn options() -> LogOptions {
        LogOptions {
            checkpoint_interval: None,
            ..LogOptions::default()
        }
    }

    #[test]
    fn log_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<AuditLog>();
    }

    #[test]
    fn failed_sync_rolls_back_and_the_seq_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), options()).unwrap();
        for n in 0..3 {
            assert_eq!(log.append_blocking(event(n)).unwrap(), n);
        }
        let seg = dir.path().join(segment_file_name(0));
        let len = read(&log.shared.state).segments[0].len;
        // Preallocated space follows the records.
        assert!(fs::metadata(&seg).unwrap().len() > len);
        log.inject_sync_failures(1);
        let err = log.append_blocking(event(3)).unwrap_err();
        assert!(matches!(err, LogError::Unavailable { .. }), "{err}");
        assert!(err.to_string().contains("injected"), "{err}");
        // Not in the log, on disk or in memory: the file was cut back to
        // its last good record.
        assert_eq!(log.size(), 3);
        assert_eq!(read(&log.shared.state).segments[0].len, len);
        assert_eq!(fs::metadata(&seg).unwrap().len(), len);
        assert!(log.failure().is_none());
        // The next event takes the seq the failed one would have had.
        assert_eq!(log.append_blocking(event(4)).unwrap(), 3);
        assert_eq!(log.event(3).unwrap().request_id, "r-4");
        log.close();
        let log = AuditLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.size(), 4);
        assert_eq!(log.recovery().torn_bytes, 0);
    }

    #[test]
    fn failed_rollback_refuses_all_further_appends() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), options()).unwrap();
        log.append_blocking(event(0)).unwrap();
        log.inject_sync_failures(1);
        log.inject_rollback_failure();
        assert!(log.append_blocking(event(1)).is_err());
        let err = log.append_blocking(event(2)).unwrap_err();
        assert!(err.to_string().contains("refuses appends"), "{err}");
        assert!(log.failure().is_some());
        assert_eq!(log.size(), 1);
        log.close();
        // Here the failed batch did reach the disk (only its sync "failed"):
        // recovery finds it intact and keeps it, an unacknowledged but
        // complete event, which is allowed; nothing acknowledged is lost.
        let log = AuditLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.event(0).unwrap().request_id, "r-0");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_async_appends_get_distinct_seqs() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(AuditLog::open(dir.path(), options()).unwrap());
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..20 {
                    seqs.push(log.append(event(t * 100 + i)).await.unwrap());
                }
                seqs
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (0..320).collect::<Vec<_>>());
        // Every stored event carries its own seq.
        let events = log.read_events(0, 1000).unwrap();
        assert_eq!(events.len(), 320);
        assert!(events.iter().enumerate().all(|(i, e)| e.seq == i as u64));
    }
}
