//! Quantised weights and dot products.
//!
//! - Q4_0 (the format of the E5S1 model files): blocks of 32 weights, each an f16 scale `d` and
//!   16 bytes of 4-bit values; `w[j] = ((qs[j] & 0x0F) - 8) * d`, `w[j + 16] = ((qs[j] >> 4) - 8) * d`.
//! - Q8_0: blocks of 32 `i8` with an f32 scale, for integer dot products.

use half::f16;

use crate::KernelError;

/// Weights per quantisation block.
pub const QK: usize = 32;
/// Bytes per Q4_0 block.
pub const Q4_0_BLOCK_BYTES: usize = 18;

/// Bytes that `n` Q4_0 weights take (`n` must be a multiple of [`QK`]).
pub fn q4_0_bytes(n: usize) -> Option<usize> {
    if !n.is_multiple_of(QK) {
        return None;
    }
    (n / QK).checked_mul(Q4_0_BLOCK_BYTES)
}

fn check_q4(op: &'static str, bytes: &[u8], n: usize) -> Result<(), KernelError> {
    if !n.is_multiple_of(QK) {
        return crate::error::check(op, "weights modulo 32", 0, n % QK);
    }
    crate::error::check(
        op,
        "Q4_0 bytes (18 per 32 weights)",
        n / QK * Q4_0_BLOCK_BYTES,
        bytes.len(),
    )
}

/// Dequantises Q4_0 `bytes` into `out` (`out.len()` weights, a multiple of 32).
pub fn dequantize_q4_0(bytes: &[u8], out: &mut [f32]) -> Result<(), KernelError> {
    check_q4("dequantize_q4_0", bytes, out.len())?;
    for (blk, w) in bytes
        .chunks_exact(Q4_0_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK))
    {
        let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
        for j in 0..16 {
            let q = blk[2 + j];
            w[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
            w[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
    Ok(())
}

/// Dot product of f32 `x` with a row of Q4_0 weights (`x.len()` weights), without
/// dequantising the row into memory.
pub fn dot_f32_q4_0(x: &[f32], bytes: &[u8]) -> Result<f32, KernelError> {
    check_q4("dot_f32_q4_0", bytes, x.len())?;
    let mut total = 0.0f32;
    for (blk, xs) in bytes.chunks_exact(Q4_0_BLOCK_BYTES).zip(x.chunks_exact(QK)) {
        let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
        let mut acc = 0.0f32;
        for j in 0..16 {
            let q = blk[2 + j];
            acc +=
                ((q & 0x0F) as i32 - 8) as f32 * xs[j] + ((q >> 4) as i32 - 8) as f32 * xs[j + 16];
        }
        total += acc * d;
    }
    Ok(total)
}

/// Q8_0-quantised vector: one scale per 32 values.
#[derive(Debug, Clone, PartialEq)]
#[cfg(feature = "alloc")]
pub struct Q8Vec {
    /// The quantised values, `round(x / scale)` in `[-127, 127]`.
    pub q: alloc::vec::Vec<i8>,
    /// One scale per block of 32 (`max |x| / 127`).
    pub scales: alloc::vec::Vec<f32>,
}

/// Quantises `x` (length a multiple of 32) to Q8_0.
#[cfg(feature = "alloc")]
pub fn quantize_q8_0(x: &[f32]) -> Result<Q8Vec, KernelError> {
    crate::error::check("quantize_q8_0", "length modulo 32", 0, x.len() % QK)?;
    let mut q = alloc::vec::Vec::with_capacity(x.len());
    let mut scales = alloc::vec::Vec::with_capacity(x.len() / QK);
    for blk in x.chunks_exact(QK) {
        let amax = blk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
        scales.push(d);
        q.extend(
            blk.iter()
                .map(|v| libm::roundf(v * inv).clamp(-127.0, 127.0) as i8),
        );
    }
    Ok(Q8Vec { q, scales })
}

/// Integer dot product of two Q8_0 vectors (i32 accumulation per block, f32 across blocks).
#[cfg(feature = "alloc")]
pub fn dot_q8_0(a: &Q8Vec, b: &Q8Vec) -> Result<f32, KernelError> {
    crate::error::check(
        "dot_q8_0",
        "length of b (= length of a)",
        a.q.len(),
        b.q.len(),
    )?;
    crate::error::check(
        "dot_q8_0",
        "scales (= length / 32)",
        a.q.len() / QK,
        a.scales.len(),
    )?;
    crate::error::check(
        "dot_q8_0",
        "scales of b (= length / 32)",
        b.q.len() / QK,
        b.scales.len(),
    )?;
    let mut total = 0.0f32;
    for ((qa, qb), (sa, sb)) in
        a.q.chunks_exact(QK)
            .zip(b.q.chunks_exact(QK))
            .zip(a.scales.iter().zip(&b.scales))
    {
        let acc: i32 = qa.iter().zip(qb).map(|(&x, &y)| x as i32 * y as i32).sum();
        total += acc as f32 * sa * sb;
    }
    Ok(total)
}
