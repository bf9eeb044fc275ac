//! Scoring: the query x candidate cosine matrix through the kernels' GEMM, in blocks of
//! queries, and from it the ranks of the relevant candidates in every setting at once.
//!
//! For LAReQA, one score row per query serves all three settings: the Mo. and Cr. candidate
//! sets are the language blocks of the Mul. pool (candidates in dump order: language-sorted,
//! then file order), and a candidate's index inside a block has the same order as its pool
//! index, so the tie-break (lower index first) agrees everywhere.

use std::collections::{BTreeMap, HashMap};

use multiret_kernels::cosine::score_matrix;
use multiret_kernels::norm::l2_normalize_rows;
use multiret_kernels::{MatMut, MatRef, Par};
use rayon::prelude::*;
use serde::Serialize;

use crate::beir::BeirDataset;
use crate::error::{EvalError, Result};
use crate::lareqa::LareqaDataset;
use crate::metrics::{
    average_precision, average_precision_at_k, count_ranking_before, ndcg_at_k, rank_distance,
    recall_at_k,
};
use crate::npy::Matrix;
use crate::protocol::Similarity;

/// How to compute the score matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreOptions {
    /// Parallelism of the GEMM (the rank counting uses the current rayon pool).
    pub par: Par,
    /// Queries per block: memory is `block_rows x candidates` f32 scores.
    pub block_rows: usize,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            par: Par::all(),
            block_rows: 512,
        }
    }
}

/// A row-L2-normalised copy of `m`; errors on a NaN or infinite value (naming `what`, the row
/// and the column) or an empty dimension.
pub fn normalized(m: &Matrix, what: &str) -> Result<Matrix> {
    let mut out = checked(m, what)?;
    l2_normalize_rows(&mut out.data, out.cols)?;
    Ok(out)
}

pub(crate) fn check_rows(what: &str, m: &Matrix, expected: usize) -> Result<()> {
    if m.rows != expected {
        return Err(EvalError::Shape {
            what: what.to_string(),
            unit: "rows",
            expected,
            got: m.rows,
        });
    }
    Ok(())
}

pub(crate) fn check_dims(q: &Matrix, c: &Matrix) -> Result<()> {
    if q.cols != c.cols {
        return Err(EvalError::Shape {
            what: "candidate embeddings (dimension of the query embeddings)".into(),
            unit: "columns",
            expected: q.cols,
            got: c.cols,
        });
    }
    Ok(())
}

/// Runs `f(first_query, rows, scores)` on blocks of the score matrix `q c^T` (inputs already
/// normalised), in query order.
fn for_each_block(
    q: &Matrix,
    c: &Matrix,
    opts: &ScoreOptions,
    mut f: impl FnMut(usize, usize, &[f32]),
) -> Result<()> {
    let (nq, nc, dim) = (q.rows, c.rows, q.cols);
    let block = opts.block_rows.max(1).min(nq.max(1));
    let mut scores = vec![0.0f32; block * nc];
    let cm = MatRef::row_major(&c.data, nc, dim)?;
    let mut q0 = 0;
    while q0 < nq {
        let rows = block.min(nq - q0);
        let qm = MatRef::row_major(&q.data[q0 * dim..(q0 + rows) * dim], rows, dim)?;
        let out = MatMut::row_major(&mut scores[..rows * nc], rows, nc)?;
        score_matrix(qm, cm, out, opts.par)?;
        f(q0, rows, &scores[..rows * nc]);
        q0 += rows;
    }
    Ok(())
}

/// The ranks of every query's relevant candidates in every LAReQA setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LareqaRanks {
    /// Number of languages (candidate blocks).
    pub n_langs: usize,
    /// Query language (index into the dataset's languages) of each query, in dump order.
    pub query_lang: Vec<usize>,
    /// `queries x n_langs`: the 1-based rank of the gold sentence of the same id among the
    /// candidates of each language (Mo. on the diagonal, Cr. elsewhere); 0 where the id has no
    /// evaluable version in that language.
    pub lang_ranks: Vec<u32>,
    /// Mul.: the 1-based ranks of all relevant candidates in the pool, ascending, query after
    /// query (`multi_offsets[i]..multi_offsets[i + 1]`).
    pub multi_ranks: Vec<u32>,
    /// Offsets into `multi_ranks` (queries + 1 entries).
    pub multi_offsets: Vec<usize>,
}

