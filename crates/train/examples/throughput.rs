//! Training throughput on this machine: e5-small on MLQA-R, hybrid batches.
//!
//! ```sh
//! cargo run --release -p multiret-train --example throughput -- [STEPS] [BATCH] [freeze] [bf16] [burn-ops]
//! ```
//!
//! `burn-ops` runs the dense layers on burn-flex's own ops instead of multiret-kernels (the
//! comparison of the CPU fast path); `bf16` turns on mixed precision.
//!
//! Prints one line per step (loss, lr, tokens/s) and the mean tokens/s without the first step
//! (warm-up of allocations).

use multiret_train::{train, DeviceChoice, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: u64 = args.first().map(|s| s.parse()).transpose()?.unwrap_or(6);
    let batch: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(32);
    let device = DeviceChoice::Cpu;
    let freeze = args[2.min(args.len())..].iter().any(|a| a == "freeze");
    let bf16 = args[2.min(args.len())..].iter().any(|a| a == "bf16");
    let burn_ops = args[2.min(args.len())..].iter().any(|a| a == "burn-ops");
    multiret_train::keep_freed_memory();
    let out = std::env::temp_dir().join(format!("multiret-throughput-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cfg = TrainConfig::new("e5-small", "mlqa-r", &out);
    cfg.data_dir = multiret_data::env_data_dir();
    cfg.batch_size = batch;
    cfg.steps = steps;
    cfg.warmup = Some(0);
    cfg.device = device;
    cfg.freeze_embeddings = freeze;
    cfg.bf16_matmul = bf16;
    cfg.cpu_kernels = !burn_ops;
    let t = std::time::Instant::now();
    let summary = train(&cfg, None)?;
    let log = std::fs::read_to_string(out.join("log.jsonl"))?;
    let mut rates = Vec::new();
    for line in log.lines() {
        println!("{line}");
        let v: serde_json::Value = serde_json::from_str(line)?;
        rates.push((
            v["tokens"].as_f64().unwrap_or(0.0),
            v["tokens_per_s"].as_f64().unwrap_or(0.0),
        ));
    }
    let rest = &rates[1.min(rates.len())..];
    let (tok, secs) = rest
        .iter()
        .fold((0.0, 0.0), |(t, s), (n, r)| (t + n, s + n / r.max(1e-9)));
    println!(
        "{device:?} batch {batch} freeze {freeze} bf16 {bf16} burn-ops {burn_ops}: {:.0} tokens/s over steps 2..={steps} \
         ({:.0} tokens/s over all; {:.1} s total with loading and checkpoint)",
        tok / secs.max(1e-9),
        summary.tokens_per_s,
        t.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}
