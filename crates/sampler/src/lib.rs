//! Training corpora and batch samplers for multilingual dense retrieval
//! (docs/method.md §3: X-X-mono, X-Y and hybrid batching).
//!
//! # Corpora
//! A [`Corpus`] is a list of groups; a group is one source pair (query, positive passage,
//! optional hard negatives) in every language it exists in. Loaders:
//! - [`load_lareqa`]: a directory of LAReQA/SQuAD `LANG.json` files (XQuAD-R, MLQA-R),
//!   grouped by question `id`, with a selectable [`PassageUnit`];
//! - [`load_jsonl`]: one `{"group","lang","query","positive","negatives"}` object per line;
//! - [`load_mmarco`]: mMARCO-style TSVs, streamed (only byte offsets are kept in memory);
//! - [`load_corpus`] / [`load_train`]: resolve `mlqa-r`, `xquad-r` (inside a data directory)
//!   or a path, and comma-separated weighted lists (`a:2,b:1`) for mixing.
//!
//! Malformed input is an error naming the file (and line, for JSONL and TSV); unusable
//! records (e.g. an answer that crosses a sentence end) are skipped and counted in
//! [`Corpus::stats`]; a corpus with no usable group is [`SamplerError::EmptyCorpus`].
//!
//! [`split_validation`] holds groups of a corpus list out (seeded, in proportion to the
//! corpora's sizes), for a validation loss.
//!
//! # Samplers
//! A [`Sampler`] draws [`Batch`]es of [`PairRef`]s (group, query language, passage language);
//! [`Corpus::texts`] resolves a pair to its texts. Kinds ([`SamplerKind`]):
//! - `Mono` (X-X-mono): the batch's language is drawn uniformly from the languages that have
//!   at least `batch_size` groups; every pair is in that language.
//! - `Cross` (X-Y): per pair, an ordered language pair (X, Y), X ≠ Y, drawn uniformly from the
//!   group's available ordered pairs. Groups in one language only never appear in cross
//!   batches ([`Corpus::single_language_groups`] counts them).
//! - `Mixed` (X-X): per pair, one language drawn uniformly from the group's languages.
//! - `Hybrid { alpha }`: each batch is `Mono` with probability `alpha`, else `Cross`.
//! - `Group { langs }`: multi-positive batches. `ceil(batch_size / langs)` groups of the
//!   cross pool (two or more languages), each in up to `langs` of its languages (drawn
//!   uniformly), one monolingual pair per language; the pairs of one group are positives for
//!   each other's queries. The last group is cut short when the batch is full, and groups
//!   with fewer than `langs` languages give fewer pairs, so a batch can hold fewer than
//!   `batch_size` pairs.
//! - `HybridGroup { alpha, langs }`: each batch is `Mono` with probability `alpha`, else
//!   `Group`.
//!
//! With several corpora, each batch's corpus is drawn with probability proportional to its
//! number of groups, or to [`SamplerConfig::weights`].
//!
//! # Invariants
//! - **No group twice in a batch**, except in group batches, where a group comes once per
//!   language and its pairs are positives for each other.
//! - **Epochs, without replacement.** Each corpus has independent without-replacement
//!   *streams*: one per language for mono batches (the groups that exist in that language),
//!   one for cross batches (the groups in two or more languages), one for mixed batches (all
//!   groups). A stream's epoch `e` is a permutation of its pool generated from
//!   (seed, corpus, stream, e); batches take consecutive runs of `batch_size` groups from it,
//!   and when fewer than `batch_size` are left the remainder is dropped and epoch `e + 1`
//!   starts. So within one epoch of one stream no group is drawn twice: a group appears at
//!   most once per epoch of each language's mono stream (once per language version), and at
//!   most once per cross (or mixed) epoch. Group batches draw their groups from the cross
//!   stream (`ceil(batch_size / langs)` at a time). Mono and cross streams are independent,
//!   so under `Hybrid` a group may appear in a mono batch and in a cross batch of the same
//!   epochs.
//!   [`Batch::epoch`] is the epoch of the stream the batch came from.
//! - **Deterministic by seed**: the batch stream is a function of the corpora (group order
//!   and languages) and the [`SamplerConfig`]. Every draw uses ChaCha8 and integer-exact
//!   helpers ([`bounded`], [`partial_shuffle`], public for other seeded draws), independent
//!   of the `rand` version.
//! - **Resumable**: [`Sampler::state`] is a small serde value (configuration, next batch
//!   index, the main generator's word position, each stream's epoch and cursor);
//!   [`Sampler::resume`] continues with exactly the batches the saved sampler would have
//!   produced.
//! - **Sharding**: [`Sampler::shard`]`(rank, world)` yields the batches of the global stream
//!   whose index is `rank` modulo `world`; the shards are disjoint and together are the
//!   global stream.

mod corpus;
mod error;
mod exact;
mod jsonl;
mod lareqa;
mod mmarco;
mod rng;
mod sampler;
mod spec;
mod split;

pub use corpus::{Corpus, Example, Group, LangId, LoadStats, Texts};
pub use error::{Result, SamplerError};
pub use jsonl::load_jsonl;
pub use lareqa::{load_lareqa, load_lareqa_with, PassageUnit};
pub use mmarco::{load_mmarco, MmarcoOptions};
pub use rng::{bounded, partial_shuffle};
pub use sampler::{
    Batch, BatchKind, BatchRecord, CorpusState, PairRecord, PairRef, Sampler, SamplerConfig,
    SamplerKind, SamplerState, StreamPos, STATE_FORMAT,
};
pub use spec::{
    load_corpus, load_train, parse_train_specs, LoadOptions, TrainSpec, NAMED_DATASETS,
};
pub use split::split_validation;
