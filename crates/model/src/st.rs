//! sentence-transformers directories, read and written by the rules sentence-transformers
//! itself follows, so that a model goes in and out of the ecosystem unchanged.
//!
//! Reading (`modules.json` present):
//! - modules in `idx` order: one `Transformer` (the HF files, at its `path`, usually the
//!   directory itself), one `Pooling`, any number of `Dense`, at most one `Normalize`, last.
//!   Any other module type, or another order, is an error naming `modules.json`: never
//!   silently different vectors.
//! - `Pooling` (`1_Pooling/config.json`): the mode, in the current layout (`pooling_mode`) or
//!   the older one (`pooling_mode_mean_tokens`, ...): cls, mean, max, mean_sqrt_len_tokens,
//!   weightedmean, lasttoken; exactly one (several at once are concatenated by
//!   sentence-transformers and refused here). Its `embedding_dimension` must be the hidden
//!   size. `include_prompt: false` (the prompt's tokens left out of the pooling) is refused
//!   when a prompt is not empty.
//! - `Dense` (`k_Dense/config.json`, `k_Dense/model.safetensors`): `in_features`,
//!   `out_features`, `bias`, `activation_function` (a torch class, see
//!   [`crate::head::Activation`]); weight `linear.weight [out, in]`, bias `linear.bias [out]`.
//! - `Normalize`: L2 normalisation of the output; without it embeddings are not normalised.
//! - `sentence_bert_config.json` (beside the Transformer's files): `max_seq_length` (else, as
//!   sentence-transformers does, the smaller of `max_position_embeddings` and the tokenizer's
//!   `model_max_length`), `do_lower_case`.
//! - `config_sentence_transformers.json`: `prompts` and `default_prompt_name`. A query gets
//!   the `query` prompt; a passage the `passage` prompt, else `document`, else `corpus`; a
//!   kind with no prompt of its own gets the default prompt, if one is named.
//!
//! Writing ([`write()`]): `tokenizer_config.json` and `special_tokens_map.json` (the class
//! transformers should build: `XLMRobertaTokenizer` for Unigram vocabularies, `BertTokenizer`
//! for WordPiece ones, with the normaliser's own lower-casing so that transformers does not
//! rebuild it), `modules.json`, `sentence_bert_config.json`, `1_Pooling/config.json`, each
//! `Dense`, `Normalize` when the model normalises, and `config_sentence_transformers.json`
//! with the prompts. The module type names are the long-standing `sentence_transformers.models.*`
//! ones, which every sentence-transformers version resolves.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use safetensors::SafeTensors;
use serde_json::{json, Map, Value};

use crate::config::{Config, EncodeSettings, Pooling, Prefixes};
use crate::error::{ModelError, Result};
use crate::head::{Activation, Dense, Head};
use crate::tokenizer::{Tokenizer, TokenizerFamily};
use multiret_data::write_atomic;

/// The module list of a sentence-transformers directory.
pub const MODULES_FILE: &str = "modules.json";
/// The prompts and similarity of a sentence-transformers directory.
pub const ST_CONFIG_FILE: &str = "config_sentence_transformers.json";
/// The Transformer module's settings (`max_seq_length`, `do_lower_case`).
pub const SBERT_CONFIG_FILE: &str = "sentence_bert_config.json";

/// The kind of a module of `modules.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    /// The HF transformer.
    Transformer,
    /// Pooling of the token states.
    Pooling,
    /// A dense layer with an activation.
    Dense,
    /// L2 normalisation.
    Normalize,
}

impl ModuleKind {
    fn of_type(ty: &str) -> Option<ModuleKind> {
        match ty.rsplit('.').next().unwrap_or(ty) {
            "Transformer" => Some(ModuleKind::Transformer),
            "Pooling" => Some(ModuleKind::Pooling),
            "Dense" => Some(ModuleKind::Dense),
            "Normalize" => Some(ModuleKind::Normalize),
            _ => None,
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            ModuleKind::Transformer => "sentence_transformers.models.Transformer",
            ModuleKind::Pooling => "sentence_transformers.models.Pooling",
            ModuleKind::Dense => "sentence_transformers.models.Dense",
            ModuleKind::Normalize => "sentence_transformers.models.Normalize",
        }
    }
}