impl LareqaRanks {
    /// The Mul. ranks of query `i`.
    pub fn multi(&self, i: usize) -> &[u32] {
        &self.multi_ranks[self.multi_offsets[i]..self.multi_offsets[i + 1]]
    }

    /// The rank of query `i`'s gold among the candidates of language `l` (0: none).
    pub fn in_lang(&self, i: usize, l: usize) -> u32 {
        self.lang_ranks[i * self.n_langs + l]
    }
}

/// Ranks the relevant candidates of every query of `ds` in all settings, from query and
/// candidate embeddings in dump order (they need not be normalised), by cosine similarity.
pub fn rank_lareqa(
    ds: &LareqaDataset,
    queries: &Matrix,
    candidates: &Matrix,
    opts: &ScoreOptions,
) -> Result<LareqaRanks> {
    rank_lareqa_by(ds, queries, candidates, opts, Similarity::Cosine)
}

/// A finite copy of `m` for the dot product (no normalisation): errors on a NaN or infinite
/// value (naming `what`, the row and the column) or an empty dimension.
pub(crate) fn checked(m: &Matrix, what: &str) -> Result<Matrix> {
    if let Some((row, col, value)) = m.first_non_finite() {
        return Err(EvalError::NonFinite {
            what: what.to_string(),
            row,
            col,
            value,
        });
    }
    if m.cols == 0 {
        return Err(EvalError::Shape {
            what: what.to_string(),
            unit: "columns (embedding dimension > 0)",
            expected: 1,
            got: 0,
        });
    }
    Ok(m.clone())
}

/// [`rank_lareqa`] with the similarity chosen: cosine ([`Similarity::Cosine`], ours) or the
/// dot product of the embeddings as given ([`Similarity::Dot`], XTREME-R's).
pub fn rank_lareqa_by(
    ds: &LareqaDataset,
    queries: &Matrix,
    candidates: &Matrix,
    opts: &ScoreOptions,
    similarity: Similarity,
) -> Result<LareqaRanks> {
    check_rows("query embeddings", queries, ds.num_questions())?;
    check_rows("candidate embeddings", candidates, ds.num_candidates())?;
    check_dims(queries, candidates)?;
    let prepare = match similarity {
        Similarity::Cosine => normalized,
        Similarity::Dot => checked,
    };
    let q = prepare(queries, "query embeddings")?;
    let c = prepare(candidates, "candidate embeddings")?;
    let n_langs = ds.langs.len();
    let mut cand_off = vec![0usize; n_langs + 1];
    for (l, ld) in ds.langs.iter().enumerate() {
        cand_off[l + 1] = cand_off[l] + ld.candidates.len();
    }
    // Group: every evaluable version (language, pool index of its gold) of one id.
    let mut group_of: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut query_group = Vec::with_capacity(q.rows);
    let mut query_lang = Vec::with_capacity(q.rows);
    for (l, ld) in ds.langs.iter().enumerate() {
        for qu in &ld.questions {
            let g = *group_of.entry(qu.id.as_str()).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push((l, cand_off[l] + qu.gold));
            query_group.push(g);
            query_lang.push(l);
        }
    }
    let mut lang_ranks = vec![0u32; q.rows * n_langs];
    let mut multi_ranks = Vec::new();
    let mut multi_offsets = vec![0usize];
    for_each_block(&q, &c, opts, |q0, rows, scores| {
        let nc = c.rows;
        let results: Vec<(Vec<u32>, Vec<u32>)> = (0..rows)
            .into_par_iter()
            .map(|r| {
                let row = &scores[r * nc..(r + 1) * nc];
                let group = &groups[query_group[q0 + r]];
                rank_row(row, group, &cand_off)
            })
            .collect();
        for (r, (per_lang, multi)) in results.into_iter().enumerate() {
            lang_ranks[(q0 + r) * n_langs..(q0 + r + 1) * n_langs].copy_from_slice(&per_lang);
            multi_ranks.extend(multi);
            multi_offsets.push(multi_ranks.len());
        }
    })?;
    Ok(LareqaRanks {
        n_langs,
        query_lang,
        lang_ranks,
        multi_ranks,
        multi_offsets,
    })
}

