//! Streaming loader for mMARCO-style TSV corpora.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::corpus::{Corpus, LangId, LoadStats, Store, Texts};
use crate::error::{Result, SamplerError};

const MISSING: u64 = u64::MAX;

/// Options of [`load_mmarco`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmarcoOptions {
    /// Hard negatives kept per query (the first distinct ones in `triples.tsv` order).
    pub max_negatives: usize,
    /// Keep only the first `max_groups` distinct queries of `triples.tsv` (all if `None`).
    pub max_groups: Option<usize>,
    /// Load only these languages (all language directories if `None`).
    pub languages: Option<Vec<String>>,
}

impl Default for MmarcoOptions {
    fn default() -> Self {
        MmarcoOptions {
            max_negatives: 1,
            max_groups: None,
            languages: None,
        }
    }
}

/// One language's files and the byte offsets of the lines the corpus needs.
#[derive(Debug)]
struct LangFiles {
    queries_path: PathBuf,
    collection_path: PathBuf,
    queries: Mutex<BufReader<File>>,
    collection: Mutex<BufReader<File>>,
    /// Offset of each needed query (indexed like `MmarcoStore::qids`), or `MISSING`.
    query_offsets: Vec<u64>,
    /// Offset of each needed passage (indexed like `MmarcoStore::pids`), or `MISSING`.
    passage_offsets: Vec<u64>,
}

/// Texts of an mMARCO corpus, read from disk on demand.
#[derive(Debug)]
pub(crate) struct MmarcoStore {
    langs: Vec<LangFiles>,
    /// Per group: index of its query in the needed-qid table.
    group_query: Vec<u32>,
    /// Per group: index of its positive in the needed-pid table.
    group_positive: Vec<u32>,
    /// `negatives[neg_offsets[g]..neg_offsets[g + 1]]`: group g's negatives (pid indices).
    neg_offsets: Vec<usize>,
    negatives: Vec<u32>,
}

fn parse_id(field: &str, what: &str, path: &Path, line: usize) -> Result<u64> {
    field.trim().parse::<u64>().map_err(|_| {
        SamplerError::bad_line(
            path,
            line,
            format!("{what} `{}` is not a non-negative integer id", field.trim()),
        )
    })
}

/// Calls `f(line_no, byte_offset, line_without_newline)` for every line of a file.
fn for_each_line(path: &Path, mut f: impl FnMut(usize, u64, &str) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(|e| SamplerError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(1024);
    let mut offset = 0u64;
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| SamplerError::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        let text = std::str::from_utf8(&buf)
            .map_err(|e| SamplerError::bad_line(path, line_no, format!("invalid UTF-8: {e}")))?;
        let text = text.trim_end_matches(['\n', '\r']);
        f(line_no, offset, text)?;
        offset += n as u64;
    }
}

/// Scans a `id\ttext` file and records the offsets of the ids in `needed` (sorted).
fn index_tsv(path: &Path, needed: &[u64]) -> Result<Vec<u64>> {
    let mut offsets = vec![MISSING; needed.len()];
    let mut first_line = vec![0usize; needed.len()];
    for_each_line(path, |line, offset, text| {
        if text.trim().is_empty() {
            return Ok(());
        }
        let Some((id, _)) = text.split_once('\t') else {
            return Err(SamplerError::bad_line(
                path,
                line,
                "expected `id<TAB>text`, found no tab",
            ));
        };
        let id = parse_id(id, "id", path, line)?;
        if let Ok(i) = needed.binary_search(&id) {
            if offsets[i] != MISSING {
                return Err(SamplerError::bad_line(
                    path,
                    line,
                    format!("id {id} appears twice (first on line {})", first_line[i]),
                ));
            }
            offsets[i] = offset;
            first_line[i] = line;
        }
        Ok(())
    })?;
    Ok(offsets)
}

fn open(path: &Path) -> Result<Mutex<BufReader<File>>> {
    let file = File::open(path).map_err(|e| SamplerError::io(path, e))?;
    Ok(Mutex::new(BufReader::with_capacity(64 * 1024, file)))
}

