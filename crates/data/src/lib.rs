//! # multiret-data
//!
//! The data layer shared by multiret's crates:
//!
//! - [`dirs`]: where datasets and caches live: [`default_data_dir`] (the repository's `data/`,
//!   else the cache's), [`dataset_dir`] (a named dataset, with an error that lists every place
//!   looked in), [`default_cache_dir`] (`MULTIRET_CACHE`, else `~/.cache/multiret`).
//!
//! Errors are one type, [`DataError`], whose messages name the file or directory.

pub mod dirs;
mod error;

pub use dirs::{
    cache_data_dir, dataset_dir, default_cache_dir, default_data_dir, env_data_dir,
    repository_data_dir, search_path, DataDirOrigin, Searched, SearchedDir, CACHE_ENV, DATA_ENV,
};
pub use error::{DataError, Result};
