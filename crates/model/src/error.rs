use std::path::PathBuf;

use thiserror::Error;

/// The one error type of the model crate.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A model file is malformed (truncated, corrupted, inconsistent).
    #[error("{path}: {msg}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A configuration is invalid or unsupported.
    #[error("{path}: invalid configuration: {msg}")]
    Config {
        /// The file the configuration came from.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The model asset could not be fetched.
    #[error("{0}")]
    Fetch(String),
    /// Bad input to the encoder.
    #[error("{0}")]
    Input(String),
    /// Writing a file failed (the shared atomic writer).
    #[error(transparent)]
    Data(#[from] multiret_data::DataError),
    /// A kernel reported an error (a bug when it happens inside the encoder).
    #[error("kernel: {0}")]
    Kernel(#[from] multiret_kernels::KernelError),
    /// The GPU path failed: CUDA unavailable (or a build without the `cuda` feature), a
    /// driver / cuBLAS error, out of device memory.
    #[error("GPU: {0}")]
    Gpu(String),
}

impl ModelError {
    pub(crate) fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        ModelError::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub(crate) fn config(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        ModelError::Config {
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias of the model crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
