//! # multiret-eval
//!
//! The benchmark side of multiret: load multilingual QA-retrieval benchmarks, embed them with
//! any model, score the three settings of docs/method.md §4 and report the metrics
//! for machines (JSON) and people (Markdown tables, an SVG heatmap).
//!
//! - [`lareqa`]: LAReQA-format loader (XQuAD-R, MLQA-R, any directory of `LANG.json` files),
//!   with skipped questions counted by reason (from `multiret-data`, re-exported);
//!   [`sample`]: a built-in five-language sample.
//! - [`beir`]: BEIR / MIRACL-style corpora (`corpus.jsonl`, `queries.jsonl`, `qrels/*.tsv`).
//! - [`metrics`]: AP, R@k, rank distance and nDCG@k from the ranks of the relevant candidates
//!   alone (ties broken by the lower candidate index), so no full sort is needed; XTREME-R's
//!   AP@k ([`metrics::average_precision_at_k`]).
//! - [`protocol`]: ours ([`Protocol::Lareqa`], the default) or XTREME-R's
//!   ([`Protocol::XtremeR`]: dot product, mAP@20, sentence + paragraph candidates).
//! - [`score`]: the normalised score matrix through the kernels' GEMM in blocks of queries, and
//!   from one pass over each row the Mo. (per language), Cr. (per ordered language pair) and
//!   Mul. (pooled) ranks; [`score::evaluate_beir`] for nDCG@10 / Recall@100.
//! - [`encoder`]: the model-agnostic [`TextEmbedder`] trait, [`Prefixes`], and a model-free
//!   character n-gram baseline; [`npy`]: strict `.npy` f32 reader/writer (from
//!   `multiret-data`), so embeddings from any tool can be scored
//!   ([`pipeline::read_embeddings_dir`]).
//! - [`pipeline`]: texts → embeddings (encoder, cache or files) → [`Report`];
//!   [`report`]: JSON, Markdown, SVG.
//!
//! ```
//! use multiret_eval::{builtin_sample, Dataset, EmbeddingSource, EvalConfig, NgramEncoder};
//!
//! let dataset = Dataset::Lareqa(builtin_sample()?);
//! let encoder = NgramEncoder::new(3, 256)?;
//! let report = multiret_eval::run_evaluation(
//!     &dataset,
//!     EmbeddingSource::Model(&encoder),
//!     None,
//!     &EvalConfig::default(),
//! )?;
//! println!("{}", report.to_markdown());
//! # Ok::<(), multiret_eval::EvalError>(())
//! ```

pub mod beir;
pub mod center;
pub mod dataset;
pub mod encoder;
mod error;
pub mod metrics;
pub mod pipeline;
pub mod protocol;
pub mod report;
pub mod sample;
pub mod score;

/// The LAReQA-format loader, which lives in `multiret-data` (re-exported here unchanged).
pub use multiret_data::lareqa;
/// The `.npy` reader and writer, which live in `multiret-data` (re-exported here unchanged).
pub use multiret_data::npy;
/// The data layer's error, which [`EvalError`] wraps or maps ([`EvalError::Data`]).
pub use multiret_data::DataError;

pub use beir::{load_beir_dir, BeirDataset};
pub use center::{CenterSpec, LanguageMeans, MissingMeans};
pub use dataset::{load_dataset, resolve_dataset, Dataset, DatasetSpec, EvalTexts};
pub use encoder::{CandidateMode, NgramEncoder, Prefixes, TextEmbedder};
pub use error::{BoxError, EvalError, Result};
pub use lareqa::{load_lareqa_dir, parse_lareqa_file, LareqaDataset, SkipReason};
pub use npy::{read_npy_f32, write_npy_f32, Matrix};
pub use pipeline::{
    default_cache_dir, embedding_cache_dir, read_embeddings_dir, run_evaluation,
    write_embeddings_dir, EmbeddingOrigin, EmbeddingSource, Embeddings, EvalConfig,
    EMBED_CACHE_ENV,
};
pub use protocol::{Protocol, Similarity};
pub use report::Report;
pub use sample::builtin_sample;
pub use score::{
    evaluate_beir, lareqa_settings, rank_lareqa, rank_lareqa_by, xtreme_r_settings, ScoreOptions,
};
