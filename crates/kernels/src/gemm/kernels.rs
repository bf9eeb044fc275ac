//! The microkernels, one per ISA, and the dispatcher that picks one.

use super::driver::{self, Elem, Epi, Micro};
use crate::activation;
use crate::{bf16, Isa, MatMut, MatRef, Par};

/// An f32 that the packers round to bf16 (the f32 operand of the mixed GEMM on paths that
/// widen bf16 to f32).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(super) struct RoundedToBf16(f32);

impl Elem for RoundedToBf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::from_f32(self.0).to_f32()
    }
    #[inline(always)]
    fn to_bf16(self) -> bf16 {
        bf16::from_f32(self.0)
    }
}

fn effective(isa: Isa) -> Isa {
    if isa.is_supported() {
        isa
    } else {
        Isa::Scalar
    }
}

/// f32 GEMM on `isa` (scalar when unsupported).
#[allow(clippy::too_many_arguments)]
pub(super) fn run_f32(
    isa: Isa,
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: MatMut<'_, f32>,
    epi: Epi<'_>,
    par: Par,
) {
    dispatch_widened(effective(isa), alpha, a, b, beta, c, epi, par)
}

/// bf16 (or f32 x bf16) GEMM on `isa`.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_bf16<TA: BfOperand>(
    isa: Isa,
    alpha: f32,
    a: MatRef<'_, TA>,
    b: MatRef<'_, bf16>,
    beta: f32,
    c: MatMut<'_, f32>,
    epi: Epi<'_>,
    par: Par,
) {
    match effective(isa) {
        #[cfg(target_arch = "x86_64")]
        Isa::Amx => {
            // A bf16 A is read where it lies only when nothing needs zero padding: rows and
            // depth multiples of the 32 x 32 tile.
            let direct = driver::direct_a::<x86::Amx, TA>(&a)
                .filter(|_| a.rows().is_multiple_of(32) && a.cols().is_multiple_of(32));
            // SAFETY: `effective` returned Amx: the CPU has AVX-512 BF16 and AMX, and the OS
            // granted tile data; `direct` is `a` itself.
            unsafe { gemm_a_in_place::<x86::Amx, TA>(direct, 32, alpha, a, b, beta, c, epi, par) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Bf16 => {
            // Packing an A that is not bf16 in place would round it element by element once
            // per column block and, when the parts split the columns, once per part.
            let direct = driver::direct_a::<x86::Avx512Bf16, TA>(&a);
            // SAFETY: `effective` returned Avx512Bf16, so the CPU has avx512f and avx512bf16;
            // `direct` is `a` itself.
            unsafe {
                gemm_a_in_place::<x86::Avx512Bf16, TA>(direct, 12, alpha, a, b, beta, c, epi, par)
            }
        }
        other => dispatch_widened(other, alpha, TA::rounded(a), b, beta, c, epi, par),
    }
}

/// A bf16 GEMM on kernel `K` with A read in place: `direct` when A already has a layout the
/// kernel reads, otherwise a row-major bf16 copy made once (f32 rounded, vectorised where the
/// CPU allows), rows padded with zeros to a multiple of `row_multiple` and depth to 32.
///
/// # Safety
/// The CPU must support the ISA of `K`; `direct`, when given, must be `a` itself.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_a_in_place<K: Micro<P = bf16>, TA: BfOperand>(
    direct: Option<driver::DirectA<'_, bf16>>,
    row_multiple: usize,
    alpha: f32,
    a: MatRef<'_, TA>,
    b: MatRef<'_, bf16>,
    beta: f32,
    c: MatMut<'_, f32>,
    epi: Epi<'_>,
    par: Par,
) {
    let prepared;
    let direct = match direct {
        Some(d) => d,
        None if a.rows() == 0 || a.cols() == 0 => {
            // SAFETY: forwarded contract (an empty A is never read).
            return unsafe { driver::gemm::<K, _, _>(alpha, TA::rounded(a), b, beta, c, epi, par) };
        }
        None => {
            prepared = x86::prepare_a_bf16(&a, par, row_multiple);
            driver::DirectA {
                data: &prepared.data[..],
                rs: prepared.rs,
                rows: prepared.rows,
                padded_k: true,
            }
        }
    };
    let view = MatRef::new(direct.data, a.rows(), a.cols(), direct.rs, 1)
        .expect("the buffer holds every row of A");
    // SAFETY: forwarded contract; `direct` is the same matrix as `view` (padded with zeros when
    // copied).
    unsafe { driver::gemm_with_direct::<K, _, _>(alpha, view, Some(direct), b, beta, c, epi, par) }
}

/// The A operand types of the bf16 GEMMs.
pub(super) trait BfOperand: Elem {
    /// The element type whose packers round to bf16.
    type Rounded: Elem;
    /// The same view, read through [`BfOperand::Rounded`].
    fn rounded(a: MatRef<'_, Self>) -> MatRef<'_, Self::Rounded>;
}

impl BfOperand for bf16 {
    type Rounded = bf16;
    fn rounded(a: MatRef<'_, Self>) -> MatRef<'_, bf16> {
        a
    }
}

impl BfOperand for f32 {
    type Rounded = RoundedToBf16;
    fn rounded(a: MatRef<'_, Self>) -> MatRef<'_, RoundedToBf16> {
        let s = a.as_slice();
        // SAFETY: RoundedToBf16 is repr(transparent) over f32: same size, alignment and validity.
        let r: &[RoundedToBf16] =
            unsafe { core::slice::from_raw_parts(s.as_ptr().cast(), s.len()) };
        MatRef::new(r, a.rows(), a.cols(), a.row_stride(), a.col_stride())
            .expect("same shape and strides as an already checked view")
    }
}

/// f32-accumulating GEMM with operands widened to f32 by the packers.
#[allow(clippy::too_many_arguments)]
fn dispatch_widened<TA: Elem, TB: Elem>(
    isa: Isa,
    alpha: f32,
    a: MatRef<'_, TA>,
    b: MatRef<'_, TB>,
    beta: f32,
    c: MatMut<'_, f32>,
    epi: Epi<'_>,
    par: Par,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller passed an ISA that `effective` checked: the CPU has avx512f.
        Isa::Avx512 | Isa::Avx512Bf16 | Isa::Amx => unsafe {
            driver::gemm::<x86::Avx512, _, _>(alpha, a, b, beta, c, epi, par)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above: the CPU has avx2 and fma.
        Isa::Avx2 => unsafe { driver::gemm::<x86::Avx2, _, _>(alpha, a, b, beta, c, epi, par) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above: the CPU has neon.
        Isa::Neon => unsafe { driver::gemm::<arm::Neon, _, _>(alpha, a, b, beta, c, epi, par) },
        // SAFETY: the scalar kernel needs no CPU feature.
        _ => unsafe { driver::gemm::<Scalar, _, _>(alpha, a, b, beta, c, epi, par) },
    }
}

/// The portable 4 x 4 kernel.
pub(super) struct Scalar;

impl Micro for Scalar {
    type P = f32;
    const MR: usize = 4;
    const NR: usize = 4;
    const KSTEP: usize = 1;
    const KC: usize = 256;
    const NC: usize = 1024;

    unsafe fn kernel(
        kc: usize,
        rows: usize,
        alpha: f32,
        a: *const f32,
        a_rs: usize,
        a_ks: usize,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        debug_assert_eq!(rows, 4);
        let mut acc = [[0.0f32; 4]; 4];
        // SAFETY: the caller guarantees 4 * kc readable elements behind `b`.
        let b = unsafe { core::slice::from_raw_parts(b, 4 * kc) };
        for (p, bk) in b.chunks_exact(4).enumerate() {
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: unit (i, p) of the A strip is readable (caller's contract).
                let ai = unsafe { *a.add(i * a_rs + p * a_ks) };
                for (j, v) in row.iter_mut().enumerate() {
                    *v += ai * bk[j];
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                // SAFETY: (i, j) is inside the 4 x 4 tile the caller made valid.
                unsafe {
                    let p = c.add(i * rsc + j);
                    *p = if beta == 0.0 {
                        alpha * v
                    } else {
                        alpha * v + beta * *p
                    };
                }
            }
        }
    }

    fn epilogue_row(row: &mut [f32], bias: Option<&[f32]>, gelu: bool) {
        activation::bias_gelu_with(Isa::Scalar, row, bias, gelu);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Micro;
    use crate::activation;
    use crate::{bf16, Isa};
    use core::arch::x86_64::*;

    /// AVX-512F, 12 x 32 tile (24 zmm accumulators).
    pub(crate) struct Avx512;

    impl Micro for Avx512 {
        type P = f32;
        const MR: usize = 12;
        const NR: usize = 32;
        const KSTEP: usize = 1;
        const KC: usize = 384;
        const NC: usize = 768;
        const EDGE_ROWS: bool = true;

        unsafe fn kernel(
            kc: usize,
            rows: usize,
            alpha: f32,
            a: *const f32,
            a_rs: usize,
            a_ks: usize,
            b: *const f32,
            beta: f32,
            c: *mut f32,
            rsc: usize,
        ) {
            // SAFETY: forwarded contract; the dispatcher checked avx512f.
            unsafe { avx512_mx32(kc, rows, alpha, a, a_rs, a_ks, b, beta, c, rsc) }
        }

        fn epilogue_row(row: &mut [f32], bias: Option<&[f32]>, gelu: bool) {
            activation::bias_gelu_with(Isa::Avx512, row, bias, gelu);
        }
    }

    /// Reads A row `i` at step `s` through four base pointers (rows 0, 3, 6, 9), so that every
    /// address is `base + {0, 1, 2} * row stride`, which x86 addressing encodes directly.
    macro_rules! a_unit {
        ($direct:expr, $base:expr, $a:expr, $a_rs:expr, $i:expr) => {
            if $direct {
                $base[$i / 3].add(($i % 3) * $a_rs)
            } else {
                $a.add($i)
            }
        };
    }

    /// Runs the `rows x 32` kernel (`rows <= 12`), one instance per row count, with A packed
    /// (`a_ks == 12`, `a_rs == 1`) or read in place (`a_ks == 1`).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn avx512_mx32(
        kc: usize,
        rows: usize,
        alpha: f32,
        a: *const f32,
        a_rs: usize,
        a_ks: usize,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        macro_rules! by_rows {
            ($direct:literal, $a_rs:expr, $($m:literal)*) => {
                match rows {
                    // SAFETY: forwarded contract (rows == $m).
                    $($m => unsafe {
                        avx512_mx32_impl::<$direct, $m>(kc, alpha, a, $a_rs, b, beta, c, rsc)
                    },)*
                    _ => unreachable!("tile rows {rows} outside 1..=12"),
                }
            };
        }
        if a_ks == 1 {
            by_rows!(true, a_rs, 12 11 10 9 8 7 6 5 4 3 2 1)
        } else {
            debug_assert!(a_rs == 1 && a_ks == 12);
            by_rows!(false, 1, 12 11 10 9 8 7 6 5 4 3 2 1)
        }
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    #[inline]
    unsafe fn avx512_mx32_impl<const DIRECT: bool, const M: usize>(
        kc: usize,
        alpha: f32,
        a: *const f32,
        a_rs: usize,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; M];
        let (mut a, mut b) = (a, b);
        // Base pointers for rows 0, 3, 6, 9, those below M only (the others stay at `a`).
        let mut base = [a; 4];
        if DIRECT {
            for (g, p) in base.iter_mut().enumerate().take(M.div_ceil(3)) {
                // SAFETY: row 3g < M exists in the operand (direct mode reads M rows).
                *p = unsafe { a.add(3 * g * a_rs) };
            }
        }
        for _ in 0..kc {
            // SAFETY: each step reads 32 elements of the B strip and unit (i, step) of the A
            // strip for i < M, which the caller guaranteed for kc steps.
            unsafe {
                let b0 = _mm512_loadu_ps(b);
                let b1 = _mm512_loadu_ps(b.add(16));
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = _mm512_set1_ps(*a_unit!(DIRECT, base, a, a_rs, i));
                    row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
                }
                if DIRECT {
                    for p in base.iter_mut().take(M.div_ceil(3)) {
                        *p = p.add(1);
                    }
                } else {
                    a = a.add(12);
                }
                b = b.add(32);
            }
        }
        // SAFETY: the caller made the M x 32 tile at `c` valid.
        unsafe { store_tile_avx512(&acc, alpha, beta, c, rsc) };
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store_tile_avx512<const M: usize>(
        acc: &[[__m512; 2]; M],
        alpha: f32,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        let va = _mm512_set1_ps(alpha);
        let vb = _mm512_set1_ps(beta);
        for (i, row) in acc.iter().enumerate() {
            for (h, v) in row.iter().enumerate() {
                // SAFETY: row i, columns 16h..16h+16 of the caller's tile.
                unsafe {
                    let p = c.add(i * rsc + 16 * h);
                    let r = if beta == 0.0 {
                        _mm512_mul_ps(va, *v)
                    } else {
                        _mm512_fmadd_ps(va, *v, _mm512_mul_ps(vb, _mm512_loadu_ps(p)))
                    };
                    _mm512_storeu_ps(p, r);
                }
            }
        }
    }

    /// AVX-512 BF16, 12 x 32 tile over pairs of k (`vdpbf16ps`).
    pub(crate) struct Avx512Bf16;

    impl Micro for Avx512Bf16 {
        type P = bf16;
        const MR: usize = 12;
        const NR: usize = 32;
        const KSTEP: usize = 2;
        const KC: usize = 768;
        const NC: usize = 768;

        unsafe fn kernel(
            ksteps: usize,
            rows: usize,
            alpha: f32,
            a: *const bf16,
            a_rs: usize,
            a_ks: usize,
            b: *const bf16,
            beta: f32,
            c: *mut f32,
            rsc: usize,
        ) {
            debug_assert_eq!(rows, 12);
            // SAFETY: forwarded contract; the dispatcher checked avx512f and avx512bf16.
            unsafe { avx512bf16_12x32(ksteps, alpha, a, a_rs, a_ks, b, beta, c, rsc) }
        }

        fn epilogue_row(row: &mut [f32], bias: Option<&[f32]>, gelu: bool) {
            activation::bias_gelu_with(Isa::Avx512, row, bias, gelu);
        }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn avx512bf16_12x32(
        ksteps: usize,
        alpha: f32,
        a: *const bf16,
        a_rs: usize,
        a_ks: usize,
        b: *const bf16,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        // SAFETY: forwarded contract: (a_rs, a_ks) is (1, 12) for a packed strip or (rs, 1).
        unsafe {
            if a_ks == 1 {
                avx512bf16_12x32_impl::<true>(ksteps, alpha, a, a_rs, b, beta, c, rsc)
            } else {
                debug_assert!(a_rs == 1 && a_ks == 12);
                avx512bf16_12x32_impl::<false>(ksteps, alpha, a, 1, b, beta, c, rsc)
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    #[inline]
    unsafe fn avx512bf16_12x32_impl<const DIRECT: bool>(
        ksteps: usize,
        alpha: f32,
        a: *const bf16,
        a_rs: usize,
        b: *const bf16,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; 12];
        let (mut a, mut b) = (a.cast::<u32>(), b.cast::<__m512i>());
        // SAFETY: rows 0, 3, 6, 9 exist in the strip (direct mode reads 12 rows).
        let mut base = unsafe {
            if DIRECT {
                [a, a.add(3 * a_rs), a.add(6 * a_rs), a.add(9 * a_rs)]
            } else {
                [a; 4]
            }
        };
        for _ in 0..ksteps {
            // SAFETY: each step reads 64 bf16 (two zmm) of the B strip and unit (i, step) of the
            // A strip for i < 12, which the caller guaranteed; unaligned loads.
            unsafe {
                let b0: __m512bh = core::mem::transmute(_mm512_loadu_si512(b));
                let b1: __m512bh = core::mem::transmute(_mm512_loadu_si512(b.add(1)));
                for (i, row) in acc.iter_mut().enumerate() {
                    let pair = a_unit!(DIRECT, base, a, a_rs, i).read_unaligned();
                    let ai: __m512bh = core::mem::transmute(_mm512_set1_epi32(pair as i32));
                    row[0] = _mm512_dpbf16_ps(row[0], ai, b0);
                    row[1] = _mm512_dpbf16_ps(row[1], ai, b1);
                }
                if DIRECT {
                    for p in base.iter_mut() {
                        *p = p.add(1);
                    }
                } else {
                    a = a.add(12);
                }
                b = b.add(2);
            }
        }
        // SAFETY: the caller made the 12 x 32 tile at `c` valid.
        unsafe { store_tile_avx512(&acc, alpha, beta, c, rsc) };
    }

    /// An A operand prepared to be read in place: bf16, row-major, depth zero-padded to a
    /// multiple of 32 and rows to the kernel's strip.
    pub(crate) struct PreparedA {
        pub data: alloc::vec::Vec<bf16>,
        pub rs: usize,
        pub rows: usize,
    }

    /// Copies (and for f32, rounds) A into a row-major bf16 buffer with rows padded to a
    /// multiple of `row_multiple` (32 for AMX, the 12-row strip for AVX-512 BF16) and the depth
    /// to a multiple of 32, zeros in the padding. On CPUs with AVX-512 BF16 the conversion uses
    /// `vcvtneps2bf16` (round to nearest even; denormals flush to zero).
    pub(crate) fn prepare_a_bf16<T: super::Elem>(
        a: &crate::MatRef<'_, T>,
        par: crate::Par,
        row_multiple: usize,
    ) -> PreparedA {
        let (m, k) = (a.rows(), a.cols());
        let rs = k.div_ceil(32) * 32;
        let rows = m.div_ceil(row_multiple) * row_multiple;
        let mut data = alloc::vec![bf16::ZERO; rows * rs];
        let src = a.as_slice();
        let (ars, acs) = (a.row_stride(), a.col_stride());
        // f32 arrives as itself (gemm_f32_bf16 on AMX) or as its rounding view (the other
        // bf16 paths); both are plain f32 in memory.
        let is_f32 = core::any::TypeId::of::<T>() == core::any::TypeId::of::<f32>()
            || core::any::TypeId::of::<T>() == core::any::TypeId::of::<super::RoundedToBf16>();
        let fast = acs == 1 && is_f32 && crate::Isa::Avx512Bf16.is_supported();
        let copy = acs == 1 && core::any::TypeId::of::<T>() == core::any::TypeId::of::<bf16>();
        let fill = |i: usize, dst: &mut [bf16]| {
            let dst = &mut dst[..k];
            if fast {
                let row = &src[i * ars..i * ars + k];
                // SAFETY: T is f32 or RoundedToBf16 (repr(transparent) over f32): same size,
                // alignment and validity as f32.
                let row: &[f32] = unsafe { core::slice::from_raw_parts(row.as_ptr().cast(), k) };
                // SAFETY: the CPU has avx512f and avx512bf16 (`fast` checked it).
                unsafe { cvt_row_bf16(row, dst) };
            } else if copy {
                let row = &src[i * ars..i * ars + k];
                // SAFETY: T is bf16 itself (TypeId above): the cast is the identity.
                let row: &[bf16] = unsafe { core::slice::from_raw_parts(row.as_ptr().cast(), k) };
                dst.copy_from_slice(row);
            } else {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = src[i * ars + j * acs].to_bf16();
                }
            }
        };
        // Blocks of 16 rows. A read across its storage order (a transposed row-major matrix)
        // is converted in 16 x 16 tiles, so that reads and writes both stay within a few cache
        // lines; otherwise row by row.
        const BLK: usize = 16;
        let across = !fast && !copy && ars < acs;
        let fill_block = |b: usize, out: &mut [bf16]| {
            let (i0, i1) = (b * BLK, ((b + 1) * BLK).min(m));
            if across {
                for j0 in (0..k).step_by(BLK) {
                    let j1 = (j0 + BLK).min(k);
                    for i in i0..i1 {
                        let d = &mut out[(i - i0) * rs..];
                        for j in j0..j1 {
                            d[j] = src[i * ars + j * acs].to_bf16();
                        }
                    }
                }
            } else {
                for i in i0..i1 {
                    fill(i, &mut out[(i - i0) * rs..]);
                }
            }
        };
        if rs > 0 {
            let blocks = m.div_ceil(BLK);
            // Below ~64k elements the conversion takes a few microseconds: less than waking
            // another thread.
            #[cfg(feature = "std")]
            if par.degree() > 1 && m * k >= 1 << 16 {
                use rayon::prelude::*;
                data.par_chunks_mut(BLK * rs)
                    .take(blocks)
                    .enumerate()
                    .for_each(|(b, d)| fill_block(b, d));
                return PreparedA { data, rs, rows };
            }
            let _ = par;
            for (b, d) in data.chunks_mut(BLK * rs).take(blocks).enumerate() {
                fill_block(b, d);
            }
        }
        PreparedA { data, rs, rows }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn cvt_row_bf16(src: &[f32], dst: &mut [bf16]) {
        let n = src.len().min(dst.len());
        let main = n - n % 16;
        let mut j = 0;
        while j < main {
            // SAFETY: j + 16 <= n for both slices.
            unsafe {
                let v = _mm512_loadu_ps(src.as_ptr().add(j));
                let h: __m256i = core::mem::transmute(_mm512_cvtneps_pbh(v));
                _mm256_storeu_si256(dst.as_mut_ptr().add(j).cast(), h);
            }
            j += 16;
        }
        for j in main..n {
            dst[j] = bf16::from_f32(src[j]);
        }
    }

    /// AMX tile configuration (palette 1): tiles 0-3 are 16 x 16 f32 accumulators, 4-5 are
    /// 16 rows x 32 bf16 of A, 6-7 are 16 pair-rows x 16 columns of B (64 bytes a row).
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
    }

    static TILE_CONFIG: TileConfig = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
        rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
    };

    /// AMX BF16, 32 x 32 tile (four 16 x 16 tile accumulators), depth in blocks of 32.
    ///
    /// A is read in place only (row-major bf16, rows and depth padded by [`prepare_a_bf16`]).
    pub(crate) struct Amx;

    impl Micro for Amx {
        type P = bf16;
        const MR: usize = 32;
        const NR: usize = 32;
        const KSTEP: usize = 2;
        const KPAD: usize = 32;
        const PACK_A: bool = false;
        const KC: usize = 768;
        const NC: usize = 768;

        unsafe fn thread_begin() {
            // SAFETY: AMX is supported and permitted (caller's contract); the configuration is a
            // valid 64-byte palette-1 layout.
            unsafe {
                core::arch::asm!("ldtilecfg [{0}]", in(reg) &TILE_CONFIG as *const TileConfig, options(nostack, readonly));
            }
        }

        unsafe fn thread_end() {
            // SAFETY: AMX is supported (caller's contract); releasing tiles is always valid.
            unsafe { core::arch::asm!("tilerelease", options(nostack, nomem)) };
        }

        unsafe fn kernel(
            ksteps: usize,
            rows: usize,
            alpha: f32,
            a: *const bf16,
            a_rs: usize,
            a_ks: usize,
            b: *const bf16,
            beta: f32,
            c: *mut f32,
            rsc: usize,
        ) {
            debug_assert!(a_ks == 1 && ksteps.is_multiple_of(16) && rows == 32);
            let _ = (a_ks, rows);
            let blocks = ksteps / 16;
            let a_stride = a_rs * 4; // bytes between A rows (a_rs counts bf16 pairs)
                                     // SAFETY: thread_begin configured the tiles; every tile load reads 16 rows of 64
                                     // bytes inside the A rows (0..32, depth block) and the B strip (16 pair-rows of 128
                                     // bytes per block), which the caller guaranteed readable.
            unsafe {
                core::arch::asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem)
                );
                let a_lo = a;
                let a_hi = a.add(16 * a_rs * 2);
                for blk in 0..blocks {
                    let b_blk = b.add(blk * 16 * 64);
                    core::arch::asm!(
                        "tileloadd tmm4, [{alo} + {as_}*1]",
                        "tileloadd tmm5, [{ahi} + {as_}*1]",
                        "tileloadd tmm6, [{b0} + {bs}*1]",
                        "tileloadd tmm7, [{b1} + {bs}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        alo = in(reg) a_lo.add(blk * 32),
                        ahi = in(reg) a_hi.add(blk * 32),
                        as_ = in(reg) a_stride,
                        b0 = in(reg) b_blk,
                        b1 = in(reg) b_blk.add(32),
                        bs = in(reg) 128usize,
                        options(nostack, readonly)
                    );
                }
                if alpha == 1.0 && beta == 0.0 {
                    store_tiles(c, rsc * 4);
                } else {
                    let mut buf = Aligned([0.0f32; 32 * 32]);
                    store_tiles(buf.0.as_mut_ptr(), 32 * 4);
                    combine_32x32(&buf.0, alpha, beta, c, rsc);
                }
            }
        }

        fn epilogue_row(row: &mut [f32], bias: Option<&[f32]>, gelu: bool) {
            activation::bias_gelu_with(Isa::Avx512, row, bias, gelu);
        }
    }

    #[repr(C, align(64))]
    struct Aligned([f32; 32 * 32]);

    /// Stores the four accumulator tiles as a 32 x 32 block at `c` (`stride` bytes per row).
    ///
    /// # Safety
    /// Tiles configured and computed; `c` valid for 32 rows of 32 f32 at that stride.
    #[inline(always)]
    unsafe fn store_tiles(c: *mut f32, stride: usize) {
        // SAFETY: caller's contract; each store writes 16 rows of 64 bytes inside the block.
        unsafe {
            core::arch::asm!(
                "tilestored [{c0} + {s}*1], tmm0",
                "tilestored [{c1} + {s}*1], tmm1",
                "tilestored [{c2} + {s}*1], tmm2",
                "tilestored [{c3} + {s}*1], tmm3",
                c0 = in(reg) c,
                c1 = in(reg) c.add(16),
                c2 = in(reg) c.byte_add(16 * stride),
                c3 = in(reg) c.byte_add(16 * stride).add(16),
                s = in(reg) stride,
                options(nostack)
            );
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn combine_32x32(buf: &[f32; 1024], alpha: f32, beta: f32, c: *mut f32, rsc: usize) {
        let va = _mm512_set1_ps(alpha);
        let vb = _mm512_set1_ps(beta);
        for i in 0..32 {
            for h in 0..2 {
                // SAFETY: row i, columns 16h..16h+16 of the caller's 32 x 32 tile and buffer.
                unsafe {
                    let v = _mm512_loadu_ps(buf.as_ptr().add(i * 32 + 16 * h));
                    let p = c.add(i * rsc + 16 * h);
                    let r = if beta == 0.0 {
                        _mm512_mul_ps(va, v)
                    } else {
                        _mm512_fmadd_ps(va, v, _mm512_mul_ps(vb, _mm512_loadu_ps(p)))
                    };
                    _mm512_storeu_ps(p, r);
                }
            }
        }
    }

    /// AVX2 + FMA, 6 x 16 tile (12 ymm accumulators).
    pub(crate) struct Avx2;

    impl Micro for Avx2 {
        type P = f32;
        const MR: usize = 6;
        const NR: usize = 16;
        const KSTEP: usize = 1;
        const KC: usize = 256;
        const NC: usize = 1024;

        unsafe fn kernel(
            kc: usize,
            rows: usize,
            alpha: f32,
            a: *const f32,
            a_rs: usize,
            a_ks: usize,
            b: *const f32,
            beta: f32,
            c: *mut f32,
            rsc: usize,
        ) {
            debug_assert_eq!(rows, 6);
            // SAFETY: forwarded contract; the dispatcher checked avx2 and fma.
            unsafe { avx2_6x16(kc, alpha, a, a_rs, a_ks, b, beta, c, rsc) }
        }

        fn epilogue_row(row: &mut [f32], bias: Option<&[f32]>, gelu: bool) {
            activation::bias_gelu_with(Isa::Avx2, row, bias, gelu);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn avx2_6x16(
        kc: usize,
        alpha: f32,
        a: *const f32,
        a_rs: usize,
        a_ks: usize,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; 6];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            // SAFETY: each step reads 16 elements of the B strip and 6 of the A strip, which the
            // caller guaranteed for kc steps.
            unsafe {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = _mm256_broadcast_ss(&*a.add(i * a_rs));
                    row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
                }
                a = a.add(a_ks);
                b = b.add(16);
            }
        }
        let va = _mm256_set1_ps(alpha);
        let vb = _mm256_set1_ps(beta);
        for (i, row) in acc.iter().enumerate() {
            for (h, v) in row.iter().enumerate() {
                // SAFETY: row i, columns 8h..8h+8 of the caller's 6 x 16 tile.
                unsafe {
                    let p = c.add(i * rsc + 8 * h);
                    let r = if beta == 0.0 {
                        _mm256_mul_ps(va, *v)
                    } else {
                        _mm256_fmadd_ps(va, *v, _mm256_mul_ps(vb, _mm256_loadu_ps(p)))
                    };
                    _mm256_storeu_ps(p, r);
                }
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::Micro;
    use crate::activation;
    use crate::Isa;
    use core::arch::aarch64::*;

    /// NEON, 8 x 8 tile (16 q-register accumulators).
    pub(crate) struct Neon;

    impl Micro for Neon {
        type P = f32;
        const MR: usize = 8;
        const NR: usize = 8;
        const KSTEP: usize = 1;
        const KC: usize = 256;
        const NC: usize = 1024;

        unsafe fn kernel(
            kc: usize,
            rows: usize,
            alpha: f32,
            a: *const f32,
            a_rs: usize,
            a_ks: usize,
            b: *const f32,
            beta: f32,
            c: *mut f32,
            rsc: usize,
        ) {
            debug_assert_eq!(rows, 8);
            // SAFETY: forwarded contract; the dispatcher checked neon.
            unsafe { neon_8x8(kc, alpha, a, a_rs, a_ks, b, beta, c, rsc) }
        }

        fn epilogue_row(row: &mut [f32], bias: Option<&[f32]>, gelu: bool) {
            activation::bias_gelu_with(Isa::Neon, row, bias, gelu);
        }
    }

    #[target_feature(enable = "neon")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn neon_8x8(
        kc: usize,
        alpha: f32,
        a: *const f32,
        a_rs: usize,
        a_ks: usize,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        let mut acc = [[vdupq_n_f32(0.0); 2]; 8];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            // SAFETY: each step reads 8 elements of each strip, guaranteed for kc steps.
            unsafe {
                let b0 = vld1q_f32(b);
                let b1 = vld1q_f32(b.add(4));
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = *a.add(i * a_rs);
                    row[0] = vfmaq_n_f32(row[0], b0, ai);
                    row[1] = vfmaq_n_f32(row[1], b1, ai);
                }
                a = a.add(a_ks);
                b = b.add(8);
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (h, v) in row.iter().enumerate() {
                // SAFETY: row i, columns 4h..4h+4 of the caller's 8 x 8 tile.
                unsafe {
                    let p = c.add(i * rsc + 4 * h);
                    let r = if beta == 0.0 {
                        vmulq_n_f32(*v, alpha)
                    } else {
                        vfmaq_n_f32(vmulq_n_f32(vld1q_f32(p), beta), *v, alpha)
                    };
                    vst1q_f32(p, r);
                }
            }
        }
    }
}
