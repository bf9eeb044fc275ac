//! Loading a model from a spec, embedding texts, saving as an HF directory.

use std::path::{Path, PathBuf};

use multiret_kernels::Par;
use rayon::prelude::*;

use crate::card::ModelCard;
use crate::config::{Config, EncodeSettings, Prefixes};
use crate::encoder::{Encoder, Precision};
use crate::error::{ModelError, Result};
use crate::fetch::{self, Builtin};
use crate::head::Head;
use crate::st;
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

/// A loaded model: configuration, encoding settings, tokenizer, f32 weights and the layers
/// after pooling.
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
    /// The modules between pooling and normalisation (sentence-transformers `Dense`).
    pub head: Head,
}

impl Model {
    /// Loads a model spec: `e5-small` (default) or `e5-small-enpt` (fetched into `cache` on
    /// first use), `hf:ORG/NAME[@REVISION]` (the Hugging Face Hub, [`Model::load_hub`] with
    /// the environment's options), a path to an E5S1 `.bin` (its own vocabulary, or a `tokenizer.json` in the
    /// same directory), or an HF / sentence-transformers directory (see
    /// [`Model::load_hf_dir`]).
    pub fn load(spec: &str, cache: &Path) -> Result<Model> {
        if spec.starts_with("hf:") {
            return Model::load_hub(spec, &crate::hub::HubOptions::from_env());
        }
        if let Some(b) = Builtin::from_name(spec) {
            let dir = fetch::fetch(b, cache, true)?;
            let mut m = Model::load_builtin_dir(&dir)?;
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
            "model {spec:?}: not a built-in name (e5-small, e5-small-enpt), hf:ORG/NAME, an E5S1 .bin file or an HF directory"
        )))
    }

    /// Loads `hf:ORG/NAME[@REVISION]` from the Hugging Face Hub (into its standard cache; see
    /// [`crate::hub`]).
    pub fn load_hub(spec: &str, opts: &crate::hub::HubOptions) -> Result<Model> {
        let hub = crate::hub::HubSpec::parse(spec).ok_or_else(|| {
            ModelError::Input(format!("model {spec:?}: not an hf:ORG/NAME spec"))
        })??;
        let dir = crate::hub::fetch(&hub, opts)?;
        let mut m = Model::load_hf_dir(&dir)?;
        m.name = spec.to_string();
        Ok(m)
    }

    /// Loads an E5S1 `.bin` (E5 settings).
    pub fn load_bin(path: &Path) -> Result<Model> {
        let sibling = path
            .parent()
            .map(|d| d.join("tokenizer.json"))
            .filter(|p| p.is_file());
        // The tokenizer and the weights load at once, on two threads.
        let (parsed, tokenizer) = std::thread::scope(|s| {
            let tok = s.spawn(|| sibling.as_deref().map(e5_tokenizer).transpose());
            let parsed = crate::e5s1::load(path);
            (parsed, tok.join())
        });
        let parsed = parsed?;
        let tokenizer = match tokenizer.map_err(|_| tokenizer_thread_panicked())?? {
            Some(t) => t,
            None => Tokenizer::from_bin(&parsed.vocab)?,
        };
        Ok(Model {
            name: path.display().to_string(),
            config: parsed.config,
            settings: EncodeSettings::e5(),
            tokenizer,
            weights: parsed.weights,
            head: Head::default(),
        })
    }

    /// Loads a built-in model's cache directory (`model.bin` and `tokenizer.json`, as
    /// [`fetch::fetch`] leaves it) through its converted form: `converted/config.json` and an
    /// f32 `converted/model.safetensors`, written (atomically) on first use from the
    /// dequantised `model.bin` and memory-mapped from then on, so that later loads neither
    /// dequantise nor copy the word table ([`Weights::from_safetensors_file`]).
    /// `converted/source.json` records the size and modification time of the `model.bin` it
    /// was made from; when they differ it is made again. When the cache cannot be written the
    /// model loads from `model.bin` as [`Model::load_bin`] does.
    pub fn load_builtin_dir(dir: &Path) -> Result<Model> {
        let bin = dir.join("model.bin");
        let conv = dir.join("converted");
        let stamp = source_stamp(&bin)?;
        let fresh =
            std::fs::read_to_string(conv.join("source.json")).is_ok_and(|s| s.trim() == stamp);
        if !fresh {
            let m = Model::load_bin(&bin)?;
            // Best effort: a read-only cache still loads, only more slowly.
            let _ = write_converted(&m, &conv, &stamp);
            return Ok(m);
        }
        let tok_path = dir.join("tokenizer.json");
        let (weights, tokenizer) = std::thread::scope(|s| {
            let tok = s.spawn(|| e5_tokenizer(&tok_path));
            let weights = Config::from_hf_json(&conv.join("config.json")).and_then(|c| {
                let w = Weights::from_safetensors_file(&c, &conv.join("model.safetensors"))?;
                Ok((c, w))
            });
            (weights, tok.join())
        });
        let (config, weights) = weights?;
        let tokenizer = tokenizer.map_err(|_| tokenizer_thread_panicked())??;
        Ok(Model {
            name: bin.display().to_string(),
            config,
            settings: EncodeSettings::e5(),
            tokenizer,
            weights,
            head: Head::default(),
        })
    }

    /// Loads an HF-format directory: `config.json`, `model.safetensors`, `tokenizer.json`,
    /// and the sentence-transformers modules when `modules.json` is there (pooling, Dense
    /// layers, normalisation, prompts, `max_seq_length`; see [`crate::st`]). Without
    /// `modules.json`, a `multiret.json` (written by earlier multiret versions) gives the settings,
    /// else mean pooling and normalisation with no prefixes.
    pub fn load_hf_dir(dir: &Path) -> Result<Model> {
        let modules = st::read_modules(dir)?;
        let tdir = match &modules {
            Some(m) => st::transformer_dir(dir, m),
            None => dir.to_path_buf(),
        };
        let config = Config::from_hf_json(&tdir.join("config.json"))?;
        let st_path = tdir.join("model.safetensors");
        // The tokenizer and the weights load at once, on two threads.
        let (weights, tokenizer) = std::thread::scope(|s| {
            let tok = s.spawn(|| -> Result<Tokenizer> {
                let mut t = Tokenizer::from_file(&tdir.join("tokenizer.json"))?;
                if st::builds_xlmr_tokenizer(&tdir)? {
                    t.split_on_whitespace();
                }
                Ok(t)
            });
            let w = Weights::from_safetensors_file(&config, &st_path);
            (w, tok.join())
        });
        let weights = weights?;
        let tokenizer = tokenizer.map_err(|_| tokenizer_thread_panicked())??;
        let (settings, head) = match &modules {
            Some(m) => st::read_settings(dir, m, &tdir, &config)?,
            None => (legacy_settings(dir)?, Head::default()),
        };
        Ok(Model {
            name: dir.display().to_string(),
            config,
            settings,
            tokenizer,
            weights,
            head,
        })
    }

    /// Writes the model as an HF and sentence-transformers directory that transformers,
    /// sentence-transformers and text-embeddings-inference load as they are: f32
    /// `model.safetensors` with HF names, `config.json`, `tokenizer.json`,
    /// `tokenizer_config.json`, `special_tokens_map.json`, the sentence-transformers modules
    /// (see [`crate::st::write`]) and the model card `README.md`. Files are written
    /// atomically.
    pub fn save_hf_dir(&self, dir: &Path, card: &ModelCard) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        self.tokenizer.save(&dir.join("tokenizer.json"))?;
        let st = self.weights.to_safetensors(&self.config)?;
        multiret_data::write_atomic(&dir.join("model.safetensors"), &st)?;
        multiret_data::write_atomic(
            &dir.join("config.json"),
            self.config.to_hf_json().as_bytes(),
        )?;
        st::write(
            dir,
            &self.config,
            &self.settings,
            &self.head,
            &self.tokenizer,
        )?;
        self.write_card(dir, card)
    }

    /// (Re)writes the model card `README.md` of a model directory.
    pub fn write_card(&self, dir: &Path, card: &ModelCard) -> Result<()> {
        Ok(multiret_data::write_atomic(
            &dir.join("README.md"),
            card.render(self).as_bytes(),
        )?)
    }

    /// Weight-space interpolation of two models of one architecture (WiSE-FT, arXiv
    /// 2109.01903; LM-Cocktail merges embedders the same way): every weight, the head's
    /// included, becomes `(1 - weight) * self + weight * other`, so `weight` 0 is `self` and
    /// 1 is `other` (typically `self` the starting model, `other` fine-tuned from it). The
    /// result keeps `self`'s name, settings and tokenizer. Errors when the two differ in
    /// configuration, encoding settings, head shape or tokenizer, or when `weight` is not a
    /// finite number.
    pub fn interpolate(&self, other: &Model, weight: f32) -> Result<Model> {
        let bad = |m: String| Err(ModelError::Input(format!("cannot merge: {m}")));
        if !weight.is_finite() {
            return bad(format!("weight {weight} is not a finite number"));
        }
        if self.config != other.config {
            return bad(format!(
                "the configurations differ ({:?} vs {:?})",
                self.config, other.config
            ));
        }
        if self.settings != other.settings {
            return bad(format!(
                "the encoding settings differ ({:?} vs {:?})",
                self.settings, other.settings
            ));
        }
        if self.tokenizer.to_json() != other.tokenizer.to_json() {
            return bad("the tokenizers differ".into());
        }
        let shape = |h: &Head| -> Vec<(usize, usize, bool, crate::head::Activation)> {
            h.dense
                .iter()
                .map(|d| (d.inp, d.out, d.b.is_some(), d.act))
                .collect()
        };
        if shape(&self.head) != shape(&other.head) {
            return bad("the Dense heads differ".into());
        }
        self.weights.check(&self.config)?;
        other.weights.check(&other.config)?;
        let mix = |a: &[f32], b: &[f32]| -> Vec<f32> {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| (1.0 - weight) * x + weight * y)
                .collect()
        };
        // Every tensor by its HF name (the one list of them), mixed, then rebuilt and checked.
        let mixed = self
            .weights
            .named(&self.config)
            .into_iter()
            .zip(other.weights.named(&other.config))
            .map(|((name, _, x), (_, _, y))| (name, mix(x, y)))
            .collect();
        let weights = Weights::from_named(&self.config, mixed, Path::new(&self.name))?;
        let head = Head {
            dense: self
                .head
                .dense
                .iter()
                .zip(&other.head.dense)
                .map(|(x, y)| crate::head::Dense {
                    w: mix(&x.w, &y.w),
                    b: x.b.as_ref().zip(y.b.as_ref()).map(|(p, q)| mix(p, q)),
                    ..x.clone()
                })
                .collect(),
        };
        Ok(Model {
            name: self.name.clone(),
            config: self.config.clone(),
            settings: self.settings.clone(),
            tokenizer: self.tokenizer.clone(),
            weights,
            head,
        })
    }

    /// The embedding size (the last Dense layer's output, else the hidden size).
    pub fn dim(&self) -> usize {
        self.head.dim(self.config.hidden)
    }

    /// Most tokens per input, special tokens included: the positions, or the
    /// `max_seq_length` of the settings when smaller.
    pub fn max_tokens(&self) -> usize {
        let pos = self.config.max_tokens();
        self.settings.max_seq_length.map_or(pos, |m| m.min(pos))
    }

    /// The text with its prefix.
    pub fn prefixed(&self, text: &str, kind: Kind) -> String {
        let p = match kind {
            Kind::Query => &self.settings.prefixes.query,
            Kind::Passage => &self.settings.prefixes.passage,
        };
        format!("{p}{text}")
    }

    /// Token ids of texts (prefix added), as [`Model::encode_texts`].
    pub fn tokenize(&self, texts: &[&str], kind: Kind) -> Result<Vec<Vec<u32>>> {
        let prefixed: Vec<String> = texts.iter().map(|t| self.prefixed(t, kind)).collect();
        let refs: Vec<&str> = prefixed.iter().map(String::as_str).collect();
        self.encode_texts(&refs)
    }

    /// Token ids of texts with any prefix already added: lower-cased when the settings say
    /// so, truncated to [`Model::max_tokens`].
    pub fn encode_texts(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        self.encode_texts_up_to(texts, self.max_tokens())
    }

    /// [`Model::encode_texts`] with at most `max` tokens per text (and never more than
    /// [`Model::max_tokens`]).
    pub fn encode_texts_up_to(&self, texts: &[&str], max: usize) -> Result<Vec<Vec<u32>>> {
        let max = max.min(self.max_tokens());
        if self.settings.lowercase {
            let lower: Vec<String> = texts.iter().map(|t| t.to_lowercase()).collect();
            let refs: Vec<&str> = lower.iter().map(String::as_str).collect();
            self.tokenizer.encode_batch(&refs, max)
        } else {
            self.tokenizer.encode_batch(texts, max)
        }
    }

    /// The embeddings of `rows` sequences from an engine's pooled output: `pool(normalize)` runs the
    /// engine (normalising there when the model has no head), then the head and the final
    /// normalisation run here. Shared by the CPU and CUDA embedders.
    pub fn finish(
        &self,
        rows: usize,
        pool: impl FnOnce(bool) -> Result<Vec<f32>>,
    ) -> Result<Vec<f32>> {
        let s = &self.settings;
        if self.head.is_empty() {
            return pool(s.normalize);
        }
        self.head.apply(pool(false)?, rows, s.normalize)
    }

    /// An embedder at the given precision. Errors when the weights do not fit the
    /// configuration ([`Weights::check`]).
    pub fn embedder(&self, precision: Precision) -> Result<Embedder<'_>> {
        Ok(Embedder {
            model: self,
            encoder: Encoder::new(&self.config, &self.weights, precision)?,
        })
    }
}

