use thiserror::Error;

/// The one error type of the kernels.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// A matrix view does not fit inside its slice.
    #[error("matrix view {rows}x{cols} with strides ({row_stride}, {col_stride}) needs {needed} elements, slice has {len}")]
    OutOfBounds {
        /// Rows of the view.
        rows: usize,
        /// Columns of the view.
        cols: usize,
        /// Row stride.
        row_stride: usize,
        /// Column stride.
        col_stride: usize,
        /// Elements the view needs.
        needed: usize,
        /// Elements the slice has.
        len: usize,
    },
    /// A mutable view whose elements would alias each other.
    #[error("mutable matrix view {rows}x{cols} with strides ({row_stride}, {col_stride}) aliases its own elements")]
    Aliasing {
        /// Rows of the view.
        rows: usize,
        /// Columns of the view.
        cols: usize,
        /// Row stride.
        row_stride: usize,
        /// Column stride.
        col_stride: usize,
    },
    /// Operand shapes that do not agree.
    #[error("shape mismatch in {op}: {detail}")]
    Shape {
        /// The operation.
        op: &'static str,
        /// What disagrees.
        detail: ShapeDetail,
    },
    /// A size overflowed `usize`.
    #[error("size overflow in {0}")]
    Overflow(&'static str),
}

/// The two sizes that disagree in a [`KernelError::Shape`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeDetail {
    /// What was expected.
    pub what: &'static str,
    /// Expected value.
    pub expected: usize,
    /// Actual value.
    pub got: usize,
}

impl core::fmt::Display for ShapeDetail {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} expected {}, got {}",
            self.what, self.expected, self.got
        )
    }
}

/// Returns a shape error unless `expected == got`.
pub(crate) fn check(
    op: &'static str,
    what: &'static str,
    expected: usize,
    got: usize,
) -> Result<(), KernelError> {
    if expected == got {
        Ok(())
    } else {
        Err(KernelError::Shape {
            op,
            detail: ShapeDetail {
                what,
                expected,
                got,
            },
        })
    }
}
