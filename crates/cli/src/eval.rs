//! `multiret eval`: score a model (or precomputed embeddings) on XQuAD-R, MLQA-R, the built-in
//! sample, any directory of LAReQA `LANG.json` files, or a BEIR/MIRACL-style corpus, with the
//! protocol of docs/method.md §4 (or, with `--protocol xtreme-r`, XTREME-R's: §4.4).
//!
//! Output: a short summary on stderr; `--out` writes report.json, `--markdown` the tables,
//! `--plot` the Cr. heatmap (SVG). With neither `--out` nor `--markdown`, the Markdown tables
//! go to stdout.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use multiret_eval::{
    default_cache_dir, load_dataset, resolve_dataset, run_evaluation, CandidateMode, Dataset,
    EmbeddingSource, Encoder, EvalConfig, NgramEncoder, Prefixes, Protocol,
};

/// How LAReQA candidates are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CandidatesArg {
    /// The sentence alone (the protocol's default).
    Sentence,
    /// The sentence and its paragraph as a text pair (the model must support pairs).
    Context,
    /// The sentence directly followed by its paragraph, as one text (XTREME-R's).
    SentenceContext,
}

impl From<CandidatesArg> for CandidateMode {
    fn from(c: CandidatesArg) -> Self {
        match c {
            CandidatesArg::Sentence => CandidateMode::Sentence,
            CandidatesArg::Context => CandidateMode::Context,
            CandidatesArg::SentenceContext => CandidateMode::SentenceContext,
        }
    }
}

/// The scoring protocol of LAReQA datasets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// Ours (LAReQA's): cosine similarity, mAP over the full ranking, sentence candidates.
    Lareqa,
    /// XTREME-R's: dot product without normalisation, mAP@20 added to the report, candidates
    /// as sentence + paragraph in one text (see docs/method.md §4.4).
    XtremeR,
}

impl From<ProtocolArg> for Protocol {
    fn from(p: ProtocolArg) -> Self {
        match p {
            ProtocolArg::Lareqa => Protocol::Lareqa,
            ProtocolArg::XtremeR => Protocol::XtremeR,
        }
    }
}

/// Arguments of `multiret eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model to evaluate [default: e5-small]. `ngram` or `ngram:N:DIM` is a built-in,
    /// model-free character n-gram baseline. With --embeddings, only the name in the report.
    #[arg(long, value_name = "SPEC")]
    pub model: Option<String>,

    /// Dataset: `xquad-r`, `mlqa-r` (inside --data-dir), `sample` (built in), or a directory
    /// of LAReQA `LANG.json` files or of a BEIR-style corpus (`corpus.jsonl`,
    /// `queries.jsonl`, `qrels/`). Default: the built-in sample.
    #[arg(long, value_name = "NAME|DIR")]
    pub dataset: Option<String>,

    /// Where dataset names are looked up [default: the repository's data/, then
    /// ~/.cache/multiret/data (under MULTIRET_CACHE when set)].
    #[arg(long, value_name = "DIR", env = "MULTIRET_DATA")]
    pub data_dir: Option<PathBuf>,

    /// Write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Write the Markdown tables.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,

    /// Write the Cr. mAP heatmap (query language x candidate language, Mo. on the diagonal)
    /// as SVG.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,

    /// Candidate encoding: the sentence alone, with its paragraph as context (a text pair), or
    /// followed by its paragraph in one text [default: the protocol's: sentence for lareqa,
    /// sentence-context for xtreme-r].
    #[arg(long, value_enum)]
    pub candidates: Option<CandidatesArg>,

    /// Scoring protocol (LAReQA datasets): ours, or XTREME-R's (dot product, mAP@20).
    #[arg(long, value_enum, default_value_t = ProtocolArg::Lareqa)]
    pub protocol: ProtocolArg,

    /// Write every text the evaluation would encode, in encoding order, as JSON lines, then
    /// stop (no model is loaded) unless --embeddings is also given.
    #[arg(long, value_name = "FILE")]
    pub dump_texts: Option<PathBuf>,

    /// Score precomputed embeddings instead of running a model: DIR/queries.npy and
    /// DIR/candidates.npy (f32, one row per text in --dump-texts order).
    #[arg(long, value_name = "DIR")]
    pub embeddings: Option<PathBuf>,

    /// Embedding cache [default: $XDG_CACHE_HOME/multiret/eval or ~/.cache/multiret/eval].
    #[arg(long, value_name = "DIR", env = "MULTIRET_CACHE")]
    pub cache_dir: Option<PathBuf>,

    /// Neither read nor write the embedding cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Texts per encoder call.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,

    /// Threads for encoding and scoring [default: all cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,

    /// Prefix before every query [default: "query: "].
    #[arg(long, value_name = "TEXT")]
    pub query_prefix: Option<String>,

    /// Prefix before every candidate [default: "passage: "].
    #[arg(long, value_name = "TEXT")]
    pub passage_prefix: Option<String>,

    /// Weight precision of the model: `f32` or `bf16` (AMX / AVX-512 BF16 where available).
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16"])]
    pub precision: String,

    /// No prefixes (for models trained without them); overridden by the two options above.
    #[arg(long)]
    pub no_prefixes: bool,

    /// BEIR-style datasets: the qrels split (`qrels/SPLIT.tsv`) [default: test, else dev].
    #[arg(long)]
    pub split: Option<String>,

    /// No progress bars and no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The model used when `--model` is not given.
