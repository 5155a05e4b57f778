//! Small bounded statistics the baselines are built from. All of them are
//! O(1) per update except eviction from a full [`Novelty`] set (a scan of
//! at most its cap), and all of them serialize.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `(x - lo) / (hi - lo)` clamped to [0, 1].
pub(crate) fn ramp(x: f64, lo: f64, hi: f64) -> f64 {
    ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
}

/// The multiply-rotate hash of rustc (FxHash): several times faster than
/// SipHash for the short keys here. Not collision-resistant, which is fine
/// because every map it backs is capped (a crafted flood of colliding keys
/// costs a bounded probe, not a quadratic blow-up).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FxHasher::K);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Weight of a sample that already looks elevated: learned, slowly.
pub(crate) const SLOW: f64 = 0.1;

/// Running mean and variance, exponentially forgetting once `horizon`
/// samples have been seen (a plain average before that).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Moments {
    n: f64,
    mean: f64,
    var: f64,
}

impl Moments {
    pub(crate) fn push(&mut self, x: f64, horizon: f64) {
        self.push_weighted(x, horizon, 1.0);
    }

    /// A sample counting for `weight` samples (in (0, 1]).
    pub(crate) fn push_weighted(&mut self, x: f64, horizon: f64, weight: f64) {
        self.n = (self.n + weight).min(horizon);
        let a = weight / self.n;
        let d = x - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
    }

    pub(crate) fn n(&self) -> f64 {
        self.n
    }

    pub(crate) fn mean(&self) -> f64 {
        self.mean
    }

    pub(crate) fn var(&self) -> f64 {
        self.var.max(0.0)
    }

    pub(crate) fn sd(&self) -> f64 {
        self.var().sqrt()
    }
}

/// Streaming estimate of the 99th percentile (stochastic approximation:
/// up by 0.99 step when exceeded, down by 0.01 step otherwise), with large
/// steps at first so it converges in a few dozen samples. An attacker must
/// exceed it about a hundred times per step of growth: it cannot be trained
/// up quickly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tail {
    q: f64,
    n: u32,
}

impl Tail {
    const P: f64 = 0.99;

    /// Learns `x`, counting for `weight` samples (in (0, 1]).
    pub(crate) fn push_weighted(&mut self, x: f64, weight: f64) {
        if self.n == 0 {
            self.q = x;
        } else {
            let step = weight * (1.0 / f64::from(self.n).sqrt()).clamp(0.05, 1.0);
            if x > self.q {
                self.q += step * Tail::P;
            } else {
                self.q -= step * (1.0 - Tail::P);
            }
        }
        self.n = self.n.saturating_add(1);
    }

    pub(crate) fn q(&self) -> f64 {
        self.q
    }
}

/// Log-scale statistics of a count (rows or subjects): `ln(1 + x)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LogCount {
    moments: Moments,
    tail: Tail,
}

impl LogCount {
    /// Memory of the mean and variance, in samples.
    const HORIZON: f64 = 5_000.0;

    /// Learns `x`; a value above the high water mark (once there are 30
    /// samples) counts a tenth: growth is learned, but slowly, so a run of
    /// ever larger results that each stay below the alert level cannot
    /// raise the mark quickly.
    pub(crate) fn push(&mut self, x: u64) {
        let x = ln1p(x);
        let weight = if self.n() >= 30.0 && x > self.high() {
            SLOW
        } else {
            1.0
        };
        self.moments.push_weighted(x, LogCount::HORIZON, weight);
        self.tail.push_weighted(x, weight);
    }

    pub(crate) fn n(&self) -> f64 {
        self.moments.n()
    }

    /// The high water mark, in log scale: the larger of the 99th percentile
    /// and mean + 2 standard deviations (at least 0.25, about 30%).
    pub(crate) fn high(&self) -> f64 {
        self.tail
            .q()
            .max(self.moments.mean() + 2.0 * self.moments.sd().max(0.25))
    }
}

pub(crate) fn ln1p(x: u64) -> f64 {
    (x as f64).ln_1p()
}

/// `exp(x) - 1`, the count at log-scale `x`, for messages.
pub(crate) fn count_at(x: f64) -> u64 {
    // Saturating float-to-int cast.
    x.exp_m1().max(0.0).round() as u64
}

/// Request counts per slot (minute, hour) for the last `len` slots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RingRepr", into = "RingRepr")]
pub(crate) struct Ring {
    slots: Vec<u32>,
    /// Index (minute or hour since the epoch) of the newest slot.
    head: u64,
    /// Sum of the slots.
    total: u32,
}

#[derive(Serialize, Deserialize)]
struct RingRepr {
    slots: Vec<u32>,
    head: u64,
}

