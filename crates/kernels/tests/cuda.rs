//! The GPU kernels (feature `cuda`) against the f64 references and the CPU kernels.
//!
//! Every test first asks [`cuda::available`]; without a usable GPU it prints
//! `skipping: <reason>` and passes. With one, it compares:
//! - f32 GEMM: `1e-4` of `|alpha| sum |a||b| + |beta c|` per element (and exactness on an
//!   identity product, which TF32 would break);
//! - bf16 GEMM: against a reference on the bf16-rounded inputs, `1e-3` of the same scale;
//! - f32 -> bf16: bit-identical to `half::bf16::from_f32`;
//! - softmax `1e-5 * p + 1e-7`, LayerNorm `1e-5 * (|y| + 1)`, GELU `1e-6` relative (floor 1e-37),
//!   L2 `2e-6 * |y| + 1e-7`;
//! - top-k of given scores: identical to `multiret_kernels::cosine::top_k` (indices and score
//!   bits); cosine top-k: the CPU's indices except where two candidates' scores are within 1e-5.
#![cfg(feature = "cuda")]

mod common;

use common::{assert_close, rand_vec};
use half::bf16;
use multiret_kernels::cosine::{cosine_top_k, top_k};
use multiret_kernels::cuda::{self, CudaError, CudaSlice, Gpu, SoftmaxMask, MAX_GPU_K};
use multiret_kernels::{reference, MatRef, Par};

/// The GPU, or `None` after printing why there is none. A GPU that is there but cannot be
/// opened (kernels that do not compile, say) fails the test.
fn gpu() -> Option<Gpu> {
    if let Err(reason) = cuda::available() {
        println!("skipping: {reason}");
        return None;
    }
    match Gpu::new(0) {
        Ok(g) => {
            println!("{}", g.describe());
            Some(g)
        }
        Err(e) => panic!("CUDA is available but Gpu::new failed: {e}"),
    }
}

#[test]
fn without_cuda_everything_is_an_error_not_a_panic() {
    match cuda::available() {
        Ok(()) => println!("skipping: CUDA is available here (this test is for machines without)"),
        Err(reason) => {
            println!("CUDA unavailable: {reason}");
            assert!(!reason.is_empty());
            // Missing libraries give `Unavailable` with the same reason; a driver without a
            // usable device gives a driver error. Either way an error, not a panic.
            match Gpu::new(0) {
                Err(CudaError::Unavailable(r)) => assert_eq!(r, reason),
                Err(e) => println!("Gpu::new: {e}"),
                Ok(_) => panic!("Gpu::new succeeded although available() failed"),
            }
        }
    }
}

/// Row-major `rows x cols` matrix with row stride `ld`, random, padding included.
fn matrix(rows: usize, cols: usize, ld: usize, seed: u64) -> Vec<f32> {
    let _ = cols;
    rand_vec(rows.max(1) * ld, seed)
}

fn at(v: &[f32], ld: usize, i: usize, j: usize) -> f64 {
    v[i * ld + j] as f64
}

/// Checks the `m x n` block of `got` (stride `ldc`) against `alpha op(A) op(B) + beta C0` and
/// that the padding of `got` still holds `c0`.
#[allow(clippy::too_many_arguments)]
fn check_gemm(
    what: &str,
    (m, n, k): (usize, usize, usize),
    (ta, tb): (bool, bool),
    alpha: f32,
    (a, lda): (&[f32], usize),
    (b, ldb): (&[f32], usize),
    beta: f32,
    (c0, ldc): (&[f32], usize),
    got: &[f32],
    rel: f64,
) {
    let ae = |i: usize, p: usize| {
        if ta {
            at(a, lda, p, i)
        } else {
            at(a, lda, i, p)
        }
    };
    let be = |p: usize, j: usize| {
        if tb {
            at(b, ldb, j, p)
        } else {
            at(b, ldb, p, j)
        }
    };
    let want = reference::gemm(
        m,
        k,
        n,
        alpha as f64,
        ae,
        be,
        beta as f64,
        |i, j| at(c0, ldc, i, j),
        None,
        false,
    );
    let mut scale = Vec::with_capacity(m * n);
    let mut block = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|p| (ae(i, p) * be(p, j)).abs()).sum();
            let cterm = if beta == 0.0 {
                0.0
            } else {
                (beta as f64 * at(c0, ldc, i, j)).abs()
            };
            scale.push((alpha as f64).abs() * s + cterm + 1e-30);
            block.push(got[i * ldc + j]);
        }
        for j in n..ldc {
            if i * ldc + j < got.len() {
                assert_eq!(
                    got[i * ldc + j].to_bits(),
                    c0[i * ldc + j].to_bits(),
                    "{what}: padding C[{i}][{j}] changed"
                );
            }
        }
    }
    assert_close(what, &block, &want, &scale, rel, 0.0);
}

