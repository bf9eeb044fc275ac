//! Loader for BEIR / MIRACL-style retrieval corpora: `DIR/corpus.jsonl` (`{"_id", "title",
//! "text"}`), `DIR/queries.jsonl` (`{"_id", "text"}`) and `DIR/qrels/SPLIT.tsv` (BEIR:
//! header `query-id<TAB>corpus-id<TAB>score`; TREC's four columns `qid iter docid rel` are read
//! too). Scored with nDCG@10 and Recall@100 ([`crate::score::evaluate_beir`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{EvalError, Result};

/// One query.
#[derive(Debug, Clone, PartialEq)]
pub struct BeirQuery {
    /// Its `_id`.
    pub id: String,
    /// Its text.
    pub text: String,
    /// Its judgements: `(document index or None when the id is not in the corpus, gain)`.
    pub judged: Vec<(Option<usize>, f64)>,
}

/// One corpus document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeirDoc {
    /// Its `_id`.
    pub id: String,
    /// Its title (may be empty).
    pub title: String,
    /// Its text.
    pub text: String,
}

/// A BEIR-style dataset, reduced to the queries that have at least one positive judgement.
#[derive(Debug, Clone)]
pub struct BeirDataset {
    /// Its name (the directory name).
    pub name: String,
    /// The directory.
    pub source: PathBuf,
    /// The qrels split (`test`, `dev`, ...).
    pub split: String,
    /// Evaluated queries, in `queries.jsonl` order.
    pub queries: Vec<BeirQuery>,
    /// The corpus, in file order.
    pub docs: Vec<BeirDoc>,
    /// Queries in `queries.jsonl`.
    pub queries_read: usize,
    /// Judgements read from the qrels file.
    pub judgements: usize,
    /// Positive judgements whose document is not in the corpus (they count against recall and
    /// nDCG, as in `pytrec_eval`).
    pub missing_docs: usize,
    /// Qrels lines whose query is not in `queries.jsonl` (ignored).
    pub unknown_queries: usize,
}

/// Whether `dir` looks like a BEIR-style dataset (it has `corpus.jsonl`).
pub fn is_beir_dir(dir: &Path) -> bool {
    dir.join("corpus.jsonl").is_file()
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "_id")]
    id: serde_json::Value,
    #[serde(default)]
    title: Option<String>,
    text: String,
}

fn id_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn read_jsonl(path: &Path) -> Result<Vec<(String, String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(line)
            .map_err(|e| EvalError::bad_line(path, i + 1, format!("malformed JSON line: {e}")))?;
        let id = id_string(&l.id).ok_or_else(|| {
            EvalError::bad_line(path, i + 1, "`_id` must be a string or a number")
        })?;
        if let Some(prev) = seen.insert(id.clone(), i + 1) {
            return Err(EvalError::bad_line(
                path,
                i + 1,
                format!("`_id` {id:?} also on line {prev}"),
            ));
        }
        out.push((id, l.title.unwrap_or_default(), l.text));
    }
    Ok(out)
}

