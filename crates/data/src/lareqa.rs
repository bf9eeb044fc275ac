//! Loader for LAReQA-format benchmarks (XQuAD-R, MLQA-R, or any directory of `LANG.json`
//! files), following docs/method.md §4.
//!
//! - **Candidates**: every sentence (from `sentence_breaks`) of every paragraph of every file,
//!   identified by (language, paragraph index in file order, sentence index). The text is the
//!   context sliced by the break offsets, counted in Unicode scalar values.
//! - **Queries**: every question whose gold sentence is defined.
//! - **Gold**: the sentence whose `[start, end)` span contains the first answer's
//!   `answer_start`. A question with no answer, whose answer starts in no sentence, or runs past
//!   the end of its sentence, is skipped and counted by [`SkipReason`].

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// Why a question was left out of the evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The question has no answer.
    NoAnswer,
    /// The first answer's `answer_start` lies in no sentence span (e.g. between sentences).
    AnswerOutsideSentences,
    /// The first answer starts in a sentence but runs past that sentence's end.
    AnswerCrossesSentenceEnd,
}

impl SkipReason {
    /// The `snake_case` key used in reports.
    pub fn key(self) -> &'static str {
        match self {
            SkipReason::NoAnswer => "no_answer",
            SkipReason::AnswerOutsideSentences => "answer_outside_sentences",
            SkipReason::AnswerCrossesSentenceEnd => "answer_crosses_sentence_end",
        }
    }

    /// A short description for people.
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::NoAnswer => "question has no answer",
            SkipReason::AnswerOutsideSentences => "answer starts outside every sentence",
            SkipReason::AnswerCrossesSentenceEnd => "answer runs past the end of its sentence",
        }
    }
}

/// One candidate sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Paragraph index in file order (counted across articles).
    pub paragraph: usize,
    /// Sentence index within its paragraph.
    pub sentence: usize,
    /// The sentence text (the context sliced by its break offsets).
    pub text: String,
}

/// One evaluable question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The id it shares with its translations in the other language files.
    pub id: String,
    /// The question text.
    pub text: String,
    /// Index of its gold sentence in [`LangData::candidates`].
    pub gold: usize,
}

/// The content of one `LANG.json` file.
#[derive(Debug, Clone, Default)]
pub struct LangData {
    /// The language code (the file stem).
    pub lang: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// Paragraph contexts, in file order (for `--candidates context`).
    pub contexts: Vec<String>,
    /// Candidate sentences, in file order.
    pub candidates: Vec<Candidate>,
    /// Evaluable questions, in file order.
    pub questions: Vec<Question>,
    /// Questions read, skipped ones included.
    pub questions_read: usize,
    /// Skipped questions by reason.
    pub skipped: BTreeMap<SkipReason, usize>,
    /// Sentences whose `sentences` entry differs from the context sliced by its
    /// `sentence_breaks` (the slice is used; XQuAD-R's tr.json has two such, from mojibake).
    pub sentence_text_mismatches: usize,
    /// Evaluated questions whose first answer's `text` differs from the context at
    /// `answer_start` (the gold is still the sentence containing `answer_start`).
    pub answer_text_mismatches: usize,
}

impl LangData {
    /// Number of skipped questions.
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }
}

/// A LAReQA benchmark: one [`LangData`] per language, sorted by language code.
#[derive(Debug, Clone)]
pub struct LareqaDataset {
    /// Its name (the directory name, or `sample`).
    pub name: String,
    /// Where it was read from (a directory, or `built-in sample`).
    pub source: String,
    /// Languages, sorted by code.
    pub langs: Vec<LangData>,
}

impl LareqaDataset {
    /// Builds a dataset from parsed files; sorts them by language and checks that there is
    /// something to evaluate (errors: a language twice, no question, no candidate).
    pub fn from_langs(name: String, source: String, mut langs: Vec<LangData>) -> Result<Self> {
        langs.sort_by(|a, b| a.lang.cmp(&b.lang));
        if let Some(w) = langs.windows(2).find(|w| w[0].lang == w[1].lang) {
            return Err(DataError::bad_file(
                &w[1].file,
                format!(
                    "language `{}` appears twice (also {})",
                    w[1].lang,
                    w[0].file.display()
                ),
            ));
        }
        let ds = Self {
            name,
            source,
            langs,
        };
        if ds.langs.is_empty() || ds.num_questions() == 0 || ds.num_candidates() == 0 {
            let detail = if ds.langs.is_empty() {
                "no language file".to_string()
            } else {
                format!(
                    "{} languages, {} questions read, {} skipped, {} candidate sentences",
                    ds.langs.len(),
                    ds.langs.iter().map(|l| l.questions_read).sum::<usize>(),
                    ds.num_skipped(),
                    ds.num_candidates()
                )
            };
            return Err(DataError::EmptyDataset {
                name: ds.name,
                detail,
            });
        }
        Ok(ds)
    }