const GEMM_SHAPES: [(usize, usize, usize); 8] = [
    (1, 1, 1),
    (7, 33, 1023),
    (1023, 7, 33),
    (33, 1023, 7),
    (33, 7, 1),
    (1, 1023, 33),
    (64, 64, 64),
    (130, 67, 257),
];

#[test]
fn gemm_f32_matches_reference() {
    let Some(gpu) = gpu() else { return };
    let mut seed = 1u64;
    for &(m, n, k) in &GEMM_SHAPES {
        for ta in [false, true] {
            for tb in [false, true] {
                for (alpha, beta) in [(1.0f32, 0.0f32), (0.75, -0.5)] {
                    seed += 3;
                    let (ar, ac) = if ta { (k, m) } else { (m, k) };
                    let (br, bc) = if tb { (n, k) } else { (k, n) };
                    let (lda, ldb, ldc) = (ac + 3, bc + 1, n + 2);
                    let a = matrix(ar, ac, lda, seed);
                    let b = matrix(br, bc, ldb, seed + 1);
                    let mut c0 = matrix(m, n, ldc, seed + 2);
                    if beta == 0.0 {
                        // C must not be read when beta == 0: NaN must not leak into the result.
                        for i in 0..m {
                            for j in 0..n {
                                c0[i * ldc + j] = f32::NAN;
                            }
                        }
                    }
                    let da = gpu.upload(&a).unwrap();
                    let db = gpu.upload(&b).unwrap();
                    let mut dc = gpu.upload(&c0).unwrap();
                    gpu.gemm_f32(
                        ta, tb, m, n, k, alpha, &da, lda, &db, ldb, beta, &mut dc, ldc,
                    )
                    .unwrap();
                    let got = gpu.download(&dc).unwrap();
                    check_gemm(
                        &format!("gemm_f32 {m}x{n}x{k} ta={ta} tb={tb} beta={beta}"),
                        (m, n, k),
                        (ta, tb),
                        alpha,
                        (&a, lda),
                        (&b, ldb),
                        beta,
                        (&c0, ldc),
                        &got,
                        1e-4,
                    );
                }
            }
        }
    }
}

#[test]
fn gemm_f32_is_true_f32_not_tf32() {
    let Some(gpu) = gpu() else { return };
    // A * I = A exactly in f32 (products by 1 and 0, sums with zeros); TF32 would round A to
    // 10 mantissa bits (errors around 1e-3).
    let n = 128;
    let a = rand_vec(n * n, 77);
    let mut eye = vec![0.0f32; n * n];
    for i in 0..n {
        eye[i * n + i] = 1.0;
    }
    let da = gpu.upload(&a).unwrap();
    let db = gpu.upload(&eye).unwrap();
    let mut dc: CudaSlice<f32> = gpu.alloc_zeros(n * n).unwrap();
    gpu.gemm_f32(false, false, n, n, n, 1.0, &da, n, &db, n, 0.0, &mut dc, n)
        .unwrap();
    let got = gpu.download(&dc).unwrap();
    for (i, (g, w)) in got.iter().zip(&a).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "A*I [{i}]: got {g}, want {w} (TF32 on?)"
        );
    }
}