/// One module of `modules.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Its kind.
    pub kind: ModuleKind,
    /// Its folder, relative to the model directory (`""`: the directory itself).
    pub path: String,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::config(path, format!("not JSON: {e}")))
}

fn read_json_if_present(path: &Path) -> Result<Option<Value>> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Reads and checks `dir/modules.json`; `None` when the directory has none (a plain HF
/// directory).
pub fn read_modules(dir: &Path) -> Result<Option<Vec<Module>>> {
    let path = dir.join(MODULES_FILE);
    let Some(v) = read_json_if_present(&path)? else {
        return Ok(None);
    };
    let bad = |m: String| ModelError::config(&path, m);
    let list = v
        .as_array()
        .ok_or_else(|| bad("expected a list of modules".into()))?;
    let mut entries = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let idx = m.get("idx").and_then(Value::as_u64).unwrap_or(i as u64);
        let ty = m
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("module {i} has no \"type\"")))?;
        let kind = ModuleKind::of_type(ty).ok_or_else(|| {
            bad(format!(
                "module {idx} has type {ty:?}, which multiret does not support \
                 (Transformer, Pooling, Dense, Normalize)"
            ))
        })?;
        let p = m.get("path").and_then(Value::as_str).unwrap_or("");
        if Path::new(p)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(bad(format!(
                "module {idx} has path {p:?}: only folders inside the model directory are read"
            )));
        }
        entries.push((
            idx,
            Module {
                kind,
                path: p.to_string(),
            },
        ));
    }
    entries.sort_by_key(|(idx, _)| *idx);
    let modules: Vec<Module> = entries.into_iter().map(|(_, m)| m).collect();
    let kinds: Vec<ModuleKind> = modules.iter().map(|m| m.kind).collect();
    let dense = kinds
        .iter()
        .skip(2)
        .take_while(|&&k| k == ModuleKind::Dense)
        .count();
    let rest = &kinds[(2 + dense).min(kinds.len())..];
    let ok = kinds.len() >= 2
        && kinds[0] == ModuleKind::Transformer
        && kinds[1] == ModuleKind::Pooling
        && (rest.is_empty() || rest == [ModuleKind::Normalize]);
    if !ok {
        return Err(bad(format!(
            "modules {kinds:?}: multiret reads Transformer, Pooling, any Dense, then an \
             optional Normalize, in that order"
        )));
    }
    Ok(Some(modules))
}

/// The folder of the Transformer module (the HF files).
pub fn transformer_dir(dir: &Path, modules: &[Module]) -> PathBuf {
    match modules.first() {
        Some(m) if !m.path.is_empty() => dir.join(&m.path),
        _ => dir.to_path_buf(),
    }
}

