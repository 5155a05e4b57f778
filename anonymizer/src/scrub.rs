//! PII scrubbing of free text (support ticket and review bodies).
//!
//! [`Scrubber::find`] locates e-mail addresses, phone numbers, Luhn-checked
//! payment card numbers, mod-97-checked IBANs, IPv4/IPv6 addresses and the
//! customer's own name; [`Scrubber::scrub`] replaces each finding by a typed
//! placeholder such as `<EMAIL>` or `<CARD>`.
//!
//! The scanners are hand-written rather than regular expressions: each kind
//! needs a validation step (Luhn, mod 97, octet range, context around digit
//! runs) that a pattern alone cannot express, and the crate stays free of a
//! regex engine. All offsets are byte offsets on `char` boundaries, so the
//! findings can slice the input directly, whatever the script.
//!
//! Candidates of different kinds may overlap (a card number inside an IBAN,
//! a first name inside an e-mail address); the more specific kind wins, in
//! the order of [`PiiKind::ALL`], then the longer candidate.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// A category of personal data the scrubber recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    /// `local@domain.tld`.
    Email,
    /// International (`+44 20 7946 0958`, `0044 ...`) or national
    /// (`(415) 555-0132`, `020 7946 0958`) phone numbers.
    Phone,
    /// 13-19 digit payment card numbers that pass the Luhn check.
    Card,
    /// IBANs that pass the ISO 13616 mod-97 check.
    Iban,
    /// IPv4 and IPv6 addresses.
    Ip,
    /// A name the caller declared as the data subject's (see
    /// [`Scrubber::find`]).
    Name,
}

impl PiiKind {
    /// Every kind, in overlap-resolution priority: when candidates overlap,
    /// the kind listed first wins (an IBAN beats the card-like digits inside
    /// it, an e-mail address beats the name inside it).
    pub const ALL: [PiiKind; 6] = [
        PiiKind::Email,
        PiiKind::Iban,
        PiiKind::Card,
        PiiKind::Ip,
        PiiKind::Phone,
        PiiKind::Name,
    ];

    /// The typed placeholder that replaces a finding of this kind.
    pub const fn placeholder(self) -> &'static str {
        match self {
            PiiKind::Email => "<EMAIL>",
            PiiKind::Phone => "<PHONE>",
            PiiKind::Card => "<CARD>",
            PiiKind::Iban => "<IBAN>",
            PiiKind::Ip => "<IP>",
            PiiKind::Name => "<NAME>",
        }
    }

    fn priority(self) -> usize {
        PiiKind::ALL
            .iter()
            .position(|&k| k == self)
            .unwrap_or(usize::MAX)
    }
}

impl fmt::Display for PiiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Card => "card",
            PiiKind::Iban => "iban",
            PiiKind::Ip => "ip",
            PiiKind::Name => "name",
        };
        f.write_str(name)
    }
}

/// One piece of PII in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub kind: PiiKind,
    /// Byte range in the input; always on `char` boundaries.
    pub range: Range<usize>,
}

/// Finds and replaces PII in free text.
///
/// ```
/// use anonymizer::scrub::Scrubber;
/// let s = Scrubber::new();
/// let out = s.scrub("Hi, María here: maria.g@example.com, +34 912 345 678", &["María"]);
/// assert_eq!(out, "Hi, <NAME> here: <EMAIL>, <PHONE>");
/// ```
#[derive(Debug, Clone)]
pub struct Scrubber {
    kinds: [bool; 6],
    /// Names scrubbed in every text, besides the per-call ones.
    names: Vec<String>,
}

impl Default for Scrubber {
    fn default() -> Self {
        Self::new()
    }
}

impl Scrubber {
    /// A scrubber for every [`PiiKind`] and no standing known names.
    pub fn new() -> Scrubber {
        Scrubber {
            kinds: [true; 6],
            names: Vec::new(),
        }
    }

    /// Restricts the scrubber to `kinds`; the others are left in the text.
    pub fn with_kinds(mut self, kinds: &[PiiKind]) -> Scrubber {
        self.kinds = [false; 6];
        for &k in kinds {
            self.kinds[k.priority()] = true;
        }
        self
    }