#[test]
fn gemm_f32_strided_batched_attention_layout() {
    let Some(gpu) = gpu() else { return };
    let (len, heads, d) = (33usize, 4usize, 8usize);
    let hidden = heads * d;
    let qkv = rand_vec(len * 3 * hidden, 5);
    let dqkv = gpu.upload(&qkv).unwrap();
    // S_h = Q_h K_h^T for every head in one call.
    let mut ds: CudaSlice<f32> = gpu.alloc_zeros(heads * len * len).unwrap();
    let kview = dqkv.slice(hidden..);
    gpu.gemm_f32_strided_batched(
        false,
        true,
        len,
        len,
        d,
        0.5,
        &dqkv,
        3 * hidden,
        d,
        &kview,
        3 * hidden,
        d,
        0.0,
        &mut ds,
        len,
        len * len,
        heads,
    )
    .unwrap();
    let s = gpu.download(&ds).unwrap();
    for h in 0..heads {
        let q = |i: usize, p: usize| qkv[i * 3 * hidden + h * d + p] as f64;
        let k = |p: usize, j: usize| qkv[j * 3 * hidden + hidden + h * d + p] as f64;
        let want = reference::gemm(len, d, len, 0.5, q, k, 0.0, |_, _| 0.0, None, false);
        let scale: Vec<f64> = (0..len * len)
            .map(|ij| {
                let (i, j) = (ij / len, ij % len);
                0.5 * (0..d).map(|p| (q(i, p) * k(p, j)).abs()).sum::<f64>() + 1e-30
            })
            .collect();
        assert_close(
            &format!("scores head {h}"),
            &s[h * len * len..(h + 1) * len * len],
            &want,
            &scale,
            1e-4,
            0.0,
        );
    }
    // O_h = S_h V_h, written into the [len, hidden] output at column h * d.
    let mut dout: CudaSlice<f32> = gpu.alloc_zeros(len * hidden).unwrap();
    let vview = dqkv.slice(2 * hidden..);
    gpu.gemm_f32_strided_batched(
        false,
        false,
        len,
        d,
        len,
        1.0,
        &ds,
        len,
        len * len,
        &vview,
        3 * hidden,
        d,
        0.0,
        &mut dout,
        hidden,
        d,
        heads,
    )
    .unwrap();
    let out = gpu.download(&dout).unwrap();
    for h in 0..heads {
        let p = |i: usize, t: usize| s[h * len * len + i * len + t] as f64;
        let v = |t: usize, j: usize| qkv[t * 3 * hidden + 2 * hidden + h * d + j] as f64;
        let want = reference::gemm(len, len, d, 1.0, p, v, 0.0, |_, _| 0.0, None, false);
        let got: Vec<f32> = (0..len * d)
            .map(|ij| out[(ij / d) * hidden + h * d + ij % d])
            .collect();
        let scale: Vec<f64> = (0..len * d)
            .map(|ij| {
                let (i, j) = (ij / d, ij % d);
                (0..len).map(|t| (p(i, t) * v(t, j)).abs()).sum::<f64>() + 1e-30
            })
            .collect();
        assert_close(&format!("P*V head {h}"), &got, &want, &scale, 1e-4, 0.0);
    }
}

fn bf16_round(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect()
}