/// The qrels file for `split` (or `test`, then `dev`, then the only `.tsv`).
fn qrels_path(dir: &Path, split: Option<&str>) -> Result<(String, PathBuf)> {
    let qdir = dir.join("qrels");
    if let Some(s) = split {
        let p = qdir.join(format!("{s}.tsv"));
        if !p.is_file() {
            return Err(EvalError::bad_file(
                &p,
                "no such qrels file (check --split)",
            ));
        }
        return Ok((s.to_string(), p));
    }
    for s in ["test", "dev"] {
        let p = qdir.join(format!("{s}.tsv"));
        if p.is_file() {
            return Ok((s.to_string(), p));
        }
    }
    let mut tsvs: Vec<PathBuf> = std::fs::read_dir(&qdir)
        .map_err(|e| EvalError::io(&qdir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("tsv"))
        .collect();
    tsvs.sort();
    match tsvs.as_slice() {
        [one] => Ok((
            one.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            one.clone(),
        )),
        [] => Err(EvalError::bad_file(&qdir, "no qrels .tsv file")),
        _ => Err(EvalError::bad_file(
            &qdir,
            "several qrels files and none is test.tsv or dev.tsv: choose one with --split",
        )),
    }
}

/// Reads `(query id, doc id, gain)` triples.
fn read_qrels(path: &Path) -> Result<Vec<(String, String, f64)>> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = if line.contains('\t') {
            line.split('\t').collect()
        } else {
            line.split_whitespace().collect()
        };
        if i == 0
            && cols
                .first()
                .is_some_and(|c| c.eq_ignore_ascii_case("query-id"))
        {
            continue;
        }
        let (q, d, g) = match cols.as_slice() {
            [q, d, g] => (q, d, g),
            [q, _, d, g] => (q, d, g),
            _ => {
                return Err(EvalError::bad_line(
                    path,
                    i + 1,
                    format!(
                        "expected `query-id<TAB>corpus-id<TAB>score` (or TREC's four columns), \
                         got {} columns",
                        cols.len()
                    ),
                ))
            }
        };
        let gain: f64 = g.trim().parse().map_err(|_| {
            EvalError::bad_line(path, i + 1, format!("score {g:?} is not a number"))
        })?;
        if !gain.is_finite() {
            return Err(EvalError::bad_line(
                path,
                i + 1,
                format!("score {g:?} is not finite"),
            ));
        }
        out.push((q.trim().to_string(), d.trim().to_string(), gain));
    }
    Ok(out)
}

/// Loads a BEIR-style directory; `split` picks `qrels/SPLIT.tsv` (default: `test`, then
/// `dev`, then the only `.tsv` file). Only queries with a positive judgement are evaluated.
pub fn load_beir_dir(dir: &Path, split: Option<&str>) -> Result<BeirDataset> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let docs: Vec<BeirDoc> = read_jsonl(&dir.join("corpus.jsonl"))?
        .into_iter()
        .map(|(id, title, text)| BeirDoc { id, title, text })
        .collect();
    let queries_raw = read_jsonl(&dir.join("queries.jsonl"))?;
    let (split, qpath) = qrels_path(dir, split)?;
    let qrels = read_qrels(&qpath)?;
    let doc_index: HashMap<&str, usize> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let query_index: HashMap<&str, usize> = queries_raw
        .iter()
        .enumerate()
        .map(|(i, q)| (q.0.as_str(), i))
        .collect();
    // Per query: doc id -> gain (a repeated pair keeps the last line, as pytrec_eval does).
    let mut judged: BTreeMap<usize, BTreeMap<String, f64>> = BTreeMap::new();
    let mut unknown_queries = 0;
    for (q, d, g) in &qrels {
        match query_index.get(q.as_str()) {
            Some(&qi) => {
                judged.entry(qi).or_default().insert(d.clone(), *g);
            }
            None => unknown_queries += 1,
        }
    }
    let mut queries = Vec::new();
    let mut missing_docs = 0;
    for (qi, j) in judged {
        if !j.values().any(|&g| g > 0.0) {
            continue;
        }
        let mut list = Vec::with_capacity(j.len());
        for (d, g) in j {
            let idx = doc_index.get(d.as_str()).copied();
            if idx.is_none() && g > 0.0 {
                missing_docs += 1;
            }
            list.push((idx, g));
        }
        queries.push(BeirQuery {
            id: queries_raw[qi].0.clone(),
            text: queries_raw[qi].2.clone(),
            judged: list,
        });
    }
    if queries.is_empty() || docs.is_empty() {
        return Err(EvalError::EmptyDataset {
            name,
            detail: format!(
                "{} documents, {} queries, {} judgements in {} ({} for unknown queries), none \
                 positive for a known query",
                docs.len(),
                queries_raw.len(),
                qrels.len(),
                qpath.display(),
                unknown_queries
            ),
        });
    }
    Ok(BeirDataset {
        name,
        source: dir.to_path_buf(),
        split,
        queries,
        docs,
        queries_read: queries_raw.len(),
        judgements: qrels.len(),
        missing_docs,
        unknown_queries,
    })
}
