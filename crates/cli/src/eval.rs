//! `multiret eval`: score a model (or precomputed embeddings) on XQuAD-R, MLQA-R, the built-in
//! sample, any directory of LAReQA `LANG.json` files, or a BEIR/MIRACL-style corpus, with the
//! protocol of docs/method.md §4 (or, with `--protocol xtreme-r`, XTREME-R's: §4.4).
//!
//! Output: a short summary on stderr; `--out` writes report.json, `--markdown` the tables,
//! `--plot` the Cr. heatmap (SVG). With neither `--out` nor `--markdown`, the Markdown tables
//! go to stdout.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use multiret_eval::{
    embedding_cache_dir, load_dataset, resolve_dataset, run_evaluation, CandidateMode, CenterSpec,
    Dataset, EmbeddingSource, EvalConfig, MissingMeans, NgramEncoder, Prefixes, Protocol, Report,
    TextEmbedder,
};

use crate::args::{show_default, CacheArgs, DataDirArgs, ModelArgs, PrecisionArg, PrecisionArgs};
use crate::model_cmd::ModelEncoder;

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

/// `--center-missing`: what a language without a mean gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CenterMissingArg {
    /// Stop with an error naming the languages.
    Error,
    /// The mean of the file's language means.
    Pooled,
}

impl From<CenterMissingArg> for MissingMeans {
    fn from(c: CenterMissingArg) -> Self {
        match c {
            CenterMissingArg::Error => MissingMeans::Error,
            CenterMissingArg::Pooled => MissingMeans::Pooled,
        }
    }
}

/// Shows in an option's help the default that [`EvalConfig::default`] gives it.
fn show_eval_default(arg: clap::Arg) -> clap::Arg {
    let d = EvalConfig::default();
    match arg.get_id().as_str() {
        "batch_size" => show_default(arg, d.batch_size),
        "protocol" => show_default(arg, d.protocol.as_str()),
        _ => arg,
    }
}

/// Arguments of `multiret eval`. The options left out take [`EvalConfig::default`]'s values.
#[derive(Args, Debug)]
#[command(mut_args(show_eval_default))]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// Dataset: `xquad-r`, `mlqa-r` (inside --data-dir), `sample` (built in), or a directory
    /// of LAReQA `LANG.json` files or of a BEIR-style corpus (`corpus.jsonl`,
    /// `queries.jsonl`, `qrels/`). Default: the built-in sample.
    #[arg(long, value_name = "NAME|DIR")]
    pub dataset: Option<String>,

    #[command(flatten)]
    pub data: DataDirArgs,

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
    #[arg(long, value_enum)]
    pub protocol: Option<ProtocolArg>,

    /// Write every text the evaluation would encode, in encoding order, as JSON lines, then
    /// stop (no model is loaded) unless --embeddings is also given.
    #[arg(long, value_name = "FILE")]
    pub dump_texts: Option<PathBuf>,

    /// Score precomputed embeddings instead of running a model: DIR/queries.npy and
    /// DIR/candidates.npy (f32, one row per text in --dump-texts order).
    #[arg(long, value_name = "DIR")]
    pub embeddings: Option<PathBuf>,

    #[command(flatten)]
    pub cache: CacheArgs,

    /// Embedding cache [default: embeddings/ in the cache directory].
    #[arg(long, value_name = "DIR", env = multiret_eval::EMBED_CACHE_ENV)]
    pub embedding_cache: Option<PathBuf>,

    /// Neither read nor write the embedding cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Texts per encoder call.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: Option<u64>,

    /// Threads for encoding and scoring [default: all cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,

    /// Prefix before every query [default: "query: "].
    #[arg(long, value_name = "TEXT")]
    pub query_prefix: Option<String>,

    /// Prefix before every candidate [default: "passage: "].
    #[arg(long, value_name = "TEXT")]
    pub passage_prefix: Option<String>,

    #[command(flatten)]
    pub precision: PrecisionArgs,

    /// No prefixes (for models trained without them); overridden by the two options above.
    #[arg(long)]
    pub no_prefixes: bool,

    /// LAReQA datasets: also write the per-language means of this evaluation's embeddings
    /// (queries and candidates apart) to FILE, for `--center` on another dataset. Take them
    /// from training-side text only (for XQuAD-R: `--dataset mlqa-r`).
    #[arg(long, value_name = "FILE")]
    pub save_means: Option<PathBuf>,

    /// LAReQA datasets: subtract each language's mean embedding (a `--save-means` file of
    /// another dataset, computed with the same model, prefixes and candidates) before scoring.
    /// Reported as centred; not comparable with uncentred results.
    #[arg(long, value_name = "FILE")]
    pub center: Option<PathBuf>,

    /// With --center: what a language without a mean in the file gets (an error, or the mean
    /// of the file's language means).
    #[arg(long, value_enum, default_value_t = CenterMissingArg::Error, requires = "center")]
    pub center_missing: CenterMissingArg,

    /// BEIR-style datasets: the qrels split (`qrels/SPLIT.tsv`) [default: test, else dev].
    #[arg(long)]
    pub split: Option<String>,

    /// No progress bars and no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

