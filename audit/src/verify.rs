//! Offline verification of a log directory (`privet audit verify`).
//!
//! Reads the files only (no lock, nothing written), so it can run against a
//! live log or a copy: a batch being written while it reads shows up as a
//! torn tail beyond the last checkpoint, which is reported, not an error.

use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::checkpoint::{self, PublicKey, SignedCheckpoint, CHECKPOINTS_FILE};
use crate::error::LogError;
use crate::format::{classify_tail_of, scan_segment, Tail};
use crate::log::{file_name, hash_threads, list_segments};
use crate::merkle::{Hash, Tree};
use crate::verifier;

/// What [`verify`] checked.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    /// Events in the log, all rehashed and in sequence.
    pub events: u64,
    /// Segment files read.
    pub segments: usize,
    /// Checkpoints whose signature, root and consistency were checked.
    pub checkpoints: usize,
    /// Root hash of the whole log.
    pub root: Hash,
    /// The most recent checkpoint.
    pub latest_checkpoint: Option<SignedCheckpoint>,
    /// Bytes at the end of the last segment past the last complete record
    /// and beyond every checkpoint: a write in progress, or a torn write
    /// that the next open will cut. Not counted as events, nor are the
    /// zero bytes of the writer's preallocated space after them.
    pub torn_tail_bytes: u64,
    /// The key the checkpoints were verified with.
    pub public_key: PublicKey,
    /// Wall time of the verification.
    pub elapsed: Duration,
    /// Events verified per second.
    pub events_per_sec: f64,
}

/// Verifies the log in `dir` against its own `audit-public-key.pem`.
///
/// Re-reads every segment, rehashes every entry and rebuilds the tree,
/// checks that each record's seq (header and JSON) equals its position,
/// that each checkpoint's signature is valid, that checkpoint sizes never
/// decrease, that the log is not shorter than the latest checkpoint, that
/// each checkpoint's root equals the recomputed root of its size, and that
/// the writer's consistency proof between consecutive checkpoints passes
/// the independent [`crate::verifier`]. The error is
/// [`LogError::Tampered`], naming the first bad seq (or the checkpoint) and
/// what is wrong; missing or unreadable files give [`LogError::Io`].
pub fn verify(dir: &Path) -> Result<VerifyReport, LogError> {
    let key = checkpoint::read_public_key(dir)?;
    verify_inner(dir, key)
}

/// [`verify`] with a public key the auditor obtained independently (pinned),
/// so a replaced key file plus re-signed checkpoints is caught too. The key
/// file in the directory, if present, must hold the same key.
pub fn verify_with_key(dir: &Path, key: &PublicKey) -> Result<VerifyReport, LogError> {
    if let Ok(found) = checkpoint::read_public_key(dir) {
        if found != *key {
            return Err(tampered(
                None,
                format!(
                    "{} holds a different key than the one pinned",
                    checkpoint::PUBLIC_KEY_FILE
                ),
            ));
        }
    }
    verify_inner(dir, *key)
}

fn tampered(seq: Option<u64>, what: String) -> LogError {
    LogError::Tampered { seq, what }
}

fn verify_inner(dir: &Path, key: PublicKey) -> Result<VerifyReport, LogError> {
    let started = Instant::now();

    // Checkpoints first: the latest one says how much of the log must be
    // there, which decides whether a bad tail may be a torn write.
    let cp_path = dir.join(CHECKPOINTS_FILE);
    let cp_bytes = match fs::read(&cp_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(LogError::io(&cp_path, e)),
    };
    let checkpoints = checkpoint::parse_checkpoints(&cp_bytes)
        .map_err(|what| tampered(None, what))?
        .checkpoints;
    checkpoint::check_checkpoint_chain(&checkpoints, &key).map_err(|what| tampered(None, what))?;
    let min_size = checkpoints.last().map_or(0, |c| c.size);

    let names = list_segments(dir)?;
    let threads = hash_threads();
    let mut tree = Tree::new();
    let mut torn_tail_bytes = 0;
    for (i, (first_seq, path)) in names.iter().enumerate() {
        let name = file_name(path);
        if *first_seq != tree.len() {
            return Err(tampered(
                Some(tree.len()),
                format!(
                    "segment {name} starts at seq {first_seq} but the segments before it end at \
                     {}: a segment was removed, added or renamed",
                    tree.len()
                ),
            ));
        }
        let file = File::open(path).map_err(|e| LogError::io(path, e))?;
        let fault = scan_segment(&file, *first_seq, threads, |_, leaf| tree.push(leaf))
            .map_err(|e| LogError::io(path, e))?;
        if let Some(fault) = fault {
            let bad = |why: &str| {
                tampered(
                    Some(fault.seq),
                    format!("segment {name}, {}{why}", fault.what),
                )
            };
            if i + 1 != names.len() {
                return Err(bad(""));
            }
            if fault.seq < min_size {
                return Err(bad(&format!(
                    " (a signed checkpoint covers {min_size} events)"
                )));
            }
            let tail = classify_tail_of(&file, &fault).map_err(|e| LogError::io(path, e))?;
            if let Tail::Torn { bytes } = tail.map_err(|why| bad(&format!("; {why}")))? {
                torn_tail_bytes = bytes;
            }
        }
    }

    let events = tree.len();
    if let Some(last) = checkpoints.last() {
        if events < last.size {
            return Err(tampered(
                Some(events),
                format!(
                    "the log was truncated: checkpoint #{} covers {} events, the log holds {events}",
                    checkpoints.len() - 1,
                    last.size
                ),
            ));
        }
    }

    let mut prev: Option<&SignedCheckpoint> = None;
    for (i, cp) in checkpoints.iter().enumerate() {
        if tree.root(cp.size) != Some(cp.root) {
            let from = prev.map_or(0, |p| p.size);
            return Err(tampered(
                None,
                format!(
                    "checkpoint #{i} (size {}) does not match the log: an event in seq \
                     {from}..{} was altered together with its leaf hash, or the log was \
                     rewritten",
                    cp.size, cp.size
                ),
            ));
        }
        if let Some(p) = prev {
            check_consistency(&tree, p, cp)
                .map_err(|why| tampered(None, format!("checkpoints #{} and #{i}: {why}", i - 1)))?;
        }
        prev = Some(cp);
    }

    let elapsed = started.elapsed();
    Ok(VerifyReport {
        events,
        segments: names.len(),
        checkpoints: checkpoints.len(),
        root: tree.root(events).unwrap_or_else(crate::merkle::empty_root),
        latest_checkpoint: checkpoints.last().cloned(),
        torn_tail_bytes,
        public_key: key,
        elapsed,
        events_per_sec: events as f64 / elapsed.as_secs_f64().max(1e-9),
    })
}

/// Proves with the independent verifier that `b` extends `a`, using the
/// writer's consistency proof from the rebuilt tree.
fn check_consistency(
    tree: &Tree,
    a: &SignedCheckpoint,
    b: &SignedCheckpoint,
) -> Result<(), String> {
    // Nothing to prove from the empty tree: every tree extends it.
    if a.size == 0 {
        return Ok(());
    }
    let proof = tree
        .consistency_proof(a.size, b.size)
        .ok_or_else(|| format!("no consistency proof from size {} to {}", a.size, b.size))?;
    verifier::verify_consistency(a.size, b.size, &proof, &a.root, &b.root)
        .map_err(|e| format!("consistency proof from size {} to {}: {e}", a.size, b.size))
}
