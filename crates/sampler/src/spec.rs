//! Resolving `--train` specs (`mlqa-r`, `xquad-r`, paths, weighted lists) to corpora.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::corpus::Corpus;
use crate::error::{Result, SamplerError};
use crate::jsonl::load_jsonl;
use crate::lareqa::{json_files, load_lareqa_with, PassageUnit};
use crate::mmarco::{load_mmarco, MmarcoOptions};

/// Dataset names resolved inside the data directory.
pub const NAMED_DATASETS: [&str; 2] = ["mlqa-r", "xquad-r"];

/// How corpora are loaded from specs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Passage unit of LAReQA corpora.
    pub unit: PassageUnit,
    /// Options of mMARCO corpora.
    pub mmarco: MmarcoOptions,
    /// LAReQA corpora get the other sentences of each gold's paragraph as hard negatives, and
    /// topics ([`load_lareqa_with`]). Other corpora keep the negatives they have.
    #[serde(default)]
    pub context_negatives: bool,
}

/// One entry of a comma-separated training spec list: `SPEC` or `SPEC:WEIGHT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    /// `mlqa-r`, `xquad-r`, or a path.
    pub spec: String,
    /// Mixing weight, if given.
    pub weight: Option<f64>,
}

/// Parses `SPEC[:WEIGHT][,SPEC[:WEIGHT]...]`.
///
/// A trailing `:NUMBER` is a weight (finite, > 0); any other colon stays part of the path.
/// Either every entry has a weight or none has.
pub fn parse_train_specs(list: &str) -> Result<Vec<TrainSpec>> {
    let mut out = Vec::new();
    for entry in list.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(SamplerError::InvalidArgument(format!(
                "empty entry in training spec list `{list}`"
            )));
        }
        let (spec, weight) = match entry.rsplit_once(':') {
            Some((s, w)) if !s.is_empty() => match w.trim().parse::<f64>() {
                Ok(w) => (s.to_string(), Some(w)),
                Err(_) => (entry.to_string(), None),
            },
            _ => (entry.to_string(), None),
        };
        if let Some(w) = weight {
            if !(w.is_finite() && w > 0.0) {
                return Err(SamplerError::InvalidArgument(format!(
                    "weight of `{spec}` must be a finite number > 0, got {w}"
                )));
            }
        }
        out.push(TrainSpec { spec, weight });
    }
    let weighted = out.iter().filter(|s| s.weight.is_some()).count();
    if weighted != 0 && weighted != out.len() {
        return Err(SamplerError::InvalidArgument(format!(
            "training spec list `{list}`: give a weight to every corpus or to none"
        )));
    }
    Ok(out)
}

/// Where a spec points to.
fn resolve(spec: &str, data_dir: &Path) -> Result<PathBuf> {
    if NAMED_DATASETS.contains(&spec) {
        // In `data_dir`, or in every default place when it is the default (the error lists
        // them all).
        return Ok(multiret_data::dataset_dir(data_dir, spec)?);
    }
    let path = PathBuf::from(spec);
    if !path.exists() {
        return Err(SamplerError::bad_file(
            &path,
            format!(
                "no such file or directory (and not one of the named datasets {})",
                NAMED_DATASETS.join(", ")
            ),
        ));
    }
    Ok(path)
}

/// Loads one corpus from a spec:
/// - `mlqa-r`, `xquad-r`: the LAReQA directory of that name inside `data_dir`;
/// - a directory with `triples.tsv`: an mMARCO corpus ([`load_mmarco`]);
/// - a directory with `LANG.json` files: a LAReQA corpus ([`load_lareqa_with`]);
/// - a file: a JSONL corpus ([`load_jsonl`]).
///
/// The corpus is named after the spec.
pub fn load_corpus(spec: &str, data_dir: &Path, options: &LoadOptions) -> Result<Corpus> {
    let path = resolve(spec, data_dir)?;
    let corpus = if path.is_dir() {
        if path.join("triples.tsv").is_file() {
            load_mmarco(&path, &options.mmarco)?
        } else if !json_files(&path)?.is_empty() {
            load_lareqa_with(&path, options.unit, options.context_negatives)?
        } else {
            return Err(SamplerError::bad_file(
                &path,
                "neither an mMARCO directory (triples.tsv) nor a LAReQA directory (LANG.json)",
            ));
        }
    } else if path.extension().and_then(|e| e.to_str()) == Some("json") {
        return Err(SamplerError::bad_file(
            &path,
            "a single .json file: pass the directory of LANG.json files (LAReQA) or a .jsonl file",
        ));
    } else {
        load_jsonl(&path)?
    };
    Ok(corpus.with_name(spec))
}

/// Parses a spec list ([`parse_train_specs`]) and loads every corpus ([`load_corpus`]).
///
/// Returns the corpora and, when weights were given, their weights (in the same order), ready
/// for [`SamplerConfig::weights`](crate::SamplerConfig::weights).
pub fn load_train(
    list: &str,
    data_dir: &Path,
    options: &LoadOptions,
) -> Result<(Vec<Corpus>, Option<Vec<f64>>)> {
    let specs = parse_train_specs(list)?;
    let mut corpora = Vec::with_capacity(specs.len());
    for s in &specs {
        corpora.push(load_corpus(&s.spec, data_dir, options)?);
    }
    let weights = if specs.iter().all(|s| s.weight.is_some()) {
        Some(specs.iter().filter_map(|s| s.weight).collect())
    } else {
        None
    };
    Ok((corpora, weights))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_weights_and_paths() {
        let s = parse_train_specs("mlqa-r:2,/a/b.jsonl:0.5").unwrap();
        assert_eq!(s[0].spec, "mlqa-r");
        assert_eq!(s[0].weight, Some(2.0));
        assert_eq!(s[1].spec, "/a/b.jsonl");
        assert_eq!(s[1].weight, Some(0.5));
        let s = parse_train_specs("C:/data/x.jsonl").unwrap();
        assert_eq!(s[0].spec, "C:/data/x.jsonl");
        assert_eq!(s[0].weight, None);
        assert!(parse_train_specs("a:1,b").is_err());
        assert!(parse_train_specs("a:0").is_err());
        assert!(parse_train_specs("a:-1").is_err());
        assert!(parse_train_specs("a,,b").is_err());
        assert!(parse_train_specs("a:inf").is_err());
    }
}
