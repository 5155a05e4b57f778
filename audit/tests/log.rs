//! The audit log's public API: appends, reads, proofs, checkpoints, keys,
//! segments, reopening.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::Duration;

use audit::merkle::{self, leaf_hash};
use audit::verifier::{verify_consistency, verify_inclusion};
use audit::{verify, AuditLog, LogError, LogOptions, PublicKey};
use common::{event, options};

#[test]
fn event_json_is_realistically_sized() {
    let len = serde_json::to_vec(&event(123_456)).unwrap().len();
    eprintln!("event JSON: {len} bytes");
    assert!((500..800).contains(&len), "{len} bytes");
}

#[test]
fn appends_are_numbered_stored_and_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), options()).unwrap();
    assert!(log.recovery().created);
    assert!(log.recovery().key_created);
    assert_eq!(log.size(), 0);
    assert_eq!(log.root(0).unwrap(), merkle::empty_root());
    let mut leaves = Vec::new();
    for i in 0..25 {
        // The caller's seq (424242) is replaced by the leaf index.
        assert_eq!(log.append_blocking(event(i)).unwrap(), i);
        let entry = log.entry(i).unwrap();
        assert!(entry.starts_with(format!("{{\"seq\":{i},").as_bytes()));
        assert_eq!(leaf_hash(&entry), log.leaf_hash(i).unwrap());
        leaves.push(leaf_hash(&entry));
        let stored = log.event(i).unwrap();
        let mut expected = event(i);
        expected.seq = i;
        assert_eq!(stored, expected);
        // The entry is exactly the event's JSON.
        assert_eq!(entry, serde_json::to_vec(&expected).unwrap());
    }
    assert_eq!(log.size(), 25);
    for n in 0..=25 {
        assert_eq!(log.root(n).unwrap(), merkle::root(&leaves[..n as usize]));
    }
    assert!(matches!(log.root(26), Err(LogError::OutOfRange { .. })));
    assert!(matches!(log.entry(25), Err(LogError::OutOfRange { .. })));
    assert!(matches!(
        log.leaf_hash(25),
        Err(LogError::OutOfRange { .. })
    ));
}

#[test]
fn proofs_from_the_log_verify_independently() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), options()).unwrap();
    for i in 0..40 {
        log.append_blocking(event(i)).unwrap();
    }
    for size in [1u64, 2, 3, 16, 17, 33, 40] {
        let root = log.root(size).unwrap();
        for seq in 0..size {
            let proof = log.inclusion_proof(seq, size).unwrap();
            verify_inclusion(&log.leaf_hash(seq).unwrap(), seq, size, &proof, &root).unwrap();
        }
        for old in 1..=size {
            let proof = log.consistency_proof(old, size).unwrap();
            verify_consistency(old, size, &proof, &log.root(old).unwrap(), &root).unwrap();
        }
    }
    assert!(matches!(
        log.inclusion_proof(5, 41),
        Err(LogError::OutOfRange { .. })
    ));
    assert!(matches!(
        log.inclusion_proof(5, 5),
        Err(LogError::OutOfRange { .. })
    ));
    assert!(matches!(
        log.consistency_proof(0, 5),
        Err(LogError::OutOfRange { .. })
    ));
    assert!(matches!(
        log.consistency_proof(6, 5),
        Err(LogError::OutOfRange { .. })
    ));
    assert!(matches!(
        log.consistency_proof(5, 41),
        Err(LogError::OutOfRange { .. })
    ));
}

#[test]
fn read_events_pages_through_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), options()).unwrap();
    for i in 0..30 {
        log.append_blocking(event(i)).unwrap();
    }
    let page = log.read_events(10, 7).unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (10..17).collect::<Vec<_>>()
    );
    assert_eq!(page[0].request_id, event(10).request_id);
    assert_eq!(log.read_events(25, 100).unwrap().len(), 5);
    assert!(log.read_events(30, 10).unwrap().is_empty());
    assert!(log.read_events(1000, 10).unwrap().is_empty());
    assert!(log.read_events(0, 0).unwrap().is_empty());
    assert_eq!(log.read_events(0, usize::MAX).unwrap().len(), 30);
}