fn read_pooling(path: &Path, hidden: usize) -> Result<(Pooling, bool)> {
    let v = read_json(path)?;
    let bad = |m: String| ModelError::config(path, m);
    let dim = v
        .get("embedding_dimension")
        .or_else(|| v.get("word_embedding_dimension"))
        .and_then(Value::as_u64);
    if let Some(d) = dim {
        if d as usize != hidden {
            return Err(bad(format!(
                "embedding dimension {d}, but the transformer's hidden size is {hidden}"
            )));
        }
    }
    let mut modes: Vec<Pooling> = Vec::new();
    let mut add = |name: &str| -> Result<()> {
        let p = Pooling::from_st_name(name).ok_or_else(|| {
            bad(format!(
                "pooling mode {name:?} is not supported ({})",
                Pooling::ALL.map(Pooling::st_name).join(", ")
            ))
        })?;
        if !modes.contains(&p) {
            modes.push(p);
        }
        Ok(())
    };
    match v.get("pooling_mode") {
        Some(Value::String(s)) => add(s)?,
        Some(Value::Array(list)) => {
            for m in list {
                add(m
                    .as_str()
                    .ok_or_else(|| bad("pooling_mode: expected names".into()))?)?;
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => return Err(bad(format!("pooling_mode: unexpected {other}"))),
    }
    let old_layout = Pooling::ALL.iter().any(|p| v.get(p.st_flag()).is_some());
    if old_layout {
        for p in Pooling::ALL {
            // sentence-transformers' own default for the mean flag is true.
            let default = p == Pooling::Mean && v.get("pooling_mode").is_none();
            match v.get(p.st_flag()) {
                Some(Value::Bool(true)) => add(p.st_name())?,
                None if default => add(p.st_name())?,
                Some(Value::Bool(false)) | None => {}
                Some(other) => {
                    return Err(bad(format!(
                        "{}: expected true or false, got {other}",
                        p.st_flag()
                    )))
                }
            }
        }
    }
    let include_prompt = match v.get("include_prompt") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(bad(format!(
                "include_prompt: expected a boolean, got {other}"
            )))
        }
    };
    match modes.as_slice() {
        [p] => Ok((*p, include_prompt)),
        [] => Err(bad("no pooling mode is set".into())),
        many => Err(bad(format!(
            "several pooling modes at once ({}): sentence-transformers concatenates them, \
             which multiret does not support",
            many.iter()
                .map(|p| p.st_name())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn read_dense(dir: &Path) -> Result<Dense> {
    let cfg_path = dir.join("config.json");
    let v = read_json(&cfg_path)?;
    let bad = |m: String| ModelError::config(&cfg_path, m);
    let size = |key: &str| -> Result<usize> {
        v.get(key)
            .and_then(Value::as_u64)
            .map(|n| n as usize)
            .filter(|&n| n > 0 && n <= 1 << 20)
            .ok_or_else(|| bad(format!("{key}: expected a positive size")))
    };
    let (inp, out) = (size("in_features")?, size("out_features")?);
    let bias = match v.get("bias") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(bad(format!("bias: expected a boolean, got {other}"))),
    };
    let act_name = match v.get("activation_function") {
        None | Some(Value::Null) => "torch.nn.modules.activation.Tanh",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(bad(format!("activation_function: unexpected {other}"))),
    };
    let act = Activation::from_torch_name(act_name).ok_or_else(|| {
        bad(format!(
            "activation {act_name:?} is not supported (supported: {})",
            Activation::supported()
        ))
    })?;
    let st_path = dir.join("model.safetensors");
    if !st_path.is_file() {
        let legacy = dir.join("pytorch_model.bin");
        return Err(if legacy.is_file() {
            ModelError::format(
                &legacy,
                "Dense weights in PyTorch pickle format are not read: save the model with \
                 safetensors (sentence-transformers' default)",
            )
        } else {
            ModelError::format(&st_path, "missing: the Dense module's weights")
        });
    }
    let bytes = std::fs::read(&st_path).map_err(|e| ModelError::io(&st_path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| ModelError::format(&st_path, format!("not a valid safetensors file: {e}")))?;
    let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let view = st
            .tensor(name)
            .map_err(|_| ModelError::format(&st_path, format!("missing tensor {name}")))?;
        if view.shape() != shape {
            return Err(ModelError::format(
                &st_path,
                format!(
                    "tensor {name} has shape {:?}, but config.json says {shape:?}",
                    view.shape()
                ),
            ));
        }
        let vals = crate::weights::tensor_f32(&view, name, &st_path)?;
        if vals.iter().any(|x| !x.is_finite()) {
            return Err(ModelError::format(
                &st_path,
                format!("tensor {name} holds NaN or infinite values"),
            ));
        }
        Ok(vals)
    };
    let w = tensor("linear.weight", &[out, inp])?;
    let b = if bias {
        Some(tensor("linear.bias", &[out])?)
    } else {
        None
    };
    Ok(Dense {
        inp,
        out,
        w,
        b,
        act,
    })
}

fn read_prompts(dir: &Path) -> Result<Prefixes> {
    let path = dir.join(ST_CONFIG_FILE);
    let Some(v) = read_json_if_present(&path)? else {
        return Ok(Prefixes::none());
    };
    let bad = |m: String| ModelError::config(&path, m);
    let mut prompts = BTreeMap::new();
    match v.get("prompts") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, p) in map {
                let p = p
                    .as_str()
                    .ok_or_else(|| bad(format!("prompt {k:?}: expected a string")))?;
                prompts.insert(k.as_str(), p.to_string());
            }
        }
        Some(other) => return Err(bad(format!("prompts: expected an object, got {other}"))),
    }
    let default = match v.get("default_prompt_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(
            prompts
                .get(name.as_str())
                .cloned()
                .ok_or_else(|| bad(format!("default_prompt_name {name:?} names no prompt")))?,
        ),
        Some(other) => return Err(bad(format!("default_prompt_name: unexpected {other}"))),
    };
    let pick = |names: &[&str]| -> String {
        names
            .iter()
            .find_map(|n| prompts.get(n).cloned())
            .or_else(|| default.clone())
            .unwrap_or_default()
    };
    Ok(Prefixes {
        query: pick(&["query"]),
        passage: pick(&["passage", "document", "corpus"]),
    })
}

