//! Tokenisation: the genuine HF `tokenizer.json` through the `tokenizers` crate, or a Unigram
//! tokenizer rebuilt from the vocabulary and normalisation map inside an E5S1 file.
//!
//! Inputs longer than the model's positions are truncated: the content keeps its first
//! `max_tokens - 2` tokens, then `<s>` / `</s>` (or `[CLS]` / `[SEP]`) wrap it.
//!
//! The `.bin`-only tokenizer follows the genuine one (normalise each code point through the
//! map, collapse runs of spaces, Metaspace with `▁` prepended and words split before `▁`,
//! Viterbi over the piece scores), but its map works code point by code point, while the
//! genuine normaliser also rewrites sequences (it composes decomposed diacritics:
//! `"Vie\u{302}\u{323}t"` tokenises differently). docs/models.md reports 54 differing
//! texts of 26,104 on XQuAD-R (0.2%) for such a rebuilt tokenizer; measured on the 25,992 texts
//! `multiret eval --dataset xquad-r` encodes, this one differs on none
//! (`cargo run --release -p multiret-model --example tokenizer_diff`). Prefer `tokenizer.json`
//! when you have it: the built-in `e5-small` always pairs the weights with it.

use std::path::Path;

use rayon::prelude::*;
use tokenizers::models::unigram::Unigram;
use tokenizers::Model as _;

use crate::e5s1::BinVocab;
use crate::error::{ModelError, Result};
use crate::unigram::{HfTokenizer, TokModel};

/// A tokenizer producing model input ids.
#[derive(Clone)]
pub enum Tokenizer {
    /// A genuine HF `tokenizer.json` (its Unigram model, if it has one, as
    /// [`crate::unigram::FastUnigram`]).
    Hf(Box<HfTokenizer>),
    /// Rebuilt from an E5S1 vocabulary.
    Bin(Box<BinTokenizer>),
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tokenizer::Hf(_) => f.write_str("Tokenizer::Hf"),
            Tokenizer::Bin(_) => f.write_str("Tokenizer::Bin"),
        }
    }
}

/// The model family of an HF tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerFamily {
    /// SentencePiece Unigram (XLM-R, multilingual-E5).
    Unigram,
    /// WordPiece (BERT, LaBSE).
    WordPiece,
    /// Byte-pair encoding.
    Bpe,
    /// Word level.
    WordLevel,
}

/// The facts of a tokenizer that its `tokenizer_config.json` states.
#[derive(Debug, Clone)]
pub struct TokenizerInfo {
    /// The model family.
    pub family: TokenizerFamily,
    /// The special added tokens, by id.
    pub special: Vec<String>,
    /// The normaliser as `tokenizer.json` writes it (`Null` when there is none).
    pub normalizer: serde_json::Value,
}

/// The Unigram tokenizer of an E5S1 file.
#[derive(Clone)]
pub struct BinTokenizer {
    model: Unigram,
    norm: Vec<(char, Vec<char>)>,
    bos: u32,
    eos: u32,
}

impl BinTokenizer {
    /// Builds the tokenizer from the vocabulary of an E5S1 file.
    pub fn new(v: &BinVocab) -> Result<Self> {
        let vocab: Vec<(String, f64)> = v
            .pieces
            .iter()
            .cloned()
            .zip(v.scores.iter().map(|&s| s as f64))
            .collect();
        let model = Unigram::from(vocab, Some(v.unk as usize), false)
            .map_err(|e| ModelError::Tokenizer(format!("building the Unigram model: {e}")))?;
        Ok(BinTokenizer {
            model,
            norm: v.norm.clone(),
            bos: v.bos,
            eos: v.eos,
        })
    }