impl EvalArgs {
    /// The evaluation settings these arguments ask for: [`EvalConfig::default`] with the
    /// options given.
    pub fn config(&self) -> EvalConfig {
        let mut c = EvalConfig::default();
        if self.no_prefixes {
            c.prefixes = Prefixes::none();
        }
        if let Some(q) = &self.query_prefix {
            c.prefixes.query = q.clone();
        }
        if let Some(p) = &self.passage_prefix {
            c.prefixes.passage = p.clone();
        }
        if let Some(p) = self.protocol {
            c.protocol = p.into();
        }
        c.candidates = self
            .candidates
            .map_or(c.protocol.default_candidates(), Into::into);
        if let Some(b) = self.batch_size {
            c.batch_size = b as usize;
        }
        c.threads = self.threads.map(|t| t as usize);
        c.cache_dir = (!self.no_cache).then(|| {
            self.embedding_cache
                .clone()
                .unwrap_or_else(|| embedding_cache_dir(Some(&self.cache.dir())))
        });
        c.progress = !self.quiet;
        c.save_means = self.save_means.clone();
        c.center = self.center.as_ref().map(|path| CenterSpec {
            path: path.clone(),
            missing: self.center_missing.into(),
        });
        c
    }

    /// Whether the user chose the prefixes (else the model's own apply).
    fn user_prefixes(&self) -> bool {
        self.no_prefixes || self.query_prefix.is_some() || self.passage_prefix.is_some()
    }
}

/// The encoder of a model spec: the built-in n-gram baseline, else a model loaded through
/// multiret-model from `cache`.
fn load_encoder(
    spec: &str,
    config: &EvalConfig,
    cache: &Path,
    precision: PrecisionArg,
) -> anyhow::Result<Box<dyn TextEmbedder>> {
    Ok(match NgramEncoder::from_spec(spec) {
        Some(ngram) => Box::new(ngram?.strip_prefixes(&config.prefixes)),
        None => Box::new(
            ModelEncoder::load(spec, cache, precision, config.batch_size)
                .with_context(|| format!("loading model `{spec}`"))?,
        ),
    })
}

