//! The data of a run: the training corpora and their batches as token ids, and the fixed
//! validation batches of the held-out groups.

use multiret_model::{Kind, Model};
use multiret_sampler::{
    load_train, partial_shuffle, split_validation, Batch, BatchKind, Corpus, LoadOptions,
    MmarcoOptions, PairRef, Sampler, SamplerConfig, SamplerError, SamplerState,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};

/// One batch, tokenised.
#[derive(Debug, Clone)]
pub struct TokenizedBatch {
    /// Query ids.
    pub queries: Vec<Vec<u32>>,
    /// Positive ids (one per query), then hard negative ids.
    pub passages: Vec<Vec<u32>>,
    /// (query, passage) pairs the loss leaves out ([`crate::info_nce_masked`]): hard
    /// negatives that may be another query's positive (the same text, or a sentence of the
    /// same source paragraph, [`multiret_sampler::Corpus::topic`]).
    pub excluded: Vec<(usize, usize)>,
    /// The batch kind.
    pub kind: BatchKind,
}

/// Which languages in-context hard negatives come in (`--negative-langs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NegativeLangs {
    /// The passage's language only.
    Passage,
    /// The query's language only (the passage's for mono pairs, where the two are one).
    Query,
    /// Both: for cross pairs a wrong sentence in the query's own language must lose to the
    /// right one in another language (the bias the multilingual setting measures).
    #[default]
    Both,
}

impl NegativeLangs {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            NegativeLangs::Passage => "passage",
            NegativeLangs::Query => "query",
            NegativeLangs::Both => "both",
        }
    }
}

impl TokenizedBatch {
    /// Real tokens.
    pub fn tokens(&self) -> usize {
        self.queries
            .iter()
            .chain(&self.passages)
            .map(Vec::len)
            .sum()
    }
}

/// How a batch draws its hard negatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegativeDraw {
    /// At most this many per pair and language list (drawn at random; `None`: all).
    pub max: Option<usize>,
    /// Which lists: the passage language's, the query language's (cross pairs), or both.
    pub langs: NegativeLangs,
}

/// Resolves and tokenises a batch. Each pair's hard negatives come from its passage-language
/// list, its query-language list (cross pairs; [`multiret_sampler::Texts::query_negatives`]),
/// or both, as `draw.langs` says; beyond `draw.max` per list they are drawn at random. Every
/// negative is shared with every query of the batch, except where it may be that query's
/// positive: a text equal to its positive, or, in corpora with topics, a negative of a pair
/// on the query's topic (another question on the same paragraph, in any language); those
/// pairs go into [`TokenizedBatch::excluded`]. Texts repeated among the negatives are kept
/// once.
pub fn tokenize_batch(
    model: &Model,
    corpus: &Corpus,
    pairs: &[PairRef],
    kind: BatchKind,
    max_len: usize,
    draw: NegativeDraw,
    rng: &mut ChaCha8Rng,
) -> Result<TokenizedBatch> {
    let mut queries = Vec::with_capacity(pairs.len());
    let mut positives = Vec::with_capacity(pairs.len());
    let mut raw_positives: Vec<String> = Vec::with_capacity(pairs.len());
    let mut topics = Vec::with_capacity(pairs.len());
    // Each negative: its text and the pair it came from.
    let mut negatives: Vec<(String, usize)> = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        let t = corpus.texts(p)?;
        if t.positive_context.is_some() {
            return Err(TrainError::Config(
                "training on text pairs (a positive with a context) is not supported".into(),
            ));
        }
        queries.push(model.prefixed(&t.query, Kind::Query));
        positives.push(model.prefixed(&t.positive, Kind::Passage));
        raw_positives.push(t.positive.to_string());
        topics.push(t.topic);
        let cross = p.query_lang != p.passage_lang;
        let lists: &[&[std::borrow::Cow<'_, str>]] = match (draw.langs, cross) {
            (NegativeLangs::Both, true) => &[&t.negatives, &t.query_negatives],
            (NegativeLangs::Query, true) => &[&t.query_negatives],
            _ => &[&t.negatives],
        };
        for list in lists {
            let mut negs: Vec<_> = list.iter().collect();
            if let Some(k) = draw.max {
                // The first k of a random permutation, in drawn order.
                partial_shuffle(rng, &mut negs, k);
                negs.truncate(k);
            }
            for n in negs {
                if !negatives.iter().any(|(t, _)| t == n.as_ref()) {
                    negatives.push((n.to_string(), i));
                }
            }
        }
    }
    let n = pairs.len();
    let mut excluded = Vec::new();
    for (k, (text, from)) in negatives.iter().enumerate() {
        for q in 0..n {
            let same_topic = q != *from && topics[q].is_some() && topics[q] == topics[*from];
            if same_topic || raw_positives[q] == *text {
                excluded.push((q, n + k));
            }
        }
    }
    let negatives: Vec<String> = negatives
        .iter()
        .map(|(t, _)| model.prefixed(t, Kind::Passage))
        .collect();
    let enc = |texts: &[String]| -> Result<Vec<Vec<u32>>> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(model.encode_texts_up_to(&refs, max_len)?)
    };
    let mut passages = enc(&positives)?;
    passages.extend(enc(&negatives)?);
    Ok(TokenizedBatch {
        queries: enc(&queries)?,
        passages,
        excluded,
        kind,
    })
}

