//! The blocked GEMM driver shared by every ISA: packing, loops, edges, parallel split.

use alloc::vec;
use alloc::vec::Vec;
use core::mem::MaybeUninit;

use crate::par::for_each_part;
use crate::{bf16, MatMut, MatRef, Par};

/// The epilogue as the driver sees it.
#[derive(Clone, Copy)]
pub(crate) struct Epi<'a> {
    pub bias: Option<&'a [f32]>,
    pub gelu: bool,
}

/// Element types the packers read.
pub(crate) trait Elem: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    fn to_bf16(self) -> bf16;
}

impl Elem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn to_bf16(self) -> bf16 {
        bf16::from_f32(self)
    }
}

impl Elem for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[inline(always)]
    fn to_bf16(self) -> bf16 {
        self
    }
}

/// Element types the microkernels read from packed buffers.
pub(crate) trait Packed: Copy + Default + Send + Sync + 'static {
    fn from_elem<T: Elem>(x: T) -> Self;
}

impl Packed for f32 {
    #[inline(always)]
    fn from_elem<T: Elem>(x: T) -> Self {
        x.to_f32()
    }
}

impl Packed for bf16 {
    #[inline(always)]
    fn from_elem<T: Elem>(x: T) -> Self {
        x.to_bf16()
    }
}

/// A register-blocked microkernel.
///
/// Packed layouts, with `KS = KSTEP` consecutive `k` values interleaved (2 for `vdpbf16ps`):
/// - A strip: element `(i, k)` at `((k / KS) * MR + i) * KS + k % KS`, `MR * kc_pad` elements;
/// - B strip: element `(k, j)` at `((k / KS) * NR + j) * KS + k % KS`, `NR * kc_pad` elements;
///
/// where `kc_pad` is `kc` rounded up to a multiple of `KPAD` (the padding is zero).
pub(crate) trait Micro: Sync {
    type P: Packed;
    const MR: usize;
    const NR: usize;
    const KSTEP: usize;
    /// Depth of a packed block.
    const KC: usize;
    /// Width of a packed block of B.
    const NC: usize;
    /// Depth blocks are zero-padded to a multiple of this (a multiple of `KSTEP`).
    const KPAD: usize = Self::KSTEP;
    /// Whether A strips may be packed (kernels with their own A layout read A in place only).
    const PACK_A: bool = true;

    /// Per-thread set-up before the first `kernel` call of a part (AMX tile configuration).
    ///
    /// # Safety
    /// The ISA of the implementation must be supported by the CPU.
    unsafe fn thread_begin() {}

    /// Per-thread tear-down after the last `kernel` call of a part.
    ///
    /// # Safety
    /// As for [`Micro::thread_begin`], which must have been called on this thread.
    unsafe fn thread_end() {}

    /// Whether [`Micro::kernel`] computes tiles of fewer than `MR` rows (`rows < MR`); otherwise
    /// `rows` is always `MR` and the driver runs edge strips through a scratch tile.
    const EDGE_ROWS: bool = false;

    /// Computes the `rows x NR` tile `C = alpha * A_strip * B_strip + beta * C` (C not read
    /// when `beta == 0`).
    ///
    /// The A strip is read in units of `KSTEP` elements (one f32, or one pair of bf16): unit
    /// `(i, s)` (row `i`, step `s`) is at unit offset `i * a_rs + s * a_ks` from `a`: a packed
    /// strip has `a_rs = 1, a_ks = MR`; a row-major operand read in place has `a_rs` = its row
    /// stride in units and `a_ks = 1`.
    ///
    /// # Safety
    /// `rows <= MR`, and `rows == MR` unless [`Micro::EDGE_ROWS`]. Every unit `(i, s)`,
    /// `i < rows`, `s < kc_steps`, of `a` and `NR * kc_steps * KSTEP` elements of `b` must be
    /// readable; `c` must be valid for reads and writes of `rows` rows of `NR` contiguous
    /// elements `rsc` apart; the ISA of the implementation must be supported by the CPU (the
    /// dispatcher checked it).
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel(
        kc_steps: usize,
        rows: usize,
        alpha: f32,
        a: *const Self::P,
        a_rs: usize,
        a_ks: usize,
        b: *const Self::P,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    );

