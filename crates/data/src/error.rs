//! The crate's error type.

use std::path::PathBuf;

use crate::dirs::{Searched, SearchedDir};

/// Everything that can go wrong in this crate: locating a dataset, reading or parsing a
/// LAReQA file or a `.npy` file, writing a file.
///
/// Messages name the file or directory (and where it helps, the article, paragraph or
/// question) and the problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A JSON file is not valid JSON or does not have the expected shape.
    #[error("{}: malformed JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error (it carries the line and column).
        source: serde_json::Error,
    },
    /// A file is well-formed but its content is invalid (offsets outside the context,
    /// overlapping sentence breaks, a question id twice in one file, ...), or a directory
    /// lacks the files it should hold.
    #[error("{}: {message}", path.display())]
    BadFile {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A `.npy` file is not a little-endian f32 2-D C-order array, or is truncated.
    #[error("{}: not a usable .npy embedding matrix: {message}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A matrix has the wrong number of values, rows or columns.
    #[error("{what}: expected {expected} {unit}, got {got}")]
    Shape {
        /// Which matrix.
        what: String,
        /// Values, rows or columns.
        unit: &'static str,
        /// What was needed.
        expected: usize,
        /// What it got.
        got: usize,
    },
    /// A dataset has nothing to evaluate (no language file, no question, or no candidate).
    #[error("dataset `{name}` has nothing to evaluate: {detail}")]
    EmptyDataset {
        /// The dataset name.
        name: String,
        /// What was read and what was skipped.
        detail: String,
    },
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
    /// An argument is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn npy(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Npy {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
