//! Corpora: groups of parallel (query, positive, negatives) examples.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{Result, SamplerError};
use crate::mmarco::MmarcoStore;
use crate::rng::Fnv;
use crate::sampler::PairRef;

/// Index of a language in [`Corpus::languages`] (languages are sorted by code).
pub type LangId = u16;

/// One language version of a source pair.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Example {
    /// The query (question).
    pub query: String,
    /// The positive passage (for LAReQA data, the gold sentence or the paragraph).
    pub positive: String,
    /// Optional context of the positive, to be encoded as the second text of a pair
    /// (LAReQA's "sentence with its paragraph" unit puts the paragraph here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive_context: Option<String>,
    /// Hard negatives (may be empty).
    #[serde(default)]
    pub negatives: Vec<String>,
}

/// A source pair in every language it exists in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    /// The group id (LAReQA question `id`, JSONL `group`, mMARCO query id).
    pub id: String,
    /// Language code to example.
    pub versions: BTreeMap<String, Example>,
}

/// The texts of one pair of a batch, resolved by [`Corpus::texts`].
///
/// In-memory corpora lend their strings; streamed corpora (mMARCO) return owned ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texts<'a> {
    /// The query, in the pair's query language.
    pub query: Cow<'a, str>,
    /// The positive passage, in the pair's passage language.
    pub positive: Cow<'a, str>,
    /// The positive's context (second text of a pair), in the passage language, if any.
    pub positive_context: Option<Cow<'a, str>>,
    /// The hard negatives, in the passage language.
    pub negatives: Vec<Cow<'a, str>>,
    /// The hard negatives of the query-language version (empty when the query and passage
    /// languages are the same): for LAReQA context negatives, the other sentences of the
    /// paragraph in the query's language.
    pub query_negatives: Vec<Cow<'a, str>>,
    /// The pair's topic ([`Corpus::topic`]).
    pub topic: Option<u64>,
}

impl Texts<'_> {
    /// Copies every text into an owned value.
    pub fn into_owned(self) -> Texts<'static> {
        Texts {
            query: Cow::Owned(self.query.into_owned()),
            positive: Cow::Owned(self.positive.into_owned()),
            positive_context: self.positive_context.map(|c| Cow::Owned(c.into_owned())),
            negatives: self
                .negatives
                .into_iter()
                .map(|n| Cow::Owned(n.into_owned()))
                .collect(),
            query_negatives: self
                .query_negatives
                .into_iter()
                .map(|n| Cow::Owned(n.into_owned()))
                .collect(),
            topic: self.topic,
        }
    }
}

/// What a loader read and what it skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadStats {
    /// Records read (questions for LAReQA, non-empty lines for JSONL, triples for mMARCO).
    pub read: usize,
    /// Records skipped, by reason (e.g. "en: answer runs past the end of its sentence").
    pub skipped: BTreeMap<String, usize>,
}

impl LoadStats {
    pub(crate) fn skip(&mut self, reason: &str) {
        *self.skipped.entry(reason.to_string()).or_insert(0) += 1;
    }

    /// Total number of skipped records.
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }
}

/// Where the texts of a corpus live.
#[derive(Debug)]
pub(crate) enum Store {
    /// In memory, parallel to `Corpus::langs` (one example per group version).
    Memory(Vec<Example>),
    /// Streamed from TSV files on demand.
    Mmarco(Box<MmarcoStore>),
}

/// A training corpus: a list of groups, each available in one or more languages.
///
/// Groups are indexed `0..len()` in load order; languages are interned as [`LangId`]s (the
/// index into the sorted [`languages`](Corpus::languages)).
#[derive(Debug)]
pub struct Corpus {
    name: String,
    languages: Vec<String>,
    ids: Vec<String>,
    /// `langs[lang_offsets[g]..lang_offsets[g + 1]]` are group g's languages, sorted.
    lang_offsets: Vec<usize>,
    langs: Vec<LangId>,
    store: Store,
    stats: LoadStats,
    /// Per group: the topic ([`Corpus::topic`]), when the loader knows them.
    topics: Option<Vec<Option<u64>>>,
    /// The negatives are in-context ones ([`Corpus::has_context_negatives`]).
    context_negatives: bool,
}

