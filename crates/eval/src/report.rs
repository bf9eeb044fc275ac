//! Reports: JSON for machines, Markdown tables for people (as a paper prints them), an SVG
//! heatmap of the Cr. mAP matrix, and a short summary for the terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::center::CenteringInfo;
use crate::encoder::{CandidateMode, Prefixes};
use crate::error::{EvalError, Result};
use crate::lareqa::LareqaDataset;
use crate::protocol::Protocol;
use crate::score::{pair_key, BeirMetrics, LareqaSettings, XtremeRSettings};

/// Wall-clock seconds of each phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timing {
    /// Loading and validating the dataset.
    pub load_s: f64,
    /// Encoding (or reading cached / precomputed embeddings).
    pub encode_s: f64,
    /// Score matrix and all metrics.
    pub score_s: f64,
    /// Everything.
    pub total_s: f64,
}

/// Question and candidate counts of one language.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LangCounts {
    /// Questions read.
    pub questions_read: usize,
    /// Questions evaluated.
    pub questions: usize,
    /// Questions skipped.
    pub skipped: usize,
    /// Skipped questions by reason.
    pub skipped_by_reason: BTreeMap<String, usize>,
    /// Candidate sentences.
    pub candidates: usize,
}

/// Counts of a LAReQA evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LareqaCounts {
    /// Questions evaluated (queries), all languages.
    pub questions: usize,
    /// Candidate sentences, all languages.
    pub candidates: usize,
    /// Questions skipped (no gold sentence), all languages.
    pub skipped: usize,
    /// Questions read, all languages (`questions + skipped`).
    pub questions_read: usize,
    /// Skipped questions by reason.
    pub skipped_by_reason: BTreeMap<String, usize>,
    /// Per language.
    pub per_lang: BTreeMap<String, LangCounts>,
    /// Sentences whose `sentences` entry differs from the context sliced by their
    /// `sentence_breaks` (the slice is what is encoded).
    pub sentence_text_mismatches: usize,
    /// Evaluated questions whose answer text differs from the context at `answer_start`.
    pub answer_text_mismatches: usize,
}

impl LareqaCounts {
    /// The counts of a dataset.
    pub fn of(ds: &LareqaDataset) -> Self {
        let reasons = |m: &BTreeMap<crate::lareqa::SkipReason, usize>| {
            m.iter().map(|(r, &n)| (r.key().to_string(), n)).collect()
        };
        Self {
            questions: ds.num_questions(),
            candidates: ds.num_candidates(),
            skipped: ds.num_skipped(),
            questions_read: ds.num_questions_read(),
            skipped_by_reason: reasons(&ds.skipped_by_reason()),
            per_lang: ds
                .langs
                .iter()
                .map(|l| {
                    (
                        l.lang.clone(),
                        LangCounts {
                            questions_read: l.questions_read,
                            questions: l.questions.len(),
                            skipped: l.skipped_total(),
                            skipped_by_reason: reasons(&l.skipped),
                            candidates: l.candidates.len(),
                        },
                    )
                })
                .collect(),
            sentence_text_mismatches: ds.langs.iter().map(|l| l.sentence_text_mismatches).sum(),
            answer_text_mismatches: ds.langs.iter().map(|l| l.answer_text_mismatches).sum(),
        }
    }
}

