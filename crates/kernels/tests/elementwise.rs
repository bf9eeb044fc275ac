//! Softmax, log-softmax, LayerNorm, GELU, bias, L2 normalisation, top-k and quantised dots
//! against the f64 references, on every ISA path of this CPU.
//!
//! Tolerances: softmax `2e-6 * p + 1e-7` (relative per probability), log-softmax `1e-5`
//! absolute plus `2e-6` of the magnitude, LayerNorm `1e-5 * (|y| + 1)`, GELU `1e-6` relative
//! (absolute floor 1e-37 for results in the denormal range), L2 `1e-6`.

mod common;

use common::{assert_close, isas, rand_vec};
use multiret_kernels::activation::{
    add_bias_rows_with, gelu_and_grad_with, gelu_backward_with, gelu_with,
};
use multiret_kernels::cosine::{cosine_top_k, top_k};
use multiret_kernels::norm::{l2_normalize_rows_with, layer_norm_rows_with};
use multiret_kernels::quant::{dequantize_q4_0, dot_f32_q4_0, dot_q8_0, quantize_q8_0};
use multiret_kernels::softmax::{log_softmax_rows_with, softmax_rows_with};
use multiret_kernels::{reference, MatRef, Par};
use proptest::prelude::*;

fn cols() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), Just(7), Just(33), Just(1023), 1usize..200]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn softmax_matches_reference(cols in cols(), rows in 1usize..5, scale in 0.05f32..3.0,
                                 masked in any::<bool>(), seed in any::<u64>()) {
        let x: Vec<f32> = rand_vec(rows * cols, seed).iter().map(|v| v * 8.0).collect();
        let mask: Vec<f32> = (0..cols).map(|j| if j % 3 == 1 { f32::NEG_INFINITY } else if j % 5 == 2 { -10000.0 } else { 0.0 }).collect();
        let mask = if masked { Some(&mask[..]) } else { None };
        for log in [false, true] {
            let want = reference::softmax(&x, cols, scale, mask, log);
            for isa in isas() {
                let mut got = x.clone();
                if log {
                    log_softmax_rows_with(isa, &mut got, cols, scale, mask).unwrap();
                    let scale_v: Vec<f64> = want.iter().map(|w| w.abs()).collect();
                    assert_close(&format!("log_softmax {}", isa.name()), &got, &want, &scale_v, 2e-6, 1e-5);
                } else {
                    softmax_rows_with(isa, &mut got, cols, scale, mask).unwrap();
                    assert_close(&format!("softmax {}", isa.name()), &got, &want, &want, 2e-6, 1e-7);
                }
            }
        }
    }

    #[test]
    fn layer_norm_matches_reference(cols in cols(), rows in 1usize..5, residual in any::<bool>(), seed in any::<u64>()) {
        let x: Vec<f32> = rand_vec(rows * cols, seed).iter().map(|v| v * 5.0 + 1.0).collect();
        let r = rand_vec(rows * cols, seed ^ 7);
        let g = rand_vec(cols, seed ^ 8);
        let b = rand_vec(cols, seed ^ 9);
        let res = if residual { Some(&r[..]) } else { None };
        let want = reference::layer_norm(&x, res, &g, &b, 1e-12);
        let scale: Vec<f64> = want.iter().map(|w| w.abs() + 1.0).collect();
        for isa in isas() {
            let mut got = x.clone();
            layer_norm_rows_with(isa, &mut got, res, &g, &b, 1e-12).unwrap();
            assert_close(&format!("layer_norm {}", isa.name()), &got, &want, &scale, 1e-5, 0.0);
        }
    }

    #[test]
    fn gelu_backward_matches_reference(n in cols(), seed in any::<u64>(), spread in 0.5f32..20.0) {
        let z: Vec<f32> = rand_vec(n, seed).iter().map(|v| v * spread).collect();
        let g: Vec<f32> = rand_vec(n, seed ^ 3);
        let want: Vec<f64> = z.iter().zip(&g).map(|(&z, &g)| g as f64 * reference::gelu_grad(z as f64)).collect();
        // The derivative crosses zero near -0.75: the bound is on |Φ(z)| + |z φ(z)|.
        let scale: Vec<f64> = z.iter().zip(&g).map(|(&z, &g)| {
            let z = z as f64;
            let phi = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
            (g as f64).abs() * (0.5 * libm::erfc(-z / 2f64.sqrt()) + (z * phi).abs())
        }).collect();
        for isa in isas() {
            let mut got = g.clone();
            gelu_backward_with(isa, &z, &mut got).unwrap();
            assert_close(&format!("gelu_backward {}", isa.name()), &got, &want, &scale, 1e-6, 1e-37);
        }
    }

    #[test]
    fn gelu_and_grad_matches_reference(n in cols(), seed in any::<u64>(), spread in 0.5f32..20.0) {
        let z: Vec<f32> = rand_vec(n, seed).iter().map(|v| v * spread).collect();
        let want_y: Vec<f64> = z.iter().map(|&z| reference::gelu(z as f64)).collect();
        let want_d: Vec<f64> = z.iter().map(|&z| reference::gelu_grad(z as f64)).collect();
        let scale_y: Vec<f64> = want_y.iter().map(|w| w.abs()).collect();
        let scale_d: Vec<f64> = z.iter().map(|&z| {
            let z = z as f64;
            let phi = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
            0.5 * libm::erfc(-z / 2f64.sqrt()) + (z * phi).abs()
        }).collect();
        for isa in isas() {
            let (mut y, mut d) = (z.clone(), vec![f32::NAN; n]);
            gelu_and_grad_with(isa, &mut y, &mut d).unwrap();
            assert_close(&format!("gelu_and_grad y {}", isa.name()), &y, &want_y, &scale_y, 1e-6, 1e-37);
            assert_close(&format!("gelu_and_grad d {}", isa.name()), &d, &want_d, &scale_d, 1e-6, 1e-37);
            // The same values as the separate forward and backward on this path, bit for bit.
            let mut y1 = z.clone();
            gelu_with(isa, &mut y1);
            let mut d1 = vec![1.0f32; n];
            gelu_backward_with(isa, &z, &mut d1).unwrap();
            prop_assert!(y.iter().zip(&y1).all(|(a, b)| a.to_bits() == b.to_bits()), "{} y differs from gelu", isa.name());
            prop_assert!(d.iter().zip(&d1).all(|(a, b)| a.to_bits() == b.to_bits()), "{} d differs from gelu_backward", isa.name());
            prop_assert!(gelu_and_grad_with(isa, &mut y, &mut d1[..n.saturating_sub(1)]).is_err() || n == 0);
        }
    }

    #[test]
    fn gelu_and_bias_match_reference(cols in cols(), rows in 1usize..4, seed in any::<u64>(), spread in 0.5f32..20.0) {
        let x: Vec<f32> = rand_vec(rows * cols, seed).iter().map(|v| v * spread).collect();
        let bias = rand_vec(cols, seed ^ 5);
        for isa in isas() {
            let mut got = x.clone();
            add_bias_rows_with(isa, &mut got, &bias, true).unwrap();
            let want: Vec<f64> = x.iter().enumerate().map(|(i, &v)| reference::gelu((v + bias[i % cols]) as f64)).collect();
            let scale: Vec<f64> = want.iter().map(|w| w.abs()).collect();
            assert_close(&format!("bias+gelu {}", isa.name()), &got, &want, &scale, 1e-6, 1e-37);
            let mut got = x.clone();
            add_bias_rows_with(isa, &mut got, &bias, false).unwrap();
            let want: Vec<f64> = x.iter().enumerate().map(|(i, &v)| (v + bias[i % cols]) as f64).collect();
            assert_close(&format!("bias {}", isa.name()), &got, &want, &want, 0.0, 0.0);
        }
    }

    #[test]
    fn l2_matches_reference(cols in cols(), rows in 1usize..5, seed in any::<u64>()) {
        let mut x = rand_vec(rows * cols, seed);
        x[..cols].fill(0.0); // a zero row stays zero
        let want = reference::l2_normalize(&x, cols);
        let ones = vec![1.0; want.len()];
        for isa in isas() {
            let mut got = x.clone();
            l2_normalize_rows_with(isa, &mut got, cols).unwrap();
            assert_close(&format!("l2 {}", isa.name()), &got, &want, &ones, 1e-6, 0.0);
        }
    }

    #[test]
    fn top_k_matches_full_sort(n in 0usize..300, k in 0usize..20, ties in any::<bool>(), seed in any::<u64>()) {
        let mut s = rand_vec(n, seed);
        if ties {
            for v in s.iter_mut() {
                *v = (*v * 4.0).round();
            }
            if n > 3 {
                s[n / 2] = f32::NAN;
            }
        }
        let got: Vec<usize> = top_k(&s, k).iter().map(|h| h.index).collect();
        prop_assert_eq!(got, reference::top_k(&s, k));
    }
}