    /// Bias add and GELU over `row` (contiguous) with the ISA's vector code.
    fn epilogue_row(row: &mut [f32], bias: Option<&[f32]>, gelu: bool);
}

/// A raw pointer that may cross threads; every use states why the accesses are disjoint.
#[derive(Clone, Copy)]
struct SyncPtr<T>(*mut T);
impl<T> SyncPtr<T> {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    #[inline(always)]
    fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: only used to hand disjoint regions of one buffer to the parts of a parallel loop.
unsafe impl<T> Send for SyncPtr<T> {}
// SAFETY: as above; no two parts touch the same element.
unsafe impl<T> Sync for SyncPtr<T> {}

#[inline(always)]
fn round_up(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
}

/// Packs rows `r0..r0+mr` (mr <= MR), depth `k0..k0+kc` of `a` into one A strip.
fn pack_a<K: Micro, T: Elem>(
    dst: &mut [K::P],
    a: &MatRef<'_, T>,
    r0: usize,
    mr: usize,
    k0: usize,
    kc: usize,
) {
    let (mr_full, ks) = (K::MR, K::KSTEP);
    let kc_pad = round_up(kc, K::KPAD);
    let dst = &mut dst[..mr_full * kc_pad];
    if mr < mr_full || kc_pad != kc {
        dst.fill(K::P::default());
    }
    let data = a.as_slice();
    let (rs, cs) = (a.row_stride(), a.col_stride());
    if rs == 1 && cs != 1 {
        // The strip's rows at one depth are contiguous in memory: read them as one run per
        // depth (element by element along a row would touch a cache line per element).
        for k in 0..kc {
            let base = r0 + (k0 + k) * cs;
            let out = &mut dst[(k / ks) * mr_full * ks + k % ks..];
            for (i, &x) in data[base..base + mr].iter().enumerate() {
                out[i * ks] = K::P::from_elem(x);
            }
        }
        return;
    }
    for i in 0..mr {
        let base = (r0 + i) * rs + k0 * cs;
        if cs == 1 {
            let row = &data[base..base + kc];
            for (k, &x) in row.iter().enumerate() {
                dst[((k / ks) * mr_full + i) * ks + k % ks] = K::P::from_elem(x);
            }
        } else {
            for k in 0..kc {
                dst[((k / ks) * mr_full + i) * ks + k % ks] = K::P::from_elem(data[base + k * cs]);
            }
        }
    }
}

/// Packs columns `c0..c0+nr` (nr <= NR), depth `k0..k0+kc` of `b` into one B strip.
///
/// Every element of the strip (`NR * kc_pad`) is written, so `dst` may start uninitialised.
fn pack_b<K: Micro, T: Elem>(
    dst: &mut [MaybeUninit<K::P>],
    b: &MatRef<'_, T>,
    c0: usize,
    nr: usize,
    k0: usize,
    kc: usize,
) {
    let (nr_full, ks) = (K::NR, K::KSTEP);
    let kc_pad = round_up(kc, K::KPAD);
    let dst = &mut dst[..nr_full * kc_pad];
    if nr < nr_full || kc_pad != kc {
        dst.fill(MaybeUninit::new(K::P::default()));
    }
    let data = b.as_slice();
    let (rs, cs) = (b.row_stride(), b.col_stride());
    if cs == 1 && ks == 1 {
        for k in 0..kc {
            let base = (k0 + k) * rs + c0;
            let src = &data[base..base + nr];
            let out = &mut dst[k * nr_full..k * nr_full + nr];
            if nr == nr_full {
                // A full strip row: a trip count known at compile time becomes a few vector
                // moves. A run-time count becomes a `memcpy` call per row, whose overhead was 9%
                // of a 128x384x384 GEMM.
                for (d, &x) in out[..K::NR].iter_mut().zip(&src[..K::NR]) {
                    *d = MaybeUninit::new(K::P::from_elem(x));
                }
            } else {
                for (d, &x) in out.iter_mut().zip(src) {
                    *d = MaybeUninit::new(K::P::from_elem(x));
                }
            }
        }
    } else if cs == 1 && ks == 2 {
        // Row-major B into pair-interleaved strips (bf16 VNNI): rows k and k + 1 zipped.
        for kk in (0..kc).step_by(2) {
            let out = &mut dst[kk * nr_full..kk * nr_full + 2 * nr];
            let base = (k0 + kk) * rs + c0;
            let r0 = &data[base..base + nr];
            if kk + 1 < kc {
                let r1 = &data[base + rs..base + rs + nr];
                for ((o, &x0), &x1) in out.chunks_exact_mut(2).zip(r0).zip(r1) {
                    o[0] = MaybeUninit::new(K::P::from_elem(x0));
                    o[1] = MaybeUninit::new(K::P::from_elem(x1));
                }
            } else {
                for (o, &x0) in out.chunks_exact_mut(2).zip(r0) {
                    o[0] = MaybeUninit::new(K::P::from_elem(x0));
                    o[1] = MaybeUninit::new(K::P::default());
                }
            }
        }
    } else if rs == 1 {
        for j in 0..nr {
            let base = (c0 + j) * cs + k0;
            let col = &data[base..base + kc];
            for (k, &x) in col.iter().enumerate() {
                dst[((k / ks) * nr_full + j) * ks + k % ks] = MaybeUninit::new(K::P::from_elem(x));
            }
        }
    } else {
        for k in 0..kc {
            let base = (k0 + k) * rs + c0 * cs;
            for j in 0..nr {
                dst[((k / ks) * nr_full + j) * ks + k % ks] =
                    MaybeUninit::new(K::P::from_elem(data[base + j * cs]));
            }
        }
    }
}

/// An A operand the kernels can read in place (row-major in the packed element type).
pub(crate) struct DirectA<'a, P> {
    /// The elements.
    pub data: &'a [P],
    /// Row stride in elements (a multiple of `KSTEP`).
    pub rs: usize,
    /// Rows that may be read (at least the rows of A; more when the buffer is padded).
    pub rows: usize,
    /// Whether every row is zero-padded up to a multiple of `KPAD` (then a depth tail can be read
    /// in place too).
    pub padded_k: bool,
}