/// The report of a LAReQA evaluation (`report.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LareqaReport {
    /// `"lareqa"`.
    pub kind: String,
    /// The dataset name.
    pub dataset: String,
    /// Where it was read from.
    pub dataset_source: String,
    /// The model (encoder name, or the label of precomputed embeddings).
    pub model: String,
    /// Where the embeddings came from: `encoded`, `cache` or `files`.
    pub embeddings: String,
    /// Embedding dimension.
    pub embedding_dim: usize,
    /// Candidate encoding.
    pub candidates_mode: CandidateMode,
    /// The scoring protocol: `lareqa` (ours: cosine) or `xtreme-r` (dot product, plus
    /// [`LareqaReport::xtreme_r`]).
    pub protocol: Protocol,
    /// The prefixes used.
    pub prefixes: Prefixes,
    /// Language codes, sorted.
    pub languages: Vec<String>,
    /// Counts.
    pub counts: LareqaCounts,
    /// Mo., Cr., Mul.: our metrics (full-ranking mAP, R@k, rank distance), on the protocol's
    /// similarity.
    pub settings: LareqaSettings,
    /// Under `xtreme-r`: mAP@20 as XTREME-R defines it, per setting (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xtreme_r: Option<XtremeRSettings>,
    /// Language-mean centring (`--center`), when the embeddings were centred before scoring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub centering: Option<CenteringInfo>,
    /// What went wrong without stopping the evaluation (absent when nothing did).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Seconds per phase.
    pub timing: Timing,
}

/// Counts of a BEIR-style evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BeirCounts {
    /// Queries evaluated (with a positive judgement).
    pub queries: usize,
    /// Queries in `queries.jsonl`.
    pub queries_read: usize,
    /// Documents.
    pub candidates: usize,
    /// Judgements in the qrels file.
    pub judgements: usize,
    /// Positive judgements of documents missing from the corpus.
    pub missing_docs: usize,
    /// Qrels lines of queries missing from `queries.jsonl`.
    pub unknown_queries: usize,
}

/// The report of a BEIR-style evaluation (`report.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BeirReport {
    /// `"beir"`.
    pub kind: String,
    /// The dataset name.
    pub dataset: String,
    /// Where it was read from.
    pub dataset_source: String,
    /// The model.
    pub model: String,
    /// Where the embeddings came from: `encoded`, `cache` or `files`.
    pub embeddings: String,
    /// Embedding dimension.
    pub embedding_dim: usize,
    /// The prefixes used.
    pub prefixes: Prefixes,
    /// Counts.
    pub counts: BeirCounts,
    /// nDCG@10, Recall@100.
    pub metrics: BeirMetrics,
    /// What went wrong without stopping the evaluation (absent when nothing did).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Seconds per phase.
    pub timing: Timing,
}

/// A report of either kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Report {
    /// LAReQA (Mo., Cr., Mul.).
    Lareqa(Box<LareqaReport>),
    /// BEIR-style (nDCG@10, Recall@100).
    Beir(Box<BeirReport>),
}

