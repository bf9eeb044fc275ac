//! A SentencePiece Unigram model that loads fast, for `tokenizer.json` files.
//!
//! The `tokenizers` crate builds its Unigram model's prefix trie with one hash map per node:
//! for multilingual-E5's 250,002 pieces that is about 0.4 s to build and 0.15 s to drop, most
//! of a model's start-up. [`FastUnigram`] finds the pieces that start at a position by looking
//! up each candidate end in one open-addressing table over the vocabulary (built in a few
//! milliseconds), and runs the same Viterbi search as `tokenizers`' optimised path
//! (`Unigram::encode_optimized`, after SentencePiece's `unigram_model.cc`): the same scores,
//! the same unknown-piece penalty (`min_score - 10`), the same tie rule (the first path found
//! stays unless a later one scores strictly higher), unknown pieces fused, byte fallback, and
//! the same id for a piece listed twice (the last). The ids are the same; the tests compare
//! them with `tokenizers`' own model on generated vocabularies and on real text.
//!
//! [`TokModel`] is the model slot of [`HfTokenizer`]: this Unigram model, or any other model
//! `tokenizers` knows (BPE, WordPiece, WordLevel), read and written in the `tokenizer.json`
//! form of each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokenizers::models::unigram::UnigramTrainer;
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::{Model, Token};

/// `tokenizers`' tokenizer with [`TokModel`] in its model slot: what multiret loads a
/// `tokenizer.json` into.
pub type HfTokenizer = tokenizers::TokenizerImpl<
    TokModel,
    tokenizers::NormalizerWrapper,
    tokenizers::PreTokenizerWrapper,
    tokenizers::PostProcessorWrapper,
    tokenizers::DecoderWrapper,
>;

/// The penalty of an unknown piece below the lowest piece score (SentencePiece's
/// `kUnkPenalty`).
const UNK_PENALTY: f64 = 10.0;

/// A Unigram model: pieces with scores, an optional unknown piece, optional byte fallback.
#[derive(Clone, Debug)]
pub struct FastUnigram {
    vocab: Vec<(String, f64)>,
    unk_id: Option<usize>,
    byte_fallback: bool,
    min_score: f64,
    /// The longest piece, in bytes.
    max_len: usize,
    /// Open addressing over the pieces: `id + 1`, 0 for an empty slot; a power-of-two size.
    slots: Vec<u32>,
}

/// A 64-bit hash of a byte string (multiply-rotate over 8-byte words; vocabularies are not
/// adversarial).
#[inline]
fn hash(b: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = K ^ (b.len() as u64);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
    }
    h ^ (h >> 31)
}

/// Errors building a [`FastUnigram`] (the checks of `tokenizers`' `Unigram::from`).
#[derive(Debug, thiserror::Error)]
pub enum UnigramError {
    /// An unknown-piece id with no vocabulary.
    #[error("the Unigram vocabulary is empty")]
    EmptyVocabulary,
    /// An unknown-piece id past the vocabulary.
    #[error("the Unigram unk_id {0} is not in the vocabulary of {1}")]
    UnkIdNotInVocabulary(usize, usize),
    /// A vocabulary too large for 32-bit ids.
    #[error("the Unigram vocabulary has {0} pieces, more than 32-bit ids allow")]
    TooLarge(usize),
    /// A text with an unknown piece and no unknown id.
    #[error("the text has a piece outside the vocabulary and the model has no unk_id")]
    MissingUnkId,
}

impl FastUnigram {
    /// Builds the model. Errors as `tokenizers`' `Unigram::from` does: an `unk_id` with an
    /// empty vocabulary or past its end.
    pub fn new(
        vocab: Vec<(String, f64)>,
        unk_id: Option<usize>,
        byte_fallback: bool,
    ) -> Result<FastUnigram, UnigramError> {
        if let Some(u) = unk_id {
            if vocab.is_empty() {
                return Err(UnigramError::EmptyVocabulary);
            }
            if u >= vocab.len() {
                return Err(UnigramError::UnkIdNotInVocabulary(u, vocab.len()));
            }
        }
        if vocab.len() >= u32::MAX as usize {
            return Err(UnigramError::TooLarge(vocab.len()));
        }
        let cap = (vocab.len() * 2).next_power_of_two().max(16);
        let mut m = FastUnigram {
            min_score: vocab.iter().map(|v| v.1).fold(f64::INFINITY, f64::min),
            max_len: vocab.iter().map(|v| v.0.len()).max().unwrap_or(0),
            slots: vec![0; cap],
            vocab,
            unk_id,
            byte_fallback,
        };
        for id in 0..m.vocab.len() {
            let slot = m.slot(m.vocab[id].0.as_bytes());
            // A piece listed twice keeps its last id, as a hash map insert does.
            m.slots[slot] = id as u32 + 1;
        }
        Ok(m)
    }

