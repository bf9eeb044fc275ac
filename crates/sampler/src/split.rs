//! Held-out groups: the validation split of a list of corpora.

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::corpus::Corpus;
use crate::error::{Result, SamplerError};
use crate::rng::partial_shuffle;

/// Splits `n` held-out groups off `corpora`: returns the training corpora (without them) and
/// the validation corpora (one per corpus that gave groups, named `NAME:val`).
///
/// Each corpus gives groups in proportion to its size (largest-remainder apportionment); which
/// ones is drawn at random from `seed` and the corpus' position in the list. In a corpus with
/// topics ([`Corpus::topic`]: LAReQA corpora) whole topics are held out,
/// drawn at random until they hold the corpus' share of groups, so that no held-out question
/// shares its paragraph with a training one (the share may then be exceeded by the last
/// topic's other groups). Topics survive the split. Corpora that give
/// groups are rebuilt in memory (a streamed corpus' held-in groups too); the others are
/// returned as they are. `n == 0` returns the corpora unchanged and no validation corpus.
///
/// Errors ([`SamplerError::InvalidArgument`]): `n` is not below the total number of groups,
/// or a corpus would give all its groups.
pub fn split_validation(
    corpora: Vec<Corpus>,
    n: usize,
    seed: u64,
) -> Result<(Vec<Corpus>, Vec<Corpus>)> {
    if n == 0 {
        return Ok((corpora, Vec::new()));
    }
    let total: usize = corpora.iter().map(Corpus::len).sum();
    if n >= total {
        return Err(SamplerError::InvalidArgument(format!(
            "cannot hold out {n} validation groups: the training data has only {total} groups"
        )));
    }
    let alloc = apportion(&corpora, n, total);
    let mut train = Vec::with_capacity(corpora.len());
    let mut val = Vec::new();
    for (ci, (corpus, k)) in corpora.into_iter().zip(alloc).enumerate() {
        if k == 0 {
            train.push(corpus);
            continue;
        }
        if k >= corpus.len() {
            return Err(SamplerError::InvalidArgument(format!(
                "holding out {n} validation groups would hold out all of corpus `{}`",
                corpus.name()
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7661_6c69_6400_0000 ^ ci as u64);
        let mut held = vec![false; corpus.len()];
        let has_topics = corpus.topic(0).is_some();
        if has_topics {
            let mut by_topic: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
            for g in 0..corpus.len() {
                by_topic
                    .entry(corpus.topic(g).unwrap_or(u64::MAX))
                    .or_default()
                    .push(g);
            }
            let mut topics: Vec<Vec<usize>> = by_topic.into_values().collect();
            let nt = topics.len();
            partial_shuffle(&mut rng, &mut topics, nt);
            let mut taken = 0;
            for t in &topics {
                if taken >= k {
                    break;
                }
                for &g in t {
                    held[g] = true;
                }
                taken += t.len();
            }
            if taken >= corpus.len() {
                return Err(SamplerError::InvalidArgument(format!(
                    "holding out {n} validation groups (whole paragraphs) would hold out all of \
                     corpus `{}`",
                    corpus.name()
                )));
            }
        } else {
            let mut idx: Vec<usize> = (0..corpus.len()).collect();
            partial_shuffle(&mut rng, &mut idx, k);
            for &g in &idx[..k] {
                held[g] = true;
            }
        }
        let (mut tr, mut va) = (Vec::new(), Vec::new());
        for (g, &is_val) in held.iter().enumerate() {
            let group = corpus.group(g)?;
            if is_val {
                va.push(group);
            } else {
                tr.push(group);
            }
        }
        let name = corpus.name().to_string();
        let topics: std::collections::HashMap<String, Option<u64>> = (0..corpus.len())
            .map(|g| (corpus.group_id(g).to_string(), corpus.topic(g)))
            .collect();
        let context = corpus.has_context_negatives();
        let rebuilt = |name: String, groups| -> Result<Corpus> {
            let c = Corpus::from_groups(name, groups)?.with_context_negatives(context);
            Ok(if has_topics {
                c.with_topics(|id| topics.get(id).copied().flatten())
            } else {
                c
            })
        };
        train.push(rebuilt(name.clone(), tr)?);
        val.push(rebuilt(format!("{name}:val"), va)?);
    }
    Ok((train, val))
}

/// `n` groups shared among the corpora in proportion to their sizes (largest remainder, ties
/// to the earlier corpus); `total` is the sum of their sizes.
fn apportion(corpora: &[Corpus], n: usize, total: usize) -> Vec<usize> {
    let mut alloc: Vec<usize> = corpora.iter().map(|c| n * c.len() / total).collect();
    let mut order: Vec<usize> = (0..corpora.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse((n * corpora[i].len()) % total), i));
    let left = n - alloc.iter().sum::<usize>();
    for &i in order.iter().take(left) {
        alloc[i] += 1;
    }
    alloc
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::corpus::{Example, Group};

    fn corpus(name: &str, groups: usize) -> Corpus {
        let groups = (0..groups)
            .map(|g| Group {
                id: format!("{name}{g}"),
                versions: ["de", "en"]
                    .iter()
                    .map(|l| {
                        let ex = Example {
                            query: format!("q {g} {l}"),
                            positive: format!("p {g} {l}"),
                            positive_context: None,
                            negatives: vec![format!("n {g} {l}")],
                        };
                        (l.to_string(), ex)
                    })
                    .collect::<BTreeMap<_, _>>(),
            })
            .collect();
        Corpus::from_groups(name, groups).unwrap()
    }

    fn ids(c: &Corpus) -> Vec<String> {
        (0..c.len()).map(|g| c.group_id(g).to_string()).collect()
    }

    #[test]
    fn holds_out_in_proportion_and_loses_nothing() {
        let (train, val) = split_validation(vec![corpus("a", 30), corpus("b", 10)], 8, 7).unwrap();
        assert_eq!(train.iter().map(Corpus::len).collect::<Vec<_>>(), [24, 8]);
        assert_eq!(val.iter().map(Corpus::len).collect::<Vec<_>>(), [6, 2]);
        assert_eq!(val[0].name(), "a:val");
        for (t, v) in train.iter().zip(&val) {
            let mut all = ids(t);
            all.extend(ids(v));
            all.sort();
            let mut want = ids(&corpus(t.name(), t.len() + v.len()));
            want.sort();
            assert_eq!(all, want);
        }
        // The texts travel with their groups; the same seed draws the same split.
        let g = val[0].group(0).unwrap();
        let n: usize = g.id[1..].parse().unwrap();
        assert_eq!(g.versions["en"].query, format!("q {n} en"));
        let (_, again) = split_validation(vec![corpus("a", 30), corpus("b", 10)], 8, 7).unwrap();
        assert_eq!(ids(&again[0]), ids(&val[0]));
        let (_, other) = split_validation(vec![corpus("a", 30), corpus("b", 10)], 8, 8).unwrap();
        assert_ne!(ids(&other[0]), ids(&val[0]));
    }

    #[test]
    fn zero_keeps_the_corpora_and_too_many_is_an_error() {
        let (train, val) = split_validation(vec![corpus("a", 3)], 0, 1).unwrap();
        assert_eq!((train.len(), train[0].len(), val.len()), (1, 3, 0));
        for n in [3, 4] {
            let e = split_validation(vec![corpus("a", 3)], n, 1).unwrap_err();
            assert!(matches!(e, SamplerError::InvalidArgument(_)), "{e}");
        }
        let e = split_validation(vec![corpus("a", 1), corpus("b", 9)], 9, 1).unwrap_err();
        assert!(e.to_string().contains("all of corpus `a`"), "{e}");
    }
}
