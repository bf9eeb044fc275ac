//! Language-mean centring through the whole pipeline: `save_means` on one dataset, `center` on
//! another, on synthetic embeddings with a strong language offset (which centring must remove),
//! and the errors.

mod common;

use multiret_eval::{
    builtin_sample, run_evaluation, write_embeddings_dir, CenterSpec, Dataset, EmbeddingSource,
    EvalConfig, LareqaDataset, Matrix, MissingMeans, Report,
};

const DIM: usize = 32;

fn unit(seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Embeddings in which a question and its gold sentences (in every language) share a content
/// vector, every other sentence has its own, and every text of a language carries that
/// language's offset, `bias` times the content's weight: same-language candidates win.
fn biased_embeddings(ds: &LareqaDataset, bias: f32) -> (Matrix, Matrix) {
    let mut q = Vec::new();
    let mut c = Vec::new();
    for l in &ds.langs {
        let off = unit(hash(&l.lang) ^ 7);
        let mut gold_of = vec![None; l.candidates.len()];
        for qu in &l.questions {
            gold_of[qu.gold] = Some(qu.id.as_str());
            let content = unit(hash(&qu.id));
            q.extend(content.iter().zip(&off).map(|(a, o)| a + bias * o));
        }
        for (i, g) in gold_of.iter().enumerate() {
            let content = match g {
                Some(id) => unit(hash(id)),
                None => unit(hash(&format!("{}/{i}", l.lang))),
            };
            let noise = unit(hash(&format!("noise {}/{i}", l.lang)));
            c.extend(
                content
                    .iter()
                    .zip(&off)
                    .zip(&noise)
                    .map(|((a, o), n)| a + bias * o + 0.3 * n),
            );
        }
    }
    (
        Matrix::new(ds.num_questions(), DIM, q).unwrap(),
        Matrix::new(ds.num_candidates(), DIM, c).unwrap(),
    )
}

fn lareqa(r: &Report) -> &multiret_eval::report::LareqaReport {
    match r {
        Report::Lareqa(r) => r,
        Report::Beir(_) => panic!("not a LAReQA report"),
    }
}

#[test]
fn centring_with_another_datasets_means_removes_the_language_offset() {
    let tmp = common::TempDir::new("center");
    let train = builtin_sample().unwrap();
    let mut test = train.clone();
    test.name = "sample-copy".into();
    test.source = "a copy".into();
    let (q, c) = biased_embeddings(&train, 0.8);
    let dir = tmp.path().join("emb");
    write_embeddings_dir(&dir, &q, &c).unwrap();
    let means = tmp.path().join("means.json");
    let label = Some("synthetic");

    let save = EvalConfig {
        save_means: Some(means.clone()),
        ..EvalConfig::default()
    };
    let plain = run_evaluation(
        &Dataset::Lareqa(train.clone()),
        EmbeddingSource::Files(&dir),
        label,
        &save,
    )
    .unwrap();
    assert!(means.is_file());
    assert!(lareqa(&plain).centering.is_none());

    let centred_cfg = EvalConfig {
        center: Some(CenterSpec {
            path: means.clone(),
            missing: MissingMeans::Error,
        }),
        ..EvalConfig::default()
    };
    let test_ds = Dataset::Lareqa(test.clone());
    let centred =
        run_evaluation(&test_ds, EmbeddingSource::Files(&dir), label, &centred_cfg).unwrap();
    let (p, k) = (lareqa(&plain), lareqa(&centred));
    let info = k
        .centering
        .as_ref()
        .expect("the report says it was centred");
    assert_eq!(info.own_means.len(), train.langs.len());
    let (rd_p, rd_k) = (
        p.settings.multi.rank_distance_macro.unwrap(),
        k.settings.multi.rank_distance_macro.unwrap(),
    );
    assert!(rd_k < 0.5 * rd_p, "rank distance {rd_p} -> {rd_k}");
    assert!(
        k.settings.multi.map_macro > p.settings.multi.map_macro + 0.05,
        "Mul. {} -> {}",
        p.settings.multi.map_macro,
        k.settings.multi.map_macro
    );
    assert!(centred.to_json().unwrap().contains("\"centering\""));
    assert!(centred.to_markdown().contains("Centred embeddings"));

    // The means of the evaluated dataset itself are refused.
    let e = run_evaluation(
        &Dataset::Lareqa(train.clone()),
        EmbeddingSource::Files(&dir),
        label,
        &centred_cfg,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("means.json") && e.contains("being evaluated"),
        "{e}"
    );
    // Another model label is refused.
    let e = run_evaluation(
        &test_ds,
        EmbeddingSource::Files(&dir),
        Some("other"),
        &centred_cfg,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("model"), "{e}");
    // A missing file names itself.
    let gone = EvalConfig {
        center: Some(CenterSpec {
            path: tmp.path().join("absent.json"),
            missing: MissingMeans::Error,
        }),
        ..EvalConfig::default()
    };
    let e = run_evaluation(&test_ds, EmbeddingSource::Files(&dir), label, &gone)
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.json"), "{e}");
}

#[test]
fn a_language_without_means_is_an_error_unless_pooled() {
    let tmp = common::TempDir::new("center-missing");
    let full = builtin_sample().unwrap();
    let dropped = full.langs[0].lang.clone();
    let mut part = full.clone();
    part.langs.remove(0);
    let part = LareqaDataset::from_langs("part".into(), "part-dir".into(), part.langs).unwrap();
    let label = Some("synthetic");
    let means = tmp.path().join("means.json");
    let (pq, pc) = biased_embeddings(&part, 0.8);
    let pdir = tmp.path().join("part");
    write_embeddings_dir(&pdir, &pq, &pc).unwrap();
    let save = EvalConfig {
        save_means: Some(means.clone()),
        ..EvalConfig::default()
    };
    run_evaluation(
        &Dataset::Lareqa(part),
        EmbeddingSource::Files(&pdir),
        label,
        &save,
    )
    .unwrap();

    let (q, c) = biased_embeddings(&full, 0.8);
    let dir = tmp.path().join("full");
    write_embeddings_dir(&dir, &q, &c).unwrap();
    let full = Dataset::Lareqa(full);
    let cfg = |missing| EvalConfig {
        center: Some(CenterSpec {
            path: means.clone(),
            missing,
        }),
        ..EvalConfig::default()
    };
    let e = run_evaluation(
        &full,
        EmbeddingSource::Files(&dir),
        label,
        &cfg(MissingMeans::Error),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(&dropped) && e.contains("pooled"), "{e}");
    let r = run_evaluation(
        &full,
        EmbeddingSource::Files(&dir),
        label,
        &cfg(MissingMeans::Pooled),
    )
    .unwrap();
    let info = lareqa(&r).centering.clone().unwrap();
    assert_eq!(info.pooled_mean, vec![dropped]);
}
