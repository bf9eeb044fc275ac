//! The arguments that several commands share, each defined once as a clap [`Args`] struct and
//! flattened where it is used (the commands' own arguments stay in their modules).
//!
//! Options whose default belongs to a library are `Option`s that the command fills in from
//! the library's configuration; their help shows that default through [`show_default`].

use std::fmt::Display;
use std::path::PathBuf;

use anyhow::bail;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Arg, Args, ValueEnum};
use multiret_model::Precision;
use multiret_sampler::{PassageUnit, SamplerKind};
use multiret_train::{DeviceChoice, TrainConfig};

/// The model used when `--model` is not given (by every command: the training's default).
pub const DEFAULT_MODEL: &str = TrainConfig::DEFAULT_MODEL;

/// The probability of a monolingual batch under `--sampler hybrid` without `--alpha`.
pub const DEFAULT_ALPHA: f64 = TrainConfig::DEFAULT_ALPHA;

/// The languages per group of the group samplers without `--group-langs`.
pub const DEFAULT_GROUP_LANGS: usize = TrainConfig::DEFAULT_GROUP_LANGS;

/// Appends ` [default: VALUE]` to the help of `arg`: for the options whose default is filled in
/// by a library (clap holds no copy of it).
pub fn show_default(arg: Arg, value: impl Display) -> Arg {
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    arg.help(format!("{help} [default: {value}]"))
}

/// `--model`.
#[derive(Args, Debug, Clone, Default)]
#[command(mut_arg("model", |a| show_default(a, DEFAULT_MODEL)))]
pub struct ModelArgs {
    /// Model: `e5-small` / `e5-small-enpt` (built in), an HF / sentence-transformers
    /// directory, an E5S1 `.bin` (with a `tokenizer.json` beside it) or `hf:ORG/NAME[@REV]`.
    #[arg(long, value_name = "SPEC")]
    pub model: Option<String>,
}

impl ModelArgs {
    /// The model spec in force.
    pub fn spec(&self) -> &str {
        self.model.as_deref().unwrap_or(DEFAULT_MODEL)
    }
}

/// `--data-dir` (`MULTIRET_DATA`).
#[derive(Args, Debug, Clone, Default)]
pub struct DataDirArgs {
    /// Directory holding the named datasets (mlqa-r/, xquad-r/) [default: the repository's
    /// data/, then ~/.cache/multiret/data (under MULTIRET_CACHE when set)].
    #[arg(long, value_name = "DIR", env = multiret_data::DATA_ENV)]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArgs {
    /// The data directory in force ([`multiret_data::default_data_dir`] unless given).
    pub fn dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(multiret_data::default_data_dir)
    }
}

/// `--cache-dir` (`MULTIRET_CACHE`).
#[derive(Args, Debug, Clone, Default)]
pub struct CacheArgs {
    /// Cache directory: the models, and the embedding cache in its embeddings/ [default:
    /// ~/.cache/multiret].
    #[arg(long, value_name = "DIR", env = multiret_data::CACHE_ENV)]
    pub cache_dir: Option<PathBuf>,
}

impl CacheArgs {
    /// The cache directory in force ([`multiret_data::default_cache_dir`] unless given).
    pub fn dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(multiret_data::default_cache_dir)
    }
}

/// The batching scheme (docs/method.md §3).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplerChoice {
    /// X-X-mono: one language per batch.
    Mono,
    /// X-Y: query and passage languages differ in every pair.
    Cross,
    /// X-X: every pair monolingual, languages mixed within a batch.
    Mixed,
    /// Mono with probability `--alpha`, else cross.
    Hybrid,
    /// Multi-positive group batches: each group in up to `--group-langs` languages, one
    /// monolingual pair per language, all of them positives for each other's queries.
    Group,
    /// Mono with probability `--alpha`, else a group batch.
    HybridGroup,
}

/// `--sampler`, `--alpha` and `--group-langs`.
#[derive(Args, Debug, Clone)]
#[command(mut_arg("alpha", |a| show_default(a, DEFAULT_ALPHA)))]
#[command(mut_arg("group_langs", |a| show_default(a, DEFAULT_GROUP_LANGS)))]
pub struct SamplerArgs {
    /// Batching scheme.
    #[arg(long, value_enum)]
    pub sampler: SamplerChoice,
    /// Probability of a monolingual batch under `--sampler hybrid` and `hybrid-group`.
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Languages per group of a group batch (`--sampler group` and `hybrid-group`), at
    /// least 2.
    #[arg(long, value_name = "K")]
    pub group_langs: Option<usize>,
}