/// Reads the text field of the `id\ttext` line starting at `offset`.
fn read_text(reader: &Mutex<BufReader<File>>, path: &Path, offset: u64) -> Result<String> {
    let mut guard = reader
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    guard
        .seek(SeekFrom::Start(offset))
        .map_err(|e| SamplerError::io(path, e))?;
    let mut buf = Vec::new();
    guard
        .read_until(b'\n', &mut buf)
        .map_err(|e| SamplerError::io(path, e))?;
    drop(guard);
    let text = String::from_utf8(buf).map_err(|_| {
        SamplerError::bad_file(path, format!("invalid UTF-8 in the line at byte {offset}"))
    })?;
    let line = text.trim_end_matches(['\n', '\r']);
    match line.split_once('\t') {
        Some((_, t)) => Ok(t.to_string()),
        None => Err(SamplerError::bad_file(
            path,
            format!("the line at byte {offset} changed since it was indexed"),
        )),
    }
}

impl MmarcoStore {
    pub(crate) fn texts(
        &self,
        group: usize,
        query_lang: LangId,
        passage_lang: LangId,
    ) -> Result<Texts<'static>> {
        let ql = &self.langs[usize::from(query_lang)];
        let pl = &self.langs[usize::from(passage_lang)];
        let q_off = ql.query_offsets[self.group_query[group] as usize];
        let p_off = pl.passage_offsets[self.group_positive[group] as usize];
        let query = read_text(&ql.queries, &ql.queries_path, q_off)?;
        let positive = read_text(&pl.collection, &pl.collection_path, p_off)?;
        let mut negatives = Vec::new();
        for &n in &self.negatives[self.neg_offsets[group]..self.neg_offsets[group + 1]] {
            let off = pl.passage_offsets[n as usize];
            if off != MISSING {
                negatives.push(Cow::Owned(read_text(
                    &pl.collection,
                    &pl.collection_path,
                    off,
                )?));
            }
        }
        Ok(Texts {
            query: Cow::Owned(query),
            positive: Cow::Owned(positive),
            positive_context: None,
            negatives,
            query_negatives: Vec::new(),
            topic: None,
        })
    }
}

struct RawGroup {
    qid: u64,
    positive: u64,
    negatives: Vec<u64>,
}

