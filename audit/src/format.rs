//! The on-disk format of the log, and the scanner that checks it.
//!
//! # Directory
//!
//! ```text
//! <dir>/                                 mode 0700
//!   lock                                 advisory lock: one process at a time
//!   segment-00000000000000000000.log     records; named by the seq of its first record
//!   segment-00000000000000131072.log     ... (a new one once a segment passes segment_bytes)
//!   checkpoints.jsonl                    signed tree heads, one JSON object per line
//!   audit-signing-key.p8                 Ed25519 private key, PKCS#8 v2, mode 0600
//!   audit-public-key.pem                 Ed25519 public key for auditors (SubjectPublicKeyInfo)
//! ```
//!
//! # Record
//!
//! A segment is a sequence of records, nothing else (no file header), all
//! integers little-endian:
//!
//! ```text
//! offset     size  field
//! 0          4     magic F7 50 41 52 (0xF7 never occurs in UTF-8, so never in an entry)
//! 4          4     L: length of the entry in bytes (u32)
//! 8          8     seq: the record's leaf index (u64), equal to its position in the log
//! 16         4     batch position (u32): 0 for the first record of a commit batch, then 1, 2, ...
//! 20         L     entry: the event's JSON (serde_json), which begins {"seq":<seq>,
//! 20 + L     32    leaf hash: SHA-256(0x00 || entry), the RFC 6962 leaf hash
//! ```
//!
//! The leaf hash doubles as the record's checksum: a torn or altered entry
//! is found by rehashing, without parsing JSON. The header is covered by
//! cross-checks instead: a wrong length breaks the framing (the next magic
//! or the hash fails), `seq` must equal the record's position and the
//! entry's own `"seq"`, and batch positions must count up from 0.
//!
//! A commit batch (the events written together and made durable by one
//! fdatasync) never spans two segments, so every segment starts with batch
//! position 0. The batch position lets recovery tell a torn write from
//! damage: only the last batch can be partly on disk after a crash, so a bad
//! record may be followed by good ones only when they belong to that same
//! batch.
//!
//! # Preallocated space
//!
//! While the log is open for writing, its last segment may end in zero
//! bytes: the writer extends the file with zeros ahead of its records
//! ([`PREALLOCATE_BYTES`] at a time) so that an append overwrites space the
//! file already has. Then the batch's `fdatasync` flushes only data: the
//! file's size does not change, so the filesystem has no metadata (the
//! inode's size, or its journal entry) to write as well. In a loop on the
//! project VM's ext4 that took fdatasync from ~125 to ~90 µs p50, and the
//! audit append bench from 3.6k to 5.1–6.0k events/s with one writer
//! (69k to 104k with 64). Zero bytes are never a record (a record starts
//! with [`MAGIC`]). The writer cuts the zeros off when it closes the log or
//! starts a new segment, so only the last segment of a log that was not
//! closed (a crash, or a writer still running) has them.
//!
//! Recovery and [`crate::verify()`] share one scanner (`scan_segment`) and
//! one rule (`classify_tail_of`): a fault followed by nothing but zero
//! bytes, in the last segment, beyond every signed checkpoint, is the end
//! of the log and its preallocated space; a fault followed by nothing but
//! (parts of) its own batch and zeros is a torn tail; anything else is
//! corruption or tampering. Zeroing records out is no way to hide them:
//! beyond the last checkpoint it is no more than truncating the file,
//! which a checkpoint is what proves (and zeroed records with later ones
//! after them are not a tail at all).

use std::fs::File;
use std::io::{self, Read, Seek as _, SeekFrom};
use std::ops::Range;

use crate::merkle::{leaf_hash, Hash};

/// Marks the start of a record.
pub(crate) const MAGIC: [u8; 4] = [0xF7, b'P', b'A', b'R'];
/// Bytes before the entry.
pub(crate) const HEADER_LEN: usize = 20;
/// How far ahead of its records the writer extends the last segment with
/// zeros (at most the segment size), so that appends do not grow the file.
pub(crate) const PREALLOCATE_BYTES: u64 = 1 << 20;
/// Bytes of the trailing leaf hash.
pub(crate) const HASH_LEN: usize = 32;
/// The largest entry accepted. Far above any event (1,000 subject ids and a
/// long fingerprint are tens of KiB) yet small enough that a damaged length
/// field cannot make the reader allocate gigabytes.
pub const MAX_ENTRY_BYTES: usize = 4 << 20;

