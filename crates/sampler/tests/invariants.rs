//! Property tests of the sampler invariants on random synthetic corpora.

mod common;

use std::collections::HashSet;

use common::{check_batch, check_without_replacement, synthetic};
use multiret_sampler::{
    Batch, BatchKind, Corpus, Sampler, SamplerConfig, SamplerError, SamplerKind, SamplerState,
};
use proptest::prelude::*;

/// Group language masks over `n_langs` languages (every group has at least one).
fn masks() -> impl Strategy<Value = Vec<u32>> {
    (1u32..=5).prop_flat_map(|n_langs| prop::collection::vec(1u32..(1 << n_langs), 1..80))
}

fn kind() -> impl Strategy<Value = SamplerKind> {
    prop_oneof![
        Just(SamplerKind::Mono),
        Just(SamplerKind::Cross),
        Just(SamplerKind::Mixed),
        (0.0f64..=1.0).prop_map(|alpha| SamplerKind::Hybrid { alpha }),
        Just(SamplerKind::Hybrid { alpha: 0.0 }),
        Just(SamplerKind::Hybrid { alpha: 1.0 }),
        (2usize..=4).prop_map(|langs| SamplerKind::Group { langs }),
        (0.0f64..=1.0, 2usize..=3)
            .prop_map(|(alpha, langs)| SamplerKind::HybridGroup { alpha, langs }),
    ]
}

fn config() -> impl Strategy<Value = SamplerConfig> {
    (kind(), 1usize..=10, any::<u64>()).prop_map(|(k, b, s)| SamplerConfig::new(k, b, s))
}

/// Whether the corpus can feed the sampler, computed independently of the crate.
fn satisfiable(c: &Corpus, cfg: &SamplerConfig) -> bool {
    let b = cfg.batch_size;
    let mono = c.groups_per_language().iter().any(|&n| n >= b);
    let cross = (0..c.len())
        .filter(|&g| c.group_langs(g).len() >= 2)
        .count()
        >= b;
    let mixed = c.len() >= b;
    let group = |k: usize| {
        (0..c.len())
            .filter(|&g| c.group_langs(g).len() >= 2)
            .count()
            >= b.div_ceil(k)
    };
    match cfg.kind {
        SamplerKind::Mono => mono,
        SamplerKind::Cross => cross,
        SamplerKind::Mixed => mixed,
        SamplerKind::Hybrid { alpha } => (alpha == 0.0 || mono) && (alpha == 1.0 || cross),
        SamplerKind::Group { langs } => group(langs),
        SamplerKind::HybridGroup { alpha, langs } => {
            (alpha == 0.0 || mono) && (alpha == 1.0 || group(langs))
        }
    }
}

/// Whether the configuration itself is invalid: group batches smaller than two groups' worth
/// of languages.
fn invalid(cfg: &SamplerConfig) -> bool {
    cfg.kind
        .group_langs()
        .is_some_and(|k| cfg.batch_size < 2 * k)
}

/// A sampler, or `None` when the corpus legitimately cannot feed it (checked).
fn sampler_or_skip(
    corpora: &[Corpus],
    cfg: &SamplerConfig,
) -> Result<Option<Sampler>, TestCaseError> {
    let ok = corpora.iter().all(|c| satisfiable(c, cfg));
    match Sampler::new(corpora, cfg.clone()) {
        Err(SamplerError::InvalidArgument(_)) if invalid(cfg) => Ok(None),
        Ok(_) if invalid(cfg) => Err(TestCaseError::fail("invalid group config accepted")),
        Ok(s) => {
            prop_assert!(ok, "sampler built for an unsatisfiable config");
            Ok(Some(s))
        }
        Err(SamplerError::Unsatisfiable { .. }) => {
            prop_assert!(!ok, "satisfiable config rejected");
            Ok(None)
        }
        Err(e) => Err(TestCaseError::fail(format!("unexpected error: {e}"))),
    }
}

