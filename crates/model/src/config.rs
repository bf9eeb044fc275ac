//! Model configuration: architecture sizes (HF `config.json`) and encoding settings
//! (pooling, prefixes), kept in `multiret.json` beside it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The encoder family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// BERT (multilingual-E5, LaBSE, MiniLM): absolute positions from 0, token types.
    Bert,
    /// XLM-RoBERTa: positions start at `pad_id + 1`, one token type.
    XlmRoberta,
}

/// How token states become one vector: the pooling modes sentence-transformers writes in
/// `1_Pooling/config.json`, over the real (non-padding) tokens of each sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pooling {
    /// Mean over the tokens (E5). sentence-transformers `mean`.
    #[serde(rename = "mean")]
    Mean,
    /// The first token (CLS; LaBSE). `cls`.
    #[serde(rename = "cls")]
    Cls,
    /// The elementwise maximum over the tokens. `max`.
    #[serde(rename = "max")]
    Max,
    /// The sum over the tokens divided by the square root of their number.
    /// `mean_sqrt_len_tokens`.
    #[serde(rename = "mean_sqrt_len_tokens")]
    MeanSqrtLen,
    /// The mean weighted by position: token `i` (0-based) weighs `i + 1`. `weightedmean`.
    #[serde(rename = "weightedmean")]
    WeightedMean,
    /// The last token (its `</s>` or `[SEP]` with this crate's right padding). `lasttoken`.
    #[serde(rename = "lasttoken")]
    LastToken,
}

impl Pooling {
    /// Every mode, in sentence-transformers' order.
    pub const ALL: [Pooling; 6] = [
        Pooling::Cls,
        Pooling::Mean,
        Pooling::Max,
        Pooling::MeanSqrtLen,
        Pooling::WeightedMean,
        Pooling::LastToken,
    ];

    /// The name sentence-transformers gives the mode (`pooling_mode` in `1_Pooling/config.json`).
    pub fn st_name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "mean_sqrt_len_tokens",
            Pooling::WeightedMean => "weightedmean",
            Pooling::LastToken => "lasttoken",
        }
    }

    /// The mode of a sentence-transformers name.
    pub fn from_st_name(name: &str) -> Option<Pooling> {
        Pooling::ALL.into_iter().find(|p| p.st_name() == name)
    }

    /// The boolean key of the mode in the older `1_Pooling/config.json` layout
    /// (`pooling_mode_mean_tokens`, ...).
    pub fn st_flag(self) -> &'static str {
        match self {
            Pooling::Mean => "pooling_mode_mean_tokens",
            Pooling::Cls => "pooling_mode_cls_token",
            Pooling::Max => "pooling_mode_max_tokens",
            Pooling::MeanSqrtLen => "pooling_mode_mean_sqrt_len_tokens",
            Pooling::WeightedMean => "pooling_mode_weightedmean_tokens",
            Pooling::LastToken => "pooling_mode_lasttoken",
        }
    }

    /// The pooled vector as a weighted sum of the token states: writes the weight of each of
    /// a sequence's `weights.len()` real tokens and returns `true`, or returns `false` (and
    /// writes nothing) for [`Pooling::Max`], which is not a weighted sum. The one definition
    /// of the linear modes, shared by every engine and the trainer.
    pub fn token_weights(self, weights: &mut [f32]) -> bool {
        let n = weights.len();
        if n == 0 {
            return self != Pooling::Max;
        }
        weights.fill(0.0);
        match self {
            Pooling::Mean => weights.fill(1.0 / n as f32),
            Pooling::Cls => weights[0] = 1.0,
            Pooling::LastToken => weights[n - 1] = 1.0,
            Pooling::MeanSqrtLen => weights.fill(1.0 / (n as f32).sqrt()),
            Pooling::WeightedMean => {
                let total = (n * (n + 1) / 2) as f32;
                for (i, w) in weights.iter_mut().enumerate() {
                    *w = (i + 1) as f32 / total;
                }
            }
            Pooling::Max => return false,
        }
        true
    }
}

/// Query / passage prefixes prepended to the text before tokenisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefixes {
    /// Prefix of queries (`"query: "` for E5).
    pub query: String,
    /// Prefix of passages (`"passage: "` for E5).
    pub passage: String,
}

impl Prefixes {
    /// The E5 prefixes.
    pub fn e5() -> Self {
        Prefixes {
            query: "query: ".into(),
            passage: "passage: ".into(),
        }
    }
    /// No prefixes.
    pub fn none() -> Self {
        Prefixes {
            query: String::new(),
            passage: String::new(),
        }
    }
}

/// Encoding settings that HF `config.json` does not hold: what sentence-transformers keeps in
/// `modules.json`, `1_Pooling/`, `sentence_bert_config.json` and
/// `config_sentence_transformers.json` (see [`crate::st`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodeSettings {
    /// Pooling.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalised (a `Normalize` module).
    pub normalize: bool,
    /// Prefixes (sentence-transformers prompts).
    pub prefixes: Prefixes,
    /// Most tokens per input, special tokens included, when below the model's positions
    /// (sentence-transformers `max_seq_length`); `None`: the positions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seq_length: Option<usize>,
    /// Whether texts are lower-cased before tokenisation (sentence-transformers
    /// `do_lower_case`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lowercase: bool,
}

