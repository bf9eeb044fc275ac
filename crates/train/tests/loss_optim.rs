//! The loss, the optimiser, the schedule, clipping and gradient caching against hand-computed
//! values.

mod common;

use burn::module::{Module, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use multiret_model::config::{Arch, Pooling};
use multiret_train::optim::{clip_grad_norm, grad_norm};
use multiret_train::{
    info_nce, info_nce_masked, info_nce_reference, info_nce_reference_masked, length_buckets,
    loss_and_grads, AdamWOptimizer, AdamWParams, BatchMask, FlexTrain, LinearSchedule, LossConfig,
    TrainableEncoder,
};
use proptest::prelude::*;

fn excluding(pairs: &[(usize, usize)]) -> BatchMask {
    BatchMask {
        excluded: pairs.to_vec(),
        ..BatchMask::default()
    }
}

type Tb = FlexTrain;

fn t2(v: &[f32], rows: usize, cols: usize) -> Tensor<Tb, 2> {
    Tensor::from_data(
        TensorData::new(v.to_vec(), [rows, cols]),
        &Default::default(),
    )
}

fn value(t: Tensor<Tb, 1>) -> f64 {
    t.into_data().to_vec::<f32>().unwrap()[0] as f64
}

#[test]
fn info_nce_matches_a_hand_computed_example() {
    // q0 = (1, 0), q1 = (0, 1); positives d0 = q0, d1 = q1; one hard negative (0.6, 0.8).
    // τ = 0.5, so the scores of q0 are (2, 0, 1.2) and of q1 (0, 2, 1.6):
    // L0 = ln(e^2 + e^0 + e^1.2) - 2 = 0.4603725535673182
    // L1 = ln(e^0 + e^2 + e^1.6) - 2 = 0.5909235892020361
    // loss = (L0 + L1) / 2 = 0.5256480713846772.
    // Symmetric: each positive against the two queries, scores (2, 0) and (0, 2):
    // ln(e^2 + 1) - 2 = 0.1269280110429727; (0.5256480713846772 + 0.1269280110429727) / 2.
    let q = t2(&[1.0, 0.0, 0.0, 1.0], 2, 2);
    let d = t2(&[1.0, 0.0, 0.0, 1.0, 0.6, 0.8], 3, 2);
    let l = value(info_nce(q.clone(), d.clone(), 0.5, false));
    assert!((l - 0.5256480713846772).abs() < 1e-6, "{l}");
    let s = value(info_nce(q, d, 0.5, true));
    assert!((s - 0.32628804121382493).abs() < 1e-6, "{s}");
    let r = info_nce_reference(
        &[1.0, 0.0, 0.0, 1.0],
        &[1.0, 0.0, 0.0, 1.0, 0.6, 0.8],
        2,
        0.5,
        true,
    );
    assert!((r - 0.32628804121382493).abs() < 1e-7, "{r}"); // 0.6, 0.8 rounded to f32
}

#[test]
fn info_nce_matches_the_f64_reference_on_random_embeddings() {
    let ids = common::random_ids(4, 4, 12, 1);
    let model = common::tiny_model(Arch::Bert, Pooling::Mean, 2);
    let device = Default::default();
    let enc = TrainableEncoder::<Tb>::from_weights(&model.config, &model.weights, &device).unwrap();
    let q = enc.embed_ids(&ids[..2], &device).unwrap();
    let d = enc.embed_ids(&ids[1..], &device).unwrap();
    for symmetric in [false, true] {
        let got = value(info_nce(t2(&q, 2, 32), t2(&d, 3, 32), 0.05, symmetric));
        let want = info_nce_reference(&q, &d, 32, 0.05, symmetric);
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
}

/// Excluding (query, negative) pairs: the f64 reference that drops them, and, for a negative
/// excluded for every query, the loss without that negative at all; the gradients through
/// the masked loss equal those of the smaller batch, with and without gradient caching.
#[test]
fn masked_info_nce_drops_the_excluded_pairs() {
    let ids = common::random_ids(7, 4, 12, 3);
    let model = common::tiny_model(Arch::Bert, Pooling::Mean, 4);
    let device = Default::default();
    let enc = TrainableEncoder::<Tb>::from_weights(&model.config, &model.weights, &device).unwrap();
    let q = enc.embed_ids(&ids[..3], &device).unwrap();
    let d = enc.embed_ids(&ids[1..], &device).unwrap(); // 3 positives, 3 negatives
    let excluded = excluding(&[(0, 3), (2, 5), (1, 1), (0, 9)]); // the last two are ignored
    for symmetric in [false, true] {
        let got = value(info_nce_masked(
            t2(&q, 3, 32),
            t2(&d, 6, 32),
            0.05,
            symmetric,
            &excluded,
        ));
        let want = info_nce_reference_masked(&q, &d, 32, 0.05, symmetric, &excluded);
        let plain = info_nce_reference(&q, &d, 32, 0.05, symmetric);
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "{got} vs {want}"
        );
        assert!(
            (want - plain).abs() > 1e-6,
            "the exclusions change the loss"
        );
    }
    // Negative 4 excluded for every query == negative 4 left out.
    let cfg = LossConfig {
        temperature: 0.05,
        symmetric: false,
    };
    let qi = &ids[..3];
    let di: Vec<Vec<u32>> = ids[1..].to_vec();
    let mut without = di.clone();
    without.remove(4);
    let all4 = excluding(&[(0, 4), (1, 4), (2, 4)]);
    let (lm, gm) = loss_and_grads(&enc, qi, &di, &all4, cfg, 1, &device).unwrap();
    let (lc, gc) = loss_and_grads(&enc, qi, &di, &all4, cfg, 2, &device).unwrap();
    let (lw, gw) =
        loss_and_grads(&enc, qi, &without, &BatchMask::default(), cfg, 1, &device).unwrap();
    assert!((lm - lw).abs() < 1e-5 * lw.abs().max(1.0), "{lm} vs {lw}");
    assert!((lc - lw).abs() < 1e-5 * lw.abs().max(1.0), "{lc} vs {lw}");
    let id = enc.layers[1].fo.w.id;
    let get = |g: &burn::optim::GradientsParams| -> Vec<f32> {
        g.get::<burn::backend::Flex, 2>(id)
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap()
    };
    let (a, b, c) = (get(&gm), get(&gw), get(&gc));
    let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(scale > 0.0);
    for ((x, y), z) in a.iter().zip(&b).zip(&c) {
        assert!(
            (x - y).abs() <= 1e-4 * scale && (z - y).abs() <= 1e-4 * scale,
            "{x} {y} {z}"
        );
    }
}

/// The loss of a [`BatchMask`] with random extra positives and exclusions, and its gradients
/// with respect to every query and passage embedding: the f64 reference and its central
/// finite differences. Rows with several positives take the multi-positive path.
fn check_masked_against_reference(
    (n, m, dim): (usize, usize, usize),
    values: &[f64],
    mask: &BatchMask,
    temperature: f64,
    symmetric: bool,
) -> Result<(), TestCaseError> {
    let (qv, dv) = values[..(n + m) * dim].split_at(n * dim);
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let (q32, d32) = (f32s(qv), f32s(dv));
    let q = t2(&q32, n, dim).require_grad();
    let d = t2(&d32, m, dim).require_grad();
    let loss = info_nce_masked(q.clone(), d.clone(), temperature as f32, symmetric, mask);
    let got = value(loss.clone());
    let grads = loss.backward();
    let gq: Vec<f32> = q.grad(&grads).unwrap().into_data().to_vec().unwrap();
    let gd: Vec<f32> = d.grad(&grads).unwrap().into_data().to_vec().unwrap();
    // The reference on the f32-rounded embeddings, in f64.
    let (q64, d64): (Vec<f64>, Vec<f64>) = (
        q32.iter().map(|&x| x as f64).collect(),
        d32.iter().map(|&x| x as f64).collect(),
    );
    let r =
        |q: &[f64], d: &[f64]| info_nce_reference_masked(q, d, dim, temperature, symmetric, mask);
    let want = r(&q64, &d64);
    prop_assert!(
        (got - want).abs() <= 1e-5 * want.abs().max(1.0),
        "loss {} vs {}",
        got,
        want
    );
    let h = 1e-6;
    let mut fd = Vec::new();
    for k in 0..q64.len() {
        let (mut a, mut b) = (q64.clone(), q64.clone());
        a[k] += h;
        b[k] -= h;
        fd.push((r(&a, &d64) - r(&b, &d64)) / (2.0 * h));
    }
    for k in 0..d64.len() {
        let (mut a, mut b) = (d64.clone(), d64.clone());
        a[k] += h;
        b[k] -= h;
        fd.push((r(&q64, &a) - r(&q64, &b)) / (2.0 * h));
    }
    let scale = fd.iter().fold(1e-3f64, |s, x| s.max(x.abs()));
    for (k, (g, f)) in gq.iter().chain(&gd).zip(&fd).enumerate() {
        prop_assert!(
            (*g as f64 - f).abs() <= 1e-3 * scale,
            "gradient {}: {} vs finite differences {} (scale {})",
            k,
            g,
            f,
            scale
        );
    }
    Ok(())
}

fn cells(rows: usize, cols: usize) -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((0..rows, 0..cols), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn masked_info_nce_matches_the_reference_forward_and_backward(
        (n, extra) in (2usize..5, 0usize..3),
        values in prop::collection::vec(-1.0f64..1.0, 12 * 4),
        positives in cells(5, 5),
        excluded in cells(5, 8),
        temperature in prop_oneof![Just(0.1f64), Just(0.5), Just(1.0)],
        symmetric in any::<bool>(),
    ) {
        // Out-of-range, diagonal and overlapping cells are in the mix: both sides ignore them
        // the same way.
        let mask = BatchMask { positives, excluded };
        check_masked_against_reference((n, n + extra, 4), &values, &mask, temperature, symmetric)?;
    }
}

/// A query with two positives: the multi-positive loss by hand. q0 = (1, 0) with positives
/// d0 = (1, 0), d1 = (0, 1) and the negative d2 = (-1, 0) at τ = 1: scores (1, 0, -1), so
/// L0 = ½ [ln(e^1 + e^-1) - 1 + ln(e^0 + e^-1) - 0]; q1 = (0, 1) with positive d1 (and d0):
/// scores (0, 1, 0), L1 = ½ [ln(e^0 + e^0) - 0 + ln(e^1 + e^0) - 1].
#[test]
fn multi_positive_info_nce_matches_a_hand_computed_example() {
    let q = t2(&[1.0, 0.0, 0.0, 1.0], 2, 2);
    let d = t2(&[1.0, 0.0, 0.0, 1.0, -1.0, 0.0], 3, 2);
    let mask = BatchMask {
        positives: vec![(0, 1), (1, 0)],
        excluded: vec![],
    };
    let e = std::f64::consts::E;
    let l0 = 0.5 * ((e + 1.0 / e).ln() - 1.0 + (1.0 + 1.0 / e).ln());
    let l1 = 0.5 * (2f64.ln() + (e + 1.0).ln() - 1.0);
    let got = value(info_nce_masked(q, d, 1.0, false, &mask));
    assert!((got - (l0 + l1) / 2.0).abs() < 1e-6, "{got}");
}

#[derive(Module, Debug)]
struct Toy<B: Backend> {
    w: Param<Tensor<B, 1>>,
    frozen: Param<Tensor<B, 1>>,
}

fn toy(w: &[f32]) -> Toy<Tb> {
    let device = Default::default();
    let t = |v: &[f32]| Tensor::<Tb, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device);
    Toy {
        w: Param::initialized(ParamId::from(1), t(w).require_grad()),
        frozen: Param::initialized(ParamId::from(2), t(&[3.0, 4.0])),
    }
}

