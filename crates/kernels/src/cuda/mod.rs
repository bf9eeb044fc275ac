//! GPU kernels (feature `cuda`): softmax (scaled, masked), LayerNorm (with a fused residual),
//! bias + GELU, L2 normalisation, f32 <-> bf16 conversion and cosine top-k, compiled at run time
//! with NVRTC, and f32 / bf16 GEMM through cuBLAS.
//!
//! CUDA is loaded at run time through [`cudarc`] (feature `dynamic-loading`, bindings for CUDA
//! 12.9 that only use entry points present since 12.0 and unchanged since, each resolved on
//! first use): nothing CUDA is needed to build, and a binary built here runs on any machine with
//! a CUDA 12 or newer driver (`libcuda.so.1`) and NVRTC and cuBLAS on the loader path, found as
//! `libnvrtc.so.12` / `libcublas.so.12` or through a toolkit's unversioned `libnvrtc.so` /
//! `libcublas.so` links (that is how a CUDA 13.0 toolkit with driver 580 on an H100 was found).
//!
//! - [`available`] says whether CUDA can be used here, and if not, why (it never panics: cudarc
//!   panics when a library is missing, so the libraries are looked for first);
//! - [`Gpu`] holds a context, one stream, a cuBLAS handle and the compiled kernels; every method
//!   works on device buffers ([`CudaSlice`], [`CudaView`], [`CudaViewMut`]: anything
//!   [`DevicePtr`] / [`DevicePtrMut`]) and is asynchronous on the stream, except the downloads
//!   and the top-k functions, which return host data.
//!
//! Layout conventions: matrices are row-major, as on the CPU side; bf16 buffers are
//! `CudaSlice<u16>` holding bf16 bit patterns ([`Gpu::upload_bf16`], [`Gpu::f32_to_bf16`]).
//! Numerics match the CPU kernels of this crate (same conventions for masked rows, NaN,
//! infinities and top-k ties); f32 GEMM is true f32 (cuBLAS default math, no TF32, unless
//! [`Gpu::set_tf32`] allows it).
//!
//! A `Gpu` is not meant to be used from several threads at once (its cuBLAS handle and stream
//! are shared by all its methods); give each thread its own.

mod blas;
mod compile;
mod error;
mod ops;
mod topk;

use std::boxed::Box;
use std::format;
use std::string::{String, ToString};
use std::sync::Arc;
use std::vec;
use std::vec::Vec;

pub use cudarc;
pub use cudarc::driver::{
    CudaContext, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, DeviceRepr,
    DeviceSlice, ValidAsZeroBits,
};
pub use error::CudaError;
pub use ops::SoftmaxMask;
pub use topk::MAX_GPU_K;

use cudarc::cublas::sys::{cublasMath_t, cublasSetMathMode};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaFunction, CudaModule, LaunchConfig};

/// Runs `f`, turning a panic inside it (cudarc panics on a missing library or symbol) into
/// [`CudaError::Panic`].
pub(crate) fn guard<T>(
    op: &'static str,
    f: impl FnOnce() -> Result<T, CudaError>,
) -> Result<T, CudaError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(CudaError::Panic {
            op,
            message: panic_message(payload),
        }),
    }
}

fn panic_message(payload: Box<dyn core::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// Checks that the three libraries can be loaded, without letting cudarc panic.
fn libraries_present() -> Result<(), String> {
    // SAFETY: `is_culib_present` only tries `dlopen` on cudarc's candidate names (and closes
    // what it opened); no symbol of the library is called.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(
            "the CUDA driver library (libcuda.so.1 / libcuda.so) was not found: this \
                    machine has no NVIDIA driver, or it is not on the loader path"
                .into(),
        );
    }
    // SAFETY: as above, for NVRTC.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(
            "the NVRTC library (libnvrtc.so or libnvrtc.so.12) was not found: install a CUDA \
                    toolkit (or its NVRTC runtime) and put its lib64 on LD_LIBRARY_PATH"
                .into(),
        );
    }
    // SAFETY: as above, for cuBLAS.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(
            "the cuBLAS library (libcublas.so or libcublas.so.12) was not found: install a \
                    CUDA toolkit (or its cuBLAS runtime) and put its lib64 on LD_LIBRARY_PATH"
                .into(),
        );
    }
    Ok(())
}