/// When `TA` is the packed type itself and rows are contiguous, the A operand can be read in
/// place.
pub(crate) fn direct_a<'a, K: Micro, TA: Elem>(a: &MatRef<'a, TA>) -> Option<DirectA<'a, K::P>> {
    if core::any::TypeId::of::<TA>() != core::any::TypeId::of::<K::P>() {
        return None;
    }
    if a.col_stride() != 1 || !a.row_stride().is_multiple_of(K::KSTEP) {
        return None;
    }
    let s = a.as_slice();
    // SAFETY: TA and K::P are the same type (TypeId above), so the cast is the identity.
    let p: &'a [K::P] = unsafe { core::slice::from_raw_parts(s.as_ptr().cast(), s.len()) };
    Some(DirectA {
        data: p,
        rs: a.row_stride(),
        rows: a.rows(),
        padded_k: false,
    })
}

/// `C = beta * C` then the epilogue (used when the product is empty).
fn scale_only<K: Micro>(beta: f32, c: &mut MatMut<'_, f32>, epi: Epi<'_>) {
    let (rows, cols) = (c.rows(), c.cols());
    let (ptr, rs, cs) = c.raw();
    let mut row = vec![0.0f32; cols];
    for i in 0..rows {
        for (j, r) in row.iter_mut().enumerate() {
            // SAFETY: (i, j) is inside the view, which MatMut checked against its slice.
            let v = unsafe { *ptr.add(i * rs + j * cs) };
            *r = if beta == 0.0 { 0.0 } else { beta * v };
        }
        K::epilogue_row(&mut row, epi.bias, epi.gelu);
        for (j, r) in row.iter().enumerate() {
            // SAFETY: as above.
            unsafe { *ptr.add(i * rs + j * cs) = *r };
        }
    }
}

