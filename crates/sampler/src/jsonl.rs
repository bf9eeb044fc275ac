//! Loader for JSONL corpora.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;

use crate::corpus::{Corpus, Example, Group, LoadStats};
use crate::error::{Result, SamplerError};

#[derive(Deserialize)]
struct Line {
    group: serde_json::Value,
    lang: String,
    query: String,
    positive: String,
    #[serde(default)]
    positive_context: Option<String>,
    #[serde(default)]
    negatives: Vec<String>,
}

/// Loads a JSONL corpus, one example per line:
///
/// ```json
/// {"group": "q17", "lang": "de", "query": "...", "positive": "...", "negatives": ["..."]}
/// ```
///
/// `group` (a string or an integer) links the language versions of one source pair;
/// `negatives` and `positive_context` are optional, other fields are ignored. Blank lines are
/// ignored. Lines whose query or positive is empty are skipped and counted. The corpus is
/// named after the file stem.
///
/// Errors (naming the file and the 1-based line): unreadable file, invalid UTF-8 or JSON, a
/// missing or mistyped field, an empty `lang`, the same (`group`, `lang`) twice; and
/// [`SamplerError::EmptyCorpus`] when no line is usable.
pub fn load_jsonl(path: &Path) -> Result<Corpus> {
    let name = path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let file = std::fs::File::open(path).map_err(|e| SamplerError::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // (group, lang) -> line where it was first seen.
    let mut first_line: HashMap<(usize, String), usize> = HashMap::new();
    let mut stats = LoadStats::default();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| SamplerError::io(path, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let text = std::str::from_utf8(&buf)
            .map_err(|e| SamplerError::bad_line(path, line_no, format!("invalid UTF-8: {e}")))?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        stats.read += 1;
        let line: Line = serde_json::from_str(text).map_err(|e| {
            SamplerError::bad_line(path, line_no, format!("invalid JSON line: {e}"))
        })?;
        let group_id = match line.group {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(SamplerError::bad_line(
                    path,
                    line_no,
                    format!("`group` must be a string or a number, found {other}"),
                ))
            }
        };
        if line.lang.trim().is_empty() {
            return Err(SamplerError::bad_line(path, line_no, "empty `lang`"));
        }
        if line.query.trim().is_empty() || line.positive.trim().is_empty() {
            stats.skip("empty query or positive");
            continue;
        }
        let g = *index.entry(group_id.clone()).or_insert_with(|| {
            groups.push(Group {
                id: group_id.clone(),
                versions: Default::default(),
            });
            groups.len() - 1
        });
        if let Some(first) = first_line.insert((g, line.lang.clone()), line_no) {
            return Err(SamplerError::bad_line(
                path,
                line_no,
                format!(
                    "group `{group_id}` has language `{}` twice (first on line {first})",
                    line.lang
                ),
            ));
        }
        groups[g].versions.insert(
            line.lang,
            Example {
                query: line.query,
                positive: line.positive,
                positive_context: line.positive_context,
                negatives: line.negatives,
            },
        );
    }
    Corpus::from_groups_with_stats(name, groups, stats)
}