/// Whether the GPU path can run here: the driver, NVRTC and cuBLAS libraries load, the driver
/// reports a device, and a context can be created on device 0. `Err` carries the reason in
/// words (tests print it as `skipping: <reason>`). Never panics.
pub fn available() -> Result<(), String> {
    libraries_present()?;
    let count = guard("cuDeviceGetCount", || {
        CudaContext::device_count().map_err(|e| CudaError::driver("cuInit / cuDeviceGetCount", e))
    })
    .map_err(|e| format!("the CUDA driver cannot be used: {e}"))?;
    if count < 1 {
        return Err("the CUDA driver reports no device".into());
    }
    guard("cuDevicePrimaryCtxRetain", || {
        CudaContext::new(0).map_err(|e| CudaError::driver("creating a context on device 0", e))
    })
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// The functions of the compiled module.
struct Kernels {
    softmax_rows: CudaFunction,
    layer_norm_rows: CudaFunction,
    bias_gelu: CudaFunction,
    l2_normalize_rows: CudaFunction,
    f32_to_bf16: CudaFunction,
    bf16_to_f32: CudaFunction,
    top_k_rows: CudaFunction,
}

impl Kernels {
    fn load(module: &Arc<CudaModule>) -> Result<Self, CudaError> {
        let f = |name: &'static str| {
            module
                .load_function(name)
                .map_err(|e| CudaError::driver(name, e))
        };
        Ok(Kernels {
            softmax_rows: f("mr_softmax_rows")?,
            layer_norm_rows: f("mr_layer_norm_rows")?,
            bias_gelu: f("mr_bias_gelu")?,
            l2_normalize_rows: f("mr_l2_normalize_rows")?,
            f32_to_bf16: f("mr_f32_to_bf16")?,
            bf16_to_f32: f("mr_bf16_to_f32")?,
            top_k_rows: f("mr_top_k_rows")?,
        })
    }
}

/// One CUDA device with a stream, a cuBLAS handle and the kernels compiled for it (once, at
/// creation). See the [module docs](self).
pub struct Gpu {
    kernels: Kernels,
    blas: CudaBlas,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    name: String,
    cc: (i32, i32),
    image: String,
}

impl core::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.ctx.ordinal())
            .field("name", &self.name)
            .field("compute_capability", &self.cc)
            .field("kernels", &self.image)
            .finish()
    }
}

impl Gpu {
    /// Opens device `ordinal`: retains its primary context, creates a stream and a cuBLAS handle
    /// (default math: no TF32) and compiles the kernels with NVRTC. Returns
    /// [`CudaError::Unavailable`] when a library is missing, never panics.
    pub fn new(ordinal: usize) -> Result<Self, CudaError> {
        libraries_present().map_err(CudaError::Unavailable)?;
        guard("Gpu::new", || Self::open(ordinal))
    }