    /// The normalised, Metaspace-split words of `text`.
    fn words(&self, text: &str) -> Vec<String> {
        let mut s = String::with_capacity(text.len() + 4);
        s.push('▁');
        let mut last_space = false;
        for ch in text.chars() {
            let mapped: &[char] = match self.norm.binary_search_by(|(c, _)| c.cmp(&ch)) {
                Ok(i) => &self.norm[i].1,
                Err(_) => core::slice::from_ref(&ch),
            };
            for &m in mapped {
                if m == ' ' {
                    if !last_space {
                        s.push('▁');
                    }
                    last_space = true;
                } else {
                    s.push(m);
                    last_space = false;
                }
            }
        }
        // Split before every `▁` (each word keeps its leading marker); white space alone makes
        // no word, as with the genuine tokenizer split on white space first.
        let mut words = Vec::new();
        let mut cur = String::new();
        for ch in s.chars() {
            if ch == '▁' && !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            cur.push(ch);
        }
        if !cur.is_empty() {
            words.push(cur);
        }
        words.retain(|w| w != "▁");
        words
    }

    fn encode(&self, text: &str, max_tokens: usize) -> Result<Vec<u32>> {
        let mut ids = vec![self.bos];
        for w in self.words(text) {
            let toks = self
                .model
                .tokenize(&w)
                .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
            ids.extend(toks.iter().map(|t| t.id));
        }
        ids.truncate(max_tokens.saturating_sub(1).max(1));
        ids.push(self.eos);
        Ok(ids)
    }
}