fn roundtrip(state: &SamplerState) -> SamplerState {
    let json = serde_json::to_string(state).unwrap();
    serde_json::from_str(&json).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Batch size, unique groups, single language in mono batches, q-lang != p-lang in every
    /// cross pair, monolingual mixed pairs, kinds matching the sampler.
    #[test]
    fn every_batch_satisfies_the_invariants(masks in masks(), cfg in config(), n in 1usize..120) {
        let corpora = vec![synthetic("c", &masks)];
        let Some(mut s) = sampler_or_skip(&corpora, &cfg)? else { return Ok(()) };
        for i in 0..n {
            let batch = s.next_batch();
            prop_assert_eq!(batch.index, i as u64);
            check_batch(&batch, &corpora, &s).map_err(TestCaseError::fail)?;
            let ok_kind = match cfg.kind {
                SamplerKind::Mono => batch.kind == BatchKind::Mono,
                SamplerKind::Cross => batch.kind == BatchKind::Cross,
                SamplerKind::Mixed => batch.kind == BatchKind::Mixed,
                SamplerKind::Hybrid { alpha } => match batch.kind {
                    BatchKind::Mono => alpha > 0.0,
                    BatchKind::Cross => alpha < 1.0,
                    _ => false,
                },
                SamplerKind::Group { .. } => batch.kind == BatchKind::Group,
                SamplerKind::HybridGroup { alpha, .. } => match batch.kind {
                    BatchKind::Mono => alpha > 0.0,
                    BatchKind::Group => alpha < 1.0,
                    _ => false,
                },
            };
            prop_assert!(ok_kind, "batch kind {:?} under {:?}", batch.kind, cfg.kind);
            // The printable record names the same groups and languages.
            let rec = batch.record(&corpora).unwrap();
            prop_assert_eq!(rec.pairs.len(), batch.pairs.len());
            prop_assert_eq!(rec.corpus, None);
        }
    }

    /// Within an epoch of a stream, no group is drawn twice; epochs have the documented
    /// length (floor(pool / batch size) batches) for the single-stream samplers.
    #[test]
    fn groups_are_drawn_without_replacement_within_an_epoch(
        masks in masks(), cfg in config(), n in 1usize..200,
    ) {
        let corpora = vec![synthetic("c", &masks)];
        let Some(mut s) = sampler_or_skip(&corpora, &cfg)? else { return Ok(()) };
        let batches: Vec<Batch> = (0..n).map(|_| s.next_batch()).collect();
        check_without_replacement(&batches).map_err(TestCaseError::fail)?;
        let c = &corpora[0];
        let cross_pool = (0..c.len()).filter(|&g| c.group_langs(g).len() >= 2).count();
        let (pool, take) = match cfg.kind {
            SamplerKind::Cross => (cross_pool, cfg.batch_size),
            SamplerKind::Mixed => (c.len(), cfg.batch_size),
            SamplerKind::Group { langs } => (cross_pool, cfg.batch_size.div_ceil(langs)),
            _ => return Ok(()),
        };
        let per_epoch = pool / take;
        for (i, b) in batches.iter().enumerate() {
            prop_assert_eq!(b.epoch, (i / per_epoch) as u64);
        }
        // A full epoch covers floor(pool / B) * B distinct groups.
        if n >= per_epoch {
            let first: HashSet<usize> = batches[..per_epoch]
                .iter()
                .flat_map(|b| b.pairs.iter().map(|p| p.group))
                .collect();
            prop_assert_eq!(first.len(), per_epoch * take);
        }
    }

    /// Same corpora and configuration: same batches.
    #[test]
    fn sampling_is_deterministic_by_seed(masks in masks(), cfg in config(), n in 1usize..60) {
        let corpora = vec![synthetic("c", &masks)];
        let Some(a) = sampler_or_skip(&corpora, &cfg)? else { return Ok(()) };
        let b = Sampler::new(&corpora, cfg.clone()).unwrap();
        let xs: Vec<Batch> = a.take(n).collect();
        let ys: Vec<Batch> = b.take(n).collect();
        prop_assert_eq!(xs, ys);
    }

    /// A state saved after k batches (through JSON) resumes with exactly the batches the
    /// original sampler produces next, sharded or not.
    #[test]
    fn resumed_sampler_continues_exactly(
        masks in masks(), cfg in config(), k in 0usize..80, m in 1usize..60,
        world in 1u64..4, rank_seed in any::<u64>(),
    ) {
        let corpora = vec![synthetic("c", &masks)];
        let Some(s) = sampler_or_skip(&corpora, &cfg)? else { return Ok(()) };
        let mut s = s.shard(rank_seed % world, world).unwrap();
        for _ in 0..k {
            s.next_batch();
        }
        let state = roundtrip(&s.state());
        prop_assert_eq!(&state, &s.state());
        let mut resumed = Sampler::resume(&corpora, &state).unwrap();
        prop_assert_eq!(resumed.state(), s.state());
        for _ in 0..m {
            prop_assert_eq!(resumed.next_batch(), s.next_batch());
        }
    }

    /// Shards yield disjoint batch indices, and together exactly the global stream.
    #[test]
    fn shards_are_disjoint_and_cover_the_stream(
        masks in masks(), cfg in config(), world in 1u64..6, n in 1u64..60,
    ) {
        let corpora = vec![synthetic("c", &masks)];
        let Some(global) = sampler_or_skip(&corpora, &cfg)? else { return Ok(()) };
        let global: Vec<Batch> = global.take(n as usize).collect();
        let mut seen = HashSet::new();
        for rank in 0..world {
            let mut shard = Sampler::new(&corpora, cfg.clone()).unwrap().shard(rank, world).unwrap();
            loop {
                let b = shard.next_batch();
                if b.index >= n {
                    break;
                }
                prop_assert_eq!(b.index % world, rank);
                prop_assert!(seen.insert(b.index), "batch {} in two shards", b.index);
                prop_assert_eq!(&b, &global[b.index as usize]);
            }
        }
        prop_assert_eq!(seen.len() as u64, n);
    }

    /// With several corpora every batch comes from one corpus and satisfies the invariants
    /// there; resuming works across corpora too.
    #[test]
    fn mixing_corpora_keeps_the_invariants(
        m1 in masks(), m2 in masks(), cfg in config(), weighted in any::<bool>(), n in 1usize..80,
    ) {
        let corpora = vec![synthetic("a", &m1), synthetic("b", &m2)];
        let cfg = if weighted { cfg.with_weights(vec![1.0, 3.0]) } else { cfg };
        let Some(mut s) = sampler_or_skip(&corpora, &cfg)? else { return Ok(()) };
        let mut batches = Vec::new();
        for _ in 0..n {
            let b = s.next_batch();
            check_batch(&b, &corpora, &s).map_err(TestCaseError::fail)?;
            let rec = b.record(&corpora).unwrap();
            prop_assert_eq!(rec.corpus, Some(corpora[b.corpus].name()));
            batches.push(b);
        }
        check_without_replacement(&batches).map_err(TestCaseError::fail)?;
        let mut resumed = Sampler::resume(&corpora, &roundtrip(&s.state())).unwrap();
        for _ in 0..10 {
            prop_assert_eq!(resumed.next_batch(), s.next_batch());
        }
    }
}

