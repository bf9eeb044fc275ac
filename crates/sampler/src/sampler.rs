//! The batch samplers: X-X-mono, X-Y, X-X (mixed), hybrid, and the multi-positive group
//! batches.

use serde::{Deserialize, Serialize};

use rand_chacha::ChaCha8Rng;

use crate::corpus::{Corpus, LangId};
use crate::error::{Result, SamplerError};
use crate::rng::{bounded, derived_rng, partial_shuffle, shuffle, unit_f64};

/// Version of the [`SamplerState`] layout.
pub const STATE_FORMAT: u32 = 1;

const TAG_MAIN: u64 = 0x6d61_696e; // "main"
const TAG_PERM: u64 = 0x7065_726d; // "perm"
const STREAM_CROSS: u64 = 1 << 32;
const STREAM_MIXED: u64 = (1 << 32) + 1;

/// Which batches a sampler produces.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "name")]
pub enum SamplerKind {
    /// X-X-mono: one language per batch, drawn uniformly from the languages that have at least
    /// `batch_size` groups; every pair has query and passage in that language.
    Mono,
    /// X-Y: per pair, an ordered (query, passage) language pair with different languages,
    /// drawn uniformly from the group's available ordered pairs.
    Cross,
    /// X-X: every pair monolingual, its language drawn uniformly from the group's languages,
    /// so languages mix within a batch.
    Mixed,
    /// Each batch is a `Mono` batch with probability `alpha`, else a `Cross` batch.
    Hybrid {
        /// Probability of a monolingual batch, in `[0, 1]`.
        #[serde(with = "crate::exact::f64_exact")]
        alpha: f64,
    },
    /// Group batches ([`BatchKind::Group`]): `ceil(batch_size / langs)` groups in two or more
    /// languages, each in up to `langs` of its languages (drawn uniformly), one monolingual
    /// pair per language. The pairs of one group are positives for each other's queries.
    Group {
        /// Languages per group, at least 2.
        langs: usize,
    },
    /// Each batch is a `Mono` batch with probability `alpha`, else a `Group` batch.
    HybridGroup {
        /// Probability of a monolingual batch, in `[0, 1]`.
        #[serde(with = "crate::exact::f64_exact")]
        alpha: f64,
        /// Languages per group of the group batches, at least 2.
        langs: usize,
    },
}

impl SamplerKind {
    /// Parses `mono`, `cross`, `mixed`, `hybrid` (which takes `alpha`), `group` (which takes
    /// `langs`) or `hybrid-group` (both).
    pub fn from_name(name: &str, alpha: f64, langs: usize) -> Result<SamplerKind> {
        match name {
            "mono" | "x-x-mono" => Ok(SamplerKind::Mono),
            "cross" | "x-y" => Ok(SamplerKind::Cross),
            "mixed" | "x-x" => Ok(SamplerKind::Mixed),
            "hybrid" => Ok(SamplerKind::Hybrid { alpha }),
            "group" => Ok(SamplerKind::Group { langs }),
            "hybrid-group" => Ok(SamplerKind::HybridGroup { alpha, langs }),
            other => Err(SamplerError::InvalidArgument(format!(
                "unknown sampler `{other}` (expected mono, cross, mixed, hybrid, group or \
                 hybrid-group)"
            ))),
        }
    }

    /// The probability of a monolingual batch, for the hybrid kinds.
    pub fn alpha(&self) -> Option<f64> {
        match *self {
            SamplerKind::Hybrid { alpha } | SamplerKind::HybridGroup { alpha, .. } => Some(alpha),
            _ => None,
        }
    }

    /// The languages per group of group batches, for the group kinds.
    pub fn group_langs(&self) -> Option<usize> {
        match *self {
            SamplerKind::Group { langs } | SamplerKind::HybridGroup { langs, .. } => Some(langs),
            _ => None,
        }
    }