/// multilingual-E5's `tokenizer.json`, tokenising as transformers builds its class
/// (`XLMRobertaTokenizer`; see [`Tokenizer::split_on_whitespace`]).
fn e5_tokenizer(path: &Path) -> Result<Tokenizer> {
    let mut t = Tokenizer::from_file(path)?;
    t.split_on_whitespace();
    Ok(t)
}

fn tokenizer_thread_panicked() -> ModelError {
    ModelError::Tokenizer("the tokenizer loading thread panicked".into())
}

/// What identifies a built-in `model.bin` for its converted cache: its size and modification
/// time, and the layout version of the converted files.
fn source_stamp(bin: &Path) -> Result<String> {
    let meta = std::fs::metadata(bin).map_err(|e| ModelError::io(bin, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!(
        "{{\"layout\": 1, \"model_bin_bytes\": {}, \"model_bin_mtime_ns\": {mtime}}}",
        meta.len()
    ))
}

/// Writes the converted form of a built-in model (see [`Model::load_builtin_dir`]); the stamp
/// goes last, so a partial conversion is never taken for a complete one.
fn write_converted(m: &Model, conv: &Path, stamp: &str) -> Result<()> {
    std::fs::create_dir_all(conv).map_err(|e| ModelError::io(conv, e))?;
    multiret_data::write_atomic(&conv.join("config.json"), m.config.to_hf_json().as_bytes())?;
    let st = m.weights.to_safetensors(&m.config)?;
    multiret_data::write_atomic(&conv.join("model.safetensors"), &st)?;
    multiret_data::write_atomic(&conv.join("source.json"), stamp.as_bytes())?;
    Ok(())
}

/// The settings of a directory without `modules.json`: its `multiret.json` if any (older
/// multiret checkpoints), else mean pooling, normalised, no prefixes.
fn legacy_settings(dir: &Path) -> Result<EncodeSettings> {
    let p = dir.join("multiret.json");
    if p.is_file() {
        let text = std::fs::read_to_string(&p).map_err(|e| ModelError::io(&p, e))?;
        return serde_json::from_str(&text).map_err(|e| ModelError::config(&p, e.to_string()));
    }
    Ok(EncodeSettings::new(
        crate::config::Pooling::Mean,
        true,
        Prefixes::none(),
    ))
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
        self.model.dim()
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
        embed_ids_with(&self.encoder, self.model, ids, opts, progress)
    }
}

