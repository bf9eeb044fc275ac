//! The crate's error type.

use std::path::PathBuf;

use multiret_data::DataError;

/// A boxed error from a [`TextEmbedder`](crate::TextEmbedder) (any model, any backend).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while loading a benchmark, reading or computing embeddings,
/// scoring, or writing a report.
///
/// Messages name the file (and where it helps, the article, paragraph, line or row) and what is
/// wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
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
    /// A file is well-formed but its content is invalid (offsets outside the context,
    /// overlapping sentence breaks, a question id twice in one file, ...).
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
    /// An embedding matrix has the wrong number of rows or columns.
    #[error("{what}: expected {expected} {unit}, got {got}")]
    Shape {
        /// Which matrix (usually a file name or the model).
        what: String,
        /// Rows or columns.
        unit: &'static str,
        /// What the evaluation needs.
        expected: usize,
        /// What it got.
        got: usize,
    },
    /// An embedding contains NaN or an infinity.
    #[error("{what}: row {row} (0-based), column {col} is {value} (embeddings must be finite)")]
    NonFinite {
        /// Which matrix (a file name or the model).
        what: String,
        /// 0-based row.
        row: usize,
        /// 0-based column.
        col: usize,
        /// The value (NaN, inf or -inf).
        value: f32,
    },
    /// The dataset has nothing to evaluate.
    #[error("dataset `{name}` has nothing to evaluate: {detail}")]
    EmptyDataset {
        /// The dataset name.
        name: String,
        /// What was read and what was skipped.
        detail: String,
    },
    /// A dataset name or directory could not be resolved.
    #[error("unknown dataset `{name}`: {detail}")]
    UnknownDataset {
        /// The name or path given.
        name: String,
        /// Where it was looked for.
        detail: String,
    },
    /// The encoder failed.
    #[error("encoder `{model}` failed: {source}")]
    Encoder {
        /// The encoder's name.
        model: String,
        /// Its error.
        source: BoxError,
    },
    /// A kernel (GEMM, normalisation) rejected its arguments.
    #[error("kernel error: {0}")]
    Kernel(#[from] multiret_kernels::KernelError),
    /// An argument is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An error of the data layer (`multiret-data`) without a variant of its own here (a
    /// named dataset found nowhere, ...). Its I/O, JSON, file, `.npy`, shape, empty-dataset
    /// and argument errors become the variants of the same names above.
    #[error(transparent)]
    Data(DataError),
}

impl From<DataError> for EvalError {
    fn from(e: DataError) -> Self {
        match e {
            DataError::Io { path, source } => EvalError::Io { path, source },
            DataError::Json { path, source } => EvalError::Json { path, source },
            DataError::BadFile { path, message } => EvalError::BadFile { path, message },
            DataError::Npy { path, message } => EvalError::Npy { path, message },
            DataError::Shape {
                what,
                unit,
                expected,
                got,
            } => EvalError::Shape {
                what,
                unit,
                expected,
                got,
            },
            DataError::EmptyDataset { name, detail } => EvalError::EmptyDataset { name, detail },
            DataError::InvalidArgument(m) => EvalError::InvalidArgument(m),
            other => EvalError::Data(other),
        }
    }
}

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        EvalError::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn bad_line(
        path: impl Into<PathBuf>,
        line: usize,
        message: impl Into<String>,
    ) -> Self {
        EvalError::BadLine {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