impl TryFrom<RingRepr> for Ring {
    type Error = String;
    fn try_from(r: RingRepr) -> Result<Self, Self::Error> {
        if r.slots.is_empty() || r.slots.len() > 1440 {
            return Err(format!("a window of {} slots", r.slots.len()));
        }
        let total = r.slots.iter().fold(0u32, |a, b| a.saturating_add(*b));
        Ok(Ring {
            slots: r.slots,
            head: r.head,
            total,
        })
    }
}

impl From<Ring> for RingRepr {
    // `total` is derived.
    fn from(r: Ring) -> Self {
        RingRepr {
            slots: r.slots,
            head: r.head,
        }
    }
}

impl Ring {
    pub(crate) fn new(len: usize) -> Ring {
        Ring {
            slots: vec![0; len.max(1)],
            head: 0,
            total: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Counts one request in slot `index`; slots before the newest one
    /// (late arrivals) count in the newest.
    pub(crate) fn add(&mut self, index: u64) {
        let len = self.slots.len() as u64;
        if index > self.head {
            let steps = (index - self.head).min(len);
            for i in 1..=steps {
                let slot = &mut self.slots[((self.head + i) % len) as usize];
                self.total = self.total.saturating_sub(*slot);
                *slot = 0;
            }
            self.head = index;
        }
        let slot = &mut self.slots[(self.head % len) as usize];
        *slot = slot.saturating_add(1);
        self.total = self.total.saturating_add(1);
    }

    /// Requests in the newest `k` slots.
    pub(crate) fn recent(&self, k: usize) -> u32 {
        let len = self.slots.len();
        if k >= len {
            return self.total;
        }
        let head = (self.head % len as u64) as usize;
        let mut sum = 0u32;
        for i in 0..k {
            sum = sum.saturating_add(self.slots[(head + len - i) % len]);
        }
        sum
    }
}

/// Subjects of recent single-subject lookups, oldest first, with a count per
/// subject so that the number of distinct ones is O(1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<(u64, u64)>", into = "Vec<(u64, u64)>")]
pub(crate) struct SubjectWindow {
    lookups: VecDeque<(u64, u64)>,
    counts: FastMap<u64, u32>,
}

impl SubjectWindow {
    /// Beyond this many lookups in the window the oldest are forgotten: the
    /// distinct count saturates far above any baseline.
    const CAP: usize = 4096;

    /// Records a lookup of `subject` at `at` and forgets lookups older than
    /// `window_ms`.
    pub(crate) fn push(&mut self, at: u64, subject: u64, window_ms: u64) {
        self.lookups.push_back((at, subject));
        *self.counts.entry(subject).or_insert(0) += 1;
        while let Some(&(t, s)) = self.lookups.front() {
            if t + window_ms > at && self.lookups.len() <= SubjectWindow::CAP {
                break;
            }
            self.lookups.pop_front();
            if let Some(c) = self.counts.get_mut(&s) {
                *c -= 1;
                if *c == 0 {
                    self.counts.remove(&s);
                }
            }
        }
    }

    pub(crate) fn distinct(&self) -> usize {
        self.counts.len()
    }
}

impl From<Vec<(u64, u64)>> for SubjectWindow {
    fn from(lookups: Vec<(u64, u64)>) -> Self {
        let mut w = SubjectWindow::default();
        for (at, subject) in lookups.into_iter().take(SubjectWindow::CAP) {
            w.lookups.push_back((at, subject));
            *w.counts.entry(subject).or_insert(0) += 1;
        }
        w
    }
}

impl From<SubjectWindow> for Vec<(u64, u64)> {
    fn from(w: SubjectWindow) -> Self {
        w.lookups.into()
    }
}

/// One item of a [`Novelty`] set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Seen<V> {
    pub(crate) first_ms: u64,
    pub(crate) last_ms: u64,
    pub(crate) hits: u32,
    /// Part of the baseline (as opposed to only seen in flagged requests,
    /// or not yet confirmed).
    pub(crate) known: bool,
    #[serde(default)]
    pub(crate) value: V,
}

/// Items (tables, columns, query shapes, addresses) a principal has used,
/// bounded: when full, the least recently seen unknown item is evicted, or
/// the least recently seen known one if all are known. Flooding it with new
/// items therefore evicts the flood first.
#[derive(Debug, Clone)]
pub(crate) struct Novelty<K, V> {
    items: FastMap<K, Seen<V>>,
}

impl<K: Hash + Eq, V: PartialEq> PartialEq for Novelty<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}

