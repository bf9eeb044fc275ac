//! Language-mean centring (`multiret eval --save-means FILE`, then `--center FILE`).
//!
//! A multilingual encoder puts a language-specific offset into every embedding: the mean
//! embedding of a language's texts. Subtracting it (Libovický et al., 2020, "On the language
//! neutrality of pre-trained multilingual representations") removes part of the preference
//! for same-language candidates that the multilingual setting measures.
//!
//! The means must never come from the evaluation pool. [`language_means`] takes them from
//! another LAReQA dataset (for XQuAD-R: MLQA-R, the training side), one mean per language for
//! the queries and one for the candidates (they carry different prefixes), over the
//! embeddings the evaluation's similarity sees (L2-normalised rows under cosine). The file
//! records the model, the prefixes, the candidate mode, the similarity and the source dataset;
//! [`LanguageMeans::check_applies`] refuses to centre an evaluation whose settings differ, or
//! whose dataset is the one the means were taken from.
//!
//! A language of the evaluation that the file has no mean for is an error, unless
//! [`MissingMeans::Pooled`] is asked for: then it gets the mean of the file's language means
//! (also training-side only), which removes the component that every language shares but not
//! its own offset. The report lists which languages got which.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use multiret_data::LareqaDataset;
use serde::{Deserialize, Serialize};

use crate::encoder::{CandidateMode, Prefixes};
use crate::error::{EvalError, Result};
use crate::npy::Matrix;
use crate::protocol::Similarity;
use crate::score::{check_dims, check_rows, checked, normalized};

/// The `format` field of a means file.
pub const MEANS_FORMAT: &str = "multiret-language-means";
/// The version of the means file this crate writes and reads.
pub const MEANS_VERSION: u32 = 1;

/// One language's means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageMean {
    /// Queries averaged.
    pub queries: usize,
    /// Candidates averaged.
    pub candidates: usize,
    /// The mean query embedding.
    pub query_mean: Vec<f32>,
    /// The mean candidate embedding.
    pub candidate_mean: Vec<f32>,
}

/// Per-language mean embeddings of a training-side dataset, with what they were computed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageMeans {
    /// [`MEANS_FORMAT`].
    pub format: String,
    /// [`MEANS_VERSION`].
    pub version: u32,
    /// The model label of the evaluation that computed them.
    pub model: String,
    /// Embedding dimension.
    pub dim: usize,
    /// The similarity whose view of the embeddings was averaged (cosine: normalised rows).
    pub similarity: Similarity,
    /// The candidate encoding.
    pub candidates: CandidateMode,
    /// The prefixes.
    pub prefixes: Prefixes,
    /// The dataset they were taken from.
    pub dataset: String,
    /// Where that dataset was read from.
    pub dataset_source: String,
    /// Language code → means.
    pub languages: BTreeMap<String, LanguageMean>,
}

/// What to do with an evaluation language that the means file does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingMeans {
    /// Stop with an error naming the languages (the default).
    #[default]
    Error,
    /// Use the mean of the file's language means.
    Pooled,
}

impl MissingMeans {
    /// `error` or `pooled`.
    pub fn as_str(self) -> &'static str {
        match self {
            MissingMeans::Error => "error",
            MissingMeans::Pooled => "pooled",
        }
    }
}

/// A centring to apply: the means file and the rule for missing languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CenterSpec {
    /// The means file (written by `--save-means`).
    pub path: PathBuf,
    /// Languages without a mean in it.
    pub missing: MissingMeans,
}

/// What a centring did, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CenteringInfo {
    /// The means file.
    pub file: String,
    /// The dataset the means were taken from.
    pub means_from: String,
    /// Languages centred with their own means.
    pub own_means: Vec<String>,
    /// Languages centred with the pooled mean ([`MissingMeans::Pooled`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pooled_mean: Vec<String>,
}

/// The rows of `m` as the similarity sees them: normalised under cosine, as given under dot
/// (both checked finite).
fn as_scored(m: &Matrix, similarity: Similarity, what: &str) -> Result<Matrix> {
    match similarity {
        Similarity::Cosine => normalized(m, what),
        Similarity::Dot => checked(m, what),
    }
}

