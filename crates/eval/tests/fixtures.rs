//! The metrics against tests/fixtures/ranking-metrics.json (independent reference values:
//! AP with the lower-index tie-break, scikit-learn's AP where no scores tie, R@1, R@10, rank
//! distance).

mod common;

use multiret_eval::metrics::{average_precision, rank_distance, recall_at_k, relevant_ranks};
use serde_json::Value;

#[test]
fn ranking_metrics_fixture() {
    let path = common::fixture("ranking-metrics.json");
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let cases = v["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 60);
    let (mut tied, mut sk) = (0, 0);
    for (n, c) in cases.iter().enumerate() {
        let scores64: Vec<f64> = c["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let scores: Vec<f32> = scores64.iter().map(|&x| x as f32).collect();
        // The cast to f32 must keep the order and the ties of the f64 scores.
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores64[a].total_cmp(&scores64[b]));
        for w in order.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert_eq!(
                scores64[a] == scores64[b],
                scores[a] == scores[b],
                "case {n}: the f32 cast changes a tie"
            );
            assert!(
                scores[a] <= scores[b],
                "case {n}: the f32 cast changes the order"
            );
        }
        let relevant: Vec<usize> = c["relevant"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let ranks = relevant_ranks(&scores, &relevant).unwrap();
        let ap = average_precision(&ranks);
        let want = c["ap_rank_tiebreak_lower_index"].as_f64().unwrap();
        assert!((ap - want).abs() < 1e-12, "case {n}: AP {ap} != {want}");
        if let Some(s) = c.get("ap_sklearn").and_then(Value::as_f64) {
            assert!((ap - s).abs() < 1e-12, "case {n}: AP {ap} != sklearn {s}");
            sk += 1;
        }
        let mut sorted = scores.clone();
        sorted.sort_by(f32::total_cmp);
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            tied += 1;
        }
        assert!(
            (recall_at_k(&ranks, 1) - c["recall_at_1"].as_f64().unwrap()).abs() < 1e-12,
            "case {n}: R@1"
        );
        assert!(
            (recall_at_k(&ranks, 10) - c["recall_at_10"].as_f64().unwrap()).abs() < 1e-12,
            "case {n}: R@10"
        );
        let rd = c["rank_distance"].as_u64().map(|x| x as usize);
        assert_eq!(rank_distance(&ranks), rd, "case {n}: rank distance");
    }
    assert!(tied >= 10, "expected cases with tied scores, found {tied}");
    assert!(sk >= 40, "expected sklearn values, found {sk}");
}