/// Gradients of `sum(w * c) + sum(frozen)`: `c` for `w`, none for the frozen parameter.
fn grads(m: &Toy<Tb>, c: &[f32]) -> GradientsParams {
    let device = Default::default();
    let c = Tensor::<Tb, 1>::from_data(TensorData::new(c.to_vec(), [c.len()]), &device);
    let loss = (m.w.val() * c).sum() + m.frozen.val().sum();
    GradientsParams::from_grads(loss.backward(), m)
}

fn read(p: &Param<Tensor<Tb, 1>>) -> Vec<f32> {
    p.val().into_data().to_vec::<f32>().unwrap()
}

#[test]
fn adamw_follows_pytorch() {
    // torch.optim.AdamW(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01), two steps
    // from p = (1, -2, 0.5) with gradients (0.5, -1, 0) then (0.25, 2, 0):
    //   p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    //   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
    // step 1: (0.899000002, -1.898000001, 0.4995)
    // step 2: (0.8048830404754623, -1.9327123534710748, 0.4990005)
    // The third weight has a zero gradient: only the decoupled decay moves it.
    let mut m = toy(&[1.0, -2.0, 0.5]);
    let mut opt = AdamWOptimizer::<Tb, Toy<Tb>>::new(&AdamWParams::default());
    let g = grads(&m, &[0.5, -1.0, 0.0]);
    m = opt.step(0.1, m, g);
    let want1 = [0.899000002f64, -1.898000001, 0.4995];
    for (a, b) in read(&m.w).iter().zip(want1) {
        assert!((*a as f64 - b).abs() < 2e-6, "step 1: {a} vs {b}");
    }
    let g = grads(&m, &[0.25, 2.0, 0.0]);
    m = opt.step(0.1, m, g);
    let want2 = [0.8048830404754623f64, -1.9327123534710748, 0.4990005];
    for (a, b) in read(&m.w).iter().zip(want2) {
        assert!((*a as f64 - b).abs() < 2e-6, "step 2: {a} vs {b}");
    }
    // Without a gradient, no update and no decay.
    assert_eq!(read(&m.frozen), [3.0, 4.0]);

    // The state round-trips exactly: a restored optimiser takes the same third step.
    let bytes = opt.to_bytes().unwrap();
    let restored = AdamWOptimizer::<Tb, Toy<Tb>>::new(&AdamWParams::default())
        .load_bytes(bytes, &Default::default())
        .unwrap();
    let (mut a, mut b) = (opt, restored);
    let ma = a.step(0.05, toy(&read(&m.w)), grads(&m, &[1.0, 1.0, 1.0]));
    let mb = b.step(0.05, toy(&read(&m.w)), grads(&m, &[1.0, 1.0, 1.0]));
    assert_eq!(read(&ma.w), read(&mb.w));
}