/// [`run_evaluation`] with the timing filled in (`start`: when loading began, which took
/// `load_s`); its warnings go to stderr.
fn evaluate(
    dataset: &Dataset,
    source: EmbeddingSource<'_>,
    label: Option<&str>,
    config: &EvalConfig,
    (start, load_s): (Instant, f64),
) -> anyhow::Result<Report> {
    let mut report = run_evaluation(dataset, source, label, config)?;
    for w in report.warnings() {
        eprintln!("warning: {w}");
    }
    let timing = report.timing_mut();
    timing.load_s = load_s;
    timing.total_s = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Writes the report as JSON and the Markdown tables where asked; returns the tables.
fn write_reports(
    report: &Report,
    json: Option<&Path>,
    markdown: Option<&Path>,
) -> anyhow::Result<String> {
    if let Some(path) = json {
        std::fs::write(path, report.to_json()? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let tables = report.to_markdown();
    if let Some(path) = markdown {
        std::fs::write(path, &tables).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(tables)
}

/// Runs `multiret eval`. No model is loaded with `--embeddings`, with `--dump-texts` alone,
/// or for the built-in `ngram` baseline.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut config = args.config();
    let spec = resolve_dataset(args.dataset.as_deref(), &args.data.dir())?;
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

    let model_spec = args.model.spec();
    let precision = args.precision.precision;
    let encoder = match &args.embeddings {
        Some(_) => None,
        None => Some(load_encoder(
            model_spec,
            &config,
            &args.cache.dir(),
            precision,
        )?),
    };
    // The model's own prefixes apply unless the user chose some.
    if let (false, Some(p)) = (
        args.user_prefixes(),
        encoder.as_deref().and_then(|e| e.prefixes()),
    ) {
        config.prefixes = p;
    }
    let source = match (&args.embeddings, encoder.as_deref()) {
        (Some(dir), _) => EmbeddingSource::Files(dir),
        (None, Some(e)) => EmbeddingSource::Model(e),
        (None, None) => anyhow::bail!("no model and no --embeddings"),
    };
    // The report names the model by its spec (and precision); the encoder's own name, which
    // also fingerprints the weights, keys the embedding cache.
    let label = match (&args.embeddings, args.model.model.as_deref()) {
        (Some(_), m) => m.map(str::to_string),
        (None, _) if precision == PrecisionArg::F32 => Some(model_spec.to_string()),
        (None, _) => Some(format!("{model_spec} ({precision})")),
    };
    let report = evaluate(&dataset, source, label.as_deref(), &config, (start, load_s))?;

    let markdown = write_reports(&report, args.out.as_deref(), args.markdown.as_deref())?;
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

/// `multiret train --eval NAME`: evaluates the final checkpoint on dataset NAME into `out`
/// (JSON) and `out` with `.md` (the tables, which the trainer puts into the model card), as
/// `multiret eval --quiet --model CHECKPOINT --dataset NAME --out OUT --markdown OUT.md` does
/// with the trainer's data and cache directories.
pub fn run_checkpoint(
    checkpoint: &Path,
    dataset: &str,
    data_dir: &Path,
    cache: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut config = EvalConfig {
        cache_dir: Some(embedding_cache_dir(Some(cache))),
        ..EvalConfig::default()
    };
    let dataset = load_dataset(&resolve_dataset(Some(dataset), data_dir)?, None)?;
    let load_s = start.elapsed().as_secs_f64();
    let spec = checkpoint
        .to_str()
        .with_context(|| format!("{}: not a UTF-8 path", checkpoint.display()))?;
    let encoder = load_encoder(spec, &config, cache, PrecisionArg::F32)?;
    if let Some(p) = encoder.prefixes() {
        config.prefixes = p;
    }
    let source = EmbeddingSource::Model(&*encoder);
    let report = evaluate(&dataset, source, Some(spec), &config, (start, load_s))?;
    write_reports(&report, Some(out), Some(&out.with_extension("md")))?;
    Ok(())
}

/// The retrieval validation of `multiret train --val-groups` (the hook of
/// [`multiret_train::train_with`]): the held-out questions of a LAReQA training set (`train`,
/// one dataset: `mlqa-r`, `xquad-r` or a directory of `LANG.json` files), with the sentences of
/// their paragraphs as the pool, scored as `multiret eval` scores the whole benchmark (f32, no
/// embedding cache). Any other training data gives no scores (`Ok(None)`), unless `needed`
/// (`--select` by a retrieval score, `--merge-grid`): then it is an error here, before any
/// training.
pub fn validation_scorer<'a>(
    train: &'a str,
    data_dir: &'a Path,
    needed: Option<&str>,
) -> anyhow::Result<Box<multiret_train::RetrievalHook<'a>>> {
    let Some(full) = lareqa_training_set(train, data_dir)? else {
        if let Some(what) = needed {
            anyhow::bail!(
                "{what} scores retrieval on the held-out groups, which needs the training data \
                 to be one LAReQA dataset (mlqa-r, xquad-r or a directory of LANG.json files); \
                 `{train}` is not"
            );
        }
        return Ok(Box::new(|_, _: &[String]| Ok(None)));
    };
    // The held-out questions, restricted once (the first call names them).
    let mut subset: Option<Dataset> = None;
    Ok(Box::new(move |model, held_out: &[String]| {
        let dataset = match &subset {
            Some(d) => d,
            None => {
                let ids: std::collections::HashSet<&str> =
                    held_out.iter().map(String::as_str).collect();
                let name = format!("{}:val", full.name);
                let restricted = full.restricted(&ids, &name).map_err(|e| format!("{e:#}"))?;
                subset.insert(Dataset::Lareqa(restricted))
            }
        };
        let score = || -> anyhow::Result<multiret_train::RetrievalScores> {
            let encoder = ModelEncoder::from_model(model, PrecisionArg::F32, 32)?;
            let mut config = EvalConfig {
                cache_dir: None,
                ..EvalConfig::default()
            };
            if let Some(p) = encoder.prefixes() {
                config.prefixes = p;
            }
            let report = run_evaluation(
                dataset,
                EmbeddingSource::Model(&encoder),
                Some("validation"),
                &config,
            )?;
            let Report::Lareqa(r) = report else {
                anyhow::bail!("the validation subset is not a LAReQA dataset");
            };
            let s = &r.settings;
            Ok(multiret_train::RetrievalScores {
                mo: s.mono.map_macro,
                cr: s.cross.map_macro,
                mul: s.multi.map_macro,
                rank_distance: s.multi.rank_distance_macro,
            })
        };
        score()
            .map(Some)
            .map_err(|e| format!("retrieval validation: {e:#}"))
    }))
}

/// `train` as one LAReQA benchmark, or `None` when it is not one LAReQA dataset.
fn lareqa_training_set(
    train: &str,
    data_dir: &Path,
) -> anyhow::Result<Option<multiret_eval::LareqaDataset>> {
    if train.contains(',') {
        return Ok(None);
    }
    let Ok(spec) = resolve_dataset(Some(train), data_dir) else {
        return Ok(None);
    };
    let Dataset::Lareqa(full) = load_dataset(&spec, None)? else {
        return Ok(None);
    };
    Ok(Some(full))
}
