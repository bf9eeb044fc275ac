//! Ranking metrics from the ranks of the relevant candidates only.
//!
//! Candidates are ranked by score, descending, ties broken by the lower candidate index (NaN
//! scores rank below every number), exactly as [`multiret_kernels::cosine::top_k`] does. The
//! rank of a relevant candidate is `1 +` the number of candidates that rank before it, so no
//! full sort is needed: average precision, recall@k, rank distance and nDCG@k all follow from
//! the relevant candidates' ranks.

use crate::error::{EvalError, Result};

pub use multiret_kernels::cosine::ranks_before;

/// The 1-based rank of every relevant candidate, in the order of `relevant`.
///
/// `relevant` holds distinct indices into `scores`.
pub fn relevant_ranks(scores: &[f32], relevant: &[usize]) -> Result<Vec<usize>> {
    let mut sorted_idx: Vec<usize> = relevant.to_vec();
    sorted_idx.sort_unstable();
    if let Some(w) = sorted_idx.windows(2).find(|w| w[0] == w[1]) {
        return Err(EvalError::InvalidArgument(format!(
            "candidate {} is listed twice as relevant",
            w[0]
        )));
    }
    if let Some(&i) = sorted_idx.last().filter(|&&i| i >= scores.len()) {
        return Err(EvalError::InvalidArgument(format!(
            "relevant candidate {i} is out of range ({} candidates)",
            scores.len()
        )));
    }
    Ok(relevant
        .iter()
        .map(|&r| 1 + count_ranking_before(scores, 0, scores[r], r))
        .collect())
}

/// How many candidates of `row` (global indices `offset..offset + row.len()`) rank before the
/// candidate `(score, index)`: a higher score, or an equal score and a lower index (NaN ranks
/// below every number). The candidate itself, if in `row`, is not counted.
///
/// Written as two branch-free counting loops (`>=` before `index`, `>` after it), which the
/// compiler vectorises.
#[inline]
pub fn count_ranking_before(row: &[f32], offset: usize, score: f32, index: usize) -> usize {
    if score.is_nan() {
        return row
            .iter()
            .enumerate()
            .filter(|&(j, &s)| offset + j != index && ranks_before(s, offset + j, score, index))
            .count();
    }
    let split = index.saturating_sub(offset).min(row.len());
    let (before, after) = row.split_at(split);
    let after = if index >= offset && index < offset + row.len() {
        &after[1..]
    } else {
        after
    };
    // NaN candidates compare false: they rank below every number.
    let ge: usize = before.iter().map(|&s| (s >= score) as usize).sum();
    let gt: usize = after.iter().map(|&s| (s > score) as usize).sum();
    ge + gt
}

/// Average precision from the 1-based ranks of all relevant candidates (any order):
/// `(1/R) Σ_k k / rank_k` over the relevant sorted by rank. `0.0` when `ranks` is empty.
pub fn average_precision(ranks: &[usize]) -> f64 {
    if ranks.is_empty() {
        return 0.0;
    }
    let mut r = ranks.to_vec();
    r.sort_unstable();
    let sum: f64 = r
        .iter()
        .enumerate()
        .map(|(k, &rank)| (k + 1) as f64 / rank as f64)
        .sum();
    sum / r.len() as f64
}

/// Average precision at cut-off `k` as XTREME-R scores LAReQA (its mAP@20): the precision at
/// each relevant candidate ranked in the first `k`, summed, divided by `min(R, k)`, where `R` is
/// the number of relevant candidates. From the 1-based ranks of all relevant candidates (any
/// order, distinct):
///
/// `AP@k = (1 / min(R, k)) Σ_{j : r_j ≤ k} j / r_j`, with `r_1 < r_2 < …` the sorted ranks.
///
/// This is `average_precision_at_k` of google-research/xtreme, `third_party/utils_lareqa.py`,
/// which `third_party/evaluate_retrieval.py` calls through `mean_avg_prec_at_k(..., k=20)` for
/// LAReQA. Its denominator is `min(R, k)`, not `R`: with `k ≥ R` and every relevant candidate
/// in the first `k` it equals [`average_precision`]; relevant candidates past `k` only lower
/// it; with `k < R` a perfect top `k` scores 1. For `k ≥` the number of candidates it is
/// exactly [`average_precision`]. `0.0` when `ranks` is empty or `k` is 0 (XTREME-R's own
/// `k=None` or `0` means no cut-off: that is [`average_precision`]).
pub fn average_precision_at_k(ranks: &[usize], k: usize) -> f64 {
    if ranks.is_empty() || k == 0 {
        return 0.0;
    }
    let mut r = ranks.to_vec();
    r.sort_unstable();
    let sum: f64 = r
        .iter()
        .take_while(|&&rank| rank <= k)
        .enumerate()
        .map(|(j, &rank)| (j + 1) as f64 / rank as f64)
        .sum();
    sum / r.len().min(k) as f64
}

