//! Side-by-side GEMM report: multiret's f32 GEMM against `gemm` 0.19 and `matrixmultiply` 0.3
//! on the encoder's shapes, 1 and 2 threads, plus multiret's bf16 GEMM. One JSON object per line.
//!
//! `cargo run --release -p multiret-benches --bin kernels-report [-- --quick]`
//!
//! The implementations are timed *interleaved* (one call of each per round, medians over the
//! rounds; see [`interleaved_median_secs`]), so that the drift of a shared machine's speed hits
//! them alike. matrixmultiply reads its thread count once per process (`MATMUL_NUM_THREADS`), so
//! each thread count runs in a child process of its own (`--threads N`). `--quick` times
//! multiret alone.

use std::process::Command;

use multiret_benches::{
    interleaved_median_secs, peer_gemm, peer_matrixmultiply, random_f32, GEMM_SHAPES,
};
use multiret_kernels::gemm::{gemm_bf16, gemm_f32, Epilogue};
use multiret_kernels::{bf16, MatMut, MatRef, Par};
use serde_json::json;

const MIN_RUNS: usize = 5;
const MIN_SECS: f64 = 2.0;

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

/// Every shape at `threads` threads, in this process.
fn report(threads: usize, quick: bool) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool");
    pool.install(|| {
        for (m, k, n) in GEMM_SHAPES {
            let a = random_f32(m * k, 1);
            let b = random_f32(k * n, 2);
            let ab: Vec<bf16> = a.iter().map(|&x| bf16::from_f32(x)).collect();
            let bb: Vec<bf16> = b.iter().map(|&x| bf16::from_f32(x)).collect();
            let mut c1 = vec![0.0f32; m * n];
            let mut c2 = vec![0.0f32; m * n];
            let mut c3 = vec![0.0f32; m * n];
            let mut c4 = vec![0.0f32; m * n];
            let par = if threads == 1 {
                Par::Seq
            } else {
                Par::Threads(threads)
            };
            let mut ours = || {
                let am = MatRef::row_major(&a, m, k).unwrap();
                let bm = MatRef::row_major(&b, k, n).unwrap();
                let cm = MatMut::row_major(&mut c1, m, n).unwrap();
                gemm_f32(1.0, am, bm, 0.0, cm, Epilogue::None, par).unwrap();
            };
            let mut ours_bf16 = || {
                let am = MatRef::row_major(&ab, m, k).unwrap();
                let bm = MatRef::row_major(&bb, k, n).unwrap();
                let cm = MatMut::row_major(&mut c2, m, n).unwrap();
                gemm_bf16(1.0, am, bm, 0.0, cm, Epilogue::None, par).unwrap();
            };
            let mut peer_gemm = || peer_gemm(m, k, n, &a, &b, &mut c3, threads);
            let mut peer_mm = || peer_matrixmultiply(m, k, n, &a, &b, &mut c4);
            if quick {
                let t = interleaved_median_secs(
                    MIN_RUNS,
                    MIN_SECS / 2.0,
                    &mut [&mut ours, &mut ours_bf16],
                );
                line("gemm_f32", m, k, n, threads, "multiret", t[0]);
                line("gemm_bf16", m, k, n, threads, "multiret", t[1]);
                continue;
            }
            let t = interleaved_median_secs(
                MIN_RUNS,
                MIN_SECS,
                &mut [&mut ours, &mut peer_gemm, &mut peer_mm, &mut ours_bf16],
            );
            line("gemm_f32", m, k, n, threads, "multiret", t[0]);
            line("gemm_f32", m, k, n, threads, "gemm", t[1]);
            line("gemm_f32", m, k, n, threads, "matrixmultiply", t[2]);
            line("gemm_bf16", m, k, n, threads, "multiret", t[3]);
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(pos) = args.iter().position(|a| a == "--threads") {
        let threads = args.get(pos + 1).and_then(|s| s.parse().ok()).unwrap_or(1);
        report(threads, quick);
        return;
    }
    eprintln!("isa: {}", multiret_kernels::detected_isa().name());
    let exe = std::env::current_exe().expect("current exe");
    for threads in [1usize, 2] {
        let mut cmd = Command::new(&exe);
        cmd.args(["--threads", &threads.to_string()])
            .env("MATMUL_NUM_THREADS", threads.to_string());
        if quick {
            cmd.arg("--quick");
        }
        let out = cmd.output().expect("run the report child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            std::process::exit(1);
        }
    }
}
