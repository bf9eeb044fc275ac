//! Helpers shared by the integration tests.
#![allow(dead_code)]

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
