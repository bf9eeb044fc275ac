//! Evaluation protocols for LAReQA-format benchmarks: ours (LAReQA's) and XTREME-R's.
//!
//! | | [`Protocol::Lareqa`] (default) | [`Protocol::XtremeR`] |
//! |---|---|---|
//! | candidate text | the sentence ([`CandidateMode::Sentence`]; `--candidates` changes it) | the sentence followed by its paragraph, one text ([`CandidateMode::SentenceContext`]) |
//! | similarity | cosine (embeddings L2-normalised) | dot product of the embeddings as given |
//! | cut-off | none: AP over the full ranking | mAP@20 ([`average_precision_at_k`], denominator `min(R, 20)`) |
//! | settings | Mo., Cr., Mul. | the same ranks, plus mAP@20 per setting; XTREME-R's own figure is the Mul. micro mean |
//!
//! XTREME-R's definition is google-research/xtreme, `third_party/evaluate_retrieval.py`
//! (task `lareqa`: candidates encoded as `(sentence + context).replace("\n", "")`, scored by
//! `utils_lareqa.mean_avg_prec_at_k(question_set, candidate_set, k=20)`) and
//! `third_party/utils_lareqa.py` (`mean_avg_prec_at_k`: `question · candidateᵀ` with no
//! normalisation, over the whole multilingual pool, mean over all questions;
//! `average_precision_at_k`). docs/method.md §4.4 lists what still differs (query set, token
//! limits, ties).
//!
//! [`average_precision_at_k`]: crate::metrics::average_precision_at_k

use serde::{Deserialize, Serialize};

use crate::encoder::CandidateMode;
use crate::error::{EvalError, Result};

/// How query-candidate scores are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Similarity {
    /// Cosine similarity: the dot product of L2-normalised embeddings.
    #[default]
    Cosine,
    /// The dot product of the embeddings as given (no normalisation).
    Dot,
}

/// Which protocol a LAReQA evaluation follows (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Ours, LAReQA's: cosine similarity, AP over the full ranking.
    #[default]
    Lareqa,
    /// XTREME-R's (arXiv 2104.07412): dot product without normalisation, mAP@20, candidates
    /// as sentence + paragraph.
    XtremeR,
}

impl Protocol {
    /// XTREME-R's cut-off.
    pub const XTREME_R_K: usize = 20;

    /// `"lareqa"` or `"xtreme-r"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Lareqa => "lareqa",
            Protocol::XtremeR => "xtreme-r",
        }
    }

    /// The similarity the protocol ranks by.
    pub fn similarity(self) -> Similarity {
        match self {
            Protocol::Lareqa => Similarity::Cosine,
            Protocol::XtremeR => Similarity::Dot,
        }
    }

    /// The candidate text the protocol prescribes.
    pub fn default_candidates(self) -> CandidateMode {
        match self {
            Protocol::Lareqa => CandidateMode::Sentence,
            Protocol::XtremeR => CandidateMode::SentenceContext,
        }
    }

    /// The mAP cut-off the protocol adds to ours (`None`: none).
    pub fn cutoff(self) -> Option<usize> {
        match self {
            Protocol::Lareqa => None,
            Protocol::XtremeR => Some(Self::XTREME_R_K),
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "lareqa" => Ok(Protocol::Lareqa),
            "xtreme-r" => Ok(Protocol::XtremeR),
            _ => Err(EvalError::InvalidArgument(format!(
                "protocol `{s}` (expected `lareqa` or `xtreme-r`)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [Protocol::Lareqa, Protocol::XtremeR] {
            assert_eq!(p.as_str().parse::<Protocol>().unwrap(), p);
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::Value::from(p.as_str())
            );
        }
        assert!("xtreme".parse::<Protocol>().is_err());
        assert_eq!(Protocol::default(), Protocol::Lareqa);
        assert_eq!(Protocol::XtremeR.cutoff(), Some(20));
        assert_eq!(Protocol::Lareqa.similarity(), Similarity::Cosine);
    }
}
