//! The crate's error type.

use std::path::PathBuf;

use multiret_data::DataError;

/// Everything that can go wrong while loading a corpus or building a sampler.
///
/// Messages name the file (and the line, for JSONL and TSV inputs) and the problem.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// An error of the data layer (`multiret-data`) without a variant of its own here: a
    /// named dataset in no data directory (the message lists every place looked in), a LAReQA
    /// file that fails the parser the evaluation uses too (the message names the file), ...
    /// Its I/O, JSON and file errors become the variants of the same names.
    #[error(transparent)]
    Data(multiret_data::DataError),
    /// A JSON file is not valid JSON or does not have the expected shape.
    #[error("{}: malformed JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error (it carries the line and column).
        source: serde_json::Error,
    },
    /// One line of a line-oriented file (JSONL, TSV) is malformed.
    #[error("{}:{line}: {message}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A file is well-formed but its content is invalid (e.g. sentence offsets out of range).
    #[error("{}: {message}", path.display())]
    BadFile {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A corpus ended up with no usable group.
    #[error("corpus `{name}` has no usable group: {detail}")]
    EmptyCorpus {
        /// The corpus name.
        name: String,
        /// Why (what was read, what was skipped).
        detail: String,
    },
    /// A corpus cannot feed the requested sampler (too few groups for the batch size, ...).
    #[error("corpus `{name}` cannot feed the sampler: {detail}")]
    Unsatisfiable {
        /// The corpus name.
        name: String,
        /// What is missing.
        detail: String,
    },
    /// An argument is out of range or inconsistent (batch size, alpha, weights, shard, spec).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A saved sampler state does not belong to the corpora it is resumed with.
    #[error("sampler state does not match: {0}")]
    StateMismatch(String),
}

impl SamplerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SamplerError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_line(
        path: impl Into<PathBuf>,
        line: usize,
        message: impl Into<String>,
    ) -> Self {
        SamplerError::BadLine {
            path: path.into(),
            line,
            message: message.into(),
        }
    }

    pub(crate) fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        SamplerError::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = SamplerError> = std::result::Result<T, E>;

impl From<DataError> for SamplerError {
    /// Unreadable and malformed files keep their own variants; the rest stays the data layer's.
    fn from(e: DataError) -> Self {
        match e {
            DataError::Io { path, source } => SamplerError::Io { path, source },
            DataError::Json { path, source } => SamplerError::Json { path, source },
            DataError::BadFile { path, message } => SamplerError::BadFile { path, message },
            other => SamplerError::Data(other),
        }
    }
}