    /// Evaluable questions (queries), all languages.
    pub fn num_questions(&self) -> usize {
        self.langs.iter().map(|l| l.questions.len()).sum()
    }

    /// Candidate sentences, all languages.
    pub fn num_candidates(&self) -> usize {
        self.langs.iter().map(|l| l.candidates.len()).sum()
    }

    /// Skipped questions, all languages.
    pub fn num_skipped(&self) -> usize {
        self.langs.iter().map(|l| l.skipped_total()).sum()
    }

    /// Questions read, all languages.
    pub fn num_questions_read(&self) -> usize {
        self.langs.iter().map(|l| l.questions_read).sum()
    }

    /// Skipped questions by reason, all languages.
    pub fn skipped_by_reason(&self) -> BTreeMap<SkipReason, usize> {
        let mut m = BTreeMap::new();
        for l in &self.langs {
            for (&r, &n) in &l.skipped {
                *m.entry(r).or_insert(0) += n;
            }
        }
        m
    }

    /// Language codes, sorted.
    pub fn lang_codes(&self) -> Vec<String> {
        self.langs.iter().map(|l| l.lang.clone()).collect()
    }

    /// The benchmark on a subset of its questions: those whose id is in `ids`, with the
    /// candidate sentences of the paragraphs that hold their gold sentences (in each language)
    /// as the pool, and the languages that keep a question. A validation set of held-out
    /// groups, scored as the whole benchmark is. Errors when no question is left.
    pub fn restricted(&self, ids: &std::collections::HashSet<&str>, name: &str) -> Result<Self> {
        let mut langs = Vec::new();
        for l in &self.langs {
            let kept: Vec<&Question> = l
                .questions
                .iter()
                .filter(|q| ids.contains(q.id.as_str()))
                .collect();
            if kept.is_empty() {
                continue;
            }
            let paragraphs: std::collections::BTreeSet<usize> = kept
                .iter()
                .map(|q| l.candidates[q.gold].paragraph)
                .collect();
            // Old candidate index -> new, for the kept paragraphs' sentences.
            let mut remap = vec![usize::MAX; l.candidates.len()];
            let mut candidates = Vec::new();
            for (i, c) in l.candidates.iter().enumerate() {
                if paragraphs.contains(&c.paragraph) {
                    remap[i] = candidates.len();
                    candidates.push(c.clone());
                }
            }
            let questions = kept
                .into_iter()
                .map(|q| Question {
                    gold: remap[q.gold],
                    ..q.clone()
                })
                .collect();
            langs.push(LangData {
                lang: l.lang.clone(),
                file: l.file.clone(),
                contexts: l.contexts.clone(),
                candidates,
                questions,
                questions_read: 0,
                skipped: BTreeMap::new(),
                sentence_text_mismatches: 0,
                answer_text_mismatches: 0,
            });
        }
        LareqaDataset::from_langs(
            name.to_string(),
            format!("{} (a subset of {} question ids)", self.source, ids.len()),
            langs,
        )
    }
}

#[derive(Deserialize)]
struct SquadFile {
    data: Vec<Article>,
}

#[derive(Deserialize)]
struct Article {
    #[serde(default)]
    title: Option<String>,
    paragraphs: Vec<Paragraph>,
}

