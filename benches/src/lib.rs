//! Shared helpers for the multiret benchmarks: timing, random data and the XQuAD-R sentences
//! of the embedding bench.

use std::time::Instant;

pub mod xquad;

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

/// The `gemm` 0.19 peer: `c = a b` for row-major `a` (`m x k`), `b` (`k x n`), `c` (`m x n`),
/// on `threads` threads of the current rayon pool (1: none).
///
/// # Panics
/// When a slice is shorter than its shape says.
pub fn peer_gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    threads: usize,
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "peer_gemm: short buffer"
    );
    let par = if threads <= 1 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(threads)
    };
    // SAFETY: a is m x k, b is k x n, c is m x n, row-major (column stride 1, row stride =
    // columns), and every slice holds at least that many elements (checked above).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        )
    }
}

/// The `matrixmultiply` 0.3 peer: `c = a b`, row-major, as [`peer_gemm`]; its thread count is
/// `MATMUL_NUM_THREADS`, read once per process.
///
/// # Panics
/// When a slice is shorter than its shape says.
pub fn peer_matrixmultiply(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "peer_matrixmultiply: short buffer"
    );
    // SAFETY: as in `peer_gemm`: row-major buffers of at least the shapes' sizes.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}
