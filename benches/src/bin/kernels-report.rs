//! Side-by-side GEMM report: multiret's f32 GEMM against `gemm` 0.19 and `matrixmultiply` 0.3
//! on the encoder's shapes, 1 and 2 threads, plus multiret's bf16 GEMM. One JSON object per line.
//!
//! `cargo run --release -p multiret-benches --bin kernels-report`
//!
//! matrixmultiply reads its thread count once per process (`MATMUL_NUM_THREADS`), so its
//! figures come from a child process per thread count (`--mm-only`).

use std::process::Command;

use multiret_benches::{median_secs, random_f32, GEMM_SHAPES};
use multiret_kernels::gemm::{gemm_bf16, gemm_f32, Epilogue};
use multiret_kernels::{bf16, MatMut, MatRef, Par};
use serde_json::json;

const MIN_RUNS: usize = 3;
const MIN_SECS: f64 = 0.15;

fn gflops(m: usize, k: usize, n: usize, secs: f64) -> f64 {
    2.0 * (m * k * n) as f64 / secs / 1e9
}

fn line(kernel: &str, m: usize, k: usize, n: usize, threads: usize, imp: &str, secs: f64) {
    let g = (gflops(m, k, n, secs) * 100.0).round() / 100.0;
    println!(
        "{}",
        json!({"kernel": kernel, "m": m, "k": k, "n": n, "threads": threads, "impl": imp, "gflops": g})
    );
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

fn mm_only(threads: usize) {
    for (m, k, n) in GEMM_SHAPES {
        let a = random_f32(m * k, 1);
        let b = random_f32(k * n, 2);
        let mut c = vec![0.0f32; m * n];
        let secs = median_secs(MIN_RUNS, MIN_SECS, || {
            // SAFETY: a is m x k, b is k x n, c is m x n, all row-major and in bounds.
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
        });
        line("gemm_f32", m, k, n, threads, "matrixmultiply", secs);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--mm-only") {
        let threads = args.get(pos + 1).and_then(|s| s.parse().ok()).unwrap_or(1);
        mm_only(threads);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    eprintln!("isa: {}", multiret_kernels::detected_isa().name());
    for threads in [1usize, 2] {
        let pool = pool(threads);
        pool.install(|| {
            for (m, k, n) in GEMM_SHAPES {
                let a = random_f32(m * k, 1);
                let b = random_f32(k * n, 2);
                let mut c = vec![0.0f32; m * n];
                let par = if threads == 1 {
                    Par::Seq
                } else {
                    Par::Threads(threads)
                };
                let secs = median_secs(MIN_RUNS, MIN_SECS, || {
                    let am = MatRef::row_major(&a, m, k).unwrap();
                    let bm = MatRef::row_major(&b, k, n).unwrap();
                    let cm = MatMut::row_major(&mut c, m, n).unwrap();
                    gemm_f32(1.0, am, bm, 0.0, cm, Epilogue::None, par).unwrap();
                });
                line("gemm_f32", m, k, n, threads, "multiret", secs);
                if !quick {
                    let gp = if threads == 1 {
                        gemm::Parallelism::None
                    } else {
                        gemm::Parallelism::Rayon(threads)
                    };
                    let secs = median_secs(MIN_RUNS, MIN_SECS, || {
                        // SAFETY: a is m x k, b is k x n, c is m x n, all row-major and in bounds
                        // (column stride 1, row stride = columns).
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
                                gp,
                            )
                        }
                    });
                    line("gemm_f32", m, k, n, threads, "gemm", secs);
                }
                let ab: Vec<bf16> = a.iter().map(|&x| bf16::from_f32(x)).collect();
                let bb: Vec<bf16> = b.iter().map(|&x| bf16::from_f32(x)).collect();
                let secs = median_secs(MIN_RUNS, MIN_SECS, || {
                    let am = MatRef::row_major(&ab, m, k).unwrap();
                    let bm = MatRef::row_major(&bb, k, n).unwrap();
                    let cm = MatMut::row_major(&mut c, m, n).unwrap();
                    gemm_bf16(1.0, am, bm, 0.0, cm, Epilogue::None, par).unwrap();
                });
                line("gemm_bf16", m, k, n, threads, "multiret", secs);
            }
        });
        if quick {
            continue;
        }
        let exe = std::env::current_exe().expect("current exe");
        let out = Command::new(exe)
            .args(["--mm-only", &threads.to_string()])
            .env("MATMUL_NUM_THREADS", threads.to_string())
            .output()
            .expect("run matrixmultiply child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}
