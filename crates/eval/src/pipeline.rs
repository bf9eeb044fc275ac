//! The evaluation pipeline: texts → embeddings (from a [`TextEmbedder`], the cache, or `.npy`
//! files) → scores → [`Report`].
//!
//! Embeddings are cached per (model name, texts, candidate mode, prefixes): the cache key is a
//! SHA-256 of the model name, its dimension, and every text to encode (prefixes and contexts
//! included), so a re-run with the same model and dataset only recomputes the metrics, and any
//! change to the data or the prefixes misses the cache.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use multiret_kernels::Par;
use sha2::{Digest, Sha256};

use crate::center::{language_means, CenterSpec, CenteringInfo, LanguageMeans};
use crate::dataset::{Dataset, EvalTexts};
use crate::encoder::{CandidateMode, Prefixes, TextEmbedder};
use crate::error::{BoxError, EvalError, Result};
use crate::npy::{read_npy_f32, write_npy_f32, Matrix};
use crate::protocol::Protocol;
use crate::report::{BeirCounts, BeirReport, LareqaCounts, LareqaReport, Report, Timing};
use crate::score::{
    evaluate_beir, lareqa_settings, rank_lareqa_by, xtreme_r_settings, ScoreOptions,
};

/// File name of the query embeddings in an embeddings directory (`--embeddings DIR`).
pub const QUERIES_NPY: &str = "queries.npy";
/// File name of the candidate embeddings in an embeddings directory.
pub const CANDIDATES_NPY: &str = "candidates.npy";

/// How to run an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalConfig {
    /// Prefixes before queries and candidates (E5's by default).
    pub prefixes: Prefixes,
    /// Candidate encoding (LAReQA).
    pub candidates: CandidateMode,
    /// The scoring protocol (LAReQA datasets): ours (cosine, full-ranking mAP) or XTREME-R's
    /// (dot product, plus mAP@20). It does not choose `candidates`: pair
    /// [`Protocol::XtremeR`] with its [`Protocol::default_candidates`] to follow it entirely.
    pub protocol: Protocol,
    /// Texts per encoder call.
    pub batch_size: usize,
    /// Threads for encoding and scoring (`None`: the global rayon pool).
    pub threads: Option<usize>,
    /// Embedding cache root (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
    /// Show progress bars on stderr (they stay hidden when stderr is not a terminal).
    pub progress: bool,
    /// Queries per block of the score matrix.
    pub block_rows: usize,
    /// LAReQA datasets: write the per-language means of the (uncentred) embeddings to this
    /// file ([`crate::center`]), for centring the evaluation of another dataset.
    pub save_means: Option<PathBuf>,
    /// LAReQA datasets: centre the embeddings with the language means of this file before
    /// scoring ([`crate::center`]); the report says so.
    pub center: Option<CenterSpec>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            prefixes: Prefixes::e5(),
            candidates: CandidateMode::Sentence,
            protocol: Protocol::Lareqa,
            batch_size: 64,
            threads: None,
            cache_dir: None,
            progress: false,
            block_rows: 512,
            save_means: None,
            center: None,
        }
    }
}

/// The environment variable naming the embedding cache (`multiret eval --embedding-cache`).
pub const EMBED_CACHE_ENV: &str = "MULTIRET_EMBED_CACHE";

/// The embedding cache: `$MULTIRET_EMBED_CACHE` when set and non-empty, else `embeddings/` in
/// the cache directory `cache_root` (`None`: [`multiret_data::default_cache_dir`], that is
/// `$MULTIRET_CACHE` or `~/.cache/multiret`, which also holds the models).
pub fn embedding_cache_dir(cache_root: Option<&Path>) -> PathBuf {
    if let Some(d) = std::env::var_os(EMBED_CACHE_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    match cache_root {
        Some(root) => root.join("embeddings"),
        None => multiret_data::default_cache_dir().join("embeddings"),
    }
}

/// The default embedding cache: [`embedding_cache_dir`] under the default cache directory.
pub fn default_cache_dir() -> PathBuf {
    embedding_cache_dir(None)
}

/// Where embeddings come from.
#[derive(Clone, Copy)]
pub enum EmbeddingSource<'a> {
    /// Encode with this model (through the cache when [`EvalConfig::cache_dir`] is set).
    Model(&'a dyn TextEmbedder),
    /// Read `queries.npy` and `candidates.npy` from this directory (rows in `--dump-texts`
    /// order).
    Files(&'a Path),
}

/// Where a set of embeddings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingOrigin {
    /// Computed now by the encoder.
    Encoded,
    /// Read from the embedding cache.
    Cache,
    /// Read from `.npy` files given by the user.
    Files,
}

impl EmbeddingOrigin {
    /// `encoded`, `cache` or `files`.
    pub fn as_str(self) -> &'static str {
        match self {
            EmbeddingOrigin::Encoded => "encoded",
            EmbeddingOrigin::Cache => "cache",
            EmbeddingOrigin::Files => "files",
        }
    }
}

