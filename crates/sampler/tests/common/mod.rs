//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use multiret_sampler::{Batch, BatchKind, Corpus, Example, Group, Sampler};

/// A fresh, empty directory under cargo's per-target temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sampler-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The data directory: `MULTIRET_DATA`, else the repository's `data/`
/// ([`multiret_data::env_data_dir`]). Panics with a clear message if `mlqa-r` is not there (the
/// real-data tests must not skip).
pub fn data_dir() -> PathBuf {
    let dir = multiret_data::env_data_dir();
    assert!(
        dir.join("mlqa-r").join("en.json").is_file(),
        "real-data test: MLQA-R not found under {} (set MULTIRET_DATA to the directory holding \
         mlqa-r/ and xquad-r/)",
        dir.display()
    );
    dir
}

/// A synthetic corpus: group g exists in the languages whose bit is set in `masks[g]`
/// (languages are "l0", "l1", ...). Texts encode group and language.
pub fn synthetic(name: &str, masks: &[u32]) -> Corpus {
    let groups = masks
        .iter()
        .enumerate()
        .map(|(g, &mask)| Group {
            id: format!("g{g}"),
            versions: (0..32)
                .filter(|l| mask & (1 << l) != 0)
                .map(|l| {
                    (
                        format!("l{l}"),
                        Example {
                            query: format!("q{g}-l{l}"),
                            positive: format!("p{g}-l{l}"),
                            positive_context: None,
                            negatives: vec![format!("n{g}-l{l}")],
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        })
        .collect();
    Corpus::from_groups(name, groups).expect("synthetic corpus")
}

/// Checks every per-batch invariant; returns a description of the first violation.
pub fn check_batch(batch: &Batch, corpora: &[Corpus], sampler: &Sampler) -> Result<(), String> {
    let b = sampler.config().batch_size;
    let corpus = corpora.get(batch.corpus).ok_or_else(|| {
        format!(
            "batch {}: corpus {} out of range",
            batch.index, batch.corpus
        )
    })?;
    if batch.kind == BatchKind::Group {
        check_group_batch(batch, corpus, sampler)?;
    } else if batch.pairs.len() != b {
        return Err(format!(
            "batch {}: {} pairs, want {b}",
            batch.index,
            batch.pairs.len()
        ));
    }
    let mut seen = HashSet::new();
    for p in &batch.pairs {
        if p.group >= corpus.len() {
            return Err(format!(
                "batch {}: group {} out of range",
                batch.index, p.group
            ));
        }
        let key = if batch.kind == BatchKind::Group {
            (p.group, Some(p.query_lang))
        } else {
            (p.group, None)
        };
        if !seen.insert(key) {
            return Err(format!("batch {}: group {} twice", batch.index, p.group));
        }
        let langs = corpus.group_langs(p.group);
        if !langs.contains(&p.query_lang) || !langs.contains(&p.passage_lang) {
            return Err(format!(
                "batch {}: pair {p:?} uses a missing language",
                batch.index
            ));
        }
        match batch.kind {
            BatchKind::Mono | BatchKind::Mixed | BatchKind::Group
                if p.query_lang != p.passage_lang =>
            {
                return Err(format!(
                    "batch {}: {:?} pair {p:?} not monolingual",
                    batch.index, batch.kind
                ))
            }
            BatchKind::Cross if p.query_lang == p.passage_lang => {
                return Err(format!(
                    "batch {}: cross pair {p:?} has q-lang == p-lang",
                    batch.index
                ))
            }
            _ => {}
        }
    }
    if batch.kind == BatchKind::Mono {
        let lang = batch.pairs[0].query_lang;
        if batch.pairs.iter().any(|p| p.query_lang != lang) {
            return Err(format!(
                "batch {}: mono batch with several languages",
                batch.index
            ));
        }
        if !sampler.mono_languages(batch.corpus).contains(&lang) {
            return Err(format!(
                "batch {}: mono language {lang} has too few groups",
                batch.index
            ));
        }
        if corpus.groups_per_language()[usize::from(lang)] < b {
            return Err(format!(
                "batch {}: mono language {lang} below batch size",
                batch.index
            ));
        }
    }
    Ok(())
}

/// The invariants of a group batch: `ceil(b / k)` groups, each group's pairs contiguous and
/// in distinct languages, `min(k, its languages)` of them (the last group's cut to fill `b`),
/// at most `b` pairs in all.
fn check_group_batch(batch: &Batch, corpus: &Corpus, sampler: &Sampler) -> Result<(), String> {
    let b = sampler.config().batch_size;
    let k = sampler
        .config()
        .kind
        .group_langs()
        .ok_or("a group batch of a non-group sampler")?;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for p in &batch.pairs {
        match runs.last_mut() {
            Some((g, n)) if *g == p.group => *n += 1,
            _ => {
                if runs.iter().any(|(g, _)| *g == p.group) {
                    return Err(format!(
                        "batch {}: group {} not contiguous",
                        batch.index, p.group
                    ));
                }
                runs.push((p.group, 1));
            }
        }
    }
    let total = batch.pairs.len();
    // The first ceil(b / k) - 1 groups hold fewer than b pairs, so every drawn group is there.
    if total > b || runs.len() != b.div_ceil(k) {
        return Err(format!(
            "batch {}: {total} pairs in {} groups for batch size {b} and {k} languages",
            batch.index,
            runs.len()
        ));
    }
    let last = runs.len() - 1;
    for (i, &(g, n)) in runs.iter().enumerate() {
        let want = k.min(corpus.group_langs(g).len());
        let ok = if i == last {
            n <= want && (n == want || total == b)
        } else {
            n == want
        };
        if !ok {
            return Err(format!(
                "batch {}: group {g} has {n} pairs, want {want}",
                batch.index
            ));
        }
    }
    Ok(())
}

/// Checks that within one epoch of one stream no group repeats. Streams are keyed by
/// (corpus, kind, mono language).
pub fn check_without_replacement(batches: &[Batch]) -> Result<(), String> {
    let mut used: HashMap<(usize, BatchKind, Option<u16>, u64), HashSet<usize>> = HashMap::new();
    for batch in batches {
        let lang = (batch.kind == BatchKind::Mono).then(|| batch.pairs[0].query_lang);
        let key = (batch.corpus, batch.kind, lang, batch.epoch);
        let set = used.entry(key).or_default();
        // A group batch holds a group once per language.
        let groups: HashSet<usize> = batch.pairs.iter().map(|p| p.group).collect();
        if groups.len() != batch.pairs.len() && batch.kind != BatchKind::Group {
            return Err(format!("batch {}: a group twice", batch.index));
        }
        for p in groups {
            if !set.insert(p) {
                return Err(format!(
                    "group {} drawn twice in epoch {} of stream {:?} (batch {})",
                    p, batch.epoch, key, batch.index
                ));
            }
        }
    }
    Ok(())
}