#[test]
fn bad_arguments_are_errors() {
    let corpora = vec![synthetic("c", &[3, 3, 3, 3])];
    let new = |kind, b| Sampler::new(&corpora, SamplerConfig::new(kind, b, 0));
    assert!(matches!(
        new(SamplerKind::Mono, 0),
        Err(SamplerError::InvalidArgument(_))
    ));
    for alpha in [-0.1, 1.1, f64::NAN] {
        let r = new(SamplerKind::Hybrid { alpha }, 2);
        assert!(
            matches!(r, Err(SamplerError::InvalidArgument(_))),
            "{alpha}"
        );
        let r = new(SamplerKind::HybridGroup { alpha, langs: 2 }, 4);
        assert!(
            matches!(r, Err(SamplerError::InvalidArgument(_))),
            "{alpha}"
        );
    }
    // Group batches: at least 2 languages per group, and room for another group's negatives.
    for (langs, b) in [(1, 4), (0, 4), (2, 3), (3, 5)] {
        let r = new(SamplerKind::Group { langs }, b);
        let Err(SamplerError::InvalidArgument(m)) = r else {
            panic!("group {langs} with batch {b}: {r:?}");
        };
        assert!(m.contains("group"), "{m}");
    }
    assert!(new(SamplerKind::Group { langs: 2 }, 4).is_ok());
    // Four groups in two languages: batches of 10 with 2 languages need 5 groups.
    let Err(SamplerError::Unsatisfiable { detail, .. }) = new(SamplerKind::Group { langs: 2 }, 10)
    else {
        panic!("5 groups from 4");
    };
    assert!(
        detail.contains("group batches of 10 need 5 groups"),
        "{detail}"
    );
    assert!(matches!(
        new(SamplerKind::Cross, 5),
        Err(SamplerError::Unsatisfiable { .. })
    ));
    let e = new(SamplerKind::Mono, 5).unwrap_err();
    assert!(e.to_string().contains("at least 5 groups"), "{e}");
    assert!(Sampler::new(&[], SamplerConfig::new(SamplerKind::Mono, 1, 0)).is_err());
    let weighted = SamplerConfig::new(SamplerKind::Mono, 1, 0);
    for w in [vec![1.0, 1.0], vec![0.0], vec![f64::INFINITY], vec![-1.0]] {
        let r = Sampler::new(&corpora, weighted.clone().with_weights(w.clone()));
        assert!(matches!(r, Err(SamplerError::InvalidArgument(_))), "{w:?}");
    }
    let s = new(SamplerKind::Mono, 1).unwrap();
    assert!(s.clone().shard(2, 2).is_err());
    assert!(s.shard(0, 0).is_err());
    // Single-language groups never feed cross batches.
    let c = vec![synthetic("one", &[1, 1, 1, 3, 3])];
    let s = Sampler::new(&c, SamplerConfig::new(SamplerKind::Cross, 2, 0)).unwrap();
    assert_eq!(s.cross_groups(0), 2);
    assert_eq!(c[0].single_language_groups(), 3);
}

