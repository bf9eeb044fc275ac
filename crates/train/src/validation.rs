//! Model selection by retrieval quality: the scores a validation hook returns on the held-out
//! groups, and [`Select`], which of them (or the validation loss) picks the kept weights.

use serde::{Deserialize, Serialize};

use multiret_model::Model;

/// Retrieval scores of the current weights on the held-out groups, scored as the benchmark is
/// (the hook decides how; `multiret train` uses `multiret eval`'s LAReQA scoring on the held-out
/// questions and the sentences of their paragraphs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrievalScores {
    /// Monolingual mAP (macro over languages).
    #[serde(rename = "val_mo")]
    pub mo: f64,
    /// Cross-lingual mAP (macro over language pairs).
    #[serde(rename = "val_cr")]
    pub cr: f64,
    /// Multilingual mAP (macro over query languages).
    #[serde(rename = "val_mul")]
    pub mul: f64,
    /// The multilingual setting's rank distance (macro), when defined.
    #[serde(rename = "val_rank_distance")]
    pub rank_distance: Option<f64>,
}

/// The retrieval validation hook: the current weights as a model, and the ids of the
/// held-out groups; `Ok(None)` when the training data is not a kind it can score (then only
/// the loss validates). Called on every validation step.
pub type RetrievalHook<'a> =
    dyn FnMut(Model, &[String]) -> std::result::Result<Option<RetrievalScores>, String> + Send + 'a;

/// What picks the kept weights among the validated steps (`--select`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Select {
    /// The lowest validation loss.
    #[default]
    Loss,
    /// The highest monolingual mAP.
    Mo,
    /// The highest cross-lingual mAP.
    Cr,
    /// The highest multilingual mAP.
    Mul,
    /// The highest mean of the three.
    Mean,
}

impl Select {
    /// Every choice, in command-line order.
    pub const ALL: [Select; 5] = [
        Select::Loss,
        Select::Mo,
        Select::Cr,
        Select::Mul,
        Select::Mean,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Select::Loss => "loss",
            Select::Mo => "mo",
            Select::Cr => "cr",
            Select::Mul => "mul",
            Select::Mean => "mean",
        }
    }

    /// The choice named `name`.
    pub fn from_name(name: &str) -> Option<Select> {
        Select::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The score of a validation, higher is better: minus the loss, or the chosen retrieval
    /// metric (`None` when it needs retrieval scores and there are none).
    pub fn score(self, loss: f64, r: Option<&RetrievalScores>) -> Option<f64> {
        match self {
            Select::Loss => Some(-loss),
            Select::Mo => r.map(|r| r.mo),
            Select::Cr => r.map(|r| r.cr),
            Select::Mul => r.map(|r| r.mul),
            Select::Mean => r.map(|r| (r.mo + r.cr + r.mul) / 3.0),
        }
    }
}