const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".log";
/// Digits of the first seq in a segment's name: zero padded so names sort.
const SEGMENT_DIGITS: usize = 20;

/// The file name of the segment whose first record has sequence number
/// `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_seq:0SEGMENT_DIGITS$}{SEGMENT_SUFFIX}")
}

/// The first seq named by a segment file name, or `None` for other files.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `{"seq":<seq>,` into a stack buffer: the start of every entry. Returns
/// the buffer and the length used.
fn entry_prefix(seq: u64) -> ([u8; 32], usize) {
    let mut buf = [0u8; 32];
    let head = b"{\"seq\":";
    buf[..head.len()].copy_from_slice(head);
    let mut len = head.len();
    // Decimal digits of seq, most significant first.
    let mut digits = [0u8; 20];
    let mut n = seq;
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in (0..count).rev() {
        buf[len] = digits[i];
        len += 1;
    }
    buf[len] = b',';
    (buf, len + 1)
}

/// What the JSON of an event with seq 0 starts with; the rest of the JSON
/// follows it. The writer swaps this for the real seq's prefix.
pub(crate) const ZERO_SEQ_PREFIX: &[u8] = b"{\"seq\":0,";

/// Appends one record for `seq` whose entry is `{"seq":<seq>,` followed by
/// `body` (an event's JSON after [`ZERO_SEQ_PREFIX`]). Returns the leaf
/// hash.
pub(crate) fn encode_record(out: &mut Vec<u8>, seq: u64, batch_pos: u32, body: &[u8]) -> Hash {
    let (prefix, prefix_len) = entry_prefix(seq);
    let entry_len = prefix_len + body.len();
    out.extend_from_slice(&MAGIC);
    // The caller bounds entries by MAX_ENTRY_BYTES, far below u32::MAX.
    out.extend_from_slice(&(entry_len as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&batch_pos.to_le_bytes());
    let start = out.len();
    out.extend_from_slice(&prefix[..prefix_len]);
    out.extend_from_slice(body);
    let hash = leaf_hash(&out[start..]);
    out.extend_from_slice(&hash);
    hash
}

/// A record header, decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub entry_len: usize,
    pub seq: u64,
    pub batch_pos: u32,
}

impl Header {
    /// Total record length.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + self.entry_len + HASH_LEN
    }
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Decodes the header at the start of `buf` (at least [`HEADER_LEN`]
/// bytes), checking the magic and the length bound only.
pub(crate) fn decode_header(buf: &[u8]) -> Result<Header, String> {
    if buf.len() < HEADER_LEN {
        return Err(format!(
            "incomplete record header ({} of {HEADER_LEN} bytes)",
            buf.len()
        ));
    }
    if buf[..4] != MAGIC {
        return Err("no record marker where a record should start".into());
    }
    let entry_len = le_u32(&buf[4..]) as usize;
    if entry_len > MAX_ENTRY_BYTES || entry_len < ZERO_SEQ_PREFIX.len() {
        return Err(format!("implausible entry length {entry_len}"));
    }
    Ok(Header {
        entry_len,
        seq: le_u64(&buf[8..]),
        batch_pos: le_u32(&buf[16..]),
    })
}

/// Whether `entry` begins with `{"seq":<seq>,`.
pub(crate) fn entry_has_seq(entry: &[u8], seq: u64) -> bool {
    let (prefix, len) = entry_prefix(seq);
    entry.starts_with(&prefix[..len])
}

/// One framed record within the scanner's buffer.
#[derive(Debug, Clone)]
struct Framed {
    /// Byte offset of the record in the buffer.
    offset: usize,
    /// Where the entry is in the buffer.
    entry: Range<usize>,
    /// The stored leaf hash.
    leaf: Hash,
    /// Position in its commit batch.
    batch_pos: u32,
}

/// Why a record could not be framed.
enum FrameError {
    /// The buffer ends before the record does; `needed` is the record's
    /// length as far as known.
    Incomplete { have: usize, needed: usize },
    /// The bytes there are not the record that belongs there.
    Bad(String),
}

/// The first bad place of a segment.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    /// The sequence number that belongs there.
    pub seq: u64,
    /// Byte offset of the bad record in the segment.
    pub offset: u64,
    /// What is wrong.
    pub what: String,
}