fn f3(x: f64) -> String {
    format!("{x:.3}")
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Report {
    /// The timing, to fill in or adjust.
    pub fn timing_mut(&mut self) -> &mut Timing {
        match self {
            Report::Lareqa(r) => &mut r.timing,
            Report::Beir(r) => &mut r.timing,
        }
    }

    /// What went wrong without stopping the evaluation (an unusable cache entry, a cache that
    /// could not be written), for the caller to show.
    pub fn warnings(&self) -> &[String] {
        match self {
            Report::Lareqa(r) => &r.warnings,
            Report::Beir(r) => &r.warnings,
        }
    }

    /// The timing.
    pub fn timing(&self) -> &Timing {
        match self {
            Report::Lareqa(r) => &r.timing,
            Report::Beir(r) => &r.timing,
        }
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| EvalError::InvalidArgument(format!("report serialisation: {e}")))
    }

    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        match self {
            Report::Lareqa(r) => {
                let s = &r.settings;
                let rd = s
                    .multi
                    .rank_distance_macro
                    .map_or("n/a".to_string(), |d| format!("{d:.1}"));
                let xtreme = r.xtreme_r.as_ref().map_or(String::new(), |x| {
                    format!(
                        "\nXTREME-R (dot product, {}): Mul. mAP@{} {} (macro {}) | Mo. mAP@{} {} | Cr. mAP@{} {}",
                        r.candidates_mode.as_str(),
                        x.k,
                        f3(x.multi.map_at_k_micro),
                        f3(x.multi.map_at_k_macro),
                        x.k,
                        f3(x.mono.map_at_k_macro),
                        x.k,
                        f3(x.cross.map_at_k_macro),
                    )
                });
                format!(
                    "{} | {} | {} queries ({} skipped), {} candidates ({}), {} languages\n\
                     Mo. mAP {} (R@1 {}) | Cr. mAP {} (R@1 {}, {} pairs) | Mul. mAP {} (micro {}, R@10 {}) | rank distance {}{}\n\
                     time: load {:.2} s, embeddings {:.2} s ({}), scoring {:.2} s",
                    r.dataset,
                    r.model,
                    r.counts.questions,
                    r.counts.skipped,
                    r.counts.candidates,
                    r.candidates_mode.as_str(),
                    r.languages.len(),
                    f3(s.mono.map_macro),
                    f3(s.mono.r1_macro),
                    f3(s.cross.map_macro),
                    f3(s.cross.r1_macro),
                    s.cross.pairs,
                    f3(s.multi.map_macro),
                    f3(s.multi.map_micro),
                    f3(s.multi.r10_macro),
                    rd,
                    xtreme,
                    r.timing.load_s,
                    r.timing.encode_s,
                    r.embeddings,
                    r.timing.score_s,
                )
            }
            Report::Beir(r) => format!(
                "{} ({}) | {} | {} queries, {} documents\n\
                 nDCG@10 {} | Recall@100 {} | MRR@10 {}\n\
                 time: load {:.2} s, embeddings {:.2} s ({}), scoring {:.2} s",
                r.dataset,
                r.metrics.split,
                r.model,
                r.counts.queries,
                r.counts.candidates,
                f3(r.metrics.ndcg_at_10),
                f3(r.metrics.recall_at_100),
                f3(r.metrics.mrr_at_10),
                r.timing.load_s,
                r.timing.encode_s,
                r.embeddings,
                r.timing.score_s,
            ),
        }
    }

    /// Markdown tables: the paper-style summary row, per-language results, the Cr. matrix
    /// (with the Mo. diagonal) and the skipped questions.
    pub fn to_markdown(&self) -> String {
        match self {
            Report::Lareqa(r) => lareqa_markdown(r),
            Report::Beir(r) => beir_markdown(r),
        }
    }

    /// The heatmap of the Cr. mAP matrix (LAReQA only).
    pub fn heatmap_svg(&self) -> Option<String> {
        match self {
            Report::Lareqa(r) => Some(heatmap_svg(r)),
            Report::Beir(_) => None,
        }
    }
}