    /// Adds names scrubbed in every text (staff, the shop's own contacts),
    /// in addition to the per-call `known_names`.
    pub fn with_known_names<I, S>(mut self, names: I) -> Scrubber
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.names.extend(names.into_iter().map(Into::into));
        self
    }

    /// Whether findings of `kind` are reported.
    pub fn is_enabled(&self, kind: PiiKind) -> bool {
        self.kinds[kind.priority()]
    }

    /// The PII in `text`: non-overlapping findings sorted by position.
    ///
    /// `known_names` are the data subject's names as the caller knows them
    /// (typically the full name and the first name); they match
    /// case-insensitively on word boundaries, any run of whitespace in the
    /// text matching a space in the name. Names shorter than two characters
    /// are ignored. Placeholders already in the text (`<EMAIL>` ...) are never
    /// part of a finding, so scrubbing is idempotent.
    pub fn find(&self, text: &str, known_names: &[&str]) -> Vec<Finding> {
        let mut candidates = Vec::new();
        if self.is_enabled(PiiKind::Email) {
            scan_emails(text, &mut candidates);
        }
        if self.is_enabled(PiiKind::Iban) {
            scan_ibans(text, &mut candidates);
        }
        if self.is_enabled(PiiKind::Card) {
            scan_cards(text, &mut candidates);
        }
        if self.is_enabled(PiiKind::Ip) {
            scan_ipv4(text, &mut candidates);
            scan_ipv6(text, &mut candidates);
        }
        if self.is_enabled(PiiKind::Phone) {
            scan_phones(text, &mut candidates);
        }
        if self.is_enabled(PiiKind::Name) {
            let names = known_names
                .iter()
                .copied()
                .chain(self.names.iter().map(String::as_str));
            scan_names(text, names, &mut candidates);
        }
        resolve(text, candidates)
    }

    /// `text` with every finding replaced by its kind's placeholder.
    pub fn scrub(&self, text: &str, known_names: &[&str]) -> String {
        let findings = self.find(text, known_names);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in &findings {
            out.push_str(&text[at..f.range.start]);
            out.push_str(f.kind.placeholder());
            at = f.range.end;
        }
        out.push_str(&text[at..]);
        out
    }
}

/// Picks non-overlapping candidates: by kind priority, then longest, then
/// leftmost; placeholders already in the text block any candidate.
fn resolve(text: &str, mut candidates: Vec<Finding>) -> Vec<Finding> {
    candidates.sort_by_key(|f| {
        (
            f.kind.priority(),
            std::cmp::Reverse(f.range.len()),
            f.range.start,
        )
    });
    // start -> end of every taken range.
    let mut taken: BTreeMap<usize, usize> = BTreeMap::new();
    for kind in PiiKind::ALL {
        let p = kind.placeholder();
        for (i, _) in text.match_indices(p) {
            taken.insert(i, i + p.len());
        }
    }
    let overlaps = |taken: &BTreeMap<usize, usize>, r: &Range<usize>| {
        // The last range starting before `r.end` is the only one that can
        // reach into `r` (taken ranges never overlap one another).
        taken
            .range(..r.end)
            .next_back()
            .is_some_and(|(_, &end)| end > r.start)
    };
    let mut out = Vec::new();
    for f in candidates {
        if f.range.is_empty() || overlaps(&taken, &f.range) {
            continue;
        }
        taken.insert(f.range.start, f.range.end);
        out.push(f);
    }
    out.sort_by_key(|f| f.range.start);
    out
}

// ---- shared helpers -------------------------------------------------------

fn char_before(text: &str, i: usize) -> Option<char> {
    text.get(..i).and_then(|s| s.chars().next_back())
}

fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

fn is_word_char(c: Option<char>) -> bool {
    c.is_some_and(char::is_alphanumeric)
}

fn is_digit(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_digit)
}

/// The Luhn (mod 10) check over a string of ASCII digits; anything else
/// (separators, letters, an empty string) makes it fail.
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let d = u32::from(b - b'0');
        sum += if i % 2 == 1 {
            let dd = d * 2;
            if dd > 9 {
                dd - 9
            } else {
                dd
            }
        } else {
            d
        };
    }
    sum.is_multiple_of(10)
}

// ---- e-mail ---------------------------------------------------------------

fn is_local_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '\'')
}

fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-')
}