/// Query and candidate embeddings, rows in encoding (`--dump-texts`) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One row per query.
    pub queries: Matrix,
    /// One row per candidate.
    pub candidates: Matrix,
    /// Where they came from.
    pub origin: EmbeddingOrigin,
    /// What went wrong on the way without stopping the evaluation (an unusable cache entry,
    /// a cache that could not be written); it goes into the report.
    pub warnings: Vec<String>,
}

fn check_matrix(m: &Matrix, path: &Path, expected_rows: usize, what: &str) -> Result<()> {
    if m.rows != expected_rows {
        return Err(EvalError::Shape {
            what: format!(
                "{} (one row per {what}, in --dump-texts order)",
                path.display()
            ),
            unit: "rows",
            expected: expected_rows,
            got: m.rows,
        });
    }
    if m.cols == 0 {
        return Err(EvalError::Npy {
            path: path.to_path_buf(),
            message: "embedding dimension is 0".into(),
        });
    }
    if let Some((row, col, value)) = m.first_non_finite() {
        return Err(EvalError::NonFinite {
            what: path.display().to_string(),
            row,
            col,
            value,
        });
    }
    Ok(())
}

/// Reads `DIR/queries.npy` and `DIR/candidates.npy`, checking their row counts, their common
/// dimension and that every value is finite (errors name the file, and the row).
pub fn read_embeddings_dir(
    dir: &Path,
    n_queries: usize,
    n_candidates: usize,
) -> Result<Embeddings> {
    let qp = dir.join(QUERIES_NPY);
    let cp = dir.join(CANDIDATES_NPY);
    let queries = read_npy_f32(&qp)?;
    check_matrix(&queries, &qp, n_queries, "query")?;
    let candidates = read_npy_f32(&cp)?;
    check_matrix(&candidates, &cp, n_candidates, "candidate")?;
    if queries.cols != candidates.cols {
        return Err(EvalError::Shape {
            what: format!("{} (dimension of {})", cp.display(), qp.display()),
            unit: "columns",
            expected: queries.cols,
            got: candidates.cols,
        });
    }
    Ok(Embeddings {
        queries,
        candidates,
        origin: EmbeddingOrigin::Files,
        warnings: Vec::new(),
    })
}

/// Writes `DIR/queries.npy` and `DIR/candidates.npy` (creating `DIR`).
pub fn write_embeddings_dir(dir: &Path, queries: &Matrix, candidates: &Matrix) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
    write_npy_f32(&dir.join(QUERIES_NPY), queries)?;
    Ok(write_npy_f32(&dir.join(CANDIDATES_NPY), candidates)?)
}

/// The cache key (hex SHA-256, 32 digits) of encoding `texts` with a model.
pub fn cache_key(model: &str, dim: usize, texts: &EvalTexts) -> String {
    let mut h = Sha256::new();
    let mut put = |s: &[u8]| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s);
    };
    put(b"multiret-eval-cache-v1");
    put(model.as_bytes());
    put(&(dim as u64).to_le_bytes());
    put(if texts.contexts.is_some() {
        b"pairs"
    } else {
        b"single"
    });
    put(&(texts.queries.len() as u64).to_le_bytes());
    for t in &texts.queries {
        put(t.as_bytes());
    }
    put(&(texts.candidates.len() as u64).to_le_bytes());
    for t in &texts.candidates {
        put(t.as_bytes());
    }
    if let Some(cx) = &texts.contexts {
        for t in cx {
            put(t.as_bytes());
        }
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect()
}

