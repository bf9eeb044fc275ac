//! # multiret-kernels
//!
//! Dense-retrieval kernels that other projects can reuse: f32 and bf16 GEMM with packing and
//! register-blocked microkernels (AVX-512F, AVX-512 BF16, AVX2+FMA, aarch64 NEON and a portable
//! scalar path, chosen at run time), row-wise softmax / log-softmax, LayerNorm, GELU (erf form),
//! bias add, L2 normalisation, cosine scores and deterministic top-k, and quantised (Q4_0 / Q8)
//! dot products.
//!
//! The crate is `#![no_std]`. Features:
//! - `alloc`: everything that needs scratch memory (GEMM packing, top-k);
//! - `std` (default): run-time CPU-feature detection and multi-threaded drivers (rayon);
//! - `cuda`: GPU kernels (the `cuda` module: cuBLAS GEMM, NVRTC-compiled softmax, LayerNorm,
//!   GELU, L2 and top-k), loaded dynamically: nothing CUDA is needed to build.
//!
//! Without `std`, the ISA is chosen from the compile-time target features.
//!
//! Every kernel has a scalar f64 reference in [`mod@reference`], which the tests compare every ISA
//! path against.
//!
//! Parallelism is explicit: kernels that can use several threads take a [`Par`] argument, in the
//! spirit of faer.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod arch;
mod error;
mod mat;
mod par;
mod simd;

pub mod activation;
pub mod norm;
pub mod quant;
pub mod reference;
pub mod softmax;

#[cfg(feature = "alloc")]
pub mod cosine;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "alloc")]
pub mod gemm;

pub use arch::{detected_isa, Isa};
pub use error::KernelError;
pub use half::bf16;
pub use mat::{MatMut, MatRef};
pub use par::Par;
