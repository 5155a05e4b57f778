//! Tampering and crashes: `verify` must catch every alteration and name
//! where it is; `open` must cut a torn tail and refuse damage.

mod common;

use std::fs;
use std::path::Path;

use audit::{verify, verify_with_key, AuditLog, LogError, SignedCheckpoint};
use common::{entry_range, event, first_segment, options, records};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

/// A closed log of `n` events, each its own batch, with one checkpoint
/// covering them all.
fn log_with(dir: &Path, n: u64) {
    let log = open_with(dir, n);
    log.checkpoint().unwrap();
    log.close();
}

/// [`log_with`] without the checkpoint: only the batch structure can tell
/// damage from a torn write.
fn log_without_checkpoint(dir: &Path, n: u64) {
    open_with(dir, n).close();
}

/// An open log of `n` events, each its own batch.
fn open_with(dir: &Path, n: u64) -> AuditLog {
    let log = AuditLog::open(dir, options()).unwrap();
    for i in 0..n {
        log.append_blocking(event(i)).unwrap();
    }
    log
}

fn tampered(result: Result<audit::VerifyReport, LogError>) -> (Option<u64>, String) {
    match result {
        Err(LogError::Tampered { seq, what }) => (seq, what),
        other => panic!("expected Tampered, got {other:?}"),
    }
}

fn corrupt(result: Result<AuditLog, LogError>) -> (Option<u64>, String) {
    match result {
        Err(LogError::Corrupt { seq, what }) => (seq, what),
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("expected Corrupt, the log opened"),
    }
}

fn edit_segment(dir: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let path = first_segment(dir);
    let mut bytes = fs::read(&path).unwrap();
    f(&mut bytes);
    fs::write(&path, bytes).unwrap();
}

#[test]
fn clean_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 30);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.events, 30);
    assert_eq!(report.checkpoints, 1);
    assert_eq!(report.torn_tail_bytes, 0);
}

#[test]
fn flipped_byte_in_an_event_is_named() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 30);
    edit_segment(dir.path(), |b| {
        let entry = entry_range(b, 17);
        // Inside the JSON, well past the seq prefix: "marketing" -> "marketinf".
        let at = entry.start + 200;
        b[at] ^= 0x01;
    });
    let (seq, what) = tampered(verify(dir.path()));
    assert_eq!(seq, Some(17), "{what}");
    assert!(what.contains("leaf hash"), "{what}");
    // The log refuses to open rather than drop events 17..30.
    let (seq, _) = corrupt(AuditLog::open(dir.path(), options()));
    assert_eq!(seq, Some(17));
}

#[test]
fn deleted_event_is_named() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 30);
    edit_segment(dir.path(), |b| {
        let r = records(b)[12].clone();
        b.drain(r);
    });
    let (seq, what) = tampered(verify(dir.path()));
    assert_eq!(seq, Some(12), "{what}");
    assert!(what.contains("holds seq 13"), "{what}");
    assert_eq!(corrupt(AuditLog::open(dir.path(), options())).0, Some(12));
}

#[test]
fn deleted_last_event_is_caught_by_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 30);
    edit_segment(dir.path(), |b| {
        let r = records(b)[29].clone();
        b.drain(r);
    });
    let (seq, what) = tampered(verify(dir.path()));
    assert_eq!(seq, Some(29), "{what}");
    assert!(what.contains("truncated"), "{what}");
}

#[test]
fn reordered_events_are_named() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 30);
    edit_segment(dir.path(), |b| {
        let recs = records(b);
        let (r5, r6) = (recs[5].clone(), recs[6].clone());
        let mut swapped = b[r6.clone()].to_vec();
        swapped.extend_from_slice(&b[r5.clone()]);
        b.splice(r5.start..r6.end, swapped);
    });
    let (seq, what) = tampered(verify(dir.path()));
    assert_eq!(seq, Some(5), "{what}");
    assert!(what.contains("holds seq 6"), "{what}");
    assert_eq!(corrupt(AuditLog::open(dir.path(), options())).0, Some(5));
}

