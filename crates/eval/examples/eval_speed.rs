//! How long all XQuAD-R metrics take from given embeddings (dim 384): the score matrices of
//! the three settings (one 12,978 x 13,014 GEMM in blocks) and every rank, AP, R@k and rank
//! distance.
//!
//! ```text
//! cargo run --release -p multiret-eval --example eval_speed [-- --ngram] [-- --threads N]
//! ```
//!
//! Embeddings are random (a fixed seed) unless `--ngram` asks for the character n-gram baseline
//! (whose encoding time is reported separately). The data directory is `MULTIRET_DATA`, else
//! the repository's `data/`.

use std::time::Instant;

use multiret_eval::{
    lareqa_settings, load_lareqa_dir, rank_lareqa, Dataset, Matrix, NgramEncoder, Prefixes,
    ScoreOptions, TextEmbedder,
};
use multiret_kernels::cosine::score_matrix;
use multiret_kernels::{MatMut, MatRef, Par};

fn random_matrix(rows: usize, cols: usize, seed: u64) -> Matrix {
    let mut s = seed;
    let data = (0..rows * cols)
        .map(|_| {
            // Sum of uniforms: roughly Gaussian.
            let mut acc = 0.0f32;
            for _ in 0..4 {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                acc += (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            }
            acc
        })
        .collect();
    Matrix { rows, cols, data }
}

fn main() -> Result<(), multiret_eval::BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ngram = args.iter().any(|a| a == "--ngram");
    let threads = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .map(|t| t.parse::<usize>())
        .transpose()?;
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }
    let data = multiret_data::env_data_dir();
    let t = Instant::now();
    let ds = load_lareqa_dir(&multiret_data::dataset_dir(&data, "xquad-r")?)?;
    println!(
        "loaded xquad-r in {:.2} s: {} queries, {} candidates, {} threads",
        t.elapsed().as_secs_f64(),
        ds.num_questions(),
        ds.num_candidates(),
        rayon::current_num_threads()
    );
    let dim = 384;
    let (q, c) = if ngram {
        let t = Instant::now();
        let texts = Dataset::Lareqa(ds.clone()).texts(&Prefixes::e5(), Default::default())?;
        let enc = NgramEncoder::new(3, dim)?;
        let q = Matrix::new(
            texts.queries.len(),
            dim,
            enc.encode(&texts.queries, &|_| {})?,
        )?;
        let c = Matrix::new(
            texts.candidates.len(),
            dim,
            enc.encode(&texts.candidates, &|_| {})?,
        )?;
        println!("n-gram encoding: {:.2} s", t.elapsed().as_secs_f64());
        (q, c)
    } else {
        (
            random_matrix(ds.num_questions(), dim, 1),
            random_matrix(ds.num_candidates(), dim, 2),
        )
    };

    // The GEMM alone, for reference.
    let block = 512.min(q.rows);
    let mut out = vec![0.0f32; block * c.rows];
    let t = Instant::now();
    let mut r0 = 0;
    while r0 < q.rows {
        let rows = block.min(q.rows - r0);
        score_matrix(
            MatRef::row_major(&q.data[r0 * dim..(r0 + rows) * dim], rows, dim)?,
            MatRef::row_major(&c.data, c.rows, dim)?,
            MatMut::row_major(&mut out[..rows * c.rows], rows, c.rows)?,
            Par::all(),
        )?;
        r0 += rows;
    }
    let gemm_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let ranks = rank_lareqa(&ds, &q, &c, &ScoreOptions::default())?;
    let settings = lareqa_settings(&ds, &ranks);
    let all_s = t.elapsed().as_secs_f64();
    println!(
        "Mo. mAP {:.4} | Cr. mAP {:.4} ({} pairs) | Mul. mAP {:.4} (micro {:.4}) | rank distance {:.1}",
        settings.mono.map_macro,
        settings.cross.map_macro,
        settings.cross.pairs,
        settings.multi.map_macro,
        settings.multi.map_micro,
        settings.multi.rank_distance_macro.unwrap_or(f64::NAN)
    );
    println!(
        "GEMM alone ({} x {} x {dim}): {gemm_s:.2} s",
        q.rows, c.rows
    );
    println!("all metrics of XQuAD-R (Mo., Cr., Mul.): {all_s:.2} s");
    Ok(())
}