#[test]
fn gelu_is_accurate_everywhere() {
    // A dense sweep over the whole interesting range, plus the special values.
    let mut x: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 1e-4).collect();
    x.extend((0..2000).map(|i| -20.0 + i as f32 * 0.004));
    x.extend([
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        13.9,
        14.0,
        14.1,
        -13.2,
        -13.5,
        -14.5,
        100.0,
        -100.0,
        f32::MAX,
        f32::MIN,
    ]);
    for isa in isas() {
        let mut got = x.clone();
        gelu_with(isa, &mut got);
        let want: Vec<f64> = x.iter().map(|&v| reference::gelu(v as f64)).collect();
        let scale: Vec<f64> = want.iter().map(|w| w.abs()).collect();
        assert_close(
            &format!("gelu {}", isa.name()),
            &got,
            &want,
            &scale,
            1e-6,
            1e-37,
        );
        let mut special = vec![f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
        special.extend([1.0f32; 17]); // so that SIMD lanes see the specials
        special.splice(5..5, [f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        gelu_with(isa, &mut special);
        assert_eq!(special[0], f32::INFINITY, "{}", isa.name());
        assert_eq!(special[1], 0.0, "{}", isa.name());
        assert!(special[2].is_nan() && special[5].is_nan(), "{}", isa.name());
        assert_eq!(special[6], f32::INFINITY, "{}", isa.name());
        assert_eq!(special[7], 0.0, "{}", isa.name());
    }
}

#[test]
fn softmax_special_rows() {
    for isa in isas() {
        // Fully masked rows: zeros (log: -inf); NaN stays NaN; +inf makes the row NaN.
        let cols = 19;
        let mut x = vec![1.0f32; 3 * cols];
        x[cols + 4] = f32::NAN;
        x[2 * cols + 3] = f32::INFINITY;
        let mask = vec![f32::NEG_INFINITY; cols];
        let mut y = x.clone();
        softmax_rows_with(isa, &mut y, cols, 1.0, Some(&mask)).unwrap();
        assert!(y[..cols].iter().all(|&v| v == 0.0), "{}", isa.name());
        assert!(y[cols + 4].is_nan());
        let want = reference::softmax(&x, cols, 1.0, None, false);
        let mut y = x.clone();
        softmax_rows_with(isa, &mut y, cols, 1.0, None).unwrap();
        assert_close(
            &format!("softmax specials {}", isa.name()),
            &y,
            &want,
            &want,
            2e-6,
            1e-7,
        );
        let mut y = x.clone();
        log_softmax_rows_with(isa, &mut y, cols, 1.0, Some(&mask)).unwrap();
        assert!(
            y[..cols].iter().all(|&v| v == f32::NEG_INFINITY),
            "{}",
            isa.name()
        );
    }
}

#[test]
fn argument_errors() {
    let isa = multiret_kernels::detected_isa();
    let mut x = vec![0.0f32; 10];
    assert!(softmax_rows_with(isa, &mut x, 3, 1.0, None).is_err());
    assert!(softmax_rows_with(isa, &mut x, 5, 1.0, Some(&[0.0; 4])).is_err());
    assert!(softmax_rows_with(isa, &mut x, 0, 1.0, None).is_err());
    assert!(layer_norm_rows_with(isa, &mut x, None, &[1.0; 3], &[0.0; 3], 1e-5).is_err());
    assert!(layer_norm_rows_with(isa, &mut x, None, &[1.0; 5], &[0.0; 4], 1e-5).is_err());
    assert!(l2_normalize_rows_with(isa, &mut x, 4).is_err());
    assert!(add_bias_rows_with(isa, &mut x, &[0.0; 3], false).is_err());
    assert!(dequantize_q4_0(&[0u8; 17], &mut [0.0; 32]).is_err());
    assert!(quantize_q8_0(&[0.0; 31]).is_err());
}

#[test]
fn cosine_top_k_matches_brute_force() {
    let (nq, nc, dim) = (37, 700, 33);
    let q = rand_vec(nq * dim, 1);
    let mut c = rand_vec(nc * dim, 2);
    // Duplicate candidates give exact ties: the lower index must come first.
    let dup: Vec<f32> = c[5 * dim..6 * dim].to_vec();
    c[600 * dim..601 * dim].copy_from_slice(&dup);
    let qm = MatRef::row_major(&q, nq, dim).unwrap();
    let cm = MatRef::row_major(&c, nc, dim).unwrap();
    for par in [Par::Seq, Par::Threads(2)] {
        let hits = cosine_top_k(qm, cm, 10, par).unwrap();
        assert_eq!(hits.len(), nq);
        for (i, h) in hits.iter().enumerate() {
            let qn = reference::l2_normalize(&q[i * dim..(i + 1) * dim], dim);
            let cn = reference::l2_normalize(&c, dim);
            let scores: Vec<f64> = (0..nc)
                .map(|j| (0..dim).map(|p| qn[p] * cn[j * dim + p]).sum())
                .collect();
            for (r, hit) in h.iter().enumerate() {
                assert!((hit.score as f64 - scores[hit.index]).abs() < 1e-5);
                if r > 0 {
                    assert!(hit.score <= h[r - 1].score);
                }
            }
            let mut best: Vec<usize> = (0..nc).collect();
            best.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap().then(a.cmp(&b)));
            // Allow float-level reordering only between near-equal scores.
            for (r, hit) in h.iter().enumerate() {
                assert!(
                    (scores[best[r]] - scores[hit.index]).abs() < 1e-5,
                    "query {i} rank {r}"
                );
            }
            if let (Some(a), Some(b)) = (
                h.iter().position(|x| x.index == 5),
                h.iter().position(|x| x.index == 600),
            ) {
                assert!(a < b, "tie must put the lower index first");
            }
        }
    }
}

#[test]
fn quantised_dots() {
    // Q4_0: one block with d = 0.5 and nibbles 0..15.
    let mut blk = vec![0u8; 18];
    blk[..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
    for j in 0..16 {
        blk[2 + j] = (j as u8) | (((15 - j) as u8) << 4);
    }
    let mut w = vec![0.0f32; 32];
    dequantize_q4_0(&blk, &mut w).unwrap();
    for j in 0..16 {
        assert_eq!(w[j], (j as f32 - 8.0) * 0.5);
        assert_eq!(w[j + 16], (7.0 - j as f32) * 0.5);
    }
    let x = rand_vec(32, 3);
    let want: f32 = x.iter().zip(&w).map(|(a, b)| a * b).sum();
    assert!((dot_f32_q4_0(&x, &blk).unwrap() - want).abs() < 1e-5);
    let a = rand_vec(64, 4);
    let b = rand_vec(64, 5);
    let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let got = dot_q8_0(&quantize_q8_0(&a).unwrap(), &quantize_q8_0(&b).unwrap()).unwrap();
    assert!(
        (got - exact).abs() < 0.02 * 64f32.sqrt(),
        "{got} vs {exact}"
    );
}

#[test]
fn gelu_backward_special_values_and_finite_differences() {
    let z = [
        f32::NEG_INFINITY,
        -30.0,
        -14.5,
        0.0,
        14.5,
        30.0,
        f32::INFINITY,
        f32::NAN,
    ];
    let want = [0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0];
    for isa in isas() {
        // Pad to a multiple of every lane count so the vector path sees every value.
        let mut zz = z.to_vec();
        zz.resize(32, 1.0);
        let mut g = vec![1.0f32; 32];
        gelu_backward_with(isa, &zz, &mut g).unwrap();
        for (i, w) in want.iter().enumerate() {
            // Beyond |z| = 14 the exact value differs from 0 / 1 by less than 1e-40.
            assert!(
                (g[i] - *w).abs() < 1e-30,
                "{} gelu'({}) = {}",
                isa.name(),
                z[i],
                g[i]
            );
        }
        assert!(g[7].is_nan(), "{} gelu'(NaN) must be NaN", isa.name());
        assert!(gelu_backward_with(isa, &zz[..3], &mut g).is_err());
    }
    // The reference derivative agrees with a central difference of the reference GELU.
    for i in -400..=400 {
        let x = i as f64 * 0.02;
        let h = 1e-5;
        let fd = (reference::gelu(x + h) - reference::gelu(x - h)) / (2.0 * h);
        assert!((fd - reference::gelu_grad(x)).abs() < 1e-8, "gelu'({x})");
    }
}