    /// The slot of `piece`: where it is, or the empty slot where it would go.
    #[inline]
    fn slot(&self, piece: &[u8]) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = hash(piece) as usize & mask;
        loop {
            match self.slots[i] {
                0 => return i,
                s if self.vocab[s as usize - 1].0.as_bytes() == piece => return i,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// The id of `piece`, if it is in the vocabulary.
    #[inline]
    fn id(&self, piece: &[u8]) -> Option<u32> {
        match self.slots[self.slot(piece)] {
            0 => None,
            s => Some(s - 1),
        }
    }

    /// The pieces of `text` by the best-scoring segmentation, unknown pieces fused (as
    /// `tokenizers`' `Unigram::encode`).
    fn segment<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, UnigramError> {
        #[derive(Clone, Copy)]
        struct Best {
            id: usize,
            score: f64,
            start: Option<usize>,
        }
        let size = text.len();
        if size == 0 {
            return Ok(Vec::new());
        }
        let bytes = text.as_bytes();
        let unk_score = self.min_score - UNK_PENALTY;
        let mut best = vec![
            Best {
                id: 0,
                score: 0.0,
                start: None
            };
            size + 1
        ];
        let mut start = 0;
        while start < size {
            let here = best[start].score;
            let first = text[start..].chars().next().map_or(1, char::len_utf8);
            let mut single = false;
            let last = (start + self.max_len).min(size);
            let mut end = start + first;
            while end <= last {
                if let Some(id) = self.id(&bytes[start..end]) {
                    let cand = self.vocab[id as usize].1 + here;
                    let node = &mut best[end];
                    if node.start.is_none() || cand > node.score {
                        *node = Best {
                            id: id as usize,
                            score: cand,
                            start: Some(start),
                        };
                    }
                    single |= end - start == first;
                }
                end += text[end..].chars().next().map_or(1, char::len_utf8);
            }
            if !single {
                let node = &mut best[start + first];
                let cand = unk_score + here;
                if node.start.is_none() || cand > node.score {
                    *node = Best {
                        id: self.unk_id.ok_or(UnigramError::MissingUnkId)?,
                        score: cand,
                        start: Some(start),
                    };
                }
            }
            start += first;
        }
        // Back from the end; runs of unknown pieces fuse into one.
        let mut out: Vec<&str> = Vec::new();
        let mut end = size;
        let mut unk_end: Option<usize> = None;
        while end > 0 {
            let node = best[end];
            let s = node.start.expect("every char boundary is reached");
            if Some(node.id) == self.unk_id {
                unk_end.get_or_insert(end);
            } else {
                if let Some(ue) = unk_end.take() {
                    out.push(&text[end..ue]);
                }
                out.push(&text[s..end]);
            }
            end = s;
        }
        if let Some(ue) = unk_end {
            out.push(&text[..ue]);
        }
        out.reverse();
        Ok(out)
    }
}

impl PartialEq for FastUnigram {
    fn eq(&self, other: &FastUnigram) -> bool {
        self.vocab == other.vocab
            && self.unk_id == other.unk_id
            && self.byte_fallback == other.byte_fallback
    }
}

impl Model for FastUnigram {
    type Trainer = UnigramTrainer;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        let pieces = self.segment(sequence)?;
        let mut tokens = Vec::with_capacity(pieces.len());
        let mut offset = 0;
        for p in pieces {
            let offsets = (offset, offset + p.len());
            offset += p.len();
            let id = match self.id(p.as_bytes()) {
                Some(id) => id,
                None => {
                    if self.byte_fallback {
                        let bytes: Option<Vec<Token>> = p
                            .bytes()
                            .map(|b| {
                                let s = format!("<0x{b:02X}>");
                                self.id(s.as_bytes()).map(|id| Token::new(id, s, offsets))
                            })
                            .collect();
                        if let Some(bytes) = bytes {
                            tokens.extend(bytes);
                            continue;
                        }
                    }
                    self.unk_id.ok_or(UnigramError::MissingUnkId)? as u32
                }
            };
            tokens.push(Token::new(id, p.to_string(), offsets));
        }
        Ok(tokens)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.id(token.as_bytes())
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.vocab.get(id as usize).map(|v| v.0.clone())
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        self.vocab
            .iter()
            .enumerate()
            .map(|(i, (p, _))| (p.clone(), i as u32))
            .collect()
    }

    fn get_vocab_size(&self) -> usize {
        self.vocab.len()
    }

    fn save(&self, folder: &Path, prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        let name = match prefix {
            Some(p) => format!("{p}-unigram.json"),
            None => "unigram.json".to_string(),
        };
        let path = folder.join(name);
        std::fs::write(&path, serde_json::to_string(self)?)?;
        Ok(vec![path])
    }

    fn get_trainer(&self) -> UnigramTrainer {
        UnigramTrainer::default()
    }
}

impl Serialize for FastUnigram {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The field order of `tokenizers`' Unigram, so that files round-trip byte for byte.
        let mut m = s.serialize_struct("Unigram", 4)?;
        m.serialize_field("type", "Unigram")?;
        m.serialize_field("unk_id", &self.unk_id)?;
        m.serialize_field("vocab", &self.vocab)?;
        m.serialize_field("byte_fallback", &self.byte_fallback)?;
        m.end()
    }
}