/// A size from a JSON number (integers, or floats such as the `1e30` transformers writes for
/// "no limit").
fn json_size(v: &Value) -> Option<f64> {
    v.as_u64().map(|n| n as f64).or_else(|| v.as_f64())
}

/// The encoding settings and head a sentence-transformers directory describes, for a
/// transformer of `config` whose files are in `tdir`.
pub fn read_settings(
    dir: &Path,
    modules: &[Module],
    tdir: &Path,
    config: &Config,
) -> Result<(EncodeSettings, Head)> {
    let modules_path = dir.join(MODULES_FILE);
    let pool_dir = dir.join(&modules[1].path);
    let (pooling, include_prompt) = read_pooling(&pool_dir.join("config.json"), config.hidden)?;
    let mut head = Head::default();
    for m in &modules[2..] {
        if m.kind == ModuleKind::Dense {
            head.dense.push(read_dense(&dir.join(&m.path))?);
        }
    }
    head.check(config.hidden)
        .map_err(|e| ModelError::config(&modules_path, e.to_string()))?;
    let normalize = modules.last().map(|m| m.kind) == Some(ModuleKind::Normalize);
    let prefixes = read_prompts(dir)?;
    let has_prompt = !prefixes.query.is_empty() || !prefixes.passage.is_empty();
    if !include_prompt && has_prompt {
        return Err(ModelError::config(
            pool_dir.join("config.json"),
            "include_prompt is false (prompt tokens left out of the pooling), which multiret \
             does not support with non-empty prompts",
        ));
    }
    let sbert_path = tdir.join(SBERT_CONFIG_FILE);
    let sbert = read_json_if_present(&sbert_path)?.unwrap_or(Value::Null);
    let lowercase = match sbert.get("do_lower_case") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ModelError::config(
                &sbert_path,
                format!("do_lower_case: expected a boolean, got {other}"),
            ))
        }
    };
    let limit = match sbert.get("max_seq_length") {
        None | Some(Value::Null) => {
            // sentence-transformers: min(max_position_embeddings, model_max_length).
            let tok_cfg = read_json_if_present(&tdir.join("tokenizer_config.json"))?;
            let mml = tok_cfg
                .as_ref()
                .and_then(|t| t.get("model_max_length"))
                .and_then(json_size);
            mml.map(|m| m.min(config.max_pos as f64))
        }
        Some(v) => Some(json_size(v).filter(|&m| m >= 2.0).ok_or_else(|| {
            ModelError::config(
                &sbert_path,
                format!("max_seq_length: expected a size of at least 2, got {v}"),
            )
        })?),
    };
    let max_seq_length = limit
        .map(|m| m as usize)
        .filter(|&m| m < config.max_tokens());
    if max_seq_length.is_some_and(|m| m < 2) {
        return Err(ModelError::config(
            &sbert_path,
            "max_seq_length leaves no room for the special tokens",
        ));
    }
    Ok((
        EncodeSettings {
            pooling,
            normalize,
            prefixes,
            max_seq_length,
            lowercase,
        },
        head,
    ))
}