fn lareqa_markdown(r: &LareqaReport) -> String {
    let s = &r.settings;
    let mut o = String::new();
    let _ = writeln!(o, "# {} — {}\n", md_escape(&r.dataset), md_escape(&r.model));
    let _ = writeln!(
        o,
        "{} queries ({} of {} questions skipped), {} candidate {} in {} languages; prefixes \
         `{}` / `{}`. mAP over the full ranking (ties: lower candidate index first); macro \
         averages over languages (Mo., Mul.) or language pairs (Cr.).\n",
        r.counts.questions,
        r.counts.skipped,
        r.counts.questions_read,
        r.counts.candidates,
        match r.candidates_mode {
            CandidateMode::Sentence => "sentences",
            CandidateMode::Context => "sentences (with their paragraph as context)",
            CandidateMode::SentenceContext => {
                "sentences (each followed by its paragraph, as one text)"
            }
        },
        r.languages.len(),
        r.prefixes.query,
        r.prefixes.passage,
    );
    if r.protocol != Protocol::Lareqa {
        let _ = writeln!(
            o,
            "Protocol `{}`: scores are dot products of the embeddings as given (not cosines); \
             every table ranks by them.\n",
            r.protocol.as_str()
        );
    }
    if let Some(c) = &r.centering {
        let _ = write!(
            o,
            "**Centred embeddings** (`--center {}`): every embedding minus its language's mean, \
             taken from {}; own means for {}",
            md_escape(&c.file),
            md_escape(&c.means_from),
            c.own_means.join(", "),
        );
        if !c.pooled_mean.is_empty() {
            let _ = write!(
                o,
                "; the mean of those means for {}",
                c.pooled_mean.join(", ")
            );
        }
        o.push_str(". Not comparable with uncentred results.\n\n");
    }
    let rd = |d: Option<f64>| d.map_or("–".to_string(), |d| format!("{d:.1}"));
    o.push_str("## Summary\n\n");
    o.push_str("| Model | Mo. mAP | Cr. mAP | Mul. mAP | Mul. mAP (micro) | Mo. R@1 | Cr. R@1 | Mul. R@10 | Rank distance |\n");
    o.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        o,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        md_escape(&r.model),
        f3(s.mono.map_macro),
        f3(s.cross.map_macro),
        f3(s.multi.map_macro),
        f3(s.multi.map_micro),
        f3(s.mono.r1_macro),
        f3(s.cross.r1_macro),
        f3(s.multi.r10_macro),
        rd(s.multi.rank_distance_macro),
    );
    if let Some(x) = &r.xtreme_r {
        xtreme_r_markdown(&mut o, r, x);
    }
    o.push_str("## Per language\n\n");
    o.push_str("Cr. as query: mean over the pairs X-·; as candidate: mean over the pairs ·-X.\n\n");
    o.push_str("| Lang | Questions | Skipped | Candidates | Mo. mAP | Mo. R@1 | Cr. mAP (as query) | Cr. mAP (as candidate) | Mul. mAP | Mul. R@10 | Rank distance |\n");
    o.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let opt = |m: &BTreeMap<String, f64>, k: &str| m.get(k).map_or("–".to_string(), |&v| f3(v));
    for l in &r.languages {
        let c = &r.counts.per_lang[l];
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md_escape(l),
            c.questions,
            c.skipped,
            c.candidates,
            opt(&s.mono.map_per_lang, l),
            opt(&s.mono.r1_per_lang, l),
            opt(&s.cross.map_per_query_lang, l),
            opt(&s.cross.map_per_candidate_lang, l),
            opt(&s.multi.map_per_lang, l),
            opt(&s.multi.r10_per_lang, l),
            rd(s.multi.rank_distance_per_lang.get(l).copied().flatten()),
        );
    }
    let _ = writeln!(
        o,
        "| **all** | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        r.counts.questions,
        r.counts.skipped,
        r.counts.candidates,
        f3(s.mono.map_macro),
        f3(s.mono.r1_macro),
        f3(s.cross.map_macro),
        f3(s.cross.map_macro),
        f3(s.multi.map_macro),
        f3(s.multi.r10_macro),
        rd(s.multi.rank_distance_macro),
    );
    o.push_str("## Cross-lingual mAP\n\n");
    o.push_str(
        "Rows: query language; columns: candidate language; the diagonal (in italics) is Mo.\n\n",
    );
    o.push_str("| query \\ candidate |");
    for l in &r.languages {
        let _ = write!(o, " {} |", md_escape(l));
    }
    o.push_str("\n|---|");
    for _ in &r.languages {
        o.push_str("---:|");
    }
    o.push('\n');
    for x in &r.languages {
        let _ = write!(o, "| **{}** |", md_escape(x));
        for y in &r.languages {
            let cell = if x == y {
                s.mono
                    .map_per_lang
                    .get(x)
                    .map_or("–".into(), |&v| format!("*{}*", f3(v)))
            } else {
                opt(&s.cross.map_per_pair, &pair_key(x, y))
            };
            let _ = write!(o, " {cell} |");
        }
        o.push('\n');
    }
    o.push('\n');
    if r.counts.skipped > 0 || s.cross.skipped > 0 {
        o.push_str("## Skipped\n\n| Reason | Count |\n|---|---:|\n");
        for (reason, n) in &r.counts.skipped_by_reason {
            let _ = writeln!(o, "| question: {} | {n} |", reason.replace('_', " "));
        }
        if s.cross.skipped > 0 {
            let _ = writeln!(
                o,
                "| Cr. query whose id has no evaluable version in the candidate language | {} |",
                s.cross.skipped
            );
        }
        o.push('\n');
    }
    let _ = writeln!(
        o,
        "Timing: load {:.2} s, embeddings {:.2} s ({}), scoring {:.2} s, total {:.2} s.",
        r.timing.load_s, r.timing.encode_s, r.embeddings, r.timing.score_s, r.timing.total_s
    );
    o
}

