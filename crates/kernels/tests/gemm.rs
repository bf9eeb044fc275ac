//! GEMM paths against the f64 reference: random shapes (with the awkward edges 1, 7, 33 and
//! 1023), transposes, strides, alpha/beta, epilogues, threads; every ISA of this CPU.
//!
//! Tolerance: `|C - C_ref| <= 2e-6 * sqrt(k) * S + 1e-6` for f32 and the bf16 paths (whose
//! inputs are rounded to bf16 in the reference too), where `S = |alpha| * sum_p |a_ip b_pj| +
//! |beta c_ij|`: f32 accumulation error grows like sqrt(k) ulps of the absolute sum.

mod common;

use common::{assert_close, isas, rand_vec};
use multiret_kernels::gemm::{gemm_bf16_with, gemm_f32_bf16_with, gemm_f32_with, Epilogue};
use multiret_kernels::{bf16, reference, Isa, KernelError, MatMut, MatRef, Par};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    F32,
    Bf16,
    F32Bf16,
}

#[derive(Debug, Clone)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    pad: usize,
    c_trans: bool,
    alpha: f32,
    beta: f32,
    epi: u8,
    threads: usize,
    seed: u64,
}

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        Just(7),
        Just(33),
        1usize..80,
        Just(12),
        Just(32),
        Just(64)
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        dim(),
        dim(),
        dim(),
        any::<bool>(),
        any::<bool>(),
        0usize..3,
        any::<bool>(),
        prop_oneof![Just(1.0f32), -2.0f32..2.0],
        prop_oneof![Just(0.0f32), Just(1.0), -1.0f32..1.0],
        0u8..4,
        1usize..3,
        any::<u64>(),
    )
        .prop_map(
            |(m, k, n, ta, tb, pad, c_trans, alpha, beta, epi, threads, seed)| Case {
                m,
                k,
                n,
                ta,
                tb,
                pad,
                c_trans,
                alpha,
                beta,
                epi,
                threads,
                seed,
            },
        )
}

/// A `rows x cols` operand stored row-major (or transposed) with `pad` extra elements per
/// leading dimension; returns (storage, row stride, col stride).
fn layout(
    vals: &[f32],
    rows: usize,
    cols: usize,
    trans: bool,
    pad: usize,
) -> (Vec<f32>, usize, usize) {
    if !trans {
        let ld = cols + pad;
        let mut s = vec![f32::NAN; rows * ld];
        for i in 0..rows {
            for j in 0..cols {
                s[i * ld + j] = vals[i * cols + j];
            }
        }
        (s, ld, 1)
    } else {
        let ld = rows + pad;
        let mut s = vec![f32::NAN; cols * ld];
        for i in 0..rows {
            for j in 0..cols {
                s[j * ld + i] = vals[i * cols + j];
            }
        }
        (s, 1, ld)
    }
}

fn round_bf16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect()
}

