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
        for q in questions {
            if q.text.trim().is_empty() {
                stats.skip(&format!("{lang}: empty question"));
                continue;
            }
            let gold = &candidates[q.gold];
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
                negatives: Vec::new(),
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
    Corpus::from_groups_with_stats(name, groups, stats)
}