#[test]
fn truncated_log_is_named() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 30);
    // Cut at a record boundary: every remaining record is intact, only the
    // checkpoint knows that 30 events existed.
    edit_segment(dir.path(), |b| {
        let end = records(b)[20].start;
        b.truncate(end);
    });
    let (seq, what) = tampered(verify(dir.path()));
    assert_eq!(seq, Some(20), "{what}");
    assert!(what.contains("truncated") && what.contains("30"), "{what}");
    let (seq, what) = corrupt(AuditLog::open(dir.path(), options()));
    assert_eq!(seq, Some(20), "{what}");
}

#[test]
fn truncated_mid_record_below_a_checkpoint_is_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 30);
    edit_segment(dir.path(), |b| {
        let r = records(b)[25].clone();
        b.truncate(r.start + 100);
    });
    let (seq, what) = tampered(verify(dir.path()));
    assert_eq!(seq, Some(25), "{what}");
    assert!(what.contains("checkpoint covers 30"), "{what}");
    assert_eq!(corrupt(AuditLog::open(dir.path(), options())).0, Some(25));
}

#[test]
fn missing_segment_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(
        dir.path(),
        audit::LogOptions {
            segment_bytes: 4096,
            ..options()
        },
    )
    .unwrap();
    for i in 0..40 {
        log.append_blocking(event(i)).unwrap();
    }
    log.checkpoint().unwrap();
    log.close();
    let mut segments: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("segment-"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 4, "{segments:?}");
    let second: u64 = segments[1]["segment-".len()..][..20].parse().unwrap();
    fs::remove_file(dir.path().join(&segments[1])).unwrap();
    let (seq, what) = tampered(verify(dir.path()));
    assert_eq!(seq, Some(second), "{what}");
    assert!(what.contains("segment"), "{what}");
    assert_eq!(
        corrupt(AuditLog::open(dir.path(), options())).0,
        Some(second)
    );
}

/// Rewrites line `i` of the checkpoints file.
fn edit_checkpoint(dir: &Path, i: usize, f: impl FnOnce(&mut SignedCheckpoint)) {
    let path = dir.join("checkpoints.jsonl");
    let text = fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cp: SignedCheckpoint = serde_json::from_str(&lines[i]).unwrap();
    f(&mut cp);
    lines[i] = serde_json::to_string(&cp).unwrap();
    fs::write(&path, lines.join("\n") + "\n").unwrap();
}

fn other_key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

/// Two checkpoints: at 10 and at 20 events.
fn log_with_two_checkpoints(dir: &Path) {
    let log = AuditLog::open(dir, options()).unwrap();
    for i in 0..20 {
        log.append_blocking(event(i)).unwrap();
        if i == 9 {
            log.checkpoint().unwrap();
        }
    }
    log.checkpoint().unwrap();
    log.close();
}

#[test]
fn edited_checkpoint_root_is_named() {
    let dir = tempfile::tempdir().unwrap();
    log_with_two_checkpoints(dir.path());
    edit_checkpoint(dir.path(), 1, |cp| cp.root[0] ^= 1);
    let (seq, what) = tampered(verify(dir.path()));
    assert_eq!(seq, None);
    assert!(
        what.contains("checkpoint #1") && what.contains("signature"),
        "{what}"
    );
    assert!(matches!(
        AuditLog::open(dir.path(), options()),
        Err(LogError::Corrupt { .. })
    ));
}

#[test]
fn checkpoint_resigned_with_another_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    log_with_two_checkpoints(dir.path());
    let key = other_key();
    edit_checkpoint(dir.path(), 0, |cp| {
        cp.root = [0x55; 32];
        cp.signature = key.sign(&cp.signed_message()).as_ref().to_vec();
    });
    let (seq, what) = tampered(verify(dir.path()));
    assert_eq!(seq, None);
    assert!(
        what.contains("checkpoint #0") && what.contains("signature"),
        "{what}"
    );
}