/// The cache directory of one (model, dataset, mode) combination.
pub fn cache_entry_dir(
    root: &Path,
    model: &str,
    dataset: &str,
    mode: CandidateMode,
    key: &str,
) -> PathBuf {
    root.join(format!(
        "{}__{}__{}__{}",
        sanitize(model),
        sanitize(dataset),
        mode.as_str(),
        key
    ))
}

fn bar(config: &EvalConfig, len: usize, prefix: &'static str) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        pb.set_style(style);
    }
    pb.set_prefix(prefix);
    pb
}

/// Encodes `n` items in batches of similar length (longest first, which keeps padding low),
/// putting each row back at its index.
#[allow(clippy::too_many_arguments)]
fn encode_batched(
    model: &str,
    dim: usize,
    n: usize,
    what: &str,
    batch: usize,
    len_of: impl Fn(usize) -> usize,
    mut call: impl FnMut(&[usize], &dyn Fn(usize)) -> std::result::Result<Vec<f32>, BoxError>,
    pb: &ProgressBar,
) -> Result<Matrix> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(len_of(i)));
    let mut data = vec![0.0f32; n * dim];
    let mut done = 0usize;
    for chunk in order.chunks(batch.max(1)) {
        let reported = Cell::new(0usize);
        let progress = |k: usize| {
            reported.set(reported.get() + k);
            pb.set_position((done + reported.get().min(chunk.len())) as u64);
        };
        let out = call(chunk, &progress).map_err(|source| EvalError::Encoder {
            model: model.to_string(),
            source,
        })?;
        if out.len() != chunk.len() * dim {
            return Err(EvalError::Shape {
                what: format!(
                    "model `{model}` output for a batch of {} {what} texts of dimension {dim}",
                    chunk.len()
                ),
                unit: "values",
                expected: chunk.len() * dim,
                got: out.len(),
            });
        }
        for (j, &idx) in chunk.iter().enumerate() {
            let row = &out[j * dim..(j + 1) * dim];
            if let Some(col) = row.iter().position(|v| !v.is_finite()) {
                return Err(EvalError::NonFinite {
                    what: format!(
                        "model `{model}` embedding of {what} text {idx} (--dump-texts order)"
                    ),
                    row: idx,
                    col,
                    value: row[col],
                });
            }
            data[idx * dim..(idx + 1) * dim].copy_from_slice(row);
        }
        done += chunk.len();
        pb.set_position(done as u64);
    }
    pb.finish();
    Ok(Matrix::new(n, dim, data)?)
}