#[test]
fn resume_rejects_a_different_corpus_or_a_corrupt_state() {
    let corpora = vec![synthetic("c", &[3, 3, 3, 3, 1])];
    let mut s = Sampler::new(&corpora, SamplerConfig::new(SamplerKind::Cross, 2, 9)).unwrap();
    s.next_batch();
    let state = s.state();
    let other = vec![synthetic("c", &[3, 3, 3, 3, 2])];
    assert!(matches!(
        Sampler::resume(&other, &state),
        Err(SamplerError::StateMismatch(_))
    ));
    let two = vec![synthetic("c", &[3, 3, 3, 3, 1]), synthetic("d", &[3])];
    assert!(matches!(
        Sampler::resume(&two, &state),
        Err(SamplerError::StateMismatch(_))
    ));
    let mut bad = state.clone();
    bad.corpora[0].cross.cursor = 3;
    assert!(matches!(
        Sampler::resume(&corpora, &bad),
        Err(SamplerError::StateMismatch(_))
    ));
    let mut bad = state.clone();
    bad.rng_word_pos = "x".into();
    assert!(matches!(
        Sampler::resume(&corpora, &bad),
        Err(SamplerError::StateMismatch(_))
    ));
    let mut bad = state.clone();
    bad.format = 99;
    assert!(matches!(
        Sampler::resume(&corpora, &bad),
        Err(SamplerError::StateMismatch(_))
    ));
    // A renamed corpus with the same content resumes fine.
    let renamed = vec![synthetic("renamed", &[3, 3, 3, 3, 1])];
    assert!(Sampler::resume(&renamed, &state).is_ok());
}