fn mean_rows(m: &Matrix, start: usize, n: usize) -> Vec<f32> {
    let mut acc = vec![0f64; m.cols];
    for r in start..start + n {
        for (a, &x) in acc.iter_mut().zip(&m.data[r * m.cols..(r + 1) * m.cols]) {
            *a += f64::from(x);
        }
    }
    acc.iter().map(|&a| (a / n.max(1) as f64) as f32).collect()
}

/// The per-language means of `queries` and `candidates` (rows in the evaluation's encoding
/// order for `ds`), under `similarity`'s view of them.
#[allow(clippy::too_many_arguments)]
pub fn language_means(
    ds: &LareqaDataset,
    queries: &Matrix,
    candidates: &Matrix,
    model: &str,
    similarity: Similarity,
    candidate_mode: CandidateMode,
    prefixes: &Prefixes,
) -> Result<LanguageMeans> {
    check_rows("query embeddings", queries, ds.num_questions())?;
    check_rows("candidate embeddings", candidates, ds.num_candidates())?;
    let q = as_scored(queries, similarity, "query embeddings")?;
    let c = as_scored(candidates, similarity, "candidate embeddings")?;
    check_dims(&q, &c)?;
    let mut languages = BTreeMap::new();
    let (mut qs, mut cs) = (0, 0);
    for l in &ds.langs {
        let (nq, nc) = (l.questions.len(), l.candidates.len());
        if nq > 0 && nc > 0 {
            languages.insert(
                l.lang.clone(),
                LanguageMean {
                    queries: nq,
                    candidates: nc,
                    query_mean: mean_rows(&q, qs, nq),
                    candidate_mean: mean_rows(&c, cs, nc),
                },
            );
        }
        qs += nq;
        cs += nc;
    }
    if languages.is_empty() {
        return Err(EvalError::EmptyDataset {
            name: ds.name.clone(),
            detail: "no language has both queries and candidates to average".into(),
        });
    }
    Ok(LanguageMeans {
        format: MEANS_FORMAT.into(),
        version: MEANS_VERSION,
        model: model.to_string(),
        dim: q.cols,
        similarity,
        candidates: candidate_mode,
        prefixes: prefixes.clone(),
        dataset: ds.name.clone(),
        dataset_source: ds.source.clone(),
        languages,
    })
}