/// Encodes the texts with `encoder`, or reads them from the cache (and fills it).
pub fn encode_texts(
    encoder: &dyn TextEmbedder,
    dataset: &Dataset,
    texts: &EvalTexts,
    config: &EvalConfig,
) -> Result<Embeddings> {
    let model = encoder.name();
    let dim = encoder.dim();
    if dim == 0 {
        return Err(EvalError::InvalidArgument(format!(
            "model `{model}` reports embedding dimension 0"
        )));
    }
    let (nq, nc) = (texts.queries.len(), texts.candidates.len());
    let mut warnings = Vec::new();
    let entry = config.cache_dir.as_ref().map(|root| {
        cache_entry_dir(
            root,
            &model,
            dataset.name(),
            config.candidates,
            &cache_key(&model, dim, texts),
        )
    });
    if let Some(dir) = &entry {
        if dir.join(QUERIES_NPY).is_file() && dir.join(CANDIDATES_NPY).is_file() {
            match read_embeddings_dir(dir, nq, nc) {
                Ok(e) if e.queries.cols == dim => {
                    return Ok(Embeddings {
                        origin: EmbeddingOrigin::Cache,
                        ..e
                    })
                }
                Ok(_) => warnings.push(format!(
                    "cached embeddings in {} have another dimension; re-encoding",
                    dir.display()
                )),
                Err(e) => warnings.push(format!("ignoring unusable cache entry: {e}")),
            }
        }
    }
    let qbar = bar(config, nq, "queries");
    let queries = encode_batched(
        &model,
        dim,
        nq,
        "query",
        config.batch_size,
        |i| texts.queries[i].chars().count(),
        |idx, p| {
            let batch: Vec<String> = idx.iter().map(|&i| texts.queries[i].clone()).collect();
            encoder.encode(&batch, p)
        },
        &qbar,
    )?;
    let cbar = bar(config, nc, "candidates");
    let candidates = match &texts.contexts {
        None => encode_batched(
            &model,
            dim,
            nc,
            "candidate",
            config.batch_size,
            |i| texts.candidates[i].chars().count(),
            |idx, p| {
                let batch: Vec<String> = idx.iter().map(|&i| texts.candidates[i].clone()).collect();
                encoder.encode(&batch, p)
            },
            &cbar,
        )?,
        Some(contexts) => encode_batched(
            &model,
            dim,
            nc,
            "candidate",
            config.batch_size,
            |i| texts.candidates[i].chars().count() + contexts[i].chars().count(),
            |idx, p| {
                let batch: Vec<(String, String)> = idx
                    .iter()
                    .map(|&i| (texts.candidates[i].clone(), contexts[i].clone()))
                    .collect();
                encoder.encode_pairs(&batch, p)
            },
            &cbar,
        )?,
    };
    if let Some(dir) = &entry {
        let meta = serde_json::json!({
            "model": model,
            "dim": dim,
            "dataset": dataset.name(),
            "dataset_source": dataset.source(),
            "candidates_mode": config.candidates.as_str(),
            "prefixes": config.prefixes,
            "queries": nq,
            "candidates": nc,
        });
        let written = write_embeddings_dir(dir, &queries, &candidates).and_then(|()| {
            let p = dir.join("meta.json");
            Ok(multiret_data::write_atomic(
                &p,
                format!("{meta:#}\n").as_bytes(),
            )?)
        });
        if let Err(e) = written {
            warnings.push(format!("could not write the embedding cache: {e}"));
        }
    }
    Ok(Embeddings {
        queries,
        candidates,
        origin: EmbeddingOrigin::Encoded,
        warnings,
    })
}

/// Scores embeddings (rows in encoding order) and builds the report. `timing.load_s` is left
/// at 0 and `timing.encode_s` is `encode_s`, for the caller to adjust.
pub fn evaluate_embeddings(
    dataset: &Dataset,
    embeddings: &Embeddings,
    model: &str,
    config: &EvalConfig,
    encode_s: f64,
) -> Result<Report> {
    let t = Instant::now();
    let opts = ScoreOptions {
        par: Par::all(),
        block_rows: config.block_rows,
    };
    let dim = embeddings.queries.cols;
    let origin = embeddings.origin.as_str().to_string();
    let report = match dataset {
        Dataset::Lareqa(ds) => {
            let ranks = rank_lareqa_by(
                ds,
                &embeddings.queries,
                &embeddings.candidates,
                &opts,
                config.protocol.similarity(),
            )?;
            let settings = lareqa_settings(ds, &ranks);
            let xtreme_r = config
                .protocol
                .cutoff()
                .map(|k| xtreme_r_settings(ds, &ranks, k));
            let score_s = t.elapsed().as_secs_f64();
            Report::Lareqa(Box::new(LareqaReport {
                kind: "lareqa".into(),
                dataset: ds.name.clone(),
                dataset_source: ds.source.clone(),
                model: model.to_string(),
                embeddings: origin,
                embedding_dim: dim,
                candidates_mode: config.candidates,
                protocol: config.protocol,
                prefixes: config.prefixes.clone(),
                languages: ds.lang_codes(),
                counts: LareqaCounts::of(ds),
                settings,
                xtreme_r,
                centering: None,
                warnings: embeddings.warnings.clone(),
                timing: Timing {
                    load_s: 0.0,
                    encode_s,
                    score_s,
                    total_s: encode_s + score_s,
                },
            }))
        }
        Dataset::Beir(ds) => {
            if config.protocol != Protocol::Lareqa {
                return Err(EvalError::InvalidArgument(format!(
                    "--protocol {} applies to LAReQA datasets, not to BEIR-style corpora",
                    config.protocol.as_str()
                )));
            }
            let metrics = evaluate_beir(ds, &embeddings.queries, &embeddings.candidates, &opts)?;
            let score_s = t.elapsed().as_secs_f64();
            Report::Beir(Box::new(BeirReport {
                kind: "beir".into(),
                dataset: ds.name.clone(),
                dataset_source: ds.source.display().to_string(),
                model: model.to_string(),
                embeddings: origin,
                embedding_dim: dim,
                prefixes: config.prefixes.clone(),
                counts: BeirCounts {
                    queries: ds.queries.len(),
                    queries_read: ds.queries_read,
                    candidates: ds.docs.len(),
                    judgements: ds.judgements,
                    missing_docs: ds.missing_docs,
                    unknown_queries: ds.unknown_queries,
                },
                metrics,
                warnings: embeddings.warnings.clone(),
                timing: Timing {
                    load_s: 0.0,
                    encode_s,
                    score_s,
                    total_s: encode_s + score_s,
                },
            }))
        }
    };
    Ok(report)
}