impl Corpus {
    /// Builds an in-memory corpus from groups (kept in the given order).
    ///
    /// Groups without any version are dropped (counted in [`stats`](Corpus::stats)).
    /// Errors: duplicate group ids, an empty language code, more than 65,535 languages, or
    /// no group left ([`SamplerError::EmptyCorpus`]).
    pub fn from_groups(name: impl Into<String>, groups: Vec<Group>) -> Result<Corpus> {
        Self::from_groups_with_stats(name.into(), groups, LoadStats::default())
    }

    pub(crate) fn from_groups_with_stats(
        name: String,
        groups: Vec<Group>,
        mut stats: LoadStats,
    ) -> Result<Corpus> {
        let mut lang_set = BTreeSet::new();
        let mut seen = HashSet::with_capacity(groups.len());
        for g in &groups {
            if !seen.insert(g.id.as_str()) {
                return Err(SamplerError::InvalidArgument(format!(
                    "corpus `{name}`: duplicate group id `{}`",
                    g.id
                )));
            }
            for lang in g.versions.keys() {
                if lang.is_empty() {
                    return Err(SamplerError::InvalidArgument(format!(
                        "corpus `{name}`: group `{}` has an empty language code",
                        g.id
                    )));
                }
                lang_set.insert(lang.clone());
            }
        }
        drop(seen);
        let languages: Vec<String> = lang_set.into_iter().collect();
        if languages.len() > usize::from(LangId::MAX) {
            return Err(SamplerError::InvalidArgument(format!(
                "corpus `{name}`: {} languages (at most {})",
                languages.len(),
                LangId::MAX
            )));
        }
        let lang_index: BTreeMap<&str, LangId> = languages
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i as LangId))
            .collect();
        let mut ids = Vec::with_capacity(groups.len());
        let mut lang_offsets = vec![0];
        let mut langs = Vec::new();
        let mut examples = Vec::new();
        for g in groups {
            if g.versions.is_empty() {
                stats.skip("group without any language version");
                continue;
            }
            ids.push(g.id);
            // BTreeMap iterates in code order, which is LangId order.
            for (lang, ex) in g.versions {
                langs.push(lang_index[lang.as_str()]);
                examples.push(ex);
            }
            lang_offsets.push(langs.len());
        }
        Self::from_parts(
            name,
            languages,
            ids,
            lang_offsets,
            langs,
            Store::Memory(examples),
            stats,
        )
    }

    pub(crate) fn from_parts(
        name: String,
        languages: Vec<String>,
        ids: Vec<String>,
        lang_offsets: Vec<usize>,
        langs: Vec<LangId>,
        store: Store,
        stats: LoadStats,
    ) -> Result<Corpus> {
        if ids.is_empty() {
            let mut detail = format!("{} records read", stats.read);
            if !stats.skipped.is_empty() {
                let parts: Vec<String> = stats
                    .skipped
                    .iter()
                    .map(|(r, n)| format!("{n} skipped: {r}"))
                    .collect();
                detail = format!("{detail}; {}", parts.join("; "));
            }
            return Err(SamplerError::EmptyCorpus { name, detail });
        }
        Ok(Corpus {
            name,
            languages,
            ids,
            lang_offsets,
            langs,
            store,
            stats,
            topics: None,
            context_negatives: false,
        })
    }

    /// Marks the negatives as in-context ones ([`Corpus::has_context_negatives`]).
    pub(crate) fn with_context_negatives(mut self, yes: bool) -> Corpus {
        self.context_negatives = yes;
        self
    }

    /// Whether the hard negatives are in-context ones: a LAReQA corpus loaded with
    /// [`LoadOptions::context_negatives`](crate::LoadOptions::context_negatives), whose
    /// negatives are the other sentences of each gold's paragraph (in the passage's language,
    /// and in the query's, [`Texts::query_negatives`]). Training draws these as
    /// `--context-negatives` says; other corpora keep their own negatives.
    pub fn has_context_negatives(&self) -> bool {
        self.context_negatives
    }

    /// Sets every group's topic from its id (see [`Corpus::topic`]).
    pub(crate) fn with_topics(mut self, topic: impl Fn(&str) -> Option<u64>) -> Corpus {
        self.topics = Some(self.ids.iter().map(|id| topic(id)).collect());
        self
    }

    /// The topic of group `group`, when the loader knows it: groups with one topic draw their
    /// positives from one source paragraph (LAReQA corpora), so a hard negative of one may be
    /// the positive of another, or its translation.
    pub fn topic(&self, group: usize) -> Option<u64> {
        self.topics.as_ref()?.get(group).copied().flatten()
    }

    /// Renames the corpus (the name shows in errors, batch records and the fingerprint).
    pub fn with_name(mut self, name: impl Into<String>) -> Corpus {
        self.name = name.into();
        self
    }

    /// The corpus name (the spec it was loaded from, or the name given).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the corpus has no group (never true for a successfully built corpus).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Language codes, sorted; a [`LangId`] indexes this slice.
    pub fn languages(&self) -> &[String] {
        &self.languages
    }

    /// The code of language `lang` (e.g. `"de"`). Panics if `lang` is out of range.
    pub fn language(&self, lang: LangId) -> &str {
        &self.languages[usize::from(lang)]
    }

    /// The id of a language code, if the corpus has it.
    pub fn lang_id(&self, code: &str) -> Option<LangId> {
        self.languages
            .binary_search_by(|l| l.as_str().cmp(code))
            .ok()
            .map(|i| i as LangId)
    }

    /// The id of group `group`. Panics if `group >= len()`.
    pub fn group_id(&self, group: usize) -> &str {
        &self.ids[group]
    }

    /// The languages group `group` exists in, sorted. Panics if `group >= len()`.
    pub fn group_langs(&self, group: usize) -> &[LangId] {
        &self.langs[self.lang_offsets[group]..self.lang_offsets[group + 1]]
    }

    /// Number of groups available in each language (indexed by [`LangId`]).
    pub fn groups_per_language(&self) -> Vec<usize> {
        let mut counts = vec![0; self.languages.len()];
        for &l in &self.langs {
            counts[usize::from(l)] += 1;
        }
        counts
    }

    /// Number of groups that exist in one language only (they can't be in a cross batch).
    pub fn single_language_groups(&self) -> usize {
        (0..self.len())
            .filter(|&g| self.group_langs(g).len() == 1)
            .count()
    }

    /// What the loader read and skipped.
    pub fn stats(&self) -> &LoadStats {
        &self.stats
    }

    /// Position of `lang` in group `group`'s flat version list.
    fn version(&self, group: usize, lang: LangId) -> Option<usize> {
        if group >= self.len() {
            return None;
        }
        let start = self.lang_offsets[group];
        self.group_langs(group)
            .binary_search(&lang)
            .ok()
            .map(|i| start + i)
    }

    /// Resolves a pair to its texts: the query in `query_lang`, the positive, its context and
    /// the negatives in `passage_lang`.
    ///
    /// Errors if the group or a language is not in the corpus (a pair from another corpus),
    /// or, for streamed corpora, if reading the files fails.
    pub fn texts(&self, pair: &PairRef) -> Result<Texts<'_>> {
        let missing = |lang: LangId| {
            SamplerError::InvalidArgument(format!(
                "corpus `{}`: group {} has no version in language id {lang}",
                self.name, pair.group
            ))
        };
        let q = self
            .version(pair.group, pair.query_lang)
            .ok_or_else(|| missing(pair.query_lang))?;
        let p = self
            .version(pair.group, pair.passage_lang)
            .ok_or_else(|| missing(pair.passage_lang))?;
        match &self.store {
            Store::Memory(examples) => {
                let (qe, pe) = (&examples[q], &examples[p]);
                Ok(Texts {
                    query: Cow::Borrowed(&qe.query),
                    positive: Cow::Borrowed(&pe.positive),
                    positive_context: pe.positive_context.as_deref().map(Cow::Borrowed),
                    negatives: pe
                        .negatives
                        .iter()
                        .map(|n| Cow::Borrowed(n.as_str()))
                        .collect(),
                    query_negatives: if q == p {
                        Vec::new()
                    } else {
                        qe.negatives
                            .iter()
                            .map(|n| Cow::Borrowed(n.as_str()))
                            .collect()
                    },
                    topic: self.topic(pair.group),
                })
            }
            Store::Mmarco(store) => store.texts(pair.group, pair.query_lang, pair.passage_lang),
        }
    }

    /// Group `group` with all its language versions, as owned [`Example`]s (streamed corpora
    /// read them from their files). Panics if `group >= len()`.
    pub fn group(&self, group: usize) -> Result<Group> {
        let mut versions = BTreeMap::new();
        for &l in self.group_langs(group) {
            let t = self.texts(&PairRef {
                group,
                query_lang: l,
                passage_lang: l,
            })?;
            versions.insert(
                self.language(l).to_string(),
                Example {
                    query: t.query.into_owned(),
                    positive: t.positive.into_owned(),
                    positive_context: t.positive_context.map(Cow::into_owned),
                    negatives: t.negatives.into_iter().map(Cow::into_owned).collect(),
                },
            );
        }
        Ok(Group {
            id: self.group_id(group).to_string(),
            versions,
        })
    }

    /// A fingerprint of the corpus structure (languages, group ids and their languages; not
    /// the name), used to check that a saved sampler state is resumed on the same data.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv::new();
        h.u64(self.languages.len() as u64);
        for l in &self.languages {
            h.str(l);
        }
        h.u64(self.ids.len() as u64);
        for (g, id) in self.ids.iter().enumerate() {
            h.str(id);
            let langs = self.group_langs(g);
            h.u64(langs.len() as u64);
            for &l in langs {
                h.u64(u64::from(l));
            }
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(q: &str) -> Example {
        Example {
            query: format!("q {q}"),
            positive: format!("p {q}"),
            positive_context: None,
            negatives: vec![format!("n {q}")],
        }
    }

    #[test]
    fn from_groups_interns_languages_and_resolves_texts() {
        let groups = vec![
            Group {
                id: "a".into(),
                versions: [
                    ("en".to_string(), ex("a-en")),
                    ("de".to_string(), ex("a-de")),
                ]
                .into_iter()
                .collect(),
            },
            Group {
                id: "b".into(),
                versions: [("fr".to_string(), ex("b-fr"))].into_iter().collect(),
            },
        ];
        let c = Corpus::from_groups("t", groups).unwrap();
        assert_eq!(c.languages(), ["de", "en", "fr"]);
        assert_eq!(c.len(), 2);
        assert_eq!(c.group_langs(0), [0, 1]);
        assert_eq!(c.group_langs(1), [2]);
        assert_eq!(c.groups_per_language(), vec![1, 1, 1]);
        assert_eq!(c.single_language_groups(), 1);
        let t = c
            .texts(&PairRef {
                group: 0,
                query_lang: 0,
                passage_lang: 1,
            })
            .unwrap();
        assert_eq!(t.query, "q a-de");
        assert_eq!(t.positive, "p a-en");
        assert_eq!(t.negatives, vec!["n a-en"]);
        let bad = c.texts(&PairRef {
            group: 1,
            query_lang: 0,
            passage_lang: 2,
        });
        assert!(matches!(bad, Err(SamplerError::InvalidArgument(_))));
        let out_of_range = c.texts(&PairRef {
            group: 9,
            query_lang: 0,
            passage_lang: 0,
        });
        assert!(out_of_range.is_err());
    }

    #[test]
    fn empty_and_duplicate_are_errors() {
        assert!(matches!(
            Corpus::from_groups("e", vec![]),
            Err(SamplerError::EmptyCorpus { .. })
        ));
        let g = Group {
            id: "x".into(),
            versions: [("en".to_string(), ex("x"))].into_iter().collect(),
        };
        let dup = Corpus::from_groups("d", vec![g.clone(), g]);
        assert!(matches!(dup, Err(SamplerError::InvalidArgument(_))));
        let no_versions = Group {
            id: "y".into(),
            versions: BTreeMap::new(),
        };
        let e = Corpus::from_groups("n", vec![no_versions]).unwrap_err();
        assert!(
            e.to_string().contains("without any language version"),
            "{e}"
        );
    }
}