fn xtreme_r_markdown(o: &mut String, r: &LareqaReport, x: &XtremeRSettings) {
    let k = x.k;
    let opt = |m: &BTreeMap<String, f64>, l: &str| m.get(l).map_or("–".to_string(), |&v| f3(v));
    let _ = writeln!(o, "## XTREME-R: mAP@{k}\n");
    let _ = writeln!(
        o,
        "AP@{k} as XTREME-R computes it: the precision at each relevant candidate in the first \
         {k}, summed, over min(relevant, {k}). XTREME-R's LAReQA score is the Mul. mean over all \
         queries.\n"
    );
    let _ = writeln!(
        o,
        "| Model | Mul. mAP@{k} (all queries) | Mul. mAP@{k} (macro) | Mo. mAP@{k} | Cr. mAP@{k} |"
    );
    o.push_str("|---|---:|---:|---:|---:|\n");
    let _ = writeln!(
        o,
        "| {} | {} | {} | {} | {} |\n",
        md_escape(&r.model),
        f3(x.multi.map_at_k_micro),
        f3(x.multi.map_at_k_macro),
        f3(x.mono.map_at_k_macro),
        f3(x.cross.map_at_k_macro),
    );
    let _ = writeln!(o, "| Lang | Mo. mAP@{k} | Mul. mAP@{k} |");
    o.push_str("|---|---:|---:|\n");
    for l in &r.languages {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            md_escape(l),
            opt(&x.mono.map_at_k_per_lang, l),
            opt(&x.multi.map_at_k_per_lang, l),
        );
    }
    o.push('\n');
}

fn beir_markdown(r: &BeirReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# {} ({}) — {}\n",
        md_escape(&r.dataset),
        md_escape(&r.metrics.split),
        md_escape(&r.model)
    );
    let _ = writeln!(
        o,
        "{} queries with a positive judgement (of {}), {} documents, {} judgements ({} positive \
         judgements of documents missing from the corpus); prefixes `{}` / `{}`.\n",
        r.counts.queries,
        r.counts.queries_read,
        r.counts.candidates,
        r.counts.judgements,
        r.counts.missing_docs,
        r.prefixes.query,
        r.prefixes.passage
    );
    o.push_str("| Model | nDCG@10 | Recall@100 | MRR@10 |\n|---|---:|---:|---:|\n");
    let _ = writeln!(
        o,
        "| {} | {} | {} | {} |\n",
        md_escape(&r.model),
        f3(r.metrics.ndcg_at_10),
        f3(r.metrics.recall_at_100),
        f3(r.metrics.mrr_at_10)
    );
    let _ = writeln!(
        o,
        "Timing: load {:.2} s, embeddings {:.2} s ({}), scoring {:.2} s, total {:.2} s.",
        r.timing.load_s, r.timing.encode_s, r.embeddings, r.timing.score_s, r.timing.total_s
    );
    o
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// YlGnBu-like sequential colour for a value in [0, 1].
fn colour(v: f64) -> (u8, u8, u8) {
    const STOPS: [(f64, (f64, f64, f64)); 5] = [
        (0.0, (255.0, 255.0, 217.0)),
        (0.25, (199.0, 233.0, 180.0)),
        (0.5, (65.0, 182.0, 196.0)),
        (0.75, (34.0, 94.0, 168.0)),
        (1.0, (8.0, 29.0, 88.0)),
    ];
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    for w in STOPS.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        if v <= b {
            let t = (v - a) / (b - a);
            let mix = |x: f64, y: f64| (x + (y - x) * t).round() as u8;
            return (mix(ca.0, cb.0), mix(ca.1, cb.1), mix(ca.2, cb.2));
        }
    }
    (8, 29, 88)
}