#[test]
fn linear_schedule_values() {
    let s = LinearSchedule {
        peak: 1.0,
        warmup: 2,
        total: 10,
    };
    let lrs: Vec<f64> = (0..12).map(|i| s.lr(i)).collect();
    let want = [
        0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0, 0.0,
    ];
    for (a, b) in lrs.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{lrs:?}");
    }
    let flat = LinearSchedule {
        peak: 3e-5,
        warmup: 0,
        total: 4,
    };
    assert_eq!(flat.lr(0), 3e-5);
    assert!((flat.lr(2) - 1.5e-5).abs() < 1e-18);
}

#[test]
fn clipping_uses_the_global_norm() {
    let m = toy(&[0.0, 0.0]);
    // Gradient (3, 4): norm 5.
    let mut g = grads(&m, &[3.0, 4.0]);
    assert!((grad_norm::<Tb, _>(&m, &g) - 5.0).abs() < 1e-6);
    let n = clip_grad_norm::<Tb, _>(&m, &mut g, 1.0);
    assert!((n - 5.0).abs() < 1e-6);
    let clipped: Vec<f32> = g
        .get::<burn::backend::Flex, 1>(m.w.id)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    let coef = 1.0 / (5.0 + 1e-6);
    assert!((clipped[0] - 3.0 * coef).abs() < 1e-6 && (clipped[1] - 4.0 * coef).abs() < 1e-6);
    // Below the threshold nothing changes.
    let mut g = grads(&m, &[0.3, 0.4]);
    clip_grad_norm::<Tb, _>(&m, &mut g, 1.0);
    let same: Vec<f32> = g
        .get::<burn::backend::Flex, 1>(m.w.id)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    assert_eq!(same, [0.3, 0.4]);
}