#[test]
fn segments_rotate_and_everything_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 4096,
        checkpoint_interval: None,
    };
    let log = AuditLog::open(dir.path(), opts.clone()).unwrap();
    for i in 0..100 {
        log.append_blocking(event(i)).unwrap();
    }
    // While the writer runs, only the last segment has preallocated space
    // after its records: the others end at their last record.
    let mut names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".log"))
        .collect();
    names.sort();
    let (last, sealed) = names.split_last().unwrap();
    for path in sealed {
        let bytes = fs::read(path).unwrap();
        assert_eq!(common::records(&bytes).last().unwrap().end, bytes.len());
    }
    let bytes = fs::read(last).unwrap();
    let end = common::records(&bytes).last().unwrap().end;
    assert!(bytes.len() > end && bytes[end..].iter().all(|&b| b == 0));
    assert_eq!(verify(dir.path()).unwrap().events, 100);
    let cp = log.checkpoint().unwrap();
    let root = log.root(100).unwrap();
    log.close();
    let count_segments = || {
        fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("segment-")
            })
            .count()
    };
    let segments = count_segments();
    assert!(segments > 10, "{segments} segments");

    let log = AuditLog::open(dir.path(), opts).unwrap();
    let rec = log.recovery().clone();
    assert!(!rec.created && !rec.key_created);
    assert_eq!(
        (rec.events, rec.segments, rec.checkpoints, rec.torn_bytes),
        (100, segments, 1, 0)
    );
    assert_eq!(log.root(100).unwrap(), root);
    assert_eq!(log.latest_checkpoint(), Some(cp));
    // Reads cross segment boundaries.
    let all = log.read_events(0, 1000).unwrap();
    assert_eq!(all.len(), 100);
    assert!(all.iter().enumerate().all(|(i, e)| e.seq == i as u64));
    assert_eq!(log.event(99).unwrap().request_id, event(99).request_id);
    assert_eq!(log.append_blocking(event(100)).unwrap(), 100);
    log.close();
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.events, 101);
    assert_eq!(report.segments, count_segments());
}

#[test]
fn checkpoints_are_signed_listed_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), options()).unwrap();
    assert_eq!(log.latest_checkpoint(), None);
    let empty = log.checkpoint().unwrap();
    assert_eq!((empty.size, empty.root), (0, merkle::empty_root()));
    for i in 0..5 {
        log.append_blocking(event(i)).unwrap();
    }
    let cp = log.checkpoint().unwrap();
    assert_eq!((cp.size, cp.root), (5, log.root(5).unwrap()));
    assert!(cp.time_us >= empty.time_us);
    let key = log.public_key();
    assert!(cp.verify(&key));
    let text = String::from_utf8(cp.signed_message()).unwrap();
    assert!(
        text.starts_with("privet-audit-checkpoint/v1\n5\n"),
        "{text}"
    );
    assert_eq!(log.latest_checkpoint(), Some(cp.clone()));
    assert_eq!(log.checkpoints().unwrap(), vec![empty, cp.clone()]);
    // The PEM written for auditors is the same key.
    let pem = fs::read_to_string(dir.path().join("audit-public-key.pem")).unwrap();
    assert_eq!(PublicKey::from_pem(&pem), Some(key));
    assert_eq!(key.to_pem(), pem);
    log.close();
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.checkpoints, 2);
    assert_eq!(report.root, cp.root);
    assert_eq!(report.public_key, key);
}

#[test]
fn writer_checkpoints_on_its_interval_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        checkpoint_interval: Some(Duration::from_millis(50)),
        ..LogOptions::default()
    };
    let log = AuditLog::open(dir.path(), opts.clone()).unwrap();
    log.append_blocking(event(0)).unwrap();
    let mut waited = Duration::ZERO;
    while log.latest_checkpoint().map(|c| c.size) != Some(1) {
        assert!(waited < Duration::from_secs(10), "no periodic checkpoint");
        std::thread::sleep(Duration::from_millis(20));
        waited += Duration::from_millis(20);
    }
    // An idle log writes no more checkpoints.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(log.checkpoints().unwrap().len(), 1);
    log.append_blocking(event(1)).unwrap();
    log.append_blocking(event(2)).unwrap();
    log.close();
    let log = AuditLog::open(dir.path(), opts).unwrap();
    assert_eq!(log.latest_checkpoint().unwrap().size, 3);
}

#[test]
fn files_are_private_and_a_readable_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let log = AuditLog::open(&dir, options()).unwrap();
    log.close();
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let key = dir.join("audit-signing-key.p8");
    assert_eq!(mode(&key), 0o600);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    match AuditLog::open(&dir, options()) {
        Err(LogError::InsecureKey { mode, .. }) => assert_eq!(mode, 0o640),
        other => panic!("expected InsecureKey, got {other:?}"),
    }
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    AuditLog::open(&dir, options()).unwrap();
}

#[test]
fn a_garbled_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    AuditLog::open(dir.path(), options()).unwrap().close();
    fs::write(dir.path().join("audit-signing-key.p8"), b"not a key").unwrap();
    assert!(matches!(
        AuditLog::open(dir.path(), options()),
        Err(LogError::BadKey { .. })
    ));
}

