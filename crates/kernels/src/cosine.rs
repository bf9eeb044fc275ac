//! Cosine similarity: L2-normalised rows, the query x candidate score matrix through the GEMM,
//! and per-row top-k with a deterministic tie-break (equal scores: lower index first; NaN scores
//! rank below every number).

use alloc::vec;
use alloc::vec::Vec;

use crate::gemm::{gemm_f32, Epilogue};
use crate::norm::l2_normalize_rows;
use crate::par::for_each_part;
use crate::{KernelError, MatMut, MatRef, Par};

/// One hit of a top-k list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Index of the candidate (row of the candidate matrix).
    pub index: usize,
    /// Its score.
    pub score: f32,
}

/// Whether `(sa, ia)` ranks before `(sb, ib)`: higher score first, then lower index; NaN last.
#[inline]
pub fn ranks_before(sa: f32, ia: usize, sb: f32, ib: usize) -> bool {
    match (sa.is_nan(), sb.is_nan()) {
        (false, true) => true,
        (true, false) => false,
        (true, true) => ia < ib,
        (false, false) => sa > sb || (sa == sb && ia < ib),
    }
}

/// The `k` best entries of `scores` (fewer when it is shorter), best first.
pub fn top_k(scores: &[f32], k: usize) -> Vec<Hit> {
    let mut out: Vec<Hit> = Vec::with_capacity(k.min(scores.len()) + 1);
    if k == 0 {
        return out;
    }
    for (i, &s) in scores.iter().enumerate() {
        if out.len() == k {
            let last = out[k - 1];
            if !ranks_before(s, i, last.score, last.index) {
                continue;
            }
            out.pop();
        }
        // Insertion: indices arrive in increasing order, so among equal scores the new one
        // goes after the old ones.
        let pos = out
            .iter()
            .position(|h| ranks_before(s, i, h.score, h.index))
            .unwrap_or(out.len());
        out.insert(pos, Hit { index: i, score: s });
    }
    out
}

/// `out = queries * candidates^T` for row-L2-normalised inputs (the cosine score matrix).
pub fn score_matrix(
    queries: MatRef<'_, f32>,
    candidates: MatRef<'_, f32>,
    out: MatMut<'_, f32>,
    par: Par,
) -> Result<(), KernelError> {
    gemm_f32(1.0, queries, candidates.t(), 0.0, out, Epilogue::None, par)
}

/// A row-major copy of `x` with every row L2-normalised.
pub fn normalized(x: MatRef<'_, f32>) -> Result<Vec<f32>, KernelError> {
    let (rows, cols) = (x.rows(), x.cols());
    let mut v = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for j in 0..cols {
            v.push(*x.get(i, j));
        }
    }
    if cols > 0 {
        l2_normalize_rows(&mut v, cols)?;
    }
    Ok(v)
}

/// Cosine top-k: for every query row, the `k` candidate rows of highest cosine similarity,
/// best first. Inputs need not be normalised. Candidates are scored in blocks of queries, so
/// memory stays at `block x candidates` scores.
pub fn cosine_top_k(
    queries: MatRef<'_, f32>,
    candidates: MatRef<'_, f32>,
    k: usize,
    par: Par,
) -> Result<Vec<Vec<Hit>>, KernelError> {
    crate::error::check(
        "cosine_top_k",
        "candidate dimension (= query dimension)",
        queries.cols(),
        candidates.cols(),
    )?;
    let dim = queries.cols();
    let (nq, nc) = (queries.rows(), candidates.rows());
    let q = normalized(queries)?;
    let c = normalized(candidates)?;
    let cm = MatRef::row_major(&c, nc, dim)?;
    let block = 256usize.min(nq.max(1));
    let mut scores = vec![0.0f32; block * nc];
    let mut result = Vec::with_capacity(nq);
    let mut q0 = 0;
    while q0 < nq {
        let rows = block.min(nq - q0);
        let qm = MatRef::row_major(&q[q0 * dim..(q0 + rows) * dim], rows, dim)?;
        let out = MatMut::row_major(&mut scores[..rows * nc], rows, nc)?;
        score_matrix(qm, cm, out, par)?;
        let mut hits: Vec<Vec<Hit>> = vec![Vec::new(); rows];
        let parts = par.degree().min(rows).max(1);
        {
            let scores = &scores;
            let slots: Vec<spin_cell::Slot> =
                (0..parts).map(|_| spin_cell::Slot::default()).collect();
            for_each_part(parts, |p| {
                let (r0, r1) = (p * rows / parts, (p + 1) * rows / parts);
                let local: Vec<Vec<Hit>> = (r0..r1)
                    .map(|r| top_k(&scores[r * nc..(r + 1) * nc], k))
                    .collect();
                slots[p].put(local);
            });
            let mut r = 0;
            for slot in slots {
                for h in slot.take() {
                    hits[r] = h;
                    r += 1;
                }
            }
        }
        result.extend(hits);
        q0 += rows;
    }
    Ok(result)
}

/// A write-once slot for collecting per-part results without `std`'s Mutex.
mod spin_cell {
    use alloc::vec::Vec;
    use core::cell::UnsafeCell;
    use core::sync::atomic::{AtomicBool, Ordering};

    use super::Hit;

    #[derive(Default)]
    pub(super) struct Slot {
        full: AtomicBool,
        value: UnsafeCell<Vec<Vec<Hit>>>,
    }

    // SAFETY: `put` is called at most once per slot, by the one part that owns it, and `take`
    // only after every part has finished (for_each_part joins them), so the cell is never
    // accessed from two threads at once.
    unsafe impl Sync for Slot {}

    impl Slot {
        pub(super) fn put(&self, v: Vec<Vec<Hit>>) {
            assert!(
                !self.full.swap(true, Ordering::AcqRel),
                "slot written twice"
            );
            // SAFETY: the flag above guarantees this is the only writer, and no reader runs
            // before the parallel loop has joined.
            unsafe { *self.value.get() = v };
        }
        pub(super) fn take(self) -> Vec<Vec<Hit>> {
            self.value.into_inner()
        }
    }
}