/// Embeds token id sequences with an engine and a model's settings and head: sorted by
/// length, padded per batch, run in parallel (one batch per thread when there are enough
/// batches, threads inside each batch otherwise); row `i` of the result is sequence `i`.
/// `progress` gets the number of sequences done so far.
pub fn embed_ids_with(
    encoder: &Encoder,
    model: &Model,
    ids: &[Vec<u32>],
    opts: EmbedOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<f32>> {
    let dim = model.dim();
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
    let done = std::sync::atomic::AtomicUsize::new(0);
    // Workspaces, one per batch in flight, reused by the batches that follow (so the
    // activation buffers are allocated and faulted in once per thread, not per batch).
    let spare = std::sync::Mutex::new(Vec::new());
    let max_rows = batches
        .iter()
        .map(|b| b.len() * b.iter().map(|&i| ids[i].len()).max().unwrap_or(0))
        .max()
        .unwrap_or(0);
    let run = |batch: &[usize], par: Par| -> Result<Vec<f32>> {
        let seqs: Vec<Vec<u32>> = batch.iter().map(|&i| ids[i].clone()).collect();
        let taken = spare.lock().ok().and_then(|mut v| v.pop());
        let mut scratch = match taken {
            Some(s) => s,
            None => encoder.scratch(max_rows)?,
        };
        let out = model.finish(seqs.len(), |norm| {
            encoder.forward_with(&seqs, model.settings.pooling, norm, par, &mut scratch)
        });
        if let Ok(mut v) = spare.lock() {
            v.push(scratch);
        }
        let out = out?;
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