#[derive(Deserialize)]
struct Paragraph {
    context: String,
    qas: Vec<Qa>,
    sentence_breaks: Vec<(usize, usize)>,
    #[serde(default)]
    sentences: Option<Vec<String>>,
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

/// Parses the content of one LAReQA `LANG.json` file (SQuAD v1.1 JSON whose paragraphs carry
/// `sentence_breaks`, and optionally `sentences`).
///
/// `path` is only used in error messages. Errors (each naming the file and, where it applies,
/// the article, paragraph, sentence or question): malformed JSON or a missing field; sentence
/// offsets with `start > end`, past the end of the context, or overlapping / out of order;
/// a `sentences` list whose length differs from `sentence_breaks`; an answer outside its
/// context; a question id twice in the file. Never panics, whatever the bytes.
pub fn parse_lareqa_file(lang: &str, bytes: &[u8], path: &Path) -> Result<LangData> {
    if lang.is_empty() {
        return Err(DataError::bad_file(path, "empty language code (file stem)"));
    }
    let file: SquadFile = serde_json::from_slice(bytes).map_err(|source| DataError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = LangData {
        lang: lang.to_string(),
        file: path.to_path_buf(),
        ..LangData::default()
    };
    let mut ids: HashSet<String> = HashSet::new();
    for (a, article) in file.data.into_iter().enumerate() {
        let title = article.title.unwrap_or_default();
        for (p_in_article, para) in article.paragraphs.into_iter().enumerate() {
            let p = out.contexts.len();
            let at = || format!("article {a} (\"{title}\"), paragraph {p_in_article}");
            // Byte offset of every char, plus the end.
            let char_starts: Vec<usize> = para
                .context
                .char_indices()
                .map(|(b, _)| b)
                .chain(std::iter::once(para.context.len()))
                .collect();
            let n_chars = char_starts.len() - 1;
            let mut prev_end = 0usize;
            for (s, &(start, end)) in para.sentence_breaks.iter().enumerate() {
                if start > end || end > n_chars {
                    return Err(DataError::bad_file(
                        path,
                        format!(
                            "{}: sentence {s} has offsets [{start}, {end}) outside its context \
                             of {n_chars} characters",
                            at()
                        ),
                    ));
                }
                if start < prev_end {
                    return Err(DataError::bad_file(
                        path,
                        format!(
                            "{}: sentence {s} [{start}, {end}) overlaps or precedes the previous \
                             sentence, which ends at {prev_end} (sentence_breaks must be in order \
                             and disjoint)",
                            at()
                        ),
                    ));
                }
                prev_end = end;
            }
            if let Some(sentences) = &para.sentences {
                if sentences.len() != para.sentence_breaks.len() {
                    return Err(DataError::bad_file(
                        path,
                        format!(
                            "{}: {} sentence_breaks but {} sentences",
                            at(),
                            para.sentence_breaks.len(),
                            sentences.len()
                        ),
                    ));
                }
            }
            let first_candidate = out.candidates.len();
            for (s, &(start, end)) in para.sentence_breaks.iter().enumerate() {
                let text = &para.context[char_starts[start]..char_starts[end]];
                if let Some(sentences) = &para.sentences {
                    if sentences[s] != text {
                        out.sentence_text_mismatches += 1;
                    }
                }
                out.candidates.push(Candidate {
                    paragraph: p,
                    sentence: s,
                    text: text.to_string(),
                });
            }
            for qa in para.qas {
                out.questions_read += 1;
                if !ids.insert(qa.id.clone()) {
                    return Err(DataError::bad_file(
                        path,
                        format!(
                            "{}: question id `{}` appears twice in this file",
                            at(),
                            qa.id
                        ),
                    ));
                }
                let Some(answer) = qa.answers.first() else {
                    *out.skipped.entry(SkipReason::NoAnswer).or_insert(0) += 1;
                    continue;
                };
                let a_start = answer.answer_start;
                let a_len = answer.text.chars().count();
                let a_end = a_start.saturating_add(a_len);
                if a_end > n_chars {
                    return Err(DataError::bad_file(
                        path,
                        format!(
                            "{}: question `{}`: answer [{a_start}, {a_end}) lies outside its \
                             context of {n_chars} characters",
                            at(),
                            qa.id
                        ),
                    ));
                }
                let Some(s) = para
                    .sentence_breaks
                    .iter()
                    .position(|&(st, en)| st <= a_start && a_start < en)
                else {
                    *out.skipped
                        .entry(SkipReason::AnswerOutsideSentences)
                        .or_insert(0) += 1;
                    continue;
                };
                if a_end > para.sentence_breaks[s].1 {
                    *out.skipped
                        .entry(SkipReason::AnswerCrossesSentenceEnd)
                        .or_insert(0) += 1;
                    continue;
                }
                if para.context[char_starts[a_start]..char_starts[a_end]] != answer.text {
                    out.answer_text_mismatches += 1;
                }
                out.questions.push(Question {
                    id: qa.id,
                    text: qa.question,
                    gold: first_candidate + s,
                });
            }
            out.contexts.push(para.context);
        }
    }
    Ok(out)
}

/// The `LANG.json` files of a directory, sorted by language code.
pub fn lareqa_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
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

/// Loads every `LANG.json` of `dir` (in parallel) into a dataset named after the directory.
pub fn load_lareqa_dir(dir: &Path) -> Result<LareqaDataset> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    load_lareqa_dir_named(dir, name)
}

/// [`load_lareqa_dir`] with an explicit dataset name.
pub fn load_lareqa_dir_named(dir: &Path, name: String) -> Result<LareqaDataset> {
    let files = lareqa_files(dir)?;
    if files.is_empty() {
        return Err(DataError::bad_file(
            dir,
            "no LANG.json file in this directory (expected a LAReQA dataset: one SQuAD-style \
             JSON file with sentence_breaks per language)",
        ));
    }
    let langs = files
        .par_iter()
        .map(|(lang, path)| {
            let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
            parse_lareqa_file(lang, &bytes, path)
        })
        .collect::<Result<Vec<_>>>()?;
    LareqaDataset::from_langs(name, dir.display().to_string(), langs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<LangData> {
        parse_lareqa_file("xx", json.as_bytes(), Path::new("dir/xx.json"))
    }

    fn para(context: &str, breaks: &str, qas: &str) -> String {
        format!(
            r#"{{"version":"1","data":[{{"title":"T","paragraphs":[{{"context":{},"sentence_breaks":{breaks},"qas":{qas}}}]}}]}}"#,
            serde_json::to_string(context).unwrap()
        )
    }

    #[test]
    fn gold_and_skips() {
        // "Ab. Ça va. Fin." in chars: [0,3) [4,10) [11,15)
        let ctx = "Ab. Ça va. Fin.";
        let qas = r#"[
            {"id":"q1","question":"?","answers":[{"answer_start":4,"text":"Ça"}]},
            {"id":"q2","question":"?","answers":[{"answer_start":3,"text":" "}]},
            {"id":"q3","question":"?","answers":[{"answer_start":7,"text":"va. Fin"}]},
            {"id":"q4","question":"?","answers":[]},
            {"id":"q5","question":"?","answers":[{"answer_start":11,"text":"Fin."},{"answer_start":0,"text":"Ab"}]},
            {"id":"q6","question":"?","answers":[{"answer_start":9,"text":"x"}]}
        ]"#;
        let d = parse(&para(ctx, "[[0,3],[4,10],[11,15]]", qas)).unwrap();
        assert_eq!(d.candidates.len(), 3);
        assert_eq!(d.candidates[1].text, "Ça va.");
        assert_eq!(d.questions_read, 6);
        let golds: Vec<(&str, usize)> = d
            .questions
            .iter()
            .map(|q| (q.id.as_str(), q.gold))
            .collect();
        assert_eq!(golds, vec![("q1", 1), ("q5", 2), ("q6", 1)]);
        assert_eq!(d.skipped[&SkipReason::AnswerOutsideSentences], 1);
        assert_eq!(d.skipped[&SkipReason::AnswerCrossesSentenceEnd], 1);
        assert_eq!(d.skipped[&SkipReason::NoAnswer], 1);
        assert_eq!(d.answer_text_mismatches, 1);
    }

    #[test]
    fn restricted_keeps_the_questions_and_their_paragraphs() {
        let two = r#"{"version":"1","data":[{"title":"T","paragraphs":[
            {"context":"A b. C d.","sentence_breaks":[[0,4],[5,9]],
             "qas":[{"id":"q1","question":"?","answers":[{"answer_start":5,"text":"C"}]}]},
            {"context":"E f. G h.","sentence_breaks":[[0,4],[5,9]],
             "qas":[{"id":"q2","question":"?","answers":[{"answer_start":0,"text":"E"}]},
                    {"id":"q3","question":"?","answers":[{"answer_start":5,"text":"G"}]}]}]}]}"#;
        let d = parse_lareqa_file("xx", two.as_bytes(), Path::new("xx.json")).unwrap();
        let ds = LareqaDataset::from_langs("t".into(), "s".into(), vec![d]).unwrap();
        let ids: std::collections::HashSet<&str> = ["q3"].into_iter().collect();
        let r = ds.restricted(&ids, "t:val").unwrap();
        let l = &r.langs[0];
        let texts: Vec<&str> = l.candidates.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["E f.", "G h."]);
        assert_eq!(l.questions.len(), 1);
        assert_eq!(l.candidates[l.questions[0].gold].text, "G h.");
        let none: std::collections::HashSet<&str> = ["q9"].into_iter().collect();
        assert!(ds.restricted(&none, "t:val").is_err());
    }

    #[test]
    fn errors_name_the_file_and_place() {
        let ok_q = r#"[{"id":"q","question":"?","answers":[{"answer_start":0,"text":"A"}]}]"#;
        let cases = [
            (
                para("Abc.", "[[0,5]]", ok_q),
                "outside its context of 4 characters",
            ),
            (para("Abc.", "[[3,2]]", ok_q), "outside its context"),
            (para("Abc. Def.", "[[0,5],[4,9]]", ok_q), "overlaps"),
            (
                para(
                    "Abc.",
                    "[[0,4]]",
                    r#"[{"id":"q","question":"?","answers":[{"answer_start":9,"text":"A"}]}]"#,
                ),
                "lies outside its context",
            ),
            (
                para(
                    "Abc.",
                    "[[0,4]]",
                    r#"[{"id":"q","question":"?","answers":[{"answer_start":0,"text":"A"}]},{"id":"q","question":"?","answers":[]}]"#,
                ),
                "appears twice",
            ),
            ("{\"data\": [".to_string(), "malformed JSON"),
            (
                "{\"data\": [{\"paragraphs\": [{\"context\": \"x\"}]}]}".to_string(),
                "missing field",
            ),
            (para("Abc.", "[[0,-1]]", ok_q), "malformed JSON"),
        ];
        for (json, needle) in cases {
            let e = parse(&json).unwrap_err().to_string();
            assert!(e.contains("xx.json") && e.contains(needle), "{e}");
        }
        let json = r#"{"data":[{"paragraphs":[{"context":"A. B.","sentence_breaks":[[0,2],[3,5]],"sentences":["A."],"qas":[]}]}]}"#;
        let e = parse(json).unwrap_err().to_string();
        assert!(e.contains("2 sentence_breaks but 1 sentences"), "{e}");
    }

    #[test]
    fn sentence_field_mismatch_is_counted_not_fatal() {
        let json = r#"{"data":[{"paragraphs":[{"context":"A. B.","sentence_breaks":[[0,2],[3,5]],"sentences":["A.","C."],"qas":[]}]}]}"#;
        let d = parse(json).unwrap();
        assert_eq!(d.sentence_text_mismatches, 1);
        assert_eq!(d.candidates[1].text, "B.");
    }

    #[test]
    fn empty_dataset_is_an_error() {
        let d = parse(r#"{"data":[]}"#).unwrap();
        let e = LareqaDataset::from_langs("x".into(), "x".into(), vec![d]).unwrap_err();
        assert!(e.to_string().contains("nothing to evaluate"), "{e}");
        let e = LareqaDataset::from_langs("x".into(), "x".into(), vec![]).unwrap_err();
        assert!(e.to_string().contains("no language file"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_lareqa_file("xx", &bytes, Path::new("xx.json"));
        }

        #[test]
        fn never_panics_on_structured_input(
            ctx in "[a-zé. 中]{0,20}",
            breaks in proptest::collection::vec((0usize..25, 0usize..25), 0..5),
            answers in proptest::collection::vec((0usize..25, "[a-z. ]{0,5}"), 0..5),
        ) {
            let qas: Vec<serde_json::Value> = answers.iter().enumerate().map(|(i, (s, t))| {
                serde_json::json!({"id": i.to_string(), "question": "q", "answers": [{"answer_start": s, "text": t}]})
            }).collect();
            let json = serde_json::json!({"data": [{"paragraphs": [{"context": ctx, "sentence_breaks": breaks, "qas": qas}]}]});
            let _ = parse_lareqa_file("xx", json.to_string().as_bytes(), Path::new("xx.json"));
        }
    }
}
