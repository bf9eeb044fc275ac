//! Loader for LAReQA-format directories (XQuAD-R, MLQA-R).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

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

#[derive(Deserialize)]
struct SquadFile {
    data: Vec<Article>,
}

#[derive(Deserialize)]
struct Article {
    paragraphs: Vec<Paragraph>,
}

#[derive(Deserialize)]
struct Paragraph {
    context: String,
    qas: Vec<Qa>,
    sentence_breaks: Vec<(usize, usize)>,
}

#[derive(Deserialize)]
struct Qa {
    id: String,
    question: String,
    #[serde(default)]
    answers: Vec<Answer>,
}

#[derive(Deserialize)]
struct Answer {
    text: String,
    answer_start: usize,
}

/// The `LANG.json` files of a directory, sorted by language code.
pub(crate) fn json_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| SamplerError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SamplerError::io(dir, e))?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") || !path.is_file() {
            continue;
        }
        let Some(lang) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        files.push((lang.to_string(), path));
    }
    files.sort();
    Ok(files)
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
/// Errors: unreadable directory or file, no `*.json` file, malformed JSON (naming the file),
/// sentence offsets out of range, a question id twice in one file, or no usable question.
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
        let file: SquadFile =
            serde_json::from_slice(&bytes).map_err(|source| SamplerError::Json {
                path: path.clone(),
                source,
            })?;
        drop(bytes);
        let mut ids_in_file: HashSet<String> = HashSet::new();
        for (a, article) in file.data.into_iter().enumerate() {
            for (p, para) in article.paragraphs.into_iter().enumerate() {
                // Byte offset of every char, plus the end.
                let char_starts: Vec<usize> = para
                    .context
                    .char_indices()
                    .map(|(b, _)| b)
                    .chain(std::iter::once(para.context.len()))
                    .collect();
                let n_chars = char_starts.len() - 1;
                for (s, &(start, end)) in para.sentence_breaks.iter().enumerate() {
                    if start > end || end > n_chars {
                        return Err(SamplerError::bad_file(
                            path,
                            format!(
                                "article {a}, paragraph {p}: sentence {s} has offsets \
                                 [{start}, {end}) outside its context of {n_chars} characters"
                            ),
                        ));
                    }
                }
                for qa in para.qas {
                    stats.read += 1;
                    if !ids_in_file.insert(qa.id.clone()) {
                        return Err(SamplerError::bad_file(
                            path,
                            format!(
                                "article {a}, paragraph {p}: question id `{}` appears twice",
                                qa.id
                            ),
                        ));
                    }
                    let Some(answer) = qa.answers.first() else {
                        stats.skip(&format!("{lang}: no answer"));
                        continue;
                    };
                    if qa.question.trim().is_empty() {
                        stats.skip(&format!("{lang}: empty question"));
                        continue;
                    }
                    let a_start = answer.answer_start;
                    let Some(&(s_start, s_end)) = para
                        .sentence_breaks
                        .iter()
                        .find(|&&(s, e)| s <= a_start && a_start < e)
                    else {
                        stats.skip(&format!("{lang}: answer starts outside every sentence"));
                        continue;
                    };
                    if a_start + answer.text.chars().count() > s_end {
                        stats.skip(&format!("{lang}: answer runs past the sentence end"));
                        continue;
                    }
                    let sentence = &para.context[char_starts[s_start]..char_starts[s_end]];
                    let (positive, positive_context) = match unit {
                        PassageUnit::Sentence => (sentence.to_string(), None),
                        PassageUnit::SentenceWithParagraph => {
                            (sentence.to_string(), Some(para.context.clone()))
                        }
                        PassageUnit::Paragraph => (para.context.clone(), None),
                    };
                    let example = Example {
                        query: qa.question,
                        positive,
                        positive_context,
                        negatives: Vec::new(),
                    };
                    let g = *index.entry(qa.id.clone()).or_insert_with(|| {
                        groups.push(Group {
                            id: qa.id,
                            versions: Default::default(),
                        });
                        groups.len() - 1
                    });
                    groups[g].versions.insert(lang.clone(), example);
                }
            }
        }
    }
    Corpus::from_groups_with_stats(name, groups, stats)
}
