//! Helpers shared by the integration tests.
#![allow(dead_code)]

use multiret_model::weights::Linear;
use multiret_model::{Arch, Config, Pooling, Weights};
use serde_json::Value;

#[path = "../../../eval/tests/common/fixture.rs"]
mod fixture;
use fixture::fixture;

/// One row of `me5-small-embeddings.json`: a text, its token ids and its embedding (HF
/// transformers, fp32).
pub struct Row {
    pub text: String,
    pub ids: Vec<u32>,
    pub emb: Vec<f32>,
}

/// The rows of the `me5-small-embeddings.json` fixture.
pub fn me5_rows() -> Vec<Row> {
    let p = fixture("me5-small-embeddings.json");
    let text = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("fixture {} unreadable: {e}", p.display()));
    let v: Value = serde_json::from_str(&text).expect("fixture JSON");
    let nums = |v: &Value| -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect()
    };
    v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| Row {
            text: r["text"].as_str().expect("text").to_string(),
            ids: r["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|x| x.as_u64().expect("token id") as u32)
                .collect(),
            emb: nums(&r["embedding"]).iter().map(|&x| x as f32).collect(),
        })
        .collect()
}

/// The path of a reference fixture file (see `fixture.rs`).
pub fn fixture_path(name: &str) -> std::path::PathBuf {
    fixture(name)
}

/// The encoder in f64, written independently of the crate: embeddings, post-LN layers, pooling.
pub fn naive_forward(c: &Config, w: &Weights, ids: &[u32], pooling: Pooling) -> Vec<f64> {
    let h = c.hidden;
    let n = ids.len();
    let d = h / c.heads;
    let ln = |x: &[f64], g: &[f32], b: &[f32]| -> Vec<f64> {
        let mean = x.iter().sum::<f64>() / h as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / h as f64;
        x.iter()
            .enumerate()
            .map(|(j, v)| {
                (v - mean) / (var + c.layer_norm_eps as f64).sqrt() * g[j] as f64 + b[j] as f64
            })
            .collect()
    };
    let lin = |x: &[f64], l: &Linear| -> Vec<f64> {
        (0..l.out)
            .map(|o| {
                l.b[o] as f64
                    + (0..l.inp)
                        .map(|i| x[i] * l.w[o * l.inp + i] as f64)
                        .sum::<f64>()
            })
            .collect()
    };
    let off = match c.arch {
        Arch::Bert => 0,
        Arch::XlmRoberta => c.pad_id as usize + 1,
    };
    let mut x: Vec<Vec<f64>> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let e: Vec<f64> = (0..h)
                .map(|j| (w.word[id as usize * h + j] + w.pos[(off + i) * h + j] + w.typ[j]) as f64)
                .collect();
            ln(&e, &w.emb_ln.w, &w.emb_ln.b)
        })
        .collect();
    for l in &w.layers {
        let q: Vec<Vec<f64>> = x.iter().map(|t| lin(t, &l.q)).collect();
        let k: Vec<Vec<f64>> = x.iter().map(|t| lin(t, &l.k)).collect();
        let v: Vec<Vec<f64>> = x.iter().map(|t| lin(t, &l.v)).collect();
        let mut ctx = vec![vec![0.0; h]; n];
        for head in 0..c.heads {
            for i in 0..n {
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        (0..d)
                            .map(|p| q[i][head * d + p] * k[j][head * d + p])
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for p in 0..d {
                    ctx[i][head * d + p] = (0..n).map(|j| e[j] / z * v[j][head * d + p]).sum();
                }
            }
        }
        x = x
            .iter()
            .zip(&ctx)
            .map(|(xi, ci)| {
                let a = lin(ci, &l.ao);
                let r: Vec<f64> = a.iter().zip(xi).map(|(a, b)| a + b).collect();
                let y = ln(&r, &l.aln.w, &l.aln.b);
                let f: Vec<f64> = lin(&y, &l.fi)
                    .iter()
                    .map(|&t| multiret_kernels::reference::gelu(t))
                    .collect();
                let o = lin(&f, &l.fo);
                let r: Vec<f64> = o.iter().zip(&y).map(|(a, b)| a + b).collect();
                ln(&r, &l.oln.w, &l.oln.b)
            })
            .collect();
    }
    // sentence-transformers' definitions of the modes, written out in f64.
    let col_sum = |j: usize| x.iter().map(|t| t[j]).sum::<f64>();
    let pooled: Vec<f64> = match pooling {
        Pooling::Cls => x[0].clone(),
        Pooling::LastToken => x[n - 1].clone(),
        Pooling::Mean => (0..h).map(|j| col_sum(j) / n as f64).collect(),
        Pooling::MeanSqrtLen => (0..h).map(|j| col_sum(j) / (n as f64).sqrt()).collect(),
        Pooling::Max => (0..h)
            .map(|j| x.iter().map(|t| t[j]).fold(f64::NEG_INFINITY, f64::max))
            .collect(),
        Pooling::WeightedMean => {
            let total: f64 = (1..=n).map(|i| i as f64).sum();
            (0..h)
                .map(|j| {
                    x.iter()
                        .enumerate()
                        .map(|(i, t)| (i + 1) as f64 * t[j])
                        .sum::<f64>()
                        / total
                })
                .collect()
        }
    };
    let norm = pooled.iter().map(|v| v * v).sum::<f64>().sqrt();
    pooled.iter().map(|v| v / norm).collect()
}
