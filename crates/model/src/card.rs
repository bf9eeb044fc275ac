//! The model card (`README.md`) written into every model directory: what the model is, how
//! to load it with sentence-transformers and transformers, how it was trained and how it
//! scored.

use crate::config::{Arch, Pooling};
use crate::model::Model;

/// What a model card says beyond the model's own configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelCard {
    /// The model this one starts from (a Hugging Face id where there is one).
    pub base_model: Option<String>,
    /// Training facts, in order: (`"training data"`, `"MLQA-R"`), (`"sampler"`, ...), ...
    pub training: Vec<(String, String)>,
    /// Evaluation results, as Markdown (e.g. `multiret eval`'s report).
    pub evaluation: Option<String>,
}

impl ModelCard {
    /// A card naming only the base model.
    pub fn base(base_model: impl Into<String>) -> Self {
        ModelCard {
            base_model: Some(base_model.into()),
            ..ModelCard::default()
        }
    }

    /// The card of `model` as Markdown with Hugging Face front matter.
    pub fn render(&self, model: &Model) -> String {
        let c = &model.config;
        let s = &model.settings;
        let mut out = String::from("---\nlibrary_name: sentence-transformers\n");
        out.push_str("pipeline_tag: sentence-similarity\n");
        out.push_str("tags:\n- sentence-transformers\n- feature-extraction\n- sentence-similarity\n- multiret\n");
        if let Some(b) = &self.base_model {
            out.push_str(&format!("base_model: {}\n", yaml_str(b)));
        }
        out.push_str("---\n\n");
        let title = match &self.base_model {
            Some(b) if !self.training.is_empty() => format!("{b}, fine-tuned with multiret"),
            Some(b) => b.clone(),
            None => "multiret sentence encoder".to_string(),
        };
        out.push_str(&format!("# {title}\n\n"));
        let arch = match c.arch {
            Arch::Bert => "BERT",
            Arch::XlmRoberta => "XLM-RoBERTa",
        };
        let pooling = match s.pooling {
            Pooling::Mean => "mean",
            Pooling::Cls => "CLS token",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "sum / sqrt(length)",
            Pooling::WeightedMean => "position-weighted mean",
            Pooling::LastToken => "last token",
        };
        out.push_str(&format!(
            "A {arch} sentence encoder: {} layers, hidden size {}, {} heads, {} pooling{}, {}, \
             output dimension {}, at most {} tokens per input.\n\n",
            c.layers,
            c.hidden,
            c.heads,
            pooling,
            match model.head.dense.len() {
                0 => String::new(),
                n => format!(", then {n} Dense layer(s)"),
            },
            if s.normalize {
                "L2-normalised"
            } else {
                "not normalised"
            },
            model.dim(),
            model.max_tokens(),
        ));
        let q = &s.prefixes.query;
        let p = &s.prefixes.passage;
        if !(q.is_empty() && p.is_empty()) {
            out.push_str(&format!(
                "Inputs carry prompts: queries `{q}`, passages `{p}` (sentence-transformers \
                 `prompt_name=\"query\"` / `\"passage\"`).\n\n"
            ));
        }
        out.push_str(
            "## Usage\n\n```python\nfrom sentence_transformers import SentenceTransformer\n\n",
        );
        out.push_str("model = SentenceTransformer(\"PATH\")\n");
        out.push_str("q = model.encode([\"Where is the Eiffel tower?\"], prompt_name=\"query\")\n");
        out.push_str(
            "d = model.encode([\"The Eiffel tower is in Paris.\"], prompt_name=\"passage\")\n",
        );
        out.push_str("print(model.similarity(q, d))\n```\n\n");
        out.push_str("With multiret: `multiret embed --model PATH --kind query --input q.txt --output q.npy`.\n\n");
        if !self.training.is_empty() {
            out.push_str("## Training\n\n| | |\n|---|---|\n");
            for (k, v) in &self.training {
                out.push_str(&format!("| {} | {} |\n", md_cell(k), md_cell(v)));
            }
            out.push('\n');
        }
        if let Some(e) = &self.evaluation {
            out.push_str("## Evaluation\n\n");
            // The report's own headings go under this section's.
            for line in e.trim_end().lines() {
                if line.starts_with('#') {
                    out.push_str("##");
                }
                out.push_str(line);
                out.push('\n');
            }
            out.push('\n');
        }
        out.push_str("Written by [multiret](https://example.invalid/multiret).\n");
        out
    }
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