#[test]
fn gemm_bf16_matches_reference_on_rounded_inputs() {
    let Some(gpu) = gpu() else { return };
    let mut seed = 1000u64;
    for &(m, n, k) in &GEMM_SHAPES {
        for ta in [false, true] {
            for tb in [false, true] {
                seed += 3;
                let (alpha, beta) = (1.25f32, 0.5f32);
                let (ar, ac) = if ta { (k, m) } else { (m, k) };
                let (br, bc) = if tb { (n, k) } else { (k, n) };
                let (lda, ldb, ldc) = (ac + 2, bc, n + 1);
                let a = bf16_round(&matrix(ar, ac, lda, seed));
                let b = bf16_round(&matrix(br, bc, ldb, seed + 1));
                let c0 = matrix(m, n, ldc, seed + 2);
                // A through the host conversion, B through the device kernel.
                let a16: Vec<bf16> = a.iter().map(|&x| bf16::from_f32(x)).collect();
                let da = gpu.upload_bf16(&a16).unwrap();
                let db32 = gpu.upload(&b).unwrap();
                let mut db: CudaSlice<u16> = gpu.alloc_zeros(b.len()).unwrap();
                gpu.f32_to_bf16(&db32, &mut db, b.len()).unwrap();
                let mut dc = gpu.upload(&c0).unwrap();
                gpu.gemm_bf16(
                    ta, tb, m, n, k, alpha, &da, lda, &db, ldb, beta, &mut dc, ldc,
                )
                .unwrap();
                let got = gpu.download(&dc).unwrap();
                check_gemm(
                    &format!("gemm_bf16 {m}x{n}x{k} ta={ta} tb={tb}"),
                    (m, n, k),
                    (ta, tb),
                    alpha,
                    (&a, lda),
                    (&b, ldb),
                    beta,
                    (&c0, ldc),
                    &got,
                    1e-3,
                );
            }
        }
    }
    // Strided batched: 3 independent 17x9x40 products.
    let (m, n, k, batch) = (17usize, 9usize, 40usize, 3usize);
    let a = bf16_round(&rand_vec(batch * m * k, 31));
    let b = bf16_round(&rand_vec(batch * k * n, 32));
    let a16: Vec<bf16> = a.iter().map(|&x| bf16::from_f32(x)).collect();
    let b16: Vec<bf16> = b.iter().map(|&x| bf16::from_f32(x)).collect();
    let (da, db) = (
        gpu.upload_bf16(&a16).unwrap(),
        gpu.upload_bf16(&b16).unwrap(),
    );
    let mut dc: CudaSlice<f32> = gpu.alloc_zeros(batch * m * n).unwrap();
    gpu.gemm_bf16_strided_batched(
        false,
        false,
        m,
        n,
        k,
        1.0,
        &da,
        k,
        m * k,
        &db,
        n,
        k * n,
        0.0,
        &mut dc,
        n,
        m * n,
        batch,
    )
    .unwrap();
    let got = gpu.download(&dc).unwrap();
    for t in 0..batch {
        let (ao, bo) = (&a[t * m * k..], &b[t * k * n..]);
        let c0 = vec![0.0f32; m * n];
        check_gemm(
            &format!("gemm_bf16_strided_batched [{t}]"),
            (m, n, k),
            (false, false),
            1.0,
            (ao, k),
            (bo, n),
            0.0,
            (&c0, n),
            &got[t * m * n..(t + 1) * m * n],
            1e-3,
        );
    }
}

#[test]
fn bf16_conversions_match_half() {
    let Some(gpu) = gpu() else { return };
    let mut x = vec![
        0.0f32,
        -0.0,
        1.0,
        -1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7fc0_0001),
        f32::from_bits(0x7f80_0001), // signalling NaN
        f32::MAX,
        -f32::MAX,
        f32::MIN_POSITIVE,
        f32::from_bits(1),           // smallest subnormal
        f32::from_bits(0x3f80_8000), // 1 + 2^-8: a tie, to even (down)
        f32::from_bits(0x3f81_8000), // a tie, to even (up)
        f32::from_bits(0x3f80_8001), // just above a tie
        f32::from_bits(0x7f7f_8000), // rounds to +inf
        65504.0,
        1e-40,
    ];
    x.extend(rand_vec(10_007, 9).iter().map(|v| v * 1e3));
    let dx = gpu.upload(&x).unwrap();
    let mut dh: CudaSlice<u16> = gpu.alloc_zeros(x.len()).unwrap();
    gpu.f32_to_bf16(&dx, &mut dh, x.len()).unwrap();
    let got = gpu.download(&dh).unwrap();
    for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
        let want = bf16::from_f32(v).to_bits();
        assert_eq!(g, want, "f32_to_bf16[{i}] of {v:e} ({:#010x})", v.to_bits());
    }
    let mut back: CudaSlice<f32> = gpu.alloc_zeros(x.len()).unwrap();
    gpu.bf16_to_f32(&dh, &mut back, x.len()).unwrap();
    let back = gpu.download(&back).unwrap();
    for (i, (&b, &h)) in back.iter().zip(&got).enumerate() {
        assert_eq!(
            b.to_bits(),
            bf16::from_bits(h).to_f32().to_bits(),
            "bf16_to_f32[{i}]"
        );
    }
    assert_eq!(gpu.download_bf16(&dh).unwrap().len(), x.len());
}

const COLS: [usize; 7] = [1, 7, 33, 768, 1023, 4096, 5000];

