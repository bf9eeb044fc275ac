//! Statistical checks: the hybrid mono fraction, the mono language distribution, the cross
//! language-pair distribution and the corpus mixing proportions match their targets.
//!
//! Tolerance: every observed frequency `f` of an event with target probability `p` over `n`
//! independent draws must satisfy `|f - p| <= 5 * sqrt(p (1 - p) / n)` (five standard
//! deviations of the binomial frequency). A correct sampler fails this with probability below
//! 1e-6 per check; the seeds are fixed, so the tests are deterministic anyway. A biased sampler
//! (e.g. alpha off by 0.02 with n = 20,000, where 5 sigma is 0.018) fails.

mod common;

use std::collections::HashMap;

use common::synthetic;
use multiret_sampler::{BatchKind, Sampler, SamplerConfig, SamplerKind};

const N_BATCHES: usize = 20_000;

fn assert_frequency(what: &str, count: usize, n: usize, p: f64) {
    let f = count as f64 / n as f64;
    let tol = 5.0 * (p * (1.0 - p) / n as f64).sqrt();
    assert!(
        (f - p).abs() <= tol,
        "{what}: observed {f:.4} over {n} draws, target {p:.4}, tolerance ±{tol:.4} (5 sigma)"
    );
}

#[test]
fn hybrid_mono_fraction_matches_alpha() {
    // 5 languages, every group in all of them.
    let corpora = vec![synthetic("c", &vec![0b11111; 400])];
    for (alpha, seed) in [(0.5, 1), (0.25, 2), (0.8, 3), (0.5, 4)] {
        let cfg = SamplerConfig::new(SamplerKind::Hybrid { alpha }, 4, seed);
        let s = Sampler::new(&corpora, cfg).unwrap();
        let mono = s
            .take(N_BATCHES)
            .filter(|b| b.kind == BatchKind::Mono)
            .count();
        assert_frequency(
            &format!("mono fraction, alpha {alpha}"),
            mono,
            N_BATCHES,
            alpha,
        );
    }
    for alpha in [0.0, 1.0] {
        let cfg = SamplerConfig::new(SamplerKind::Hybrid { alpha }, 4, 5);
        let s = Sampler::new(&corpora, cfg).unwrap();
        let mono = s.take(2000).filter(|b| b.kind == BatchKind::Mono).count();
        assert_eq!(mono as f64, 2000.0 * alpha, "alpha {alpha}");
    }
}

#[test]
fn mono_languages_are_uniform_over_languages_with_enough_groups() {
    // l0..l3 in every group (300 groups); l4 in 3 groups only: below the batch size, so never
    // a mono language. Uniform target over l0..l3: 1/4.
    let mut masks = vec![0b01111u32; 300];
    for m in masks.iter_mut().take(3) {
        *m |= 0b10000;
    }
    let corpora = vec![synthetic("c", &masks)];
    for kind in [SamplerKind::Mono, SamplerKind::Hybrid { alpha: 0.5 }] {
        let s = Sampler::new(&corpora, SamplerConfig::new(kind, 8, 11)).unwrap();
        assert_eq!(s.mono_languages(0), [0, 1, 2, 3]);
        let mut counts: HashMap<u16, usize> = HashMap::new();
        let mut n = 0;
        for b in s.take(N_BATCHES).filter(|b| b.kind == BatchKind::Mono) {
            *counts.entry(b.pairs[0].query_lang).or_default() += 1;
            n += 1;
        }
        assert!(
            !counts.contains_key(&4),
            "{kind:?}: language below batch size was drawn"
        );
        for l in 0..4u16 {
            let c = counts.get(&l).copied().unwrap_or(0);
            assert_frequency(&format!("{kind:?}: mono language l{l}"), c, n, 0.25);
        }
    }
}

#[test]
fn cross_pairs_are_uniform_over_the_ordered_pairs_of_each_group() {
    // Groups in 3 languages: 6 ordered pairs, 1/6 each. Groups in 2 languages: 1/2 each.
    let mut masks = vec![0b0111u32; 200];
    masks.extend(vec![0b1001u32; 200]);
    let corpora = vec![synthetic("c", &masks)];
    let s = Sampler::new(&corpora, SamplerConfig::new(SamplerKind::Cross, 8, 21)).unwrap();
    let mut three: HashMap<(u16, u16), usize> = HashMap::new();
    let mut two: HashMap<(u16, u16), usize> = HashMap::new();
    for b in s.take(N_BATCHES / 2) {
        for p in b.pairs {
            let table = if corpora[0].group_langs(p.group).len() == 3 {
                &mut three
            } else {
                &mut two
            };
            *table.entry((p.query_lang, p.passage_lang)).or_default() += 1;
        }
    }
    let n3: usize = three.values().sum();
    assert_eq!(three.len(), 6);
    for (pair, &c) in &three {
        assert_frequency(
            &format!("3-language group, pair {pair:?}"),
            c,
            n3,
            1.0 / 6.0,
        );
    }
    let n2: usize = two.values().sum();
    assert_eq!(two.len(), 2);
    assert_eq!(
        two.keys()
            .filter(|(q, p)| (*q, *p) == (0, 3) || (*q, *p) == (3, 0))
            .count(),
        2
    );
    for (pair, &c) in &two {
        assert_frequency(&format!("2-language group, pair {pair:?}"), c, n2, 0.5);
    }
}

#[test]
fn mixed_pairs_are_uniform_over_each_group_languages() {
    let corpora = vec![synthetic("c", &vec![0b1011u32; 300])];
    let s = Sampler::new(&corpora, SamplerConfig::new(SamplerKind::Mixed, 8, 31)).unwrap();
    let mut counts: HashMap<u16, usize> = HashMap::new();
    let mut n = 0;
    for b in s.take(N_BATCHES / 2) {
        for p in b.pairs {
            *counts.entry(p.query_lang).or_default() += 1;
            n += 1;
        }
    }
    assert_eq!(counts.len(), 3);
    for (l, &c) in &counts {
        assert_frequency(&format!("mixed language {l}"), c, n, 1.0 / 3.0);
    }
}

#[test]
fn corpora_are_drawn_by_size_or_by_weight() {
    let corpora = vec![
        synthetic("big", &vec![3u32; 300]),
        synthetic("small", &vec![3u32; 100]),
    ];
    let count_small = |cfg: SamplerConfig| {
        Sampler::new(&corpora, cfg)
            .unwrap()
            .take(N_BATCHES)
            .filter(|b| b.corpus == 1)
            .count()
    };
    let by_size = count_small(SamplerConfig::new(
        SamplerKind::Hybrid { alpha: 0.5 },
        4,
        41,
    ));
    assert_frequency("small corpus by size", by_size, N_BATCHES, 0.25);
    let weighted = count_small(
        SamplerConfig::new(SamplerKind::Hybrid { alpha: 0.5 }, 4, 42).with_weights(vec![1.0, 4.0]),
    );
    assert_frequency("small corpus by weight", weighted, N_BATCHES, 0.8);
}
