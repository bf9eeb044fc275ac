//! Borrowed strided matrix views, checked once at construction.

use crate::KernelError;

/// Elements a `rows x cols` view with these strides spans, or `None` on overflow.
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(rs)?
        .checked_add((cols - 1).checked_mul(cs)?)?
        .checked_add(1)
}

fn check_bounds(
    len: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
) -> Result<(), KernelError> {
    let needed = span(rows, cols, rs, cs).ok_or(KernelError::Overflow("matrix view"))?;
    if needed > len {
        return Err(KernelError::OutOfBounds {
            rows,
            cols,
            row_stride: rs,
            col_stride: cs,
            needed,
            len,
        });
    }
    Ok(())
}

/// An immutable `rows x cols` view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
///
/// Strides may be anything (including 0, for broadcasting); [`MatRef::t`] swaps them, which is
/// how the GEMM takes transposed operands.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A general strided view; fails when it does not fit inside `data`.
    pub fn new(
        data: &'a [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, KernelError> {
        check_bounds(data.len(), rows, cols, row_stride, col_stride)?;
        Ok(Self {
            data,
            rows,
            cols,
            rs: row_stride,
            cs: col_stride,
        })
    }

    /// A contiguous row-major view (`row_stride = cols`, `col_stride = 1`).
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Result<Self, KernelError> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Row stride in elements.
    pub fn row_stride(&self) -> usize {
        self.rs
    }
    /// Column stride in elements.
    pub fn col_stride(&self) -> usize {
        self.cs
    }
    /// The underlying slice.
    pub fn as_slice(&self) -> &'a [T] {
        self.data
    }
    /// Element `(i, j)`; panics when out of range (use in tests and references).
    pub fn get(&self, i: usize, j: usize) -> &'a T {
        assert!(
            i < self.rows && j < self.cols,
            "index ({i}, {j}) out of range"
        );
        &self.data[i * self.rs + j * self.cs]
    }

    /// Rows `start..start + len` as a view.
    pub fn sub_rows(self, start: usize, len: usize) -> Self {
        assert!(start + len <= self.rows);
        let off = if len == 0 { 0 } else { start * self.rs };
        Self {
            data: &self.data[off.min(self.data.len())..],
            rows: len,
            ..self
        }
    }
}

/// A mutable `rows x cols` view whose elements are all distinct.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T> MatMut<'a, T> {
    /// A general strided view; fails when it does not fit inside `data` or when two of its
    /// elements would be the same memory (the views are written in parallel).
    pub fn new(
        data: &'a mut [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, KernelError> {
        check_bounds(data.len(), rows, cols, row_stride, col_stride)?;
        let distinct = rows == 0
            || cols == 0
            || rows <= 1 && (cols <= 1 || col_stride >= 1)
            || cols <= 1 && row_stride >= 1
            || col_stride >= 1 && row_stride >= cols.saturating_mul(col_stride)
            || row_stride >= 1 && col_stride >= rows.saturating_mul(row_stride);
        if !distinct {
            return Err(KernelError::Aliasing {
                rows,
                cols,
                row_stride,
                col_stride,
            });
        }
        Ok(Self {
            data,
            rows,
            cols,
            rs: row_stride,
            cs: col_stride,
        })
    }

    /// A contiguous row-major view.
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self, KernelError> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Row stride in elements.
    pub fn row_stride(&self) -> usize {
        self.rs
    }
    /// Column stride in elements.
    pub fn col_stride(&self) -> usize {
        self.cs
    }
    /// An immutable copy of the view.
    pub fn rb(&self) -> MatRef<'_, T> {
        MatRef {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            rs: self.rs,
            cs: self.cs,
        }
    }
    /// Raw pointer to element (0, 0) and the strides, for the kernels' drivers.
    #[cfg(feature = "alloc")]
    pub(crate) fn raw(&mut self) -> (*mut T, usize, usize) {
        (self.data.as_mut_ptr(), self.rs, self.cs)
    }
}
