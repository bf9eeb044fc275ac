//! Shared helpers for the multiret benchmarks: timing, random data and the XQuAD-R sentences
//! of the embedding bench.

use std::time::Instant;

pub mod xquad;

/// Median seconds of `f` over at least `min_runs` runs and `min_secs` seconds (after one
/// warm-up run).
pub fn median_secs(min_runs: usize, min_secs: f64, mut f: impl FnMut()) -> f64 {
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < min_runs || start.elapsed().as_secs_f64() < min_secs {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
        if times.len() >= 1000 {
            break;
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}

/// Times several implementations of one task *interleaved*: after one warm-up call each, rounds
/// call every implementation once (the order rotating from round to round) until each has run
/// `min_runs` times and `min_secs` have passed; returns each one's median seconds. On a shared
/// or virtual machine, whose speed drifts over seconds, this compares the implementations under
/// the same conditions, which timing them one after the other does not.
pub fn interleaved_median_secs(
    min_runs: usize,
    min_secs: f64,
    fs: &mut [&mut dyn FnMut()],
) -> Vec<f64> {
    let n = fs.len();
    for f in fs.iter_mut() {
        f();
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); n];
    let start = Instant::now();
    let mut round = 0;
    while round < min_runs || start.elapsed().as_secs_f64() < min_secs {
        for j in 0..n {
            let i = (round + j) % n;
            let t = Instant::now();
            fs[i]();
            times[i].push(t.elapsed().as_secs_f64());
        }
        round += 1;
        if round >= 1000 {
            break;
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(|a, b| a.partial_cmp(b).unwrap());
            t[t.len() / 2]
        })
        .collect()
}

/// Deterministic pseudo-random f32 values in `[-1, 1)` (xorshift; no dependency).
pub fn random_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The GEMM shapes (m, k, n) of the encoder that the reports and benches use.
pub const GEMM_SHAPES: [(usize, usize, usize); 5] = [
    (4096, 384, 384),
    (4096, 384, 1536),
    (4096, 1536, 384),
    (128, 384, 384),
    (1024, 1024, 1024),
];