/// Checks the record at `off`, which should hold `seq`; `prev_batch_pos`
/// is the batch position of the record before it in this segment.
fn frame(
    buf: &[u8],
    off: usize,
    seq: u64,
    prev_batch_pos: Option<u32>,
) -> Result<Framed, FrameError> {
    let rest = &buf[off..];
    if rest.len() < HEADER_LEN {
        return Err(FrameError::Incomplete {
            have: rest.len(),
            needed: HEADER_LEN,
        });
    }
    let header = decode_header(rest).map_err(FrameError::Bad)?;
    if header.seq != seq {
        return Err(FrameError::Bad(format!(
            "the record there holds seq {} where seq {seq} belongs (records deleted, \
             reordered or inserted)",
            header.seq
        )));
    }
    let batch_ok = match (header.batch_pos, prev_batch_pos) {
        (0, _) => true,
        (p, Some(prev)) => prev.checked_add(1) == Some(p),
        (_, None) => false,
    };
    if !batch_ok {
        return Err(FrameError::Bad(format!(
            "record header has batch position {} after {prev_batch_pos:?}",
            header.batch_pos
        )));
    }
    if rest.len() < header.record_len() {
        return Err(FrameError::Incomplete {
            have: rest.len(),
            needed: header.record_len(),
        });
    }
    let entry = off + HEADER_LEN..off + HEADER_LEN + header.entry_len;
    if !entry_has_seq(&buf[entry.clone()], seq) {
        return Err(FrameError::Bad(format!(
            "the entry does not begin with {{\"seq\":{seq},"
        )));
    }
    let mut leaf = [0u8; 32];
    leaf.copy_from_slice(&buf[entry.end..entry.end + HASH_LEN]);
    Ok(Framed {
        offset: off,
        entry,
        leaf,
        batch_pos: header.batch_pos,
    })
}

/// Index of the first record whose entry does not hash to its stored leaf
/// hash, hashing on up to `threads` threads.
fn first_hash_mismatch(buf: &[u8], records: &[Framed], threads: usize) -> Option<usize> {
    let check = |chunk: &[Framed]| {
        chunk
            .iter()
            .position(|r| leaf_hash(&buf[r.entry.clone()]) != r.leaf)
    };
    // Below a few thousand records a thread costs more than it saves.
    if threads <= 1 || records.len() < 2048 {
        return check(records);
    }
    let chunk_len = records.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut chunks = records.chunks(chunk_len);
        // The first chunk is hashed on this thread, the others alongside.
        let mine = chunks.next().unwrap_or(&[]);
        let handles: Vec<_> = chunks
            .enumerate()
            .map(|(i, chunk)| ((i + 1) * chunk_len, scope.spawn(move || check(chunk))))
            .collect();
        let mut first = check(mine);
        for (base, handle) in handles {
            // A hashing thread cannot panic short of a bug; count such a
            // chunk as failed (its first record) so nothing goes unchecked.
            let found = handle.join().unwrap_or(Some(0));
            if let (None, Some(i)) = (first, found) {
                first = Some(base + i);
            }
        }
        first
    })
}

/// Bytes read and checked at a time: large enough to keep both hashing
/// threads busy, small enough that one reused buffer stays in cache-friendly
/// memory (a fresh 64 MiB buffer per segment costs more in page faults than
/// the hashing).
const CHUNK_BYTES: usize = 8 << 20;