/// The driver: `C = epi(alpha * A * B + beta * C)` with microkernel `K`.
///
/// # Safety
/// The CPU must support the ISA of `K` (the dispatcher checks it).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<K: Micro, TA: Elem, TB: Elem>(
    alpha: f32,
    a: MatRef<'_, TA>,
    b: MatRef<'_, TB>,
    beta: f32,
    c: MatMut<'_, f32>,
    epi: Epi<'_>,
    par: Par,
) {
    let direct = direct_a::<K, TA>(&a);
    // SAFETY: forwarded contract.
    unsafe { gemm_with_direct::<K, TA, TB>(alpha, a, direct, b, beta, c, epi, par) }
}

/// [`gemm`] with the in-place A operand given by the caller (a prepared, padded copy).
///
/// # Safety
/// As for [`gemm`]; `direct`, when given, must hold the same values as `a`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_with_direct<K: Micro, TA: Elem, TB: Elem>(
    alpha: f32,
    a: MatRef<'_, TA>,
    direct: Option<DirectA<'_, K::P>>,
    b: MatRef<'_, TB>,
    beta: f32,
    mut c: MatMut<'_, f32>,
    epi: Epi<'_>,
    par: Par,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        scale_only::<K>(beta, &mut c, epi);
        return;
    }
    let (mr, nr) = (K::MR, K::NR);
    let parts_wanted = par.degree();
    let (m_strips, n_strips) = (m.div_ceil(mr), n.div_ceil(nr));
    // One parallel region per product: each part owns whole strips of rows or of columns of C
    // and runs the blocked loops over them alone, packing what it reads. No barrier between
    // packing and multiplying, no fork per block (waking the workers once per depth block was a
    // measurable share of a training step on a 2-core guest).
    //
    // Split the dimension whose strips divide more evenly among the parts (the largest part's
    // share is what the region waits for); on a near tie, the one whose split repeats less
    // packing: splitting rows makes every part pack all of B (k x n), splitting columns makes
    // every part pack all of A (m x k) unless A is read in place.
    let share = |strips: usize| {
        let p = parts_wanted.min(strips).max(1);
        strips.div_ceil(p) as f64 / strips as f64
    };
    let (sm, sn) = (share(m_strips), share(n_strips));
    let repack_rows = k * n;
    let repack_cols = if direct.is_some() { 0 } else { m * k };
    let split_m = if (sm - sn).abs() > 0.05 * sm.min(sn) {
        sm < sn
    } else {
        repack_rows < repack_cols
    };
    let strips = if split_m { m_strips } else { n_strips };
    let parts = parts_wanted.min(strips).max(1);
    let (c_ptr, rsc, csc) = c.raw();
    let c_ptr = SyncPtr(c_ptr);
    let (a, b, direct) = (&a, &b, direct.as_ref());
    for_each_part(parts, |p| {
        let (s0, s1) = (p * strips / parts, (p + 1) * strips / parts);
        let (rows, cols) = if split_m {
            ((s0 * mr, (s1 * mr).min(m)), (0, n))
        } else {
            ((0, m), (s0 * nr, (s1 * nr).min(n)))
        };
        // SAFETY: the parts own disjoint strip ranges of rows (or columns) of C, inside C; the
        // ISA of K is supported (this function's contract).
        unsafe {
            gemm_part::<K, TA, TB>(alpha, a, direct, b, beta, c_ptr, rsc, csc, epi, rows, cols)
        }
    });
}