/// `config.save_means` and `config.center` on the embeddings of `dataset`: the means of the
/// uncentred embeddings are written first, then the embeddings are centred in place.
fn language_means_and_centring(
    dataset: &Dataset,
    embeddings: &mut Embeddings,
    model: &str,
    config: &EvalConfig,
) -> Result<Option<CenteringInfo>> {
    if config.save_means.is_none() && config.center.is_none() {
        return Ok(None);
    }
    let Dataset::Lareqa(ds) = dataset else {
        return Err(EvalError::InvalidArgument(
            "--save-means and --center apply to LAReQA datasets (languages known per text), \
             not to BEIR-style corpora"
                .into(),
        ));
    };
    let similarity = config.protocol.similarity();
    if let Some(path) = &config.save_means {
        language_means(
            ds,
            &embeddings.queries,
            &embeddings.candidates,
            model,
            similarity,
            config.candidates,
            &config.prefixes,
        )?
        .write(path)?;
    }
    let Some(spec) = &config.center else {
        return Ok(None);
    };
    let means = LanguageMeans::read(&spec.path)?;
    means.check_applies(
        &spec.path,
        ds,
        model,
        embeddings.queries.cols,
        similarity,
        config.candidates,
        &config.prefixes,
    )?;
    let info = means.center(
        &spec.path,
        ds,
        &mut embeddings.queries,
        &mut embeddings.candidates,
        similarity,
        spec.missing,
    )?;
    Ok(Some(info))
}

/// The whole evaluation of a loaded dataset: texts, embeddings (model, cache or files),
/// scores, report. `model_label` names the model in the report (default: the encoder's name,
/// or `embeddings:DIR`).
pub fn run_evaluation(
    dataset: &Dataset,
    source: EmbeddingSource<'_>,
    model_label: Option<&str>,
    config: &EvalConfig,
) -> Result<Report> {
    if let (Dataset::Beir(_), Protocol::XtremeR) = (dataset, config.protocol) {
        return Err(EvalError::InvalidArgument(
            "--protocol xtreme-r applies to LAReQA datasets, not to BEIR-style corpora".into(),
        ));
    }
    let texts = dataset.texts(&config.prefixes, config.candidates)?;
    let model = match (model_label, source) {
        (Some(m), _) => m.to_string(),
        (None, EmbeddingSource::Model(e)) => e.name(),
        (None, EmbeddingSource::Files(d)) => format!("embeddings:{}", d.display()),
    };
    let run = || -> Result<Report> {
        let t = Instant::now();
        let mut embeddings = match source {
            EmbeddingSource::Model(e) => encode_texts(e, dataset, &texts, config)?,
            EmbeddingSource::Files(dir) => {
                read_embeddings_dir(dir, texts.queries.len(), texts.candidates.len())?
            }
        };
        let encode_s = t.elapsed().as_secs_f64();
        let centering = language_means_and_centring(dataset, &mut embeddings, &model, config)?;
        let mut report = evaluate_embeddings(dataset, &embeddings, &model, config, encode_s)?;
        if let (Report::Lareqa(r), Some(c)) = (&mut report, centering) {
            r.centering = Some(c);
        }
        Ok(report)
    };
    match config.threads {
        None => run(),
        Some(n) => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n.max(1))
                .build()
                .map_err(|e| EvalError::InvalidArgument(format!("thread pool of {n}: {e}")))?;
            pool.install(run)
        }
    }
}