impl SamplerArgs {
    /// The sampler these arguments ask for (`--alpha` belongs to the hybrid samplers,
    /// `--group-langs` to the group ones).
    pub fn kind(&self) -> anyhow::Result<SamplerKind> {
        let alpha = self.alpha.unwrap_or(DEFAULT_ALPHA);
        let langs = self.group_langs.unwrap_or(DEFAULT_GROUP_LANGS);
        let kind = match self.sampler {
            SamplerChoice::Mono => SamplerKind::Mono,
            SamplerChoice::Cross => SamplerKind::Cross,
            SamplerChoice::Mixed => SamplerKind::Mixed,
            SamplerChoice::Hybrid => SamplerKind::Hybrid { alpha },
            SamplerChoice::Group => SamplerKind::Group { langs },
            SamplerChoice::HybridGroup => SamplerKind::HybridGroup { alpha, langs },
        };
        if self.alpha.is_some() && kind.alpha().is_none() {
            bail!("--alpha only applies to --sampler hybrid and hybrid-group");
        }
        if self.group_langs.is_some() && kind.group_langs().is_none() {
            bail!("--group-langs only applies to --sampler group and hybrid-group");
        }
        Ok(kind)
    }
}

/// The positive passage of LAReQA corpora.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassageChoice {
    /// The gold sentence.
    Sentence,
    /// The gold sentence with its paragraph as context.
    SentenceWithParagraph,
    /// The whole paragraph.
    Paragraph,
}

impl From<PassageChoice> for PassageUnit {
    fn from(p: PassageChoice) -> PassageUnit {
        match p {
            PassageChoice::Sentence => PassageUnit::Sentence,
            PassageChoice::SentenceWithParagraph => PassageUnit::SentenceWithParagraph,
            PassageChoice::Paragraph => PassageUnit::Paragraph,
        }
    }
}

impl From<PassageUnit> for PassageChoice {
    fn from(p: PassageUnit) -> PassageChoice {
        match p {
            PassageUnit::Sentence => PassageChoice::Sentence,
            PassageUnit::SentenceWithParagraph => PassageChoice::SentenceWithParagraph,
            PassageUnit::Paragraph => PassageChoice::Paragraph,
        }
    }
}

impl PassageChoice {
    /// The command-line name of a unit (`sentence`, `sentence-with-paragraph`, `paragraph`).
    pub fn name_of(unit: PassageUnit) -> String {
        value_name(PassageChoice::from(unit))
    }

    /// A parser of `--passage` that accepts `only` these units (training takes no text pairs).
    pub fn parser_of(only: &'static [PassageChoice]) -> impl TypedValueParser<Value = Self> {
        PossibleValuesParser::new(only.iter().filter_map(ValueEnum::to_possible_value))
            .map(|s| PassageChoice::from_str(&s, false).expect("one of the possible values"))
    }
}

/// `--passage`.
#[derive(Args, Debug, Clone, Default)]
pub struct PassageArgs {
    /// Positive passage of LAReQA corpora.
    #[arg(long, value_enum)]
    pub passage: Option<PassageChoice>,
}

impl PassageArgs {
    /// The unit in force: the one given, else `default` (the library's).
    pub fn unit_or(&self, default: PassageUnit) -> PassageUnit {
        self.passage.map_or(default, Into::into)
    }
}

/// Weight precision.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrecisionArg {
    /// f32 weights.
    #[default]
    F32,
    /// bf16 weights (AMX / AVX-512 BF16 where available), f32 accumulation.
    Bf16,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::Bf16 => Precision::Bf16,
        }
    }
}

impl std::fmt::Display for PrecisionArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&value_name(*self))
    }
}

/// `--precision`.
#[derive(Args, Debug, Clone, Default)]
pub struct PrecisionArgs {
    /// Weight precision of the model.
    #[arg(long, value_enum, default_value_t)]
    pub precision: PrecisionArg,
}

/// `--device`.
#[derive(Args, Debug, Clone, Default)]
pub struct DeviceArgs {
    /// `cpu`, `cuda` or `cuda:N` (CUDA needs a build with `--features cuda`; it is loaded at
    /// run time).
    #[arg(long, value_name = "DEVICE", value_parser = parse_device)]
    pub device: Option<DeviceChoice>,
}

impl DeviceArgs {
    /// The device in force: the one given, else `default` (the library's).
    pub fn device_or(&self, default: DeviceChoice) -> DeviceChoice {
        self.device.unwrap_or(default)
    }
}

/// Parses `cpu`, `cuda` (device 0) or `cuda:N`.
pub fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    match s {
        "cpu" => Ok(DeviceChoice::Cpu),
        "cuda" => Ok(DeviceChoice::Cuda(0)),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Ok(DeviceChoice::Cuda(i)),
            _ => Err(format!("unknown device `{s}` (cpu, cuda or cuda:N)")),
        },
    }
}

/// The command-line name of a device, as [`parse_device`] reads it.
pub fn device_name(d: DeviceChoice) -> String {
    match d {
        DeviceChoice::Cpu => "cpu".into(),
        DeviceChoice::Cuda(i) => format!("cuda:{i}"),
    }
}

/// The command-line name of a value.
fn value_name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}
