//! The data of a run: the training corpora and their batches as token ids, and the fixed
//! validation batches of the held-out groups.

use multiret_model::{Kind, Model};
use multiret_sampler::{
    load_train, partial_shuffle, split_validation, Batch, BatchKind, Corpus, LoadOptions,
    MmarcoOptions, PairRef, Sampler, SamplerConfig, SamplerError, SamplerState,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};

/// One batch, tokenised.
#[derive(Debug, Clone)]
pub struct TokenizedBatch {
    /// Query ids.
    pub queries: Vec<Vec<u32>>,
    /// Positive ids (one per query), then hard negative ids.
    pub passages: Vec<Vec<u32>>,
    /// The batch kind.
    pub kind: BatchKind,
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

/// Resolves and tokenises a batch. Negatives beyond `max_negatives` are dropped at random.
pub fn tokenize_batch(
    model: &Model,
    corpus: &Corpus,
    pairs: &[PairRef],
    kind: BatchKind,
    max_len: usize,
    max_negatives: Option<usize>,
    rng: &mut ChaCha8Rng,
) -> Result<TokenizedBatch> {
    let mut queries = Vec::with_capacity(pairs.len());
    let mut positives = Vec::with_capacity(pairs.len());
    let mut negatives = Vec::new();
    for p in pairs {
        let t = corpus.texts(p)?;
        if t.positive_context.is_some() {
            return Err(TrainError::Config(
                "training on text pairs (a positive with a context) is not supported".into(),
            ));
        }
        queries.push(model.prefixed(&t.query, Kind::Query));
        positives.push(model.prefixed(&t.positive, Kind::Passage));
        let mut negs: Vec<_> = t.negatives.iter().collect();
        if let Some(k) = max_negatives {
            // The first k of a random permutation, in drawn order.
            partial_shuffle(rng, &mut negs, k);
            negs.truncate(k);
        }
        negatives.extend(negs.iter().map(|n| model.prefixed(n, Kind::Passage)));
    }
    let enc = |texts: &[String]| -> Result<Vec<Vec<u32>>> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(model.encode_texts_up_to(&refs, max_len)?)
    };
    let mut passages = enc(&positives)?;
    passages.extend(enc(&negatives)?);
    Ok(TokenizedBatch {
        queries: enc(&queries)?,
        passages,
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
    /// Most tokens per text.
    max_len: usize,
    /// Hard negatives per pair.
    max_negatives: Option<usize>,
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
            max_len,
            max_negatives: cfg.max_negatives,
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
        tokenize_in(
            model,
            &self.corpora,
            batch,
            self.max_len,
            self.max_negatives,
            rng,
        )
    }
}

/// [`tokenize_batch`] for a batch of a sampler over `corpora`.
fn tokenize_in(
    model: &Model,
    corpora: &[Corpus],
    batch: &Batch,
    max_len: usize,
    max_negatives: Option<usize>,
    rng: &mut ChaCha8Rng,
) -> Result<TokenizedBatch> {
    let corpus = &corpora[batch.corpus];
    tokenize_batch(
        model,
        corpus,
        &batch.pairs,
        batch.kind,
        max_len,
        max_negatives,
        rng,
    )
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
            tokenize_in(model, val, &batch, max_len, cfg.max_negatives, &mut rng)
        })
        .collect()
}
