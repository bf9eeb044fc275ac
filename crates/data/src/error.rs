//! The crate's error type.

use crate::dirs::{Searched, SearchedDir};

/// Everything that can go wrong in this crate.
///
/// Messages name the file or directory (and where it helps, the place in it) and the problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A named dataset is in none of the data directories searched.
    #[error(
        "dataset `{name}` not found: looked for {searched}; point --data-dir or MULTIRET_DATA at a \
         directory holding {name}/",
        searched = Searched(searched)
    )]
    DatasetNotFound {
        /// The dataset name.
        name: String,
        /// Every place it was looked for, in order.
        searched: Vec<SearchedDir>,
    },
    /// A dataset name is not a plain directory name.
    #[error("`{name}` is not a dataset name (expected a plain directory name such as xquad-r)")]
    InvalidName {
        /// The name given.
        name: String,
    },
}

/// The crate's result type.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
