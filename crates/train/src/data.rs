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
use crate::loss::BatchMask;

/// One batch, tokenised.
#[derive(Debug, Clone)]
pub struct TokenizedBatch {
    /// Query ids.
    pub queries: Vec<Vec<u32>>,
    /// Positive ids (one per query), then hard negative ids.
    pub passages: Vec<Vec<u32>>,
    /// Which (query, passage) pairs are positives beyond the diagonal, and which the loss
    /// leaves out ([`crate::info_nce_masked`]).
    pub mask: BatchMask,
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

/// Resolves and tokenises a batch.
///
/// Each pair's hard negatives come from its passage-language list, its query-language list
/// (cross pairs; [`multiret_sampler::Texts::query_negatives`]), or both, as `draw.langs` says;
/// beyond `draw.max` per list they are drawn at random. A negative whose text is a positive
/// of the batch, or repeats an earlier negative, is kept once.
///
/// The [`BatchMask`]:
/// - **positives**: pairs of one group (the language versions of a group batch) are
///   positives for each other's queries;
/// - **excluded**, for query `q`: another group's positive with the same text as `q`'s, or on
///   `q`'s topic ([`multiret_sampler::Corpus::topic`]: another question on the same
///   paragraph, in any language, whose answer may be `q`'s or a translation of it); and a
///   negative drawn only by pairs of other groups when one of them is on `q`'s topic.
///   Every other negative is shared with every query of the batch.
pub fn tokenize_batch(
    model: &Model,
    corpus: &Corpus,
    pairs: &[PairRef],
    kind: BatchKind,
    max_len: usize,
    draw: NegativeDraw,
    rng: &mut ChaCha8Rng,
) -> Result<TokenizedBatch> {
    let n = pairs.len();
    let mut texts = Vec::with_capacity(n);
    for p in pairs {
        let t = corpus.texts(p)?;
        if t.positive_context.is_some() {
            return Err(TrainError::Config(
                "training on text pairs (a positive with a context) is not supported".into(),
            ));
        }
        texts.push(t);
    }
    let same_topic =
        |a: usize, b: usize| texts[a].topic.is_some() && texts[a].topic == texts[b].topic;
    let mut mask = BatchMask::default();
    for q in 0..n {
        for j in (0..n).filter(|&j| j != q) {
            if pairs[q].group == pairs[j].group {
                mask.positives.push((q, j));
            } else if same_topic(q, j) || texts[q].positive == texts[j].positive {
                mask.excluded.push((q, j));
            }
        }
    }
    // Each negative: its text and the pairs that drew it.
    let mut negatives: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, (p, t)) in pairs.iter().zip(&texts).enumerate() {
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
            for neg in negs {
                let neg = neg.as_ref();
                if texts.iter().any(|t| t.positive == neg) {
                    continue;
                }
                match negatives.iter_mut().find(|(t, _)| *t == neg) {
                    Some((_, from)) => {
                        if !from.contains(&i) {
                            from.push(i);
                        }
                    }
                    None => negatives.push((neg, vec![i])),
                }
            }
        }
    }
    for (k, (_, from)) in negatives.iter().enumerate() {
        for q in 0..n {
            let own = from.iter().any(|&s| pairs[s].group == pairs[q].group);
            if !own && from.iter().any(|&s| same_topic(q, s)) {
                mask.excluded.push((q, n + k));
            }
        }
    }
    let queries: Vec<String> = texts
        .iter()
        .map(|t| model.prefixed(&t.query, Kind::Query))
        .collect();
    let passages: Vec<String> = texts
        .iter()
        .map(|t| t.positive.as_ref())
        .chain(negatives.iter().map(|(t, _)| *t))
        .map(|t| model.prefixed(t, Kind::Passage))
        .collect();
    let enc = |texts: &[String]| -> Result<Vec<Vec<u32>>> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(model.encode_texts_up_to(&refs, max_len)?)
    };
    Ok(TokenizedBatch {
        queries: enc(&queries)?,
        passages: enc(&passages)?,
        mask,
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
    /// How batches draw their hard negatives: of corpora with in-context negatives, and of
    /// the others ([`TrainConfig::negative_draw`]).
    draws: [NegativeDraw; 2],
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
            draws: draws(cfg),
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
        tokenize_in(model, &self.corpora, batch, self.max_len, self.draws, rng)
    }
}

/// The draws of [`TrainData::draws`].
fn draws(cfg: &TrainConfig) -> [NegativeDraw; 2] {
    [cfg.negative_draw(true), cfg.negative_draw(false)]
}

/// [`tokenize_batch`] for a batch of a sampler over `corpora`.
fn tokenize_in(
    model: &Model,
    corpora: &[Corpus],
    batch: &Batch,
    max_len: usize,
    draws: [NegativeDraw; 2],
    rng: &mut ChaCha8Rng,
) -> Result<TokenizedBatch> {
    let corpus = &corpora[batch.corpus];
    let draw = draws[usize::from(!corpus.has_context_negatives())];
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
            tokenize_in(model, val, &batch, max_len, draws(cfg), &mut rng)
        })
        .collect()
}