    /// Groups the cross stream gives one batch of `batch_size` pairs: `batch_size`, or
    /// `ceil(batch_size / langs)` for group batches.
    fn cross_take(&self, batch_size: usize) -> usize {
        match self.group_langs() {
            Some(k) => batch_size.div_ceil(k.max(1)),
            None => batch_size,
        }
    }
}

/// Configuration of a [`Sampler`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerConfig {
    /// The batching scheme.
    pub kind: SamplerKind,
    /// Pairs per batch (>= 1).
    pub batch_size: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Corpus mixing weights, one per corpus (finite, > 0). `None`: proportional to the
    /// number of groups of each corpus.
    #[serde(default, with = "crate::exact::opt_vec_f64_exact")]
    pub weights: Option<Vec<f64>>,
}

impl SamplerConfig {
    /// A configuration with size-proportional corpus mixing.
    pub fn new(kind: SamplerKind, batch_size: usize, seed: u64) -> SamplerConfig {
        SamplerConfig {
            kind,
            batch_size,
            seed,
            weights: None,
        }
    }

    /// Sets explicit corpus mixing weights.
    pub fn with_weights(mut self, weights: Vec<f64>) -> SamplerConfig {
        self.weights = Some(weights);
        self
    }
}

/// The kind of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchKind {
    /// Every pair in one and the same language.
    Mono,
    /// Every pair has a query language different from its passage language.
    Cross,
    /// Every pair monolingual, languages mixed within the batch.
    Mixed,
    /// Several language versions of each group, every pair monolingual: the pairs of one
    /// group are positives for each other's queries (a multi-positive batch), and the other
    /// groups' passages are the negatives.
    Group,
}

/// One pair of a batch: a group and the languages of its query and passage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PairRef {
    /// Group index in its corpus.
    pub group: usize,
    /// Language of the query.
    pub query_lang: LangId,
    /// Language of the positive passage (and the negatives).
    pub passage_lang: LangId,
}

/// One batch of pairs, all from one corpus, no group twice (but in group batches, where a
/// group comes once per language).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Position in the global (unsharded) batch stream, from 0.
    pub index: u64,
    /// Mono, cross or mixed.
    pub kind: BatchKind,
    /// Index of the corpus (in the slice the sampler was built with).
    pub corpus: usize,
    /// Epoch of the stream the groups were drawn from (see the crate docs).
    pub epoch: u64,
    /// The pairs; resolve them with [`Corpus::texts`].
    pub pairs: Vec<PairRef>,
}

/// One pair of a [`BatchRecord`], with names instead of indices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairRecord<'a> {
    /// Group id.
    pub group: &'a str,
    /// Query language code.
    pub query_lang: &'a str,
    /// Passage language code.
    pub passage_lang: &'a str,
}

/// The printable form of a batch: `{"batch":i,"kind":..,"pairs":[{"group","query_lang",
/// "passage_lang"}]}`, plus `"corpus"` (its name) when several corpora are mixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchRecord<'a> {
    /// The batch index.
    pub batch: u64,
    /// The batch kind.
    pub kind: BatchKind,
    /// The corpus name, when there are several corpora.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corpus: Option<&'a str>,
    /// The pairs.
    pub pairs: Vec<PairRecord<'a>>,
}

impl Batch {
    /// The printable form of this batch, resolved against the corpora it was drawn from.
    ///
    /// Errors if the batch does not belong to `corpora` (index out of range).
    pub fn record<'a>(&self, corpora: &'a [Corpus]) -> Result<BatchRecord<'a>> {
        let corpus = corpora.get(self.corpus).ok_or_else(|| {
            SamplerError::InvalidArgument(format!(
                "batch {} refers to corpus {} of {}",
                self.index,
                self.corpus,
                corpora.len()
            ))
        })?;
        let lang = |l: LangId| {
            corpus
                .languages()
                .get(usize::from(l))
                .map(String::as_str)
                .ok_or_else(|| {
                    SamplerError::InvalidArgument(format!(
                        "batch {}: language id {l} not in corpus `{}`",
                        self.index,
                        corpus.name()
                    ))
                })
        };
        let mut pairs = Vec::with_capacity(self.pairs.len());
        for p in &self.pairs {
            if p.group >= corpus.len() {
                return Err(SamplerError::InvalidArgument(format!(
                    "batch {}: group {} not in corpus `{}`",
                    self.index,
                    p.group,
                    corpus.name()
                )));
            }
            pairs.push(PairRecord {
                group: corpus.group_id(p.group),
                query_lang: lang(p.query_lang)?,
                passage_lang: lang(p.passage_lang)?,
            });
        }
        Ok(BatchRecord {
            batch: self.index,
            kind: self.kind,
            corpus: (corpora.len() > 1).then(|| corpus.name()),
            pairs,
        })
    }
}

