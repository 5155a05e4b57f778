//! The generator's own deterministic PRNG.
//!
//! The demo data must be byte-for-byte identical for a given `(scale, seed)`
//! on every machine and with every version of our dependencies, so we do not
//! use the `rand` crate (whose algorithms and sampling code may change between
//! releases). Everything here is plain integer arithmetic: no floating point,
//! so there is no platform-dependent rounding either.

/// The SplitMix64 generator: used to expand one 64-bit key into the 256-bit
/// state of [`Rng`], and as a cheap keyed hash via [`mix64`].
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix64 {
    pub(crate) const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        finalize(self.state)
    }
}

/// The SplitMix64 output function (a bijective 64-bit mixer).
const fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A well-mixed 64-bit hash of `x`.
pub(crate) const fn mix64(x: u64) -> u64 {
    finalize(x.wrapping_add(GOLDEN_GAMMA))
}

/// The independent random streams of the generator.
///
/// Every entity (customer 17, order 4711, ...) draws from its own stream keyed
/// by `(seed, stream, id)`. That way a row can be regenerated on its own (an
/// event can look up "its" order without storing all orders in memory), and
/// changing how one table is generated never shifts the random numbers of the
/// others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Customer = 1,
    Product = 2,
    Order = 3,
    OrderAddress = 4,
    Card = 5,
    CardCount = 6,
    Event = 7,
    Session = 8,
    Ticket = 9,
    Review = 10,
    AltEmail = 11,
    Payment = 12,
}

/// A 64-bit key for `(seed, stream, id)`; distinct inputs give unrelated keys.
pub(crate) const fn key(seed: u64, stream: Stream, id: u64) -> u64 {
    mix64(mix64(seed ^ (stream as u64).wrapping_mul(GOLDEN_GAMMA)) ^ id)
}

/// xoshiro256** (Blackman & Vigna), seeded through SplitMix64 as its authors
/// recommend.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Expands a 64-bit seed into a full state. SplitMix64 is a bijection on
    /// its counter, so the four words can never all be zero (which would be
    /// xoshiro's one bad state).
    pub(crate) fn from_seed(seed: u64) -> Self {
        let mut sm = SplitMix64::new(seed);
        Self {
            s: [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()],
        }
    }

    /// The stream of entity `id` in `stream` for the data set `seed`.
    pub(crate) fn for_entity(seed: u64, stream: Stream, id: u64) -> Self {
        Self::from_seed(key(seed, stream, id))
    }

    #[cfg(test)]
    pub(crate) fn from_state(s: [u64; 4]) -> Self {
        Self { s }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform integer in `0..n` (Lemire's multiply-and-reject method, so
    /// there is no modulo bias). `n` must not be zero.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0, "below(0)");
        let n = n.max(1);
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            // Reject the few low values that would over-represent some results.
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// A uniform integer in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        let span = hi.abs_diff(lo) + 1;
        lo.wrapping_add(self.below(span) as i64)
    }

    /// True with probability `per_mille / 1000`.
    pub(crate) fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// A uniform element of a non-empty slice.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An element of a non-empty slice of `(item, weight)` pairs, chosen with
    /// probability proportional to its weight.
    pub(crate) fn pick_weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        &self.pick_weighted_by(items, |(_, w)| *w).0
    }

    /// An element of a non-empty slice, chosen with probability proportional
    /// to `weight(element)`; the total weight must be positive.
    pub(crate) fn pick_weighted_by<'a, T>(
        &mut self,
        items: &'a [T],
        weight: impl Fn(&T) -> u32,
    ) -> &'a T {
        let total: u64 = items.iter().map(|i| u64::from(weight(i))).sum();
        let mut r = self.below(total);
        for item in items {
            let w = u64::from(weight(item));
            if r < w {
                return item;
            }
            r -= w;
        }
        // Unreachable while the weights sum to `total`; the last item is a safe answer.
        &items[items.len() - 1]
    }

    /// An ASCII decimal digit.
    pub(crate) fn digit(&mut self) -> char {
        char::from(b'0' + self.below(10) as u8)
    }
}

/// Picks an index from inclusive prefix sums `cumulative` (weights > 0),
/// restricted to the first `len` entries, proportionally to weight.
pub(crate) fn pick_cumulative(rng: &mut Rng, cumulative: &[u64], len: usize) -> usize {
    let len = len.clamp(1, cumulative.len());
    let r = rng.below(cumulative[len - 1]);
    cumulative[..len].partition_point(|&c| c <= r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_reference_output() {
        // First outputs of the reference C implementation for seed 0.
        let mut sm = SplitMix64::new(0);
        assert_eq!(sm.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(sm.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn xoshiro256starstar_matches_reference_output() {
        // The published test vector for state {1, 2, 3, 4}.
        let mut rng = Rng::from_state([1, 2, 3, 4]);
        let got: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(got, [11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::from_seed(7);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            let v = rng.below(7);
            assert!(v < 7);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
    }

    #[test]
    fn pick_cumulative_respects_prefix_and_weights() {
        let cumulative = [1u64, 2, 102, 103];
        let mut rng = Rng::from_seed(1);
        let mut heavy = 0;
        for _ in 0..1000 {
            let i = pick_cumulative(&mut rng, &cumulative, 3);
            assert!(i < 3);
            if i == 2 {
                heavy += 1;
            }
        }
        assert!(heavy > 900, "{heavy}");
        assert_eq!(pick_cumulative(&mut rng, &cumulative, 1), 0);
    }
}
