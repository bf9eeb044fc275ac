use std::path::PathBuf;

use thiserror::Error;

/// The one error type of the training crate.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The model could not be loaded, tokenised or saved.
    #[error(transparent)]
    Model(#[from] multiret_model::ModelError),
    /// Writing a file failed (the shared atomic writer).
    #[error(transparent)]
    Data(#[from] multiret_data::DataError),
    /// The training data or the sampler failed.
    #[error(transparent)]
    Sampler(#[from] multiret_sampler::SamplerError),
    /// A bad configuration (flags that contradict each other, out-of-range values).
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// A checkpoint or training state is missing, malformed or from another run.
    #[error("{path}: {msg}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The loss became NaN or infinite.
    #[error("step {step}: the loss is not finite ({loss})")]
    NonFinite {
        /// The step.
        step: u64,
        /// The loss value.
        loss: f32,
    },
    /// A validation score became NaN or infinite (the weights diverged): it cannot be compared,
    /// so it cannot pick the kept weights.
    #[error("step {step}: the validation {what} is not finite ({value})")]
    NonFiniteValidation {
        /// The step (0 for the merge grid, which runs after training).
        step: u64,
        /// Which score.
        what: String,
        /// Its value.
        value: f64,
    },
    /// The requested device is not available in this build or on this machine.
    #[error("device: {0}")]
    Device(String),
    /// The evaluation hook failed.
    #[error("evaluation of the final checkpoint: {0}")]
    Eval(String),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        TrainError::Checkpoint {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// Result alias of the training crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
