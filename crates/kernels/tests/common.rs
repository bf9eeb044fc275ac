//! Helpers shared by the kernel tests.
#![allow(dead_code)]

use multiret_kernels::Isa;

/// Deterministic values in [-1, 1).
pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
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

/// Every ISA path this CPU can run.
pub fn isas() -> Vec<Isa> {
    Isa::available().collect()
}

/// `|got - want| <= rel * scale + abs` element-wise, with NaN matching NaN and infinities
/// matching exactly.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], scale: &[f64], rel: f64, abs: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        if w.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: got {g}, want NaN");
            continue;
        }
        if w.is_infinite() {
            assert_eq!(g, w, "{what}[{i}]");
            continue;
        }
        let tol = rel * scale[i] + abs;
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w}, |diff| {} > tol {tol}",
            (g - w).abs()
        );
    }
}
