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

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over the non-padding tokens (E5).
    Mean,
    /// The first token (CLS; LaBSE).
    Cls,
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

/// Encoding settings that HF `config.json` does not hold (file `multiret.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodeSettings {
    /// Pooling.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalised.
    pub normalize: bool,
    /// Prefixes.
    pub prefixes: Prefixes,
}

impl EncodeSettings {
    /// E5 defaults: mean pooling, normalised, `query: ` / `passage: `.
    pub fn e5() -> Self {
        EncodeSettings {
            pooling: Pooling::Mean,
            normalize: true,
            prefixes: Prefixes::e5(),
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