fn heatmap_svg(r: &LareqaReport) -> String {
    let s = &r.settings;
    let langs = &r.languages;
    let n = langs.len();
    let cell = 46.0;
    let (left, top) = (90.0, 96.0);
    let grid = cell * n as f64;
    let legend_x = left + grid + 30.0;
    let width = legend_x + 70.0;
    let lh = grid.max(120.0);
    let height = top + lh + 40.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{left}" y="24" font-size="15" font-weight="bold">{} — {}</text>"#,
        xml_escape(&r.dataset),
        xml_escape(&r.model)
    );
    let _ = writeln!(
        o,
        r#"<text x="{left}" y="44" font-size="12">Cr. mAP {} (diagonal, outlined: Mo. mAP {}); Mul. mAP {}</text>"#,
        f3(s.cross.map_macro),
        f3(s.mono.map_macro),
        f3(s.multi.map_macro)
    );
    let _ = writeln!(
        o,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">candidate language</text>"#,
        left + grid / 2.0,
        top - 26.0
    );
    let _ = writeln!(
        o,
        r#"<text x="0" y="0" font-size="12" text-anchor="middle" transform="translate(24 {:.1}) rotate(-90)">query language</text>"#,
        top + grid / 2.0
    );
    for (i, l) in langs.iter().enumerate() {
        let c = left + cell * (i as f64 + 0.5);
        let _ = writeln!(
            o,
            r#"<text x="{c:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
            top - 8.0,
            xml_escape(l)
        );
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"#,
            left - 8.0,
            top + cell * (i as f64 + 0.5) + 4.0,
            xml_escape(l)
        );
    }
    for (i, x) in langs.iter().enumerate() {
        for (j, y) in langs.iter().enumerate() {
            let v = if i == j {
                s.mono.map_per_lang.get(x).copied()
            } else {
                s.cross.map_per_pair.get(&pair_key(x, y)).copied()
            };
            let (px, py) = (left + cell * j as f64, top + cell * i as f64);
            let (fill, label, ink) = match v {
                Some(v) => {
                    let (cr, cg, cb) = colour(v);
                    let ink = if v > 0.55 { "white" } else { "black" };
                    let label = f3(v);
                    let label = label.strip_prefix('0').unwrap_or(&label).to_string();
                    (format!("rgb({cr},{cg},{cb})"), label, ink)
                }
                None => ("rgb(220,220,220)".to_string(), "–".to_string(), "black"),
            };
            let title = if i == j {
                format!("Mo. {x}")
            } else {
                format!("Cr. {x} → {y}")
            };
            let _ = writeln!(
                o,
                r#"<g><title>{}: {}</title><rect x="{px:.1}" y="{py:.1}" width="{cell}" height="{cell}" fill="{fill}" stroke="white" stroke-width="1"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="{ink}">{label}</text></g>"#,
                xml_escape(&title),
                v.map_or("n/a".into(), f3),
                px + cell / 2.0,
                py + cell / 2.0 + 4.0,
            );
            if i == j {
                let _ = writeln!(
                    o,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="black" stroke-width="2"/>"#,
                    px + 1.0,
                    py + 1.0,
                    cell - 2.0,
                    cell - 2.0
                );
            }
        }
    }
    // Legend: 0 (bottom) to 1 (top).
    let steps = 20;
    for k in 0..steps {
        let v = 1.0 - (k as f64 + 0.5) / steps as f64;
        let (cr, cg, cb) = colour(v);
        let _ = writeln!(
            o,
            r#"<rect x="{legend_x:.1}" y="{:.1}" width="16" height="{:.2}" fill="rgb({cr},{cg},{cb})"/>"#,
            top + lh * k as f64 / steps as f64,
            lh / steps as f64 + 0.5
        );
    }
    for (v, y) in [(1.0, top), (0.5, top + lh / 2.0), (0.0, top + lh)] {
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" font-size="11">{v:.1}</text>"#,
            legend_x + 22.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        o,
        r#"<text x="{legend_x:.1}" y="{:.1}" font-size="11">mAP</text>"#,
        top - 8.0
    );
    o.push_str("</svg>\n");
    o
}