#[test]
fn state_is_small_and_floats_roundtrip_exactly() {
    let corpora = vec![synthetic("c", &vec![31; 500])];
    let alpha = 0.1 + 0.2; // 0.30000000000000004
    let cfg = SamplerConfig::new(SamplerKind::Hybrid { alpha }, 8, 1).with_weights(vec![1.0 / 3.0]);
    let mut s = Sampler::new(&corpora, cfg).unwrap();
    for _ in 0..100 {
        s.next_batch();
    }
    let json = serde_json::to_string(&s.state()).unwrap();
    assert!(json.len() < 1000, "{json}");
    let back: SamplerState = serde_json::from_str(&json).unwrap();
    match back.config.kind {
        SamplerKind::Hybrid { alpha: a } => assert_eq!(a.to_bits(), alpha.to_bits()),
        k => panic!("{k:?}"),
    }
    assert_eq!(
        back.config.weights.as_ref().unwrap()[0].to_bits(),
        (1.0f64 / 3.0).to_bits()
    );
    // Numbers are accepted on input as well.
    let cfg: SamplerConfig = serde_json::from_str(
        r#"{"kind":{"name":"hybrid","alpha":0.5},"batch_size":4,"seed":3,"weights":[2]}"#,
    )
    .unwrap();
    assert_eq!(cfg.kind, SamplerKind::Hybrid { alpha: 0.5 });
    assert_eq!(cfg.weights, Some(vec![2.0]));
}

/// A group batch on a corpus where every group has 3 languages: with 2 languages per group,
/// batch size 6 takes 3 groups, each in 2 distinct languages, monolingual pairs.
#[test]
fn group_batches_hold_each_group_in_several_languages() {
    let corpora = vec![synthetic("c", &[7; 9])];
    let cfg = SamplerConfig::new(SamplerKind::Group { langs: 2 }, 6, 4);
    let mut s = Sampler::new(&corpora, cfg).unwrap();
    let mut seen = HashSet::new();
    for i in 0..3 {
        let b = s.next_batch();
        assert_eq!(
            (b.kind, b.pairs.len(), b.epoch),
            (BatchKind::Group, 6, 0),
            "{b:?}"
        );
        for pair in b.pairs.chunks(2) {
            assert_eq!(pair[0].group, pair[1].group);
            assert_ne!(pair[0].query_lang, pair[1].query_lang);
            assert!(pair.iter().all(|p| p.query_lang == p.passage_lang));
            assert!(
                seen.insert(pair[0].group),
                "group twice in epoch 0 (batch {i})"
            );
        }
    }
    assert_eq!(s.next_batch().epoch, 1);
    // Odd sizes cut the last group short; groups in fewer languages give fewer pairs.
    let cfg = SamplerConfig::new(SamplerKind::Group { langs: 3 }, 7, 4);
    let b = Sampler::new(&corpora, cfg).unwrap().next_batch();
    assert_eq!(b.pairs.len(), 7);
    let two = vec![synthetic("c", &[3; 9])];
    let cfg = SamplerConfig::new(SamplerKind::Group { langs: 3 }, 6, 4);
    let b = Sampler::new(&two, cfg).unwrap().next_batch();
    assert_eq!(b.pairs.len(), 4, "2 groups in their 2 languages");
    // The kind and its sizes survive a state round trip.
    let cfg = SamplerConfig::new(
        SamplerKind::HybridGroup {
            alpha: 0.25,
            langs: 3,
        },
        6,
        1,
    );
    let mut a = Sampler::new(&corpora, cfg).unwrap();
    a.next_batch();
    let mut r = Sampler::resume(&corpora, &roundtrip(&a.state())).unwrap();
    for _ in 0..5 {
        assert_eq!(r.next_batch(), a.next_batch());
    }
}
