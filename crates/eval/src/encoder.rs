//! The model side of the evaluation, kept abstract: a [`TextEmbedder`] turns texts into embeddings.
//!
//! The evaluation builds the texts (prefixes included, see [`Prefixes`]) and hands them to the
//! encoder in batches; any model can be evaluated by implementing the trait, and any tool's
//! embeddings can be scored through `.npy` files instead (see [`crate::pipeline`]).

use crate::error::{BoxError, EvalError, Result};

/// A text encoder: the same model embeds queries and passages.
///
/// `Sync` because the evaluation runs on a rayon pool (`--threads`); an encoder parallelises
/// its own work internally if it wants to.
pub trait TextEmbedder: Sync {
    /// A name that identifies the model *and its weights* (it keys the embedding cache: two
    /// different models must never share a name).
    fn name(&self) -> String;

    /// The embedding dimension.
    fn dim(&self) -> usize;

    /// Embeds `texts` (prefixes already included) into `texts.len() * dim()` row-major floats.
    /// The evaluation L2-normalises the rows, so the encoder need not. `progress(n)` may be
    /// called with the number of texts finished since its last call (it is optional).
    fn encode(&self, texts: &[String], progress: &dyn Fn(usize)) -> Result<Vec<f32>, BoxError>;

    /// The prefixes this model was trained with, used when the user names none (the E5
    /// prefixes otherwise).
    fn prefixes(&self) -> Option<Prefixes> {
        None
    }

    /// Embeds text pairs `(text, context)`, as a cross-segment input (`[CLS] a [SEP] b [SEP]`),
    /// for `--candidates context`. The default fails: most retrieval models take one text.
    fn encode_pairs(
        &self,
        pairs: &[(String, String)],
        progress: &dyn Fn(usize),
    ) -> Result<Vec<f32>, BoxError> {
        let _ = (pairs, progress);
        Err(format!("model `{}` does not support text pairs", self.name()).into())
    }
}

/// The prefixes put before every query and every passage (E5 style). Empty strings for models
/// trained without them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Prefixes {
    /// Before each query (E5: `"query: "`).
    pub query: String,
    /// Before each candidate passage or sentence (E5: `"passage: "`).
    pub passage: String,
}

impl Default for Prefixes {
    fn default() -> Self {
        Self::e5()
    }
}

impl Prefixes {
    /// E5's prefixes: `"query: "` and `"passage: "`.
    pub fn e5() -> Self {
        Self {
            query: "query: ".into(),
            passage: "passage: ".into(),
        }
    }

    /// No prefixes.
    pub fn none() -> Self {
        Self {
            query: String::new(),
            passage: String::new(),
        }
    }
}

/// What a LAReQA candidate is encoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateMode {
    /// The sentence alone, with the passage prefix (the protocol's default).
    #[default]
    Sentence,
    /// The sentence (with the passage prefix) and its paragraph as a text pair, as LAReQA's own
    /// baselines did ([`TextEmbedder::encode_pairs`]).
    Context,
    /// One text: the passage prefix, the sentence and right after it its paragraph, newlines
    /// removed and the ends trimmed, as XTREME-R encodes LAReQA candidates
    /// (`(sentence + context).replace("\n", "")` in google-research/xtreme,
    /// `third_party/evaluate_retrieval.py`, its text files then read back line by line with
    /// `strip()`). No separator is inserted.
    SentenceContext,
}

impl CandidateMode {
    /// `"sentence"`, `"context"` or `"sentence_context"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CandidateMode::Sentence => "sentence",
            CandidateMode::Context => "context",
            CandidateMode::SentenceContext => "sentence_context",
        }
    }

    /// The candidate text of this mode for `sentence` in `paragraph`, prefix included (the
    /// context mode's second segment is the paragraph itself).
    pub fn candidate_text(self, prefix: &str, sentence: &str, paragraph: &str) -> String {
        match self {
            CandidateMode::Sentence | CandidateMode::Context => format!("{prefix}{sentence}"),
            CandidateMode::SentenceContext => {
                let joined = format!("{sentence}{paragraph}").replace('\n', "");
                format!("{prefix}{}", joined.trim())
            }
        }
    }
}

impl std::str::FromStr for CandidateMode {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sentence" => Ok(CandidateMode::Sentence),
            "context" => Ok(CandidateMode::Context),
            "sentence_context" | "sentence-context" => Ok(CandidateMode::SentenceContext),
            _ => Err(EvalError::InvalidArgument(format!(
                "candidate mode `{s}` (expected `sentence`, `context` or `sentence_context`)"
            ))),
        }
    }
}

/// A model-free lexical baseline: hashed bags of character n-grams.
///
/// Each text (with any known prefix removed, lower-cased, padded with a space at both ends)
/// is split into character n-grams, hashed (FNV-1a) into `dim` signed buckets and
/// L2-normalised. It needs no weights, is deterministic, and is a meaningful floor for the
/// monolingual setting (shared words and names score high); across scripts it is near chance.
/// Model spec: `ngram` (n = 3, dim = 384) or `ngram:N:DIM`.
#[derive(Debug, Clone)]
pub struct NgramEncoder {
    n: usize,
    dim: usize,
    strip: Vec<String>,
}