/// Whether the `tokenizer_config.json` in `dir` names `XLMRobertaTokenizer`, whose
/// pre-tokenizer transformers builds with a white-space split before Metaspace (see
/// [`Tokenizer::split_on_whitespace`]).
pub fn builds_xlmr_tokenizer(dir: &Path) -> Result<bool> {
    let cfg = read_json_if_present(&dir.join("tokenizer_config.json"))?;
    Ok(matches!(
        cfg.as_ref()
            .and_then(|c| c.get("tokenizer_class"))
            .and_then(Value::as_str),
        Some("XLMRobertaTokenizer" | "XLMRobertaTokenizerFast")
    ))
}

/// The special tokens transformers' tokenizer classes name, found among the tokenizer's own.
fn special_tokens(family: TokenizerFamily, special: &[String]) -> Map<String, Value> {
    let roles: &[(&str, &[&str])] = match family {
        TokenizerFamily::WordPiece => &[
            ("unk_token", &["[UNK]"]),
            ("sep_token", &["[SEP]"]),
            ("pad_token", &["[PAD]"]),
            ("cls_token", &["[CLS]"]),
            ("mask_token", &["[MASK]"]),
        ],
        _ => &[
            ("bos_token", &["<s>", "[CLS]"]),
            ("eos_token", &["</s>", "[SEP]"]),
            ("unk_token", &["<unk>", "[UNK]"]),
            ("sep_token", &["</s>", "[SEP]"]),
            ("pad_token", &["<pad>", "[PAD]"]),
            ("cls_token", &["<s>", "[CLS]"]),
            ("mask_token", &["<mask>", "[MASK]"]),
        ],
    };
    let mut map = Map::new();
    for (role, names) in roles {
        if let Some(t) = names.iter().find(|n| special.iter().any(|s| s == *n)) {
            map.insert(role.to_string(), Value::String(t.to_string()));
        }
    }
    map
}

/// The BERT normaliser's switches (lowercase, strip_accents, handle_chinese_chars), found in a
/// `tokenizer.json` normaliser (alone or inside a sequence).
fn bert_normalizer(n: &Value) -> Option<(bool, Value, bool)> {
    match n.get("type").and_then(Value::as_str) {
        Some("BertNormalizer") => Some((
            n.get("lowercase").and_then(Value::as_bool).unwrap_or(true),
            n.get("strip_accents").cloned().unwrap_or(Value::Null),
            n.get("handle_chinese_chars")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        )),
        Some("Sequence") => n
            .get("normalizers")
            .and_then(Value::as_array)?
            .iter()
            .find_map(bert_normalizer),
        _ => None,
    }
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).expect("json values serialise");
    Ok(write_atomic(path, text.as_bytes())?)
}

