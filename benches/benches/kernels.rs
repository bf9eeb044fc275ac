//! Criterion benchmarks of the kernels, with the peer GEMMs (`gemm` 0.19, `matrixmultiply` 0.3)
//! measured side by side in the same run.
//!
//! `cargo bench -p multiret-benches --bench kernels`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use multiret_benches::{peer_gemm, peer_matrixmultiply, random_f32, GEMM_SHAPES};
use multiret_kernels::cosine::cosine_top_k;
use multiret_kernels::gemm::{gemm_bf16, gemm_f32, Epilogue};
use multiret_kernels::norm::layer_norm_rows;
use multiret_kernels::softmax::softmax_rows;
use multiret_kernels::{bf16, MatMut, MatRef, Par};

fn bench_gemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm_f32_1thread");
    g.sample_size(10);
    for (m, k, n) in GEMM_SHAPES {
        let a = random_f32(m * k, 1);
        let b = random_f32(k * n, 2);
        let mut out = vec![0.0f32; m * n];
        let id = format!("{m}x{k}x{n}");
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        g.bench_function(BenchmarkId::new("multiret", &id), |bch| {
            bch.iter(|| {
                let am = MatRef::row_major(&a, m, k).unwrap();
                let bm = MatRef::row_major(&b, k, n).unwrap();
                let cm = MatMut::row_major(&mut out, m, n).unwrap();
                gemm_f32(1.0, am, bm, 0.0, cm, Epilogue::None, Par::Seq).unwrap();
            })
        });
        g.bench_function(BenchmarkId::new("gemm", &id), |bch| {
            bch.iter(|| peer_gemm(m, k, n, &a, &b, &mut out, 1))
        });
        g.bench_function(BenchmarkId::new("matrixmultiply", &id), |bch| {
            bch.iter(|| peer_matrixmultiply(m, k, n, &a, &b, &mut out))
        });
        let ab: Vec<bf16> = a.iter().map(|&x| bf16::from_f32(x)).collect();
        let bb: Vec<bf16> = b.iter().map(|&x| bf16::from_f32(x)).collect();
        g.bench_function(BenchmarkId::new("multiret_bf16", &id), |bch| {
            bch.iter(|| {
                let am = MatRef::row_major(&ab, m, k).unwrap();
                let bm = MatRef::row_major(&bb, k, n).unwrap();
                let cm = MatMut::row_major(&mut out, m, n).unwrap();
                gemm_bf16(1.0, am, bm, 0.0, cm, Epilogue::None, Par::Seq).unwrap();
            })
        });
    }
    g.finish();
}

fn bench_rows(c: &mut Criterion) {
    let mut g = c.benchmark_group("rows");
    // Attention scores: 12 heads x 128 queries x 128 keys; LayerNorm: 4096 tokens x 384.
    let (rows, cols) = (12 * 128, 128);
    let x = random_f32(rows * cols, 3);
    let mask = vec![0.0f32; cols];
    let mut y = x.clone();
    g.throughput(Throughput::Bytes((rows * cols * 4) as u64));
    g.bench_function("softmax_1536x128", |b| {
        b.iter(|| {
            y.copy_from_slice(&x);
            softmax_rows(&mut y, cols, 0.125, Some(&mask)).unwrap();
        })
    });
    let (rows, cols) = (4096, 384);
    let x = random_f32(rows * cols, 4);
    let gamma = random_f32(cols, 5);
    let beta = random_f32(cols, 6);
    let mut y = x.clone();
    g.throughput(Throughput::Bytes((rows * cols * 4) as u64));
    g.bench_function("layer_norm_4096x384", |b| {
        b.iter(|| {
            y.copy_from_slice(&x);
            layer_norm_rows(&mut y, &gamma, &beta, 1e-12).unwrap();
        })
    });
    g.finish();
}

fn bench_cosine(c: &mut Criterion) {
    let mut g = c.benchmark_group("cosine");
    g.sample_size(10);
    let (nq, nc, dim) = (1190, 13_014, 384);
    let q = random_f32(nq * dim, 7);
    let cand = random_f32(nc * dim, 8);
    g.throughput(Throughput::Elements(nq as u64));
    g.bench_function("top10_1190q_x_13014c", |b| {
        b.iter(|| {
            let qm = MatRef::row_major(&q, nq, dim).unwrap();
            let cm = MatRef::row_major(&cand, nc, dim).unwrap();
            cosine_top_k(qm, cm, 10, Par::all()).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_gemm, bench_rows, bench_cosine);
criterion_main!(benches);