#[test]
fn replaced_key_file_is_caught_with_a_pinned_key() {
    let dir = tempfile::tempdir().unwrap();
    log_with_two_checkpoints(dir.path());
    let pinned = audit::PublicKey::from_pem(
        &fs::read_to_string(dir.path().join("audit-public-key.pem")).unwrap(),
    )
    .unwrap();
    // The attacker re-signs every checkpoint and replaces the public key
    // file: the directory is consistent with itself again.
    let key = other_key();
    for i in 0..2 {
        edit_checkpoint(dir.path(), i, |cp| {
            cp.signature = key.sign(&cp.signed_message()).as_ref().to_vec();
        });
    }
    let forged = audit::PublicKey::from_bytes(key.public_key().as_ref().try_into().unwrap());
    fs::write(dir.path().join("audit-public-key.pem"), forged.to_pem()).unwrap();
    assert!(verify(dir.path()).is_ok());
    let (seq, what) = tampered(verify_with_key(dir.path(), &pinned));
    assert_eq!(seq, None);
    assert!(what.contains("pinned"), "{what}");
    // The gateway's own open() checks against its private key.
    assert!(matches!(
        AuditLog::open(dir.path(), options()),
        Err(LogError::Corrupt { .. })
    ));
}

#[test]
fn rehashed_event_is_caught_by_the_checkpoint_root() {
    let dir = tempfile::tempdir().unwrap();
    log_with_two_checkpoints(dir.path());
    // Alter event 14 and recompute its stored leaf hash, so the record is
    // self-consistent: only the signed roots can tell.
    edit_segment(dir.path(), |b| {
        let entry = entry_range(b, 14);
        b[entry.start + 200] ^= 0x01;
        let hash = audit::merkle::leaf_hash(&b[entry.clone()]);
        b[entry.end..entry.end + 32].copy_from_slice(&hash);
    });
    let (seq, what) = tampered(verify(dir.path()));
    assert_eq!(seq, None);
    assert!(
        what.contains("checkpoint #1") && what.contains("10..20"),
        "{what}"
    );
    assert!(matches!(
        AuditLog::open(dir.path(), options()),
        Err(LogError::Corrupt { .. })
    ));
}

#[test]
fn torn_tail_is_cut_on_open_and_complete_events_survive() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with(dir.path(), 10);
    log.checkpoint().unwrap();
    log.append_blocking(event(10)).unwrap();
    log.close();
    // Simulate a crash in the middle of writing event 10: only half of its
    // record reached the disk.
    let (full, torn) = {
        let b = fs::read(first_segment(dir.path())).unwrap();
        let r = records(&b)[10].clone();
        (r.start, r.len() / 2)
    };
    edit_segment(dir.path(), |b| b.truncate(full + torn));
    // Offline verification accepts it (beyond the checkpoint) and reports it.
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.events, report.torn_tail_bytes), (10, torn as u64));

    let log = AuditLog::open(dir.path(), options()).unwrap();
    let rec = log.recovery();
    assert_eq!(rec.torn_bytes, torn as u64);
    assert_eq!(rec.torn_at, Some(10));
    assert_eq!(rec.events, 10);
    assert_eq!(log.size(), 10);
    for i in 0..10 {
        assert_eq!(log.event(i).unwrap().request_id, event(i).request_id);
    }
    assert_eq!(
        fs::metadata(first_segment(dir.path())).unwrap().len(),
        full as u64
    );
    // The log continues where the complete events end.
    assert_eq!(log.append_blocking(event(99)).unwrap(), 10);
    log.close();
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.events, report.torn_tail_bytes), (11, 0));
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 5);
    edit_segment(dir.path(), |b| b.extend_from_slice(&[0x5a; 300]));
    let log = AuditLog::open(dir.path(), options()).unwrap();
    assert_eq!(log.recovery().torn_bytes, 300);
    assert_eq!(log.size(), 5);
}