/// The blocked loops of [`gemm_with_direct`] over rows `rows.0..rows.1` and columns
/// `cols.0..cols.1` of C, on the calling thread, with its own packing buffers.
///
/// # Safety
/// The region of C (pointer `c`, strides `rsc`, `csc`) is valid and written by no one else
/// meanwhile; `rows.0` is a multiple of `MR` and `cols.0` of `NR`; `rows.1 < m` only at a
/// multiple of `MR`; the ISA of `K` is supported.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_part<K: Micro, TA: Elem, TB: Elem>(
    alpha: f32,
    a: &MatRef<'_, TA>,
    direct: Option<&DirectA<'_, K::P>>,
    b: &MatRef<'_, TB>,
    beta: f32,
    c: SyncPtr<f32>,
    rsc: usize,
    csc: usize,
    epi: Epi<'_>,
    rows: (usize, usize),
    cols: (usize, usize),
) {
    let (mr, nr, ks) = (K::MR, K::NR, K::KSTEP);
    let k = a.cols();
    let kc_max = round_up(K::KC.min(k), K::KPAD);
    let nc_max = round_up(K::NC.min(cols.1 - cols.0), nr);
    // Not zeroed: `pack_b` writes every element of a strip before any kernel reads it.
    let mut bpack: Vec<MaybeUninit<K::P>> = Vec::with_capacity(nc_max * kc_max);
    bpack.resize_with(nc_max * kc_max, MaybeUninit::uninit);
    let mut apack: Vec<K::P> = if K::PACK_A {
        vec![K::P::default(); mr * kc_max]
    } else {
        Vec::new()
    };
    let mut tile = vec![0.0f32; mr * nr];
    // SAFETY: the ISA of K is supported (this function's contract).
    unsafe { K::thread_begin() };
    let mut jc = cols.0;
    while jc < cols.1 {
        let nc = (cols.1 - jc).min(K::NC);
        let n_strips = nc.div_ceil(nr);
        let mut pc = 0;
        while pc < k {
            let kc = (k - pc).min(K::KC);
            let kc_pad = round_up(kc, K::KPAD);
            let strip_len = nr * kc_pad;
            let beta_eff = if pc == 0 { beta } else { 1.0 };
            let epi_now = if pc + kc == k { Some(epi) } else { None };
            let direct = direct.filter(|d| d.padded_k || kc % K::KPAD == 0);
            for (s, dst) in bpack[..n_strips * strip_len]
                .chunks_exact_mut(strip_len)
                .enumerate()
            {
                let c0 = jc + s * nr;
                pack_b::<K, TB>(dst, b, c0, nr.min(jc + nc - c0), pc, kc);
            }
            // SAFETY: the first n_strips strips were all written just above (pack_b writes
            // every element of its strip), so they are initialised `K::P`s.
            let bp: &[K::P] = unsafe {
                core::slice::from_raw_parts(bpack.as_ptr().cast::<K::P>(), n_strips * strip_len)
            };
            let mut r0 = rows.0;
            while r0 < rows.1 {
                let mr_eff = mr.min(rows.1 - r0);
                // Rows the kernel computes: the strip's own when it takes edge tiles.
                let k_rows = if K::EDGE_ROWS { mr_eff } else { mr };
                let (a_strip, a_rs, a_ks): (&[K::P], usize, usize) = match direct {
                    Some(d) if r0 + k_rows <= d.rows => {
                        let start = r0 * d.rs + pc;
                        (
                            &d.data[start..start + (k_rows - 1) * d.rs + kc_pad],
                            d.rs / ks,
                            1,
                        )
                    }
                    _ => {
                        assert!(K::PACK_A, "this kernel reads A in place only");
                        pack_a::<K, TA>(&mut apack, a, r0, mr_eff, pc, kc);
                        (&apack[..], 1, mr)
                    }
                };
                for (js, bs) in bp.chunks_exact(strip_len).enumerate() {
                    let c0 = jc + js * nr;
                    let nr_eff = nr.min(jc + nc - c0);
                    // SAFETY: the tile (r0.., c0..) lies inside this part's region of C
                    // (the contract).
                    unsafe {
                        run_tile::<K>(
                            kc_pad / ks,
                            k_rows,
                            alpha,
                            a_strip,
                            a_rs,
                            a_ks,
                            bs,
                            beta_eff,
                            c.get(),
                            rsc,
                            csc,
                            r0,
                            c0,
                            mr_eff,
                            nr_eff,
                            &mut tile,
                            epi_now,
                        )
                    };
                }
                r0 += mr;
            }
            pc += kc;
        }
        jc += nc;
    }
    // SAFETY: thread_begin ran on this thread above.
    unsafe { K::thread_end() };
}