/// Position in one without-replacement stream: the epoch and how many groups of the epoch's
/// permutation were drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPos {
    /// Epoch number, from 0.
    pub epoch: u64,
    /// Groups already drawn from this epoch's permutation.
    pub cursor: usize,
}

/// Stream positions of one corpus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusState {
    /// [`Corpus::fingerprint`] of the corpus.
    pub fingerprint: u64,
    /// Per language (indexed by [`LangId`]): the mono stream of that language.
    pub mono: Vec<StreamPos>,
    /// The cross stream (groups with two or more languages).
    pub cross: StreamPos,
    /// The mixed stream (all groups).
    pub mixed: StreamPos,
}

/// Everything needed to resume a sampler exactly where it stopped (serialise it with serde).
///
/// It is small: the configuration, the next batch index, the word position of the main
/// ChaCha8 generator, the shard, and each stream's (epoch, cursor); epoch permutations are
/// regenerated from (seed, corpus, stream, epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerState {
    /// Layout version ([`STATE_FORMAT`]).
    pub format: u32,
    /// The configuration.
    pub config: SamplerConfig,
    /// Index of the next batch of the global stream.
    pub next_index: u64,
    /// Word position of the main generator (a decimal `u128`).
    pub rng_word_pos: String,
    /// Shard rank.
    pub rank: u64,
    /// Number of shards.
    pub world: u64,
    /// Per corpus stream positions.
    pub corpora: Vec<CorpusState>,
}

/// Group pools of one corpus, built once.
#[derive(Debug, Clone)]
struct Pools {
    fingerprint: u64,
    lang_offsets: Vec<usize>,
    langs: Vec<LangId>,
    /// Per language: groups that have it.
    mono: Vec<Vec<u32>>,
    /// Languages with at least `batch_size` groups.
    mono_eligible: Vec<LangId>,
    /// Groups with at least two languages.
    cross: Vec<u32>,
    /// All groups.
    all: Vec<u32>,
}

impl Pools {
    fn group_langs(&self, g: u32) -> &[LangId] {
        let g = g as usize;
        &self.langs[self.lang_offsets[g]..self.lang_offsets[g + 1]]
    }
}

/// A without-replacement stream and its cached epoch permutation.
#[derive(Debug, Clone, Default)]
struct Stream {
    pos: StreamPos,
    perm: Vec<u32>,
    perm_epoch: Option<u64>,
}

impl Stream {
    /// Takes the next `b` groups (`pool.len() >= b`), starting a new epoch when fewer than
    /// `b` are left in the current one (the remainder is dropped).
    fn take(&mut self, pool: &[u32], b: usize, seed: u64, corpus: usize, id: u64) -> (u64, &[u32]) {
        if self.pos.cursor + b > pool.len() {
            self.pos.epoch += 1;
            self.pos.cursor = 0;
        }
        if self.perm_epoch != Some(self.pos.epoch) {
            self.perm.clear();
            self.perm.extend_from_slice(pool);
            let mut rng = derived_rng(seed, &[TAG_PERM, corpus as u64, id, self.pos.epoch]);
            shuffle(&mut rng, &mut self.perm);
            self.perm_epoch = Some(self.pos.epoch);
        }
        let start = self.pos.cursor;
        self.pos.cursor += b;
        (self.pos.epoch, &self.perm[start..start + b])
    }
}