/// One query: its rank in each language block and its Mul. ranks. `group` lists the
/// (language, pool index) of every relevant candidate.
fn rank_row(row: &[f32], group: &[(usize, usize)], cand_off: &[usize]) -> (Vec<u32>, Vec<u32>) {
    let n_langs = cand_off.len() - 1;
    let mut per_lang = vec![0u32; n_langs];
    let mut multi = Vec::with_capacity(group.len());
    for &(lang, idx) in group {
        let score = row[idx];
        let mut total = 0usize;
        for l in 0..n_langs {
            let (a, b) = (cand_off[l], cand_off[l + 1]);
            let ahead = count_ranking_before(&row[a..b], a, score, idx);
            if l == lang {
                // Mo. (l = query language) or Cr.: ranked among the candidates of its language.
                per_lang[l] = 1 + ahead as u32;
            }
            total += ahead;
        }
        // Mul.: ranked in the pool, where the other relevant candidates compete too.
        multi.push(1 + total as u32);
    }
    multi.sort_unstable();
    (per_lang, multi)
}

/// Mo. metrics: one setting per language (queries of X against the candidates of X).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonoMetrics {
    /// Mean over languages of the per-language mAP.
    pub map_macro: f64,
    /// Mean over languages of the per-language R@1.
    pub r1_macro: f64,
    /// mAP per language.
    pub map_per_lang: BTreeMap<String, f64>,
    /// R@1 per language.
    pub r1_per_lang: BTreeMap<String, f64>,
    /// Queries per language.
    pub queries_per_lang: BTreeMap<String, usize>,
}

/// Cr. metrics: one setting per ordered pair X-Y, X ≠ Y (queries of X against the candidates of
/// Y).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrossMetrics {
    /// Mean over pairs of the per-pair mAP.
    pub map_macro: f64,
    /// Mean over pairs of the per-pair R@1.
    pub r1_macro: f64,
    /// mAP per pair, keyed `"X-Y"` (query language X, candidate language Y).
    pub map_per_pair: BTreeMap<String, f64>,
    /// R@1 per pair.
    pub r1_per_pair: BTreeMap<String, f64>,
    /// Queries evaluated per pair.
    pub queries_per_pair: BTreeMap<String, usize>,
    /// Queries of X skipped for pair X-Y because their id has no evaluable version in Y (pairs
    /// with none are left out).
    pub skipped_per_pair: BTreeMap<String, usize>,
    /// Sum of `skipped_per_pair`.
    pub skipped: usize,
    /// Number of pairs evaluated.
    pub pairs: usize,
    /// Mean mAP over the pairs X-· of each query language X.
    pub map_per_query_lang: BTreeMap<String, f64>,
    /// Mean mAP over the pairs ·-Y of each candidate language Y.
    pub map_per_candidate_lang: BTreeMap<String, f64>,
}

/// Mul. metrics: queries of X against the pool of every language's candidates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultiMetrics {
    /// Mean over query languages of the per-language mAP.
    pub map_macro: f64,
    /// Mean over all queries (LAReQA's own figure).
    pub map_micro: f64,
    /// Mean over query languages of the per-language R@10.
    pub r10_macro: f64,
    /// Mean over all queries of R@10.
    pub r10_micro: f64,
    /// Mean over query languages of the mean rank distance (max − min rank of a query's
    /// relevant candidates, for queries with at least two); `null` when no query has two.
    pub rank_distance_macro: Option<f64>,
    /// mAP per query language.
    pub map_per_lang: BTreeMap<String, f64>,
    /// R@10 per query language.
    pub r10_per_lang: BTreeMap<String, f64>,
    /// Mean rank distance per query language (`null`: no query with two relevant).
    pub rank_distance_per_lang: BTreeMap<String, Option<f64>>,
    /// Candidates in the pool.
    pub pool: usize,
    /// Mean number of relevant candidates per query.
    pub relevant_per_query: f64,
}

/// The three LAReQA settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LareqaSettings {
    /// Monolingual.
    pub mono: MonoMetrics,
    /// Cross-lingual.
    pub cross: CrossMetrics,
    /// Multilingual.
    pub multi: MultiMetrics,
}