/// Runs one tile (`rows` rows of the kernel, see [`Micro::kernel`]), through a scratch tile
/// at the edges the kernel does not cover or when C is not row-contiguous, then applies the
/// epilogue when this is the last depth block.
///
/// # Safety
/// Rows `r0..r0+mr_eff`, columns `c0..c0+nr_eff` of C (`c`, strides `rsc`, `csc`) must be
/// valid and owned by the caller; `rows` must be as [`Micro::kernel`] allows; the packed strips
/// must have the lengths `K` needs; the ISA of `K` must be supported.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn run_tile<K: Micro>(
    kc_steps: usize,
    rows: usize,
    alpha: f32,
    astrip: &[K::P],
    a_rs: usize,
    a_ks: usize,
    bpack: &[K::P],
    beta: f32,
    c: *mut f32,
    rsc: usize,
    csc: usize,
    r0: usize,
    c0: usize,
    mr_eff: usize,
    nr_eff: usize,
    tile: &mut [f32],
    epi: Option<Epi<'_>>,
) {
    let (mr, nr) = (K::MR, K::NR);
    // Every unit the kernel reads lies inside the slices (bounds the kernels rely on).
    assert!(rows >= mr_eff && rows <= mr && (rows == mr || K::EDGE_ROWS));
    assert!(bpack.len() >= nr * kc_steps * K::KSTEP);
    assert!(
        kc_steps == 0 || astrip.len() >= ((rows - 1) * a_rs + (kc_steps - 1) * a_ks + 1) * K::KSTEP
    );
    if mr_eff == rows && nr_eff == nr && csc == 1 {
        // SAFETY: full tile inside C with unit column stride (caller's contract).
        let ct = unsafe { c.add(r0 * rsc + c0) };
        // SAFETY: operand lengths checked above; the tile is valid for `rows` rows of NR.
        unsafe {
            K::kernel(
                kc_steps,
                rows,
                alpha,
                astrip.as_ptr(),
                a_rs,
                a_ks,
                bpack.as_ptr(),
                beta,
                ct,
                rsc,
            )
        };
        if let Some(epi) = epi {
            if epi.gelu || epi.bias.is_some() {
                for i in 0..rows {
                    // SAFETY: row i of the tile: NR contiguous elements inside C, owned here.
                    let row = unsafe { core::slice::from_raw_parts_mut(ct.add(i * rsc), nr) };
                    K::epilogue_row(row, epi.bias.map(|b| &b[c0..c0 + nr]), epi.gelu);
                }
            }
        }
        return;
    }
    // SAFETY: `tile` holds MR * NR elements: MR >= rows rows of NR at stride NR.
    unsafe {
        K::kernel(
            kc_steps,
            rows,
            1.0,
            astrip.as_ptr(),
            a_rs,
            a_ks,
            bpack.as_ptr(),
            0.0,
            tile.as_mut_ptr(),
            nr,
        )
    };
    for i in 0..mr_eff {
        let row = &mut tile[i * nr..i * nr + nr_eff];
        for (j, t) in row.iter_mut().enumerate() {
            // SAFETY: (r0 + i, c0 + j) is inside the caller's tile.
            let old = unsafe { *c.add((r0 + i) * rsc + (c0 + j) * csc) };
            *t = if beta == 0.0 {
                alpha * *t
            } else {
                alpha * *t + beta * old
            };
        }
        if let Some(epi) = epi {
            if epi.gelu || epi.bias.is_some() {
                K::epilogue_row(row, epi.bias.map(|b| &b[c0..c0 + nr_eff]), epi.gelu);
            }
        }
        for (j, t) in row.iter().enumerate() {
            // SAFETY: as above.
            unsafe { *c.add((r0 + i) * rsc + (c0 + j) * csc) = *t };
        }
    }
}