/// The model of a `tokenizer.json`: Unigram as [`FastUnigram`], any other kind as
/// `tokenizers` reads it.
#[derive(Clone, Debug)]
pub enum TokModel {
    /// SentencePiece Unigram.
    Unigram(FastUnigram),
    /// BPE, WordPiece or WordLevel.
    Other(Box<ModelWrapper>),
}

impl Model for TokModel {
    type Trainer = TrainerWrapper;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        match self {
            TokModel::Unigram(m) => m.tokenize(sequence),
            TokModel::Other(m) => m.tokenize(sequence),
        }
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        match self {
            TokModel::Unigram(m) => m.token_to_id(token),
            TokModel::Other(m) => m.token_to_id(token),
        }
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        match self {
            TokModel::Unigram(m) => m.id_to_token(id),
            TokModel::Other(m) => m.id_to_token(id),
        }
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        match self {
            TokModel::Unigram(m) => m.get_vocab(),
            TokModel::Other(m) => m.get_vocab(),
        }
    }

    fn get_vocab_size(&self) -> usize {
        match self {
            TokModel::Unigram(m) => m.get_vocab_size(),
            TokModel::Other(m) => m.get_vocab_size(),
        }
    }

    fn save(&self, folder: &Path, prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        match self {
            TokModel::Unigram(m) => m.save(folder, prefix),
            TokModel::Other(m) => m.save(folder, prefix),
        }
    }

    fn get_trainer(&self) -> TrainerWrapper {
        match self {
            TokModel::Unigram(m) => TrainerWrapper::UnigramTrainer(m.get_trainer()),
            TokModel::Other(m) => m.get_trainer(),
        }
    }
}

impl Serialize for TokModel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TokModel::Unigram(m) => m.serialize(s),
            TokModel::Other(m) => m.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for TokModel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TokModelVisitor)
    }
}

struct TokModelVisitor;