fn mean(v: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for x in v {
        s += x;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

/// The `"X-Y"` key of a language pair.
pub fn pair_key(x: &str, y: &str) -> String {
    format!("{x}-{y}")
}

/// Aggregates ranks into the Mo., Cr. and Mul. metrics (macro and micro averages as in
/// docs/method.md §4).
pub fn lareqa_settings(ds: &LareqaDataset, ranks: &LareqaRanks) -> LareqaSettings {
    let langs = ds.lang_codes();
    let n = langs.len();
    // Per (query language, candidate language): (sum AP, sum R@1, count).
    let mut acc = vec![(0.0f64, 0.0f64, 0usize); n * n];
    let mut skipped = vec![0usize; n * n];
    // Mul. per query language: (sum AP, sum R@10, count, sum rank distance, count with >= 2).
    let mut mul = vec![(0.0f64, 0.0f64, 0usize, 0.0f64, 0usize); n];
    let (mut micro_ap, mut micro_r10, mut n_rel) = (0.0f64, 0.0f64, 0usize);
    let nq = ranks.query_lang.len();
    for i in 0..nq {
        let x = ranks.query_lang[i];
        for y in 0..n {
            let r = ranks.in_lang(i, y);
            if r == 0 {
                skipped[x * n + y] += 1;
                continue;
            }
            let a = &mut acc[x * n + y];
            a.0 += 1.0 / r as f64;
            a.1 += if r == 1 { 1.0 } else { 0.0 };
            a.2 += 1;
        }
        let m: Vec<usize> = ranks.multi(i).iter().map(|&r| r as usize).collect();
        let ap = average_precision(&m);
        let r10 = recall_at_k(&m, 10);
        micro_ap += ap;
        micro_r10 += r10;
        n_rel += m.len();
        let e = &mut mul[x];
        e.0 += ap;
        e.1 += r10;
        e.2 += 1;
        if let Some(d) = rank_distance(&m) {
            e.3 += d as f64;
            e.4 += 1;
        }
    }
    let mut mono = MonoMetrics {
        map_macro: 0.0,
        r1_macro: 0.0,
        map_per_lang: BTreeMap::new(),
        r1_per_lang: BTreeMap::new(),
        queries_per_lang: BTreeMap::new(),
    };
    for (x, lx) in langs.iter().enumerate() {
        let (ap, r1, c) = acc[x * n + x];
        if c > 0 {
            mono.map_per_lang.insert(lx.clone(), ap / c as f64);
            mono.r1_per_lang.insert(lx.clone(), r1 / c as f64);
            mono.queries_per_lang.insert(lx.clone(), c);
        }
    }
    mono.map_macro = mean(mono.map_per_lang.values().copied());
    mono.r1_macro = mean(mono.r1_per_lang.values().copied());
    let mut cross = CrossMetrics {
        map_macro: 0.0,
        r1_macro: 0.0,
        map_per_pair: BTreeMap::new(),
        r1_per_pair: BTreeMap::new(),
        queries_per_pair: BTreeMap::new(),
        skipped_per_pair: BTreeMap::new(),
        skipped: 0,
        pairs: 0,
        map_per_query_lang: BTreeMap::new(),
        map_per_candidate_lang: BTreeMap::new(),
    };
    let mut by_q: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut by_c: Vec<Vec<f64>> = vec![Vec::new(); n];
    for (x, lx) in langs.iter().enumerate() {
        for (y, ly) in langs.iter().enumerate() {
            if x == y {
                continue;
            }
            let key = pair_key(lx, ly);
            let s = skipped[x * n + y];
            if s > 0 {
                cross.skipped_per_pair.insert(key.clone(), s);
                cross.skipped += s;
            }
            let (ap, r1, c) = acc[x * n + y];
            if c > 0 {
                let m = ap / c as f64;
                cross.map_per_pair.insert(key.clone(), m);
                cross.r1_per_pair.insert(key.clone(), r1 / c as f64);
                cross.queries_per_pair.insert(key, c);
                by_q[x].push(m);
                by_c[y].push(m);
            }
        }
    }
    cross.pairs = cross.map_per_pair.len();
    cross.map_macro = mean(cross.map_per_pair.values().copied());
    cross.r1_macro = mean(cross.r1_per_pair.values().copied());
    for (l, code) in langs.iter().enumerate() {
        if !by_q[l].is_empty() {
            cross
                .map_per_query_lang
                .insert(code.clone(), mean(by_q[l].iter().copied()));
        }
        if !by_c[l].is_empty() {
            cross
                .map_per_candidate_lang
                .insert(code.clone(), mean(by_c[l].iter().copied()));
        }
    }
    let mut multi = MultiMetrics {
        map_macro: 0.0,
        map_micro: if nq > 0 { micro_ap / nq as f64 } else { 0.0 },
        r10_macro: 0.0,
        r10_micro: if nq > 0 { micro_r10 / nq as f64 } else { 0.0 },
        rank_distance_macro: None,
        map_per_lang: BTreeMap::new(),
        r10_per_lang: BTreeMap::new(),
        rank_distance_per_lang: BTreeMap::new(),
        pool: ds.num_candidates(),
        relevant_per_query: if nq > 0 {
            n_rel as f64 / nq as f64
        } else {
            0.0
        },
    };
    for (x, lx) in langs.iter().enumerate() {
        let (ap, r10, c, rd, crd) = mul[x];
        if c == 0 {
            continue;
        }
        multi.map_per_lang.insert(lx.clone(), ap / c as f64);
        multi.r10_per_lang.insert(lx.clone(), r10 / c as f64);
        multi
            .rank_distance_per_lang
            .insert(lx.clone(), (crd > 0).then(|| rd / crd as f64));
    }
    multi.map_macro = mean(multi.map_per_lang.values().copied());
    multi.r10_macro = mean(multi.r10_per_lang.values().copied());
    let rds: Vec<f64> = multi
        .rank_distance_per_lang
        .values()
        .flatten()
        .copied()
        .collect();
    multi.rank_distance_macro = (!rds.is_empty()).then(|| mean(rds));
    LareqaSettings { mono, cross, multi }
}

/// mAP@k under XTREME-R's definition ([`average_precision_at_k`]: denominator `min(R, k)`)
/// in each setting, from the same ranks as [`LareqaSettings`]. XTREME-R itself reports one
/// figure, [`XtremeRMulti::map_at_k_micro`]: the mean over all queries against the whole
/// multilingual pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct XtremeRSettings {
    /// The cut-off (20).
    pub k: usize,
    /// Mo.: queries of X against the candidates of X.
    pub mono: XtremeRPerLang,
    /// Cr.: queries of X against the candidates of Y ≠ X.
    pub cross: XtremeRPerPair,
    /// Mul.: queries of X against the pool of all languages.
    pub multi: XtremeRMulti,
}

/// mAP@k of a setting with one value per language.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct XtremeRPerLang {
    /// Mean over languages.
    pub map_at_k_macro: f64,
    /// Per language.
    pub map_at_k_per_lang: BTreeMap<String, f64>,
}

