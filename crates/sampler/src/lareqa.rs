//! Loader for LAReQA-format directories (XQuAD-R, MLQA-R) as training corpora, on the parser
//! the evaluation uses too (`multiret_data::lareqa`): one reading of the format for both uses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use multiret_data::lareqa::LangData;
use serde::{Deserialize, Serialize};

use crate::corpus::{Corpus, Example, Group, LoadStats};
use crate::error::{Result, SamplerError};

/// Which text of a LAReQA paragraph becomes the positive passage of a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PassageUnit {
    /// The gold sentence alone (the evaluation's default candidate).
    #[default]
    Sentence,
    /// The gold sentence, with its paragraph in [`Example::positive_context`] (a text pair).
    SentenceWithParagraph,
    /// The whole paragraph.
    Paragraph,
}

/// The `LANG.json` files of a directory, sorted by language code.
pub(crate) fn json_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    Ok(multiret_data::lareqa_files(dir)?)
}

/// Loads a directory of LAReQA `LANG.json` files into a corpus named after the directory.
///
/// Each file is SQuAD v1.1 JSON whose paragraphs carry `sentence_breaks` (character offsets,
/// counted in Unicode scalar values); the language code is the file stem. Questions are
/// grouped across files by their `id`. The gold sentence of a question is the sentence whose
/// `[start, end)` span contains the first answer's `answer_start`; a question with no answer,
/// whose answer starts outside every sentence, or runs past the end of its sentence, is
/// skipped and counted in [`Corpus::stats`] (key `"LANG: reason"`). The positive passage is
/// chosen by `unit`. LAReQA data has no hard negatives.
///
/// Errors (those of [`multiret_data::parse_lareqa_file`], naming the file and the place in it):
/// unreadable directory or file, no `*.json` file, malformed JSON, sentence offsets out of range,
/// overlapping or out of order, a `sentences` list whose length differs from `sentence_breaks`,
/// an answer whose offsets lie outside its context, a question id twice in one file, or no
/// usable question. The evaluation refuses such files, so training refuses them too.
pub fn load_lareqa(dir: &Path, unit: PassageUnit) -> Result<Corpus> {
    load_lareqa_with(dir, unit, false)
}

/// [`load_lareqa`], and with `context_negatives` every example's hard negatives are the other
/// sentences of its gold sentence's paragraph, in its language, in paragraph order: the
/// distractors the evaluation ranks against. The gold sentence itself and every sentence with
/// the gold's text are left out, and repeated texts are kept once. Every group gets a *topic*
/// either way ([`Corpus::topic`]): groups whose gold sentences lie in one paragraph (in any
/// language) share it, so that a batch can tell which negatives of one pair may be the
/// positive, or a translation of the positive, of another, and so that the validation split
/// holds out whole paragraphs.
///
/// Context negatives need sentence positives: with [`PassageUnit::Paragraph`] or
/// [`PassageUnit::SentenceWithParagraph`] they are an error.
pub fn load_lareqa_with(dir: &Path, unit: PassageUnit, context_negatives: bool) -> Result<Corpus> {
    if context_negatives && unit != PassageUnit::Sentence {
        return Err(SamplerError::InvalidArgument(format!(
            "{}: context negatives (the other sentences of the gold's paragraph) need sentence \
             positives (--passage sentence)",
            dir.display()
        )));
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let files = json_files(dir)?;
    if files.is_empty() {
        return Err(SamplerError::bad_file(
            dir,
            "no LANG.json file in this directory (expected a LAReQA dataset)",
        ));
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut stats = LoadStats::default();
    let mut topics = Topics::default();
    for (lang, path) in &files {
        let bytes = std::fs::read(path).map_err(|e| SamplerError::io(path, e))?;
        // The evaluation's parser: one reading of the format (offsets, gold sentences, skips).
        let data = multiret_data::parse_lareqa_file(lang, &bytes, path)?;
        drop(bytes);
        stats.read += data.questions_read;
        for (reason, &n) in &data.skipped {
            for _ in 0..n {
                stats.skip(&format!("{lang}: {}", reason.describe()));
            }
        }
        let LangData {
            contexts,
            candidates,
            questions,
            ..
        } = data;
        // The candidates of each paragraph, in order (they are contiguous in file order).
        let mut by_paragraph: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, c) in candidates.iter().enumerate() {
            by_paragraph.entry(c.paragraph).or_default().push(i);
        }
        for q in questions {
            if q.text.trim().is_empty() {
                stats.skip(&format!("{lang}: empty question"));
                continue;
            }
            let gold = &candidates[q.gold];
            let negatives = if context_negatives {
                let mut seen: Vec<&str> = vec![gold.text.as_str()];
                let mut out = Vec::new();
                for &i in &by_paragraph[&gold.paragraph] {
                    let t = candidates[i].text.as_str();
                    if i != q.gold && !t.trim().is_empty() && !seen.contains(&t) {
                        seen.push(t);
                        out.push(t.to_string());
                    }
                }
                out
            } else {
                Vec::new()
            };
            topics.link(&q.id, lang, gold.paragraph);
            let context = &contexts[gold.paragraph];
            let (positive, positive_context) = match unit {
                PassageUnit::Sentence => (gold.text.clone(), None),
                PassageUnit::SentenceWithParagraph => (gold.text.clone(), Some(context.clone())),
                PassageUnit::Paragraph => (context.clone(), None),
            };
            let example = Example {
                query: q.text,
                positive,
                positive_context,
                negatives,
            };
            let g = *index.entry(q.id.clone()).or_insert_with(|| {
                groups.push(Group {
                    id: q.id,
                    versions: Default::default(),
                });
                groups.len() - 1
            });
            groups[g].versions.insert(lang.clone(), example);
        }
    }
    let corpus = Corpus::from_groups_with_stats(name, groups, stats)?;
    let t = topics.resolve();
    Ok(corpus
        .with_topics(|id| t.get(id).copied())
        .with_context_negatives(context_negatives))
}

/// Groups that share a paragraph: a union-find over (language, paragraph) keys, each group
/// joining the keys of its language versions.
#[derive(Default)]
struct Topics {
    keys: HashMap<(String, usize), usize>,
    parent: Vec<usize>,
    first: HashMap<String, usize>,
}

impl Topics {
    fn key(&mut self, lang: &str, paragraph: usize) -> usize {
        let n = self.parent.len();
        let k = *self.keys.entry((lang.to_string(), paragraph)).or_insert(n);
        if k == n {
            self.parent.push(n);
        }
        k
    }

    fn find(&mut self, mut k: usize) -> usize {
        while self.parent[k] != k {
            self.parent[k] = self.parent[self.parent[k]];
            k = self.parent[k];
        }
        k
    }

    /// Group `id`'s version in `lang` has its gold in `paragraph`.
    fn link(&mut self, id: &str, lang: &str, paragraph: usize) {
        let k = self.key(lang, paragraph);
        match self.first.get(id) {
            Some(&f) => {
                let (a, b) = (self.find(f), self.find(k));
                self.parent[a] = b;
            }
            None => {
                self.first.insert(id.to_string(), k);
            }
        }
    }

    /// Each group's topic: its paragraph cluster's root.
    fn resolve(mut self) -> HashMap<String, u64> {
        let first = std::mem::take(&mut self.first);
        first
            .into_iter()
            .map(|(id, k)| (id, self.find(k) as u64))
            .collect()
    }
}