    fn open(ordinal: usize) -> Result<Self, CudaError> {
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| CudaError::driver("creating the context (cuDevicePrimaryCtxRetain)", e))?;
        // SAFETY: every buffer this `Gpu` allocates lives on its one stream and every operation
        // runs on that stream, so stream order alone orders all uses; cudarc's cross-stream
        // event tracking is not needed (buffers made before this call keep theirs).
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| CudaError::driver("creating the stream", e))?;
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| CudaError::cublas("creating the cuBLAS handle", e))?;
        let gpu_cc = ctx
            .compute_capability()
            .map_err(|e| CudaError::driver("reading the compute capability", e))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown device".into());
        let (module, image) = compile::load_kernels(&ctx, gpu_cc)?;
        let kernels = Kernels::load(&module)?;
        let gpu = Gpu {
            kernels,
            blas,
            stream,
            ctx,
            name,
            cc: gpu_cc,
            image,
        };
        gpu.set_tf32(false)?;
        Ok(gpu)
    }

    /// The context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream every method runs on; allocate buffers used with this `Gpu` on it (the
    /// upload helpers do).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's compute capability `(major, minor)`.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.cc
    }

    /// One line for logs: device, compute capability, driver and NVRTC versions, and which
    /// kernel image was loaded.
    pub fn describe(&self) -> String {
        let mut v = 0i32;
        // SAFETY: a valid out-pointer; the driver library is loaded (a context exists).
        let driver = match unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) }.result() {
            Ok(()) => format!("{}.{}", v / 1000, (v % 1000) / 10),
            Err(_) => "unknown".into(),
        };
        let nvrtc = match compile::nvrtc_version() {
            Some((a, b)) => format!("{a}.{b}"),
            None => "unknown".into(),
        };
        format!(
            "{} (device {}, sm_{}{}), driver API {driver}, NVRTC {nvrtc}, kernels: {}",
            self.name,
            self.ctx.ordinal(),
            self.cc.0,
            self.cc.1,
            self.image
        )
    }

    /// Allows (`true`) or forbids (`false`, the default) TF32 tensor cores in f32 GEMM. TF32
    /// rounds the inputs to 10 mantissa bits: faster, about 1e-3 relative error.
    pub fn set_tf32(&self, allow: bool) -> Result<(), CudaError> {
        let mode = if allow {
            cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        guard("cublasSetMathMode", || {
            self.bind()?;
            // SAFETY: the handle is live for as long as `self`.
            unsafe { cublasSetMathMode(*self.blas.handle(), mode) }
                .result()
                .map_err(|e| CudaError::cublas("cublasSetMathMode", e))
        })
    }

    /// Waits for all work queued on the stream.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        guard("synchronize", || {
            self.stream
                .synchronize()
                .map_err(|e| CudaError::driver("cuStreamSynchronize", e))
        })
    }

    fn bind(&self) -> Result<(), CudaError> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| CudaError::driver("binding the context to this thread", e))
    }

    /// Copies `host` into a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>, CudaError> {
        guard("upload", || {
            self.stream
                .clone_htod(host)
                .map_err(|e| CudaError::driver("upload (cuMemcpyHtoDAsync)", e))
        })
    }

    /// Copies `host` into the start of the device buffer `dst` (which must be at least as long).
    pub fn upload_into<T: DeviceRepr, D: DevicePtrMut<T>>(
        &self,
        host: &[T],
        dst: &mut D,
    ) -> Result<(), CudaError> {
        check_len("upload_into", "destination", dst.len(), host.len())?;
        guard("upload_into", || {
            self.stream
                .memcpy_htod(host, dst)
                .map_err(|e| CudaError::driver("upload_into (cuMemcpyHtoDAsync)", e))
        })
    }

    /// A new zeroed device buffer of `len` elements.
    pub fn alloc_zeros<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> Result<CudaSlice<T>, CudaError> {
        guard("alloc_zeros", || {
            self.stream
                .alloc_zeros(len)
                .map_err(|e| CudaError::driver("alloc_zeros", e))
        })
    }

    /// Copies a device buffer to the host (waits for the stream).
    pub fn download<T: DeviceRepr + Default + Clone, S: DevicePtr<T>>(
        &self,
        src: &S,
    ) -> Result<Vec<T>, CudaError> {
        self.download_prefix(src, src.len())
    }

    /// Copies the first `n` elements of a device buffer to the host (waits for the stream).
    pub fn download_prefix<T: DeviceRepr + Default + Clone, S: DevicePtr<T>>(
        &self,
        src: &S,
        n: usize,
    ) -> Result<Vec<T>, CudaError> {
        check_len("download_prefix", "source", src.len(), n)?;
        let mut out = vec![T::default(); n];
        if n == 0 {
            return Ok(out);
        }
        guard("download", || {
            self.bind()?;
            let (ptr, _record) = src.device_ptr(&self.stream);
            // SAFETY: `ptr` addresses at least `n` elements of `T` (checked above), live while
            // `src` is borrowed; `out` holds `n` elements and is not moved before the
            // synchronisation below completes the copy.
            unsafe {
                cudarc::driver::result::memcpy_dtoh_async(&mut out, ptr, self.stream.cu_stream())
            }
            .map_err(|e| CudaError::driver("download (cuMemcpyDtoHAsync)", e))?;
            self.stream
                .synchronize()
                .map_err(|e| CudaError::driver("download (cuStreamSynchronize)", e))
        })?;
        Ok(out)
    }

    /// Copies the first `n` elements of `src` to the start of `dst`, on the device.
    pub fn copy<T: DeviceRepr, S: DevicePtr<T>, D: DevicePtrMut<T>>(
        &self,
        src: &S,
        dst: &mut D,
        n: usize,
    ) -> Result<(), CudaError> {
        check_len("copy", "source", src.len(), n)?;
        check_len("copy", "destination", dst.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        guard("copy", || {
            self.bind()?;
            let (s, _rs) = src.device_ptr(&self.stream);
            let (d, _rd) = dst.device_ptr_mut(&self.stream);
            // SAFETY: both pointers address at least `n` elements of `T` (checked above) and
            // stay allocated while borrowed; the copy is ordered on the stream.
            unsafe {
                cudarc::driver::result::memcpy_dtod_async(
                    d,
                    s,
                    n * core::mem::size_of::<T>(),
                    self.stream.cu_stream(),
                )
            }
            .map_err(|e| CudaError::driver("copy (cuMemcpyDtoDAsync)", e))
        })
    }

    /// Uploads bf16 values as their bit patterns (`CudaSlice<u16>`, the bf16 buffer type of
    /// this module).
    pub fn upload_bf16(&self, host: &[half::bf16]) -> Result<CudaSlice<u16>, CudaError> {
        let bits: Vec<u16> = host.iter().map(|v| v.to_bits()).collect();
        self.upload(&bits)
    }

    /// Downloads a bf16 buffer (bit patterns) as bf16 values.
    pub fn download_bf16<S: DevicePtr<u16>>(&self, src: &S) -> Result<Vec<half::bf16>, CudaError> {
        Ok(self
            .download(src)?
            .into_iter()
            .map(half::bf16::from_bits)
            .collect())
    }
}