#[test]
fn softmax_matches_reference() {
    let Some(gpu) = gpu() else { return };
    for &cols in &COLS {
        for scale in [0.5f32, 1.7] {
            for masked in [false, true] {
                let rows = 3;
                let x: Vec<f32> = rand_vec(rows * cols, cols as u64)
                    .iter()
                    .map(|v| v * 8.0)
                    .collect();
                let mask: Vec<f32> = (0..cols)
                    .map(|j| {
                        if j % 3 == 1 {
                            f32::NEG_INFINITY
                        } else if j % 5 == 2 {
                            -10000.0
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let mask_h = if masked { Some(&mask[..]) } else { None };
                let want = reference::softmax(&x, cols, scale, mask_h, false);
                let mut dx = gpu.upload(&x).unwrap();
                let dm = gpu.upload(&mask).unwrap();
                let m = masked.then(|| SoftmaxMask {
                    values: dm.as_view(),
                    rows_per_mask_row: rows,
                });
                gpu.softmax_rows(&mut dx, rows, cols, scale, m).unwrap();
                let got = gpu.download(&dx).unwrap();
                assert_close(
                    &format!("softmax cols={cols} scale={scale} masked={masked}"),
                    &got,
                    &want,
                    &want,
                    1e-5,
                    1e-7,
                );
            }
        }
    }
}

#[test]
fn softmax_per_sequence_masks_and_special_values() {
    let Some(gpu) = gpu() else { return };
    // [2 sequences][3 heads][4 queries] rows of 9 keys; one mask row per sequence.
    let (seqs, heads, queries, cols) = (2usize, 3usize, 4usize, 9usize);
    let rows = seqs * heads * queries;
    let mut x: Vec<f32> = rand_vec(rows * cols, 3).iter().map(|v| v * 4.0).collect();
    let ninf = f32::NEG_INFINITY;
    let mut mask = vec![0.0f32; seqs * cols];
    mask[cols - 2] = ninf; // sequence 0: the last two keys are padding
    mask[cols - 1] = ninf;
    for j in 0..3 {
        mask[cols + j] = ninf; // sequence 1: the first three keys, and one soft-masked key
    }
    mask[cols + 5] = -10000.0;
    // Special rows (sequence 0, head 0): a NaN, a +inf, some -inf, all -inf.
    x[4] = f32::NAN;
    x[cols + 3] = f32::INFINITY;
    x[2 * cols] = ninf;
    x[2 * cols + 5] = ninf;
    for j in 0..cols {
        x[3 * cols + j] = ninf;
    }
    let mut dx = gpu.upload(&x).unwrap();
    let dm = gpu.upload(&mask).unwrap();
    gpu.softmax_rows(
        &mut dx,
        rows,
        cols,
        1.0,
        Some(SoftmaxMask {
            values: dm.as_view(),
            rows_per_mask_row: heads * queries,
        }),
    )
    .unwrap();
    let got = gpu.download(&dx).unwrap();
    let mut want = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let s = r / (heads * queries);
        want.extend(reference::softmax(
            &x[r * cols..(r + 1) * cols],
            cols,
            1.0,
            Some(&mask[s * cols..(s + 1) * cols]),
            false,
        ));
    }
    assert_close("softmax per-sequence mask", &got, &want, &want, 1e-5, 1e-7);
    assert!(
        got[..cols].iter().all(|v| v.is_nan()),
        "a NaN makes its row NaN"
    );
    assert!(
        got[cols..2 * cols].iter().all(|v| v.is_nan()),
        "+inf makes its row NaN"
    );
    assert!(
        got[3 * cols..4 * cols].iter().all(|&v| v == 0.0),
        "all -inf: zeros"
    );

    // A fully masked row keeps its NaN entries and zeroes the rest; no mask at all too.
    let cols = 5;
    let x = vec![ninf, f32::NAN, ninf, ninf, 1.0, 2.0, 1.0, ninf, 0.5, 0.25];
    let mask = vec![0.0, 0.0, 0.0, 0.0, ninf];
    let want = reference::softmax(&x, cols, 2.0, Some(&mask), false);
    let mut dx = gpu.upload(&x).unwrap();
    let dm = gpu.upload(&mask).unwrap();
    gpu.softmax_rows(
        &mut dx,
        2,
        cols,
        2.0,
        Some(SoftmaxMask {
            values: dm.as_view(),
            rows_per_mask_row: 2,
        }),
    )
    .unwrap();
    let got = gpu.download(&dx).unwrap();
    assert_close("softmax fully masked", &got, &want, &want, 1e-5, 1e-7);
    assert!(got[1].is_nan() && got[0] == 0.0 && got[4] == 0.0);
}

#[test]
fn layer_norm_matches_reference() {
    let Some(gpu) = gpu() else { return };
    for &cols in &COLS {
        for residual in [false, true] {
            for eps in [1e-12f32, 1e-5] {
                let rows = 3;
                let seed = cols as u64 * 7;
                let x: Vec<f32> = rand_vec(rows * cols, seed)
                    .iter()
                    .map(|v| v * 5.0 + 1.0)
                    .collect();
                let r = rand_vec(rows * cols, seed ^ 7);
                let g = rand_vec(cols, seed ^ 8);
                let b = rand_vec(cols, seed ^ 9);
                let res = if residual { Some(&r[..]) } else { None };
                let want = reference::layer_norm(&x, res, &g, &b, eps);
                let scale: Vec<f64> = want.iter().map(|w| w.abs() + 1.0).collect();
                let mut dx = gpu.upload(&x).unwrap();
                let dr = gpu.upload(&r).unwrap();
                let (dg, db) = (gpu.upload(&g).unwrap(), gpu.upload(&b).unwrap());
                let rv = dr.as_view();
                gpu.layer_norm_rows(
                    &mut dx,
                    if residual { Some(&rv) } else { None },
                    &dg,
                    &db,
                    rows,
                    cols,
                    eps,
                )
                .unwrap();
                let got = gpu.download(&dx).unwrap();
                assert_close(
                    &format!("layer_norm cols={cols} residual={residual} eps={eps}"),
                    &got,
                    &want,
                    &scale,
                    1e-5,
                    0.0,
                );
            }
        }
    }
}

#[test]
fn bias_gelu_matches_reference() {
    let Some(gpu) = gpu() else { return };
    for &cols in &[1usize, 7, 33, 1023, 3072] {
        let rows = 3;
        let mut x: Vec<f32> = rand_vec(rows * cols, cols as u64 + 11)
            .iter()
            .map(|v| v * 6.0)
            .collect();
        let specials = [
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            -40.0,
            40.0,
            0.0,
            -0.0,
            1e-40,
            -3.0,
            -13.0,
            -9.5,
        ];
        for (i, &s) in specials.iter().enumerate() {
            if i < x.len() {
                x[i] = s;
            }
        }
        let bias = rand_vec(cols, 99);
        for (with_bias, gelu) in [(true, true), (false, true), (true, false)] {
            let v: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(i, &t)| if with_bias { t + bias[i % cols] } else { t })
                .collect();
            let want: Vec<f64> = v
                .iter()
                .map(|&t| {
                    if gelu {
                        reference::gelu(t as f64)
                    } else {
                        t as f64
                    }
                })
                .collect();
            let scale: Vec<f64> = want.iter().map(|w| w.abs()).collect();
            let mut dx = gpu.upload(&x).unwrap();
            let dbias = gpu.upload(&bias).unwrap();
            let bv = dbias.as_view();
            gpu.bias_gelu(
                &mut dx,
                if with_bias { Some(&bv) } else { None },
                rows,
                cols,
                gelu,
            )
            .unwrap();
            let got = gpu.download(&dx).unwrap();
            let what = format!("bias_gelu cols={cols} bias={with_bias} gelu={gelu}");
            if gelu {
                assert_close(&what, &got, &want, &scale, 1e-6, 1e-37);
                if x[0] == f32::NEG_INFINITY && !with_bias {
                    assert!(
                        got[0] == 0.0 && got[0].is_sign_negative(),
                        "gelu(-inf) = -0"
                    );
                }
            } else {
                for (i, (g, w)) in got.iter().zip(&v).enumerate() {
                    assert!(
                        g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                        "{what}[{i}]: got {g}, want {w}"
                    );
                }
            }
        }
    }
}

#[test]
fn l2_normalize_matches_reference() {
    let Some(gpu) = gpu() else { return };
    for &cols in &COLS {
        let rows = 4;
        let mut x = rand_vec(rows * cols, cols as u64 + 5);
        for v in &mut x[cols..2 * cols] {
            *v = 0.0; // a zero row stays zero
        }
        let want = reference::l2_normalize(&x, cols);
        let scale: Vec<f64> = want.iter().map(|w| w.abs()).collect();
        let mut dx = gpu.upload(&x).unwrap();
        gpu.l2_normalize_rows(&mut dx, rows, cols).unwrap();
        let got = gpu.download(&dx).unwrap();
        assert_close(&format!("l2 cols={cols}"), &got, &want, &scale, 2e-6, 1e-7);
        assert!(got[cols..2 * cols].iter().all(|&v| v == 0.0));
    }
}

/// Scores with many exact ties (multiples of 1/8), NaN, infinities and both zeros.
fn tie_scores(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut s: Vec<f32> = rand_vec(rows * cols, seed)
        .iter()
        .map(|v| (v * 16.0).round() / 8.0)
        .collect();
    for (i, v) in s.iter_mut().enumerate() {
        match (i * 7919) % 97 {
            0 => *v = f32::NAN,
            1 => *v = f32::NEG_INFINITY,
            2 => *v = f32::INFINITY,
            3 => *v = -0.0,
            4 => *v = 0.0,
            _ => {}
        }
    }
    s
}

fn same_hits(
    what: &str,
    got: &[multiret_kernels::cosine::Hit],
    want: &[multiret_kernels::cosine::Hit],
) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (p, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g.index, w.index,
            "{what}: index at {p} (scores {} vs {})",
            g.score, w.score
        );
        assert!(
            g.score.to_bits() == w.score.to_bits() || (g.score.is_nan() && w.score.is_nan()),
            "{what}: score at {p}: {} vs {}",
            g.score,
            w.score
        );
    }
}