/// Writes the tokenizer configuration and the sentence-transformers files of a model into
/// `dir`, beside its HF `config.json`, `model.safetensors` and `tokenizer.json`.
pub fn write(
    dir: &Path,
    config: &Config,
    settings: &EncodeSettings,
    head: &Head,
    tokenizer: &Tokenizer,
) -> Result<()> {
    let max_tokens = settings
        .max_seq_length
        .map_or(config.max_tokens(), |m| m.min(config.max_tokens()));
    // Tokenizer configuration (transformers' AutoTokenizer).
    let info = tokenizer
        .info()
        .ok_or_else(|| ModelError::Input("only a genuine HF tokenizer can be written".into()))?;
    let specials = special_tokens(info.family, &info.special);
    let mut tc = specials.clone();
    // transformers rebuilds the pre-tokenizer of XLMRobertaTokenizer (white space split
    // first): name that class only when tokenizer.json already has that form, else keep
    // tokenizer.json as it is with the generic class.
    let class = match info.family {
        TokenizerFamily::Unigram if tokenizer.splits_on_whitespace() => "XLMRobertaTokenizer",
        TokenizerFamily::WordPiece => "BertTokenizer",
        _ => "PreTrainedTokenizerFast",
    };
    tc.insert("tokenizer_class".into(), json!(class));
    tc.insert("model_max_length".into(), json!(max_tokens));
    tc.insert("clean_up_tokenization_spaces".into(), json!(false));
    if info.family == TokenizerFamily::WordPiece {
        if let Some((lower, strip, chinese)) = bert_normalizer(&info.normalizer) {
            tc.insert("do_lower_case".into(), json!(lower));
            tc.insert("strip_accents".into(), strip);
            tc.insert("tokenize_chinese_chars".into(), json!(chinese));
        }
    }
    write_json(&dir.join("tokenizer_config.json"), &Value::Object(tc))?;
    write_json(
        &dir.join("special_tokens_map.json"),
        &Value::Object(specials),
    )?;

    // sentence-transformers modules.
    let mut modules = vec![(ModuleKind::Transformer, String::new())];
    modules.push((ModuleKind::Pooling, "1_Pooling".to_string()));
    for (i, _) in head.dense.iter().enumerate() {
        modules.push((ModuleKind::Dense, format!("{}_Dense", i + 2)));
    }
    if settings.normalize {
        modules.push((
            ModuleKind::Normalize,
            format!("{}_Normalize", modules.len()),
        ));
    }
    let list: Vec<Value> = modules
        .iter()
        .enumerate()
        .map(|(i, (kind, path))| {
            json!({"idx": i, "name": i.to_string(), "path": path, "type": kind.type_name()})
        })
        .collect();
    write_json(&dir.join(MODULES_FILE), &Value::Array(list))?;
    write_json(
        &dir.join(SBERT_CONFIG_FILE),
        &json!({"max_seq_length": max_tokens, "do_lower_case": settings.lowercase}),
    )?;
    let mut pool = Map::new();
    pool.insert("word_embedding_dimension".into(), json!(config.hidden));
    for p in Pooling::ALL {
        pool.insert(p.st_flag().into(), json!(p == settings.pooling));
    }
    pool.insert("include_prompt".into(), json!(true));
    write_json(
        &dir.join("1_Pooling").join("config.json"),
        &Value::Object(pool),
    )?;
    for (d, (_, path)) in head.dense.iter().zip(&modules[2..]) {
        let ddir = dir.join(path);
        write_json(
            &ddir.join("config.json"),
            &json!({
                "in_features": d.inp,
                "out_features": d.out,
                "bias": d.b.is_some(),
                "activation_function": d.act.torch_name(),
            }),
        )?;
        write_atomic(&ddir.join("model.safetensors"), &dense_safetensors(d)?)?;
    }
    if settings.normalize {
        let (_, path) = modules.last().expect("normalize module");
        write_json(&dir.join(path).join("config.json"), &json!({}))?;
    }
    let p = &settings.prefixes;
    write_json(
        &dir.join(ST_CONFIG_FILE),
        &json!({
            "__version__": {"multiret": env!("CARGO_PKG_VERSION")},
            "prompts": {"query": p.query, "passage": p.passage, "document": p.passage},
            "default_prompt_name": null,
            "similarity_fn_name": "cosine",
        }),
    )
}

fn dense_safetensors(d: &Dense) -> Result<Vec<u8>> {
    use safetensors::tensor::TensorView;
    let mut views = vec![(
        "linear.weight".to_string(),
        TensorView::new(
            safetensors::Dtype::F32,
            vec![d.out, d.inp],
            bytemuck::cast_slice(&d.w),
        )
        .map_err(|e| ModelError::Input(format!("Dense weight: {e}")))?,
    )];
    if let Some(b) = &d.b {
        views.push((
            "linear.bias".to_string(),
            TensorView::new(
                safetensors::Dtype::F32,
                vec![d.out],
                bytemuck::cast_slice(b),
            )
            .map_err(|e| ModelError::Input(format!("Dense bias: {e}")))?,
        ));
    }
    safetensors::serialize(views, None)
        .map_err(|e| ModelError::Input(format!("safetensors serialisation: {e}")))
}