/// Frames every record of a segment whose first record is `first_seq`,
/// reading it from `reader` in chunks, and checks each leaf hash. Calls
/// `on_record(offset, leaf)` for each good record in order and stops at the
/// first fault, which it returns.
pub(crate) fn scan_segment(
    reader: impl Read,
    first_seq: u64,
    threads: usize,
    on_record: impl FnMut(u64, Hash),
) -> io::Result<Option<Fault>> {
    scan_in_chunks(reader, first_seq, threads, CHUNK_BYTES, on_record)
}

/// [`scan_segment`] reading `chunk` bytes at a time.
fn scan_in_chunks(
    mut reader: impl Read,
    first_seq: u64,
    threads: usize,
    chunk: usize,
    mut on_record: impl FnMut(u64, Hash),
) -> io::Result<Option<Fault>> {
    let mut buf: Vec<u8> = Vec::with_capacity(chunk + HEADER_LEN);
    // File offset of buf[0].
    let mut base = 0u64;
    let mut eof = false;
    let mut want = chunk;
    let mut seq = first_seq;
    let mut prev_batch_pos = None;
    let mut framed = Vec::new();
    loop {
        if !eof && buf.len() < want {
            let asked = (want - buf.len()) as u64;
            let got = (&mut reader).take(asked).read_to_end(&mut buf)?;
            eof = (got as u64) < asked;
        }
        framed.clear();
        let round_seq = seq;
        let mut pos = 0;
        let mut fault = None;
        want = chunk;
        while pos < buf.len() {
            match frame(&buf, pos, seq, prev_batch_pos) {
                Ok(f) => {
                    pos = f.entry.end + HASH_LEN;
                    prev_batch_pos = Some(f.batch_pos);
                    seq += 1;
                    framed.push(f);
                }
                Err(FrameError::Incomplete { needed, .. }) if !eof => {
                    // Read on: the record continues in the next chunk.
                    want = want.max(needed);
                    break;
                }
                Err(e) => {
                    let what = match e {
                        FrameError::Incomplete { have, needed } => {
                            format!("incomplete record ({have} of {needed} bytes)")
                        }
                        FrameError::Bad(what) => what,
                    };
                    let offset = base + pos as u64;
                    fault = Some(Fault {
                        seq,
                        offset,
                        what: format!("byte offset {offset}: {what}"),
                    });
                    break;
                }
            }
        }
        let good = first_hash_mismatch(&buf, &framed, threads);
        for f in &framed[..good.unwrap_or(framed.len())] {
            on_record(base + f.offset as u64, f.leaf);
        }
        if let Some(i) = good {
            let offset = base + framed[i].offset as u64;
            return Ok(Some(Fault {
                seq: round_seq + i as u64,
                offset,
                what: format!(
                    "byte offset {offset}: the entry does not match its leaf hash (altered or \
                     damaged)"
                ),
            }));
        }
        if fault.is_some() || (eof && pos >= buf.len()) {
            return Ok(fault);
        }
        // Keep the partial record at the end for the next round.
        buf.drain(..pos);
        base += pos as u64;
    }
}

/// Decides whether a segment's bytes from `fault` on (`tail`, which starts
/// at the faulty record) can be a torn write of the last commit batch:
/// every intact record after the fault must belong to the batch the faulty
/// record belongs to (a later batch is only written after this one was
/// durable). `Err` says which record proves otherwise.
pub(crate) fn check_torn_tail(tail: &[u8], fault: &Fault) -> Result<(), String> {
    let s = fault.seq;
    let mut pos = 1;
    while pos + HEADER_LEN <= tail.len() {
        let Some(found) = tail[pos..].windows(4).position(|w| w == MAGIC) else {
            break;
        };
        let at = pos + found;
        let intact = decode_header(&tail[at..]).ok().filter(|h| {
            let end = at + h.record_len();
            end <= tail.len() && {
                let entry = &tail[at + HEADER_LEN..at + HEADER_LEN + h.entry_len];
                entry_has_seq(entry, h.seq) && leaf_hash(entry)[..] == tail[end - HASH_LEN..end]
            }
        });
        match intact {
            Some(h) => {
                let batch_start = h.seq.checked_sub(u64::from(h.batch_pos));
                let same_batch = h.seq > s && batch_start.is_some_and(|b| b <= s);
                if !same_batch {
                    return Err(format!(
                        "an intact record with seq {} (batch position {}) follows at byte offset \
                         {}, so this is not a torn write",
                        h.seq,
                        h.batch_pos,
                        fault.offset + at as u64
                    ));
                }
                pos = at + h.record_len();
            }
            None => pos = at + 1,
        }
    }
    Ok(())
}