/// mAP@k of the Cr. setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct XtremeRPerPair {
    /// Mean over the ordered pairs evaluated.
    pub map_at_k_macro: f64,
    /// Per pair, keyed `"X-Y"`.
    pub map_at_k_per_pair: BTreeMap<String, f64>,
}

/// mAP@k of the Mul. setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct XtremeRMulti {
    /// Mean over all queries: XTREME-R's LAReQA score.
    pub map_at_k_micro: f64,
    /// Mean over query languages.
    pub map_at_k_macro: f64,
    /// Per query language.
    pub map_at_k_per_lang: BTreeMap<String, f64>,
}

/// mAP@`k` under XTREME-R's definition in every setting, from the ranks of
/// [`rank_lareqa_by`] (with [`Similarity::Dot`] for XTREME-R's protocol). Averages follow
/// [`lareqa_settings`]: Mo. and Mul. per language, Cr. per pair, each then macro-averaged, and
/// Mul. also micro-averaged over all queries.
pub fn xtreme_r_settings(ds: &LareqaDataset, ranks: &LareqaRanks, k: usize) -> XtremeRSettings {
    let langs = ds.lang_codes();
    let n = langs.len();
    // Per (query language, candidate language): (sum AP@k, count); Mul. per query language.
    let mut acc = vec![(0.0f64, 0usize); n * n];
    let mut mul = vec![(0.0f64, 0usize); n];
    let mut micro = 0.0f64;
    let nq = ranks.query_lang.len();
    for i in 0..nq {
        let x = ranks.query_lang[i];
        for y in 0..n {
            let r = ranks.in_lang(i, y);
            if r != 0 {
                let a = &mut acc[x * n + y];
                a.0 += average_precision_at_k(&[r as usize], k);
                a.1 += 1;
            }
        }
        let m: Vec<usize> = ranks.multi(i).iter().map(|&r| r as usize).collect();
        let ap = average_precision_at_k(&m, k);
        micro += ap;
        mul[x].0 += ap;
        mul[x].1 += 1;
    }
    let per_lang = |v: &dyn Fn(usize) -> (f64, usize)| -> BTreeMap<String, f64> {
        langs
            .iter()
            .enumerate()
            .filter_map(|(x, l)| {
                let (s, c) = v(x);
                (c > 0).then(|| (l.clone(), s / c as f64))
            })
            .collect()
    };
    let mono = per_lang(&|x| acc[x * n + x]);
    let multi = per_lang(&|x| mul[x]);
    let mut cross = BTreeMap::new();
    for (x, lx) in langs.iter().enumerate() {
        for (y, ly) in langs.iter().enumerate() {
            let (s, c) = acc[x * n + y];
            if x != y && c > 0 {
                cross.insert(pair_key(lx, ly), s / c as f64);
            }
        }
    }
    XtremeRSettings {
        k,
        mono: XtremeRPerLang {
            map_at_k_macro: mean(mono.values().copied()),
            map_at_k_per_lang: mono,
        },
        cross: XtremeRPerPair {
            map_at_k_macro: mean(cross.values().copied()),
            map_at_k_per_pair: cross,
        },
        multi: XtremeRMulti {
            map_at_k_micro: if nq > 0 { micro / nq as f64 } else { 0.0 },
            map_at_k_macro: mean(multi.values().copied()),
            map_at_k_per_lang: multi,
        },
    }
}