#[test]
fn top_k_rows_is_identical_to_the_cpu() {
    let Some(gpu) = gpu() else { return };
    for &cols in &[1usize, 7, 33, 1023, 5000] {
        let rows = 4;
        let s = tie_scores(rows, cols, cols as u64 + 1);
        let ds = gpu.upload(&s).unwrap();
        let mut ks = vec![1usize, 3, 10, 64, cols, cols + 5];
        if cols == 5000 {
            ks.extend([MAX_GPU_K, MAX_GPU_K + 1]); // the largest GPU k, and the host fallback
        }
        for k in ks {
            let got = gpu.top_k_rows(&ds, rows, cols, k).unwrap();
            assert_eq!(got.len(), rows);
            for r in 0..rows {
                let row = &s[r * cols..(r + 1) * cols];
                let what = format!("top_k cols={cols} k={k} row={r}");
                same_hits(&what, &got[r], &top_k(row, k));
                let idx: Vec<usize> = got[r].iter().map(|h| h.index).collect();
                assert_eq!(
                    idx,
                    reference::top_k(row, k),
                    "{what}: against the full sort"
                );
            }
        }
    }
    // k = 0 and an empty row set.
    let ds = gpu.upload(&[1.0f32, 2.0]).unwrap();
    assert_eq!(gpu.top_k_rows(&ds, 1, 2, 0).unwrap(), vec![Vec::new()]);
    assert!(gpu.top_k_rows(&ds, 0, 2, 3).unwrap().is_empty());
}

