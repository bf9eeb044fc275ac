//! Datasets by name or directory, and the texts an evaluation encodes.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use multiret_data::{DataError, Searched};
use serde::Serialize;

use crate::beir::{is_beir_dir, load_beir_dir, BeirDataset};
use crate::encoder::{CandidateMode, Prefixes};
use crate::error::{EvalError, Result};
use crate::lareqa::{load_lareqa_dir_named, LareqaDataset};
use crate::sample::{builtin_sample, SAMPLE_NAME};

/// The dataset names that resolve inside the data directory without a path.
pub const KNOWN_NAMES: [&str; 2] = ["xquad-r", "mlqa-r"];

/// Where a dataset comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetSpec {
    /// The built-in sample ([`crate::sample`]).
    Sample,
    /// A directory (LAReQA `LANG.json` files, or BEIR-style `corpus.jsonl` ...), with the name
    /// it is reported under.
    Dir {
        /// The directory.
        path: PathBuf,
        /// Its name in reports (the name given, or the directory name).
        name: String,
    },
}

/// Resolves `--dataset`: none or `sample` is the built-in sample; a name without a path
/// separator (`xquad-r`, `mlqa-r`, ...) is looked for in `data_dir` (and when that is the
/// default data directory, in every default place: [`multiret_data::dataset_dir`]), then in
/// the current directory; anything else is a directory path. The error for a name found
/// nowhere lists every place looked in.
pub fn resolve_dataset(name: Option<&str>, data_dir: &Path) -> Result<DatasetSpec> {
    let Some(name) = name else {
        return Ok(DatasetSpec::Sample);
    };
    if name == SAMPLE_NAME {
        return Ok(DatasetSpec::Sample);
    }
    let as_path = Path::new(name);
    let dir_name = |p: &Path| {
        p.canonicalize()
            .ok()
            .and_then(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| name.to_string())
    };
    let is_plain =
        as_path.components().count() == 1 && !as_path.is_absolute() && name != "." && name != "..";
    let mut searched = Vec::new();
    if is_plain {
        match multiret_data::dataset_dir(data_dir, name) {
            Ok(path) => {
                return Ok(DatasetSpec::Dir {
                    path,
                    name: name.to_string(),
                })
            }
            Err(DataError::DatasetNotFound { searched: s, .. }) => searched = s,
            Err(_) => {}
        }
    }
    if as_path.is_dir() {
        return Ok(DatasetSpec::Dir {
            path: as_path.to_path_buf(),
            name: dir_name(as_path),
        });
    }
    let mut detail = if is_plain {
        format!(
            "it is not a directory here, and no data directory holds it: looked for {}; point \
             --data-dir or MULTIRET_DATA at the directory that does",
            Searched(&searched)
        )
    } else {
        "no such directory".to_string()
    };
    if let Ok(entries) = std::fs::read_dir(data_dir) {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        if !names.is_empty() {
            detail.push_str(&format!(
                "; datasets in {}: {}",
                data_dir.display(),
                names.join(", ")
            ));
        }
    } else if is_plain && KNOWN_NAMES.contains(&name) {
        detail.push_str(&format!(
            "; the data directory {} does not exist",
            data_dir.display()
        ));
    }
    detail.push_str(&format!("; `{SAMPLE_NAME}` is the built-in sample"));
    Err(EvalError::UnknownDataset {
        name: name.to_string(),
        detail,
    })
}

/// A loaded benchmark.
#[derive(Debug, Clone)]
pub enum Dataset {
    /// LAReQA format (XQuAD-R, MLQA-R, the built-in sample): Mo. / Cr. / Mul. mAP.
    Lareqa(LareqaDataset),
    /// BEIR / MIRACL format: nDCG@10, Recall@100.
    Beir(BeirDataset),
}

/// Loads a dataset; a directory with `corpus.jsonl` is read as BEIR-style (`beir_split` picks
/// its qrels file), any other as LAReQA `LANG.json` files.
pub fn load_dataset(spec: &DatasetSpec, beir_split: Option<&str>) -> Result<Dataset> {
    match spec {
        DatasetSpec::Sample => Ok(Dataset::Lareqa(builtin_sample()?)),
        DatasetSpec::Dir { path, name } => {
            if is_beir_dir(path) {
                let mut ds = load_beir_dir(path, beir_split)?;
                ds.name = name.clone();
                Ok(Dataset::Beir(ds))
            } else {
                Ok(Dataset::Lareqa(load_lareqa_dir_named(path, name.clone())?))
            }
        }
    }
}