impl EncodeSettings {
    /// E5 defaults: mean pooling, normalised, `query: ` / `passage: `.
    pub fn e5() -> Self {
        EncodeSettings {
            pooling: Pooling::Mean,
            normalize: true,
            prefixes: Prefixes::e5(),
            max_seq_length: None,
            lowercase: false,
        }
    }

    /// Settings with this pooling, normalisation and prefixes, and the other fields at their
    /// defaults (the model's positions, no lower-casing).
    pub fn new(pooling: Pooling, normalize: bool, prefixes: Prefixes) -> Self {
        EncodeSettings {
            pooling,
            normalize,
            prefixes,
            max_seq_length: None,
            lowercase: false,
        }
    }
}

/// Architecture sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Family.
    pub arch: Arch,
    /// Hidden size.
    pub hidden: usize,
    /// Number of layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// FFN inner size.
    pub ffn: usize,
    /// Rows of the word embedding table.
    pub vocab: usize,
    /// Rows of the position table.
    pub max_pos: usize,
    /// Rows of the token-type table.
    pub type_vocab: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f32,
    /// Padding token id.
    pub pad_id: u32,
}

impl Config {
    /// Checks the sizes against each other.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |m: String| Err(ModelError::config(path, m));
        if self.hidden == 0
            || self.layers == 0
            || self.heads == 0
            || self.ffn == 0
            || self.vocab == 0
        {
            return bad(format!("zero size in {self:?}"));
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return bad(format!(
                "hidden {} not divisible by heads {}",
                self.hidden, self.heads
            ));
        }
        if self.type_vocab == 0 || self.max_pos <= self.position_offset() {
            return bad(format!(
                "max_pos {} / type_vocab {} too small",
                self.max_pos, self.type_vocab
            ));
        }
        if self.pad_id as usize >= self.vocab {
            return bad(format!(
                "pad_id {} outside vocabulary {}",
                self.pad_id, self.vocab
            ));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return bad(format!(
                "layer_norm_eps {} out of range",
                self.layer_norm_eps
            ));
        }
        let limit = 1usize << 20;
        if self.hidden > limit
            || self.ffn > limit
            || self.layers > 1024
            || self.vocab > 1 << 24
            || self.max_pos > limit
        {
            return bad(format!("implausibly large sizes in {self:?}"));
        }
        Ok(())
    }

    /// First position id (0 for BERT, `pad_id + 1` for XLM-R).
    pub fn position_offset(&self) -> usize {
        match self.arch {
            Arch::Bert => 0,
            Arch::XlmRoberta => self.pad_id as usize + 1,
        }
    }

    /// Most tokens per input (special tokens included): positions available.
    pub fn max_tokens(&self) -> usize {
        self.max_pos - self.position_offset()
    }

    /// Head size.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// Reads an HF `config.json`.
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let v: HfConfig =
            serde_json::from_str(&text).map_err(|e| ModelError::config(path, e.to_string()))?;
        let arch = match v.model_type.as_deref() {
            Some("bert") | None => Arch::Bert,
            Some("xlm-roberta") | Some("roberta") => Arch::XlmRoberta,
            Some(other) => {
                return Err(ModelError::config(
                    path,
                    format!("unsupported model_type {other:?} (bert or xlm-roberta)"),
                ))
            }
        };
        if let Some(act) = v.hidden_act.as_deref() {
            if act != "gelu" {
                return Err(ModelError::config(
                    path,
                    format!("unsupported hidden_act {act:?} (only the erf GELU, \"gelu\")"),
                ));
            }
        }
        let c = Config {
            arch,
            hidden: v.hidden_size,
            layers: v.num_hidden_layers,
            heads: v.num_attention_heads,
            ffn: v.intermediate_size,
            vocab: v.vocab_size,
            max_pos: v.max_position_embeddings,
            type_vocab: v.type_vocab_size.unwrap_or(2),
            layer_norm_eps: v.layer_norm_eps.unwrap_or(1e-12) as f32,
            pad_id: v
                .pad_token_id
                .unwrap_or(if arch == Arch::Bert { 0 } else { 1 }),
        };
        c.validate(path)?;
        Ok(c)
    }

    /// The HF `config.json` text of this configuration (loadable by Python `transformers`).
    pub fn to_hf_json(&self) -> String {
        let (model_type, archs) = match self.arch {
            Arch::Bert => ("bert", "BertModel"),
            Arch::XlmRoberta => ("xlm-roberta", "XLMRobertaModel"),
        };
        let v = serde_json::json!({
            "architectures": [archs],
            "model_type": model_type,
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "intermediate_size": self.ffn,
            "vocab_size": self.vocab,
            "max_position_embeddings": self.max_pos,
            "type_vocab_size": self.type_vocab,
            "layer_norm_eps": self.layer_norm_eps as f64,
            "pad_token_id": self.pad_id,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "initializer_range": 0.02,
            "position_embedding_type": "absolute",
            "torch_dtype": "float32",
        });
        serde_json::to_string_pretty(&v).expect("json")
    }
}

#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    vocab_size: usize,
    max_position_embeddings: usize,
    type_vocab_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    pad_token_id: Option<u32>,
    hidden_act: Option<String>,
}
