//! Small, version-stable random helpers on top of ChaCha8.
//!
//! Everything the sampler draws goes through these functions and `RngCore::next_u64`, so the
//! batch stream depends only on the ChaCha8 keystream (which `rand_chacha` guarantees stable)
//! and not on the distribution code of a particular `rand` release.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// SplitMix64 finaliser: a bijective 64-bit mixer.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A ChaCha8 generator keyed by `seed` and a tuple of domain-separating `parts`.
pub(crate) fn derived_rng(seed: u64, parts: &[u64]) -> ChaCha8Rng {
    let mut h = splitmix64(seed);
    for (i, &p) in parts.iter().enumerate() {
        h = splitmix64(h ^ splitmix64(p.wrapping_add((i as u64 + 1) << 56)));
    }
    let mut key = [0u8; 32];
    for (i, chunk) in key.chunks_exact_mut(8).enumerate() {
        h = splitmix64(h ^ (i as u64));
        chunk.copy_from_slice(&h.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// Uniform integer in `0..n` (`n >= 1`), unbiased (Lemire's widening multiply with rejection).
///
/// It reads only `next_u64`, so its draws depend on the ChaCha8 keystream alone, not on a
/// `rand` release.
pub fn bounded(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    debug_assert!(n >= 1);
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// Uniform float in `[0, 1)` with 53 random bits.
pub(crate) fn unit_f64(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Fisher-Yates shuffle driven by [`bounded`].
pub(crate) fn shuffle<T>(rng: &mut ChaCha8Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = bounded(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// Moves a uniformly random `k`-subset of `items` (`k` capped at `items.len()`) to the front,
/// in drawn order: the first `k` steps of a forward Fisher-Yates shuffle driven by
/// [`bounded`]. The rest of `items` is left in an unspecified order.
pub fn partial_shuffle<T>(rng: &mut ChaCha8Rng, items: &mut [T], k: usize) {
    for i in 0..k.min(items.len()) {
        let j = i + bounded(rng, (items.len() - i) as u64) as usize;
        items.swap(i, j);
    }
}

/// FNV-1a, used for corpus fingerprints.
#[derive(Debug, Clone)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.bytes(s.as_bytes());
    }
    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_stays_in_range_and_covers_it() {
        let mut rng = derived_rng(7, &[1, 2]);
        let mut seen = [0usize; 5];
        for _ in 0..5000 {
            let v = bounded(&mut rng, 5) as usize;
            seen[v] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
        assert_eq!(bounded(&mut rng, 1), 0);
    }

    #[test]
    fn derived_rngs_are_domain_separated_and_repeatable() {
        let a = derived_rng(1, &[0, 1]).next_u64();
        let b = derived_rng(1, &[1, 0]).next_u64();
        let c = derived_rng(1, &[0, 1]).next_u64();
        assert_ne!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut rng = derived_rng(3, &[]);
        let mut v: Vec<u32> = (0..100).collect();
        shuffle(&mut rng, &mut v);
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_ne!(v, s);
    }

    #[test]
    fn partial_shuffle_draws_a_subset_in_front() {
        let mut rng = derived_rng(9, &[]);
        let mut v: Vec<u32> = (0..20).collect();
        partial_shuffle(&mut rng, &mut v, 5);
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (0..20).collect::<Vec<_>>());
        assert_ne!(v[..5], [0, 1, 2, 3, 4]);
        let mut short = vec![1, 2];
        partial_shuffle(&mut rng, &mut short, 9);
        short.sort_unstable();
        assert_eq!(short, [1, 2]);
    }

    #[test]
    fn unit_f64_in_range() {
        let mut rng = derived_rng(5, &[]);
        for _ in 0..1000 {
            let u = unit_f64(&mut rng);
            assert!((0.0..1.0).contains(&u));
        }
    }
}