impl<K, V> Default for Novelty<K, V> {
    fn default() -> Self {
        Novelty {
            items: FastMap::default(),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Default> Novelty<K, V> {
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&Seen<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.items.get(key)
    }

    pub(crate) fn is_known<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.items.get(key).is_some_and(|s| s.known)
    }

    /// Records a sighting at `at` and returns the item, inserting it
    /// (unknown) if new. (`None` cannot happen; an `Option` rather than a
    /// panic path.)
    pub(crate) fn sight<Q>(&mut self, key: &Q, at: u64, cap: usize) -> Option<&mut Seen<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !self.items.contains_key(key) {
            if self.items.len() >= cap {
                self.evict();
            }
            return Some(self.items.entry(key.to_owned()).or_insert(Seen {
                first_ms: at,
                last_ms: at,
                hits: 1,
                known: false,
                value: V::default(),
            }));
        }
        let seen = self.items.get_mut(key)?;
        seen.last_ms = seen.last_ms.max(at);
        seen.hits = seen.hits.saturating_add(1);
        Some(seen)
    }

    fn evict(&mut self) {
        let victim = self
            .items
            .iter()
            .min_by_key(|(_, s)| (s.known, s.last_ms))
            .map(|(k, _)| k.clone());
        if let Some(k) = victim {
            self.items.remove(&k);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
}

impl<K: Serialize + Ord, V: Serialize> Serialize for Novelty<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        sorted::serialize(&self.items, serializer)
    }
}

impl<'de, K, V> Deserialize<'de> for Novelty<K, V>
where
    K: DeserializeOwned + Hash + Eq,
    V: DeserializeOwned + Default,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Novelty {
            items: sorted::deserialize(deserializer)?,
        })
    }
}

/// (De)serializes a `HashMap` as a list of pairs sorted by key: keys need
/// not be strings, and files of equal states are easy to diff.
pub(crate) mod sorted {
    use super::*;

    pub(crate) fn serialize<K, V, H, S>(
        map: &HashMap<K, V, H>,
        serializer: S,
    ) -> Result<S::Ok, S::Error>
    where
        K: Serialize + Ord,
        V: Serialize,
        S: Serializer,
    {
        let mut pairs: Vec<(&K, &V)> = map.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        serializer.collect_seq(pairs)
    }

    pub(crate) fn deserialize<'de, K, V, H, D>(
        deserializer: D,
    ) -> Result<HashMap<K, V, H>, D::Error>
    where
        K: DeserializeOwned + Hash + Eq,
        V: DeserializeOwned,
        H: BuildHasher + Default,
        D: Deserializer<'de>,
    {
        let pairs: Vec<(K, V)> = Vec::deserialize(deserializer)?;
        Ok(pairs.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_average_then_forget() {
        let mut m = Moments::default();
        for x in [1.0, 2.0, 3.0] {
            m.push(x, 100.0);
        }
        assert!((m.mean() - 2.0).abs() < 1e-12);
        assert!((m.var() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn tail_tracks_a_high_percentile() {
        let mut t = Tail::default();
        for i in 0..20_000u64 {
            t.push_weighted((i % 100) as f64, 1.0);
        }
        assert!((95.0..=100.5).contains(&t.q()), "{}", t.q());
    }

    #[test]
    fn ring_counts_recent_slots_and_clears_old_ones() {
        let mut r = Ring::new(60);
        r.add(1000);
        r.add(1000);
        r.add(1003);
        assert_eq!(r.recent(1), 1);
        assert_eq!(r.recent(5), 3);
        r.add(1062);
        assert_eq!(r.recent(60), 2);
        r.add(5000);
        assert_eq!(r.recent(60), 1);
        // Late arrival counts in the newest slot.
        r.add(10);
        assert_eq!(r.recent(1), 2);
    }

    #[test]
    fn subject_window_counts_distinct_subjects_in_the_window() {
        let mut w = SubjectWindow::default();
        w.push(0, 1, 1000);
        w.push(10, 1, 1000);
        w.push(20, 2, 1000);
        assert_eq!(w.distinct(), 2);
        w.push(1015, 3, 1000);
        assert_eq!(w.distinct(), 2);
        let back: SubjectWindow =
            serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back.distinct(), 2);
    }

    #[test]
    fn novelty_evicts_unknown_items_first() {
        let mut n: Novelty<u64, ()> = Novelty::default();
        if let Some(seen) = n.sight(&1, 0, 2) {
            seen.known = true;
        }
        n.sight(&2, 1, 2);
        n.sight(&3, 2, 2);
        assert!(n.is_known(&1));
        assert!(n.get(&2).is_none());
        assert!(n.get(&3).is_some());
        assert_eq!(n.len(), 2);
    }
}