/// What the last segment holds from its first fault to its end, when that
/// is not damage (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Zero bytes only: the writer's preallocated space. The log ends at
    /// the fault, cleanly.
    Preallocated,
    /// A torn write of the last commit batch, `bytes` long up to its last
    /// non-zero byte (what follows it is preallocated space).
    Torn { bytes: u64 },
}

/// Classifies `tail`, the bytes of the last segment from `fault` on:
/// preallocated space, a torn write, or (`Err`, saying why) neither.
pub(crate) fn classify_tail(tail: &[u8], fault: &Fault) -> Result<Tail, String> {
    match tail.iter().rposition(|&b| b != 0) {
        None => Ok(Tail::Preallocated),
        Some(last) => {
            check_torn_tail(tail, fault)?;
            Ok(Tail::Torn {
                bytes: last as u64 + 1,
            })
        }
    }
}

/// [`classify_tail`] on a segment file: reads it from the fault on.
pub(crate) fn classify_tail_of(file: &File, fault: &Fault) -> io::Result<Result<Tail, String>> {
    let mut tail = Vec::new();
    let mut reader = file;
    reader.seek(SeekFrom::Start(fault.offset))?;
    reader.read_to_end(&mut tail)?;
    Ok(classify_tail(&tail, fault))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> Vec<u8> {
        format!("\"time_us\":{n},\"x\":\"{}\"}}", "y".repeat(n % 7)).into_bytes()
    }

    fn segment(first: u64, batches: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut seq = first;
        for &len in batches {
            for pos in 0..len {
                encode_record(&mut out, seq, pos as u32, &body(seq as usize));
                seq += 1;
            }
        }
        out
    }

    /// Good records (offset, leaf) and the fault, scanning `chunk` bytes at
    /// a time.
    fn scan_chunked(
        buf: &[u8],
        first: u64,
        threads: usize,
        chunk: usize,
    ) -> (Vec<(u64, Hash)>, Option<Fault>) {
        let mut records = Vec::new();
        let fault =
            scan_in_chunks(buf, first, threads, chunk, |o, h| records.push((o, h))).unwrap();
        (records, fault)
    }

    fn scan(buf: &[u8], first: u64, threads: usize) -> (Vec<(u64, Hash)>, Option<Fault>) {
        scan_chunked(buf, first, threads, CHUNK_BYTES)
    }

    fn first_fault(buf: &[u8]) -> Fault {
        scan(buf, 0, 1).1.unwrap()
    }

    fn torn(buf: &[u8], fault: &Fault) -> Result<(), String> {
        check_torn_tail(&buf[fault.offset as usize..], fault)
    }

    fn offsets(buf: &[u8]) -> Vec<usize> {
        scan(buf, 0, 1).0.iter().map(|r| r.0 as usize).collect()
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_file_name(42), "segment-00000000000000000042.log");
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("segment-42.log"), None);
        assert_eq!(parse_segment_file_name("checkpoints.jsonl"), None);
    }

    #[test]
    fn entry_prefix_is_the_json_start() {
        for seq in [0u64, 7, 10, 12345, u64::MAX] {
            let (p, len) = entry_prefix(seq);
            assert_eq!(&p[..len], format!("{{\"seq\":{seq},").as_bytes());
        }
    }

    #[test]
    fn clean_segment_scans_whole() {
        let buf = segment(10, &[1, 3, 2]);
        let (records, fault) = scan(&buf, 10, 2);
        assert!(fault.is_none());
        assert_eq!(records.len(), 6);
        let (off, leaf) = records[2];
        let h = decode_header(&buf[off as usize..]).unwrap();
        let entry = &buf[off as usize + HEADER_LEN..][..h.entry_len];
        assert!(entry_has_seq(entry, 12));
        assert_eq!(leaf_hash(entry), leaf);
    }

    #[test]
    fn records_across_chunk_boundaries_are_framed() {
        let buf = segment(0, &[3, 1, 7, 2, 9]);
        let whole = scan(&buf, 0, 1);
        assert_eq!(whole.0.len(), 22);
        for chunk in [1, 7, 20, 33, 64, 100, 1000] {
            let (records, fault) = scan_chunked(&buf, 0, 1, chunk);
            assert!(fault.is_none(), "chunk {chunk}");
            assert_eq!(records, whole.0, "chunk {chunk}");
        }
        let mut torn_buf = buf.clone();
        torn_buf.truncate(buf.len() - 5);
        let f = scan_chunked(&torn_buf, 0, 1, 33).1.unwrap();
        assert_eq!(f.seq, 21);
        assert!(f.what.contains("incomplete"), "{}", f.what);
    }

    #[test]
    fn half_record_at_the_end_is_torn() {
        let mut buf = segment(0, &[2, 3]);
        let full = buf.len();
        let last = *offsets(&buf).last().unwrap();
        buf.truncate(last + 30);
        let fault = first_fault(&buf);
        assert_eq!((fault.seq, fault.offset), (4, last as u64));
        assert!(torn(&buf, &fault).is_ok());
        assert!(full > buf.len());
    }

    #[test]
    fn bad_record_inside_the_last_batch_is_torn() {
        // A crash can leave a later page of the batch on disk and an earlier
        // one not: records of the same batch may follow the bad one.
        let mut buf = segment(0, &[2, 4]);
        let offs = offsets(&buf);
        buf[offs[3] + HEADER_LEN + 12] ^= 1;
        let fault = first_fault(&buf);
        assert_eq!(fault.seq, 3);
        assert!(torn(&buf, &fault).is_ok());
    }

    #[test]
    fn bad_record_followed_by_a_later_batch_is_not_torn() {
        let mut buf = segment(0, &[2, 2, 1]);
        let offs = offsets(&buf);
        buf[offs[2] + HEADER_LEN + 12] ^= 1;
        let fault = first_fault(&buf);
        assert_eq!(fault.seq, 2);
        let err = torn(&buf, &fault).unwrap_err();
        assert!(err.contains("seq 4"), "{err}");
    }

    #[test]
    fn damaged_length_is_not_mistaken_for_a_torn_tail() {
        let mut buf = segment(0, &[1, 1, 1, 1]);
        let offs = offsets(&buf);
        // A huge length makes record 1 look incomplete; records 2 and 3
        // (later batches) are still there.
        buf[offs[1] + 6] = 0x30;
        let fault = first_fault(&buf);
        assert_eq!(fault.seq, 1);
        assert!(torn(&buf, &fault).is_err());
    }

    #[test]
    fn header_cross_checks() {
        let buf = segment(0, &[3]);
        let offs = offsets(&buf);
        // Swap records 0 and 1: seq mismatch at 0.
        let mut swapped = buf[offs[1]..offs[2]].to_vec();
        swapped.extend_from_slice(&buf[..offs[1]]);
        swapped.extend_from_slice(&buf[offs[2]..]);
        let fault = first_fault(&swapped);
        assert_eq!(fault.seq, 0);
        assert!(fault.what.contains("holds seq 1"), "{}", fault.what);
        // A batch position that does not count up.
        let mut bad = buf.clone();
        bad[offs[2] + 16] = 5;
        let fault = first_fault(&bad);
        assert_eq!(fault.seq, 2);
        assert!(fault.what.contains("batch position"));
    }

    #[test]
    fn parallel_hashing_finds_the_first_mismatch() {
        let mut buf = segment(0, &[5000, 5000]);
        let offs = offsets(&buf);
        buf[offs[7000] + HEADER_LEN + 12] ^= 4;
        buf[offs[9000] + HEADER_LEN + 12] ^= 4;
        let (records, fault) = scan(&buf, 0, 3);
        assert_eq!(fault.unwrap().seq, 7000);
        assert_eq!(records.len(), 7000);
    }
}
