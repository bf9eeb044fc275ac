//! # multiret-data
//!
//! The data layer shared by multiret's crates, below the evaluation and the training:
//!
//! - [`dirs`]: where datasets and caches live: [`default_data_dir`] (the repository's `data/`,
//!   else the cache's), [`dataset_dir`] (a named dataset, with an error that lists every place
//!   looked in), [`default_cache_dir`] (`MULTIRET_CACHE`, else `~/.cache/multiret`).
//! - [`lareqa`]: the one parser of LAReQA-format benchmarks (XQuAD-R, MLQA-R: SQuAD JSON with
//!   `sentence_breaks`), for evaluation and training alike: candidates, gold sentences, skipped
//!   questions counted by reason.
//! - [`npy`]: a strict reader and writer of `.npy` f32 matrices ([`Matrix`]).
//! - [`write_atomic`]: the one atomic file writer (temporary sibling, sync, rename).
//!
//! Errors are one type, [`DataError`], whose messages name the file or directory and the
//! problem. Nothing here prints or panics on bad input.
//!
//! ```
//! let dir = multiret_data::dataset_dir(&multiret_data::default_data_dir(), "xquad-r")?;
//! let ds = multiret_data::load_lareqa_dir(&dir)?;
//! assert_eq!(ds.langs.len(), 11);
//! # Ok::<(), multiret_data::DataError>(())
//! ```

mod atomic;
pub mod dirs;
mod error;
pub mod lareqa;
pub mod npy;

pub use atomic::write_atomic;
pub use dirs::{
    cache_data_dir, dataset_dir, default_cache_dir, default_data_dir, env_data_dir,
    repository_data_dir, search_path, DataDirOrigin, Searched, SearchedDir, CACHE_ENV, DATA_ENV,
};
pub use error::{DataError, Result};
pub use lareqa::{
    lareqa_files, load_lareqa_dir, load_lareqa_dir_named, parse_lareqa_file, Candidate, LangData,
    LareqaDataset, Question, SkipReason,
};
pub use npy::{encode_npy_f32, parse_npy_f32, read_npy_f32, write_npy_f32, Matrix};