#[test]
fn cosine_top_k_matches_the_cpu() {
    let Some(gpu) = gpu() else { return };
    for &(nq, nc, dim, k) in &[
        (37usize, 1023usize, 48usize, 10usize),
        (5, 300, 384, 300),
        (9, 64, 1, 12), // dim 1: every score is exactly +-1, ties broken by index
        (3, 7, 5, 20),
    ] {
        let mut q = rand_vec(nq * dim, 71 + dim as u64);
        let mut c = rand_vec(nc * dim, 72 + dim as u64);
        for v in &mut c[dim..2 * dim] {
            *v = 0.0; // a zero candidate scores 0
        }
        if dim > 1 {
            // A duplicated candidate: an exact tie on both sides.
            let (head, tail) = c.split_at_mut(5 * dim);
            tail[..dim].copy_from_slice(&head[2 * dim..3 * dim]);
        }
        for v in &mut q[..dim] {
            *v *= 1e3; // normalisation matters
        }
        let cpu = cosine_top_k(
            MatRef::row_major(&q, nq, dim).unwrap(),
            MatRef::row_major(&c, nc, dim).unwrap(),
            k,
            Par::Seq,
        )
        .unwrap();
        let (dq, dc) = (gpu.upload(&q).unwrap(), gpu.upload(&c).unwrap());
        let got = gpu.cosine_top_k(&dq, &dc, nq, nc, dim, k).unwrap();
        assert_eq!(got.len(), nq);
        let exact = reference::l2_normalize(&q, dim);
        let cand = reference::l2_normalize(&c, dim);
        for i in 0..nq {
            let what = format!("cosine nq={nq} nc={nc} dim={dim} k={k} query={i}");
            assert_eq!(got[i].len(), cpu[i].len(), "{what}: length");
            let score = |j: usize| -> f64 {
                (0..dim)
                    .map(|t| exact[i * dim + t] * cand[j * dim + t])
                    .sum()
            };
            for (p, (g, w)) in got[i].iter().zip(&cpu[i]).enumerate() {
                assert!(
                    (g.score as f64 - score(g.index)).abs() <= 1e-5,
                    "{what}: GPU score {} of candidate {} vs exact {}",
                    g.score,
                    g.index,
                    score(g.index)
                );
                if g.index != w.index {
                    assert!(
                        (score(g.index) - score(w.index)).abs() <= 1e-5,
                        "{what}: position {p}: GPU {} ({}) vs CPU {} ({}), not a near-tie",
                        g.index,
                        score(g.index),
                        w.index,
                        score(w.index)
                    );
                }
            }
            if dim == 1 {
                same_hits(&what, &got[i], &cpu[i]);
            }
        }
    }
}

