//! Runs one GEMM shape many times, for profilers (`perf record`):
//!
//! ```sh
//! cargo run --release -p multiret-kernels --example gemm_profile -- f32|bf16 M K N THREADS CALLS
//! ```
//!
//! Prints the mean GFLOP/s.

use multiret_kernels::gemm::{gemm_bf16, gemm_f32, Epilogue};
use multiret_kernels::{bf16, MatMut, MatRef, Par};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let kind = args
        .first()
        .map(String::as_str)
        .unwrap_or("f32")
        .to_string();
    let (m, k, n, threads, calls) = (
        num(1, 128),
        num(2, 384),
        num(3, 384),
        num(4, 1),
        num(5, 1000),
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool");
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let ab: Vec<bf16> = a.iter().map(|&x| bf16::from_f32(x)).collect();
    let bb: Vec<bf16> = b.iter().map(|&x| bf16::from_f32(x)).collect();
    let mut c = vec![0.0f32; m * n];
    let par = if threads > 1 {
        Par::Threads(threads)
    } else {
        Par::Seq
    };
    let t = std::time::Instant::now();
    pool.install(|| {
        for _ in 0..calls {
            let cm = MatMut::row_major(&mut c, m, n).expect("C");
            if kind == "bf16" {
                let am = MatRef::row_major(&ab, m, k).expect("A");
                let bm = MatRef::row_major(&bb, k, n).expect("B");
                gemm_bf16(1.0, am, bm, 0.0, cm, Epilogue::None, par).expect("gemm");
            } else {
                let am = MatRef::row_major(&a, m, k).expect("A");
                let bm = MatRef::row_major(&b, k, n).expect("B");
                gemm_f32(1.0, am, bm, 0.0, cm, Epilogue::None, par).expect("gemm");
            }
        }
    });
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{kind} {m}x{k}x{n} threads {threads}: {:.1} GFLOP/s ({:.1} us per call)",
        2.0 * (m * k * n * calls) as f64 / secs / 1e9,
        secs / calls as f64 * 1e6
    );
}
