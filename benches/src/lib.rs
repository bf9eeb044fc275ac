//! Shared helpers for the multiret benchmarks: timing, random data and the XQuAD-R sentences
//! of the embedding bench.

use std::time::Instant;

pub mod args;
pub mod xquad;

pub use args::PeerArgs;

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

/// Wall seconds, CPU seconds and CPU-wait seconds of one timed run.
pub type Timing = (f64, Option<f64>, Option<f64>);

/// Times `f`: wall seconds, CPU seconds (all threads) and run-queue wait seconds (all threads).
pub fn timed<T>(f: impl FnOnce() -> T) -> (Timing, T) {
    let (t, c, w) = (Instant::now(), cpu_seconds(), cpu_wait_seconds());
    let out = f();
    let cpu = cpu_seconds().zip(c).map(|(b, a)| b - a);
    let wait = cpu_wait_seconds().zip(w).map(|(b, a)| b - a);
    ((t.elapsed().as_secs_f64(), cpu, wait), out)
}

/// Removes the temporary HF directory when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// CPU seconds (user + system, all threads) this process has used so far, from
/// `/proc/self/stat` (Linux; `None` elsewhere). Assumes the usual 100 clock ticks a second.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Seconds the threads of this process (all those alive now) have spent runnable but
/// waiting for a CPU, from `/proc/self/task/*/schedstat` (Linux with schedstats; `None`
/// elsewhere): a measure of how much other work starved the run.
pub fn cpu_wait_seconds() -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// `x` rounded to `digits` decimals.
pub fn round(x: f64, digits: i32) -> f64 {
    let s = 10f64.powi(digits);
    (x * s).round() / s
}

/// A peer in another process (a Python script of `benches/peers/`): started on a JSON job
/// file, it answers one JSON line when ready, then one JSON line per request line on stdin.
/// Dropping it sends `quit` and waits for it to end.
pub struct Peer {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    /// The ready line.
    pub ready: serde_json::Value,
}

impl Peer {
    /// Writes `job` to `work/JOB_NAME`, starts `python script job` with `OMP_NUM_THREADS` set to
    /// `threads`, and waits for its ready line.
    pub fn start(
        python: &std::path::Path,
        script: &std::path::Path,
        job: &serde_json::Value,
        job_path: &std::path::Path,
        threads: usize,
    ) -> Result<Peer, String> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        std::fs::write(job_path, job.to_string())
            .map_err(|e| format!("writing {}: {e}", job_path.display()))?;
        let mut child = Command::new(python)
            .arg(script)
            .arg(job_path)
            .env("OMP_NUM_THREADS", threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {} {}: {e}", python.display(), script.display()))?;
        let stdin = child.stdin.take().ok_or("no stdin for the peer")?;
        let mut stdout =
            std::io::BufReader::new(child.stdout.take().ok_or("no stdout for the peer")?);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| format!("peer: {e}"))?;
        let ready: serde_json::Value = serde_json::from_str(&line).map_err(|_| {
            format!(
                "the peer ({} {}) did not start: is torch with transformers installed there? \
                 (benches/peers/setup.sh makes such an environment)",
                python.display(),
                script.display()
            )
        })?;
        Ok(Peer {
            child,
            stdin,
            stdout,
            ready,
        })
    }

    /// Sends one request line and returns the answer line, parsed.
    pub fn request(&mut self, line: &str) -> Result<serde_json::Value, String> {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "{line}").map_err(|e| format!("peer: {e}"))?;
        self.stdin.flush().map_err(|e| format!("peer: {e}"))?;
        let mut answer = String::new();
        self.stdout
            .read_line(&mut answer)
            .map_err(|e| format!("peer: {e}"))?;
        serde_json::from_str(&answer).map_err(|_| format!("peer: unexpected answer {answer:?}"))
    }

    /// `torch.__version__` from the ready line.
    pub fn torch_version(&self) -> String {
        self.ready["torch"].as_str().unwrap_or("?").to_string()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}