pub const DEFAULT_MODEL: &str = "e5-small";

impl EvalArgs {
    /// The evaluation settings these arguments ask for.
    pub fn config(&self) -> EvalConfig {
        let mut prefixes = if self.no_prefixes {
            Prefixes::none()
        } else {
            Prefixes::e5()
        };
        if let Some(q) = &self.query_prefix {
            prefixes.query = q.clone();
        }
        if let Some(p) = &self.passage_prefix {
            prefixes.passage = p.clone();
        }
        let protocol: Protocol = self.protocol.into();
        EvalConfig {
            prefixes,
            candidates: self
                .candidates
                .map_or(protocol.default_candidates(), Into::into),
            protocol,
            batch_size: self.batch_size as usize,
            threads: self.threads.map(|t| t as usize),
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir.clone().or_else(default_cache_dir)
            },
            progress: !self.quiet,
            block_rows: 512,
        }
    }
}

/// Runs `multiret eval`. `encoder_factory` loads a model from its spec; it is not called with
/// `--embeddings`, with `--dump-texts` alone, or for the built-in `ngram` baseline.
pub fn run(
    args: &EvalArgs,
    encoder_factory: &dyn Fn(&str) -> anyhow::Result<Box<dyn Encoder>>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut config = args.config();
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(multiret_data::default_data_dir);
    let spec = resolve_dataset(args.dataset.as_deref(), &data_dir)?;
    let dataset = load_dataset(&spec, args.split.as_deref())?;
    let load_s = start.elapsed().as_secs_f64();

    if let Some(path) = &args.dump_texts {
        let texts = dataset.texts(&config.prefixes, config.candidates)?;
        dataset.write_dump(&texts, path)?;
        if !args.quiet {
            eprintln!(
                "wrote {} texts ({} queries, then {} candidates) to {}",
                texts.queries.len() + texts.candidates.len(),
                texts.queries.len(),
                texts.candidates.len(),
                path.display()
            );
        }
        if args.embeddings.is_none() {
            return Ok(());
        }
    }

    let model_spec = args.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let encoder: Option<Box<dyn Encoder>> = match &args.embeddings {
        Some(_) => None,
        None => Some(match NgramEncoder::from_spec(model_spec) {
            Some(ngram) => Box::new(ngram?.strip_prefixes(&config.prefixes)),
            None => encoder_factory(model_spec)
                .with_context(|| format!("loading model `{model_spec}`"))?,
        }),
    };
    // The model's own prefixes apply unless the user chose some.
    let user_prefixes =
        args.no_prefixes || args.query_prefix.is_some() || args.passage_prefix.is_some();
    if let (false, Some(p)) = (user_prefixes, encoder.as_deref().and_then(|e| e.prefixes())) {
        config.prefixes = p;
    }
    let source = match (&args.embeddings, encoder.as_deref()) {
        (Some(dir), _) => EmbeddingSource::Files(dir),
        (None, Some(e)) => EmbeddingSource::Model(e),
        (None, None) => anyhow::bail!("no model and no --embeddings"),
    };
    // The report names the model by its spec (and precision); the encoder's own name, which
    // also fingerprints the weights, keys the embedding cache.
    let label = match (&args.embeddings, args.model.as_deref()) {
        (Some(_), m) => m.map(str::to_string),
        (None, _) if args.precision == "f32" => Some(model_spec.to_string()),
        (None, _) => Some(format!("{model_spec} ({})", args.precision)),
    };
    let mut report = run_evaluation(&dataset, source, label.as_deref(), &config)?;
    let timing = report.timing_mut();
    timing.load_s = load_s;
    timing.total_s = start.elapsed().as_secs_f64();

    if let Some(path) = &args.out {
        std::fs::write(path, report.to_json()? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let markdown = report.to_markdown();
    if let Some(path) = &args.markdown {
        std::fs::write(path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        match report.heatmap_svg() {
            Some(svg) => {
                std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?
            }
            None => eprintln!(
                "warning: --plot: `{}` is a BEIR-style corpus; there is no cross-lingual matrix \
                 to plot",
                dataset.name()
            ),
        }
    }
    if args.out.is_none() && args.markdown.is_none() {
        print!("{markdown}");
    }
    if !args.quiet {
        eprintln!("{}", report.summary());
    }
    if let Dataset::Lareqa(ds) = &dataset {
        let mismatches: usize = ds.langs.iter().map(|l| l.sentence_text_mismatches).sum();
        if mismatches > 0 && !args.quiet {
            eprintln!(
                "note: {mismatches} sentence(s) differ from their `sentences` entry; the context \
                 sliced by `sentence_breaks` was used"
            );
        }
    }
    Ok(())
}