/// The data of a run: the training corpora (less the held-out groups), the sampler's
/// configuration and the validation batches, tokenised for one model.
pub(crate) struct TrainData {
    /// The training corpora.
    corpora: Vec<Corpus>,
    /// The sampler of a fresh run over `corpora`.
    sampler: SamplerConfig,
    /// The validation batches (none without validation).
    pub(crate) validation: Vec<TokenizedBatch>,
    /// The ids of the held-out groups.
    pub(crate) held_out: Vec<String>,
    /// Most tokens per text.
    max_len: usize,
    /// How batches draw their hard negatives.
    draw: NegativeDraw,
}

impl TrainData {
    /// Loads the training data of `cfg`, holds out its validation groups and tokenises them
    /// for `model` with at most `max_len` tokens per text.
    pub(crate) fn load(cfg: &TrainConfig, model: &Model, max_len: usize) -> Result<Self> {
        let options = LoadOptions {
            unit: cfg.passage,
            mmarco: MmarcoOptions {
                max_negatives: cfg.mmarco_negatives,
                ..MmarcoOptions::default()
            },
            context_negatives: cfg.context_negatives > 0,
        };
        let (corpora, weights) = load_train(&cfg.train, &cfg.data_dir, &options)?;
        let n_corpora = corpora.len();
        let (corpora, val) =
            split_validation(corpora, cfg.val_groups, cfg.seed).map_err(|e| match e {
                SamplerError::InvalidArgument(m) => {
                    TrainError::Config(format!("--val-groups: {m}"))
                }
                e => e.into(),
            })?;
        let validation = validation_batches(model, &val, cfg, max_len)?;
        let held_out = val
            .iter()
            .flat_map(|c| (0..c.len()).map(|g| c.group_id(g).to_string()))
            .collect();
        drop(val);
        let mut sampler = SamplerConfig::new(cfg.sampler, cfg.batch_size, cfg.seed);
        if let Some(w) = weights {
            debug_assert_eq!(w.len(), n_corpora);
            sampler = sampler.with_weights(w);
        }
        Ok(TrainData {
            corpora,
            sampler,
            validation,
            held_out,
            max_len,
            draw: cfg.negative_draw(),
        })
    }

    /// The training sampler: a fresh one, or the `saved` one where it stopped.
    pub(crate) fn sampler(&self, saved: Option<&SamplerState>) -> Result<Sampler> {
        Ok(match saved {
            Some(state) => Sampler::resume(&self.corpora, state)?,
            None => Sampler::new(&self.corpora, self.sampler.clone())?,
        })
    }

    /// A batch of the training sampler, tokenised (`rng` draws the kept negatives).
    pub(crate) fn tokenize(
        &self,
        model: &Model,
        batch: &Batch,
        rng: &mut ChaCha8Rng,
    ) -> Result<TokenizedBatch> {
        tokenize_in(model, &self.corpora, batch, self.max_len, self.draw, rng)
    }
}

/// [`tokenize_batch`] for a batch of a sampler over `corpora`.
fn tokenize_in(
    model: &Model,
    corpora: &[Corpus],
    batch: &Batch,
    max_len: usize,
    draw: NegativeDraw,
    rng: &mut ChaCha8Rng,
) -> Result<TokenizedBatch> {
    let corpus = &corpora[batch.corpus];
    tokenize_batch(model, corpus, &batch.pairs, batch.kind, max_len, draw, rng)
}

/// The fixed validation batches: `ceil(groups / b)` batches of the training sampler's kind
/// (`b` = the batch size, or fewer when the held-out groups cannot fill it).
fn validation_batches(
    model: &Model,
    val: &[Corpus],
    cfg: &TrainConfig,
    max_len: usize,
) -> Result<Vec<TokenizedBatch>> {
    if val.is_empty() {
        return Ok(Vec::new());
    }
    let groups: usize = val.iter().map(Corpus::len).sum();
    let smallest = val.iter().map(Corpus::len).min().unwrap_or(0);
    let b = cfg.batch_size.min(smallest).max(2);
    let sampler_cfg = SamplerConfig::new(cfg.sampler, b, cfg.seed ^ 0x7661_6c5f_6261_7463);
    let mut sampler = Sampler::new(val, sampler_cfg).map_err(|e| {
        TrainError::Config(format!(
            "the {groups} held-out groups cannot form validation batches of {b}: {e} (raise \
             --val-groups)"
        ))
    })?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x7661_6c5f_6e65_6773);
    (0..groups.div_ceil(b))
        .map(|_| {
            let batch = sampler.next_batch();
            tokenize_in(model, val, &batch, max_len, cfg.negative_draw(), &mut rng)
        })
        .collect()
}