fn run_case(isa: Isa, kind: Kind, c: &Case) {
    let (m, k, n) = (c.m, c.k, c.n);
    let a = rand_vec(m * k, c.seed);
    let b = rand_vec(k * n, c.seed ^ 1);
    let c0 = rand_vec(m * n, c.seed ^ 2);
    let bias = rand_vec(n, c.seed ^ 3);
    let epi = match c.epi {
        0 => Epilogue::None,
        1 => Epilogue::Bias(&bias),
        2 => Epilogue::Gelu,
        _ => Epilogue::BiasGelu(&bias),
    };
    let (a_ref, b_ref) = match kind {
        Kind::F32 => (a.clone(), b.clone()),
        Kind::Bf16 | Kind::F32Bf16 => (round_bf16(&a), round_bf16(&b)),
    };
    let (as_, ars, acs) = layout(&a, m, k, c.ta, c.pad);
    let (bs, brs, bcs) = layout(&b, k, n, c.tb, c.pad);
    let (mut cs, crs, ccs) = layout(&c0, m, n, c.c_trans, c.pad);
    let par = if c.threads > 1 {
        Par::Threads(c.threads)
    } else {
        Par::Seq
    };
    let cm = MatMut::new(&mut cs, m, n, crs, ccs).unwrap();
    match kind {
        Kind::F32 => {
            let am = MatRef::new(&as_, m, k, ars, acs).unwrap();
            let bm = MatRef::new(&bs, k, n, brs, bcs).unwrap();
            gemm_f32_with(isa, c.alpha, am, bm, c.beta, cm, epi, par).unwrap();
        }
        Kind::Bf16 => {
            let ab: Vec<bf16> = as_.iter().map(|&x| bf16::from_f32(x)).collect();
            let bb: Vec<bf16> = bs.iter().map(|&x| bf16::from_f32(x)).collect();
            let am = MatRef::new(&ab, m, k, ars, acs).unwrap();
            let bm = MatRef::new(&bb, k, n, brs, bcs).unwrap();
            gemm_bf16_with(isa, c.alpha, am, bm, c.beta, cm, epi, par).unwrap();
        }
        Kind::F32Bf16 => {
            let bb: Vec<bf16> = bs.iter().map(|&x| bf16::from_f32(x)).collect();
            let am = MatRef::new(&as_, m, k, ars, acs).unwrap();
            let bm = MatRef::new(&bb, k, n, brs, bcs).unwrap();
            gemm_f32_bf16_with(isa, c.alpha, am, bm, c.beta, cm, epi, par).unwrap();
        }
    }
    let want = reference::gemm(
        m,
        k,
        n,
        c.alpha as f64,
        |i, p| a_ref[i * k + p] as f64,
        |p, j| b_ref[p * n + j] as f64,
        c.beta as f64,
        |i, j| c0[i * n + j] as f64,
        epi_bias(&epi),
        matches!(epi, Epilogue::Gelu | Epilogue::BiasGelu(_)),
    );
    let scale: Vec<f64> = (0..m * n)
        .map(|idx| {
            let (i, j) = (idx / n, idx % n);
            let s: f64 = (0..k)
                .map(|p| (a_ref[i * k + p] as f64 * b_ref[p * n + j] as f64).abs())
                .sum();
            c.alpha.abs() as f64 * s
                + (c.beta as f64 * c0[idx] as f64).abs()
                + epi_bias(&epi).map_or(0.0, |b| b[j].abs() as f64)
        })
        .collect();
    let got: Vec<f32> = (0..m * n)
        .map(|idx| cs[(idx / n) * crs + (idx % n) * ccs])
        .collect();
    let rel = 2e-6 * (k as f64).sqrt().max(1.0);
    assert_close(
        &format!("{kind:?} {} {c:?}", isa.name()),
        &got,
        &want,
        &scale,
        rel,
        1e-6,
    );
    // The padding of C (NaN) is untouched.
    let touched: usize = (0..m * n)
        .filter(|idx| cs[(idx / n) * crs + (idx % n) * ccs].is_nan())
        .count();
    let nan_total = cs.iter().filter(|v| v.is_nan()).count();
    assert_eq!(
        nan_total - touched,
        cs.len() - m * n,
        "GEMM wrote outside C"
    );
}

fn epi_bias<'a>(e: &Epilogue<'a>) -> Option<&'a [f32]> {
    match *e {
        Epilogue::Bias(b) | Epilogue::BiasGelu(b) => Some(b),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn gemm_f32_matches_reference(c in case()) {
        for isa in isas() {
            run_case(isa, Kind::F32, &c);
        }
    }

    #[test]
    fn gemm_bf16_matches_reference(c in case()) {
        for isa in isas() {
            run_case(isa, Kind::Bf16, &c);
        }
    }

    #[test]
    fn gemm_f32_bf16_matches_reference(c in case()) {
        for isa in isas() {
            run_case(isa, Kind::F32Bf16, &c);
        }
    }
}

fn fixed(m: usize, k: usize, n: usize, ta: bool, tb: bool, threads: usize) -> Case {
    Case {
        m,
        k,
        n,
        ta,
        tb,
        pad: 1,
        c_trans: false,
        alpha: 0.5,
        beta: 0.25,
        epi: 3,
        threads,
        seed: (m * 31 + k * 7 + n) as u64,
    }
}

#[test]
fn large_and_awkward_shapes() {
    // 1023 and multi-block depths (beyond every KC) and widths (beyond every NC).
    let shapes = [
        (1023, 33, 7),
        (7, 1023, 33),
        (33, 7, 1023),
        (65, 1100, 40),
        (37, 70, 1600),
        (100, 800, 300),
    ];
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        for isa in isas() {
            for kind in [Kind::F32, Kind::Bf16, Kind::F32Bf16] {
                run_case(
                    isa,
                    kind,
                    &fixed(m, k, n, i % 2 == 0, i % 3 == 0, 1 + i % 2),
                );
            }
        }
    }
}

#[test]
fn bf16_a_aligned_to_the_amx_tile() {
    // Row-major bf16 A with rows and depth multiples of 32 and an even row stride is read in
    // place by the AMX kernel (no copy); an odd stride or a ragged edge takes the copy.
    for (m, k, n, pad) in [
        (64, 96, 40, 0),
        (64, 96, 40, 2),
        (64, 96, 40, 1),
        (128, 384, 384, 0),
        (96, 800, 70, 0),
        (97, 64, 33, 0),
    ] {
        for isa in isas() {
            for threads in [1, 2] {
                let case = Case {
                    pad,
                    ..fixed(m, k, n, false, false, threads)
                };
                run_case(isa, Kind::Bf16, &case);
            }
        }
    }
}