/// Loads an mMARCO-style corpus from `dir`, streaming: only the byte offsets of the queries
/// and passages the training triples need are kept in memory, and [`Corpus::texts`] reads
/// each text from disk when asked.
///
/// Expected layout (ids are non-negative integers shared by all languages):
///
/// ```text
/// DIR/triples.tsv              qid<TAB>positive_pid[<TAB>negative_pid]   (one training triple per line)
/// DIR/LANG/queries.tsv         qid<TAB>query text
/// DIR/LANG/collection.tsv      pid<TAB>passage text
/// ```
///
/// Every subdirectory holding both `queries.tsv` and `collection.tsv` is a language, named
/// after the subdirectory. A group is one qid of `triples.tsv`: its positive is the first
/// positive listed for that qid, its negatives the first `max_negatives` distinct negatives
/// of its lines. The group exists in a language when that language has both its query and
/// its positive; a negative missing from a language is left out of that language's texts.
/// Groups present in no language are skipped and counted.
///
/// Errors: missing files, malformed lines (naming the file and line: wrong column count,
/// non-integer id, an id twice in one file, invalid UTF-8), no language directory, or no
/// usable group.
pub fn load_mmarco(dir: &Path, options: &MmarcoOptions) -> Result<Corpus> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let triples_path = dir.join("triples.tsv");
    let mut stats = LoadStats::default();

    // 1. Languages.
    let mut languages = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| SamplerError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SamplerError::io(dir, e))?;
        let path = entry.path();
        if path.join("queries.tsv").is_file() && path.join("collection.tsv").is_file() {
            if let Some(lang) = path.file_name().and_then(|n| n.to_str()) {
                languages.push(lang.to_string());
            }
        }
    }
    languages.sort();
    if let Some(wanted) = &options.languages {
        for w in wanted {
            if !languages.contains(w) {
                return Err(SamplerError::bad_file(
                    dir,
                    format!("language `{w}` has no {w}/queries.tsv and {w}/collection.tsv"),
                ));
            }
        }
        languages.retain(|l| wanted.contains(l));
    }
    if languages.is_empty() {
        return Err(SamplerError::bad_file(
            dir,
            "no language directory (LANG/queries.tsv and LANG/collection.tsv)",
        ));
    }
    if languages.len() > usize::from(LangId::MAX) {
        return Err(SamplerError::bad_file(dir, "too many language directories"));
    }

    // 2. Triples -> groups.
    let mut raw: Vec<RawGroup> = Vec::new();
    let mut by_qid: HashMap<u64, usize> = HashMap::new();
    for_each_line(&triples_path, |line, _, text| {
        if text.trim().is_empty() {
            return Ok(());
        }
        stats.read += 1;
        let fields: Vec<&str> = text.split('\t').collect();
        if fields.len() != 2 && fields.len() != 3 {
            return Err(SamplerError::bad_line(
                &triples_path,
                line,
                format!(
                    "expected `qid<TAB>positive_pid[<TAB>negative_pid]`, found {} columns",
                    fields.len()
                ),
            ));
        }
        let qid = parse_id(fields[0], "qid", &triples_path, line)?;
        let pos = parse_id(fields[1], "positive pid", &triples_path, line)?;
        let neg = match fields.get(2) {
            Some(f) => Some(parse_id(f, "negative pid", &triples_path, line)?),
            None => None,
        };
        let g = match by_qid.get(&qid) {
            Some(&g) => g,
            None => {
                if options.max_groups.is_some_and(|m| raw.len() >= m) {
                    stats.skip("triple beyond max_groups");
                    return Ok(());
                }
                raw.push(RawGroup {
                    qid,
                    positive: pos,
                    negatives: Vec::new(),
                });
                by_qid.insert(qid, raw.len() - 1);
                raw.len() - 1
            }
        };
        let group = &mut raw[g];
        if group.positive != pos {
            stats.skip("another positive for a known query (its negative is still used)");
        }
        if let Some(neg) = neg {
            if neg != group.positive
                && group.negatives.len() < options.max_negatives
                && !group.negatives.contains(&neg)
            {
                group.negatives.push(neg);
            }
        }
        Ok(())
    })?;
    drop(by_qid);

    // 3. Needed ids, sorted, and the offsets of each in each language.
    let mut qids: Vec<u64> = raw.iter().map(|g| g.qid).collect();
    qids.sort_unstable();
    qids.dedup();
    let mut pids: Vec<u64> = raw
        .iter()
        .flat_map(|g| std::iter::once(g.positive).chain(g.negatives.iter().copied()))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    let mut langs_files = Vec::with_capacity(languages.len());
    for lang in &languages {
        let queries_path = dir.join(lang).join("queries.tsv");
        let collection_path = dir.join(lang).join("collection.tsv");
        let query_offsets = index_tsv(&queries_path, &qids)?;
        let passage_offsets = index_tsv(&collection_path, &pids)?;
        langs_files.push(LangFiles {
            queries: open(&queries_path)?,
            collection: open(&collection_path)?,
            queries_path,
            collection_path,
            query_offsets,
            passage_offsets,
        });
    }

    // 4. Groups and their languages.
    let pos_of = |table: &[u64], id: u64| table.binary_search(&id).unwrap_or(0) as u32;
    let mut ids = Vec::new();
    let mut lang_offsets = vec![0usize];
    let mut langs = Vec::new();
    let mut group_query = Vec::new();
    let mut group_positive = Vec::new();
    let mut neg_offsets = vec![0usize];
    let mut negatives = Vec::new();
    for g in raw {
        let q = pos_of(&qids, g.qid);
        let p = pos_of(&pids, g.positive);
        let before = langs.len();
        for (l, files) in langs_files.iter().enumerate() {
            if files.query_offsets[q as usize] != MISSING
                && files.passage_offsets[p as usize] != MISSING
            {
                langs.push(l as LangId);
            }
        }
        if langs.len() == before {
            stats.skip("query or positive missing from every language");
            continue;
        }
        lang_offsets.push(langs.len());
        ids.push(g.qid.to_string());
        group_query.push(q);
        group_positive.push(p);
        negatives.extend(g.negatives.iter().map(|&n| pos_of(&pids, n)));
        neg_offsets.push(negatives.len());
    }
    let store = MmarcoStore {
        langs: langs_files,
        group_query,
        group_positive,
        neg_offsets,
        negatives,
    };
    Corpus::from_parts(
        name,
        languages,
        ids,
        lang_offsets,
        langs,
        Store::Mmarco(Box::new(store)),
        stats,
    )
}
