//! Loading a model from a spec, embedding texts, saving as an HF directory.

use std::path::{Path, PathBuf};

use multiret_kernels::Par;
use rayon::prelude::*;

use crate::config::{Config, EncodeSettings, Pooling, Prefixes};
use crate::encoder::{Encoder, Precision};
use crate::error::{ModelError, Result};
use crate::fetch::{self, Builtin};
use crate::tokenizer::Tokenizer;
use crate::weights::Weights;

/// Query or passage (selects the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A query.
    Query,
    /// A passage.
    Passage,
}

/// A loaded model: configuration, encoding settings, tokenizer and f32 weights.
#[derive(Debug)]
pub struct Model {
    /// A name for reports and caches (the spec it was loaded from).
    pub name: String,
    /// Architecture sizes.
    pub config: Config,
    /// Pooling, normalisation, prefixes.
    pub settings: EncodeSettings,
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// The weights.
    pub weights: Weights,
}

impl Model {
    /// Loads a model spec: `e5-small` (default) or `e5-small-enpt` (fetched into `cache` on
    /// first use), a path to an E5S1 `.bin` (its own vocabulary, or a `tokenizer.json` in the
    /// same directory), or an HF directory (`config.json`, `model.safetensors`,
    /// `tokenizer.json`, optionally `multiret.json`).
    pub fn load(spec: &str, cache: &Path) -> Result<Model> {
        if let Some(b) = Builtin::from_name(spec) {
            let dir = fetch::fetch(b, cache, true)?;
            let mut m = Model::load_bin(&dir.join("model.bin"))?;
            m.name = spec.to_string();
            return Ok(m);
        }
        let path = Path::new(spec);
        if path.is_dir() {
            return Model::load_hf_dir(path);
        }
        if path.is_file() {
            return Model::load_bin(path);
        }
        Err(ModelError::Input(format!(
            "model {spec:?}: not a built-in name (e5-small, e5-small-enpt), an E5S1 .bin file or an HF directory"
        )))
    }

    /// Loads an E5S1 `.bin` (E5 settings).
    pub fn load_bin(path: &Path) -> Result<Model> {
        let parsed = crate::e5s1::load(path)?;
        let sibling = path.parent().map(|d| d.join("tokenizer.json"));
        let tokenizer = match sibling.filter(|p| p.is_file()) {
            Some(p) => Tokenizer::from_file(&p)?,
            None => Tokenizer::from_bin(&parsed.vocab)?,
        };
        Ok(Model {
            name: path.display().to_string(),
            config: parsed.config,
            settings: EncodeSettings::e5(),
            tokenizer,
            weights: parsed.weights,
        })
    }

    /// Loads an HF-format directory.
    pub fn load_hf_dir(dir: &Path) -> Result<Model> {
        let config = Config::from_hf_json(&dir.join("config.json"))?;
        let st = dir.join("model.safetensors");
        let bytes = std::fs::read(&st).map_err(|e| ModelError::io(&st, e))?;
        let weights = Weights::from_safetensors(&config, &bytes, &st)?;
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"))?;
        let settings = read_settings(dir)?;
        Ok(Model {
            name: dir.display().to_string(),
            config,
            settings,
            tokenizer,
            weights,
        })
    }

    /// Writes the model as an HF directory: f32 `model.safetensors` with HF names,
    /// `config.json`, `tokenizer.json`, and `multiret.json` (pooling, prefixes). Files are
    /// written atomically.
    pub fn save_hf_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        self.tokenizer.save(&dir.join("tokenizer.json"))?;
        let st = self.weights.to_safetensors(&self.config)?;
        fetch::write_atomic(&dir.join("model.safetensors"), &st)?;
        fetch::write_atomic(
            &dir.join("config.json"),
            self.config.to_hf_json().as_bytes(),
        )?;
        let settings = serde_json::to_string_pretty(&self.settings).expect("json");
        fetch::write_atomic(&dir.join("multiret.json"), settings.as_bytes())
    }

    /// The text with its prefix.
    pub fn prefixed(&self, text: &str, kind: Kind) -> String {
        let p = match kind {
            Kind::Query => &self.settings.prefixes.query,
            Kind::Passage => &self.settings.prefixes.passage,
        };
        format!("{p}{text}")
    }

    /// Token ids of texts (prefix added), truncated to the model's positions.
    pub fn tokenize(&self, texts: &[&str], kind: Kind) -> Result<Vec<Vec<u32>>> {
        let prefixed: Vec<String> = texts.iter().map(|t| self.prefixed(t, kind)).collect();
        let refs: Vec<&str> = prefixed.iter().map(String::as_str).collect();
        self.tokenizer.encode_batch(&refs, self.config.max_tokens())
    }

    /// An embedder at the given precision.
    pub fn embedder(&self, precision: Precision) -> Embedder<'_> {
        Embedder {
            model: self,
            encoder: Encoder::new(&self.config, &self.weights, precision),
        }
    }
}