/// The files of a running log as a crash would leave them (the writer
/// never closed: its preallocated zeros are still there), copied to `to`.
fn crashed_copy(log: &AuditLog, to: &Path) {
    for entry in fs::read_dir(log.dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "lock" {
            fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// A running log of 10 events and a checkpoint, then 2 more events, and
/// its crashed copy in `to`; returns where the records end.
fn crashed_with_12(to: &Path) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with(dir.path(), 10);
    log.checkpoint().unwrap();
    for i in 10..12 {
        log.append_blocking(event(i)).unwrap();
    }
    crashed_copy(&log, to);
    log.close();
    let bytes = fs::read(first_segment(to)).unwrap();
    let end = records(&bytes).last().unwrap().end;
    assert_eq!(records(&bytes).len(), 12);
    // The writer's preallocated space: zeros after the records.
    assert!(bytes.len() > end, "nothing preallocated");
    assert!(bytes[end..].iter().all(|&b| b == 0));
    end
}

#[test]
fn preallocated_zeros_after_a_crash_are_the_end_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let end = crashed_with_12(dir.path());
    // Not a torn write: nothing is reported, nothing is lost.
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.events, report.torn_tail_bytes), (12, 0));
    let log = AuditLog::open(dir.path(), options()).unwrap();
    let rec = log.recovery();
    assert_eq!((rec.events, rec.torn_bytes, rec.torn_at), (12, 0, None));
    assert_eq!(log.event(11).unwrap().request_id, event(11).request_id);
    // The zeros were cut; the log goes on after its last event.
    let segment = first_segment(dir.path());
    assert_eq!(fs::metadata(&segment).unwrap().len(), end as u64);
    assert_eq!(log.append_blocking(event(12)).unwrap(), 12);
    log.close();
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.events, report.torn_tail_bytes), (13, 0));
}

#[test]
fn a_torn_write_into_preallocated_space_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    crashed_with_12(dir.path());
    // The crash came mid-write of event 11: the second half of its record
    // never left the page cache, so the disk still has the zeros there.
    let (start, half) = {
        let b = fs::read(first_segment(dir.path())).unwrap();
        let r = records(&b)[11].clone();
        (r.start, r.len() / 2)
    };
    edit_segment(dir.path(), |b| b[start + half..].fill(0));
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.events, report.torn_tail_bytes), (11, half as u64));
    let log = AuditLog::open(dir.path(), options()).unwrap();
    let rec = log.recovery();
    assert_eq!(
        (rec.events, rec.torn_bytes, rec.torn_at),
        (11, half as u64, Some(11))
    );
    assert_eq!(
        fs::metadata(first_segment(dir.path())).unwrap().len(),
        start as u64
    );
}

#[test]
fn zeroing_checkpointed_events_is_not_taken_for_preallocated_space() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 10);
    // Blank out the last three events, as if they had never been written.
    edit_segment(dir.path(), |b| {
        let from = records(b)[7].start;
        b[from..].fill(0);
    });
    refused_by_verify_and_open(dir.path(), 7, "checkpoint covers 10");
}

#[test]
fn zeroing_an_event_with_later_events_after_it_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // No checkpoint: the later batches alone prove the zeros are no end.
    log_without_checkpoint(dir.path(), 10);
    edit_segment(dir.path(), |b| {
        let r = records(b)[5].clone();
        b[r].fill(0);
    });
    refused_by_verify_and_open(dir.path(), 5, "not a torn write");
}

/// `verify` calls the log tampered and `open` refuses it, both at `seq`
/// and saying `why`.
fn refused_by_verify_and_open(dir: &Path, seq: u64, why: &str) {
    let (at, what) = tampered(verify(dir));
    assert_eq!(at, Some(seq));
    assert!(what.contains(why), "{what}");
    let (at, what) = corrupt(AuditLog::open(dir, options()));
    assert_eq!(at, Some(seq));
    assert!(what.contains(why), "{what}");
}

#[test]
fn corrupt_middle_record_makes_open_fail() {
    let dir = tempfile::tempdir().unwrap();
    // No checkpoint here: the batch structure alone proves the damage.
    log_without_checkpoint(dir.path(), 10);
    edit_segment(dir.path(), |b| {
        let entry = entry_range(b, 5);
        b[entry.start + 50] = b'#';
    });
    let (seq, what) = corrupt(AuditLog::open(dir.path(), options()));
    assert_eq!(seq, Some(5));
    assert!(what.contains("not a torn write"), "{what}");
    // Nothing was cut: the damage is still there for an investigator.
    assert_eq!(
        records(&fs::read(first_segment(dir.path())).unwrap()).len(),
        10
    );
    let (seq, _) = tampered(verify(dir.path()));
    assert_eq!(seq, Some(5));
}