#[derive(Debug, Clone)]
struct Streams {
    mono: Vec<Stream>,
    cross: Stream,
    mixed: Stream,
}

/// A deterministic, resumable, shardable batch sampler over one or more corpora.
///
/// It iterates forever ([`Iterator`] never returns `None`). See the crate documentation for
/// the epoch, resume and sharding semantics.
#[derive(Debug, Clone)]
pub struct Sampler {
    config: SamplerConfig,
    pools: Vec<Pools>,
    /// Cumulative corpus weights.
    cumulative: Vec<f64>,
    rng: ChaCha8Rng,
    next_index: u64,
    rank: u64,
    world: u64,
    streams: Vec<Streams>,
}

impl Sampler {
    /// Builds a sampler over `corpora` (the batches' `corpus` indexes this slice).
    ///
    /// Errors ([`SamplerError::InvalidArgument`]): no corpus, batch size 0, alpha outside
    /// `[0, 1]`, weights of the wrong count or not finite and > 0. Errors
    /// ([`SamplerError::Unsatisfiable`]) when a corpus cannot produce a needed batch kind:
    /// mono batches need a language with at least `batch_size` groups, cross batches
    /// `batch_size` groups in two or more languages, mixed batches `batch_size` groups.
    pub fn new(corpora: &[Corpus], config: SamplerConfig) -> Result<Sampler> {
        let b = config.batch_size;
        if corpora.is_empty() {
            return Err(SamplerError::InvalidArgument(
                "no corpus to sample from".into(),
            ));
        }
        if b == 0 {
            return Err(SamplerError::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
        if let Some(alpha) = config.kind.alpha() {
            if !(0.0..=1.0).contains(&alpha) {
                return Err(SamplerError::InvalidArgument(format!(
                    "alpha must be in [0, 1], got {alpha}"
                )));
            }
        }
        if let Some(k) = config.kind.group_langs() {
            if k < 2 {
                return Err(SamplerError::InvalidArgument(format!(
                    "group batches need at least 2 languages per group, got {k}"
                )));
            }
            if b < 2 * k {
                return Err(SamplerError::InvalidArgument(format!(
                    "group batches of {b} pairs with {k} languages per group leave a query no \
                     negative from another group: the batch size must be at least {}",
                    2 * k
                )));
            }
        }
        let weights: Vec<f64> = match &config.weights {
            Some(w) => {
                if w.len() != corpora.len() {
                    return Err(SamplerError::InvalidArgument(format!(
                        "{} weights for {} corpora",
                        w.len(),
                        corpora.len()
                    )));
                }
                if let Some(bad) = w.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
                    return Err(SamplerError::InvalidArgument(format!(
                        "corpus weights must be finite and > 0, got {bad}"
                    )));
                }
                w.clone()
            }
            None => corpora.iter().map(|c| c.len() as f64).collect(),
        };
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut total = 0.0;
        for w in weights {
            total += w;
            cumulative.push(total);
        }
        let (needs_mono, needs_cross, needs_mixed) = match config.kind {
            SamplerKind::Mono => (true, false, false),
            SamplerKind::Cross => (false, true, false),
            SamplerKind::Mixed => (false, false, true),
            SamplerKind::Hybrid { alpha } => (alpha > 0.0, alpha < 1.0, false),
            SamplerKind::Group { .. } => (false, true, false),
            SamplerKind::HybridGroup { alpha, .. } => (alpha > 0.0, alpha < 1.0, false),
        };
        let cross_take = config.kind.cross_take(b);
        let mut pools = Vec::with_capacity(corpora.len());
        let mut streams = Vec::with_capacity(corpora.len());
        for corpus in corpora {
            if u32::try_from(corpus.len()).is_err() {
                return Err(SamplerError::InvalidArgument(format!(
                    "corpus `{}` has {} groups (at most {})",
                    corpus.name(),
                    corpus.len(),
                    u32::MAX
                )));
            }
            let p = build_pools(corpus, b);
            let unsat = |detail: String| SamplerError::Unsatisfiable {
                name: corpus.name().to_string(),
                detail,
            };
            if needs_mono && p.mono_eligible.is_empty() {
                let largest = p.mono.iter().map(Vec::len).max().unwrap_or(0);
                return Err(unsat(format!(
                    "mono batches of {b} need a language with at least {b} groups; the largest \
                     has {largest}"
                )));
            }
            if needs_cross && p.cross.len() < cross_take {
                let what = if config.kind.group_langs().is_some() {
                    "group"
                } else {
                    "cross"
                };
                return Err(unsat(format!(
                    "{what} batches of {b} need {cross_take} groups in two or more languages; \
                     there are {} ({} groups exist in one language only)",
                    p.cross.len(),
                    p.all.len() - p.cross.len()
                )));
            }
            if needs_mixed && p.all.len() < b {
                return Err(unsat(format!(
                    "mixed batches of {b} need {b} groups; there are {}",
                    p.all.len()
                )));
            }
            streams.push(Streams {
                mono: vec![Stream::default(); p.mono.len()],
                cross: Stream::default(),
                mixed: Stream::default(),
            });
            pools.push(p);
        }
        Ok(Sampler {
            rng: derived_rng(config.seed, &[TAG_MAIN]),
            config,
            pools,
            cumulative,
            next_index: 0,
            rank: 0,
            world: 1,
            streams,
        })
    }

    /// Restricts the sampler to shard `rank` of `world`: it then yields only the batches of
    /// the global stream whose index `i` satisfies `i % world == rank` (the others are drawn
    /// and discarded, so every shard sees exactly its slice of the unsharded stream). The
    /// shards of one configuration are disjoint and together make up the global stream.
    ///
    /// Errors if `world == 0` or `rank >= world`.
    pub fn shard(mut self, rank: u64, world: u64) -> Result<Sampler> {
        if world == 0 || rank >= world {
            return Err(SamplerError::InvalidArgument(format!(
                "shard rank {rank} of world {world}: need world >= 1 and rank < world"
            )));
        }
        self.rank = rank;
        self.world = world;
        Ok(self)
    }

    /// The configuration.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// `(rank, world)` of this sampler's shard (`(0, 1)` when unsharded).
    pub fn shard_info(&self) -> (u64, u64) {
        (self.rank, self.world)
    }

    /// Index of the next batch of the global stream to be drawn.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// The languages of corpus `corpus` that mono batches are drawn from (those with at least
    /// `batch_size` groups). Panics if `corpus` is out of range.
    pub fn mono_languages(&self, corpus: usize) -> &[LangId] {
        &self.pools[corpus].mono_eligible
    }

    /// Number of groups of corpus `corpus` that can appear in cross batches (those in two or
    /// more languages). Panics if `corpus` is out of range.
    pub fn cross_groups(&self, corpus: usize) -> usize {
        self.pools[corpus].cross.len()
    }

    /// The next batch of this shard.
    pub fn next_batch(&mut self) -> Batch {
        loop {
            let batch = self.draw();
            if batch.index % self.world == self.rank {
                return batch;
            }
        }
    }

    /// Draws the next batch of the global stream.
    fn draw(&mut self) -> Batch {
        let b = self.config.batch_size;
        let seed = self.config.seed;
        let index = self.next_index;
        self.next_index += 1;
        let rng = &mut self.rng;
        let c = if self.cumulative.len() == 1 {
            0
        } else {
            let total = self.cumulative[self.cumulative.len() - 1];
            let u = unit_f64(rng) * total;
            self.cumulative
                .iter()
                .position(|&cw| u < cw)
                .unwrap_or(self.cumulative.len() - 1)
        };
        let kind = match self.config.kind {
            SamplerKind::Mono => BatchKind::Mono,
            SamplerKind::Cross => BatchKind::Cross,
            SamplerKind::Mixed => BatchKind::Mixed,
            SamplerKind::Hybrid { alpha } => {
                if unit_f64(rng) < alpha {
                    BatchKind::Mono
                } else {
                    BatchKind::Cross
                }
            }
            SamplerKind::Group { .. } => BatchKind::Group,
            SamplerKind::HybridGroup { alpha, .. } => {
                if unit_f64(rng) < alpha {
                    BatchKind::Mono
                } else {
                    BatchKind::Group
                }
            }
        };
        let pools = &self.pools[c];
        let streams = &mut self.streams[c];
        let mut pairs = Vec::with_capacity(b);
        let epoch = match kind {
            BatchKind::Mono => {
                let eligible = &pools.mono_eligible;
                let lang = eligible[bounded(rng, eligible.len() as u64) as usize];
                let l = usize::from(lang);
                let (epoch, groups) = streams.mono[l].take(&pools.mono[l], b, seed, c, l as u64);
                pairs.extend(groups.iter().map(|&g| PairRef {
                    group: g as usize,
                    query_lang: lang,
                    passage_lang: lang,
                }));
                epoch
            }
            BatchKind::Cross => {
                let (epoch, groups) = streams.cross.take(&pools.cross, b, seed, c, STREAM_CROSS);
                for &g in groups {
                    let langs = pools.group_langs(g);
                    let n = langs.len() as u64;
                    let k = bounded(rng, n * (n - 1));
                    let x = k / (n - 1);
                    let mut y = k % (n - 1);
                    if y >= x {
                        y += 1;
                    }
                    pairs.push(PairRef {
                        group: g as usize,
                        query_lang: langs[x as usize],
                        passage_lang: langs[y as usize],
                    });
                }
                epoch
            }
            BatchKind::Group => {
                let k = self.config.kind.group_langs().unwrap_or(2);
                let take = self.config.kind.cross_take(b);
                let (epoch, groups) = streams
                    .cross
                    .take(&pools.cross, take, seed, c, STREAM_CROSS);
                let mut langs: Vec<LangId> = Vec::new();
                for &g in groups {
                    langs.clear();
                    langs.extend_from_slice(pools.group_langs(g));
                    partial_shuffle(rng, &mut langs, k);
                    for &lang in langs.iter().take(k.min(b - pairs.len())) {
                        pairs.push(PairRef {
                            group: g as usize,
                            query_lang: lang,
                            passage_lang: lang,
                        });
                    }
                }
                epoch
            }
            BatchKind::Mixed => {
                let (epoch, groups) = streams.mixed.take(&pools.all, b, seed, c, STREAM_MIXED);
                for &g in groups {
                    let langs = pools.group_langs(g);
                    let lang = langs[bounded(rng, langs.len() as u64) as usize];
                    pairs.push(PairRef {
                        group: g as usize,
                        query_lang: lang,
                        passage_lang: lang,
                    });
                }
                epoch
            }
        };
        Batch {
            index,
            kind,
            corpus: c,
            epoch,
            pairs,
        }
    }

    /// The state to save for [`Sampler::resume`].
    pub fn state(&self) -> SamplerState {
        SamplerState {
            format: STATE_FORMAT,
            config: self.config.clone(),
            next_index: self.next_index,
            rng_word_pos: self.rng.get_word_pos().to_string(),
            rank: self.rank,
            world: self.world,
            corpora: self
                .pools
                .iter()
                .zip(&self.streams)
                .map(|(p, s)| CorpusState {
                    fingerprint: p.fingerprint,
                    mono: s.mono.iter().map(|m| m.pos).collect(),
                    cross: s.cross.pos,
                    mixed: s.mixed.pos,
                })
                .collect(),
        }
    }

    /// Rebuilds a sampler from a saved state, over the same corpora (same order); it then
    /// yields exactly the batches the saved sampler would have yielded next.
    ///
    /// Errors ([`SamplerError::StateMismatch`]) if the state's format, corpus count or corpus
    /// fingerprints differ, or a position is out of range; plus the errors of
    /// [`Sampler::new`] and [`Sampler::shard`].
    pub fn resume(corpora: &[Corpus], state: &SamplerState) -> Result<Sampler> {
        if state.format != STATE_FORMAT {
            return Err(SamplerError::StateMismatch(format!(
                "state format {} (this build reads {STATE_FORMAT})",
                state.format
            )));
        }
        if state.corpora.len() != corpora.len() {
            return Err(SamplerError::StateMismatch(format!(
                "the state has {} corpora, {} were given",
                state.corpora.len(),
                corpora.len()
            )));
        }
        let word_pos: u128 = state.rng_word_pos.parse().map_err(|_| {
            SamplerError::StateMismatch(format!(
                "rng_word_pos `{}` is not a decimal u128",
                state.rng_word_pos
            ))
        })?;
        let mut sampler =
            Sampler::new(corpora, state.config.clone())?.shard(state.rank, state.world)?;
        let b = sampler.config.batch_size;
        let cross_take = sampler.config.kind.cross_take(b);
        for (c, (cs, corpus)) in state.corpora.iter().zip(corpora).enumerate() {
            let pools = &sampler.pools[c];
            if cs.fingerprint != pools.fingerprint {
                return Err(SamplerError::StateMismatch(format!(
                    "corpus {c} (`{}`) differs from the one the state was saved with",
                    corpus.name()
                )));
            }
            if cs.mono.len() != pools.mono.len() {
                return Err(SamplerError::StateMismatch(format!(
                    "corpus {c}: {} mono streams in the state, {} languages in the corpus",
                    cs.mono.len(),
                    pools.mono.len()
                )));
            }
            let check = |pos: &StreamPos, len: usize, what: &str, take: usize| {
                // A stream never used has cursor 0; a used one has drawn whole batches.
                if pos.cursor > len || !pos.cursor.is_multiple_of(take) {
                    Err(SamplerError::StateMismatch(format!(
                        "corpus {c}: {what} cursor {} invalid for a pool of {len} and batches \
                         of {take} groups",
                        pos.cursor
                    )))
                } else {
                    Ok(())
                }
            };
            for (l, pos) in cs.mono.iter().enumerate() {
                check(pos, pools.mono[l].len(), "mono", b)?;
            }
            check(&cs.cross, pools.cross.len(), "cross", cross_take)?;
            check(&cs.mixed, pools.all.len(), "mixed", b)?;
            let streams = &mut sampler.streams[c];
            for (s, pos) in streams.mono.iter_mut().zip(&cs.mono) {
                s.pos = *pos;
            }
            streams.cross.pos = cs.cross;
            streams.mixed.pos = cs.mixed;
        }
        sampler.rng.set_word_pos(word_pos);
        sampler.next_index = state.next_index;
        Ok(sampler)
    }
}

impl Iterator for Sampler {
    type Item = Batch;

    /// Always `Some`: the stream is endless.
    fn next(&mut self) -> Option<Batch> {
        Some(self.next_batch())
    }
}

fn build_pools(corpus: &Corpus, b: usize) -> Pools {
    let n_langs = corpus.languages().len();
    let mut mono = vec![Vec::new(); n_langs];
    let mut cross = Vec::new();
    let mut all = Vec::with_capacity(corpus.len());
    let mut lang_offsets = Vec::with_capacity(corpus.len() + 1);
    let mut langs = Vec::new();
    lang_offsets.push(0);
    for g in 0..corpus.len() {
        let gl = corpus.group_langs(g);
        let gid = g as u32;
        all.push(gid);
        if gl.len() >= 2 {
            cross.push(gid);
        }
        for &l in gl {
            mono[usize::from(l)].push(gid);
        }
        langs.extend_from_slice(gl);
        lang_offsets.push(langs.len());
    }
    let mono_eligible = (0..n_langs)
        .filter(|&l| mono[l].len() >= b)
        .map(|l| l as LangId)
        .collect();
    Pools {
        fingerprint: corpus.fingerprint(),
        lang_offsets,
        langs,
        mono,
        mono_eligible,
        cross,
        all,
    }
}