#[test]
fn gradient_caching_gives_the_full_batch_gradient() {
    let model = common::tiny_model(Arch::Bert, Pooling::Mean, 5);
    let device = Default::default();
    let enc = TrainableEncoder::<Tb>::from_weights(&model.config, &model.weights, &device).unwrap();
    let q = common::random_ids(6, 3, 10, 8);
    let d = common::random_ids(9, 4, 20, 9); // 6 positives and 3 hard negatives
    let cfg = LossConfig {
        temperature: 0.05,
        symmetric: true,
    };
    let (l1, g1) = loss_and_grads(&enc, &q, &d, &BatchMask::default(), cfg, 1, &device).unwrap();
    let (l3, g3) = loss_and_grads(&enc, &q, &d, &BatchMask::default(), cfg, 3, &device).unwrap();
    assert!((l1 - l3).abs() < 1e-5 * l1.abs().max(1.0), "{l1} vs {l3}");
    let n1 = grad_norm::<Tb, _>(&enc, &g1);
    let n3 = grad_norm::<Tb, _>(&enc, &g3);
    assert!(n1 > 0.0 && (n1 - n3).abs() < 1e-4 * n1, "{n1} vs {n3}");
    // Parameter by parameter: the query projection of the first layer.
    let id = enc.layers[0].q.w.id;
    let a: Vec<f32> = g1
        .get::<burn::backend::Flex, 2>(id)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    let b: Vec<f32> = g3
        .get::<burn::backend::Flex, 2>(id)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-4 * scale, "{x} vs {y}");
    }
    // Frozen word embeddings get no gradient.
    let frozen = enc.clone().freeze_word_embeddings(true);
    let (_, gf) = loss_and_grads(&frozen, &q, &d, &BatchMask::default(), cfg, 2, &device).unwrap();
    assert!(gf.get::<burn::backend::Flex, 2>(frozen.word.id).is_none());
    assert!(g1.get::<burn::backend::Flex, 2>(enc.word.id).is_some());
    // Frozen lower layers get none either; the layers above and the loss are unchanged.
    let lower = enc.clone().freeze_lower_layers(1).unwrap();
    let (ll, gl) = loss_and_grads(&lower, &q, &d, &BatchMask::default(), cfg, 1, &device).unwrap();
    assert_eq!(ll, l1);
    assert!(gl
        .get::<burn::backend::Flex, 2>(lower.layers[0].q.w.id)
        .is_none());
    assert!(gl
        .get::<burn::backend::Flex, 1>(lower.layers[0].oln.w.id)
        .is_none());
    let above: Vec<f32> = gl
        .get::<burn::backend::Flex, 2>(lower.layers[1].q.w.id)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    let full: Vec<f32> = g1
        .get::<burn::backend::Flex, 2>(enc.layers[1].q.w.id)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    assert_eq!(above, full);
    assert!(enc.clone().freeze_lower_layers(99).is_err());
}

#[test]
fn length_buckets_cover_every_sequence_once() {
    let lens = [40, 3, 38, 5, 4, 39, 12, 3, 41, 6];
    let b = length_buckets(&lens, 16);
    let mut all: Vec<usize> = b.concat();
    all.sort();
    assert_eq!(all, (0..lens.len()).collect::<Vec<_>>());
    // The long ones and the short ones are not padded together.
    assert!(b.len() >= 2, "{b:?}");
    assert!(b[0].iter().all(|&i| lens[i] >= 38), "{b:?}");
    // A huge overhead: one group; none: no padding at all.
    assert_eq!(length_buckets(&lens, 10_000).len(), 1);
    for g in length_buckets(&lens, 0) {
        assert!(g.iter().all(|&i| lens[i] == lens[g[0]]));
    }
    assert!(length_buckets(&[], 64).is_empty());
}