fn scan_emails(text: &str, out: &mut Vec<Finding>) {
    let mut from = 0;
    while let Some(off) = text.get(from..).and_then(|s| s.find('@')) {
        let at = from + off;
        from = at + 1;
        // Local part: back over local characters, then drop leading dots
        // (a sentence end glued to the address is not part of it).
        let mut start = at;
        for (i, c) in text[..at].char_indices().rev() {
            if !is_local_char(c) {
                break;
            }
            start = i;
        }
        while text[start..at].starts_with(['.', '\'']) {
            start += 1;
        }
        if start == at {
            continue;
        }
        // Domain: forward over domain characters, then trim a trailing
        // sentence dot or dash.
        let mut end = at + 1;
        for (i, c) in text[at + 1..].char_indices() {
            if !is_domain_char(c) {
                break;
            }
            end = at + 1 + i + c.len_utf8();
        }
        while end > at + 1 && text[..end].ends_with(['.', '-']) {
            end -= 1;
        }
        let domain = &text[at + 1..end];
        let labels: Vec<&str> = domain.split('.').collect();
        let ok = labels.len() >= 2
            && labels
                .iter()
                .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
            && labels.last().is_some_and(|tld| {
                tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic)
            });
        if ok {
            out.push(Finding {
                kind: PiiKind::Email,
                range: start..end,
            });
            from = end;
        }
    }
}

// ---- card numbers -----------------------------------------------------------

/// A run of digit groups joined by single separators: `4111 1111 1111 1111`.
struct DigitRun {
    /// Byte range of each group.
    groups: Vec<Range<usize>>,
    /// The separator before each group after the first.
    seps: Vec<u8>,
    end: usize,
}

fn digit_run(b: &[u8], start: usize, seps_allowed: &[u8]) -> DigitRun {
    let mut groups = Vec::new();
    let mut seps = Vec::new();
    let mut i = start;
    loop {
        let g = i;
        while is_digit(b, i) {
            i += 1;
        }
        groups.push(g..i);
        match b.get(i) {
            Some(&s) if seps_allowed.contains(&s) && is_digit(b, i + 1) => {
                seps.push(s);
                i += 1;
            }
            _ => break,
        }
    }
    DigitRun {
        groups,
        seps,
        end: i,
    }
}

/// Whether group sizes look like a written card number: one block of 13-19,
/// blocks of four with a shorter last one, or Amex/Diners 4-6-5 / 4-6-4.
fn card_shape(sizes: &[usize]) -> bool {
    let total: usize = sizes.iter().sum();
    if !(13..=19).contains(&total) {
        return false;
    }
    match sizes {
        [_] => true,
        [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] => init.iter().all(|&s| s == 4) && (1..=4).contains(last),
        [] => false,
    }
}

fn scan_cards(text: &str, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // A digit glued to a word, a `+` (E.164 phone) or a decimal point
        // does not start a card number.
        let prev = char_before(text, i);
        let run = digit_run(b, i, b" -");
        i = run.end;
        if is_word_char(prev) || matches!(prev, Some('+' | '.' | ',')) {
            continue;
        }
        if is_word_char(char_at(text, run.end)) {
            continue;
        }
        // The longest window of whole groups with one separator style, a
        // card shape and a valid checksum (a card followed by an expiry
        // date still matches).
        let n = run.groups.len();
        let mut best: Option<Range<usize>> = None;
        for a in 0..n {
            for z in (a..n).rev() {
                let (gs, ge) = (run.groups[a].start, run.groups[z].end);
                if best.as_ref().is_some_and(|r| r.len() >= ge - gs) {
                    break;
                }
                if z > a && run.seps[a..z].iter().any(|&s| s != run.seps[a]) {
                    continue;
                }
                let sizes: Vec<usize> = run.groups[a..=z].iter().map(Range::len).collect();
                if !card_shape(&sizes) {
                    continue;
                }
                let digits: String = run.groups[a..=z].iter().map(|g| &text[g.clone()]).collect();
                if luhn_valid(&digits) {
                    best = Some(gs..ge);
                }
            }
        }
        if let Some(range) = best {
            out.push(Finding {
                kind: PiiKind::Card,
                range,
            });
        }
    }
}

// ---- IBAN ---------------------------------------------------------------------