/// `Err` unless `have >= need`.
pub(crate) fn check_len(
    op: &'static str,
    what: &str,
    have: usize,
    need: usize,
) -> Result<(), CudaError> {
    if have >= need {
        Ok(())
    } else {
        Err(CudaError::shape(
            op,
            format!("{what} has {have} elements, needs at least {need}"),
        ))
    }
}

/// `v` as an `i32` kernel / cuBLAS argument.
pub(crate) fn to_i32(op: &'static str, what: &str, v: usize) -> Result<i32, CudaError> {
    i32::try_from(v).map_err(|_| CudaError::shape(op, format!("{what} = {v} exceeds i32::MAX")))
}

/// `a * b`, or a shape error on overflow.
pub(crate) fn mul(op: &'static str, a: usize, b: usize) -> Result<usize, CudaError> {
    a.checked_mul(b)
        .ok_or_else(|| CudaError::shape(op, format!("{a} x {b} overflows usize")))
}

/// Largest row length the row kernels take (their `int` loops stay far from overflow).
pub(crate) const MAX_COLS: usize = 1 << 30;

/// Launch shape of the one-block-per-row kernels: a multiple of 32 threads, 32..=1024.
pub(crate) fn row_launch(rows: usize, cols: usize, shared_mem_bytes: u32) -> LaunchConfig {
    let threads = (cols.div_ceil(32) * 32).clamp(32, 1024) as u32;
    LaunchConfig {
        grid_dim: (rows.clamp(1, 65_535) as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes,
    }
}

/// Launch shape of the element-wise (grid-stride) kernels.
pub(crate) fn elementwise_launch(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(256).clamp(1, 65_535) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}