#[test]
fn large_transposed_a_in_parallel() {
    // A stored transposed and large enough (m * k >= 65536) for the parallel, blocked
    // conversion of the AMX path; a B split by columns (few rows of A) and by rows.
    for (m, k, n) in [(300, 400, 96), (40, 2000, 300)] {
        for isa in isas() {
            for kind in [Kind::F32, Kind::Bf16, Kind::F32Bf16] {
                for tb in [false, true] {
                    run_case(isa, kind, &fixed(m, k, n, true, tb, 2));
                }
            }
        }
    }
}

#[test]
fn nan_and_inf_propagate_like_the_reference() {
    for isa in isas() {
        let (m, k, n) = (13, 40, 35);
        let mut a = rand_vec(m * k, 9);
        let b = rand_vec(k * n, 10);
        a[3 * k + 5] = f32::NAN; // row 3 of C becomes NaN
        a[7 * k + 1] = f32::INFINITY; // row 7 becomes +-inf or NaN
                                      // beta = 0: NaN in C is not read.
        let mut c = vec![f32::NAN; m * n];
        let am = MatRef::row_major(&a, m, k).unwrap();
        let bm = MatRef::row_major(&b, k, n).unwrap();
        gemm_f32_with(
            isa,
            1.0,
            am,
            bm,
            0.0,
            MatMut::row_major(&mut c, m, n).unwrap(),
            Epilogue::None,
            Par::Seq,
        )
        .unwrap();
        for i in 0..m {
            for j in 0..n {
                let v = c[i * n + j];
                match i {
                    3 => assert!(v.is_nan(), "{}: row 3 must be NaN", isa.name()),
                    7 => assert!(v.is_infinite() || v.is_nan(), "{}", isa.name()),
                    _ => assert!(v.is_finite(), "{}: ({i},{j}) = {v}", isa.name()),
                }
            }
        }
        let want_inf: Vec<f64> = reference::gemm(
            m,
            k,
            n,
            1.0,
            |i, p| a[i * k + p] as f64,
            |p, j| b[p * n + j] as f64,
            0.0,
            |_, _| 0.0,
            None,
            false,
        );
        for j in 0..n {
            let (g, w) = (c[7 * n + j] as f64, want_inf[7 * n + j]);
            assert!(
                g == w || (g.is_nan() && w.is_nan()),
                "{}: inf row col {j}: {g} vs {w}",
                isa.name()
            );
        }
    }
}

#[test]
fn shape_errors_are_reported() {
    let a = vec![0.0f32; 6];
    let b = vec![0.0f32; 6];
    let mut c = vec![0.0f32; 4];
    let am = MatRef::row_major(&a, 2, 3).unwrap();
    let bm = MatRef::row_major(&b, 2, 3).unwrap();
    let err = gemm_f32_with(
        Isa::Scalar,
        1.0,
        am,
        bm,
        0.0,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        Epilogue::None,
        Par::Seq,
    )
    .unwrap_err();
    assert!(matches!(err, KernelError::Shape { .. }), "{err}");
    assert!(err.to_string().contains("rows of B"), "{err}");
    let bias = [0.0f32; 5];
    let bm = MatRef::row_major(&b, 3, 2).unwrap();
    let err = gemm_f32_with(
        Isa::Scalar,
        1.0,
        am,
        bm,
        0.0,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        Epilogue::Bias(&bias),
        Par::Seq,
    )
    .unwrap_err();
    assert!(err.to_string().contains("bias"), "{err}");
    assert!(matches!(
        MatRef::row_major(&a, 3, 3),
        Err(KernelError::OutOfBounds { .. })
    ));
    assert!(matches!(
        MatMut::new(&mut c, 2, 2, 1, 1),
        Err(KernelError::Aliasing { .. })
    ));
    assert!(matches!(
        MatRef::new(&a, usize::MAX, 2, usize::MAX, 1),
        Err(KernelError::Overflow(_))
    ));
}

#[test]
fn empty_shapes() {
    for isa in isas() {
        // k = 0: C = beta * C, then the epilogue.
        let mut c = vec![2.0f32; 6];
        let bias = [1.0f32, 2.0, 3.0];
        gemm_f32_with(
            isa,
            1.0,
            MatRef::row_major(&[], 2, 0).unwrap(),
            MatRef::row_major(&[], 0, 3).unwrap(),
            0.5,
            MatMut::row_major(&mut c, 2, 3).unwrap(),
            Epilogue::Bias(&bias),
            Par::Seq,
        )
        .unwrap();
        assert_eq!(c, vec![2.0, 3.0, 4.0, 2.0, 3.0, 4.0]);
        // m = 0 and n = 0 do nothing.
        gemm_f32_with(
            isa,
            1.0,
            MatRef::row_major(&[], 0, 4).unwrap(),
            MatRef::row_major(&[0.0; 8], 4, 2).unwrap(),
            0.0,
            MatMut::row_major(&mut [], 0, 2).unwrap(),
            Epilogue::None,
            Par::Threads(2),
        )
        .unwrap();
    }
}
