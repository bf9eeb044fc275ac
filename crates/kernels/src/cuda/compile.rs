//! Run-time compilation of `kernels.cu` with NVRTC, and loading it into a context.
//!
//! The kernels are compiled to a CUBIN for the device's own architecture first (`sm_XY`):
//! a CUBIN needs no PTX JIT, so it loads even when the driver is older than NVRTC (CUDA minor
//! version compatibility covers CUBINs, not PTX). If that fails (an NVRTC that does not know the
//! architecture, or a driver that refuses the image), PTX for `compute_XY` and then PTX for
//! NVRTC's default architecture are tried; the error lists every attempt.

use std::ffi::{c_char, CString};
use std::format;
use std::string::{String, ToString};
use std::sync::Arc;
use std::vec;
use std::vec::Vec;

use cudarc::driver::{CudaContext, CudaModule};
use cudarc::nvrtc::{result as nvrtc_result, sys as nvrtc_sys, Ptx};

use super::CudaError;

/// The CUDA C source of every kernel.
pub(crate) const SOURCE: &str = include_str!("kernels.cu");

/// An NVRTC program, destroyed on drop.
struct Program(nvrtc_sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the program was created by `create_program` and is destroyed only here.
        let _ = unsafe { nvrtc_result::destroy_program(self.0) };
    }
}

fn c_chars_to_string(v: &[c_char]) -> String {
    let bytes: Vec<u8> = v.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Compiles [`SOURCE`] with `options`; returns a CUBIN image when `cubin`, else PTX text.
fn compile(options: &[String], cubin: bool) -> Result<Ptx, String> {
    let src = CString::new(SOURCE).map_err(|e| e.to_string())?;
    let name = CString::new("multiret_kernels.cu").map_err(|e| e.to_string())?;
    let prog = Program(
        nvrtc_result::create_program(&src, Some(&name))
            .map_err(|e| format!("nvrtcCreateProgram: {e}"))?,
    );
    // SAFETY: `prog` is a live program; the options contain no NUL byte.
    if let Err(e) = unsafe { nvrtc_result::compile_program(prog.0, options) } {
        // SAFETY: as above.
        let log = unsafe { nvrtc_result::get_program_log(prog.0) }
            .map(|l| c_chars_to_string(&l))
            .unwrap_or_default();
        return Err(format!("nvrtcCompileProgram: {e}; log: {}", log.trim()));
    }
    if cubin {
        let mut size = 0usize;
        // SAFETY: `prog` is live and compiled; `size` is a valid out-pointer.
        unsafe { nvrtc_sys::nvrtcGetCUBINSize(prog.0, &mut size) }
            .result()
            .map_err(|e| format!("nvrtcGetCUBINSize: {e}"))?;
        if size <= 1 {
            return Err("NVRTC produced no CUBIN".into());
        }
        let mut image = vec![0u8; size];
        // SAFETY: `image` holds the `size` bytes NVRTC asked for.
        unsafe { nvrtc_sys::nvrtcGetCUBIN(prog.0, image.as_mut_ptr() as *mut c_char) }
            .result()
            .map_err(|e| format!("nvrtcGetCUBIN: {e}"))?;
        Ok(Ptx::from_binary(image))
    } else {
        // SAFETY: `prog` is live and compiled.
        let ptx =
            unsafe { nvrtc_result::get_ptx(prog.0) }.map_err(|e| format!("nvrtcGetPTX: {e}"))?;
        // `Ptx::from_src` is turned into a C string by cudarc (which panics on a NUL byte), so
        // the terminating NUL that NVRTC includes is cut off here.
        Ok(Ptx::from_src(c_chars_to_string(&ptx)))
    }
}

/// The NVRTC version `(major, minor)`, if it can be read.
pub(crate) fn nvrtc_version() -> Option<(i32, i32)> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two valid out-pointers.
    let r = unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) };
    r.result().ok().map(|_| (major, minor))
}

/// Compiles the kernels for a device of compute capability `cc` and loads them into `ctx`.
/// Returns the module and a description of the image that was loaded.
pub(crate) fn load_kernels(
    ctx: &Arc<CudaContext>,
    cc: (i32, i32),
) -> Result<(Arc<CudaModule>, String), CudaError> {
    let (major, minor) = cc;
    let attempts: [(String, Vec<String>, bool); 3] = [
        (
            format!("CUBIN for sm_{major}{minor}"),
            vec![format!("--gpu-architecture=sm_{major}{minor}")],
            true,
        ),
        (
            format!("PTX for compute_{major}{minor}"),
            vec![format!("--gpu-architecture=compute_{major}{minor}")],
            false,
        ),
        (
            "PTX for NVRTC's default architecture".into(),
            Vec::new(),
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (label, options, cubin) in attempts {
        match compile(&options, cubin) {
            Ok(image) => match ctx.load_module(image) {
                Ok(module) => return Ok((module, label)),
                Err(e) => failures.push(format!("{label}: loading the module failed: {e}")),
            },
            Err(e) => failures.push(format!("{label}: {e}")),
        }
    }
    Err(CudaError::Compile(failures.join(" | ")))
}