/// BEIR / MIRACL metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BeirMetrics {
    /// The qrels split.
    pub split: String,
    /// Mean nDCG@10 over the evaluated queries.
    pub ndcg_at_10: f64,
    /// Mean Recall@100 over the evaluated queries.
    pub recall_at_100: f64,
    /// Mean reciprocal rank of the first relevant document, 0 beyond rank 10 (MRR@10).
    pub mrr_at_10: f64,
    /// Evaluated queries (those with a positive judgement).
    pub queries: usize,
    /// Documents in the corpus.
    pub documents: usize,
}

/// Scores a BEIR-style dataset from query and document embeddings (in dump order: evaluated
/// queries in file order, documents in file order): nDCG@10 with graded gains and Recall@100,
/// both over the full ranking with the lower-index tie-break.
pub fn evaluate_beir(
    ds: &BeirDataset,
    queries: &Matrix,
    docs: &Matrix,
    opts: &ScoreOptions,
) -> Result<BeirMetrics> {
    check_rows("query embeddings", queries, ds.queries.len())?;
    check_rows("document embeddings", docs, ds.docs.len())?;
    check_dims(queries, docs)?;
    let q = normalized(queries, "query embeddings")?;
    let d = normalized(docs, "document embeddings")?;
    let mut per_query: Vec<(f64, f64, f64)> = Vec::with_capacity(q.rows);
    for_each_block(&q, &d, opts, |q0, rows, scores| {
        let nd = d.rows;
        let res: Vec<(f64, f64, f64)> = (0..rows)
            .into_par_iter()
            .map(|r| {
                let row = &scores[r * nd..(r + 1) * nd];
                let judged = &ds.queries[q0 + r].judged;
                let rank_of: HashMap<usize, usize> = judged
                    .iter()
                    .filter(|&&(_, g)| g > 0.0)
                    .filter_map(|&(i, _)| i)
                    .map(|i| (i, 1 + count_ranking_before(row, 0, row[i], i)))
                    .collect();
                let mut ranks: Vec<usize> = rank_of.values().copied().collect();
                ranks.sort_unstable();
                let with_ranks: Vec<(Option<usize>, f64)> = judged
                    .iter()
                    .map(|&(i, g)| (i.and_then(|i| rank_of.get(&i).copied()), g))
                    .collect();
                let positives = judged.iter().filter(|&&(_, g)| g > 0.0).count();
                let hits = ranks.iter().filter(|&&r| r <= 100).count();
                let recall = if positives > 0 {
                    hits as f64 / positives as f64
                } else {
                    0.0
                };
                let mrr = ranks
                    .first()
                    .filter(|&&r| r <= 10)
                    .map_or(0.0, |&r| 1.0 / r as f64);
                (ndcg_at_k(&with_ranks, 10), recall, mrr)
            })
            .collect();
        per_query.extend(res);
    })?;
    Ok(BeirMetrics {
        split: ds.split.clone(),
        ndcg_at_10: mean(per_query.iter().map(|x| x.0)),
        recall_at_100: mean(per_query.iter().map(|x| x.1)),
        mrr_at_10: mean(per_query.iter().map(|x| x.2)),
        queries: ds.queries.len(),
        documents: ds.docs.len(),
    })
}