impl Tokenizer {
    /// Loads an HF `tokenizer.json` (its own padding and truncation settings are replaced by
    /// the encoder's).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let mut t: HfTokenizer = serde_json::from_str(&text)
            .map_err(|e| ModelError::format(path, format!("not a usable tokenizer.json: {e}")))?;
        t.with_padding(None);
        Ok(Tokenizer::Hf(Box::new(t)))
    }

    /// A tokenizer built with the `tokenizers` crate's API (through its `tokenizer.json`
    /// form).
    pub fn from_tokenizers(t: &tokenizers::Tokenizer) -> Result<Self> {
        let json = t
            .to_string(false)
            .map_err(|e| ModelError::Tokenizer(format!("serialising the tokenizer: {e}")))?;
        let mut t: HfTokenizer = serde_json::from_str(&json)
            .map_err(|e| ModelError::Tokenizer(format!("reading the tokenizer back: {e}")))?;
        t.with_padding(None);
        Ok(Tokenizer::Hf(Box::new(t)))
    }

    /// The tokenizer rebuilt from an E5S1 vocabulary.
    pub fn from_bin(v: &BinVocab) -> Result<Self> {
        Ok(Tokenizer::Bin(Box::new(BinTokenizer::new(v)?)))
    }

    /// Token ids of `text` with special tokens, at most `max_tokens` of them.
    pub fn encode(&self, text: &str, max_tokens: usize) -> Result<Vec<u32>> {
        if max_tokens < 2 {
            return Err(ModelError::Input(format!(
                "max_tokens {max_tokens} leaves no room for special tokens"
            )));
        }
        match self {
            Tokenizer::Hf(t) => {
                let enc = t
                    .encode(text, true)
                    .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
                let ids = enc.get_ids();
                if ids.len() <= max_tokens {
                    return Ok(ids.to_vec());
                }
                // Keep the head of the content and the closing special token.
                let mut out = ids[..max_tokens - 1].to_vec();
                out.push(*ids.last().expect("non-empty"));
                Ok(out)
            }
            Tokenizer::Bin(t) => t.encode(text, max_tokens),
        }
    }

    /// [`Tokenizer::encode`] for many texts, in parallel.
    pub fn encode_batch(&self, texts: &[&str], max_tokens: usize) -> Result<Vec<Vec<u32>>> {
        texts
            .par_iter()
            .map(|t| self.encode(t, max_tokens))
            .collect()
    }

    /// Splits on white space before the Metaspace pre-tokenizer of a SentencePiece-style
    /// tokenizer (`Metaspace` alone becomes `Sequence[WhitespaceSplit, Metaspace]`), as
    /// transformers (5 and later) builds `XLMRobertaTokenizer`: white space at the ends of a
    /// text then adds no `▁` token, where the bare Metaspace of multilingual-E5's own
    /// `tokenizer.json` adds one for trailing white space. Nothing else changes. Returns
    /// whether the tokenizer now has that form ([`Tokenizer::splits_on_whitespace`]).
    pub fn split_on_whitespace(&mut self) -> bool {
        use tokenizers::pre_tokenizers::sequence::Sequence;
        use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
        use tokenizers::pre_tokenizers::PreTokenizerWrapper;
        let Tokenizer::Hf(t) = self else { return false };
        if let Some(PreTokenizerWrapper::Metaspace(m)) = t.get_pre_tokenizer() {
            let seq = Sequence::new(vec![
                PreTokenizerWrapper::WhitespaceSplit(WhitespaceSplit),
                PreTokenizerWrapper::Metaspace(m.clone()),
            ]);
            t.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(seq)));
        }
        self.splits_on_whitespace()
    }

    /// Whether the pre-tokenizer is `Sequence[WhitespaceSplit, Metaspace]` (see
    /// [`Tokenizer::split_on_whitespace`]).
    pub fn splits_on_whitespace(&self) -> bool {
        let Tokenizer::Hf(t) = self else { return false };
        let Some(v) = t
            .get_pre_tokenizer()
            .and_then(|p| serde_json::to_value(p).ok())
        else {
            return false;
        };
        let types: Vec<&str> = v
            .get("pretokenizers")
            .and_then(|l| l.as_array())
            .map(|l| {
                l.iter()
                    .filter_map(|p| p.get("type").and_then(|t| t.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        types == ["WhitespaceSplit", "Metaspace"]
    }

    /// What `tokenizer_config.json` needs to say of a genuine HF tokenizer (`None` for the
    /// E5S1 one, which cannot be saved).
    pub fn info(&self) -> Option<TokenizerInfo> {
        let Tokenizer::Hf(t) = self else { return None };
        use tokenizers::models::ModelWrapper;
        let family = match t.get_model() {
            TokModel::Unigram(_) => TokenizerFamily::Unigram,
            TokModel::Other(m) => match **m {
                ModelWrapper::Unigram(_) => TokenizerFamily::Unigram,
                ModelWrapper::WordPiece(_) => TokenizerFamily::WordPiece,
                ModelWrapper::BPE(_) => TokenizerFamily::Bpe,
                ModelWrapper::WordLevel(_) => TokenizerFamily::WordLevel,
            },
        };
        let mut special: Vec<(u32, String)> = t
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, tok)| tok.special)
            .map(|(id, tok)| (id, tok.content))
            .collect();
        special.sort();
        let normalizer = t
            .get_normalizer()
            .and_then(|n| serde_json::to_value(n).ok())
            .unwrap_or(serde_json::Value::Null);
        Some(TokenizerInfo {
            family,
            special: special.into_iter().map(|(_, s)| s).collect(),
            normalizer,
        })
    }

    /// The `tokenizer.json` text of a genuine HF tokenizer (`None` for the E5S1 one).
    pub fn to_json(&self) -> Option<String> {
        match self {
            Tokenizer::Hf(t) => t.to_string(false).ok(),
            Tokenizer::Bin(_) => None,
        }
    }

    /// Writes the tokenizer as `tokenizer.json` (only a genuine HF tokenizer can be saved).
    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            Tokenizer::Hf(t) => t.save(path, false).map_err(|e| ModelError::format(path, format!("writing tokenizer.json: {e}"))),
            Tokenizer::Bin(_) => Err(ModelError::Input(
                "this model has only the E5S1 vocabulary; converting needs a genuine tokenizer.json (use the e5-small spec, which pairs the weights with it)".into(),
            )),
        }
    }
}
