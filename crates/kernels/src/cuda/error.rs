//! The error type of the GPU kernels.

use std::string::String;

use cudarc::cublas::result::CublasError;
use cudarc::driver::DriverError;
use thiserror::Error;

/// Everything that can go wrong on the GPU path. No function of [`crate::cuda`] panics on
/// purpose: bad arguments, missing libraries, driver, NVRTC and cuBLAS failures (and a panic
/// inside `cudarc`, caught) all come back as one of these.
#[derive(Debug, Error)]
pub enum CudaError {
    /// No usable CUDA here (no driver library, no device, no NVRTC or cuBLAS library); the
    /// message says which, in words meant for a person (tests print it when they skip).
    #[error("CUDA is not available: {0}")]
    Unavailable(String),
    /// A CUDA driver call failed.
    #[error("CUDA driver error in {op}: {source}")]
    Driver {
        /// What was being done.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: DriverError,
    },
    /// NVRTC could not compile (or the driver could not load) the kernels; the message carries
    /// every attempt with its options and the compiler log.
    #[error("compiling the CUDA kernels failed: {0}")]
    Compile(String),
    /// A cuBLAS call failed.
    #[error("cuBLAS error in {op}: {source}")]
    Cublas {
        /// What was being done.
        op: &'static str,
        /// cuBLAS's status.
        #[source]
        source: CublasError,
    },
    /// Arguments that do not fit together (a buffer too short, a leading dimension too small,
    /// a size over `i32::MAX`, ...).
    #[error("bad arguments to {op}: {detail}")]
    Shape {
        /// The operation.
        op: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// `cudarc` panicked (caught with `catch_unwind`), e.g. a symbol missing from an old library.
    #[error("cudarc panicked in {op}: {message}")]
    Panic {
        /// The operation.
        op: &'static str,
        /// The panic message.
        message: String,
    },
}

impl CudaError {
    pub(crate) fn driver(op: &'static str, source: DriverError) -> Self {
        CudaError::Driver { op, source }
    }

    pub(crate) fn cublas(op: &'static str, source: CublasError) -> Self {
        CudaError::Cublas { op, source }
    }

    pub(crate) fn shape(op: &'static str, detail: String) -> Self {
        CudaError::Shape { op, detail }
    }
}