#[test]
fn only_one_open_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), options()).unwrap();
    assert!(matches!(
        AuditLog::open(dir.path(), options()),
        Err(LogError::Locked { .. })
    ));
    log.close();
    AuditLog::open(dir.path(), options()).unwrap();
}

#[test]
fn oversized_event_is_refused_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), options()).unwrap();
    let mut big = event(0);
    big.fingerprint = Some("x".repeat(audit::format::MAX_ENTRY_BYTES));
    assert!(matches!(
        log.append_blocking(big),
        Err(LogError::InvalidEvent { .. })
    ));
    assert_eq!(log.append_blocking(event(1)).unwrap(), 0);
}

#[test]
fn torn_checkpoint_line_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), options()).unwrap();
    log.append_blocking(event(0)).unwrap();
    let cp = log.checkpoint().unwrap();
    log.close();
    let path = dir.path().join("checkpoints.jsonl");
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("{\"size\":1,\"ro");
    fs::write(&path, &text).unwrap();
    let log = AuditLog::open(dir.path(), options()).unwrap();
    assert_eq!(log.recovery().checkpoint_torn_bytes, 13);
    assert_eq!(log.checkpoints().unwrap(), vec![cp]);
    // New checkpoints follow the cut cleanly.
    log.checkpoint().unwrap();
    assert_eq!(log.checkpoints().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_and_blocking_appends_mix() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(AuditLog::open(dir.path(), options()).unwrap());
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                log.append(event(t * 1000 + i)).await.unwrap();
            }
        }));
    }
    // Blocking from inside a runtime does not panic.
    let blocking = {
        let log = log.clone();
        tokio::task::spawn_blocking(move || log.append_blocking(event(9999)).unwrap())
    };
    for t in tasks {
        t.await.unwrap();
    }
    blocking.await.unwrap();
    assert_eq!(log.size(), 201);
    let log = Arc::into_inner(log).unwrap();
    log.close();
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.events, 201);
}

#[test]
fn read_only_view_reads_while_the_writer_runs() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), options()).unwrap();
    for i in 0..12 {
        log.append_blocking(event(i)).unwrap();
    }
    let cp = log.checkpoint().unwrap();
    log.append_blocking(event(12)).unwrap();

    // The writer holds the lock; a reader needs none.
    let view = AuditLog::open_read_only(dir.path()).unwrap();
    assert!(view.is_read_only() && !log.is_read_only());
    assert_eq!(view.size(), 13);
    assert_eq!(view.root(13).unwrap(), log.root(13).unwrap());
    assert_eq!(view.event(3).unwrap(), log.event(3).unwrap());
    assert_eq!(view.read_events(10, 10).unwrap().len(), 3);
    assert_eq!(view.latest_checkpoint(), Some(cp.clone()));
    assert_eq!(view.checkpoints().unwrap(), vec![cp.clone()]);
    assert_eq!(view.public_key(), log.public_key());
    let proof = view.inclusion_proof(5, cp.size).unwrap();
    verify_inclusion(&view.leaf_hash(5).unwrap(), 5, cp.size, &proof, &cp.root).unwrap();
    assert!(matches!(
        view.append_blocking(event(99)),
        Err(LogError::Unavailable { .. })
    ));
    assert!(matches!(
        view.checkpoint(),
        Err(LogError::Unavailable { .. })
    ));

    // The view is a snapshot: later appends are not in it.
    log.append_blocking(event(13)).unwrap();
    assert_eq!(view.size(), 13);
    drop(view);
    log.close();
}

#[test]
fn read_only_view_leaves_a_torn_tail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), options()).unwrap();
    for i in 0..4 {
        log.append_blocking(event(i)).unwrap();
    }
    log.close();
    let segment = common::first_segment(dir.path());
    let mut bytes = fs::read(&segment).unwrap();
    let full = bytes.len();
    bytes.extend_from_within(..50);
    fs::write(&segment, &bytes).unwrap();

    let view = AuditLog::open_read_only(dir.path()).unwrap();
    assert_eq!(view.size(), 4);
    assert_eq!(view.recovery().torn_bytes, 50);
    assert_eq!(fs::metadata(&segment).unwrap().len(), full as u64 + 50);
    drop(view);
    // The writer cuts it.
    let log = AuditLog::open(dir.path(), options()).unwrap();
    assert_eq!(log.recovery().torn_bytes, 50);
    assert_eq!(fs::metadata(&segment).unwrap().len(), full as u64);
}

#[test]
fn read_only_view_of_nothing_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        AuditLog::open_read_only(&dir.path().join("absent")),
        Err(LogError::Io { .. })
    ));
}