fn is_iban_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// ISO 13616 check over a compact IBAN (`DE89370400440532013000`).
fn iban_checksum_ok(compact: &[u8]) -> bool {
    if compact.len() < 5 {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut rem = 0u32;
    for &c in rearranged {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn scan_ibans(text: &str, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i + 4 <= b.len() {
        let head = b[i].is_ascii_uppercase()
            && b[i + 1].is_ascii_uppercase()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit();
        if !head || is_word_char(char_before(text, i)) {
            i += 1;
            continue;
        }
        // Collect the characters, a single space allowed between groups of
        // four; remember each place the IBAN could end.
        let mut compact = b[i..i + 4].to_vec();
        let mut j = i + 4;
        let mut ends = Vec::new();
        loop {
            match b.get(j) {
                Some(&c) if is_iban_char(c) => {
                    compact.push(c);
                    j += 1;
                    if !b.get(j).is_some_and(|&n| is_iban_char(n)) {
                        ends.push((j, compact.len()));
                    }
                }
                Some(b' ')
                    if compact.len().is_multiple_of(4)
                        && b.get(j + 1).is_some_and(|&n| is_iban_char(n)) =>
                {
                    j += 1;
                }
                _ => break,
            }
            if compact.len() > 34 {
                break;
            }
        }
        // Longest first: a trailing all-caps word is not part of the IBAN
        // unless the checksum says so.
        let found = ends.iter().rev().find(|&&(end, len)| {
            (15..=34).contains(&len)
                && !is_word_char(char_at(text, end))
                && iban_checksum_ok(&compact[..len])
        });
        match found {
            Some(&(end, _)) => {
                out.push(Finding {
                    kind: PiiKind::Iban,
                    range: i..end,
                });
                i = end;
            }
            None => i += 1,
        }
    }
}

// ---- IP addresses -----------------------------------------------------------------

fn scan_ipv4(text: &str, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let prev = char_before(text, i);
        let run = digit_run(b, i, b".");
        i = run.end;
        // Exactly four parts: `1.2.3.4.5` is a version or an outline number.
        if run.groups.len() != 4 || is_word_char(prev) || prev == Some('.') {
            continue;
        }
        if is_word_char(char_at(text, run.end)) {
            continue;
        }
        let s = &text[run.groups[0].start..run.end];
        if s.parse::<Ipv4Addr>().is_ok() {
            out.push(Finding {
                kind: PiiKind::Ip,
                range: run.groups[0].start..run.end,
            });
        }
    }
}

fn scan_ipv6(text: &str, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    let is_v6 = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut i = 0;
    while i < b.len() {
        if !(b[i].is_ascii_hexdigit() || b[i] == b':') {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        while end < b.len() && is_v6(b[end]) {
            end += 1;
        }
        i = end;
        let prev = char_before(text, start);
        if is_word_char(prev) || matches!(prev, Some(':' | '.')) {
            continue;
        }
        if b[start..end].iter().filter(|&&c| c == b':').count() < 2 {
            continue;
        }
        // Trim sentence punctuation glued to the address (`... fe80::1.`),
        // but keep a `::` that ends a compressed address.
        let mut stop = end;
        loop {
            let s = &text[start..stop];
            if is_word_char(char_at(text, stop)) {
                break;
            }
            if s.parse::<Ipv6Addr>().is_ok() {
                out.push(Finding {
                    kind: PiiKind::Ip,
                    range: start..stop,
                });
                break;
            }
            if s.ends_with('.') || (s.ends_with(':') && !s.ends_with("::")) {
                stop -= 1;
            } else {
                break;
            }
        }
    }
}

// ---- phone numbers ------------------------------------------------------------

/// Words after which a number is an identifier, not a phone number.
const ID_WORDS: &[&str] = &[
    "order",
    "invoice",
    "ref",
    "reference",
    "ticket",
    "tracking",
    "case",
    "id",
    "sku",
    "po",
    "transaction",
    "parcel",
    "shipment",
    "account",
    "customer",
];

/// Words that announce a phone number (used to admit 7-digit local
/// numbers, which otherwise look like postcodes such as `100-0001`).
const PHONE_WORDS: &[&str] = &[
    "phone",
    "tel",
    "telephone",
    "call",
    "mobile",
    "cell",
    "number",
    "fax",
    "whatsapp",
    "text",
    "ring",
];

/// The word ending just before byte `i`, skipping spaces and the light
/// punctuation of "Order no.: #", lowercased; and the byte where it starts.
fn word_before(text: &str, i: usize) -> (String, usize) {
    let head = text[..i].trim_end_matches(|c: char| c.is_whitespace() || ":.#,-(".contains(c));
    let start = head
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphabetic())
        .last()
        .map_or(head.len(), |(k, _)| k);
    (head[start..].to_lowercase(), start)
}

fn after_id_word(text: &str, i: usize) -> bool {
    let (w, at) = word_before(text, i);
    if ID_WORDS.contains(&w.as_str()) {
        return true;
    }
    // "order no. 1234567", "invoice number 1234567".
    if matches!(w.as_str(), "no" | "nr" | "num" | "number") {
        let (w2, _) = word_before(text, at);
        return ID_WORDS.contains(&w2.as_str());
    }
    false
}

fn after_phone_word(text: &str, i: usize) -> bool {
    let (w, at) = word_before(text, i);
    if PHONE_WORDS.contains(&w.as_str()) {
        return true;
    }
    // "call me on", "reach me at".
    if matches!(w.as_str(), "on" | "at" | "is" | "me") {
        let (w2, at2) = word_before(text, at);
        return PHONE_WORDS.contains(&w2.as_str())
            || (w2 == "me" && PHONE_WORDS.contains(&word_before(text, at2).0.as_str()));
    }
    false
}

/// The digit groups of a phone-like run and where it ends.
struct PhoneRun {
    plus: bool,
    /// Digits per group, parenthesised groups included.
    groups: Vec<usize>,
    seps: Vec<u8>,
    parens: bool,
    digits: usize,
    end: usize,
    /// Where scanning resumes: the whole run, even if rejected, so that a
    /// rejected run's tail is not taken for a number of its own.
    resume: usize,
}

fn phone_run(b: &[u8], start: usize) -> PhoneRun {
    let mut r = PhoneRun {
        plus: false,
        groups: Vec::new(),
        seps: Vec::new(),
        parens: false,
        digits: 0,
        end: start,
        resume: start + 1,
    };
    let mut i = start;
    if b.get(i) == Some(&b'+') {
        r.plus = true;
        i += 1;
    }
    let mut cur = 0;
    loop {
        if is_digit(b, i) {
            cur += 1;
            i += 1;
            r.end = i;
            continue;
        }
        if b.get(i) == Some(&b'(') && cur == 0 {
            // "(415)", "(0)20": one to five digits in parentheses.
            let mut k = i + 1;
            while is_digit(b, k) {
                k += 1;
            }
            let n = k - i - 1;
            if (1..=5).contains(&n) && b.get(k) == Some(&b')') {
                r.groups.push(n);
                r.digits += n;
                r.parens = true;
                i = k + 1;
                r.end = i;
                // "(415) 555": a space after the parenthesis is not a
                // separator between equals, just layout.
                if b.get(i) == Some(&b' ') && is_digit(b, i + 1) {
                    i += 1;
                }
                continue;
            }
            // "555-0132 (mobile)": the space before a parenthesis that is
            // not a digit group separates nothing.
            if i > start && matches!(b[i - 1], b' ' | b'-' | b'.') {
                r.seps.pop();
            }
            break;
        }
        if cur > 0 {
            r.groups.push(cur);
            r.digits += cur;
            cur = 0;
        }
        match (b.get(i), b.get(i + 1)) {
            (Some(&s @ (b' ' | b'-' | b'.')), Some(&n)) if n.is_ascii_digit() || n == b'(' => {
                r.seps.push(s);
                i += 1;
            }
            _ => break,
        }
    }
    if cur > 0 {
        r.groups.push(cur);
        r.digits += cur;
    }
    r.resume = r.resume.max(r.end);
    r
}

/// Whether a run without `+` is shaped like something other than a phone
/// number: a date, a Brazilian postcode, a dotted thousands amount.
fn not_a_phone_shape(r: &PhoneRun) -> bool {
    let same_sep = |s: u8| !r.seps.is_empty() && r.seps.iter().all(|&x| x == s);
    let g = r.groups.as_slice();
    let date =
        |a: usize, b: usize, c: usize| (a <= 2 && b <= 2 && c == 4) || (a == 4 && b <= 2 && c <= 2);
    if let [a, b, c] = *g {
        if !r.parens && (same_sep(b'.') || same_sep(b'-') || same_sep(b' ')) && date(a, b, c) {
            return true;
        }
    }
    // Brazilian CEP `01310-100`.
    if g == [5, 3] && same_sep(b'-') {
        return true;
    }
    if r.seps.contains(&b'.') {
        // `1.234.567` and `12.345.678` are amounts; dotted phone groups have
        // at least two digits and are not all thousands blocks.
        if g.iter().any(|&n| n < 2) {
            return true;
        }
        if g.len() >= 3 && g[1..].iter().all(|&n| n == 3) {
            return true;
        }
    }
    false
}

fn scan_phones(text: &str, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c == b'+' || c == b'(' || c.is_ascii_digit()) {
            i += 1;
            continue;
        }
        let prev = char_before(text, i);
        let r = phone_run(b, i);
        let start = i;
        i = r.resume;
        // Glued to a word, an amount, an `#id`, a path or a decimal.
        if is_word_char(prev)
            || matches!(
                prev,
                Some('#' | '$' | '£' | '€' | '¥' | '/' | '@' | '_' | '.' | ',' | '-' | '+' | '=')
            )
        {
            continue;
        }
        if r.plus && r.groups.is_empty() {
            continue;
        }
        // What follows must not continue a word, a decimal or an amount.
        let next = char_at(text, r.end);
        if is_word_char(next) || matches!(next, Some('%' | '€' | '$' | '£' | '/')) {
            continue;
        }
        if matches!(next, Some('.' | ',')) && is_digit(b, r.end + 1) {
            continue;
        }
        if text[r.end..]
            .trim_start_matches(' ')
            .starts_with(['€', '$', '£', '¥'])
        {
            continue;
        }
        let international = r.plus || text[start..].starts_with("00");
        let ok = if r.plus {
            (7..=15).contains(&r.digits)
        } else if international {
            (9..=17).contains(&r.digits) && r.groups.len() > 1
        } else {
            let separated = r.groups.len() > 1;
            let len_ok = match r.digits {
                // A bare 7-digit number is as often a postcode; take it
                // only when the text says it is a phone number.
                7 => after_phone_word(text, start),
                8..=12 => true,
                // Long national numbers are written in groups; a long
                // bare digit string is an identifier.
                13..=15 => separated,
                _ => false,
            };
            len_ok && !not_a_phone_shape(&r) && !after_id_word(text, start)
        };
        if ok {
            out.push(Finding {
                kind: PiiKind::Phone,
                range: start..r.end,
            });
        }
    }
}