/// Recall@k: the fraction of the relevant candidates ranked in the top `k`. `0.0` when `ranks`
/// is empty.
pub fn recall_at_k(ranks: &[usize], k: usize) -> f64 {
    if ranks.is_empty() {
        return 0.0;
    }
    ranks.iter().filter(|&&r| r <= k).count() as f64 / ranks.len() as f64
}

/// Rank distance (language bias): max − min rank of the relevant candidates; `None` with
/// fewer than two.
pub fn rank_distance(ranks: &[usize]) -> Option<usize> {
    if ranks.len() < 2 {
        return None;
    }
    let max = ranks.iter().max()?;
    let min = ranks.iter().min()?;
    Some(max - min)
}

/// nDCG@k with linear (graded) gains, as BEIR and `pytrec_eval` compute it:
/// `DCG = Σ_{rank ≤ k} gain / log2(rank + 1)` over the judged candidates, divided by the DCG of
/// the ideal ordering of all positive gains. `judged` holds `(rank, gain)` of each judged
/// candidate; `rank` is `None` for a judged candidate that is not in the corpus (it counts in the
/// ideal DCG only). `0.0` when no gain is positive.
pub fn ndcg_at_k(judged: &[(Option<usize>, f64)], k: usize) -> f64 {
    let dcg: f64 = judged
        .iter()
        .filter_map(|&(rank, gain)| match rank {
            Some(r) if r <= k && gain > 0.0 => Some(gain / ((r + 1) as f64).log2()),
            _ => None,
        })
        .sum();
    let mut gains: Vec<f64> = judged
        .iter()
        .map(|&(_, g)| g)
        .filter(|&g| g > 0.0)
        .collect();
    gains.sort_by(|a, b| b.total_cmp(a));
    let idcg: f64 = gains
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, g)| g / ((i + 2) as f64).log2())
        .sum();
    if idcg > 0.0 {
        dcg / idcg
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_ranks(scores: &[f32], relevant: &[usize]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| {
            if ranks_before(scores[a], a, scores[b], b) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        });
        relevant
            .iter()
            .map(|r| order.iter().position(|o| o == r).unwrap() + 1)
            .collect()
    }

    #[test]
    fn small_cases() {
        let s = [0.5, 0.9, 0.5, 0.1, 0.9];
        assert_eq!(relevant_ranks(&s, &[2, 4]).unwrap(), vec![4, 2]);
        assert_eq!(relevant_ranks(&s, &[1]).unwrap(), vec![1]);
        assert_eq!(relevant_ranks(&s, &[3, 0, 1]).unwrap(), vec![5, 3, 1]);
        assert!((average_precision(&[4, 2]) - (0.5 * (1.0 / 2.0 + 2.0 / 4.0))).abs() < 1e-12);
        assert_eq!(recall_at_k(&[4, 2], 2), 0.5);
        assert_eq!(rank_distance(&[4, 2]), Some(2));
        assert_eq!(rank_distance(&[4]), None);
        assert!(relevant_ranks(&s, &[1, 1]).is_err());
        assert!(relevant_ranks(&s, &[5]).is_err());
        assert_eq!(relevant_ranks(&s, &[]).unwrap(), Vec::<usize>::new());
        // NaN ranks last, then by index.
        let s = [f32::NAN, 0.0, f32::NAN, -1.0];
        assert_eq!(relevant_ranks(&s, &[0, 2, 3]).unwrap(), vec![3, 4, 2]);
    }

    #[test]
    fn ndcg() {
        // One relevant at rank 1: perfect.
        assert!((ndcg_at_k(&[(Some(1), 1.0)], 10) - 1.0).abs() < 1e-12);
        // Relevant at rank 3 only.
        assert!((ndcg_at_k(&[(Some(3), 1.0)], 10) - 1.0 / 4f64.log2()).abs() < 1e-12);
        // Graded: gains 2 at rank 2, 1 at rank 1; ideal 2 then 1.
        let got = ndcg_at_k(&[(Some(2), 2.0), (Some(1), 1.0)], 10);
        let dcg = 1.0 + 2.0 / 3f64.log2();
        let idcg = 2.0 + 1.0 / 3f64.log2();
        assert!((got - dcg / idcg).abs() < 1e-12);
        // Beyond the cut-off, missing from the corpus, zero gain.
        assert_eq!(
            ndcg_at_k(&[(Some(11), 1.0), (None, 1.0), (Some(1), 0.0)], 10),
            0.0
        );
        assert_eq!(ndcg_at_k(&[], 10), 0.0);
    }

    #[test]
    fn average_precision_at_k_by_hand() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // Both relevant in the top 20: (1/1 + 2/3) / 2, the full-ranking AP.
        assert!(close(
            average_precision_at_k(&[3, 1], 20),
            (1.0 + 2.0 / 3.0) / 2.0
        ));
        assert!(close(
            average_precision_at_k(&[3, 1], 20),
            average_precision(&[3, 1])
        ));
        // One past the cut-off: its term is lost, the denominator stays min(R, k) = 2.
        assert!(close(average_precision_at_k(&[1, 30], 20), 0.5));
        assert!(close(average_precision(&[1, 30]), (1.0 + 2.0 / 30.0) / 2.0));
        // k < R: the denominator is k. Ranks 2, 3, 5 with k = 2: (1/2) / 2.
        assert!(close(average_precision_at_k(&[5, 2, 3], 2), 0.25));
        // A perfect top k with more relevant than k scores 1.
        assert!(close(average_precision_at_k(&[1, 2, 3], 1), 1.0));
        assert!(close(average_precision_at_k(&[2, 1, 3, 40], 3), 1.0));
        // One relevant: the reciprocal rank inside the cut-off, 0 outside.
        assert!(close(average_precision_at_k(&[20], 20), 1.0 / 20.0));
        assert_eq!(average_precision_at_k(&[21], 20), 0.0);
        // Ranks 1, 4, 9, 25 with k = 20: (1/1 + 2/4 + 3/9) / 4.
        assert!(close(
            average_precision_at_k(&[25, 9, 4, 1], 20),
            (1.0 + 0.5 + 1.0 / 3.0) / 4.0
        ));
        assert_eq!(average_precision_at_k(&[], 20), 0.0);
        assert_eq!(average_precision_at_k(&[1], 0), 0.0);
    }

    proptest! {
        /// With a cut-off at or past the last candidate, XTREME-R's AP@k is our full-ranking
        /// AP (the ranks come from our total order, so this holds with tied scores too), and
        /// for any k, AP@k · min(R, k) is AP · R less the terms of the ranks past k.
        #[test]
        fn average_precision_at_k_and_full_ap(
            scores in proptest::collection::vec(-8i32..8, 1..80),
            picks in proptest::collection::vec(0usize..1000, 1..12),
            k in 1usize..30,
        ) {
            let scores: Vec<f32> = scores.into_iter().map(|v| v as f32 * 0.125).collect();
            let n = scores.len();
            let mut rel: Vec<usize> = picks.into_iter().map(|p| p % n).collect();
            rel.sort_unstable();
            rel.dedup();
            let ranks = relevant_ranks(&scores, &rel).unwrap();
            let ap = average_precision(&ranks);
            for k_all in [n, n + 1, n + 100] {
                prop_assert!((average_precision_at_k(&ranks, k_all) - ap).abs() < 1e-12);
            }
            let r = ranks.len();
            let mut sorted = ranks.clone();
            sorted.sort_unstable();
            let past: f64 = sorted
                .iter()
                .enumerate()
                .filter(|&(_, &rank)| rank > k)
                .map(|(j, &rank)| (j + 1) as f64 / rank as f64)
                .sum();
            let at_k = average_precision_at_k(&ranks, k);
            prop_assert!((at_k * r.min(k) as f64 - (ap * r as f64 - past)).abs() < 1e-9);
            prop_assert!((0.0..=1.0 + 1e-12).contains(&at_k));
            if k >= r {
                // A cut-off only drops terms: never above AP, equal when all are inside.
                prop_assert!(at_k <= ap + 1e-12);
                if sorted[r - 1] <= k {
                    prop_assert!((at_k - ap).abs() < 1e-12);
                }
            }
        }

        #[test]
        fn matches_full_sort(
            scores in proptest::collection::vec(-4i32..4, 1..60),
            picks in proptest::collection::vec(0usize..1000, 1..8),
        ) {
            let scores: Vec<f32> = scores.into_iter().map(|v| v as f32 * 0.25).collect();
            let mut rel: Vec<usize> = picks.into_iter().map(|p| p % scores.len()).collect();
            rel.sort_unstable();
            rel.dedup();
            rel.reverse();
            prop_assert_eq!(relevant_ranks(&scores, &rel).unwrap(), naive_ranks(&scores, &rel));
        }
    }
}
