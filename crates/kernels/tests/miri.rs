//! Small deterministic checks of the scalar paths, sized for Miri
//! (`cargo +nightly miri test -p multiret-kernels --test miri`): the packing, strided views,
//! edge tiles and the parallel split exercise the crate's unsafe code.

mod common;

use common::rand_vec;
use multiret_kernels::gemm::{gemm_bf16_with, gemm_f32_with, Epilogue};
use multiret_kernels::softmax::softmax_rows_with;
use multiret_kernels::{bf16, reference, Isa, MatMut, MatRef, Par};

#[test]
fn scalar_gemm_small_shapes() {
    for &(m, k, n) in &[(1, 1, 1), (5, 3, 7), (9, 6, 5)] {
        for (ta, tb) in [(false, false), (true, false), (false, true)] {
            let a = rand_vec(m * k, 1);
            let b = rand_vec(k * n, 2);
            let (am, bm) = (
                if ta {
                    MatRef::new(&a, m, k, 1, m).unwrap()
                } else {
                    MatRef::row_major(&a, m, k).unwrap()
                },
                if tb {
                    MatRef::new(&b, k, n, 1, k).unwrap()
                } else {
                    MatRef::row_major(&b, k, n).unwrap()
                },
            );
            let mut c = vec![0.5f32; m * (n + 1)];
            let bias = rand_vec(n, 3);
            let cm = MatMut::new(&mut c, m, n, n + 1, 1).unwrap();
            gemm_f32_with(
                Isa::Scalar,
                1.0,
                am,
                bm,
                2.0,
                cm,
                Epilogue::BiasGelu(&bias),
                Par::Threads(2),
            )
            .unwrap();
            let want = reference::gemm(
                m,
                k,
                n,
                1.0,
                |i, p| *am.get(i, p) as f64,
                |p, j| *bm.get(p, j) as f64,
                2.0,
                |_, _| 0.5,
                Some(&bias),
                true,
            );
            for i in 0..m {
                for j in 0..n {
                    assert!((c[i * (n + 1) + j] as f64 - want[i * n + j]).abs() < 1e-4);
                }
                assert_eq!(c[i * (n + 1) + n], 0.5, "padding column untouched");
            }
            let ab: Vec<bf16> = a.iter().map(|&x| bf16::from_f32(x)).collect();
            let bb: Vec<bf16> = b.iter().map(|&x| bf16::from_f32(x)).collect();
            let mut c2 = vec![0.0f32; m * n];
            gemm_bf16_with(
                Isa::Scalar,
                1.0,
                MatRef::row_major(&ab, m, k).unwrap(),
                MatRef::row_major(&bb, k, n).unwrap(),
                0.0,
                MatMut::row_major(&mut c2, m, n).unwrap(),
                Epilogue::None,
                Par::Seq,
            )
            .unwrap();
        }
    }
}

#[test]
fn scalar_rows() {
    let mut x = rand_vec(3 * 5, 4);
    softmax_rows_with(
        Isa::Scalar,
        &mut x,
        5,
        0.5,
        Some(&[0.0, f32::NEG_INFINITY, 0.0, 0.0, 0.0]),
    )
    .unwrap();
    for row in x.chunks(5) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6 && row[1] == 0.0);
    }
    // LayerNorm and L2 are left out: libm's sqrt is inline assembly on x86-64, which Miri
    // cannot run (and their scalar paths hold no unsafe code).
}

/// `v` (row-major `rows x cols`) stored transposed: row-major `cols x rows`.
#[cfg(target_arch = "aarch64")]
fn transposed(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; v.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = v[i * cols + j];
        }
    }
    t
}

/// The NEON microkernel (aarch64 only; under Miri with `--target aarch64-unknown-linux-gnu`
/// this checks it on an x86 machine): edge tiles, transposes, bias + GELU, against f64.
#[cfg(target_arch = "aarch64")]
#[test]
fn neon_gemm_small_shapes() {
    assert!(Isa::Neon.is_supported(), "aarch64 always has NEON");
    for &(m, k, n) in &[(1, 1, 1), (9, 6, 5), (17, 3, 19)] {
        for (ta, tb) in [(false, false), (true, true)] {
            let a = rand_vec(m * k, 4);
            let b = rand_vec(k * n, 5);
            let am = if ta { transposed(&a, m, k) } else { a.clone() };
            let bm = if tb { transposed(&b, k, n) } else { b.clone() };
            let av = if ta {
                MatRef::new(&am, m, k, 1, m).unwrap()
            } else {
                MatRef::row_major(&am, m, k).unwrap()
            };
            let bv = if tb {
                MatRef::new(&bm, k, n, 1, k).unwrap()
            } else {
                MatRef::row_major(&bm, k, n).unwrap()
            };
            let bias = rand_vec(n, 6);
            let mut c = vec![0.25f32; m * n];
            let cm = MatMut::row_major(&mut c, m, n).unwrap();
            gemm_f32_with(
                Isa::Neon,
                1.5,
                av,
                bv,
                0.5,
                cm,
                Epilogue::BiasGelu(&bias),
                Par::Seq,
            )
            .unwrap();
            let want = reference::gemm(
                m,
                k,
                n,
                1.5,
                |i, p| a[i * k + p] as f64,
                |p, j| b[p * n + j] as f64,
                0.5,
                |_, _| 0.25,
                Some(&bias),
                true,
            );
            for (idx, (&g, &w)) in c.iter().zip(&want).enumerate() {
                assert!(
                    (g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "neon {m}x{k}x{n} ta={ta} tb={tb} at {idx}: {g} vs {w}"
                );
            }
        }
    }
}