impl NgramEncoder {
    /// An encoder of `n`-grams into `dim` buckets, stripping E5's prefixes.
    pub fn new(n: usize, dim: usize) -> Result<Self> {
        if n == 0 || dim == 0 {
            return Err(EvalError::InvalidArgument(format!(
                "n-gram encoder needs n > 0 and dim > 0 (got n = {n}, dim = {dim})"
            )));
        }
        Ok(Self {
            n,
            dim,
            strip: vec!["query: ".into(), "passage: ".into()],
        })
    }

    /// Also strips these prefixes (e.g. custom `--query-prefix`).
    pub fn strip_prefixes(mut self, prefixes: &Prefixes) -> Self {
        for p in [&prefixes.query, &prefixes.passage] {
            if !p.is_empty() && !self.strip.contains(p) {
                self.strip.push(p.clone());
            }
        }
        self
    }

    /// Parses `ngram` or `ngram:N:DIM`; `None` when `spec` names another model.
    pub fn from_spec(spec: &str) -> Option<Result<Self>> {
        let rest = spec.strip_prefix("ngram")?;
        if rest.is_empty() {
            return Some(Self::new(3, 384));
        }
        let rest = rest.strip_prefix(':')?;
        let parts: Vec<&str> = rest.split(':').collect();
        let parsed = match parts.as_slice() {
            [n, d] => n.parse::<usize>().ok().zip(d.parse::<usize>().ok()),
            _ => None,
        };
        Some(match parsed {
            Some((n, d)) => Self::new(n, d),
            None => Err(EvalError::InvalidArgument(format!(
                "model spec `{spec}` (expected `ngram` or `ngram:N:DIM`)"
            ))),
        })
    }

    /// The embedding of one text, L2-normalised (all zeros for an empty text).
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dim];
        self.accumulate(text, 1.0, &mut v);
        normalize(&mut v);
        v
    }

    fn accumulate(&self, text: &str, weight: f32, v: &mut [f32]) {
        let mut t = text;
        for p in &self.strip {
            if let Some(r) = t.strip_prefix(p.as_str()) {
                t = r;
                break;
            }
        }
        let chars: Vec<char> = std::iter::once(' ')
            .chain(t.chars().flat_map(char::to_lowercase))
            .chain(std::iter::once(' '))
            .collect();
        if chars.len() < self.n || t.is_empty() {
            return;
        }
        let mut buf = [0u8; 4];
        for w in chars.windows(self.n) {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for c in w {
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    h ^= b as u64;
                    h = h.wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
            let bucket = (h % self.dim as u64) as usize;
            let sign = if (h >> 63) == 0 { 1.0 } else { -1.0 };
            v[bucket] += sign * weight;
        }
    }
}

fn normalize(v: &mut [f32]) {
    let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

impl TextEmbedder for NgramEncoder {
    fn name(&self) -> String {
        format!("ngram:{}:{}", self.n, self.dim)
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn encode(&self, texts: &[String], progress: &dyn Fn(usize)) -> Result<Vec<f32>, BoxError> {
        let mut out = Vec::with_capacity(texts.len() * self.dim);
        for t in texts {
            out.extend(self.embed(t));
        }
        progress(texts.len());
        Ok(out)
    }

    /// The sentence's n-grams plus a quarter weight of its context's.
    fn encode_pairs(
        &self,
        pairs: &[(String, String)],
        progress: &dyn Fn(usize),
    ) -> Result<Vec<f32>, BoxError> {
        let mut out = Vec::with_capacity(pairs.len() * self.dim);
        for (a, b) in pairs {
            let mut v = vec![0.0f32; self.dim];
            self.accumulate(a, 1.0, &mut v);
            self.accumulate(b, 0.25, &mut v);
            normalize(&mut v);
            out.extend(v);
        }
        progress(pairs.len());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_basics() {
        let e = NgramEncoder::new(3, 64).unwrap();
        let a = e.embed("query: The Rhine rises in the Alps");
        let b = e.embed("passage: the rhine rises in the alps");
        let c = e.embed("passage: 蜜蜂生活在蜂群中");
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        assert!((dot(&a, &b) - 1.0).abs() < 1e-5);
        assert!(dot(&a, &c) < 0.5);
        assert!(e.embed("").iter().all(|&x| x == 0.0));
        assert_eq!(
            NgramEncoder::from_spec("ngram").unwrap().unwrap().dim(),
            384
        );
        assert_eq!(
            NgramEncoder::from_spec("ngram:2:16")
                .unwrap()
                .unwrap()
                .name(),
            "ngram:2:16"
        );
        assert!(NgramEncoder::from_spec("ngram:x").unwrap().is_err());
        assert!(NgramEncoder::from_spec("e5-small").is_none());
        assert!(NgramEncoder::new(0, 3).is_err());
        assert_eq!(
            "context".parse::<CandidateMode>().unwrap(),
            CandidateMode::Context
        );
        assert!("para".parse::<CandidateMode>().is_err());
    }
}