fn read_settings(dir: &Path) -> Result<EncodeSettings> {
    let p = dir.join("multiret.json");
    if p.is_file() {
        let text = std::fs::read_to_string(&p).map_err(|e| ModelError::io(&p, e))?;
        return serde_json::from_str(&text).map_err(|e| ModelError::config(&p, e.to_string()));
    }
    // sentence-transformers directories say their pooling in 1_Pooling/config.json.
    let pool = dir.join("1_Pooling").join("config.json");
    let pooling = if pool.is_file() {
        let text = std::fs::read_to_string(&pool).map_err(|e| ModelError::io(&pool, e))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::config(&pool, e.to_string()))?;
        if v.get("pooling_mode_cls_token").and_then(|b| b.as_bool()) == Some(true) {
            Pooling::Cls
        } else {
            Pooling::Mean
        }
    } else {
        Pooling::Mean
    };
    Ok(EncodeSettings {
        pooling,
        normalize: true,
        prefixes: Prefixes::none(),
    })
}

/// Options of [`Embedder::embed`].
#[derive(Debug, Clone, Copy)]
pub struct EmbedOptions {
    /// Sequences per batch (batches are formed after sorting by length).
    pub batch_size: usize,
    /// Threads (the current rayon pool's size when 0).
    pub threads: usize,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            batch_size: 32,
            threads: 0,
        }
    }
}

/// A model with its engine built.
pub struct Embedder<'m> {
    model: &'m Model,
    encoder: Encoder,
}

impl std::fmt::Debug for Embedder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &self.model.name)
            .field("encoder", &self.encoder)
            .finish()
    }
}

impl Embedder<'_> {
    /// The model.
    pub fn model(&self) -> &Model {
        self.model
    }

    /// The embedding size.
    pub fn dim(&self) -> usize {
        self.model.config.hidden
    }

    /// Embeds texts (prefix added per `kind`): returns `[texts.len(), dim]` row-major, row `i`
    /// for text `i`. Sequences are sorted by length and padded per batch; `progress` is called
    /// with the number of texts done so far.
    pub fn embed(
        &self,
        texts: &[&str],
        kind: Kind,
        opts: EmbedOptions,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<f32>> {
        let ids = self.model.tokenize(texts, kind)?;
        self.embed_ids(&ids, opts, progress)
    }

    /// Embeds token id sequences (with special tokens), in order.
    pub fn embed_ids(
        &self,
        ids: &[Vec<u32>],
        opts: EmbedOptions,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<f32>> {
        embed_ids_with(&self.encoder, &self.model.settings, ids, opts, progress)
    }
}

/// Embeds token id sequences with an engine and encoding settings: sorted by length, padded per
/// batch, run in parallel (one batch per thread when there are enough batches, threads inside
/// each batch otherwise); row `i` of the result is sequence `i`. `progress` gets the number of
/// sequences done so far.
pub fn embed_ids_with(
    encoder: &Encoder,
    settings: &EncodeSettings,
    ids: &[Vec<u32>],
    opts: EmbedOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<f32>> {
    let dim = encoder.config().hidden;
    let n = ids.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (ids[i].len(), i));
    let bs = opts.batch_size.max(1);
    let batches: Vec<&[usize]> = order.chunks(bs).collect();
    let threads = if opts.threads == 0 {
        rayon::current_num_threads()
    } else {
        opts.threads
    };
    let s = settings;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let run = |batch: &[usize], par: Par| -> Result<Vec<f32>> {
        let seqs: Vec<Vec<u32>> = batch.iter().map(|&i| ids[i].clone()).collect();
        let out = encoder.forward(&seqs, s.pooling, s.normalize, par)?;
        let d = done.fetch_add(batch.len(), std::sync::atomic::Ordering::Relaxed) + batch.len();
        progress(d);
        Ok(out)
    };
    // Many batches: one per thread at a time; few: threads inside each batch.
    let results: Vec<Vec<f32>> = if batches.len() >= threads && threads > 1 {
        batches
            .par_iter()
            .with_max_len(1)
            .map(|b| run(b, Par::Seq))
            .collect::<Result<_>>()?
    } else {
        let par = if threads > 1 {
            Par::Threads(threads)
        } else {
            Par::Seq
        };
        batches.iter().map(|b| run(b, par)).collect::<Result<_>>()?
    };
    let mut out = vec![0.0f32; n * dim];
    for (batch, res) in batches.iter().zip(&results) {
        for (j, &i) in batch.iter().enumerate() {
            out[i * dim..(i + 1) * dim].copy_from_slice(&res[j * dim..(j + 1) * dim]);
        }
    }
    Ok(out)
}

/// Resolves a model spec to the path it will be loaded from (fetching a built-in).
pub fn resolve(spec: &str, cache: &Path) -> Result<PathBuf> {
    match Builtin::from_name(spec) {
        Some(b) => Ok(fetch::fetch(b, cache, true)?.join("model.bin")),
        None => Ok(PathBuf::from(spec)),
    }
}