impl Dataset {
    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Dataset::Lareqa(d) => &d.name,
            Dataset::Beir(d) => &d.name,
        }
    }

    /// Where it was read from.
    pub fn source(&self) -> String {
        match self {
            Dataset::Lareqa(d) => d.source.clone(),
            Dataset::Beir(d) => d.source.display().to_string(),
        }
    }

    /// Number of queries the evaluation encodes.
    pub fn num_queries(&self) -> usize {
        match self {
            Dataset::Lareqa(d) => d.num_questions(),
            Dataset::Beir(d) => d.queries.len(),
        }
    }

    /// Number of candidates (sentences or documents) the evaluation encodes.
    pub fn num_candidates(&self) -> usize {
        match self {
            Dataset::Lareqa(d) => d.num_candidates(),
            Dataset::Beir(d) => d.docs.len(),
        }
    }

    /// The texts to encode, in encoding order: every query (LAReQA: languages sorted, then
    /// file order), then every candidate (same order), prefixes included. In context mode the
    /// candidates also carry their paragraph as a second segment; in sentence-context mode a
    /// candidate is its sentence directly followed by its paragraph, as one text (XTREME-R's;
    /// [`CandidateMode::candidate_text`]). Both are for LAReQA datasets only.
    pub fn texts(&self, prefixes: &Prefixes, mode: CandidateMode) -> Result<EvalTexts> {
        match self {
            Dataset::Lareqa(d) => {
                let mut queries = Vec::with_capacity(d.num_questions());
                let mut candidates = Vec::with_capacity(d.num_candidates());
                let mut contexts = Vec::new();
                for l in &d.langs {
                    queries.extend(
                        l.questions
                            .iter()
                            .map(|q| format!("{}{}", prefixes.query, q.text)),
                    );
                }
                for l in &d.langs {
                    for c in &l.candidates {
                        let paragraph = &l.contexts[c.paragraph];
                        candidates.push(mode.candidate_text(&prefixes.passage, &c.text, paragraph));
                        if mode == CandidateMode::Context {
                            contexts.push(paragraph.clone());
                        }
                    }
                }
                Ok(EvalTexts {
                    queries,
                    candidates,
                    contexts: (mode == CandidateMode::Context).then_some(contexts),
                })
            }
            Dataset::Beir(d) => {
                if mode != CandidateMode::Sentence {
                    return Err(EvalError::InvalidArgument(format!(
                        "--candidates {} applies to LAReQA datasets (sentences in paragraphs), \
                         not to BEIR-style corpora",
                        mode.as_str().replace('_', "-")
                    )));
                }
                Ok(EvalTexts {
                    queries: d
                        .queries
                        .iter()
                        .map(|q| format!("{}{}", prefixes.query, q.text))
                        .collect(),
                    candidates: d
                        .docs
                        .iter()
                        .map(|doc| {
                            if doc.title.is_empty() {
                                format!("{}{}", prefixes.passage, doc.text)
                            } else {
                                format!("{}{} {}", prefixes.passage, doc.title, doc.text)
                            }
                        })
                        .collect(),
                    contexts: None,
                })
            }
        }
    }

    /// Writes every text of `texts` as JSON lines, in encoding order:
    /// `{"kind":"query","lang","id","text"}` then
    /// `{"kind":"candidate","lang","paragraph","sentence","text"}` (plus `"context"` in context
    /// mode). BEIR-style datasets have no `lang`, and candidates carry their `"id"` instead of
    /// paragraph and sentence.
    pub fn write_dump(&self, texts: &EvalTexts, path: &Path) -> Result<()> {
        let file = std::fs::File::create(path).map_err(|e| EvalError::io(path, e))?;
        let mut w = BufWriter::new(file);
        let mut line = |v: &dyn ErasedLine| -> Result<()> {
            v.write_line(&mut w).map_err(|e| EvalError::io(path, e))
        };
        match self {
            Dataset::Lareqa(d) => {
                let mut qi = 0;
                for l in &d.langs {
                    for q in &l.questions {
                        line(&QueryRecord {
                            kind: "query",
                            lang: Some(&l.lang),
                            id: &q.id,
                            text: &texts.queries[qi],
                        })?;
                        qi += 1;
                    }
                }
                let mut ci = 0;
                for l in &d.langs {
                    for c in &l.candidates {
                        line(&CandidateRecord {
                            kind: "candidate",
                            lang: Some(&l.lang),
                            id: None,
                            paragraph: Some(c.paragraph),
                            sentence: Some(c.sentence),
                            text: &texts.candidates[ci],
                            context: texts.contexts.as_ref().map(|cx| cx[ci].as_str()),
                        })?;
                        ci += 1;
                    }
                }
            }
            Dataset::Beir(d) => {
                for (q, t) in d.queries.iter().zip(&texts.queries) {
                    line(&QueryRecord {
                        kind: "query",
                        lang: None,
                        id: &q.id,
                        text: t,
                    })?;
                }
                for (doc, t) in d.docs.iter().zip(&texts.candidates) {
                    line(&CandidateRecord {
                        kind: "candidate",
                        lang: None,
                        id: Some(&doc.id),
                        paragraph: None,
                        sentence: None,
                        text: t,
                        context: None,
                    })?;
                }
            }
        }
        w.flush().map_err(|e| EvalError::io(path, e))
    }
}

/// The texts of one evaluation, in encoding order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalTexts {
    /// Queries, with the query prefix.
    pub queries: Vec<String>,
    /// Candidates, with the passage prefix.
    pub candidates: Vec<String>,
    /// In context mode: each candidate's paragraph, the second segment of its text pair.
    pub contexts: Option<Vec<String>>,
}

#[derive(Serialize)]
struct QueryRecord<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lang: Option<&'a str>,
    id: &'a str,
    text: &'a str,
}

#[derive(Serialize)]
struct CandidateRecord<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lang: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    paragraph: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sentence: Option<usize>,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a str>,
}

/// A record written as one JSON line (object-safe, so one closure writes both record kinds).
trait ErasedLine {
    fn write_line(&self, w: &mut dyn Write) -> std::io::Result<()>;
}

impl<T: Serialize> ErasedLine for T {
    fn write_line(&self, w: &mut dyn Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *w, self)?;
        w.write_all(b"\n")
    }
}