impl<'de> Visitor<'de> for TokModelVisitor {
    type Value = TokModel;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a tokenizer model object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TokModel, A::Error> {
        // A Unigram model is read field by field (its vocabulary straight into its final
        // form); anything else, or a Unigram model whose "type" does not come first, is
        // gathered into a JSON object and handed to `tokenizers`.
        let mut rest = serde_json::Map::new();
        let mut first = true;
        let mut unigram = false;
        let (mut vocab, mut unk_id, mut byte_fallback) = (None, None, false);
        while let Some(key) = map.next_key::<String>()? {
            if first && key == "type" {
                let t: String = map.next_value()?;
                unigram = t == "Unigram";
                rest.insert(key, serde_json::Value::String(t));
            } else if unigram {
                match key.as_str() {
                    "vocab" => vocab = Some(map.next_value::<Vec<(String, f64)>>()?),
                    "unk_id" => unk_id = map.next_value::<Option<usize>>()?,
                    "byte_fallback" => byte_fallback = map.next_value()?,
                    _ => {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
            } else {
                rest.insert(key, map.next_value()?);
            }
            first = false;
        }
        if !unigram && rest.get("type").and_then(|t| t.as_str()) == Some("Unigram") {
            let v = serde_json::Value::Object(rest);
            vocab = Some(serde_json::from_value(v["vocab"].clone()).map_err(de::Error::custom)?);
            unk_id = serde_json::from_value(v["unk_id"].clone()).map_err(de::Error::custom)?;
            byte_fallback = v["byte_fallback"].as_bool().unwrap_or(false);
            unigram = true;
            rest = serde_json::Map::new();
        }
        if unigram {
            let vocab = vocab.ok_or_else(|| de::Error::custom("Missing vocab"))?;
            return FastUnigram::new(vocab, unk_id, byte_fallback)
                .map(TokModel::Unigram)
                .map_err(|e| de::Error::custom(format!("Unable to load vocab {e}")));
        }
        serde_json::from_value::<ModelWrapper>(serde_json::Value::Object(rest))
            .map(|m| TokModel::Other(Box::new(m)))
            .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokenizers::models::unigram::Unigram;

    /// Our ids and pieces against `tokenizers`' Unigram on the same vocabulary.
    fn same(vocab: &[(String, f64)], unk: Option<usize>, fallback: bool, text: &str) {
        let ours = FastUnigram::new(vocab.to_vec(), unk, fallback).unwrap();
        let theirs = Unigram::from(vocab.to_vec(), unk, fallback).unwrap();
        let a = ours.tokenize(text).map_err(|e| e.to_string());
        let b = theirs.tokenize(text).map_err(|e| e.to_string());
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "text {text:?}"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("text {text:?}: ours {a:?}, theirs {b:?}"),
        }
    }

    fn alphabet() -> Vec<&'static str> {
        vec![
            "a", "b", "c", "▁", "é", "中", "<0x61>", "<0xE4>", "<0xB8>", "<0xAD>",
        ]
    }

    fn vocab_strategy() -> impl Strategy<Value = Vec<(String, f64)>> {
        // Pieces of 1-4 symbols from a small alphabet (so that segmentations compete and
        // ties happen: scores on a coarse grid), duplicates allowed.
        let piece = proptest::collection::vec(proptest::sample::select(alphabet()), 1..4)
            .prop_map(|v| v.concat());
        let score = (-8i32..0).prop_map(|s| s as f64 * 0.5);
        proptest::collection::vec((piece, score), 1..40)
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            proptest::sample::select(vec!["a", "b", "c", "▁", "é", "中", "x", "ü"]),
            0..24,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn tokenizes_as_tokenizers_unigram(
            mut vocab in vocab_strategy(),
            text in text_strategy(),
            fallback in any::<bool>(),
            with_unk in any::<bool>(),
        ) {
            let unk = if with_unk {
                vocab.insert(0, ("<unk>".into(), 0.0));
                Some(0)
            } else {
                None
            };
            same(&vocab, unk, fallback, &text);
        }
    }

    #[test]
    fn errors_as_unigram_from() {
        assert!(FastUnigram::new(Vec::new(), Some(0), false).is_err());
        assert!(FastUnigram::new(vec![("a".into(), -1.0)], Some(1), false).is_err());
        let m = FastUnigram::new(vec![("a".into(), -1.0)], None, false).unwrap();
        assert!(m.tokenize("b").is_err(), "no unk id for an unknown piece");
    }

    #[test]
    fn reads_and_writes_the_tokenizers_json_form() {
        let vocab = vec![("<unk>".to_string(), 0.0), ("▁a".to_string(), -0.5)];
        let theirs = Unigram::from(vocab.clone(), Some(0), true).unwrap();
        let json = serde_json::to_string(&theirs).unwrap();
        let ours: TokModel = serde_json::from_str(&json).unwrap();
        assert!(matches!(ours, TokModel::Unigram(_)));
        assert_eq!(serde_json::to_string(&ours).unwrap(), json);
        // "type" not first still reads as Unigram.
        let late = r#"{"vocab": [["<unk>", 0.0], ["a", -1.0]], "unk_id": 0, "type": "Unigram"}"#;
        assert!(matches!(
            serde_json::from_str::<TokModel>(late).unwrap(),
            TokModel::Unigram(_)
        ));
        let wl = r#"{"type": "WordLevel", "vocab": {"a": 0, "[UNK]": 1}, "unk_token": "[UNK]"}"#;
        assert!(matches!(
            serde_json::from_str::<TokModel>(wl).unwrap(),
            TokModel::Other(m) if matches!(*m, ModelWrapper::WordLevel(_))
        ));
        assert!(serde_json::from_str::<TokModel>(r#"{"type": "Unigram"}"#).is_err());
    }
}