#[test]
fn bad_arguments_are_errors() {
    let Some(gpu) = gpu() else { return };
    let a = gpu.upload(&[1.0f32; 12]).unwrap();
    let mut c: CudaSlice<f32> = gpu.alloc_zeros(12).unwrap();
    let shape = |r: Result<(), CudaError>| match r {
        Err(CudaError::Shape { .. }) => {}
        other => panic!("expected a shape error, got {other:?}"),
    };
    // lda smaller than the stored row.
    shape(gpu.gemm_f32(false, false, 3, 4, 4, 1.0, &a, 3, &a, 4, 0.0, &mut c, 4));
    // C too short.
    shape(gpu.gemm_f32(false, false, 4, 4, 3, 1.0, &a, 3, &a, 4, 0.0, &mut c, 4));
    shape(gpu.softmax_rows(&mut c, 4, 4, 1.0, None));
    let m = gpu.upload(&[0.0f32; 4]).unwrap();
    shape(gpu.softmax_rows(
        &mut c,
        3,
        4,
        1.0,
        Some(SoftmaxMask {
            values: m.as_view(),
            rows_per_mask_row: 0,
        }),
    ));
    shape(gpu.softmax_rows(
        &mut c,
        3,
        4,
        1.0,
        Some(SoftmaxMask {
            values: m.as_view(),
            rows_per_mask_row: 1,
        }),
    ));
    shape(gpu.l2_normalize_rows(&mut c, 13, 1));
    let g = gpu.upload(&[1.0f32; 3]).unwrap();
    shape(gpu.layer_norm_rows(&mut c, None, &g, &g, 3, 4, 1e-5));
    let mut h: CudaSlice<u16> = gpu.alloc_zeros(4).unwrap();
    shape(gpu.f32_to_bf16(&a, &mut h, 12));
    assert!(matches!(
        gpu.top_k_rows(&a, 4, 4, 2),
        Err(CudaError::Shape { .. })
    ));
    assert!(matches!(
        gpu.download_prefix::<f32, _>(&a, 13),
        Err(CudaError::Shape { .. })
    ));
}