// ---- known names --------------------------------------------------------------

fn scan_names<'a>(text: &str, names: impl Iterator<Item = &'a str>, out: &mut Vec<Finding>) {
    // Lowercased needles; whitespace runs collapse to a single ' ' that
    // matches any whitespace run in the text.
    let needles: Vec<Vec<char>> = names
        .filter_map(|n| {
            let words: Vec<&str> = n.split_whitespace().collect();
            let joined = words.join(" ");
            (joined.chars().count() >= 2)
                .then(|| joined.chars().flat_map(char::to_lowercase).collect())
        })
        .collect();
    if needles.is_empty() {
        return;
    }
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        let boundary = !is_word_char(prev);
        prev = Some(c);
        if !boundary || !c.is_alphanumeric() {
            continue;
        }
        for needle in &needles {
            if let Some(end) = match_name(text, i, needle) {
                if !is_word_char(char_at(text, end)) {
                    out.push(Finding {
                        kind: PiiKind::Name,
                        range: i..end,
                    });
                }
            }
        }
    }
}

/// Matches the lowercased `needle` at byte `start`, returning the end.
fn match_name(text: &str, start: usize, needle: &[char]) -> Option<usize> {
    let mut chars = text[start..].char_indices().peekable();
    let mut k = 0;
    while k < needle.len() {
        let (off, c) = chars.next()?;
        if needle[k] == ' ' {
            if !c.is_whitespace() {
                return None;
            }
            while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
                chars.next();
            }
            k += 1;
            continue;
        }
        for lc in c.to_lowercase() {
            if needle.get(k) != Some(&lc) {
                return None;
            }
            k += 1;
        }
        if k == needle.len() {
            return Some(start + off + c.len_utf8());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str, names: &[&str]) -> Vec<(PiiKind, String)> {
        Scrubber::new()
            .find(text, names)
            .into_iter()
            .map(|f| (f.kind, text[f.range].to_owned()))
            .collect()
    }

    fn one(text: &str, kind: PiiKind, want: &str) {
        assert_eq!(
            kinds(text, &[]),
            vec![(kind, want.to_owned())],
            "in {text:?}"
        );
    }

    fn none(text: &str) {
        assert_eq!(kinds(text, &[]), vec![], "in {text:?}");
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("4111 1111 1111 1111"));
    }

    #[test]
    fn emails() {
        one(
            "mail me at john.smith+shop@mail.example.co.uk.",
            PiiKind::Email,
            "john.smith+shop@mail.example.co.uk",
        );
        one("(j_doe-1@proton.me)", PiiKind::Email, "j_doe-1@proton.me");
        one(
            "contact: zoë.müller@exämple.de",
            PiiKind::Email,
            "zoë.müller@exämple.de",
        );
        none("meet @ noon, user@localhost, a@b.c, @handle");
    }

    #[test]
    fn cards() {
        one(
            "card 4111 1111 1111 1111, thanks",
            PiiKind::Card,
            "4111 1111 1111 1111",
        );
        one(
            "card 5500-0000-0000-0004.",
            PiiKind::Card,
            "5500-0000-0000-0004",
        );
        one("card 4111111111111111", PiiKind::Card, "4111111111111111");
        one(
            "amex 3782 822463 10005 ok",
            PiiKind::Card,
            "3782 822463 10005",
        );
        // Followed by an expiry date.
        one(
            "card 4111 1111 1111 1111 05 27",
            PiiKind::Card,
            "4111 1111 1111 1111",
        );
        // Luhn-invalid: neither a card nor (16 digits) a phone.
        none("card 4111 1111 1111 1112 please");
        none("card 4111111111111112 please");
        // Mixed separators and odd grouping are not written cards.
        none("ref 4111 1111-1111 1111 x");
    }

    #[test]
    fn phones() {
        for p in [
            "+44 20 7946 0958",
            "+442079460958",
            "0044 20 7946 0958",
            "+1 (415) 555-0132",
            "(415) 555-0132",
            "415-555-0132",
            "415.555.0132",
            "020 7946 0958",
            "03-1234-5678",
            "(11) 91234-5678",
            "+49-151-12345678",
            "+44 (0)20 7946 0958",
            "06 12 34 56 78",
            "912 345 678",
            "02079460958",
        ] {
            one(&format!("Call me at {p}."), PiiKind::Phone, p);
        }
        one("my number is 555-0132", PiiKind::Phone, "555-0132");
    }

    #[test]
    fn not_phones() {
        none("Where is my order #1234567?");
        none("order 12345678 arrived");
        none("Invoice no. 20240315 attached");
        none("I paid $1234567.00 and 1.234.567 € and 1 234 567,00 €");
        none("on 05.03.2024 or 2024-03-05 or 03/05/2024 or 2024/03/05");
        none("born 1985-11-30");
        none("ordered on 2024-03-13 (order #123) and 01.07.2024 (again)");
        none("postcode 100-0001, CEP 01310-100, 8320000 Santiago");
        none("tracking 12345678901234567890");
        none("version 1.2.3 and build 20240101123000");
    }

    #[test]
    fn ibans() {
        one(
            "IBAN DE89 3704 0044 0532 0130 00 please",
            PiiKind::Iban,
            "DE89 3704 0044 0532 0130 00",
        );
        one(
            "to GB29NWBK60161331926819.",
            PiiKind::Iban,
            "GB29NWBK60161331926819",
        );
        one(
            "GB29 NWBK 6016 1331 9268 19 THANKS",
            PiiKind::Iban,
            "GB29 NWBK 6016 1331 9268 19",
        );
        // Bad checksum (last digit changed): not an IBAN, and its digits are
        // not a phone or card either.
        assert!(kinds("IBAN DE89 3704 0044 0532 0130 01 please", &[])
            .iter()
            .all(|(k, _)| *k != PiiKind::Iban));
        none("model AB12 CDEF");
    }

    #[test]
    fn ips() {
        one("from 192.168.1.254, then", PiiKind::Ip, "192.168.1.254");
        one(
            "client 2001:db8::8a2e:370:7334.",
            PiiKind::Ip,
            "2001:db8::8a2e:370:7334",
        );
        one("loopback ::1 only", PiiKind::Ip, "::1");
        one(
            "addr 2a02:1f:9c:0:4d2:1:a:ff here",
            PiiKind::Ip,
            "2a02:1f:9c:0:4d2:1:a:ff",
        );
        one(
            "mapped ::ffff:10.0.0.1 here",
            PiiKind::Ip,
            "::ffff:10.0.0.1",
        );
        none("from 192.168.1.256 and 1.2.3 and 1.2.3.4.5");
        none("at 10:30:00 sharp; std::net");
    }

    #[test]
    fn names_unicode_and_case() {
        let text = "Hola, soy MARÍA GARCÍA LÓPEZ. María pagó. Mariana no. Łukasz i łukasz.";
        let got = kinds(text, &["María García López", "María", "Łukasz"]);
        let want: Vec<(PiiKind, String)> = ["MARÍA GARCÍA LÓPEZ", "María", "Łukasz", "łukasz"]
            .iter()
            .map(|s| (PiiKind::Name, (*s).to_owned()))
            .collect();
        assert_eq!(got, want);
        // Line breaks inside a name still match; word boundaries hold.
        assert_eq!(
            kinds("Thanks,\nAnna\nSmith; Annabel", &["Anna Smith", "Anna"]),
            vec![(PiiKind::Name, "Anna\nSmith".to_owned())]
        );
        // One-letter names are ignored.
        assert_eq!(kinds("a b c", &["a", " "]), vec![]);
    }

    #[test]
    fn overlaps_resolve_by_kind_then_length() {
        // The name inside the address belongs to the e-mail finding.
        let text = "Write to anna.smith@example.com, Anna";
        assert_eq!(
            kinds(text, &["Anna Smith", "Anna"]),
            vec![
                (PiiKind::Email, "anna.smith@example.com".to_owned()),
                (PiiKind::Name, "Anna".to_owned()),
            ]
        );
        // Card-shaped digits inside a valid IBAN are the IBAN.
        one(
            "GB82 WEST 1234 5698 7654 32",
            PiiKind::Iban,
            "GB82 WEST 1234 5698 7654 32",
        );
        // The full name wins over the first name it contains.
        assert_eq!(
            kinds("Best, Anna Smith", &["Anna", "Anna Smith"]),
            vec![(PiiKind::Name, "Anna Smith".to_owned())]
        );
        // Findings never overlap and come sorted.
        let text = "x@y.io 4111111111111111, +44 20 7946 0958, 10.0.0.1 Anna";
        let f = Scrubber::new().find(text, &["Anna"]);
        assert_eq!(f.len(), 5, "{:?}", kinds(text, &["Anna"]));
        assert!(f.windows(2).all(|w| w[0].range.end <= w[1].range.start));
    }

    #[test]
    fn placeholders_and_idempotence() {
        let s = Scrubber::new();
        let text = "Hi,\n\nPlease change my email from anna.smith@example.com to a.s@proton.me. \
                    Card 4111-1111-1111-1111, phone +44 20 7946 0958, IBAN DE89370400440532013000, \
                    IP 203.0.113.7 / 2001:db8::1.\n\nThanks,\nAnna Smith";
        let names = ["Anna Smith", "Anna"];
        let once = s.scrub(text, &names);
        assert_eq!(
            once,
            "Hi,\n\nPlease change my email from <EMAIL> to <EMAIL>. \
             Card <CARD>, phone <PHONE>, IBAN <IBAN>, \
             IP <IP> / <IP>.\n\nThanks,\n<NAME>"
        );
        assert_eq!(s.scrub(&once, &names), once);
        // Even a name that spells a placeholder leaves placeholders alone.
        let t = "<NAME> wrote from <EMAIL>";
        assert_eq!(s.scrub(t, &["Name", "Email"]), t);
    }

    #[test]
    fn kinds_can_be_disabled() {
        let s = Scrubber::new().with_kinds(&[PiiKind::Email]);
        assert_eq!(
            s.scrub("a@b.io +44 20 7946 0958 Anna", &["Anna"]),
            "<EMAIL> +44 20 7946 0958 Anna"
        );
        let s = Scrubber::new().with_known_names(["Privet Bot"]);
        assert_eq!(s.scrub("signed, privet bot", &[]), "signed, <NAME>");
        assert!(s.is_enabled(PiiKind::Ip));
    }

    #[test]
    fn odd_input_does_not_panic() {
        let s = Scrubber::new();
        for t in [
            "",
            "@",
            "+",
            "(",
            "((1)",
            "1",
            "::",
            ":::",
            "a@",
            "@b.c",
            "é@é.éé",
            "DE89",
            "ŁŁ 12 Ł",
        ] {
            let _ = s.scrub(t, &["Ł", "ŁŁ"]);
        }
    }
}