impl LanguageMeans {
    /// Writes the file (JSON, atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(self).map_err(|e| EvalError::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        Ok(multiret_data::write_atomic(path, text.as_bytes())?)
    }

    /// Reads and checks a file written by [`LanguageMeans::write`]: format and version, a
    /// dimension > 0, at least one language, every mean of that dimension and finite, and
    /// counts > 0.
    pub fn read(path: &Path) -> Result<LanguageMeans> {
        let bytes = std::fs::read(path).map_err(|e| EvalError::io(path, e))?;
        Self::parse(&bytes, path)
    }

    /// [`LanguageMeans::read`] on bytes already read from `path` (named in the errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<LanguageMeans> {
        let m: LanguageMeans = serde_json::from_slice(bytes).map_err(|e| EvalError::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        let bad = |msg: String| Err(EvalError::bad_file(path, msg));
        if m.format != MEANS_FORMAT {
            return bad(format!(
                "format is {:?}, not {MEANS_FORMAT:?} (a file of `multiret eval --save-means`)",
                m.format
            ));
        }
        if m.version != MEANS_VERSION {
            return bad(format!(
                "version {} (this multiret reads version {MEANS_VERSION})",
                m.version
            ));
        }
        if m.dim == 0 {
            return bad("dim is 0".into());
        }
        if m.languages.is_empty() {
            return bad("no language means".into());
        }
        for (lang, l) in &m.languages {
            if l.queries == 0 || l.candidates == 0 {
                return bad(format!("language {lang}: a mean over 0 texts"));
            }
            for (what, v) in [
                ("query_mean", &l.query_mean),
                ("candidate_mean", &l.candidate_mean),
            ] {
                if v.len() != m.dim {
                    return bad(format!(
                        "language {lang}: {what} has {} values, not dim = {}",
                        v.len(),
                        m.dim
                    ));
                }
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return bad(format!("language {lang}: {what}[{i}] is {}", v[i]));
                }
            }
        }
        Ok(m)
    }

    /// Errors (naming `path`) unless these means fit an evaluation of `ds` with these settings:
    /// the same model label, dimension, similarity, candidate mode and prefixes, and a
    /// different dataset from the one the means came from.
    #[allow(clippy::too_many_arguments)]
    pub fn check_applies(
        &self,
        path: &Path,
        ds: &LareqaDataset,
        model: &str,
        dim: usize,
        similarity: Similarity,
        candidate_mode: CandidateMode,
        prefixes: &Prefixes,
    ) -> Result<()> {
        let differs = |what: &str, file: String, here: String| {
            Err(EvalError::bad_file(
                path,
                format!("the means were computed with {what} {file}, this evaluation uses {here}"),
            ))
        };
        if self.dataset == ds.name || self.dataset_source == ds.source {
            return Err(EvalError::bad_file(
                path,
                format!(
                    "the means were taken from {} ({}), the dataset being evaluated: centring \
                     must use means from other (training-side) text",
                    self.dataset, self.dataset_source
                ),
            ));
        }
        if self.model != model {
            return differs("model", format!("{:?}", self.model), format!("{model:?}"));
        }
        if self.dim != dim {
            return differs("dimension", self.dim.to_string(), dim.to_string());
        }
        if self.similarity != similarity {
            return differs(
                "similarity",
                format!("{:?}", self.similarity),
                format!("{similarity:?}"),
            );
        }
        if self.candidates != candidate_mode {
            return differs(
                "candidates",
                self.candidates.as_str().into(),
                candidate_mode.as_str().into(),
            );
        }
        if &self.prefixes != prefixes {
            return differs(
                "prefixes",
                format!("{:?}", self.prefixes),
                format!("{prefixes:?}"),
            );
        }
        Ok(())
    }

    /// The mean of the language means (queries, candidates).
    fn pooled(&self) -> (Vec<f32>, Vec<f32>) {
        let n = self.languages.len() as f64;
        let mut q = vec![0f64; self.dim];
        let mut c = vec![0f64; self.dim];
        for l in self.languages.values() {
            for (a, &x) in q.iter_mut().zip(&l.query_mean) {
                *a += f64::from(x);
            }
            for (a, &x) in c.iter_mut().zip(&l.candidate_mean) {
                *a += f64::from(x);
            }
        }
        let fin = |v: Vec<f64>| v.into_iter().map(|a| (a / n) as f32).collect();
        (fin(q), fin(c))
    }

    /// Centres `queries` and `candidates` (rows in encoding order for `ds`) in place: each row,
    /// as the similarity sees it, minus its language's mean. Errors on a language without a
    /// mean unless `missing` is [`MissingMeans::Pooled`]. Call [`LanguageMeans::check_applies`]
    /// first.
    pub fn center(
        &self,
        path: &Path,
        ds: &LareqaDataset,
        queries: &mut Matrix,
        candidates: &mut Matrix,
        similarity: Similarity,
        missing: MissingMeans,
    ) -> Result<CenteringInfo> {
        check_rows("query embeddings", queries, ds.num_questions())?;
        check_rows("candidate embeddings", candidates, ds.num_candidates())?;
        for (m, what) in [
            (&*queries, "query embeddings"),
            (&*candidates, "candidate embeddings"),
        ] {
            if m.cols != self.dim {
                return Err(EvalError::Shape {
                    what: format!("{what} (centred with {})", path.display()),
                    unit: "columns",
                    expected: self.dim,
                    got: m.cols,
                });
            }
        }
        let absent: Vec<&str> = ds
            .langs
            .iter()
            .map(|l| l.lang.as_str())
            .filter(|l| !self.languages.contains_key(*l))
            .collect();
        if !absent.is_empty() && missing == MissingMeans::Error {
            return Err(EvalError::bad_file(
                path,
                format!(
                    "no means for language(s) {} (it has {}; --center-missing pooled uses the \
                     mean of its language means for them)",
                    absent.join(", "),
                    self.languages
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let pooled = (!absent.is_empty()).then(|| self.pooled());
        let mut q = as_scored(queries, similarity, "query embeddings")?;
        let mut c = as_scored(candidates, similarity, "candidate embeddings")?;
        let (mut qs, mut cs) = (0, 0);
        let mut info = CenteringInfo {
            file: path.display().to_string(),
            means_from: format!("{} ({})", self.dataset, self.dataset_source),
            own_means: Vec::new(),
            pooled_mean: Vec::new(),
        };
        for l in &ds.langs {
            let (qm, cm) = match (self.languages.get(&l.lang), &pooled) {
                (Some(m), _) => {
                    info.own_means.push(l.lang.clone());
                    (&m.query_mean, &m.candidate_mean)
                }
                (None, Some((pq, pc))) => {
                    info.pooled_mean.push(l.lang.clone());
                    (pq, pc)
                }
                (None, None) => unreachable!("absent languages were rejected above"),
            };
            subtract_rows(&mut q, qs, l.questions.len(), qm);
            subtract_rows(&mut c, cs, l.candidates.len(), cm);
            qs += l.questions.len();
            cs += l.candidates.len();
        }
        *queries = q;
        *candidates = c;
        Ok(info)
    }
}

fn subtract_rows(m: &mut Matrix, start: usize, n: usize, mean: &[f32]) {
    let cols = m.cols;
    for row in m.data[start * cols..(start + n) * cols].chunks_exact_mut(cols) {
        for (x, &mu) in row.iter_mut().zip(mean) {
            *x -= mu;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::builtin_sample;

    fn matrix(rows: usize, cols: usize, seed: u64) -> Matrix {
        let mut s = seed;
        let data = (0..rows * cols)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        Matrix::new(rows, cols, data).unwrap()
    }

    /// The built-in sample, random query and candidate embeddings of width `dim` (seeds
    /// `seed` and `seed + 1`), and their means under `similarity` (model `m`, E5 prefixes).
    fn sample_means(
        dim: usize,
        seed: u64,
        similarity: Similarity,
    ) -> (LareqaDataset, Matrix, Matrix, LanguageMeans) {
        let ds = builtin_sample().unwrap();
        let q = matrix(ds.num_questions(), dim, seed);
        let c = matrix(ds.num_candidates(), dim, seed + 1);
        let m = language_means(
            &ds,
            &q,
            &c,
            "m",
            similarity,
            CandidateMode::Sentence,
            &Prefixes::e5(),
        )
        .unwrap();
        (ds, q, c, m)
    }

    fn renamed(ds: &LareqaDataset, name: &str) -> LareqaDataset {
        let mut d = ds.clone();
        d.name = name.into();
        d.source = format!("{name}-dir");
        d
    }

    #[test]
    fn means_are_per_language_over_normalised_rows_and_centring_subtracts_them() {
        let (ds, q, c, m) = sample_means(8, 1, Similarity::Cosine);
        let p = Prefixes::e5();
        assert_eq!(m.languages.len(), ds.langs.len());
        // The first language's query mean, by hand in f64 over normalised rows.
        let l0 = &ds.langs[0];
        let mut want = [0f64; 8];
        for r in 0..l0.questions.len() {
            let row = &q.data[r * 8..(r + 1) * 8];
            let norm = row
                .iter()
                .map(|&x| f64::from(x).powi(2))
                .sum::<f64>()
                .sqrt();
            for (w, &x) in want.iter_mut().zip(row) {
                *w += f64::from(x) / norm / l0.questions.len() as f64;
            }
        }
        let got = &m.languages[&l0.lang].query_mean;
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-6, "{g} vs {w}");
        }
        // Centring the same embeddings (as another dataset) leaves every language's mean at 0.
        let other = renamed(&ds, "other");
        let (mut q2, mut c2) = (q.clone(), c.clone());
        let path = Path::new("means.json");
        m.check_applies(
            path,
            &other,
            "m",
            8,
            Similarity::Cosine,
            CandidateMode::Sentence,
            &p,
        )
        .unwrap();
        let info = m
            .center(
                path,
                &other,
                &mut q2,
                &mut c2,
                Similarity::Cosine,
                MissingMeans::Error,
            )
            .unwrap();
        assert_eq!(info.own_means.len(), ds.langs.len());
        let again = language_means(
            &other,
            &q2,
            &c2,
            "m",
            Similarity::Dot,
            CandidateMode::Sentence,
            &p,
        )
        .unwrap();
        for l in again.languages.values() {
            assert!(l
                .query_mean
                .iter()
                .chain(&l.candidate_mean)
                .all(|x| x.abs() < 1e-6));
        }
    }

    #[test]
    fn refuses_the_means_of_the_evaluated_dataset_and_other_settings() {
        let (ds, _, _, m) = sample_means(4, 3, Similarity::Cosine);
        let p = Prefixes::e5();
        let path = Path::new("means.json");
        let cos = Similarity::Cosine;
        let sent = CandidateMode::Sentence;
        let e = m
            .check_applies(path, &ds, "m", 4, cos, sent, &p)
            .unwrap_err();
        assert!(e.to_string().contains("the dataset being evaluated"), "{e}");
        let other = renamed(&ds, "other");
        let e = m
            .check_applies(path, &other, "n", 4, cos, sent, &p)
            .unwrap_err();
        assert!(e.to_string().contains("model"), "{e}");
        let e = m
            .check_applies(path, &other, "m", 5, cos, sent, &p)
            .unwrap_err();
        assert!(e.to_string().contains("dimension"), "{e}");
        let e = m
            .check_applies(path, &other, "m", 4, Similarity::Dot, sent, &p)
            .unwrap_err();
        assert!(e.to_string().contains("similarity"), "{e}");
        let e = m
            .check_applies(
                path,
                &other,
                "m",
                4,
                cos,
                CandidateMode::SentenceContext,
                &p,
            )
            .unwrap_err();
        assert!(e.to_string().contains("candidates"), "{e}");
        let none = Prefixes {
            query: String::new(),
            passage: String::new(),
        };
        let e = m
            .check_applies(path, &other, "m", 4, cos, sent, &none)
            .unwrap_err();
        assert!(e.to_string().contains("prefixes"), "{e}");
    }

    #[test]
    fn a_missing_language_is_an_error_unless_pooled() {
        let (ds, q, c, mut m) = sample_means(4, 5, Similarity::Dot);
        let dropped = ds.langs[1].lang.clone();
        m.languages.remove(&dropped);
        let other = renamed(&ds, "other");
        let path = Path::new("means.json");
        let (mut q2, mut c2) = (q.clone(), c.clone());
        let e = m
            .center(
                path,
                &other,
                &mut q2,
                &mut c2,
                Similarity::Dot,
                MissingMeans::Error,
            )
            .unwrap_err();
        assert!(e.to_string().contains(&dropped), "{e}");
        assert_eq!(q2, q, "nothing is changed on an error");
        let info = m
            .center(
                path,
                &other,
                &mut q2,
                &mut c2,
                Similarity::Dot,
                MissingMeans::Pooled,
            )
            .unwrap();
        assert_eq!(info.pooled_mean, vec![dropped]);
        // The dropped language got the mean of the remaining means.
        let (pq, _) = m.pooled();
        let start: usize = ds.langs[..1].iter().map(|l| l.questions.len()).sum();
        for (i, mu) in pq.iter().enumerate() {
            assert_eq!(q2.data[start * 4 + i], q.data[start * 4 + i] - mu);
        }
    }

    #[test]
    fn the_file_round_trips_and_bad_files_name_the_problem() {
        let (_, _, _, m) = sample_means(4, 7, Similarity::Cosine);
        let dir = std::env::temp_dir().join(format!("multiret-means-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("means.json");
        m.write(&path).unwrap();
        assert_eq!(LanguageMeans::read(&path).unwrap(), m);
        let text = std::fs::read_to_string(&path).unwrap();
        let lang = m.languages.keys().next().unwrap().clone();
        let mut cases: Vec<(String, &str)> = vec![
            (text.replace(MEANS_FORMAT, "other"), "format"),
            (text.replace("\"version\":1", "\"version\":2"), "version"),
            (text.replace("\"dim\":4", "\"dim\":5"), "not dim = 5"),
            (text[..text.len() / 2].to_string(), "malformed JSON"),
            (
                text.replace("\"queries\":", "\"queries\":0,\"x\":"),
                "malformed JSON",
            ),
        ];
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["languages"][&lang]["query_mean"][2] = serde_json::json!(null);
        cases.push((v.to_string(), "malformed JSON"));
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["languages"][&lang]["candidates"] = serde_json::json!(0);
        cases.push((v.to_string(), "over 0 texts"));
        for (body, want) in cases {
            std::fs::write(&path, body).unwrap();
            let e = LanguageMeans::read(&path).unwrap_err().to_string();
            assert!(e.contains("means.json") && e.contains(want), "{want}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
